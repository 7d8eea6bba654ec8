"""The command line as a user meets it: exit codes, one-line errors, outputs, help."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from costsim import __version__
from costsim.cli import app

ROOT = Path(__file__).resolve().parents[1]
PILOT = ROOT / "scenarios" / "pilot.parquet"
runner = CliRunner()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"costsim {__version__}"


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help(flag: str) -> None:
    result = runner.invoke(app, [flag])
    assert result.exit_code == 0
    assert "fit" in result.stdout


def test_fit_bundled_pilot_writes_model_and_dashboard(tmp_path: Path) -> None:
    before = _sha(PILOT)
    out = tmp_path / "pilot.model.json"
    result = runner.invoke(app, ["fit", str(PILOT), "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    model = json.loads(out.read_text())
    assert model["schema_version"] == 2
    assert set(model["classes"]) == {
        "lookup",
        "rag_single_hop",
        "rag_multi_hop",
        "long_context_summary",
        "agent_tool_use",
        "embedding_ingest",
    }
    for name in model["classes"]:
        assert name in result.stdout
    assert "Concentration: the costliest 1% of requests carry" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert _sha(PILOT) == before


def test_fit_is_byte_identical_across_runs(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for out in (a, b):
        assert runner.invoke(app, ["fit", str(PILOT), "-o", str(out), "-q"]).exit_code == 0
    assert a.read_bytes() == b.read_bytes()
    c = tmp_path / "c.json"
    assert runner.invoke(app, ["fit", str(PILOT), "-o", str(c), "-q", "--seed", "1"]).exit_code == 0
    assert c.read_bytes() != a.read_bytes()  # the seed is honoured, and recorded
    assert json.loads(c.read_text())["options"]["seed"] == 1


def test_fit_json_to_stdout(tmp_path: Path) -> None:
    result = runner.invoke(app, ["fit", str(PILOT), "-o", str(tmp_path / "m.json"), "--json", "-"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["kind"], data["schema_version"]) == ("costsim.fit-summary", 1)  # as every JSON
    row = data["classes"]["agent_tool_use"]
    assert row["requests"] > 0 and 0 < row["cost_share"] < 1
    assert 0 < data["top_1pct_cost_share"] < data["top_5pct_cost_share"] <= 1
    assert "agent_tool_use" in data["cost_heavy_classes"]


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BAD_INPUTS = [
    ("missing", None, r"pilot log not found"),
    ("notes.txt", "hello\n", r"neither costsim.s table .* nor an export costsim reads \(a Lang"),
    ("empty.csv", "query_class,cost_usd\n", r"has no rows"),
    ("noclass.csv", "cls,cost_usd\na,1\n", r"missing column 'query_class'.*--class-col"),
    ("nocost.csv", "query_class,price\na,1\n", r"cost_usd.*input_tokens"),
    ("neg.csv", "query_class,cost_usd\na,1\na,-1\n", r"cost_usd negative \(1 row: 2\)"),
    ("nan.csv", "query_class,cost_usd\na,1\na,NaN\n", r"cost_usd NaN"),
    ("tok.csv", "query_class,input_tokens\na,10\na,abc\n", r"input_tokens not a number"),
    ("single.csv", "query_class,cost_usd\n" + "a,1\n" * 20 + "b,2\n", r"class 'b' has 1 row"),
]


@pytest.mark.parametrize(("name", "content", "pattern"), BAD_INPUTS)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, name: str, content: str | None, pattern: str
) -> None:
    path = tmp_path / name
    if content is not None:
        _write_csv(path, content)
    before = _sha(path) if path.exists() else None
    result = runner.invoke(app, ["fit", str(path), "-o", str(tmp_path / "out.json")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "out.json").exists()
    if before is not None:
        assert _sha(path) == before


def test_mixed_schema_directory(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path / "logs"
    d.mkdir()
    pq.write_table(pa.table({"query_class": ["a"] * 20, "cost_usd": [1.0] * 20}), d / "a.parquet")
    pq.write_table(pa.table({"query_class": ["a"] * 20, "cost_usd": ["1"] * 20}), d / "b.parquet")
    result = runner.invoke(app, ["fit", str(d)])
    assert result.exit_code == 2
    assert "disagree on column 'cost_usd'" in result.stderr


def test_drop_invalid_reports_and_fits(tmp_path: Path) -> None:
    rows = "".join(f"a,{1 + i % 7}\n" for i in range(40)) + "a,-3\n"
    path = _write_csv(tmp_path / "p.csv", "query_class,cost_usd\n" + rows)
    result = runner.invoke(
        app, ["fit", str(path), "-o", str(tmp_path / "m.json"), "--drop-invalid", "-q"]
    )
    assert result.exit_code == 0, result.stderr
    assert "dropped 1 row: cost_usd negative (row 41)" in result.stderr
    assert json.loads((tmp_path / "m.json").read_text())["source"]["rows_dropped"] == 1


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["--cap", "foo=1"], r"--cap: expected NAME=VALUE"),
        (["--cap", "cost_usd=0.001"], r"--cap cost_usd=0.001 is below the largest"),
        (["--max-tokens", "100"], r"tokens=100 \(--cap, or --max-tokens\) is below the largest"),
        (["--drift-window", "soon"], r"--drift-window: expected a duration > 0"),
    ],
)
def test_bad_options_exit_2(tmp_path: Path, args: list[str], pattern: str) -> None:
    result = runner.invoke(app, ["fit", str(PILOT), "-o", str(tmp_path / "m.json"), *args])
    assert result.exit_code == 2
    assert re.search(pattern, result.stderr), result.stderr


def test_every_command_has_help_and_a_readme_example() -> None:
    readme = (ROOT / "README.md").read_text()
    command = get_command(app)
    for name, sub in command.commands.items():  # type: ignore[attr-defined]
        assert sub.help and len(sub.help.strip()) > 20, name
        assert f"costsim {name} " in readme, f"README has no example of `costsim {name}`"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    command = ".venv/bin/python -m pytest"
    assert f"\n{command}\n" in readme
    assert f"\n{command}\n" in (ROOT / ".ci" / "run").read_text()


def test_narrow_terminal_leaves_columns_out_and_says_so(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["fit", str(PILOT), "-o", str(tmp_path / "m.json")], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0
    tables = [line for line in result.stdout.splitlines() if not line.startswith("model written")]
    assert all(len(line) <= 80 for line in tables), max(tables, key=len)
    assert "left out: widen the terminal, or use --json" in result.stdout


def test_a_pilot_whose_costs_are_all_zero_is_warned_of_and_never_passes(
    tmp_path: Path,
) -> None:
    # a $0 pilot fits (a free tier is possible) but says what it means: a $0 forecast unless
    # the scenario prices the tokens; the same pilot with its costs fits without the warning
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(PILOT)
    at = table.schema.get_field_index("cost_usd")
    zero = tmp_path / "zero.parquet"
    pq.write_table(table.set_column(at, "cost_usd", pc.multiply(table["cost_usd"], 0.0)), zero)
    said = "every cost in the pilot is $0: a forecast of this model is $0 unless its scenario"
    result = runner.invoke(app, ["fit", str(zero), "-o", str(tmp_path / "z.json"), "-q"])
    assert result.exit_code == 0, result.stderr
    assert said in result.stderr
    result = runner.invoke(app, ["fit", str(PILOT), "-o", str(tmp_path / "p.json"), "-q"])
    assert result.exit_code == 0 and said not in result.stderr
    # and a check of it cannot pass: $0 passes any budget
    scenario = tmp_path / "z.yaml"
    scenario.write_text("model: z.json\nvolume: {requests: 1e6}\nhorizon: 7d\ntrials: 200\n")
    for gate in (["--max", "p95=100"], ["--exceed", "100:0.05"]):
        result = runner.invoke(app, ["check", str(scenario), *gate])
        assert result.exit_code == 2, result.stdout + result.stderr
        assert "the forecast is $0 for 1,000,000 projected requests" in result.stderr
        assert "which passes any budget" in result.stderr
