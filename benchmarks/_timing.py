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


def malloc_as_the_cli() -> str:
    """Tune malloc as `costsim` on the command line does (`costsim.memory.tune_malloc`), so
    that the figures are the command's; ``COSTSIM_MALLOC=default`` leaves it as it is. A line
    saying which, for the report."""
    from costsim.memory import tune_malloc

    if tune_malloc():
        return "malloc     tuned as the command line does (COSTSIM_MALLOC=default: untuned)"
    return "malloc     as it is (untuned)"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"
