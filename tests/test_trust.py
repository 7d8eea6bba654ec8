"""Never a false green: what a careless user did, run through the CLI as they would run it."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from cli_helpers import one_error, run
from typer.main import get_command
from typer.testing import CliRunner

import costsim.cli as cli
import costsim.cli_shared as cli_shared
import costsim.simulate.forecast as forecast_mod
from costsim.cli import app
from costsim.model.file import load_model

ROOT = Path(__file__).resolve().parents[1]
PILOT = ROOT / "scenarios" / "pilot.parquet"
MODEL = ROOT / "scenarios" / "pilot.model.json"
runner = CliRunner()


def _scenario(tmp_path: Path, name: str = "s.yaml", **extra) -> Path:
    doc = {
        "model": str(MODEL),
        "horizon": "7d",
        "volume": {"requests": 500_000, "uncertainty": 0.1},
        "trials": 2000,
        "seed": 3,
    }
    doc.update(extra)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


# ---------------------------------------------------------------------------------------------
# Finite or refused
# ---------------------------------------------------------------------------------------------


def test_a_cost_that_overflows_the_fit_is_refused_by_row(tmp_path: Path) -> None:
    df = pd.read_parquet(PILOT).iloc[:3000].copy()
    df.loc[5, "cost_usd"] = 1e300
    path = tmp_path / "p.parquet"
    df.to_parquet(path)
    out = tmp_path / "m.json"
    one_error(run("fit", path, "-o", out), "cost_usd too large (above 1e+15)", "row: 6")
    assert not out.exists()
    dropped = run("fit", path, "-o", out, "-q", "--drop-invalid")
    assert dropped.exit_code == 0, dropped.stderr
    assert "RuntimeWarning" not in dropped.stderr
    assert "dropped 1 row: cost_usd too large" in dropped.stderr
    assert json.loads(out.read_text())["source"]["rows_dropped"] == 1


def _broken_simulate(value: float):
    real = forecast_mod.simulate_runs

    def simulate_runs(*args, **kwargs):
        main, *rest = real(*args, **kwargs)
        return [replace(main, totals=np.full_like(main.totals, value)), *rest]

    return simulate_runs


@pytest.mark.parametrize(
    ("value", "fragment"),
    [(np.nan, "the forecast is not finite"), (np.inf, "trials overflow"), (0.0, "is $0")],
)
def test_check_never_passes_a_broken_forecast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: float, fragment: str
) -> None:
    scenario = _scenario(tmp_path)
    monkeypatch.setattr(forecast_mod, "simulate_runs", _broken_simulate(value))
    result = run("check", scenario, "--max", "p95=100", "--max", "mean=1")
    one_error(result, fragment)
    one_error(run("forecast", scenario, "--json", tmp_path / "f.json"), fragment)
    assert not (tmp_path / "f.json").exists()


def test_a_forecast_priced_at_zero_points_at_the_prices(tmp_path: Path) -> None:
    """Every price 0: the $0 is refused as any $0 forecast is, and the line names the scenario
    and its prices as the cause (it said to check the volume)."""
    free = {"input_per_mtok": 0, "output_per_mtok": 0, "cached_per_mtok": 0}
    scenario = _scenario(tmp_path, "free.yaml", pricing={"default": free})
    result = run("check", scenario, "--max", "p95=100")
    one_error(result, "free.yaml: the forecast is $0", "check the scenario's prices (pricing:")


def test_a_forecast_of_few_requests_may_be_zero_at_p50(tmp_path: Path) -> None:
    # 2 requests a week: P(no request at all) is at least e^-2 = 14% (more with an uncertain
    # volume), so P5 = $0 is an honest answer (at 3 a week, e^-3 = 5.0% sat on P5's edge)
    result = run("forecast", _scenario(tmp_path, volume={"requests": 2}), "--json", "-")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["quantiles"]["p5"] == 0


# ---------------------------------------------------------------------------------------------
# Command-line options get the bounds of their YAML keys
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--trials", "1000000000"], "--trials: expected auto or an integer in [100, 10,000,000]"),
        (["--trials", "99"], "--trials: expected auto or an integer in [100, 10,000,000]"),
        (["--max", "p95=100", "--warn", "p95=200"], "warn level $200 must be below the fail"),
        (["--max", "p95=100", "--precision", "80%"], "--precision: expected a percentage in"),
        (["--max", "p95=100", "--precision", "0%"], "--precision: expected a percentage in"),
        (["--max", "p95=100", "--seed", "-4"], "--seed: expected an integer in [0, "),
    ],
)
def test_check_options_are_bounded(tmp_path: Path, args: list[str], fragment: str) -> None:
    one_error(run("check", _scenario(tmp_path), *args), fragment)


def test_empty_column_name_is_bad_input(tmp_path: Path) -> None:
    one_error(
        run("fit", PILOT, "--class-col", "", "-o", tmp_path / "m.json"),
        "--class-col: expected a column name, got an empty string",
    )


def test_a_bad_choice_is_one_line(tmp_path: Path) -> None:
    one_error(
        run("forecast", _scenario(tmp_path), "--engine", "fast"),
        "'fast' is not one of 'strata', 'reference'",
    )
    one_error(run("check", _scenario(tmp_path), "--format", "xml"), "'xml' is not one of")


# ---------------------------------------------------------------------------------------------
# --trials auto keeps the paired comparison
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rise(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A baseline, and the same scenario with 6% more volume (tolerance 5%)."""
    d = tmp_path_factory.mktemp("rise")
    base_scenario = _scenario(d, "base.yaml")
    baseline = d / "baseline.json"
    made = run("forecast", base_scenario, "--json", baseline, "-q", "--no-bridge")
    assert made.exit_code == 0, made.stderr
    risen = _scenario(d, "risen.yaml", volume={"requests": 530_000, "uncertainty": 0.1})
    return risen, baseline


