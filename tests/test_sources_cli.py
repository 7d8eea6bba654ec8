"""`costsim fit` on the exports of observability tools, and `costsim prices`, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import one_error, run

FIXTURES = Path(__file__).parent / "fixtures" / "sources"


def _fit(tmp_path: Path, log: Path, *extra: object):
    out = tmp_path / "m.model.json"
    result = run("fit", log, "-o", out, "--min-class-rows", 2, "--drop-invalid", *extra)
    return result, out


def test_a_trace_export_fits_with_calls_per_query_as_its_own_quantity(tmp_path: Path) -> None:
    result, out = _fit(tmp_path, FIXTURES / "otel" / "traces.jsonl")
    assert result.exit_code == 0, result.stderr
    assert "read as OpenTelemetry" in result.stderr and "auto-detected" in result.stderr
    assert "calls/query" in result.stdout
    model = json.loads(out.read_text())
    assert any("calls" in c["quantities"] for c in model["classes"].values())
    # the same export as calls: one row per call, no calls-per-query quantity
    calls, out2 = _fit(tmp_path, FIXTURES / "otel" / "traces.jsonl", "--unit", "call")
    assert calls.exit_code == 0, calls.stderr
    by_call = json.loads(out2.read_text())
    assert not any("calls" in c["quantities"] for c in by_call["classes"].values())
    n_trace = sum(c["requests"] for c in model["classes"].values())
    n_call = sum(c["requests"] for c in by_call["classes"].values())
    assert n_call > n_trace


def test_calls_without_a_cost_are_priced_from_the_catalog(tmp_path: Path) -> None:
    result, out = _fit(tmp_path, FIXTURES / "openai_batch" / "batch_output.jsonl")
    assert result.exit_code == 0, result.stderr
    assert "priced from the catalog" in result.stderr
    model = json.loads(out.read_text())
    assert sum(c["cost_total"] for c in model["classes"].values()) > 0


@pytest.mark.parametrize(
    ("log", "fmt"),
    [
        ("otel/traces.jsonl", "bedrock"),
        ("bedrock/invocations.jsonl", "langfuse"),
        ("langfuse/observations.jsonl", "otel"),
    ],
)
def test_a_wrong_format_is_one_line_and_exit_2(tmp_path: Path, log: str, fmt: str) -> None:
    result, _ = _fit(tmp_path, FIXTURES / log, "--format", fmt)
    one_error(result, f"--format {fmt} expects", "use --format auto")


def test_export_options_on_costsim_table_are_refused(tmp_path: Path) -> None:
    pilot = Path(__file__).parent.parent / "scenarios" / "pilot.parquet"
    result, _ = _fit(tmp_path, pilot, "--class-from", "metadata.route")
    one_error(result, "--class-from", "costsim's table")


def test_parts_that_disagree_are_one_line_not_a_traceback(tmp_path: Path) -> None:
    # this fixture folder holds the same export twice, as JSONL and as gzipped CSV
    result, _ = _fit(tmp_path, FIXTURES / "langfuse")
    one_error(result, "langfuse")


def test_unknown_content_names_what_was_expected(tmp_path: Path) -> None:
    result, _ = _fit(tmp_path, FIXTURES / "unknown.jsonl")
    one_error(result, "unknown log format", "found fields")


def test_prices_shows_the_catalog_sheet_and_refuses_unknown_models() -> None:
    shown = run("prices", "openai:gpt-4o", "--at", "2025-01-01")
    assert shown.exit_code == 0, shown.stderr
    assert "$2.5 / Mtok" in shown.stdout and "$10 / Mtok" in shown.stdout
    one_error(run("prices", "gpt-4oo"), "closest", "openai:gpt-4o")
    one_error(run("prices", "openai:gpt-4o", "--at", "yesterday"), "--at")


def test_an_export_without_costs_is_priced_like_the_catalog_prices_each_call() -> None:
    """The OpenAI Batch fixture read with the bundled catalog: each call's cost is what
    genai-prices' own `calc_price` gives for its model, usage (cached tokens included) and time."""
    from datetime import UTC, datetime

    from genai_prices import Usage, calc_price

    from costsim.sources import read_source

    path = FIXTURES / "openai_batch" / "batch_output.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    got = read_source(path).table.to_pylist()  # the real catalog: no pricer given
    assert len(got) == len(rows)
    by_time = sorted(
        (r for r in rows if r["response"]), key=lambda r: r["response"]["body"]["created"]
    )
    priced = [r["cost_usd"] for r in got if r["cost_usd"] is not None]
    assert len(priced) == len(by_time)
    for r, cost in zip(by_time, priced, strict=True):
        body = r["response"]["body"]
        u = body["usage"]
        usage = Usage(input_tokens=u["prompt_tokens"], output_tokens=u["completion_tokens"])
        usage.cache_read_tokens = u.get("prompt_tokens_details", {}).get("cached_tokens", 0)
        want = calc_price(
            usage,
            model_ref=body["model"],
            provider_id="openai",
            genai_request_timestamp=datetime.fromtimestamp(body["created"], UTC),
        )
        assert cost == pytest.approx(float(want.total_price), rel=1e-12)
