"""The benchmarks' hooks into the code stay attached. `bench_traffic.py` times the simulation
on the frozen kernels of ``tests/test_fast_kernels.py`` by putting them where the simulation
looks its kernels up; after the stages were split that place had moved and the benchmark
failed, unnoticed (the benchmarks are not run by the tests: they take minutes)."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def bench_traffic() -> ModuleType:
    """The module, imported without keeping its change to the environment (it pins BLAS to one
    thread for its own runs)."""
    before = os.environ.get("OPENBLAS_NUM_THREADS")
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("bench_traffic")
    finally:
        sys.path.remove(str(BENCHMARKS))
        if before is None:
            os.environ.pop("OPENBLAS_NUM_THREADS", None)
        else:
            os.environ["OPENBLAS_NUM_THREADS"] = before


def test_the_frozen_kernels_go_where_the_simulation_calls_its_own() -> None:
    bench = bench_traffic()
    assert bench.REFERENCE
    for module, name, frozen in bench.REFERENCE:
        current = getattr(module, name)  # the name the simulation calls in that module
        assert list(inspect.signature(current).parameters) == list(
            inspect.signature(frozen).parameters
        ), f"{module.__name__}.{name}"
    originals = [getattr(module, name) for module, name, _ in bench.REFERENCE]
    with bench.reference_kernels():
        assert all(getattr(m, n) is f for m, n, f in bench.REFERENCE)
    assert [getattr(m, n) for m, n, _ in bench.REFERENCE] == originals
