"""Benchmark `costsim fit` on a large generated pilot log.

    python benchmarks/bench_fit.py [--rows 10000000] [--workers 2]

Generates the log with ``scenarios/make_pilot.py`` (in a child process, cached under
``benchmarks/out/``), then runs each measurement in a fresh child process so that its peak RSS
is its own:

* ``read``: the bare read of the log into memory (`read_pilot`), the baseline;
* ``fit``: the log read into memory and fitted there (`read_pilot` + `fit_model`);
* ``stream``: the streamed fit `costsim fit` runs (`fit_source`), on 1 and ``--workers``
  threads; their model files must be byte-identical.

Prints rows/s and peak memory, and each fit's time as a ratio to the bare read (comparable
across machines). Targets for 10M rows on a 2-core machine: the streamed fit <= 10 s wall,
<= 2 GiB peak RSS. For a log larger than memory see ``bench_fit_stream.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"

CHILD = r"""
import hashlib, json, resource, sys, time, warnings
from costsim.logs import read_pilot
from costsim.model.fit import fit_model, fit_source
from costsim.model.file import model_to_json
from costsim.parallel import Parallel
warnings.simplefilter("ignore")
mode, path, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
digest = None
if mode == "stream":
    model = fit_source(path, parallel=Parallel.from_options(workers, None)).model
    rows = model.rows_read
    digest = hashlib.sha256(model_to_json(model).encode()).hexdigest()
else:
    log = read_pilot(path)
    rows = log.n_rows
    if mode == "fit":
        digest = hashlib.sha256(model_to_json(fit_model(log)).encode()).hexdigest()
elapsed = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": elapsed, "peak_bytes": peak, "rows": rows, "digest": digest}))
"""


def run_child(mode: str, path: Path, workers: int = 1) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path), str(workers)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2, help="threads of the streamed fit")
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
    one = run_child("stream", path, 1)
    many = run_child("stream", path, args.workers)
    rows = fit["rows"]

    def line(label: str, r: dict[str, Any]) -> str:
        return (
            f"{label:<26} {r['seconds']:6.2f} s, peak {r['peak_bytes'] / 2**30:.2f} GiB, "
            f"{rows / r['seconds']:,.0f} rows/s, {r['seconds'] / base['seconds']:.2f}x the read"
        )

    print(f"rows                       {rows:,.0f}")
    print(line("read only (baseline)", base))
    print(line("read + fit in memory", fit))
    print(line("streamed fit, 1 worker", one))
    print(line(f"streamed fit, {args.workers} workers", many))
    same = one["digest"] == many["digest"] == fit["digest"]
    print(f"model files                {'byte-identical' if same else 'DIFFER'}")
    ok = many["seconds"] <= 10.0 and many["peak_bytes"] <= 2 * 2**30 and same
    print(f"target (streamed <= 10 s, <= 2 GiB, same bytes): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