@pytest.mark.parametrize("trials", [None, "auto", "4000"])
def test_a_rise_beyond_tolerance_is_a_regression_whatever_the_trials(
    rise: tuple[Path, Path], trials: str | None
) -> None:
    scenario, baseline = rise
    args = ["check", scenario, "--baseline", baseline, "--max", "p95=1e9", "--format", "lines"]
    if trials is not None:
        args += ["--trials", trials, "--precision", "2%"]
    result = run(*args)
    assert result.exit_code == 3, result.stdout + result.stderr
    out = result.stdout
    assert "REGRESSION risen.yaml p95 vs baseline" in out
    notes = [line for line in out.splitlines() if " note: " in line]
    assert any(
        "regressions: compared with" in n
        and "at its seed 3 and 2,000 trials" in n
        and "paired" in n
        for n in notes
    ), notes
    if trials is not None:
        assert any("budgets:" in n for n in notes), notes


# ---------------------------------------------------------------------------------------------
# Resources
# ---------------------------------------------------------------------------------------------


def test_a_forecast_too_large_for_memory_is_refused_with_the_knob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forecast_mod, "RUN_MEMORY", 1e6)
    one_error(
        run("forecast", _scenario(tmp_path)), "6 classes", "lower --trials", "merge small classes"
    )


def test_the_worker_processes_copies_count_and_fewer_workers_is_the_knob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from costsim.parallel import Parallel
    from costsim.scenario import load_scenario

    scenario_path = _scenario(tmp_path)
    sc = load_scenario(scenario_path)
    assert sc.model_path is not None
    model = load_model(sc.model_path)
    one = forecast_mod.memory_needed(sc, model, Parallel(1))
    two = forecast_mod.memory_needed(sc, model, Parallel(2))
    assert one["workers"] == 0.0  # no worker processes: no copies
    assert two["workers"] == 3 * (two["units"] + two["strata"])  # two copies, one pickled
    assert two["chunk"] == 2 * one["chunk"]  # a chunk under way on each worker
    between = (sum(one.values()) + sum(two.values())) / 2
    monkeypatch.setattr(forecast_mod, "RUN_MEMORY", between)
    assert run("forecast", scenario_path, "--workers", "1", "--no-bridge").exit_code == 0
    one_error(
        run("forecast", scenario_path, "--workers", "2", "--no-bridge"),
        "copies for the worker processes",
        "use fewer --workers",
    )


def test_the_parts_of_a_refused_forecast_add_up_to_its_total(tmp_path: Path) -> None:
    # 64 workers on a small machine: the working arrays of a chunk on each are the bulk, and
    # were left out of the parts listed
    line = one_error(
        run("forecast", _scenario(tmp_path), "--workers", "64", "--no-bridge"),
        "64 workers:",
        "GiB of working arrays",
        "use fewer --workers (this machine has",
    )
    total, *parts = (float(x) for x in re.findall(r"([0-9.]+) GiB(?! each| costsim)", line))
    assert abs(sum(parts) - total) <= 0.05 * (len(parts) + 1), line


def test_out_of_memory_is_bad_input_not_a_bug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom() -> None:
        raise MemoryError

    monkeypatch.setattr(cli, "app", boom)
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 2
    assert "out of memory" in capsys.readouterr().err


def test_reference_engine_says_how_long_it_expects(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, volume={"requests": 1000}, trials=100)
    result = run("forecast", scenario, "--engine", "reference", "-q")
    assert result.exit_code == 0, result.stderr
    assert "reference engine: every request is drawn" in result.stderr
    assert "expected to take about" in result.stderr


# ---------------------------------------------------------------------------------------------
# Help
# ---------------------------------------------------------------------------------------------


def _params():
    group = get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        for param in command.params:
            yield name, param


