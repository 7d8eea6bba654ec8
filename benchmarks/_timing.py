"""Timing helpers shared by the benchmark scripts (run as `python benchmarks/<script>.py`)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """One warm-up call, then the best wall time (perf_counter) of ``repeats`` calls."""
    result = fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"
