"""Timing helpers shared by the benchmark scripts (run as `python benchmarks/<script>.py`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence


def best_of(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """One warm-up call, then the best wall time (perf_counter) of ``repeats`` calls."""
    result = fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def best_of_alternating(
    fns: Sequence[Callable[[], object]], repeats: int, warm_up: bool = True
) -> list[tuple[float, object]]:
    """`best_of` of several functions, their calls taking turns (a, b, a, b, ...): a ratio of
    their times then compares calls made under the same state of a shared machine, not one
    function's block of calls against another's a minute later. ``warm_up``: one call of each
    first, untimed."""
    results: list[object] = [fn() for fn in fns] if warm_up else [None] * len(fns)
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            results[i] = fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return list(zip(best, results, strict=True))


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