def test_every_option_has_help_and_one_metavar_style() -> None:
    for command, param in _params():
        if param.param_type_name != "option" or param.name in ("help",):
            continue
        assert getattr(param, "help", None), f"{command} {param.opts[0]} has no help text"
        if getattr(param, "is_flag", False) or param.metavar is None:
            continue
        assert param.metavar == param.metavar.upper() or "auto" in param.metavar, (
            command,
            param.opts,
            param.metavar,
        )


@pytest.mark.parametrize("command", ["fit", "forecast", "check", "init", "schema"])
def test_help_has_no_trailing_spaces_and_honours_no_color(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], env={"NO_COLOR": "1", "COLUMNS": "100"})
    assert result.exit_code == 0
    assert "\x1b[" not in result.stdout
    assert all(line == line.rstrip() for line in result.stdout.splitlines()), command


def test_shell_completion_is_offered() -> None:
    result = runner.invoke(app, ["--help"])
    assert "--install-completion" in result.stdout


def test_a_fail_level_below_the_inherited_warn_level_replaces_it(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, budget={"p95": {"fail": 2e9, "warn": 1e9}})
    result = run("check", scenario, "--max", "p95=1e9", "--format", "lines")
    assert result.exit_code == 0, result.stderr  # the scenario's warn level gives way
    assert result.stdout.startswith("PASS s.yaml p95 ")
    one_error(
        run("check", scenario, "--max", "p95=1e9", "--warn", "p95=1e9"),
        "the warn level $1,000,000,000 must be below the fail level",
    )


def test_progress_is_shown_on_a_terminal_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from rich.console import Console

    scenario = _scenario(tmp_path, trials=4000)
    plain = run("forecast", scenario, "-q", "--no-bridge")
    assert plain.exit_code == 0 and plain.stderr == ""  # a CI log gets no bar
    screen = io.StringIO()
    monkeypatch.setattr(cli_shared, "stderr", Console(file=screen, force_terminal=True, width=100))
    monkeypatch.setattr(cli_shared, "PROGRESS_AFTER_S", 0.0)
    result = run("forecast", scenario, "-q", "--no-bridge")
    assert result.exit_code == 0, result.stderr
    shown = screen.getvalue()
    assert "preparing classes" in shown and "simulating trials" in shown
    fit_screen = io.StringIO()
    monkeypatch.setattr(
        cli_shared, "stderr", Console(file=fit_screen, force_terminal=True, width=100)
    )
    fitted = run("fit", PILOT, "-o", tmp_path / "m.json", "-q")
    assert fitted.exit_code == 0
    assert "reading rows" in fit_screen.getvalue() and "fitting classes" in fit_screen.getvalue()


def test_an_unresolved_quantile_is_marked_and_never_judged(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, trials=100)
    result = run("forecast", scenario, "--json", "-", "--no-bridge")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["quantile_se"]["p99"] == "inf"  # P99 of 100 trials: unbounded above
    assert data["quantile_ci95"]["p99"][1] == "inf"
    assert any("P95, P99 unresolved: 100 trials cannot bound them" in n for n in data["notes"])
    assert data["quantile_se"]["p50"] != "inf"
    one_error(
        run("check", scenario, "--max", "p99=1e12"),
        "p99 cannot be judged with 100 trials",
        "use --trials 564 or more",
    )
    assert run("check", scenario, "--max", "p50=1e12").exit_code == 0
    report = run("forecast", scenario, "--no-bridge")
    assert "unresolved" in report.stdout


def test_cap_sensitivity_is_reported_where_the_mean_depends_on_the_cap(tmp_path: Path) -> None:
    # the bundled model's long_context_summary tail has xi > 1: its mean is the cap's
    scenario = _scenario(tmp_path, trials=1000)
    data = json.loads(run("forecast", scenario, "--json", "-").stdout)
    cs = data["cap_sensitivity"]
    assert cs["classes"] == ["long_context_summary"]
    assert cs["cap_x1"]["mean"] < cs["cap_x10"]["mean"] < cs["cap_x100"]["mean"]
    assert any("the mean depends on the cap of long_context_summary" in n for n in data["notes"])
    quick = json.loads(run("forecast", scenario, "--json", "-", "--no-bridge").stdout)
    assert quick["cap_sensitivity"] is None  # measured with the bridge only (check skips it)
    [note] = [n for n in quick["notes"] if "the mean depends on the cap of" in n]
    assert "long_context_summary" in note and "the forecast with its bridge" in note
    assert note.endswith("the default one is only a multiple of the largest value the pilot saw")


def test_an_empty_name_leaves_an_optional_column_out(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    assert run("fit", PILOT, "--latency-col", "", "-o", out, "-q").exit_code == 0
    assert "latency_ms" not in json.loads(out.read_text())["classes"]["lookup"]["quantities"]
    one_error(run("fit", PILOT, "--latency-col", " ", "-o", out), "--latency-col: expected")
