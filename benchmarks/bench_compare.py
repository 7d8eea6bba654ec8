"""Benchmark `costsim compare`: three deployment options against the plain forecast.

    python benchmarks/bench_compare.py [--trials 10000] [--repeats 3] [--quick]

Loads ``scenarios/deployments.yaml`` (the bundled 6-class model; 30 days at 1 h; spikes; three
options: an api with a batch discount and a rate limit, an autoscaled GPU pool, and a committed
node overflowing to the api) and, in this process, times:

1. ``run_forecast`` of the same scenario without its deployments and without the bridge (the
   plain forecast: one pricing, the same trials);
2. ``run_compare`` (every option on the same random numbers, the regret and the value of
   flexibility), and its parts: the api's forecast run, and each provisioned option's pools.

Target (issue 10): compare of 3 options, 10k trials, 30 days at 1 h <= 3 s on the development
machine (2 cores). The ratio compare / forecast is printed too: on a busy or slower machine it
is the figure to compare between runs.
"""

from __future__ import annotations

import argparse
import dataclasses
from functools import partial
from pathlib import Path
from typing import Any

from _timing import best_of, malloc_as_the_cli, verdict

from costsim.model.file import load_model
from costsim.scenario import Scenario, load_scenario
from costsim.simulate.compare import run_compare
from costsim.simulate.forecast import run_forecast

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "deployments.yaml"
SECONDS_TARGET = 3.0


def changed(sc: Scenario, **changes: Any) -> Scenario:
    return dataclasses.replace(sc, **changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1000 trials, one repeat")
    args = parser.parse_args()
    print(malloc_as_the_cli())
    if args.quick:
        args.trials, args.repeats = min(args.trials, 1000), 1
    base = changed(load_scenario(SCENARIO), trials=args.trials)
    assert base.model_path is not None
    model = load_model(base.model_path)
    kinds = ", ".join(f"{n} ({o.kind})" for n, o in base.deployments.items())
    print(
        f"scenario   {SCENARIO.name}: {len(model.classes)} classes, "
        f"{base.horizon_s / 86400:g} d at {base.resolution_s / 3600:g} h, {args.trials:,} trials"
    )
    print(f"options    {kinds}")
    print(f"timing     time.perf_counter, best of {args.repeats} after one warm-up, one process")
    if args.quick:
        print("NOTE       --quick: fewer trials than the target assumes; verdicts are indicative")

    plain = changed(base, deployments={}, route=None)
    t_fc, _ = best_of(lambda: run_forecast(plain, model, bridge=False), args.repeats)
    print(f"\n1. run_forecast (no deployments, no bridge)  {t_fc:6.2f} s")

    t_cmp, _ = best_of(lambda: run_compare(base, model), args.repeats)
    print(f"2. run_compare, {len(base.deployments)} options                {t_cmp:6.2f} s")
    for name in base.deployments:
        option = base.deployments[name]
        keep = {name: option}
        over = getattr(option, "overflow", None)
        if over in base.deployments:  # with its overflow target
            keep[over] = base.deployments[over]
        one = changed(base, deployments=keep, route=None)
        t_one, _ = best_of(partial(run_compare, one, model), args.repeats)
        print(f"   {name:12s} alone ({', '.join(one.deployments)})".ljust(44) + f" {t_one:6.2f} s")
    print(
        f"\n   compare / forecast {t_cmp / t_fc:5.2f}x; compare {t_cmp:5.2f} s "
        f"(target <= {SECONDS_TARGET:g} s): {verdict(t_cmp <= SECONDS_TARGET)}"
    )


if __name__ == "__main__":
    main()
