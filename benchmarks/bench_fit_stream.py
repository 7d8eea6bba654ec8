"""Benchmark the streamed fit on a log larger than memory (issue 11).

    python benchmarks/bench_fit_stream.py                 # 200M rows
    python benchmarks/bench_fit_stream.py --quick         # 20M rows
    python benchmarks/bench_fit_stream.py --rows 50000000 --workers 1,2,4

Writes ``scenarios/make_pilot.py``'s log (its six classes over ``--days`` days) as a
hive-partitioned Parquet dataset, ``day=YYYY-MM-DD/part-NNNNN.parquet``, one generated chunk of
about 1M rows at a time: it is never held in memory. The dataset is cached under
``benchmarks/out/`` (a ``_SUCCESS`` marker says it is complete) and reused.

Then, for each ``--workers`` value, `costsim.model.fit.fit_source` runs in a fresh child process
under ``/usr/bin/time -v`` and writes its model file. Printed: wall time, peak RSS (target:
at most 2 GiB whatever the rows), rows/s and rows/s per core, and whether the model files of
every worker count are byte-identical (they must be).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
sys.path.insert(0, str(ROOT / "scenarios"))

TARGET_RSS = 2 * 2**30
SEED = 20261005

CHILD = r"""
import json, sys, time, warnings
from costsim.memory import tune_malloc
tune_malloc()  # as `costsim fit` does
from costsim.model.fit import fit_source
from costsim.model.file import model_to_json
from costsim.parallel import Parallel
warnings.simplefilter("ignore")
path, workers, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t0 = time.perf_counter()
fitted = fit_source(path, parallel=Parallel.from_options(workers, None))
text = model_to_json(fitted.model)
with open(out, "w", encoding="utf-8") as fh:
    fh.write(text)
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": fitted.model.rows_read}))
"""


def write_dataset(path: Path, rows: int, days: int) -> None:
    """make_pilot's log as a hive-partitioned dataset, a chunk at a time."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from make_pilot import CHUNK_ROWS, iter_chunks

    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    written = 0
    t0 = time.perf_counter()
    for i, table in enumerate(iter_chunks(rows, days, SEED)):
        day = pc.strftime(table["timestamp"], format="%Y-%m-%d").to_numpy(zero_copy_only=False)
        cuts = np.flatnonzero(day[1:] != day[:-1]) + 1  # rows are in time order
        for a, b in zip([0, *cuts], [*cuts, len(day)], strict=True):
            part = tmp / f"day={day[a]}" / f"part-{i:05d}.parquet"
            part.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(
                table.slice(a, b - a),
                part,
                row_group_size=CHUNK_ROWS,
                compression="zstd",
                compression_level=3,
                use_dictionary=["query_class", "status"],
                write_statistics=True,
            )
        written += table.num_rows
        del table
        rate = written / (time.perf_counter() - t0)
        print(f"\r  {written:,} rows written ({rate:,.0f} rows/s)", end="", flush=True)
    print()
    (tmp / "_SUCCESS").write_text(f"{written}\n")
    tmp.rename(path)


def run_fit(path: Path, workers: int, model: Path) -> dict[str, float]:
    """The fit in a child process: its own wall time and rows, and its peak RSS."""
    command = [sys.executable, "-c", CHILD, str(path), str(workers), str(model)]
    timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    if timer is not None:
        command = [timer, "-v", *command]
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"the fit failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if found is not None:
        result["peak_bytes"] = int(found.group(1)) * 1024
    else:  # no /usr/bin/time: the largest child so far
        result["peak_bytes"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    result["wall"] = wall
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000_000)
    parser.add_argument("--quick", action="store_true", help="20M rows")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--workers", default="1,2", help="worker counts to run (default 1,2)")
    args = parser.parse_args()
    rows = 20_000_000 if args.quick else args.rows
    workers = [int(w) for w in args.workers.split(",")]
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"stream_{rows}_{args.days}d"
    if not (path / "_SUCCESS").exists():
        print(f"writing {rows:,} rows to {path} (once; reused afterwards)")
        write_dataset(path, rows, args.days)
    size = sum(f.stat().st_size for f in path.rglob("*.parquet"))
    files = sum(1 for _ in path.rglob("*.parquet"))
    print(f"dataset        {path} ({files} files, {size / 2**30:.2f} GiB on disk)")
    models = []
    for w in workers:
        model = OUT / f"stream_{rows}_{args.days}d.w{w}.model.json"
        r = run_fit(path, w, model)
        models.append(model.read_bytes())
        rate = r["rows"] / r["wall"]
        ok = r["peak_bytes"] <= TARGET_RSS
        print(
            f"--workers {w:<3} {r['wall']:7.1f} s wall ({r['seconds']:.1f} s in the fit), "
            f"peak RSS {r['peak_bytes'] / 2**30:.2f} GiB ({'<=' if ok else '>'} 2 GiB), "
            f"{rate:,.0f} rows/s, {rate / w:,.0f} rows/s per core"
        )
    same = all(m == models[0] for m in models)
    print(f"model files    {'byte-identical' if same else 'DIFFER'} for --workers {args.workers}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
