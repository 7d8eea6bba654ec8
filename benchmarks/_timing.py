"""Timing helpers shared by the benchmark scripts (run as `python benchmarks/<script>.py`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

R = TypeVar("R")


def best_of(fn: Callable[[], R], repeats: int) -> tuple[float, R]:
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


# ---------------------------------------------------------------------------------------------
# The machine itself: fixed workloads that involve no costsim code
# ---------------------------------------------------------------------------------------------

_A = np.random.default_rng(0).random(2_000_000)  # 16 MB


def python_loop() -> None:
    """The interpreter alone (what a fit's many small calls mostly are)."""
    sum(range(1_000_000))


def numpy_memory() -> None:
    """Memory-bound numpy: a + 1 over 16 MB arrays, 20 times (what most of a forecast is)."""
    out = np.empty_like(_A)
    for _ in range(20):
        np.add(_A, 1.0, out=out)


def numpy_compute() -> None:
    """Compute-bound numpy: exp(sin(a)) over 2M values, 3 times."""
    out = np.empty_like(_A)
    for _ in range(3):
        np.exp(np.sin(_A, out=out), out=out)


REFERENCE_WORKLOADS = {
    "Python loop": python_loop,
    "numpy memory": numpy_memory,
    "numpy compute": numpy_compute,
}


def machine_speed(repeats: int = 5) -> str:
    """One core's time on `REFERENCE_WORKLOADS` (best of ``repeats``), as a line for the
    report. The development machine differs from session to session (the same code has run
    1.5-2x slower on one than on another): these figures, taken in the same run, say how fast
    this one was, so that times from different runs can be compared."""
    times = [best_of(job, repeats)[0] for job in REFERENCE_WORKLOADS.values()]
    return "machine    one core: " + ", ".join(
        f"{label} {t * 1e3:.1f} ms" for label, t in zip(REFERENCE_WORKLOADS, times, strict=True)
    )
