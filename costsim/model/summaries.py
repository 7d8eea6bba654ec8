"""Mergeable per-class summaries of a pilot log: everything the fit needs, in bounded memory.

A log is summarised a chunk of rows at a time (a record batch of a streamed Parquet dataset, or
a slice of a log in memory); the summaries of parts merge into the summary of the whole. Every
part of a summary merges exactly and in any grouping, so the summary, and the model fitted
from it, depend on the rows and their order only: not on files, row groups, batches, workers or
a Dask cluster. What is kept, per class:

* **counts** (rows, errors, retries by count, cold starts, rows per hour of day and, for the
  whole log, per day of week) are integers;
* **sums** (the total of every quantity, of retries, of the cost of retried attempts and of
  cold starts, per drift window the sums of log unit cost and of its square) are exact: each
  value is cut into 32-bit digits on a fixed binary grid (`Grid`), the digits are summed as
  integers and the float is made once, at the end (digits below the grid's last one, 2^-78 for
  quantities, are dropped: far below a cent or a token);
* the **tail** of each quantity is its exact top ``K_MAX + 1`` values (the tail fit never looks
  further), with the count of rows at the largest value;
* the **body**, the copula and medians come from a **sample**: the rows with the smallest
  priority, a hash of the fit's seed and the row's position in the log (the bottom k of a union
  is the bottom k of the parts' bottom k). Every row while a class has at most ``sample_rows``
  of them (2^18, fewer with many classes: `sample_rows_for`), so a pilot of that size is
  summarised exactly; above, a simple random sample of that many rows: its empirical CDF is
  within sqrt(ln(2/d) / 2m) of the class's with probability 1 - d (DKW: 0.0038 at m = 2^18,
  d = 0.001), a quantile's rank has sd sqrt(p(1-p)/m) (0.1% at the median);
* the **drift** windows: per window of ``base_s`` seconds (aligned on the epoch), the rows, the
  rows with a positive unit cost and the exact sums of log unit cost and of its square over
  them; and the ``LOW_ROWS`` smallest positive unit costs with their windows, so that costs
  below the drift's floor (a thousandth of the median) are floored exactly (a class with more
  of them than that is read a second time: `floors_to_sum`);
* for the whole log: the first and last arrival, and the cost **concentration**: the exact top
  ``CONCENTRATION_TOP`` costs, and a histogram of costs in bins of 1/128 of an octave (a share
  of cost from it, each request at its bin's centre, is within 0.3% of its value).

Memory: a summary holds per class at most ``2 (K_MAX + 1)`` values per quantity, its sample,
``2 LOW_ROWS`` unit costs and its windows with requests; the samples of all classes together
at most ``SAMPLE_BUDGET`` rows. A work item returns its part's summary, trimmed, and starts from
the `Bounds` of what was merged before it, so that it returns little once the sample is full.

The work items (`summarize_item`) read their part of a log through `costsim.logs`; the rest
is pure. `costsim.model.fit` turns a `LogSummary` into a model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ..errors import FitError
from ..logs import Chunk, Issues, ItemReader, LogSource, PilotLog, ScanItem, Timestamps
from .tail import K_MAX

QUANTITIES = (
    "cost_usd", "input_tokens", "output_tokens", "cached_share", "latency_ms", "calls",
)  # fmt: skip
#: the PilotLog field each measured quantity is read from (cached_share: see `quantity_arrays`)
LOG_FIELDS = {
    "cost_usd": "cost",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "latency_ms": "latency_ms",
    "calls": "calls",
}
SAMPLE_ROWS = 1 << 18  # rows per class kept for the body grid, KS and the copula (exact below)
SAMPLE_BUDGET = 1 << 22  # sampled rows over all classes: with many classes each keeps fewer
MIN_SAMPLE_ROWS = 1 << 12  # ... but never fewer than this
MAX_CLASSES = 2000  # classes a log may have (each keeps its buffers)
TOP_ROWS = K_MAX + 1  # largest values kept per class and quantity (the tail's candidates)
LOW_ROWS = 2048  # smallest positive unit costs kept per class (the drift's floor)
CONCENTRATION_TOP = 1 << 16  # largest costs of the log kept exactly
HIST_PER_OCTAVE = 128  # bins per factor of 2 of the cost histogram
HIST_LOW, HIST_HIGH = -80, 50  # octaves covered: 2^-80 .. 2^50 (the rest in the end bins)
HIST_BINS = HIST_PER_OCTAVE * (HIST_HIGH - HIST_LOW) + 2  # + zero and below-range bins
RETRY_BINS = 11  # retries 0..9 and "10 or more" (fit.RETRY_PMF_MAX = 10)
MAX_WINDOW_CELLS = 1 << 22  # (class, drift window) cells with requests, over all classes
_SAMPLE_SPAWN_KEY = 11  # spawn key of the sample's hash key, apart from the fit's streams


# ---------------------------------------------------------------------------------------------
# Exact sums
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    """Exact sums of values below 2^``top`` in magnitude: each value x is cut into digits
    d_j = floor(r_j / 2^lo_j), r_{j+1} = r_j - d_j 2^lo_j (exact in floating point), on the
    fixed exponents lo_j = top - 32 (j + 1). A digit is below 2^32, so the digits of up to 2^21
    rows add up exactly in float64 (a batch), and as int64 with carries across batches. The
    sum is exact for values on the grid (down to 2^lo_last); finer bits are dropped."""

    top: int
    levels: int

    @property
    def exponents(self) -> tuple[int, ...]:
        """The exponent of each accumulator row: a carry row at ``top``, then the digits."""
        return (self.top, *(self.top - 32 * (j + 1) for j in range(self.levels)))

    def digits(self, x: np.ndarray, nonnegative: bool = True) -> Iterator[tuple[int, np.ndarray]]:
        """(accumulator row, digits) of ``x``; rows whose digits are all 0 are left out. The
        digits array is reused from one row to the next."""
        x = np.asarray(x, dtype=np.float64)
        hi = float(np.max(x, initial=0.0)) if nonnegative else math.inf
        r: np.ndarray | None = None
        d = np.empty_like(x)
        for j, lo in enumerate(self.exponents[1:], start=1):
            if r is None and nonnegative and hi < 2.0**lo:
                continue  # every digit 0
            src = x if r is None else r
            np.multiply(src, 2.0**-lo, out=d)
            np.floor(d, out=d)
            if r is None:
                r = x - d * 2.0**lo
            else:
                r -= d * 2.0**lo
            yield j, d
            if not r.any():
                return

    def zeros(self, *shape: int) -> np.ndarray:
        return np.zeros((self.levels + 1, *shape), dtype=np.int64)

    def sums(
        self, x: np.ndarray, keys: np.ndarray, cells: int, nonnegative: bool = True
    ) -> np.ndarray:
        """Accumulator of ``x`` summed by ``keys`` (0..cells-1), normalised."""
        acc = self.zeros(cells)
        for j, d in self.digits(x, nonnegative):
            if cells == 1:  # every key 0 (integers below 2^53: any order sums them exactly)
                acc[j, 0] = int(d.sum())
            else:
                acc[j] += np.bincount(keys, weights=d, minlength=cells).astype(np.int64)
        return normalise(acc)

    def reduce(self, x: np.ndarray, starts: np.ndarray, nonnegative: bool = True) -> np.ndarray:
        """Accumulator of ``x`` summed over the slices that begin at ``starts`` (ascending,
        from 0; the last slice runs to the end), one column per slice, normalised."""
        acc = self.zeros(starts.size)
        for j, d in self.digits(x, nonnegative):
            acc[j] = np.add.reduceat(d, starts).astype(np.int64)  # integers: summed exactly
        return normalise(acc)

    def values(self, acc: np.ndarray) -> np.ndarray:
        """The floats of many accumulators (rows x cells) at once: the digits added from the
        smallest up, within an ulp or two of the exact sum, and like `value` a function of the
        exact sum alone (the digits are unique), so the same for any cut of the rows."""
        exps = self.exponents
        out = np.zeros(acc.shape[1:])
        for j in range(len(exps) - 1, -1, -1):
            out += acc[j].astype(np.float64) * 2.0 ** exps[j]
        return out

    def value(self, acc: np.ndarray) -> np.ndarray:
        """The floats of accumulators (rows x cells), each the exact sum correctly rounded."""
        exps = self.exponents
        flat = acc.reshape(acc.shape[0], -1)
        out = np.empty(flat.shape[1])
        for i in range(flat.shape[1]):
            out[i] = math.fsum(float(flat[j, i]) * 2.0 ** exps[j] for j in range(len(exps)))
        return out.reshape(acc.shape[1:])


def normalise(acc: np.ndarray) -> np.ndarray:
    """Carry each digit row's overflow into the row above, in place: every row but the carry
    row ends in [0, 2^32). The representation is then unique, whatever the order of adds."""
    for j in range(acc.shape[0] - 1, 0, -1):
        carry = acc[j] >> 32
        acc[j] -= carry << 32
        acc[j - 1] += carry
    return acc


VALUES = Grid(50, 4)  # quantities, retries, costs: below 2^50 (logs.MAX_VALUE = 1e15)
LOGS = Grid(10, 3)  # log unit cost: |y| < 745
SQUARES = Grid(20, 3)  # its square


# ---------------------------------------------------------------------------------------------
# Sampling priorities
# ---------------------------------------------------------------------------------------------


def sample_key(seed: int) -> int:
    """The hash key of the sample of a fit with this seed (its own SeedSequence stream)."""
    state = np.random.SeedSequence(seed, spawn_key=(_SAMPLE_SPAWN_KEY,)).generate_state(
        1, dtype=np.uint64
    )
    return int(state[0])


def priorities(positions: np.ndarray, key: int) -> np.ndarray:
    """splitmix64 of (position XOR key): a bijection of the 0-based row positions, so no two
    rows tie, and as good as uniform random draws for a sample."""
    z = np.asarray(positions, dtype=np.uint64) ^ np.uint64(key)
    z += np.uint64(0x9E3779B97F4A7C15)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def sample_rows_for(classes: int, cap: int | None = None) -> int:
    """Rows sampled per class when the log has ``classes`` classes (a memory budget)."""
    cap = SAMPLE_ROWS if cap is None else cap
    return min(cap, max(min(MIN_SAMPLE_ROWS, cap), SAMPLE_BUDGET // max(classes, 1)))


# ---------------------------------------------------------------------------------------------
# What is summarised
# ---------------------------------------------------------------------------------------------


def drift_base(window_s: float, ladder: Sequence[float]) -> float:
    """The base window the drift's sums are kept on: the largest length every window the drift
    may try (``window_s`` and the longer ones of ``ladder``) is a whole multiple of; at least
    1/64 of ``window_s`` (else ``window_s``, and only its multiples are tried)."""
    candidates = [Fraction(window_s), *(Fraction(w) for w in ladder if w > window_s)]
    scale = math.lcm(*(c.denominator for c in candidates))
    g = Fraction(math.gcd(*(int(c * scale) for c in candidates)), scale)
    return float(g) if g >= Fraction(window_s) / 64 else float(window_s)


@dataclass(frozen=True)
class SummarySpec:
    """What a summary keeps, fixed before the first row is read (picklable).

    ``quantities`` are the measured quantities the log has (in `QUANTITIES` order);
    ``fields`` the per-row values the sample keeps (the quantities, the unit measure when the
    log has no cost, the cold-start flag when it has latencies); ``key`` the sample's hash key;
    ``base_s`` the drift's base window."""

    quantities: tuple[str, ...]
    fields: tuple[str, ...]
    key: int
    base_s: float
    present: frozenset[str] = frozenset()  # the PilotLog fields the log has
    sample_rows: int = SAMPLE_ROWS  # most rows a class keeps (fewer with many: sample_rows_for)

    def has(self, name: str) -> bool:
        return name in self.present

    @property
    def has_cost(self) -> bool:
        return "cost" in self.present

    @property
    def has_time(self) -> bool:
        return "timestamp" in self.present

    @classmethod
    def of(
        cls, present: Iterable[str], seed: int, base_s: float, sample_rows: int | None = None
    ) -> SummarySpec:
        """From the PilotLog fields a log has (``cost``, ``timestamp``, ``cold_start`` ...)."""
        have = set(present)
        quantities = tuple(
            q
            for q in QUANTITIES
            if (
                {"cached_input_tokens", "input_tokens"} <= have
                if q == "cached_share"
                else LOG_FIELDS[q] in have
            )
        )
        fields = list(quantities)
        if "cost" not in have:
            fields.append("unit")
        if "cold_start" in have and "latency_ms" in have:
            fields.append("cold")
        rows = SAMPLE_ROWS if sample_rows is None else sample_rows
        return cls(quantities, tuple(fields), sample_key(seed), base_s, frozenset(have), rows)


