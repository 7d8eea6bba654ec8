"""Readers of observability / gateway exports (costsim.sources).

Expectations are computed from each fixture's own rows with json/csv and plain Python, never
by calling the reader. Fixtures: tests/fixtures/sources (regenerate with make_fixtures.py).
"""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from costsim.errors import LogSchemaError
from costsim.sources import SourceTable, read_source

FIX = Path(__file__).parent / "fixtures" / "sources"


def pricer(models, inp, out, cached, ts):  # deterministic stand-in for costsim.simulate.prices
    return 1e-6 * np.asarray(inp, dtype=float) + 2e-6 * np.asarray(out, dtype=float)


def price(inp: float, out: float) -> float:
    return 1e-6 * inp + 2e-6 * out


def read(path: str | Path, **kw) -> SourceTable:
    result = read_source(FIX / path, pricer=pricer, **kw)
    assert result is not None
    return result


def per_class(result: SourceTable) -> dict[str, tuple[int, float, int]]:
    """class -> (queries, cost sum, calls) from the reader's table."""
    rows = result.table.to_pylist()
    out: dict[str, list] = defaultdict(lambda: [0, 0.0, 0])
    for r in rows:
        acc = out[r["query_class"]]
        acc[0] += 1
        acc[1] += r["cost_usd"] or 0.0
        acc[2] += r["calls"]
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}


