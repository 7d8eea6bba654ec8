"""Benchmark `costsim fit` on a large generated Langfuse (or OpenTelemetry) export.

    python benchmarks/bench_sources.py [--calls 1000000] [--format langfuse|otel]

Generates (cached under ``benchmarks/out/``) an agent-like export: traces whose number of LLM
calls is heavy-tailed (1 + a discrete Pareto draw, heavier for agents), five classes in
``trace_name``, a SPAN root per trace, and the fields real exports carry -- ~200-character
``input``/``output`` texts, metadata, tags, model parameters. The generator writes fixed chunks
of traces (``CHUNK_TRACES``; each chunk draws from its own ``SeedSequence`` child, so the bytes
depend only on ``--seed``, ``--calls`` and the chunk size) and never holds the whole export.

Then, each in a fresh child process so that its peak RSS is its own:

* ``export``: what ``costsim fit`` does with the export -- `read_source` (detect, read, one row per
  trace) -> `read_export` (validation) -> `fit_model` -> `model_to_json`;
* ``table`` (the baseline): plain `read_pilot` + `fit_model` + `model_to_json` on the same
  queries, written as costsim's own Parquet table (made once by the reader, cached).

Prints wall seconds (and CPU seconds, user + system, which a busy machine disturbs less), peak
RSS, calls/s and the export / table ratio, which is comparable across machines.
Target (issue 9) for 1M Langfuse calls on a 2-core machine: <= 20 s, <= 3 GB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
CHUNK_TRACES = 20_000  # traces per generated chunk: part of the reproducibility contract
START = np.datetime64("2024-06-01T00:00:00", "us")
DAYS = 30

# class: (share of traces, Pareto shape of extra calls, scale, log-mean input tokens)
CLASSES = {
    "lookup": (0.40, 3.0, 0.5, 6.5),
    "rag_single_hop": (0.25, 2.5, 1.0, 7.5),
    "rag_multi_hop": (0.15, 1.8, 2.0, 7.8),
    "summarize": (0.10, 2.5, 0.5, 8.8),
    "agent": (0.10, 1.3, 3.0, 7.2),
}
MAX_CALLS = 400
# model: (USD per input token, per cached input token, per output token)
MODELS = {
    "gpt-4o": (2.5e-6, 1.25e-6, 10e-6),
    "gpt-4o-mini": (0.15e-6, 0.075e-6, 0.6e-6),
    "claude-3-5-sonnet-20241022": (3e-6, 0.3e-6, 15e-6),
}
WORDS = (
    "the a of to and in for on with is are what how why order account refund search "
    "document policy customer invoice summary answer question context retrieved passage "
    "please explain list steps tool call result error retry user assistant system plan "
    "shipping delivery price product review support ticket status update report data"
).split()

CHILD = r"""
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
from costsim.model.fit import fit_model
from costsim.logs import ColumnMap, read_export, read_pilot
from costsim.model.file import model_to_json
from costsim.sources import read_source
mode, path = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
if mode == "prepare":  # the queries as costsim's table, for the baseline (not timed)
    import pyarrow.compute as pc, pyarrow.parquet as pq
    table = read_source(path).table
    cached, inp = table["cached_input_tokens"], table["input_tokens"]
    filled = pc.if_else(pc.and_(pc.is_null(cached), pc.is_valid(inp)), 0.0, cached)
    table = table.set_column(table.column_names.index("cached_input_tokens"),
                             "cached_input_tokens", filled)
    pq.write_table(table, sys.argv[3])
    print(json.dumps({"rows": table.num_rows}))
    sys.exit(0)
times = {}
if mode == "export":
    source = read_source(path)
    times["read_source"] = time.perf_counter() - t0
    log = read_export(source, path)
    times["read_export"] = time.perf_counter() - t0 - times["read_source"]
    calls = source.calls_read
else:
    log = read_pilot(path, ColumnMap(calls="calls"))
    times["read_pilot"] = time.perf_counter() - t0
    calls = int(log.calls.sum()) if getattr(log, "calls", None) is not None else log.n_rows