def quantity_arrays(values: Mapping[str, np.ndarray | None]) -> dict[str, np.ndarray]:
    """Each measured quantity the rows have, from PilotLog fields. ``cached_share`` is cached
    input tokens over input tokens (0 without input), clipped to [0, 1]."""
    out: dict[str, np.ndarray] = {}
    for q in QUANTITIES:
        if q == "cached_share":
            cached, inp = values.get("cached_input_tokens"), values.get("input_tokens")
            if cached is None or inp is None:
                continue
            inp = np.asarray(inp, dtype=np.float64)
            share = np.divide(cached, inp, out=np.zeros_like(inp), where=inp > 0)
            out[q] = np.clip(share, 0.0, 1.0)
        else:
            v = values.get(LOG_FIELDS[q])
            if v is not None:
                out[q] = np.asarray(v, dtype=np.float64)
    return out


def unit_measure(values: Mapping[str, np.ndarray | None]) -> np.ndarray | None:
    """What the drift follows per request: its cost, else its input plus output tokens."""
    cost = values.get("cost")
    if cost is not None:
        return np.asarray(cost, dtype=np.float64)
    parts = [values.get(k) for k in ("input_tokens", "output_tokens")]
    present = [np.asarray(p, dtype=np.float64) for p in parts if p is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else present[0] + present[1]


# ---------------------------------------------------------------------------------------------
# The summary
# ---------------------------------------------------------------------------------------------


@dataclass
class Windows:
    """One class's drift windows with requests: sorted window ids (floor(t / base)), the rows,
    the rows with a positive unit cost, and exact sums of y = log(unit cost) and y^2 over
    those (`LOGS`, `SQUARES` accumulators, one column per window)."""

    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    n: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    npos: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    s1: np.ndarray = field(default_factory=lambda: LOGS.zeros(0))
    s2: np.ndarray = field(default_factory=lambda: SQUARES.zeros(0))

    def add(
        self, ids: np.ndarray, n: np.ndarray, npos: np.ndarray, s1: np.ndarray, s2: np.ndarray
    ) -> None:
        """Add the windows ``ids`` (sorted, unique) with their counts and sums."""
        if ids.size == 0:
            return
        at = np.searchsorted(self.ids, ids)
        if self.ids.size == 0 or at.max() >= self.ids.size or (self.ids[at] != ids).any():
            union = np.union1d(self.ids, ids)
            where = np.searchsorted(union, self.ids)
            grown = Windows(
                union,
                np.zeros(union.size, dtype=np.int64),
                np.zeros(union.size, dtype=np.int64),
                LOGS.zeros(union.size),
                SQUARES.zeros(union.size),
            )
            grown.n[where] = self.n
            grown.npos[where] = self.npos
            grown.s1[:, where] = self.s1
            grown.s2[:, where] = self.s2
            self.ids, self.n, self.npos, self.s1, self.s2 = (
                grown.ids, grown.n, grown.npos, grown.s1, grown.s2,
            )  # fmt: skip
            at = np.searchsorted(self.ids, ids)
        self.n[at] += n
        self.npos[at] += npos
        # (fancy indexing gives copies: the normalised columns are written back)
        self.s1[:, at] = normalise(self.s1[:, at] + s1)
        self.s2[:, at] = normalise(self.s2[:, at] + s2)

    def merge(self, other: Windows) -> None:
        self.add(other.ids, other.n, other.npos, other.s1, other.s2)


@dataclass
class ClassSummary:
    """Everything kept of one class (see the module docstring).

    The top values, the sample and the smallest unit costs are buffers trimmed lazily (when
    they reach twice their size), so that a batch costs O(rows); a trimmed buffer remembers
    the bound below (above) which no new value can enter. `sorted_top`, `trim_sample` and
    `smallest_units` give them exactly."""

    n: int = 0
    sums: dict[str, np.ndarray] = field(default_factory=dict)  # VALUES accumulators
    top: dict[str, np.ndarray] = field(default_factory=dict)  # the largest values (>= TOP_ROWS)
    top_floor: dict[str, float] = field(default_factory=dict)  # values <= this cannot enter
    at_max: dict[str, tuple[float, int]] = field(default_factory=dict)  # largest, rows at it
    prio: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    pos: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    data: np.ndarray | None = None  # sample rows x spec.fields
    prio_ceiling: int | None = None  # priorities >= this cannot enter the sample
    _pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    _pending_rows: int = 0
    low: np.ndarray = field(default_factory=lambda: np.zeros(0))  # smallest positive units
    low_window: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    low_ceiling: float = math.inf  # unit costs >= this cannot enter
    windows: Windows = field(default_factory=Windows)
    hours: np.ndarray = field(default_factory=lambda: np.zeros(24, dtype=np.int64))
    errors: int = 0
    retries: np.ndarray = field(default_factory=lambda: np.zeros(RETRY_BINS, dtype=np.int64))
    cold: int = 0

    # -- the top values ----------------------------------------------------------------------

    def add_top(self, q: str, values: np.ndarray, at_max: tuple[float, int] | None = None) -> None:
        """Add values above ``top_floor`` (a batch's), or another summary's buffer with its
        ``at_max``. Every row at the largest value is counted (``at_max``): a row at it
        enters the buffer unless the floor has reached it (`saturated`), when `summarize`
        counts the rows its filter left out."""
        if values.size == 0:
            return
        if at_max is None:  # rows of a batch: count those at the largest so far
            old = self.at_max.get(q)
            largest = float(values.max())
            if old is not None and old[0] > largest:
                largest = old[0]
            at_max = (largest, int(np.count_nonzero(values == largest)))
        self._count_max(q, *at_max)
        buf = self.top.get(q)
        merged = values if buf is None else np.concatenate([buf, values])
        if merged.size >= 2 * TOP_ROWS:
            merged = np.partition(merged, merged.size - TOP_ROWS)[merged.size - TOP_ROWS :]
            self.top_floor[q] = float(merged.min())
        self.top[q] = merged

    def _count_max(self, q: str, largest: float, count: int) -> None:
        old = self.at_max.get(q)
        if old is None or largest > old[0]:
            self.at_max[q] = (largest, count)
        elif largest == old[0]:
            self.at_max[q] = (largest, old[1] + count)

    def saturated(self, q: str) -> float | None:
        """The largest value when the floor has reached it (its rows no longer enter)."""
        floor = self.top_floor.get(q)
        at = self.at_max.get(q)
        return floor if floor is not None and at is not None and floor == at[0] else None

    def sorted_top(self, q: str) -> np.ndarray:
        """The ``min(n, TOP_ROWS)`` largest values, ascending."""
        return np.sort(self._top(q))

    def _top(self, q: str) -> np.ndarray:
        buf = self.top[q]
        if buf.size > TOP_ROWS:
            buf = np.partition(buf, buf.size - TOP_ROWS)[buf.size - TOP_ROWS :]
        return buf

    def trim(self, k: int) -> None:
        """Trim every buffer to what the fit reads: the sample to ``k`` rows, the top values
        and the smallest unit costs to `TOP_ROWS` and `LOW_ROWS` (the same values `sorted_top`
        and `smallest_units` give, now kept: a summary sent to another process is read there
        as it is, whatever that process's constants)."""
        self.trim_sample(k)
        for q in self.top:
            top = self._top(q)
            if top.size < self.top[q].size:
                self.top[q] = top
                self.top_floor[q] = max(self.top_floor.get(q, -math.inf), float(top.min()))
        low, windows, _ = self.smallest_units()
        if low.size < self.low.size:
            self.low, self.low_window = low, windows
            self.low_ceiling = min(self.low_ceiling, float(low.max()))

    # -- the sample --------------------------------------------------------------------------

    def add_sample(self, prio: np.ndarray, pos: np.ndarray, data: np.ndarray, k: int) -> None:
        self._pending.append((prio, pos, data))
        self._pending_rows += prio.size
        if self.prio.size + self._pending_rows >= 2 * k:
            self.trim_sample(k)

    def _gather(self) -> None:
        """Concatenate the rows added since the last trim."""
        if not self._pending:
            return
        parts = [(self.prio, self.pos, self.data)] if self.data is not None else []
        parts += self._pending
        self.prio = np.concatenate([p[0] for p in parts])
        self.pos = np.concatenate([p[1] for p in parts])
        self.data = np.concatenate([p[2] for p in parts])
        self._pending, self._pending_rows = [], 0

    def trim_sample(self, k: int) -> None:
        """Keep the ``k`` rows of smallest priority."""
        self._gather()
        if self.prio.size > k:
            keep = np.argpartition(self.prio, k - 1)[:k]
            assert self.data is not None
            self.prio, self.pos, self.data = self.prio[keep], self.pos[keep], self.data[keep]
        elif self.prio.size < k or self.prio_ceiling is not None:
            return
        ceiling = int(self.prio.max())
        if self.prio_ceiling is None or ceiling < self.prio_ceiling:
            self.prio_ceiling = ceiling

    # -- the smallest unit costs ---------------------------------------------------------------

    def add_low(self, values: np.ndarray, windows: np.ndarray) -> None:
        values = np.concatenate([self.low, values])
        windows = np.concatenate([self.low_window, windows])
        if values.size >= 2 * LOW_ROWS:
            keep = np.argpartition(values, LOW_ROWS - 1)[:LOW_ROWS]
            values, windows = values[keep], windows[keep]
            self.low_ceiling = min(self.low_ceiling, float(values.max()))
        self.low, self.low_window = values, windows

    def smallest_units(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """The `LOW_ROWS` smallest positive unit costs and their windows, and whether more
        positive unit costs exist (all above the largest of these)."""
        values, windows = self.low, self.low_window
        if values.size > LOW_ROWS:
            keep = np.argpartition(values, LOW_ROWS - 1)[:LOW_ROWS]
            return values[keep], windows[keep], True
        return values, windows, math.isfinite(self.low_ceiling)

    def add_sum(self, key: str, acc: np.ndarray) -> None:
        mine = self.sums.get(key)
        self.sums[key] = acc.copy() if mine is None else normalise(mine + acc)

    # -- merge ------------------------------------------------------------------------------

    def merge(self, other: ClassSummary, k: int) -> None:
        self.n += other.n
        for key, acc in other.sums.items():
            self.add_sum(key, acc)
        for q, values in other.top.items():
            self.add_top(q, values, other.at_max[q])
            floor = other.top_floor.get(q)
            if floor is not None:
                self.top_floor[q] = max(self.top_floor.get(q, -math.inf), floor)
        other._gather()
        if other.data is not None:
            self.add_sample(other.prio, other.pos, other.data, k)
        if other.prio_ceiling is not None:
            mine = self.prio_ceiling
            self.prio_ceiling = (
                other.prio_ceiling if mine is None else min(mine, other.prio_ceiling)
            )
        if other.low.size:
            self.add_low(other.low, other.low_window)
        self.low_ceiling = min(self.low_ceiling, other.low_ceiling)
        self.windows.merge(other.windows)
        self.hours += other.hours
        self.errors += other.errors
        self.retries += other.retries
        self.cold += other.cold

    def sample(self, fields: Sequence[str]) -> dict[str, np.ndarray]:
        """The sample's rows in log order, per field."""
        self._gather()
        if self.data is None:
            return {f: np.zeros(0) for f in fields}
        order = np.argsort(self.pos, kind="stable")
        data = self.data[order]
        return {f: np.ascontiguousarray(data[:, i]) for i, f in enumerate(fields)}

    def sample_first(self, rows: int, fields: Sequence[str]) -> dict[str, np.ndarray]:
        """The ``rows`` sampled rows of smallest priority (a sample of the sample), in log
        order, per field."""
        self._gather()
        if self.data is None or self.prio.size <= rows:
            return self.sample(fields)
        keep = np.argpartition(self.prio, rows - 1)[:rows]
        keep = keep[np.argsort(self.pos[keep], kind="stable")]
        return {f: self.data[keep, i] for i, f in enumerate(fields)}


@dataclass
class LogSummary:
    """The summary of a log, or of a part of it (see the module docstring)."""

    spec: SummarySpec
    classes: dict[str, ClassSummary] = field(default_factory=dict)
    rows_read: int = 0  # rows read, invalid ones included
    t_min: float = math.inf
    t_max: float = -math.inf
    weekdays: np.ndarray = field(default_factory=lambda: np.zeros(7, dtype=np.int64))
    conc_top: np.ndarray = field(default_factory=lambda: np.zeros(0))
    conc_floor: float = -math.inf  # costs <= this cannot enter conc_top
    conc_count: np.ndarray = field(default_factory=lambda: np.zeros(HIST_BINS, dtype=np.int64))
    ceilings: Mapping[str, int] = field(default_factory=dict)  # of new classes' samples

    @property
    def n(self) -> int:
        return sum(c.n for c in self.classes.values())

    @property
    def sample_rows(self) -> int:
        return sample_rows_for(len(self.classes), self.spec.sample_rows)

    def merge(self, other: LogSummary) -> None:
        """Add a summary of other rows of the same log (any order gives the same result)."""
        for label in other.classes:
            if label not in self.classes:
                self.classes[label] = ClassSummary()
        if len(self.classes) > MAX_CLASSES:
            raise FitError(too_many_classes(len(self.classes)))
        k = self.sample_rows
        for label, c in other.classes.items():
            self.classes[label].merge(c, k)
        for c in self.classes.values():
            c.trim_sample(k)  # memory: the merged summary holds at most SAMPLE_BUDGET rows
        self.rows_read += other.rows_read
        self.t_min = min(self.t_min, other.t_min)
        self.t_max = max(self.t_max, other.t_max)
        self.weekdays += other.weekdays
        self.add_concentration_top(other.conc_top)
        self.conc_floor = max(self.conc_floor, other.conc_floor)
        self.conc_count += other.conc_count
        cells = sum(c.windows.ids.size for c in self.classes.values())
        if cells > MAX_WINDOW_CELLS:
            raise FitError(
                f"drift: {cells:,} (class, window) cells of {self.spec.base_s:g} s hold "
                f"requests, more than {MAX_WINDOW_CELLS:,}; pass a longer --drift-window "
                "(or check the timestamps)"
            )

    def finish(self) -> None:
        """Trim every class's buffers to what the fit reads (its sample to exactly
        `sample_rows`: `ClassSummary.trim`)."""
        k = self.sample_rows
        for c in self.classes.values():
            c.trim(k)

    def bounds(self) -> Bounds:
        """What this summary (of some rows) tells a summary of other rows: no row of a class
        with a priority at or above its ceiling can enter the merged sample, no cost at or
        below the floor the costliest kept. Items given them return less, the same result."""
        return Bounds(
            {
                label: c.prio_ceiling
                for label, c in self.classes.items()
                if c.prio_ceiling is not None
            },
            self.conc_floor,
        )

    def add_concentration_top(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        merged = np.concatenate([self.conc_top, values])
        if merged.size >= 2 * CONCENTRATION_TOP:
            cut = merged.size - CONCENTRATION_TOP
            merged = np.partition(merged, cut)[cut:]
            self.conc_floor = max(self.conc_floor, float(merged.min()))
        self.conc_top = merged

    def costliest(self) -> np.ndarray:
        """The `CONCENTRATION_TOP` largest costs (all when fewer), descending."""
        top = self.conc_top
        if top.size > CONCENTRATION_TOP:
            cut = top.size - CONCENTRATION_TOP
            top = np.partition(top, cut)[cut:]
        return np.sort(top)[::-1]


@dataclass(frozen=True)
class Bounds:
    """See `LogSummary.bounds`."""

    ceilings: Mapping[str, int] = field(default_factory=dict)
    conc_floor: float = -math.inf

    def summary(self, spec: SummarySpec) -> LogSummary:
        """An empty summary that starts from these bounds."""
        return LogSummary(spec, ceilings=self.ceilings, conc_floor=self.conc_floor)


def too_many_classes(n: int) -> str:
    return (
        f"the log has more than {MAX_CLASSES:,} query classes ({n:,} so far); costsim fits each "
        "class on its own: is the class column the right one? (choose it with --class-col)"
    )


# ---------------------------------------------------------------------------------------------
# Summarising rows
# ---------------------------------------------------------------------------------------------


@dataclass
class Rows:
    """Valid rows to summarise: class codes indexing ``labels``, each row's 0-based position
    in the log, and PilotLog fields (``cost``, ``timestamp``, ``error``, ``retries`` ...)."""

    labels: Sequence[str]
    codes: np.ndarray
    positions: np.ndarray
    values: Mapping[str, np.ndarray | None]


def summarize(summary: LogSummary, rows: Rows) -> None:
    """Add ``rows`` (a chunk of at most 2^21) to ``summary``.

    The rows are put in class order once (a stable radix sort), so that every per-class
    figure is a sum over a contiguous slice (``np.add.reduceat``: fast, and free of the GIL
    for the threads of `costsim.parallel`)."""
    spec = summary.spec
    m = rows.codes.shape[0]
    if m == 0:
        return
    if m > 1 << 21:
        raise ValueError(f"rows: at most 2^21 a chunk, got {m}")
    counts = np.bincount(rows.codes, minlength=len(rows.labels))
    present = np.flatnonzero(counts)
    c_n = present.size
    sizes = counts[present]
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    starts = bounds[:-1]
    if c_n == 1:
        order = None
    else:
        lut = np.zeros(len(rows.labels), dtype=np.int16)
        lut[present] = np.arange(c_n, dtype=np.int16)
        order = np.argsort(lut[rows.codes], kind="stable")

    def gather(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None or order is None else np.asarray(a)[order]

    values = {k: (v if order is None else gather(v)) for k, v in rows.values.items()}
    positions = np.asarray(rows.positions, dtype=np.int64)
    if order is not None:
        positions = positions[order]
    classes = []
    for code in present:
        label = rows.labels[int(code)]
        if label not in summary.classes:
            summary.classes[label] = ClassSummary(prio_ceiling=summary.ceilings.get(label))
            if len(summary.classes) > MAX_CLASSES:
                raise FitError(too_many_classes(len(summary.classes)))
        classes.append(summary.classes[label])
    for c, size in zip(classes, sizes, strict=True):
        c.n += int(size)
    slices = [(i, int(bounds[i]), int(bounds[i + 1])) for i in range(c_n)]

    qs = quantity_arrays(values)
    unit = unit_measure(values)

    def add_sums(key: str, x: np.ndarray) -> None:
        acc = VALUES.reduce(x, starts)
        for i, c in enumerate(classes):
            c.add_sum(key, acc[:, i])

    def per_class(flags: np.ndarray) -> np.ndarray:
        return np.add.reduceat(flags.view(np.int8), starts, dtype=np.int64)

    # sums and counts
    for q in spec.quantities:
        add_sums(q, qs[q])
    retries = values.get("retries")
    cost = values.get("cost")
    if retries is not None:
        r = np.asarray(retries, dtype=np.float64)
        add_sums("retries", r)
        if cost is not None:
            add_sums("retry_cost", cost * r / (1.0 + r))
        slot = np.repeat(np.arange(c_n), sizes)
        binned = np.bincount(
            slot * RETRY_BINS + np.minimum(retries, RETRY_BINS - 1), minlength=c_n * RETRY_BINS
        ).reshape(c_n, RETRY_BINS)
        for i, c in enumerate(classes):
            c.retries += binned[i]
    cold = values.get("cold_start")
    if cold is not None:
        n_cold = per_class(cold)
        for i, c in enumerate(classes):
            c.cold += int(n_cold[i])
        if cost is not None:
            add_sums("cold_cost", np.where(cold, cost, 0.0))
    error = values.get("error")
    if error is not None:
        n_err = per_class(error)
        for i, c in enumerate(classes):
            c.errors += int(n_err[i])

    # tails: the top values, every row at the largest counted
    for q in spec.quantities:
        x = qs[q]
        for i, a, b in slices:
            c = classes[i]
            part = x[a:b]
            floor = c.top_floor.get(q)
            # when the floor has reached the largest value, rows at it no longer enter: count
            full = c.saturated(q)
            c.add_top(q, part if floor is None else part[part > floor])
            if full is not None:
                extra = int(np.count_nonzero(part == full))
                if extra:
                    c._count_max(q, full, extra)

    # the sample
    k = spec.sample_rows
    prio = priorities(positions, spec.key)
    columns = []
    for f in spec.fields:
        if f == "unit":
            assert unit is not None
            columns.append(unit)
        elif f == "cold":
            columns.append(np.asarray(values["cold_start"]).astype(np.float64))
        else:
            columns.append(qs[f])
    for i, a, b in slices:
        c = classes[i]
        if c.prio_ceiling is None:
            idx: slice | np.ndarray = slice(a, b)
        else:
            idx = np.flatnonzero(prio[a:b] < np.uint64(c.prio_ceiling)) + a
        data = np.column_stack([col[idx] for col in columns])
        if data.shape[0]:
            c.add_sample(prio[idx], positions[idx], data, k)

    # time: drift windows, hours of day, days of week
    t = values.get("timestamp")
    hour: np.ndarray | None = None
    if t is not None:
        t = np.asarray(t, dtype=np.float64)
        summary.t_min = min(summary.t_min, float(t.min()))
        summary.t_max = max(summary.t_max, float(t.max()))
        hour = np.floor(t / 3600.0).astype(np.int64)
        slot = np.repeat(np.arange(c_n), sizes)
        by_hour = np.bincount(slot * 24 + hour % 24, minlength=c_n * 24).reshape(c_n, 24)
        for i, c in enumerate(classes):
            c.hours += by_hour[i]
        # epoch 0 was a Thursday: shifted so that bin 0 is Monday
        summary.weekdays += np.bincount((hour + 72) // 24 % 7, minlength=7)
    if unit is not None:
        if t is None or not spec.has_time:
            wid = np.zeros(m, dtype=np.int64)
        elif spec.base_s == 3600.0 and hour is not None:
            wid = hour
        else:
            wid = np.floor(t / spec.base_s).astype(np.int64)
        positive = unit > 0
        for i, a, b in slices:
            c = classes[i]
            part = unit[a:b]
            low = np.flatnonzero((part < c.low_ceiling) & positive[a:b])
            if low.size:
                c.add_low(part[low], wid[a:b][low])
        _add_windows(classes, sizes, wid, unit, positive)

    # concentration
    if cost is not None:
        summary.add_concentration_top(cost[cost > summary.conc_floor])
        summary.conc_count += np.bincount(cost_bins(cost), minlength=HIST_BINS)


def cost_bins(cost: np.ndarray) -> np.ndarray:
    """Histogram bin of each cost: 0 for 0, 1 below 2^HIST_LOW, then 1/128 octaves."""
    with np.errstate(divide="ignore"):
        octave = np.floor(np.log2(cost) * HIST_PER_OCTAVE)
    b = np.clip(octave - HIST_LOW * HIST_PER_OCTAVE, -1, HIST_BINS - 3) + 2
    return np.where(cost > 0, b, 0).astype(np.int64)


def bin_centres() -> np.ndarray:
    """The cost each histogram bin stands for: its geometric centre (0 for the first two)."""
    b = np.arange(HIST_BINS - 2, dtype=np.float64)
    centre = np.exp2((b + 0.5) / HIST_PER_OCTAVE + HIST_LOW)
    return np.concatenate([[0.0, 0.0], centre])


def _add_windows(
    classes: list[ClassSummary],
    sizes: np.ndarray,
    wid: np.ndarray,
    unit: np.ndarray,
    positive: np.ndarray,
) -> None:
    """Per (class, window) cell of the chunk (rows in class order): rows, positive rows, exact
    sums of y = log(unit cost) and y^2 over the positive ones."""
    m = wid.size
    c_n = sizes.size
    slot = np.repeat(np.arange(c_n), sizes)
    w0 = int(wid.min())
    span = int(wid.max()) - w0 + 1
    key = slot * span + (wid - w0)
    y = np.zeros(m)
    np.log(unit, out=y, where=positive)
    change = np.flatnonzero(key[1:] != key[:-1]) + 1
    if change.size > m // 8:  # rows out of time order: sort them by cell
        order = np.argsort(key, kind="stable")
        key, y, positive = key[order], y[order], positive[order]
        change = np.flatnonzero(key[1:] != key[:-1]) + 1
    starts = np.concatenate([[0], change])
    run_key = key[starts]
    n = np.diff(np.concatenate([starts, [m]]))
    npos = np.add.reduceat(positive.view(np.int8), starts, dtype=np.int64)
    s1 = LOGS.reduce(y, starts, nonnegative=False)
    s2 = SQUARES.reduce(y * y, starts)
    cells, inverse = np.unique(run_key, return_inverse=True)
    if cells.size < run_key.size:  # a cell in several runs: add them up
        n = np.bincount(inverse, weights=n, minlength=cells.size).astype(np.int64)
        npos = np.bincount(inverse, weights=npos, minlength=cells.size).astype(np.int64)
        s1, s2 = _add_columns(s1, inverse, cells.size), _add_columns(s2, inverse, cells.size)
    slot_of = cells // span
    bounds = np.searchsorted(slot_of, np.arange(c_n + 1))
    for i in range(c_n):
        a, b = bounds[i], bounds[i + 1]
        if b > a:
            ids = cells[a:b] - slot_of[a:b] * span + w0
            classes[i].windows.add(ids, n[a:b], npos[a:b], s1[:, a:b], s2[:, a:b])


def _add_columns(acc: np.ndarray, inverse: np.ndarray, cells: int) -> np.ndarray:
    out = np.zeros((acc.shape[0], cells), dtype=np.int64)
    for j in range(acc.shape[0]):
        np.add.at(out[j], inverse, acc[j])
    return normalise(out)


# ---------------------------------------------------------------------------------------------
# The drift's floor
# ---------------------------------------------------------------------------------------------

FLOOR_FRACTION = 1e-3  # unit costs below this fraction of the median are floored (log of 0)


def drift_floor(c: ClassSummary, spec: SummarySpec) -> float | None:
    """A thousandth of the class's median positive unit cost (of its sample: exact while the
    class fits it); None without a positive unit cost."""
    c._gather()
    if c.data is None:
        return None
    column = spec.fields.index("cost_usd" if "cost_usd" in spec.fields else "unit")
    units = c.data[:, column]
    positive = units[units > 0]
    if positive.size == 0:
        low, _, _ = c.smallest_units()
        if low.size == 0:
            return None
        positive = low
    return FLOOR_FRACTION * float(np.median(positive))


def floors_to_sum(summary: LogSummary) -> dict[str, float]:
    """The classes whose positive unit costs below the floor are not all among the smallest
    kept (more than `LOW_ROWS` of them), with their floors: their rows are read again
    (`floor_sums`). Rare: a class with that many costs a thousand times below its median."""
    out: dict[str, float] = {}
    for label, c in summary.classes.items():
        low, _, more = c.smallest_units()
        floor = drift_floor(c, summary.spec)
        if more and floor is not None and floor > float(low.max()):
            out[label] = floor
    return out


def add_below_floor(
    acc: dict[str, Windows], rows: Rows, base_s: float, floors: Mapping[str, float]
) -> None:
    """Per (class, window): the rows with a positive unit cost below the class's floor, and
    exact sums of their y and y^2 (a `Windows`, ``npos`` unused)."""
    unit = unit_measure(rows.values)
    if unit is None or rows.codes.size == 0:
        return
    lut = np.array([floors.get(label, 0.0) for label in rows.labels])
    below = (unit > 0) & (unit < lut[rows.codes])
    if not below.any():
        return
    t = rows.values.get("timestamp")
    wid = np.zeros(rows.codes.size, dtype=np.int64) if t is None else (t // base_s).astype(np.int64)
    codes, wid, y = rows.codes[below], wid[below], np.log(unit[below])
    for code in np.unique(codes):
        mine = codes == code
        ids, inverse, n = np.unique(wid[mine], return_inverse=True, return_counts=True)
        ym = y[mine]
        windows = acc.setdefault(rows.labels[int(code)], Windows())
        windows.add(
            ids,
            n,
            np.zeros(ids.size, dtype=np.int64),
            LOGS.sums(ym, inverse, ids.size, nonnegative=False),
            SQUARES.sums(ym * ym, inverse, ids.size),
        )


def merge_below_floor(total: dict[str, Windows], part: dict[str, Windows]) -> None:
    for label, windows in part.items():
        total.setdefault(label, Windows()).merge(windows)


# ---------------------------------------------------------------------------------------------
# Work items: parts of a streamed log, parts of a log in memory
# ---------------------------------------------------------------------------------------------


@dataclass
class ItemResult:
    """What a work item of a streamed log returns: its rows' summary (valid rows only), the
    problems found, and what was learnt of the timestamps."""

    summary: LogSummary
    rows: int
    invalid: int
    issues: Issues
    times: Timestamps


@dataclass(frozen=True)
class StreamJob:
    """What every item of a streamed fit shares: the log, the spec, whether invalid rows
    are dropped (else, once one is found, rows are only checked, not summarised), and the
    bounds the summary of the items merged so far sets (`Bounds`)."""

    log: LogSource
    spec: SummarySpec
    drop_invalid: bool
    bounds: Bounds = field(default_factory=lambda: Bounds())


def summarize_item(job: StreamJob, item: ScanItem) -> ItemResult:
    """Read, check and summarise one item of a streamed log (run by `costsim.parallel`)."""
    summary = job.bounds.summary(job.spec)
    issues = Issues()
    reader = ItemReader(job.log, item)
    rows = invalid = 0
    for chunk in reader:
        rows += chunk.rows
        bad = _check(chunk, issues)
        n_bad = 0 if bad is None else int(np.count_nonzero(bad))
        invalid += n_bad
        if invalid and not job.drop_invalid:
            continue  # the fit will fail: only count and list the problems
        summarize(summary, chunk_rows(chunk, bad))
    for c in summary.classes.values():
        c.trim_sample(job.spec.sample_rows)  # what travels back: at most k rows a class
    summary.rows_read = rows
    return ItemResult(summary, rows, invalid, issues, reader.times)


def _check(chunk: Chunk, issues: Issues) -> np.ndarray | None:
    bad: np.ndarray | None = None
    for role, name, _, problems in chunk.columns:
        mask = issues.add(role, name, problems, chunk.offset)
        if mask is not None:
            bad = mask if bad is None else (bad | mask)
    return bad


def chunk_rows(chunk: Chunk, bad: np.ndarray | None) -> Rows:
    """The valid rows of a chunk, as `Rows`."""
    keep = None if bad is None else ~bad
    values: dict[str, np.ndarray | None] = {}
    codes: np.ndarray | None = None
    for role, _, v, _ in chunk.columns:
        v = v if keep is None else v[keep]
        if role.output == "class_index":
            codes = v
        else:
            values[role.output] = v
    assert codes is not None
    positions = np.arange(chunk.offset, chunk.offset + chunk.rows, dtype=np.int64)
    if keep is not None:
        positions = positions[keep]
    return Rows(chunk.labels, codes, positions, values)


#: rows of an in-memory log summarised at a time, and per work item
MEMORY_CHUNK_ROWS = 1 << 18
MEMORY_ITEM_ROWS = 1 << 20
_LOG_VALUES = (
    "cost", "input_tokens", "output_tokens", "cached_input_tokens", "timestamp", "latency_ms",
    "error", "retries", "cold_start", "calls",
)  # fmt: skip


@dataclass(frozen=True)
class MemoryJob:
    log: PilotLog
    spec: SummarySpec
    bounds: Bounds = field(default_factory=lambda: Bounds())


def summarize_range(job: MemoryJob, span: tuple[int, int]) -> LogSummary:
    """Summarise rows [a, b) of a log in memory (run by `costsim.parallel`); row i is at
    position i of the log."""
    log = job.log
    summary = job.bounds.summary(job.spec)
    a, b = span
    for start in range(a, b, MEMORY_CHUNK_ROWS):
        stop = min(start + MEMORY_CHUNK_ROWS, b)
        values = {name: _slice(getattr(log, name), start, stop) for name in _LOG_VALUES}
        rows = Rows(
            log.classes,
            log.class_index[start:stop],
            np.arange(start, stop, dtype=np.int64),
            values,
        )
        summarize(summary, rows)
    for c in summary.classes.values():
        c.trim_sample(job.spec.sample_rows)
    summary.rows_read = b - a
    return summary


def _slice(a: np.ndarray | None, start: int, stop: int) -> np.ndarray | None:
    return None if a is None else a[start:stop]


def memory_items(n: int) -> list[tuple[int, int]]:
    return [(a, min(a + MEMORY_ITEM_ROWS, n)) for a in range(0, n, MEMORY_ITEM_ROWS)]


def present_fields(log: PilotLog) -> list[str]:
    return [name for name in _LOG_VALUES if getattr(log, name) is not None]


def role_fields(log: LogSource) -> list[str]:
    return [role.output for role, _ in log.roles if role.output != "class_index"]


@dataclass(frozen=True)
class FloorJob:
    """A second pass over a log (streamed, or in memory) for `add_below_floor`."""

    log: LogSource | PilotLog
    base_s: float
    floors: Mapping[str, float]


def floor_item(job: FloorJob, item: ScanItem) -> dict[str, Windows]:
    """`add_below_floor` over one item of a streamed log (its valid rows, as in the fit)."""
    assert isinstance(job.log, LogSource)
    acc: dict[str, Windows] = {}
    for chunk in ItemReader(job.log, item):
        bad = _check(chunk, Issues())
        add_below_floor(acc, chunk_rows(chunk, bad), job.base_s, job.floors)
    return acc


def floor_range(job: FloorJob, span: tuple[int, int]) -> dict[str, Windows]:
    """`add_below_floor` over rows [a, b) of a log in memory."""
    log = job.log
    assert isinstance(log, PilotLog)
    acc: dict[str, Windows] = {}
    for start in range(span[0], span[1], MEMORY_CHUNK_ROWS):
        stop = min(start + MEMORY_CHUNK_ROWS, span[1])
        values = {name: _slice(getattr(log, name), start, stop) for name in _LOG_VALUES}
        rows = Rows(log.classes, log.class_index[start:stop], np.arange(start, stop), values)
        add_below_floor(acc, rows, job.base_s, job.floors)
    return acc
