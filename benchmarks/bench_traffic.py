"""Benchmark the traffic layer: load- and rise-dependent multipliers, and whole chunks of trials,
against the kernels they replaced.

    python benchmarks/bench_traffic.py [--trials 2000] [--repeats 3] [--quick]

Loads ``scenarios/launch_month.yaml`` with retries as in bench_forecast.py (error_rate 0.02,
max_attempts 3, load_exponent 1; the scenario's spike_cold_share 0.3) and, in this process, on
four shapes of issue 11 (30 d at 1 h; 365 d at 1 h; 30 d at 1 min; 200 classes, the bundled
model's six repeated under new names, each repeat taking its share of the traffic):

1. ``prepare``, whose reliability norms changed;
2. ``multipliers`` on one chunk of trials, with every driver on;
3. ``simulate`` (``--trials`` trials, one worker): traffic, multipliers and the stratified
   engine.

Each against the frozen reference kernels of ``tests/test_fast_kernels.py`` (the same numbers;
the tests check it), swapped into ``costsim.simulate.forecast`` for 1 and 3: the traffic layer's.
(The engine's strata and sums were redesigned since, with other numbers; ``bench_scale.py`` times
the whole forecast.) Timings are CPU seconds of
this process (``time.process_time``), BLAS on one thread: other work on the machine moves
them less than wall-clock time. Best of ``--repeats`` after one warm-up; the reference, slow at
1-minute resolution, runs once after its warm-up.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads BLAS

import numpy as np
from _models import many_classes
from bench_forecast import SCENARIO, scenario_at

from costsim.model.file import load_model
from costsim.model.fit import FittedModel
from costsim.scenario import Scenario, load_scenario
from costsim.simulate import chunks, reliability
from costsim.simulate import prepare as prepare_module
from costsim.simulate.chunks import chunk_traffic, simulate
from costsim.simulate.prepare import prepare
from costsim.simulate.reliability import multipliers
from costsim.simulate.traffic import ALL_DRIVERS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_fast_kernels as frozen

REFERENCE = [  # where the simulation looks each kernel up, and the frozen kernel it was
    (chunks, "multipliers", frozen.ref_multipliers),
    (chunks, "draw_traffic", frozen.ref_draw_traffic),
    (prepare_module, "with_norms", frozen.ref_with_norms),
    (reliability, "with_norms", frozen.ref_with_norms),
]


def best_cpu(fn: Callable[[], object], repeats: int) -> float:
    """One warm-up call, then the least CPU time (process_time) of ``repeats`` calls."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


@contextlib.contextmanager
def reference_kernels() -> Iterator[None]:
    """The simulation running on the frozen kernels."""
    saved = [(module, name, getattr(module, name)) for module, name, _ in REFERENCE]
    for module, name, fn in REFERENCE:
        setattr(module, name, fn)
    try:
        yield
    finally:
        for module, name, fn in saved:
            setattr(module, name, fn)


def shapes(
    base: Scenario, model: FittedModel, trials: int
) -> list[tuple[str, Scenario, FittedModel]]:
    sc = scenario_at(base, 1e7, trials)
    return [
        ("30 d at 1 h", sc, model),
        ("365 d at 1 h", replace(sc, horizon=365 * 86400.0), model),
        ("30 d at 1 min", replace(sc, resolution=60.0), model),
        ("200 classes", sc, many_classes(model, 200)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000, help="trials of part 3")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="500 trials, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.repeats = min(args.trials, 500), 1
    base = load_scenario(SCENARIO)
    assert base.model_path is not None
    model = load_model(base.model_path)
    chunk = min(args.trials, chunks.CHUNK_TRIALS)
    print(f"scenario   {SCENARIO.name} with retries rising with load (bench_forecast.py)")
    print(
        f"timing     CPU seconds, best of {args.repeats} after a warm-up (reference: once); "
        f"multipliers on {chunk:,} trials, simulate on {args.trials:,}"
    )
    if args.quick:
        print("NOTE       --quick: fewer trials and repeats; the ratios are indicative")
    print(f"\n   {'shape':<15}{'part':<13}{'new':>10}{'reference':>12}{'new/ref':>9}")
    for label, sc, m in shapes(base, model, args.trials):
        t_prep = best_cpu(partial(prepare, sc, m), args.repeats)
        with reference_kernels():
            r_prep = best_cpu(partial(prepare, sc, m), 1)
        prep = prepare(sc, m)
        traffic = chunk_traffic(prep, 0, chunk)
        rows = np.random.default_rng(0).integers(1, 201, (chunk, len(prep.classes)))
        args_mult = (prep.plan, sc.reliability, prep.reliability, traffic, ALL_DRIVERS, rows)
        t_mult = best_cpu(partial(multipliers, *args_mult), args.repeats)
        r_mult = best_cpu(partial(frozen.ref_multipliers, *args_mult), 1)
        t_sim = best_cpu(partial(simulate, prep), args.repeats)
        with reference_kernels():
            r_sim = best_cpu(partial(simulate, prep), 1)
        for part, new, ref in (
            ("prepare", t_prep, r_prep),
            ("multipliers", t_mult, r_mult),
            ("simulate", t_sim, r_sim),
        ):
            print(f"   {label:<15}{part:<13}{new:>9.3f}s{ref:>11.3f}s{new / ref:>9.3f}")
            label = ""


if __name__ == "__main__":
    main()
