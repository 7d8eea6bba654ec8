"""`forecast` and `check` on a scenario with deployments: the totals are the served option's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import one_error, run

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "deployments.yaml"


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("cmp") / "c.json"
    result = run("compare", SCENARIO, "--trials", 400, "--json", out, "-q")
    assert result.exit_code == 0, result.stderr
    return json.loads(out.read_text())


def test_forecast_totals_are_the_first_options_cost(tmp_path: Path, compared: dict) -> None:
    out = tmp_path / "f.json"
    result = run("forecast", SCENARIO, "--trials", 400, "--no-bridge", "--json", out, "-q")
    assert result.exit_code == 0, result.stderr
    fc = json.loads(out.read_text())
    assert fc["deployment"] == "api"  # no route: the first option
    for key in ("p5", "p50", "p95", "mean"):
        assert fc["quantiles"][key] == pytest.approx(
            compared["deployments"]["api"]["quantiles"][key], rel=1e-9
        )
    assert any("deployments: totals are the cost" in n for n in fc["notes"])


def test_check_gates_the_option_it_is_told(tmp_path: Path, compared: dict) -> None:
    p95 = compared["deployments"]["gpus"]["quantiles"]["p95"]
    ok = run("check", SCENARIO, "--trials", 400, "--max", f"p95={p95 * 1.01:.2f}",
             "--deployment", "gpus", "--format", "lines")  # fmt: skip
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    broken = run("check", SCENARIO, "--trials", 400, "--max", f"p95={p95 * 0.99:.2f}",
                 "--deployment", "gpus", "--format", "lines")  # fmt: skip
    assert broken.exit_code == 1, broken.stdout + broken.stderr
    one_error(run("check", SCENARIO, "--max", "p95=1", "--deployment", "gpu"), "expected one of")


def test_check_refuses_a_baseline_on_a_scenario_with_deployments(tmp_path: Path) -> None:
    base = tmp_path / "base.json"
    made = run("forecast", SCENARIO, "--trials", 200, "--no-bridge", "--json", base, "-q")
    assert made.exit_code == 0, made.stderr
    one_error(run("check", SCENARIO, "--baseline", base), "--baseline", "deployments")