def assert_classes(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for k in want:
        assert got[k][0] == want[k][0], k
        assert got[k][1] == pytest.approx(want[k][1], rel=1e-9, abs=1e-12), k
        assert got[k][2] == want[k][2], k


def traces_expect(calls: list[dict]) -> dict[str, tuple[int, float, int]]:
    """calls: dicts with trace, cls (or None), start, cost -> per class (traces, cost, calls);
    a trace's class is the earliest call's that has one."""
    by_trace: dict[str, list[dict]] = defaultdict(list)
    for c in calls:
        by_trace[c["trace"]].append(c)
    out: dict[str, list] = defaultdict(lambda: [0, 0.0, 0])
    for items in by_trace.values():
        items.sort(key=lambda c: c["start"])
        cls = next((c["cls"] for c in items if c["cls"]), "unclassified")
        acc = out[cls]
        acc[0] += 1
        acc[1] += sum(c["cost"] for c in items)
        acc[2] += len(items)
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# Langfuse


def langfuse_rows() -> list[dict]:
    return [
        json.loads(line) for line in (FIX / "langfuse/observations.jsonl").read_text().splitlines()
    ]


def langfuse_calls(rows: list[dict], cls_of=lambda r: r["trace_name"]) -> list[dict]:
    calls = []
    for r in rows:
        if r["type"] != "GENERATION":
            continue
        u = r["usage_details"]
        cost = r["total_cost"]
        if cost is None:
            cost = price(u["input"] + u.get("input_cached_tokens", 0), u["output"])
        calls.append(
            {"trace": r["trace_id"], "cls": cls_of(r), "start": r["start_time"], "cost": cost}
        )
    return calls


@pytest.mark.parametrize("name", ["langfuse/observations.jsonl", "langfuse/observations.csv.gz"])
def test_langfuse_traces(name: str) -> None:
    result = read(name)
    assert result.format == "langfuse" and result.unit == "trace"
    assert_classes(per_class(result), traces_expect(langfuse_calls(langfuse_rows())))
    assert result.unclassified == 1
    assert "Langfuse" in result.detected and "auto-detected" in result.detected
    assert any("priced from the catalog" in n for n in result.notes)


def test_langfuse_csv_expectation_from_csv_rows() -> None:
    with gzip.open(FIX / "langfuse/observations.csv.gz", "rt") as fh:
        rows = list(csv.DictReader(fh))
    gens = [r for r in rows if r["type"] == "GENERATION"]
    cost = sum(float(r["total_cost"]) for r in gens if r["total_cost"])
    missing = [json.loads(r["usage_details"]) for r in gens if not r["total_cost"]]
    cost += sum(price(u["input"] + u.get("input_cached_tokens", 0), u["output"]) for u in missing)
    table = read("langfuse/observations.csv.gz").table
    assert sum(table["cost_usd"].to_pylist()) == pytest.approx(cost)
    assert sum(table["calls"].to_pylist()) == len(gens)
    tokens = sum(json.loads(r["usage_details"])["output"] for r in gens)
    assert sum(table["output_tokens"].to_pylist()) == tokens


def test_langfuse_trace_aggregation() -> None:
    rows = langfuse_rows()
    table = read("langfuse/observations.jsonl").table.to_pylist()
    gens = [r for r in rows if r["type"] == "GENERATION"]
    per_trace = Counter(r["trace_id"] for r in gens)
    assert sorted(r["calls"] for r in table) == sorted(per_trace.values())
    # a trace failed if its final call failed (tr-007: every call ERROR; tr-005: maybe the last)
    last: dict[str, dict] = {}
    for r in sorted(gens, key=lambda r: r["start_time"]):
        last[r["trace_id"]] = r
    want_errors = sum(r["level"] == "ERROR" for r in last.values())
    assert sum(r["status"] == "error" for r in table) == want_errors >= 1
    # agent traces: 3-5 calls, latency from first start to last end (1.5 s calls, 2 s apart)
    for r in table:
        if r["query_class"] == "agent":
            assert r["latency_ms"] == pytest.approx((2 * (r["calls"] - 1) + 1.5) * 1000, abs=1)
    cached = sum(r["usage_details"].get("input_cached_tokens", 0) for r in gens)
    assert sum(r["cached_input_tokens"] or 0 for r in table) == cached


def test_langfuse_call_unit() -> None:
    result = read("langfuse/observations.jsonl", unit="call")
    gens = [r for r in langfuse_rows() if r["type"] == "GENERATION"]
    assert result.unit == "call" and result.table.num_rows == len(gens)
    assert set(result.table["calls"].to_pylist()) == {1}
    assert Counter(result.table["query_class"].to_pylist()) == Counter(
        r["trace_name"] or "unclassified" for r in gens
    )


@pytest.mark.parametrize("name", ["langfuse/observations.jsonl", "langfuse/observations.csv.gz"])
def test_class_from_path_reaches_the_root(name: str) -> None:
    # metadata.route is set on the root SPAN only: every trace takes its root's class.
    rows = langfuse_rows()
    route = {r["trace_id"]: r["metadata"].get("route") for r in rows if r["type"] == "SPAN"}
    want = traces_expect(langfuse_calls(rows, lambda r: route.get(r["trace_id"])))
    result = read(name, class_from="metadata.route")
    assert_classes(per_class(result), want)
    assert "class from metadata.route" in result.detected


def test_class_from_tag_prefix() -> None:
    rows = langfuse_rows()

    def tag(r: dict) -> str | None:
        return next((t[len("route=") :] for t in r["tags"] if t.startswith("route=")), None)

    want = traces_expect(langfuse_calls(rows, tag))
    assert_classes(per_class(read("langfuse/observations.jsonl", class_from="tag:route=")), want)


def test_class_map_regexes() -> None:
    result = read(
        "langfuse/observations.jsonl", class_from="metadata.route", class_map=FIX / "class_map.yaml"
    )
    counts = Counter(result.table["query_class"].to_pylist())
    rows = langfuse_rows()
    traces = {r["trace_id"]: r["trace_name"] for r in rows}
    want = Counter(
        {"lookup": "lookup", "rag_multi_hop": "rag", "agent": "agent", "": "unclassified"}[c]
        for c in traces.values()
    )
    assert counts == want


def test_bad_class_map(tmp_path: Path) -> None:
    with pytest.raises(LogSchemaError, match=r"key '\^/api/\(lookup'.*bad regular expression"):
        read("langfuse/observations.jsonl", class_map=FIX / "bad_class_map.yaml")
    shape = tmp_path / "shape.yaml"
    shape.write_text("- just a string\n")
    with pytest.raises(LogSchemaError, match="expected a mapping"):
        read("langfuse/observations.jsonl", class_map=shape)
    value = tmp_path / "value.yaml"
    value.write_text('"x": [1]\n')
    with pytest.raises(LogSchemaError, match=r"key 'x': expected a class name, got a list$"):
        read("langfuse/observations.jsonl", class_map=value)
    when = tmp_path / "when.yaml"  # YAML reads both as dates: said as the file has them
    when.write_text('"y": 2026-01-05 10:00:00\n2026-01-05: z\n')
    with pytest.raises(LogSchemaError, match="key 'y': expected a class name, got 2026-01-05T10"):
        read("langfuse/observations.jsonl", class_map=when)
    when.write_text("2026-01-05: z\n")
    with pytest.raises(LogSchemaError, match="key 2026-01-05: expected a regular expression"):
        read("langfuse/observations.jsonl", class_map=when)


# ---------------------------------------------------------------------------------------------
# LiteLLM, Helicone


@pytest.mark.parametrize("name", ["litellm/spend_logs.json", "litellm/payload.jsonl"])
def test_litellm(name: str) -> None:
    text = (FIX / name).read_text()
    rows = (
        json.loads(text) if name.endswith(".json") else [json.loads(x) for x in text.splitlines()]
    )
    calls = [
        {
            "trace": r.get("session_id") or r.get("trace_id"),
            "cls": (r["request_tags"] or [None])[0],
            "start": r["startTime"],
            "cost": r.get("spend", r.get("response_cost")),
        }
        for r in rows
    ]
    result = read(name)
    assert result.format == "litellm"
    assert_classes(per_class(result), traces_expect(calls))
    errors = sum(r["status"] == "error" for r in result.table.to_pylist())
    final: dict[str, str] = {}  # session -> status of its final call
    for c, r in sorted(zip(calls, rows, strict=True), key=lambda cr: cr[0]["start"]):
        final[c["trace"]] = r["status"]
    assert errors == sum(s == "failure" for s in final.values()) == 1


def test_helicone_directory_of_parts() -> None:
    rows = [
        json.loads(line)
        for part in sorted((FIX / "helicone_parts").iterdir())
        for line in part.read_text().splitlines()
    ]
    calls = [
        {
            "trace": r["request_properties"]["Helicone-Session-Id"],
            "cls": r["request_properties"].get("Helicone-Session-Name"),
            "start": r["request_created_at"],
            "cost": r["costUSD"],
        }
        for r in rows
    ]
    result = read("helicone_parts")
    assert result.format == "helicone" and "from 2 files" in result.detected
    assert_classes(per_class(result), traces_expect(calls))
    assert result.unclassified == 1
    assert sum(r["status"] == "error" for r in result.table.to_pylist()) == 1


# ---------------------------------------------------------------------------------------------
# OpenTelemetry, OpenAI Batch, Bedrock (no cost in the export: priced by the pricer)


def otel_spans() -> list[dict]:
    spans = []
    for line in (FIX / "otel/traces.jsonl").read_text().splitlines():
        for rs in json.loads(line)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                spans.extend(ss["spans"])
    return spans


def otel_calls(cls_of) -> list[dict]:
    spans = otel_spans()
    calls = []
    for s in spans:
        attrs = {a["key"]: next(iter(a["value"].values())) for a in s["attributes"]}
        inp = attrs.get("gen_ai.usage.input_tokens", attrs.get("llm.token_count.prompt"))
        out = attrs.get("gen_ai.usage.output_tokens", attrs.get("llm.token_count.completion"))
        if inp is None:
            continue
        calls.append(
            {
                "trace": s["traceId"],
                "cls": cls_of(s, spans),
                "start": int(s["startTimeUnixNano"]),
                "cost": price(int(inp), int(out)),
            }
        )
    return calls


def test_otel_traces() -> None:
    def root_name(span: dict, spans: list[dict]) -> str:
        return next(
            s["name"] for s in spans if s["traceId"] == span["traceId"] and not s["parentSpanId"]
        )

    result = read("otel/traces.jsonl")
    assert result.format == "otel" and result.unit == "trace"
    assert_classes(per_class(result), traces_expect(otel_calls(root_name)))
    got = {r["query_class"]: r["calls"] for r in result.table.to_pylist()}
    assert got == {"chat_request": 1, "extract_request": 2, "agent_request": 4}
    assert all(r["status"] == "ok" for r in result.table.to_pylist())  # failures were not final
    for r in result.table.to_pylist():  # root-less latency: first call start to last call end
        assert r["latency_ms"] == pytest.approx((2 * (r["calls"] - 1) + 1.5) * 1000)


def test_otel_class_from_attribute() -> None:
    def feature(span: dict, spans: list[dict]) -> str:
        root = next(s for s in spans if s["traceId"] == span["traceId"] and not s["parentSpanId"])
        return root["attributes"][0]["value"]["stringValue"]

    result = read("otel/traces.jsonl", class_from="attributes.app.feature")
    assert_classes(per_class(result), traces_expect(otel_calls(feature)))


def test_openai_batch() -> None:
    rows = [
        json.loads(x) for x in (FIX / "openai_batch/batch_output.jsonl").read_text().splitlines()
    ]
    want: dict[str, list] = defaultdict(lambda: [0, 0.0, 0])
    for r in rows:
        acc = want[r["custom_id"].rsplit("-", 1)[0]]
        acc[0] += 1
        acc[2] += 1
        if r["response"]:
            u = r["response"]["body"]["usage"]
            acc[1] += price(u["prompt_tokens"], u["completion_tokens"])
    result = read("openai_batch/batch_output.jsonl")
    assert result.format == "openai-batch" and result.unit == "call"
    assert_classes(per_class(result), {k: tuple(v) for k, v in want.items()})
    table = result.table.to_pylist()
    assert sum(r["status"] == "error" for r in table) == 1
    assert sum(r["cost_usd"] is None for r in table) == 1


def test_bedrock() -> None:
    rows = [json.loads(x) for x in (FIX / "bedrock/invocations.jsonl").read_text().splitlines()]
    want: dict[str, list] = defaultdict(lambda: [0, 0.0, 0])
    for r in rows:
        cls = r.get("requestMetadata", {}).get("query_class", "unclassified")
        i = r["input"]
        inp = i["inputTokenCount"] + i["cacheReadInputTokenCount"] + i["cacheWriteInputTokenCount"]
        acc = want[cls]
        acc[0] += 1
        acc[1] += price(inp, r["output"]["outputTokenCount"])
        acc[2] += 1
    result = read("bedrock/invocations.jsonl")
    assert result.format == "bedrock"
    assert_classes(per_class(result), {k: tuple(v) for k, v in want.items()})
    assert result.unclassified == 1
    table = result.table.to_pylist()
    assert sum(r["status"] == "error" for r in table) == 1
    assert sum(r["cached_input_tokens"] for r in table) == sum(
        r["input"]["cacheReadInputTokenCount"] for r in rows
    )


# ---------------------------------------------------------------------------------------------
# Detection


DETECTED = {
    "langfuse/observations.jsonl": "langfuse",
    "langfuse/observations.csv.gz": "langfuse",
    "litellm/spend_logs.json": "litellm",
    "litellm/payload.jsonl": "litellm",
    "helicone_parts": "helicone",
    "otel/traces.jsonl": "otel",
    "openai_batch/batch_output.jsonl": "openai-batch",
    "bedrock/invocations.jsonl": "bedrock",
}


@pytest.mark.parametrize(("name", "fmt"), sorted(DETECTED.items()))
def test_auto_detection_and_explicit_format(name: str, fmt: str) -> None:
    assert read(name).format == fmt
    assert read(name, format=fmt).format == fmt


@pytest.mark.parametrize(("name", "fmt"), sorted(DETECTED.items()))
def test_wrong_format_says_what_the_content_looks_like(name: str, fmt: str) -> None:
    wrong = "bedrock" if fmt != "bedrock" else "langfuse"
    with pytest.raises(LogSchemaError, match=f"--format {wrong} expects .* looks like"):
        read(name, format=wrong)


def test_unknown_content() -> None:
    with pytest.raises(
        LogSchemaError, match=r"unknown log format: expected one of .*found fields: event, ts, user"
    ):
        read("unknown.jsonl")
    with pytest.raises(LogSchemaError, match=r"--format otel expects .*found fields: event"):
        read("unknown.jsonl", format="otel")


def test_mixed_directory(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes((FIX / "bedrock/invocations.jsonl").read_bytes())
    (tmp_path / "b.jsonl").write_bytes((FIX / "openai_batch/batch_output.jsonl").read_bytes())
    with pytest.raises(LogSchemaError, match="mixed content"):
        read_source(tmp_path, pricer=pricer)


def test_a_file_beside_costsim_s_table_is_left_to_its_reader(tmp_path: Path) -> None:
    """A README beside the Parquet parts of costsim's table: the table's reader reads the
    .parquet, .pq and .csv files alone, so the directory is the table (it was an unknown
    export format)."""
    pq.write_table(pa.table({"query_class": ["a"], "cost_usd": [1.0]}), tmp_path / "p.parquet")
    (tmp_path / "README.txt").write_text("hello\n")
    assert read_source(tmp_path) is None


def test_a_stray_file_beside_an_export_is_named_as_not_that_export(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes((FIX / "bedrock/invocations.jsonl").read_bytes())
    (tmp_path / "README.txt").write_text("hello\n")
    with pytest.raises(LogSchemaError) as info:
        read_source(tmp_path, pricer=pricer)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'README.txt'}: not ")
    assert "found fields: hello" in message
    assert "move it out of the directory" in message and "langfuse" not in message


def test_an_empty_file_or_directory_says_so_as_the_table_reader_does(tmp_path: Path) -> None:
    (tmp_path / "zero.parquet").write_bytes(b"")
    with pytest.raises(LogSchemaError, match=r"zero\.parquet has no rows$"):
        read_source(tmp_path / "zero.parquet")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(LogSchemaError, match=r"no data files in directory \(expected .*\.parquet"):
        read_source(tmp_path / "nothing")


def test_plain_table_is_left_to_read_pilot(tmp_path: Path) -> None:
    path = tmp_path / "pilot.parquet"
    pq.write_table(pa.table({"query_class": ["a"], "cost_usd": [1.0]}), path)
    assert read_source(path) is None
    assert read_source(path, format="table") is None
    with pytest.raises(LogSchemaError, match="--format langfuse expects"):
        read_source(path, format="langfuse")


def test_gzipped_json_and_bad_options(tmp_path: Path) -> None:
    gz = tmp_path / "logs.bin"  # content, not the name, tells gzip and format
    gz.write_bytes(gzip.compress((FIX / "bedrock/invocations.jsonl").read_bytes()))
    assert read(gz).format == "bedrock"
    with pytest.raises(LogSchemaError, match="--format: unknown format 'nope'"):
        read_source(gz, format="nope")
    with pytest.raises(LogSchemaError, match=r"--class-from: no field 'nowhere\.x'"):
        read(gz, class_from="nowhere.x")


def test_output_columns() -> None:
    table = read("langfuse/observations.jsonl").table
    assert table.schema.names == [
        "query_class",
        "cost_usd",
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "timestamp",
        "latency_ms",
        "status",
        "calls",
        "model",
    ]
    assert table.schema.field("calls").type == pa.int64()
    ts = table["timestamp"].to_pylist()
    assert ts == sorted(ts) and 1.7e9 < ts[0] < 1.8e9
    assert set(table["model"].to_pylist()) <= {"gpt-4o", "gpt-4o-mini"}
