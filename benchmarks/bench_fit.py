"""Benchmark `costsim fit` on a large generated pilot log.

    python benchmarks/bench_fit.py [--rows 10000000]

Generates the log with ``scenarios/make_pilot.py`` (in a child process, cached under
``benchmarks/out/``), then runs the fit in a fresh child process so that its peak RSS is its own.
Prints rows/s and peak memory, and the fit's time as a ratio to the bare read of the same columns
(the baseline, run the same way), which is comparable across machines.
Targets for 10M rows on a 2-core machine: <= 10 s wall, <= 3 GB peak RSS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"

CHILD = r"""
import json, resource, sys, time, warnings
from costsim.logs import read_pilot
from costsim.fit import fit_model
from costsim.modelfile import model_to_json
warnings.simplefilter("ignore")
mode, path = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
log = read_pilot(path)
t_read = time.perf_counter() - t0
if mode == "fit":
    text = model_to_json(fit_model(log))
elapsed = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
result = {"seconds": elapsed, "read_seconds": t_read, "peak_bytes": peak, "rows": log.n_rows}
print(json.dumps(result))
"""


def run_child(mode: str, path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path)], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"pilot_{args.rows}_{args.days}d.parquet"
    if not path.exists():
        print(f"generating {args.rows:,} rows -> {path}")
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "scenarios" / "make_pilot.py"),
                "--rows",
                str(args.rows),
                "--days",
                str(args.days),
                "--out",
                str(path),
            ],
            check=True,
        )
    base = run_child("read", path)
    fit = run_child("fit", path)
    rows = fit["rows"]
    print(f"rows                 {rows:,.0f}")
    print(
        f"read only (baseline) {base['seconds']:.2f} s, peak {base['peak_bytes'] / 2**30:.2f} GiB"
    )
    print(f"fit (read included)  {fit['seconds']:.2f} s, peak {fit['peak_bytes'] / 2**30:.2f} GiB")
    print(f"fit throughput       {rows / fit['seconds']:,.0f} rows/s")
    print(f"fit / read ratio     {fit['seconds'] / base['seconds']:.2f}x")
    ok = fit["seconds"] <= 10.0 and fit["peak_bytes"] <= 3 * 2**30
    print(f"target (<= 10 s, <= 3 GiB): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
