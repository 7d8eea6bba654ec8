"""Benchmark `costsim forecast`: time against volume, and the stratified engine's speed-up.

    python benchmarks/bench_forecast.py [--trials 10000] [--quick]

Loads ``scenarios/launch_month.yaml`` (the bundled 6-class model; 30 days at 1 h; random spikes,
a launch event) and sets retries (error_rate, max_attempts, load_exponent 1), then, in this
process:
1. times ``run_forecast`` without and with the bridge at 1e5, 1e7 and 1e9 requests over the
   horizon (best of 3 after one warm-up); targets: 1e9 / 1e5 <= 1.5x, 1e9 under 2 s;
2. times the stratified engine against ``engine="reference"`` at 1e6 requests with equal trials
   (target >= 100x), with a KS two-sample test of the two engines' totals as a sanity check.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
from _timing import best_of, malloc_as_the_cli, verdict
from scipy import stats

from costsim.model.file import load_model
from costsim.scenario import Scenario, load_scenario
from costsim.simulate.chunks import simulate
from costsim.simulate.forecast import run_forecast
from costsim.simulate.prepare import prepare

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "launch_month.yaml"
VOLUMES = (1e5, 1e7, 1e9)
RATIO_TARGET = 1.5
SECONDS_TARGET = 2.0
SPEEDUP_TARGET = 100.0


def scenario_at(base: Scenario, requests: float, trials: int, seed: int | None = None) -> Scenario:
    rel = replace(base.reliability, error_rate=0.02, max_attempts=3, load_exponent=1.0)
    return replace(
        base,
        volume=replace(base.volume, requests=requests),
        trials=trials,
        reliability=rel,
        seed=base.seed if seed is None else seed,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--ref-trials", type=int, default=150, help="trials of part 2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1000 trials, 20 reference trials")
    args = parser.parse_args()
    print(malloc_as_the_cli())
    if args.quick:
        args.trials, args.ref_trials, args.repeats = min(args.trials, 1000), 20, 1
    base = load_scenario(SCENARIO)
    assert base.model_path is not None
    model = load_model(base.model_path)
    rel = scenario_at(base, 1.0, 1).reliability
    print(
        f"scenario   {SCENARIO.name}: {len(model.classes)} classes, "
        f"{base.horizon_s / 86400:g} d at {base.resolution_s / 3600:g} h, "
        f"spikes {base.traffic.spikes.rate_per_day:g}/day, {len(base.traffic.events)} event(s)"
    )
    print(
        f"retries    error_rate {rel.error_rate}, max_attempts {rel.max_attempts}, "
        f"load_exponent {rel.load_exponent:g}"
    )
    print(f"timing     time.perf_counter, best of {args.repeats} after one warm-up, one process")
    if args.quick:
        print("NOTE       --quick: fewer trials than the targets assume; verdicts are indicative")

    print(f"\n1. run_forecast, {args.trials:,} trials")
    times: dict[tuple[float, bool], float] = {}
    for n in VOLUMES:
        sc = scenario_at(base, n, args.trials)
        for bridge in (False, True):
            t, fc = best_of(partial(run_forecast, sc, model, bridge=bridge), args.repeats)
            times[n, bridge] = t
            label = "bridge   " if bridge else "no bridge"
            print(f"   {n:8.0e} requests, {label}: {t:6.2f} s")
        per_req = fc.totals.mean() / fc.class_requests.sum(axis=1).mean()
        print(
            f"   {n:8.0e} requests, mean cost per request ${per_req:.6f} "
            f"(p50 total ${fc.quantiles['p50']:,.0f})"
        )
    for bridge in (False, True):
        label = "with bridge" if bridge else "no bridge  "
        ratio = times[VOLUMES[-1], bridge] / times[VOLUMES[0], bridge]
        t9 = times[VOLUMES[-1], bridge]
        print(
            f"   {label} 1e9/1e5 time ratio {ratio:5.2f}x (target <= {RATIO_TARGET}x): "
            f"{verdict(ratio <= RATIO_TARGET)}"
        )
        print(
            f"   {label} 1e9 forecast time  {t9:5.2f} s (target < {SECONDS_TARGET:g} s): "
            f"{verdict(t9 < SECONDS_TARGET)}"
        )

    trials = args.ref_trials
    print(f"\n2. simulate, 1e6 requests, {trials} trials each, strata vs reference")
    prep = prepare(scenario_at(base, 1e6, trials), model)
    t_strata, (tot_s, _) = best_of(lambda: simulate(prep, engine="strata"), args.repeats)
    # the reference runs on another seed, so that the KS test compares independent samples
    prep_ref = prepare(scenario_at(base, 1e6, trials, seed=base.seed + 1), model, bodies=True)
    simulate(prep_ref, engine="reference", trials=min(trials, 5))  # warm-up
    t0 = time.perf_counter()
    tot_r, _ = simulate(prep_ref, engine="reference")
    t_ref = time.perf_counter() - t0
    print(f"   strata    {t_strata * 1e3:9.1f} ms (best of {args.repeats} after a warm-up)")
    print(f"   reference {t_ref * 1e3:9.1f} ms (one timed run after a short warm-up)")
    speedup = t_ref / t_strata
    print(
        f"   speed-up  {speedup:9.0f}x (target >= {SPEEDUP_TARGET:g}x): "
        f"{verdict(speedup >= SPEEDUP_TARGET)}"
    )
    a, b = np.asarray(tot_s).sum(axis=1), np.asarray(tot_r).sum(axis=1)
    ks = stats.ks_2samp(a, b)
    print(
        f"   KS two-sample p = {ks.pvalue:.3f} (D = {ks.statistic:.3f}; target p > 0.01): "
        f"{verdict(ks.pvalue > 0.01)}; means ${a.mean():,.0f} vs ${b.mean():,.0f}"
    )


if __name__ == "__main__":
    main()