t1 = time.perf_counter()
text = model_to_json(fit_model(log))
times["fit"] = time.perf_counter() - t1
elapsed = time.perf_counter() - t0
usage = resource.getrusage(resource.RUSAGE_SELF)
peak, cpu = usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime
result = {"seconds": elapsed, "cpu": cpu, "peak_bytes": peak, "rows": log.n_rows, "calls": calls}
result.update(times)
print(json.dumps(result))
"""


def _texts(rng: np.random.Generator, n: int, length: int = 200) -> list[str]:
    """``n`` JSON-encoded strings of about ``length`` characters of words."""
    out = []
    for _ in range(n):
        words = rng.choice(WORDS, size=length // 4)
        text = " ".join(words)[:length].strip()
        out.append(json.dumps(text[:1].upper() + text[1:] + "?"))
    return out


def _stamps(seconds: np.ndarray) -> np.ndarray:
    """``2024-06-01 00:00:00.500000`` (the blob export's form) for seconds since `START`."""
    t = START + (seconds * 1e6).astype("timedelta64[us]")
    return np.char.replace(np.datetime_as_string(t, unit="us"), "T", " ")


def _chunk(rng: np.random.Generator, first: int, t0: float, gap: float, left: int) -> tuple:
    """One chunk of traces as per-trace and per-call arrays (at most ``left`` calls)."""
    names = list(CLASSES)
    share = np.array([c[0] for c in CLASSES.values()])
    cls = rng.choice(len(names), size=CHUNK_TRACES, p=share / share.sum())
    shape = np.array([c[1] for c in CLASSES.values()])[cls]
    scale = np.array([c[2] for c in CLASSES.values()])[cls]
    n = 1 + np.minimum(np.floor(rng.pareto(shape) * scale), MAX_CALLS - 1).astype(np.int64)
    total = np.cumsum(n)
    if total[-1] >= left:  # the last chunk: cut to exactly `left` calls
        k = int(np.searchsorted(total, left))
        cls, n = cls[: k + 1], n[: k + 1]
        n[-1] -= int(total[k] - left)
    traces = len(n)
    start = t0 + np.cumsum(rng.exponential(gap, traces))
    trace = np.repeat(np.arange(traces), n)
    step = np.arange(len(trace)) - np.repeat(np.cumsum(n) - n, n)
    c = cls[trace]
    # an agent's context grows with its steps, up to a 200k-token window
    log_in = np.array([c[3] for c in CLASSES.values()])[c] + 0.15 * np.minimum(step, 20)
    inp = np.minimum(np.ceil(rng.lognormal(log_in, 0.8)), 200_000).astype(np.int64)
    cached = np.where(rng.random(len(trace)) < 0.3, (inp * rng.random(len(trace))) // 128 * 128, 0)
    cached = cached.astype(np.int64)
    out = np.ceil(rng.lognormal(5.3, 0.9, len(trace))).astype(np.int64)
    model = rng.choice(len(MODELS), size=len(trace), p=[0.45, 0.4, 0.15])
    price = np.array(list(MODELS.values()))[model]
    cost_in = (inp - cached) * price[:, 0] + cached * price[:, 1]
    cost_out = out * price[:, 2]
    dur = 0.3 + out * rng.lognormal(np.log(0.012), 0.3, len(trace))
    # calls run one after another, 0.2 s apart, from 0.1 s after the root starts
    ends = np.cumsum(dur + 0.2)
    base = np.repeat(ends[np.cumsum(n) - n] - dur[np.cumsum(n) - n] - 0.2, n)
    c_start = np.repeat(start, n) + 0.1 + (ends - dur - 0.2 - base)
    c_end = c_start + dur
    error = rng.random(len(trace)) < 0.01
    r_end = np.maximum.reduceat(c_end, np.cumsum(n) - n) + 0.1
    return (first, cls, n, start, r_end, trace, step, inp, cached, out, model, cost_in, cost_out,
            c_start, c_end, error)  # fmt: skip


def _root(tid: str, name: str, start: str, end: str, q: str, a: str, user: int) -> str:
    route = name.replace("_", "-")
    return (
        f'{{"id": "{tid}-root", "trace_id": "{tid}", "project_id": "prj-bench", "type": "SPAN", '
        f'"parent_observation_id": "", "start_time": "{start}", "end_time": "{end}", '
        f'"completion_start_time": "", "name": "handle_request", '
        f'"metadata": {{"route": "/api/{route}", "team": "search", "release": "2024.06.1"}}, '
        f'"level": "DEFAULT", "status_message": "", "version": "", "input": {q}, "output": {a}, '
        f'"provided_model_name": "", "model_parameters": {{}}, "usage_details": {{}}, '
        f'"cost_details": {{}}, "total_cost": 0, "prompt_name": "", "trace_name": "{name}", '
        f'"user_id": "user-{user}", "session_id": "sess-{user}-{tid[-3:]}", '
        f'"tags": ["route={name}", "env=prod"], "environment": "production"}}\n'
    )


def write_langfuse(path: Path, calls: int, seed: int) -> None:
    """The export as JSON lines, chunk by chunk."""
    seq = np.random.SeedSequence(seed)
    texts = _texts(np.random.default_rng(seq.spawn(1)[0]), 4096)
    names = list(CLASSES)
    models = list(MODELS)
    gap = DAYS * 86400 / (calls / 2.5)  # about 2.5 calls per trace
    tmp = path.with_suffix(".part")
    written, first, t0 = 0, 0, 0.0
    with open(tmp, "w", encoding="utf-8") as fh:
        while written < calls:
            rng = np.random.default_rng(seq.spawn(1)[0])
            (_, cls, n, start, r_end, _, step, inp, cached, out, model, cost_in, cost_out,
             c_start, c_end, error) = _chunk(rng, first, t0, gap, calls - written)  # fmt: skip
            t0 = float(start[-1])
            rs, re_ = _stamps(start), _stamps(r_end)
            cs, ce = _stamps(c_start), _stamps(c_end)
            pick = rng.integers(0, len(texts), size=(len(inp) + len(n), 2))
            users = rng.integers(0, 5000, size=len(n))
            temps = rng.choice([0.0, 0.2, 0.7], size=len(inp))
            lines = []
            j = 0
            for i in range(len(n)):
                tid = f"tr-{first + i:08d}"
                name = names[cls[i]]
                q, a = texts[pick[len(inp) + i, 0]], texts[pick[len(inp) + i, 1]]
                lines.append(_root(tid, name, rs[i], re_[i], q, a, int(users[i])))
                for _ in range(n[i]):
                    m = models[model[j]]
                    tin, tca, tout = int(inp[j]), int(cached[j]), int(out[j])
                    cin, cout = float(cost_in[j]), float(cost_out[j])
                    level = (
                        '"ERROR", "status_message": "upstream timeout"'
                        if error[j]
                        else ('"DEFAULT", "status_message": ""')
                    )
                    lines.append(
                        f'{{"id": "{tid}-g{step[j]}", "trace_id": "{tid}", '
                        f'"project_id": "prj-bench", "type": "GENERATION", '
                        f'"parent_observation_id": "{tid}-root", "start_time": "{cs[j]}", '
                        f'"end_time": "{ce[j]}", "completion_start_time": "{cs[j]}", '
                        f'"name": "llm-step-{step[j]}", "metadata": {{"step": {step[j]}, '
                        f'"ls_provider": "openai"}}, "level": {level}, "version": "v3", '
                        f'"input": {texts[pick[j, 0]]}, "output": {texts[pick[j, 1]]}, '
                        f'"provided_model_name": "{m}", "model_parameters": '
                        f'{{"temperature": {temps[j]}, "max_tokens": 4096}}, '
                        f'"usage_details": {{"input": {tin - tca}, "input_cached_tokens": {tca}, '
                        f'"output": {tout}, "total": {tin + tout}}}, '
                        f'"cost_details": {{"input": {cin!r}, "output": {cout!r}, '
                        f'"total": {cin + cout!r}}}, "total_cost": {cin + cout!r}, '
                        f'"prompt_name": "{name}-prompt", "trace_name": "{name}", '
                        f'"user_id": "user-{users[i]}", '
                        f'"session_id": "sess-{users[i]}-{tid[-3:]}", '
                        f'"tags": ["route={name}", "env=prod"], "environment": "production"}}\n'
                    )
                    j += 1
            fh.writelines(lines)
            written += len(inp)
            first += len(n)
    tmp.rename(path)


def _attr(key: str, value: object) -> str:
    if isinstance(value, str):
        return f'{{"key": "{key}", "value": {{"stringValue": "{value}"}}}}'
    if isinstance(value, float):
        return f'{{"key": "{key}", "value": {{"doubleValue": {value!r}}}}}'
    return f'{{"key": "{key}", "value": {{"intValue": "{value}"}}}}'


def write_otel(path: Path, calls: int, seed: int) -> None:
    """The same kind of traces as OTLP JSON lines, one exported batch (a trace chunk) per line."""
    seq = np.random.SeedSequence(seed)
    texts = _texts(np.random.default_rng(seq.spawn(1)[0]), 4096)
    names = list(CLASSES)
    models = list(MODELS)
    gap = DAYS * 86400 / (calls / 2.5)
    epoch = int(START.astype("datetime64[ns]").astype(np.int64))
    head = (
        '{"resourceSpans": [{"resource": {"attributes": ['
        + _attr("service.name", "assistant")
        + "]}, "
        + '"scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.openai"}, "spans": ['
    )

    def ns(seconds: float) -> int:
        return epoch + int(seconds * 1e9)

    tmp = path.with_suffix(".part")
    written, first, t0 = 0, 0, 0.0
    with open(tmp, "w", encoding="utf-8") as fh:
        while written < calls:
            rng = np.random.default_rng(seq.spawn(1)[0])
            (_, cls, n, start, r_end, _, step, inp, cached, out, model, _, _,
             c_start, c_end, error) = _chunk(rng, first, t0, gap, calls - written)  # fmt: skip
            t0 = float(start[-1])
            pick = rng.integers(0, len(texts), size=(len(inp), 2))
            spans = []
            j = 0
            for i in range(len(n)):
                tid = f"{first + i:032x}"
                root = f"{first + i:08x}00000000"
                name = names[cls[i]]
                spans.append(
                    f'{{"traceId": "{tid}", "spanId": "{root}", "parentSpanId": "", '
                    f'"name": "{name}", "kind": 2, "startTimeUnixNano": "{ns(start[i])}", '
                    f'"endTimeUnixNano": "{ns(r_end[i])}", "attributes": ['
                    f"{_attr('app.feature', name)}, {_attr('enduser.id', 'user-1')}], "
                    f'"status": {{}}}}'
                )
                for _ in range(n[i]):
                    m = models[model[j]]
                    attrs = ", ".join(
                        (
                            _attr("gen_ai.operation.name", "chat"),
                            _attr("gen_ai.system", "openai"),
                            _attr("gen_ai.request.model", m),
                            _attr("gen_ai.request.temperature", 0.2),
                            _attr("gen_ai.usage.input_tokens", int(inp[j])),
                            _attr("gen_ai.usage.output_tokens", int(out[j])),
                            _attr("gen_ai.usage.cache_read.input_tokens", int(cached[j])),
                            f'{{"key": "gen_ai.prompt", "value": {{"stringValue": '
                            f"{texts[pick[j, 0]]}}}}}",
                            f'{{"key": "gen_ai.completion", "value": {{"stringValue": '
                            f"{texts[pick[j, 1]]}}}}}",
                        )
                    )
                    status = '{"code": 2, "message": "timeout"}' if error[j] else "{}"
                    spans.append(
                        f'{{"traceId": "{tid}", "spanId": "{first + i:08x}{step[j] + 1:08x}", '
                        f'"parentSpanId": "{root}", "name": "chat {m}", "kind": 3, '
                        f'"startTimeUnixNano": "{ns(c_start[j])}", '
                        f'"endTimeUnixNano": "{ns(c_end[j])}", "attributes": [{attrs}], '
                        f'"status": {status}}}'
                    )
                    j += 1
            for k in range(0, len(spans), 512):  # the exporter's batch size
                fh.write(head + ", ".join(spans[k : k + 512]) + "]}]}]}\n")
            written += len(inp)
            first += len(n)
    tmp.rename(path)


def run_child(mode: str, *args: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if out.returncode != 0:
        sys.exit(f"{mode} child failed:\n{out.stderr}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("langfuse", "otel"), default="langfuse")
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    stem = f"{args.format}_{args.calls}_s{args.seed}"
    path = OUT / f"{stem}.jsonl"
    queries = OUT / f"{stem}_queries.parquet"
    if not path.exists():
        print(f"generating {args.calls:,} calls ({args.format}) -> {path}", flush=True)
        (write_langfuse if args.format == "langfuse" else write_otel)(path, args.calls, args.seed)
    if not queries.exists():
        print(f"writing the same queries as costsim's table -> {queries}", flush=True)
        run_child("prepare", path, queries)
    base = run_child("table", queries)
    fit = run_child("export", path)
    calls = fit["calls"]
    size = path.stat().st_size / 2**30
    print(f"export               {path.name} ({size:.2f} GiB)")
    print(f"calls / traces       {calls:,.0f} / {fit['rows']:,.0f}")
    for label, run, parts in (
        ("table (baseline)", base, ("read_pilot", "fit")),
        ("export fit", fit, ("read_source", "read_export", "fit")),
    ):
        steps = ", ".join(f"{p} {run[p]:.2f} s" for p in parts)
        print(
            f"{label:20} {run['seconds']:.2f} s (CPU {run['cpu']:.1f} s), "
            f"peak {run['peak_bytes'] / 2**30:.2f} GiB  ({steps})"
        )
    print(f"export throughput    {calls / fit['seconds']:,.0f} calls/s")
    print(f"export / table ratio {fit['seconds'] / base['seconds']:.2f}x")
    ok = fit["seconds"] <= 20.0 and fit["peak_bytes"] <= 3 * 2**30
    print(f"target (<= 20 s, <= 3 GiB): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
