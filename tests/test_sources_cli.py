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


# ---------------------------------------------------------------------------------------------
# Exports at a URI (object storage through pyarrow's filesystems; here file://)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "log",
    ["langfuse/observations.jsonl", "langfuse/observations.csv.gz", "helicone_parts", "otel"],
)
def test_an_export_at_a_uri_reads_as_the_same_export_here(log: str) -> None:
    """A file or a directory of parts, gzipped or not: the same table, notes and detection."""
    from costsim.sources import read_source

    here = read_source(FIXTURES / log)
    there = read_source((FIXTURES / log).resolve().as_uri())
    assert here is not None and there is not None
    assert there.table.equals(here.table)
    assert (there.detected, there.notes, there.unit) == (here.detected, here.notes, here.unit)


def test_an_export_at_a_uri_fits_through_the_cli_as_it_does_here(tmp_path: Path) -> None:
    local, local_out = _fit(tmp_path, FIXTURES / "otel" / "traces.jsonl")
    assert local.exit_code == 0, local.stderr
    (tmp_path / "remote").mkdir()
    uri = (FIXTURES / "otel" / "traces.jsonl").resolve().as_uri()
    remote, remote_out = _fit(tmp_path / "remote", uri)
    assert remote.exit_code == 0, remote.stderr
    assert remote_out.read_bytes() == local_out.read_bytes()
    assert remote.stderr == local.stderr  # "read as ...", its notes and warnings


def test_an_export_at_a_uri_is_copied_to_a_temporary_directory_that_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from costsim.sources._io import locate, staged

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    uri = (FIXTURES / "helicone_parts").resolve().as_uri()
    files = locate(uri)
    assert [f.label for f in files] == [f"{uri}/part-0001.jsonl", f"{uri}/part-0002.jsonl"]
    assert all(f.filesystem is not None for f in files)
    with staged(files) as local:
        assert [f.label for f in local] == [f.label for f in files]
        assert [f.kind for f in local] == [f.kind for f in files]
        for f, original in zip(local, files, strict=True):
            assert f.filesystem is None and Path(f.path).is_relative_to(tmp_path)
            name = original.path.rsplit("/", 1)[-1]
            assert Path(f.path).read_bytes() == (FIXTURES / "helicone_parts" / name).read_bytes()
    assert not any(tmp_path.iterdir())  # removed


def test_costsim_s_table_at_a_uri_is_left_there_for_the_streaming_fit(tmp_path: Path) -> None:
    from costsim.sources import read_source

    pilot = (Path(__file__).parent.parent / "scenarios" / "pilot.parquet").resolve()
    assert read_source(pilot.as_uri()) is None  # not an export: nothing copied
    result, out = _fit(tmp_path, pilot.as_uri())
    assert result.exit_code == 0, result.stderr
    (tmp_path / "here").mkdir()
    _, local_out = _fit(tmp_path / "here", pilot)
    assert out.read_bytes() == local_out.read_bytes()


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("missing.jsonl", "pilot log not found: file://"), ("empty_dir", "no data files")],
)
def test_a_uri_with_nothing_to_read_is_one_line_and_exit_2(
    tmp_path: Path, name: str, fragment: str
) -> None:
    (tmp_path / "empty_dir").mkdir()
    result, _ = _fit(tmp_path, (tmp_path / name).as_uri())
    one_error(result, fragment)


def test_an_unknown_export_at_a_uri_names_the_uri(tmp_path: Path) -> None:
    uri = (FIXTURES / "unknown.jsonl").resolve().as_uri()
    result, _ = _fit(tmp_path, uri)
    one_error(result, uri, "unknown log format")
