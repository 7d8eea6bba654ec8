"""Benchmark how fast the command line starts (issue 11).

    python benchmarks/bench_startup.py [--repeats 15]

Runs, each in a fresh process, ``costsim --help``, ``costsim forecast --help`` and
``costsim schema`` (to /dev/null), and ``python -c pass`` as the baseline of the same run: the
interpreter's own start on this machine, at this moment. Prints the best wall time of
``--repeats`` runs (and the best CPU time, user + system, which a busy machine disturbs less),
the time above the baseline, and the target.
Target (issue 11): ``costsim --help`` and every subcommand's ``--help`` <= 0.4 s; ``costsim
schema`` as fast as it can be (it builds the scenario's pydantic declaration, but imports no
numpy, scipy, pandas or pyarrow: ``tests/test_startup.py`` checks which modules are loaded).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _timing import verdict

TARGET_S = 0.4


def costsim_command() -> list[str]:
    """The installed console script beside this interpreter (what a user runs)."""
    script = Path(sys.executable).with_name("costsim")
    if script.exists():
        return [str(script)]
    found = shutil.which("costsim")
    if found:
        return [found]
    return [sys.executable, "-c", "from costsim.cli import main; main()"]


def best_run(argv: list[str], repeats: int) -> tuple[float, float]:
    """One warm-up run (file caches, .pyc), then the best wall and the best CPU seconds."""
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1"}
    env.pop("COSTSIM_DASK_SCHEDULER", None)
    best_wall = best_cpu = float("inf")
    for i in range(repeats + 1):
        before = os.times()
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
        wall = time.perf_counter() - t0
        after = os.times()
        cpu = (after.children_user - before.children_user) + (
            after.children_system - before.children_system
        )
        if i:
            best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    return best_wall, best_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    costsim = costsim_command()
    runs = {
        "python -c pass": ([sys.executable, "-c", "pass"], None),
        "costsim --help": ([*costsim, "--help"], TARGET_S),
        "costsim forecast --help": ([*costsim, "forecast", "--help"], TARGET_S),
        "costsim schema": ([*costsim, "schema"], None),
    }
    print(f"best of {args.repeats} runs, each in a fresh process ({os.cpu_count()} cores)")
    print(f"{'command':<26}{'wall s':>8}{'cpu s':>8}{'- python':>10}  target")
    baseline = None
    for name, (argv, target) in runs.items():
        wall, cpu = best_run(argv, args.repeats)
        baseline = wall if baseline is None else baseline
        above = f"{wall - baseline:+.3f}" if name != "python -c pass" else ""
        goal = f"<= {target:g} s: {verdict(wall <= target)}" if target is not None else ""
        print(f"{name:<26}{wall:>8.3f}{cpu:>8.3f}{above:>10}  {goal}")


if __name__ == "__main__":
    main()
