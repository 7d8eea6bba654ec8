"""One class's summary (`ClassSummary`): its counts, exact sums, top values, sample and
drift windows (`Windows`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import limits
from .exact import LOGS, SQUARES, normalise
from .spec import RETRY_BINS


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
    """Everything kept of one class (see `costsim.model.summaries`).

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
        if merged.size >= 2 * limits.TOP_ROWS:
            merged = np.partition(merged, merged.size - limits.TOP_ROWS)[
                merged.size - limits.TOP_ROWS :
            ]
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
        if buf.size > limits.TOP_ROWS:
            buf = np.partition(buf, buf.size - limits.TOP_ROWS)[buf.size - limits.TOP_ROWS :]
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
        if values.size >= 2 * limits.LOW_ROWS:
            keep = np.argpartition(values, limits.LOW_ROWS - 1)[: limits.LOW_ROWS]
            values, windows = values[keep], windows[keep]
            self.low_ceiling = min(self.low_ceiling, float(values.max()))
        self.low, self.low_window = values, windows

    def smallest_units(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """The `LOW_ROWS` smallest positive unit costs and their windows, and whether more
        positive unit costs exist (all above the largest of these)."""
        values, windows = self.low, self.low_window
        if values.size > limits.LOW_ROWS:
            keep = np.argpartition(values, limits.LOW_ROWS - 1)[: limits.LOW_ROWS]
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
