"""`costsim check`: exit codes, noise-aware regressions, baselines refused, CI outputs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from costsim.check import Tolerance, evaluate, exit_code
from costsim.cli import app
from costsim.model.file import load_model
from costsim.scenario import parse_scenario
from costsim.simulate.forecast import run_forecast

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "scenarios" / "pilot.model.json"
runner = CliRunner()
PRICES = {"input_per_mtok": 2.0, "output_per_mtok": 18.0, "cached_per_mtok": 0.2}


def _scenario_dict(price_factor: float = 1.0, seed: int = 7, **extra) -> dict:
    d = {
        "model": str(MODEL),
        "horizon": "7d",
        "resolution": "1h",
        "volume": {"requests": 500_000, "uncertainty": 0.1},
        "pricing": {"default": {k: v * price_factor for k, v in PRICES.items()}},
        "traffic": {"spikes": {"rate": 0.3, "magnitude": {"median": 2}, "duration": "2h"}},
        "trials": 2000,
        "seed": seed,
    }
    d.update(extra)
    return d


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def _run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    d = tmp_path_factory.mktemp("base")
    scenario = _write(d / "s.yaml", _scenario_dict())
    out = d / "baseline.json"
    result = _run("forecast", scenario, "--json", out, "-q", "--no-bridge")
    assert result.exit_code == 0, result.stderr
    return scenario, out, json.loads(out.read_text())


def test_under_budget_passes_and_over_budget_fails(baseline) -> None:
    scenario, _, base = baseline
    p95 = base["quantiles"]["p95"]
    ok = _run("check", scenario, "--max", f"p95={p95 * 1.2:.0f}")
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    assert ok.stdout.splitlines()[0].startswith("PASS s.yaml p95 $")
    over = _run("check", scenario, "--max", f"p95={p95 * 0.8:.0f}")
    assert over.exit_code == 1
    assert over.stdout.splitlines()[0].startswith("FAIL s.yaml p95 $")


def test_warn_level_breach_passes_with_a_warning(baseline) -> None:
    scenario, _, base = baseline
    p95 = base["quantiles"]["p95"]
    result = _run(
        "check", scenario, "--max", f"p95={p95 * 1.5:.0f}", "--warn", f"p95={p95 * 0.8:.0f}"
    )
    assert result.exit_code == 0
    assert any(line.startswith("WARN s.yaml p95") for line in result.stdout.splitlines())


def test_exceedance_probability(baseline) -> None:
    scenario, _, base = baseline
    p90 = base["quantiles"]["p90"]  # about 10% of trials exceed it
    assert _run("check", scenario, "--exceed", f"{p90:.0f}:0.05").exit_code == 1
    assert _run("check", scenario, "--exceed", f"{p90:.0f}:0.2").exit_code == 0


def test_regression_beyond_tolerance_exits_3(baseline, tmp_path: Path) -> None:
    _, base_path, _ = baseline
    pricier = _write(tmp_path / "s.yaml", _scenario_dict(price_factor=1.10))
    result = _run("check", pricier, "--baseline", base_path, "--tolerance", "5%")
    assert result.exit_code == 3, result.stdout + result.stderr
    out = result.stdout
    assert "REGRESSION s.yaml p95 vs baseline" in out
    assert "KS statistic" in out and "Wasserstein distance" in out
    assert "classes driving the change" in out
    # budgets still met: the regression code, not the budget one
    loose = _run("check", pricier, "--baseline", base_path, "--tolerance", "15%")
    assert loose.exit_code == 0


def test_no_flakes_and_true_change_always_caught() -> None:
    """20 seeds: a scenario against its own baseline passes, even checked with other random
    numbers; a true +10% price change is caught every time (common random numbers)."""
    model = load_model(MODEL)
    tol = Tolerance(0.05, True)
    for seed in range(20):
        base_fc = run_forecast(parse_scenario(_scenario_dict(seed=seed)), model, bridge=False)
        base = _as_baseline(base_fc)
        same = run_forecast(parse_scenario(_scenario_dict(seed=seed)), model, bridge=False)
        assert exit_code([evaluate(same, [], [], base, "b", tol)]) == 0
        other = run_forecast(parse_scenario(_scenario_dict(seed=seed + 100)), model, bridge=False)
        assert exit_code([evaluate(other, [], [], base, "b", tol)]) == 0, seed
        pricier = run_forecast(parse_scenario(_scenario_dict(1.10, seed=seed)), model, bridge=False)
        verdicts = evaluate(pricier, [], [], base, "b", tol, ("p95",)).verdicts
        assert verdicts[0].status == "REGRESSION", (seed, verdicts[0].detail)


def _as_baseline(fc) -> dict:
    from costsim.report.forecast import forecast_to_dict

    return json.loads(json.dumps(forecast_to_dict(fc)))


def test_budget_from_the_scenario_file(tmp_path: Path, baseline) -> None:
    _, _, base = baseline
    p95 = base["quantiles"]["p95"]
    s = _write(
        tmp_path / "s.yaml",
        _scenario_dict(budget={"p95": {"fail": round(p95 * 0.9), "warn": round(p95 * 0.8)}}),
    )
    result = _run("check", s)
    assert result.exit_code == 1
    assert "FAIL s.yaml p95" in result.stdout


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda b: b.update(schema_version=99), "schema_version 99"),
        (lambda b: b.update(horizon_s=30 * 86400.0), "refusing to compare different horizons"),
        (lambda b: b.update(model_hash="0000000000000000"), "another model"),
        (lambda b: b.update(kind="something"), "not a costsim forecast"),
    ],
)
def test_incompatible_baselines_are_refused(baseline, tmp_path: Path, mutate, pattern: str) -> None:
    scenario, base_path, _ = baseline
    data = json.loads(base_path.read_text())
    mutate(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    result = _run("check", scenario, "--baseline", bad)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and pattern in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_allow_model_change(baseline, tmp_path: Path) -> None:
    scenario, base_path, _ = baseline
    data = json.loads(base_path.read_text())
    data["model_hash"] = "0000000000000000"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    assert _run("check", scenario, "--baseline", other, "--allow-model-change").exit_code == 0


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["--max", "p97=1"], "--max: expected STAT=USD"),
        (["--tolerance", "lots"], "--tolerance: expected a number"),
        (["--exceed", "100"], "--exceed: expected USD:PROBABILITY"),
        (["--trials", "many"], "--trials: expected auto or an integer in [100, 10,000,000]"),
        (["--baseline", "missing.json"], "baseline not found"),
        (["--baseline", str(ROOT / "scenarios")], "is a directory, expected a baseline (JSON)"),
    ],
)
def test_bad_options_exit_2(baseline, args: list[str], pattern: str) -> None:
    scenario, _, _ = baseline
    result = _run("check", scenario, *args)
    assert result.exit_code == 2
    assert pattern in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--tolerance", "5%"], "--tolerance changes nothing here: it applies to a comparison"),
        (["--precision", "2%"], "--precision changes nothing here: it sets how many trials"),
    ],
)
def test_an_option_that_changes_nothing_is_said(baseline, args: list[str], said: str) -> None:
    """Without a baseline, or without --trials auto: the check runs, and says so (the option
    was ignored without a word)."""
    scenario, _, _ = baseline
    result = _run("check", scenario, "--max", "p95=1e12", "--trials", "500", *args)
    assert result.exit_code == 0, result.stderr
    assert f"warning: {said}" in result.stderr
    assert (
        "changes nothing"
        not in _run("check", scenario, "--max", "p95=1e12", "--trials", "500").stderr
    )


def test_bad_scenario_exits_2(tmp_path: Path) -> None:
    s = _write(tmp_path / "s.yaml", _scenario_dict(volume={"requests": -5}))
    result = _run("check", s)
    assert result.exit_code == 2
    assert "volume.requests" in result.stderr


def test_markdown_junit_and_step_summary(baseline, tmp_path: Path, monkeypatch) -> None:
    scenario, base_path, base = baseline
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    md, junit = tmp_path / "c.md", tmp_path / "c.xml"
    p95 = base["quantiles"]["p95"]
    result = _run(
        "check", scenario, "--baseline", base_path, "--max", f"p95={p95 * 0.9:.0f}",
        "--markdown", md, "--junit", junit, "--json", tmp_path / "c.json",
    )  # fmt: skip
    assert result.exit_code == 1
    verdict_lines = [
        x
        for x in result.stdout.splitlines()
        if x.split(" ")[0] in ("PASS", "FAIL", "WARN", "REGRESSION")
    ]
    text = md.read_text()
    assert summary.read_text().startswith("# earlier step\n") and text in summary.read_text()
    root = ET.fromstring(junit.read_text())
    cases = root.findall(".//testcase")
    assert len(cases) >= len(verdict_lines)
    assert len(root.findall(".//failure")) == sum(x.startswith("FAIL") for x in verdict_lines)
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["exit_code"] == 1
    names = [v["name"] for r in data["results"] for v in r["verdicts"]]
    for case in cases:
        assert case.get("name") in names
    for name in names:
        assert name.replace("$", "\\$") in text or name in text


def test_trials_auto_reaches_the_precision(baseline) -> None:
    scenario, _, _ = baseline
    result = _run(
        "check",
        scenario,
        "--max",
        "p95=1e12",
        "--trials",
        "auto",
        "--precision",
        "0.5%",
        "--json",
        "-",
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    res = data["results"][0]
    v = next(v for v in res["verdicts"] if v["name"] == "p95")
    assert 1.96 * v["se"] <= 0.005 * v["value"] * 1.25  # the interval is (about) as narrow as asked
    assert any("--trials auto" in n for n in res["notes"])


def test_config_file_checks_several_scenarios(baseline, tmp_path: Path) -> None:
    scenario, base_path, base = baseline
    _write(tmp_path / "pricier.yaml", _scenario_dict(price_factor=1.1))
    cfg = tmp_path / "costsim.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "checks": [
                    {"scenario": str(scenario), "max": {"p95": base["quantiles"]["p95"] * 2}},
                    {"scenario": "pricier.yaml", "baseline": str(base_path), "tolerance": "5%"},
                ]
            }
        )
    )
    result = _run("check", "--config", cfg)
    assert result.exit_code == 3, result.stdout + result.stderr
    assert "PASS s.yaml p95" in result.stdout and "REGRESSION pricier.yaml" in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("checks:\n  - {scenario: s.yaml, maxx: {p95: 1}}\n")
    result = _run("check", "--config", bad)
    assert result.exit_code == 2 and "checks[0].maxx: unknown key" in result.stderr


def test_a_warn_level_keeps_the_scenarios_fail_level(tmp_path: Path, baseline) -> None:
    _, _, base = baseline
    p95 = base["quantiles"]["p95"]
    s = _write(tmp_path / "s.yaml", _scenario_dict(budget={"p95": round(p95 * 0.9)}))
    result = _run("check", s, "--warn", f"p95={p95 * 0.5:.0f}")
    assert result.exit_code == 1, result.stdout
    assert "FAIL s.yaml p95" in result.stdout


def test_paired_errors_catch_a_rise_just_above_the_tolerance(baseline, tmp_path: Path) -> None:
    """+8% volume against a 5% tolerance: with the baseline reproduced from its own scenario,
    the Monte Carlo error of the difference is the paired one, and every figure regresses."""
    _, base_path, _ = baseline
    d = _scenario_dict()
    d["volume"] = {**d["volume"], "requests": 540_000}
    more = _write(tmp_path / "s.yaml", d)
    result = _run("check", more, "--baseline", base_path, "--json", tmp_path / "c.json")
    assert result.exit_code == 3, result.stdout + result.stderr
    data = json.loads((tmp_path / "c.json").read_text())["results"][0]
    assert any("paired Monte Carlo errors" in n for n in data["notes"])
    regress = [v for v in data["verdicts"] if v["kind"] == "regression"]
    assert regress and all(v["status"] == "REGRESSION" for v in regress)
    p99 = next(v for v in regress if v["name"] == "p99 vs baseline")
    assert p99["se"] < 0.01 * p99["threshold"] / 0.05  # far below 1% of the figure


def test_nothing_to_check_is_a_usage_error(baseline) -> None:
    scenario, _, _ = baseline
    result = _run("check", scenario)
    assert result.exit_code == 2
    assert "nothing to check" in result.stderr


def test_budgets_judged_on_the_baseline_s_run_say_so(baseline, tmp_path: Path) -> None:
    # a baseline of fewer trials than the scenario's: budgets are judged on its rerun, which a
    # note says (it was said only with --trials); a baseline of the scenario's own trials: no
    # such note
    scenario, _, _ = baseline
    small = tmp_path / "small.json"
    made = _run("forecast", scenario, "--json", small, "-q", "--no-bridge", "--trials", "1000")
    assert made.exit_code == 0, made.stderr
    said = []
    for base in (small, baseline[1]):
        result = _run("check", scenario, "--baseline", base, "--max", "p95=1e9", "--format=lines")
        assert result.exit_code == 0, result.stdout + result.stderr
        said.append([line for line in result.stdout.splitlines() if "note: budgets:" in line])
    assert (
        len(said[0]) == 1
        and (
            "judged on the same run, the baseline's seed and trials (the scenario says seed 7, "
            "2,000 trials; --trials gives budgets a run of their own)"
        )
        in said[0][0]
    )
    assert said[1] == []
