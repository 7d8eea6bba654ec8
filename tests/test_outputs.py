"""Outputs never clobber inputs: every output checked before any work, all written or none."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import yaml
from cli_helpers import one_error, run
from typer.testing import CliRunner

from costsim.errors import OutputError
from costsim.outputs import Output, check_outputs, write_outputs

ROOT = Path(__file__).resolve().parents[1]
PILOT = ROOT / "scenarios" / "pilot.parquet"
MODEL = ROOT / "scenarios" / "pilot.model.json"
runner = CliRunner()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def small_pilot(tmp_path: Path) -> Path:
    import pandas as pd

    df = pd.read_parquet(PILOT).iloc[:3000]
    path = tmp_path / "small.parquet"
    df.to_parquet(path)
    return path


@pytest.fixture()
def scenario(tmp_path: Path) -> Path:
    model = tmp_path / "m.json"
    shutil.copy(MODEL, model)
    path = tmp_path / "s.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": "m.json",
                "horizon": "7d",
                "volume": {"requests": 100_000},
                "trials": 200,
                "budget": {"p95": {"fail": 1e9}},
            }
        )
    )
    return path


def test_fit_output_onto_the_pilot_is_refused(small_pilot: Path) -> None:
    before = _sha(small_pilot)
    one_error(run("fit", small_pilot, "-o", small_pilot), "is an input of this command")
    assert _sha(small_pilot) == before
    # the same file named by a file:// URI is the same input
    one_error(
        run("fit", small_pilot.as_uri(), "--json", small_pilot), "is an input of this command"
    )
    assert _sha(small_pilot) == before


def test_fit_writes_nothing_when_one_output_cannot_be_written(
    small_pilot: Path, tmp_path: Path
) -> None:
    model = tmp_path / "out.model.json"
    one_error(
        run("fit", small_pilot, "-o", model, "--json", "/nonexistent/x.json"),
        "--json /nonexistent/x.json: the folder /nonexistent does not exist",
    )
    assert not model.exists()


def test_fit_refuses_to_write_inside_a_dataset_directory(tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    shutil.copy(PILOT, dataset / "part-0.parquet")
    one_error(run("fit", dataset, "-o", dataset / "m.model.json"), "inside the input directory")
    assert sorted(p.name for p in dataset.iterdir()) == ["part-0.parquet"]


def test_a_default_output_is_named_as_the_default_not_as_an_option_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`costsim fit .` in a dataset directory: its model file would land inside it. The refusal
    names the default, not a --output the user never typed."""
    shutil.copy(PILOT, tmp_path / "part-0.parquet")
    monkeypatch.chdir(tmp_path)
    result = run("fit", ".")
    one_error(result, "pilot.model.json (the default --output): is inside the input directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-0.parquet"]


@pytest.mark.parametrize("option", ["--json", "--markdown", "--samples", "--plot"])
def test_forecast_outputs_onto_the_scenario_or_model_are_refused(
    scenario: Path, option: str
) -> None:
    model = scenario.parent / "m.json"
    before = (_sha(scenario), _sha(model))
    for target in (scenario, model):
        result = run("forecast", scenario, option, target, "-q")
        if option in ("--samples", "--plot"):  # the suffix is checked too; either refusal works
            one_error(result, option)
        else:
            one_error(result, "is an input of this command")
    assert (_sha(scenario), _sha(model)) == before


def test_a_link_to_an_input_is_the_input(scenario: Path, tmp_path: Path) -> None:
    soft = tmp_path / "soft.json"
    soft.symlink_to(scenario.parent / "m.json")
    hard = tmp_path / "hard.json"
    os.link(scenario, hard)
    one_error(run("forecast", scenario, "--json", soft, "-q"), "is an input")
    one_error(run("forecast", scenario, "--json", hard, "-q"), "is an input")


def test_check_outputs_onto_inputs_are_refused(scenario: Path, tmp_path: Path) -> None:
    base = tmp_path / "base.json"
    assert run("forecast", scenario, "--json", base, "-q", "--no-bridge").exit_code == 0
    before = _sha(base)
    one_error(run("check", scenario, "--baseline", base, "--junit", base), "is an input")
    one_error(run("check", scenario, "--json", scenario), "is an input")
    assert _sha(base) == before


def test_init_force_never_overwrites_its_own_model(tmp_path: Path) -> None:
    model = tmp_path / "m.json"
    shutil.copy(MODEL, model)
    before = _sha(model)
    one_error(run("init", model, "-o", model, "--force"), "is an input of this command")
    assert _sha(model) == before


def test_two_outputs_to_one_file_or_to_stdout_are_refused(scenario: Path, tmp_path: Path) -> None:
    same = tmp_path / "out.txt"
    one_error(
        run("forecast", scenario, "--json", same, "--markdown", same),
        "--markdown",
    )
    one_error(
        run("forecast", scenario, "--json", "-", "--markdown", "-"),
        "--json and --markdown both write to standard output",
    )
    assert not same.exists()


@pytest.mark.parametrize(
    ("option", "name", "allowed"),
    [("--plot", "p.jpg", ".png, .svg, .pdf"), ("--samples", "s.xlsx", ".parquet, .pq, .csv")],
)
def test_unsupported_suffix_is_refused_before_any_work(
    scenario: Path, tmp_path: Path, option: str, name: str, allowed: str
) -> None:
    one_error(
        run("forecast", scenario, option, tmp_path / name), f"expected a file ending in {allowed}"
    )


def test_output_that_is_a_directory_is_refused(scenario: Path, tmp_path: Path) -> None:
    one_error(run("forecast", scenario, "--json", tmp_path), "is a directory")


def test_dash_is_stdout_for_every_text_output(scenario: Path) -> None:
    md = run("forecast", scenario, "--markdown", "-", "--no-bridge")
    assert md.exit_code == 0, md.stderr
    assert md.stdout.startswith("#") and "P95" in md.stdout
    csv = run("forecast", scenario, "--samples", "-", "--no-bridge")
    assert csv.exit_code == 0, csv.stderr
    assert csv.stdout.splitlines()[0].startswith("trial,total_usd,")
    assert len(csv.stdout.splitlines()) == 201
    junit = run("check", scenario, "--junit", "-")
    assert junit.exit_code == 0, junit.stderr
    assert junit.stdout.lstrip().startswith("<?xml")
    schema = run("schema", "-o", "-")
    assert json.loads(schema.stdout)["type"] == "object"


def test_existing_output_is_replaced_keeping_its_permissions(
    scenario: Path, tmp_path: Path
) -> None:
    out = tmp_path / "f.json"
    out.write_text("old")
    out.chmod(0o640)
    assert run("forecast", scenario, "--json", out, "-q", "--no-bridge").exit_code == 0
    assert json.loads(out.read_text())["kind"] == "costsim.forecast"
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_all_or_nothing_when_a_file_cannot_be_staged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("old a")
    outputs = check_outputs([Output("--a", a), Output("--b", b)], [])
    import costsim.outputs as mod

    real = mod.tempfile.mkstemp
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device", str(b))
        return real(*args, **kwargs)

    monkeypatch.setattr(mod.tempfile, "mkstemp", failing)
    with pytest.raises(OutputError, match="No space left on device"):
        write_outputs(outputs, {"--a": "new a", "--b": "new b"})
    assert a.read_text() == "old a" and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]  # no temporary left


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(OutputError) as info:
        check_outputs(
            [
                Output("--json", "/nonexistent/a.json"),
                Output("--plot", tmp_path / "x.gif", (".png",)),
            ],
            [],
        )
    message = str(info.value)
    assert "--json /nonexistent/a.json" in message and "--plot" in message
