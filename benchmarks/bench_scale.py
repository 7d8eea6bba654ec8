"""Benchmark issue 11's forecast targets, every core, and the plain numpy way, in one run.

    python benchmarks/bench_scale.py [--quick] [--repeats 3]

Loads ``scenarios/launch_month.yaml`` (6 classes, 30 d at 1 h, spikes, a launch event, retries
rising with load, cold starts on sudden rises) with retries set as in bench_forecast.py, then:

1. times ``run_forecast`` (with the bridge) on the shapes of the issue's acceptance list, with
   one worker and with every core (worker processes started first and kept, as after a
   program's first long run): 10k trials x 720 h x 6 classes (target 1 s), 365 d at 1 h
   (3 s), 30 d at 1 min (10 s), 1M trials (30 s), 200 classes (5 s; the issue's figure for
   them is the forecast without the bridge, shown with it as well);
2. the speed-up of ``--workers 2`` over ``--workers 1`` (target 1.7x; their runs take turns,
   so that both see the shared machine alike), also as a share of the machine's ceiling on the
   forecast's own work measured just before (section 4), and that the forecast JSON is the
   same bytes;
   beside the one-worker time, ``chunks.expected_seconds``: the estimate of its trials (the
   bridge left out) by which a forecast starts its worker processes early;
3. the speed-up over the plain numpy per-request bootstrap a user would write, at 1e5, 1e6 and
   1e7 requests a trial: ``costs[rng.integers(0, n, size=requests)].sum()`` per trial, timed on
   a few trials and scaled per trial, against costsim's time per trial at the same volume;
4. the machine's own ceiling: the speed-up of every core over one on the same chunk of the
   10k-trial forecast repeated on the worker processes (no serial part, a perfect split: what
   two workers can give at best here, with costsim's own way of sending work), and on threads
   of plain numpy work that holds no lock, memory-bound and compute-bound; and the bound that
   the forecast's own jobs put on the 10k-trial speed-up: their one-worker times laid out on
   every core in their order.

First, one core's time on fixed workloads with no costsim code in them (`_timing.machine_speed`):
the development machine differs from session to session, and these say how fast this one was.

Timings are wall-clock ``time.perf_counter``, best of ``--repeats`` after one warm-up, in this
process. The machine has 2 cores: run it with the other core idle.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from _models import many_classes
from _timing import (
    best_of,
    best_of_alternating,
    machine_speed,
    malloc_as_the_cli,
    numpy_compute,
    numpy_memory,
    verdict,
)

from costsim.logs import read_pilot
from costsim.model.file import load_model
from costsim.model.fit import FittedModel
from costsim.parallel import Parallel, available_cores, one_blas_thread
from costsim.report.forecast import forecast_to_json
from costsim.scenario import Scenario, parse_scenario
from costsim.simulate.bridge import BRIDGE_TRIALS, bridge_steps, cap_sensitive, cap_variants
from costsim.simulate.chunks import Run, _jobs, _run_chunk, _sums_key, expected_seconds
from costsim.simulate.forecast import run_forecast
from costsim.simulate.prepare import prepare
from costsim.simulate.traffic import ALL_DRIVERS

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "launch_month.yaml"
RELIABILITY = {"error_rate": 0.02, "max_attempts": 3}
SPEEDUP_TARGET = 1.7
BOOTSTRAP_VOLUMES = (1e5, 1e6, 1e7)


def scenario(trials: int, **changes: Any) -> Scenario:
    doc = yaml.safe_load(SCENARIO.read_text())
    doc["reliability"] = {**doc["reliability"], **RELIABILITY}
    doc.update(trials=trials, **changes)
    return parse_scenario(doc, SCENARIO, SCENARIO.parent)


def timed(
    sc: Scenario, model: FittedModel, lanes: list[Parallel], repeats: int, bridge: bool
) -> list[tuple[float, str]]:
    """Best wall time and forecast JSON on each of ``lanes``, their runs taking turns."""

    def one_run(parallel: Parallel) -> Callable[[], object]:
        return lambda: run_forecast(sc, model, parallel=parallel, bridge=bridge)

    runs = best_of_alternating([one_run(p) for p in lanes], repeats, warm_up=repeats > 1)
    return [(t, forecast_to_json(fc)) for t, fc in runs]  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repeat, 100k not 1M trials")
    args = parser.parse_args()
    print(malloc_as_the_cli())
    print(machine_speed())
    if args.quick:
        args.repeats = 1
    model = load_model(ROOT / "scenarios" / "pilot.model.json")
    cores = available_cores()
    one, every = Parallel(1), Parallel(cores)
    print(
        f"scenario   {SCENARIO.name} (6 classes, spikes, a launch event), reliability {RELIABILITY}"
    )
    print(
        f"timing     best of {args.repeats} after one warm-up; {cores} cores; one worker's and "
        "every core's runs take turns"
    )
    every.start_processes("costsim.simulate.forecast", wait=True)
    print(
        f"workers    {cores} worker processes started first and kept, as after a program's "
        "first long run (a first short run on the command line uses threads)"
    )

    big = 100_000 if args.quick else 1_000_000
    classes_200 = many_classes(model, 200)
    # (label, scenario, model, target s, repeat, bridge); the 200-class row is the plain
    # forecast (its 6-class figure was 0.86 s, 1.65 s with the bridge); shown with it too
    shapes = [
        ("10k trials x 720 h x 6 classes", scenario(10_000), model, 1.0, True, True),
        ("365 d at 1 h", scenario(10_000, horizon="365d"), model, 3.0, True, True),
        ("30 d at 1 min", scenario(10_000, resolution="1m"), model, 10.0, True, True),
        (f"{big:,} trials", scenario(big), model, 30.0 * big / 1_000_000, False, True),
        ("200 classes, no bridge", scenario(10_000), classes_200, 5.0, True, False),
        ("200 classes, with the bridge", scenario(10_000), classes_200, 5.0, True, True),
    ]
    print("\n1-2. run_forecast (with the bridge unless said): one worker, every core")
    print(
        f"   {'shape':<32}{'1 worker':>10}{'estimate':>10}{f'{cores} workers':>12}{'ratio':>8}"
        "  target  same bytes"
    )
    for label, sc, m, target, repeat, bridge in shapes:
        reps = args.repeats if repeat else 1
        speed_up = label.startswith("10k") or label.endswith("trials")
        # the machine drifts from minute to minute: its ceiling measured just before the row
        ceiling = chunk_ceiling(args.repeats, one, every) if speed_up else 0.0
        (t1, j1), (tn, jn) = timed(sc, m, [one, every], reps, bridge)
        ratio = t1 / tn
        expected = expected_seconds(sc, m)
        print(
            f"   {label:<32}{t1:>9.2f}s{expected:>9.2f}s{tn:>11.2f}s{ratio:>7.2f}x  {target:g} s "
            f"{verdict(tn <= target):>7}   {'yes' if j1 == jn else 'NO'}"
            + (
                f"   ({cores} workers >= {SPEEDUP_TARGET}x: {verdict(ratio >= SPEEDUP_TARGET)};"
                f" {ratio / ceiling:.0%} of the chunk's own {ceiling:.2f}x just before)"
                if speed_up
                else ""
            )
        )

    print("\n3. against the plain numpy per-request bootstrap (per trial, same volume)")
    pilot = read_pilot(ROOT / "scenarios" / "pilot.parquet")
    assert pilot.cost is not None
    costs = pilot.cost
    rng = np.random.default_rng(0)
    print(f"   {'requests':>10}{'numpy':>12}{'costsim':>12}{'speed-up':>10}")
    for volume in BOOTSTRAP_VOLUMES:
        n = int(volume)
        draws = max(3, int(2e7 // n))

        def bootstrap(n: int = n, draws: int = draws) -> None:
            for _ in range(draws):
                costs[rng.integers(0, costs.size, size=n)].sum()

        t_np, _ = best_of(bootstrap, args.repeats)
        per_np = t_np / draws
        sc = scenario(2000, volume={"requests": volume})
        t_cs, _ = best_of(partial(run_forecast, sc, model, bridge=False, parallel=one), 1)
        per_cs = t_cs / sc.trials
        print(
            f"   {volume:>10.0e}{per_np * 1e3:>10.3f}ms{per_cs * 1e3:>10.3f}ms"
            f"{per_np / per_cs:>9.0f}x"
        )
    print(
        "   numpy: costs[rng.integers(0, n, size=requests)].sum() per trial (pilot costs, "
        "no traffic shape, spikes, retries or uncertainty); costsim: one worker, all of them"
    )
    print(f"\n4. this machine's own ceiling for {cores} workers (same run)")
    for label, ratio in machine_ceiling(cores, args.repeats, one, every):
        print(f"   {label:<64}{ratio:>6.2f}x")
    total, span = job_bound(scenario(10_000), model, cores)
    print(
        f"   {'the 10k-trial forecast: its jobs laid out on every core':<64}{total / span:>6.2f}x"
        f"   (one worker: {total:.3f} s in jobs, {span:.3f} s on {cores})"
    )


def job_bound(sc: Scenario, model: FittedModel, workers: int) -> tuple[float, float]:
    """The forecast's chunk jobs (with the bridge) timed one after another on one worker (best
    of 3 each), and the time they would take on ``workers`` workers taking them in order, each
    the next job when it is free: no serial part, no cost of sending them."""
    jobs, shared = chunk_jobs(sc, model)
    best = [float("inf")] * len(jobs)
    with one_blas_thread():
        for _ in range(3):
            for k, job in enumerate(jobs):
                t0 = time.perf_counter()
                _run_chunk(shared, job)
                best[k] = min(best[k], time.perf_counter() - t0)
    free = [0.0] * workers
    for t in best:
        free[free.index(min(free))] += t
    return sum(best), max(free)


def chunk_jobs(sc: Scenario, model: FittedModel) -> tuple[list[Any], Any]:
    """The chunk jobs of the forecast with the bridge and their shared value, as
    `run_forecast` makes them."""
    prep = prepare(sc, model)
    n_bridge = min(BRIDGE_TRIALS, sc.trials)
    variants = cap_variants(prep, cap_sensitive(prep))
    steps = [d for _, d in bridge_steps(prep) if d is not None and d is not ALL_DRIVERS]
    runs = [Run(ALL_DRIVERS, variants=variants, variant_trials=n_bridge)]
    runs += [Run(d, n_bridge) for d in steps]
    jobs = _jobs([r.trials or sc.trials for r in runs], [_sums_key(r.drivers) for r in runs])
    return jobs, (prep, tuple(runs), "strata")


def chunk_ceiling(repeats: int, one: Parallel, every: Parallel) -> float:
    """The speed-up of every core over one on the forecast's own work: one chunk of the
    10k-trial forecast repeated as many times as that forecast has jobs, on the kept worker
    processes (nothing serial, an even split; what two workers give at best here, sending work
    as costsim does)."""
    model = load_model(ROOT / "scenarios" / "pilot.model.json")
    jobs, shared = chunk_jobs(scenario(10_000), model)
    job = [j for j in jobs if j.runs == (0,)][-1]  # its last chunk: the forecast's alone
    copies = [job] * len(jobs)  # as much work as the forecast's chunks, split evenly

    def on(parallel: Parallel) -> Callable[[], object]:
        return lambda: list(parallel.map(_run_chunk, copies, shared, processes=True))

    t1, _ = best_of(on(one), repeats)
    tn, _ = best_of(on(every), repeats)
    return t1 / tn


def machine_ceiling(
    workers: int, repeats: int, one: Parallel, every: Parallel
) -> list[tuple[str, float]]:
    """The speed-up of ``workers`` over one: on the forecast's own work (`chunk_ceiling`), and
    on threads of plain numpy work that holds no lock, a memory-bound sum and a compute-bound
    sin/exp."""
    out = [
        (
            "a chunk of the forecast, repeated, on worker processes",
            chunk_ceiling(repeats, one, every),
        )
    ]
    workloads: dict[str, Callable[[], None]] = {
        "threads: memory-bound numpy (a + 1 over 16 MB arrays)": numpy_memory,
        "threads: compute-bound numpy (exp(sin(a)))": numpy_compute,
    }
    n = 2 * workers
    for label, work in workloads.items():

        def alone(work: Callable[[], None] = work) -> None:
            for _ in range(n):
                work()

        def threads(work: Callable[[], None] = work) -> None:
            list(Parallel(workers).map(lambda _s, _i: work(), range(n), None))

        t1, _ = best_of(alone, repeats)
        tn, _ = best_of(threads, repeats)
        out.append((label, t1 / tn))
    return out


if __name__ == "__main__":
    main()
