"""Generate ``scenarios/pilot.parquet``: a synthetic but realistic pilot log of an AI product.

One row per request over 14 days from 2026-10-05 00:00 UTC, in the default log schema of
DESIGN.md section 1. Six query classes behave differently:

* ``lookup`` (~45%): short prompts, cheap, light tail.
* ``rag_single_hop`` (~25%) / ``rag_multi_hop`` (~10%): retrieved context, part of it cached;
  the multi-hop tail is heavier.
* ``long_context_summary`` (~5%): huge prompts, heavy tail, capped at a 200k-token context.
* ``agent_tool_use`` (~5%): a heavy-tailed number of steps whose context accumulates; many
  output tokens, long latency, more errors and retries.
* ``embedding_ingest`` (~10%): input tokens only, tiny cost, batch bursts at night.

Token counts per call have lognormal bodies spliced with generalized Pareto tails (shape xi per
class). Retried attempts are billed: token columns and ``cost_usd`` count every attempt
(tokens of one attempt x (1 + retries)), so cost is exactly tokens x price sheet. Latency
grows with output tokens, plus noise, retries and cold starts. Traffic has a diurnal (UTC) and
weekly shape, overdispersed hourly counts and uniform arrival times within each hour. Output
verbosity drifts slowly (an hourly random walk of a few % per day), so the pilot is not
stationary.

Deterministic: same arguments, byte-identical file. Run from the repository root::

    python scenarios/make_pilot.py                                   # the committed example
    python scenarios/make_pilot.py --rows 10000000 --out /tmp/big.parquet   # benchmarks
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

START = np.datetime64("2026-10-05T00:00", "ms")
CONTEXT_WINDOW = 200_000
CHUNK_ROWS = 1 << 20
SCHEMA = pa.schema(
    [
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("query_class", pa.string()),
        ("cost_usd", pa.float64()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cached_input_tokens", pa.int64()),
        ("latency_ms", pa.float64()),
        ("status", pa.string()),
        ("retries", pa.int64()),
        ("cold_start", pa.bool_()),
    ]
)

# One entry per class; every per-row parameter is looked up with the row's class index.
CLASSES = [
    "lookup",
    "rag_single_hop",
    "rag_multi_hop",
    "long_context_summary",
    "agent_tool_use",
    "embedding_ingest",
]
SHARE = np.array([0.45, 0.25, 0.10, 0.05, 0.05, 0.10])
IN_MEDIAN = np.array([350, 3_000, 9_000, 40_000, 6_000, 20_000])  # per call / per step
IN_SIGMA = np.array([0.4, 0.5, 0.6, 0.8, 0.5, 0.8])
OUT_MEDIAN = np.array([80, 250, 500, 1_200, 400, 0])
OUT_SIGMA = np.array([0.5, 0.5, 0.6, 0.5, 0.6, 0.0])
XI = np.array([0.05, 0.15, 0.30, 0.40, 0.20, 0.10])  # GPD tail shape per call
OUT_CAP = np.array([8_192, 8_192, 8_192, 16_384, 8_192, 0])  # max_tokens per call
CACHED_MEAN = np.array([0.0, 0.35, 0.50, 0.10, 0.0, 0.0])  # agent: from its steps
PRICE_IN = np.array([3.0, 3.0, 3.0, 3.0, 3.0, 0.02]) / 1e6  # USD per token
PRICE_OUT = np.array([15.0, 15.0, 15.0, 15.0, 15.0, 0.0]) / 1e6
PRICE_CACHED = np.array([0.30, 0.30, 0.30, 0.30, 0.30, 0.02]) / 1e6
TTFT_MS = np.array([250, 450, 700, 1_500, 600, 40])
MS_PER_OUT_TOKEN = np.array([14, 16, 18, 20, 18, 0])
RETRY_P = np.array([0.02, 0.03, 0.05, 0.06, 0.15, 0.01])  # P(another attempt)
MAX_RETRIES = np.array([3, 3, 3, 3, 5, 3])
ERROR_P = np.array([0.005, 0.008, 0.015, 0.025, 0.035, 0.006])
COLD_P = np.array([0.015, 0.015, 0.02, 0.02, 0.02, 0.01])
AGENT = CLASSES.index("agent_tool_use")
EMBED = CLASSES.index("embedding_ingest")


def _intensity(rng: np.random.Generator, n_hours: int) -> tuple[np.ndarray, np.ndarray]:
    """Expected share of requests per (hour, class), and each hour's relative busyness."""
    hours = np.arange(n_hours)
    hod = hours % 24 + 0.5
    weekday = (hours // 24) % 7  # START is a Monday
    week = np.where(weekday < 5, 1.0, np.where(weekday == 5, 0.5, 0.42))
    diurnal = 0.12 + np.exp(-0.5 * ((hod - 14.5) / 4.0) ** 2)  # EU + US working hours
    daily = np.exp(rng.normal(0.0, 0.1, n_hours // 24 + 1))[hours // 24]
    busy = diurnal * week * daily
    lam = busy[:, None] * SHARE / np.mean(busy)
    # Embedding ingest: nightly batch jobs 00-05 UTC of random size, plus a trickle.
    night = np.array([0.5, 1.0, 1.0, 1.0, 0.6] + [0.0] * 19)[hours % 24]
    burst = rng.lognormal(0.0, 0.6, n_hours // 24 + 1)[hours // 24]
    embed = 0.9 * night * burst / np.mean(night * burst) + 0.1
    lam[:, EMBED] = SHARE[EMBED] * embed
    lam *= rng.gamma(40.0, 1 / 40.0, lam.shape)  # overdispersed hourly counts
    return lam / lam.sum(), busy / busy.max()


def _drift(rng: np.random.Generator, n_hours: int) -> np.ndarray:
    """Log-multiplier of output verbosity per (hour, class): slow AR(1) walks + hourly jitter."""
    phi, step = 1 - 1 / 500, 0.006  # ~3%/day, forgets in ~3 weeks
    shocks = rng.normal(0.0, step, (n_hours, 1 + len(CLASSES)))
    walk = np.empty_like(shocks)
    walk[0] = shocks[0] * 10
    for t in range(1, n_hours):  # loop over hours, not rows
        walk[t] = phi * walk[t - 1] + shocks[t]
    return walk[:, :1] + walk[:, 1:] + rng.normal(0.0, 0.03, (n_hours, len(CLASSES)))


def _spliced(
    rng: np.random.Generator, cls: np.ndarray, median: np.ndarray, sigma: np.ndarray
) -> np.ndarray:
    """Lognormal body; above its 95th percentile the excess is generalized Pareto(XI[cls])."""
    mu, s, xi = np.log(np.maximum(median[cls], 1)), sigma[cls], XI[cls]
    body = np.exp(mu + s * rng.standard_normal(cls.size))
    u = np.exp(mu + s * 1.645)
    excess = 0.3 * u / xi * ((1 - rng.random(cls.size)) ** -xi - 1)
    return np.where(body > u, u + excess, body)


def _rows(
    rng: np.random.Generator, hour: np.ndarray, cls: np.ndarray, busy: np.ndarray, drift: np.ndarray
) -> pa.Table:
    """All columns for the requests of one chunk (given their hour and class), sorted by time."""
    n = cls.size
    agent = cls == AGENT
    # Agent steps: discrete generalized Pareto (xi 0.6), capped by the framework at 40 steps.
    gpd = 2.0 / 0.6 * ((1 - rng.random(n)) ** -0.6 - 1)
    steps = np.where(agent, np.minimum(1 + np.floor(gpd), 40), 1)
    # Context accumulates: step k sends (1 + (k-1)/2) x the first prompt; the last step must
    # still fit the context window. Summed over the steps, input = first x growth.
    last = 1 + 0.5 * (steps - 1)
    first = np.minimum(_spliced(rng, cls, IN_MEDIAN, IN_SIGMA), CONTEXT_WINDOW / last)
    inp = np.rint(first * steps * (1 + 0.25 * (steps - 1))).astype(np.int64)
    out_call = _spliced(rng, cls, OUT_MEDIAN, OUT_SIGMA) * np.exp(drift[hour, cls])
    out = np.rint(np.minimum(out_call, OUT_CAP[cls]) * steps)
    cached_frac = np.where(
        agent, 0.8 * (1 - 1 / steps) + 0.1, rng.beta(4, 4, n) * 2 * CACHED_MEAN[cls]
    )
    cached = np.rint(inp * np.minimum(cached_frac, 0.95)).astype(np.int64)

    # Retries: failed attempts before the last one; errors likelier when retries ran out.
    retries = np.minimum(rng.geometric(1 - RETRY_P[cls]) - 1, MAX_RETRIES[cls])
    err_p = np.where(retries == MAX_RETRIES[cls], 0.5, ERROR_P[cls])
    error = rng.random(n) < err_p
    out = np.where(error, np.floor(out * rng.random(n)), out).astype(np.int64)  # cut short
    attempt = (inp - cached) * PRICE_IN[cls] + cached * PRICE_CACHED[cls] + out * PRICE_OUT[cls]
    cost = attempt * (1 + retries)

    # Latency: time to first token + prefill + decoding (+ tool calls), lognormal noise.
    lat = (
        TTFT_MS[cls] * steps
        + inp * 0.02
        + out * MS_PER_OUT_TOKEN[cls]
        + np.where(agent, rng.lognormal(np.log(1500), 0.8, n) * steps, 0.0)
    )
    lat *= rng.lognormal(0.0, 0.3, n)
    lat *= 1 + retries * rng.uniform(0.2, 1.0, n)  # failed attempts, partly
    lat += retries * 500.0 * 2.0 ** np.minimum(retries, 3)  # exponential backoff
    cold = rng.random(n) < COLD_P[cls] * (0.4 + 1.6 * (1 - busy[hour]))  # idle hours: colder
    lat += np.where(cold, rng.uniform(2_000, 8_000, n), 0.0)

    ts = START.astype(np.int64) + hour * 3_600_000 + rng.integers(0, 3_600_000, n)
    order = np.argsort(ts, kind="stable")
    cols = {
        "timestamp": pa.array(ts[order], pa.timestamp("ms", tz="UTC")),
        "query_class": pa.array(CLASSES).take(pa.array(cls[order])),
        "cost_usd": cost[order],
        "input_tokens": (inp * (1 + retries))[order],  # billed: every attempt counts
        "output_tokens": (out * (1 + retries))[order],
        "cached_input_tokens": (cached * (1 + retries))[order],
        "latency_ms": np.round(lat[order], 1),
        "status": pa.array(["ok", "error"]).take(pa.array(error[order].astype(np.int8))),
        "retries": retries[order].astype(np.int64),
        "cold_start": cold[order],
    }
    return pa.table(cols, schema=SCHEMA)


def iter_chunks(
    n_rows: int = 60_000, days: int = 14, seed: int = 20261005, chunk_rows: int = CHUNK_ROWS
) -> Iterator[pa.Table]:
    """Yield the log as time-ordered tables of about ``chunk_rows`` rows (whole hours each)."""
    traffic_ss, drift_ss, counts_ss, rows_ss = np.random.SeedSequence(seed).spawn(4)
    n_hours = 24 * days
    lam, busy = _intensity(np.random.default_rng(traffic_ss), n_hours)
    drift = _drift(np.random.default_rng(drift_ss), n_hours)
    counts = np.random.default_rng(counts_ss).multinomial(n_rows, lam.ravel())
    counts = counts.reshape(lam.shape)
    per_hour = np.cumsum(counts.sum(axis=1))
    cuts = np.unique(np.searchsorted(per_hour, np.arange(chunk_rows, n_rows, chunk_rows)))
    bounds = np.unique([0, *(cuts + 1), n_hours]).tolist()
    for h0, h1 in itertools.pairwise(bounds):
        cells = counts[h0:h1].ravel()
        hour = np.repeat(np.arange(h0, h1).repeat(len(CLASSES)), cells)
        cls = np.repeat(np.tile(np.arange(len(CLASSES)), h1 - h0), cells)
        rng = np.random.default_rng(rows_ss.spawn(1)[0])  # next child: one per chunk
        yield _rows(rng, hour, cls, busy, drift)


def generate(n_rows: int = 60_000, days: int = 14, seed: int = 20261005) -> pa.Table:
    """The whole log as one in-memory table (identical to what ``main`` writes)."""
    return pa.concat_tables(list(iter_chunks(n_rows, days, seed)))


def write(path: Path, n_rows: int = 60_000, days: int = 14, seed: int = 20261005) -> None:
    """Write the log as one parquet file, chunk by chunk, with reproducible bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(
        path,
        SCHEMA,
        compression="zstd",
        compression_level=3,
        use_dictionary=["query_class", "status"],
        write_statistics=True,
    ) as writer:
        for table in iter_chunks(n_rows, days, seed):
            writer.write_table(table, row_group_size=CHUNK_ROWS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=60_000, help="requests (default 60000)")
    parser.add_argument("--days", type=int, default=14, help="days from 2026-10-05 (14)")
    parser.add_argument("--seed", type=int, default=20261005, help="random seed")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("pilot.parquet"))
    args = parser.parse_args()
    if args.rows < 0 or args.days < 1:
        parser.error("--rows must be >= 0 and --days >= 1")
    write(args.out, args.rows, args.days, args.seed)
    print(f"wrote {args.rows} rows over {args.days} days to {args.out}")


if __name__ == "__main__":
    main()
