"""What a summary keeps (`SummarySpec`), fixed before the first row is read: the quantities,
the per-row values of the sample and the rows' sampling priorities."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from . import limits

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
HIST_PER_OCTAVE = 128  # bins per factor of 2 of the cost histogram
HIST_LOW, HIST_HIGH = -80, 50  # octaves covered: 2^-80 .. 2^50 (the rest in the end bins)
HIST_BINS = HIST_PER_OCTAVE * (HIST_HIGH - HIST_LOW) + 2  # + zero and below-range bins
RETRY_BINS = 11  # retries 0..9 and "10 or more" (fit.RETRY_PMF_MAX = 10)
_SAMPLE_SPAWN_KEY = 11  # spawn key of the sample's hash key, apart from the fit's streams


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
    cap = limits.SAMPLE_ROWS if cap is None else cap
    return min(cap, max(min(limits.MIN_SAMPLE_ROWS, cap), limits.SAMPLE_BUDGET // max(classes, 1)))


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
    sample_rows: int = (
        limits.SAMPLE_ROWS
    )  # most rows a class keeps (fewer with many: sample_rows_for)

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
        rows = limits.SAMPLE_ROWS if sample_rows is None else sample_rows
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
