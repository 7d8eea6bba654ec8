"""Fuzzing the three files a user hands costsim: scenarios, model files and baselines.

Hypothesis mutates valid documents (a leaf replaced by a value of another type or an extreme
number, a key deleted, an unknown key added) and runs them through the CLI as a user would. Every
run must end in exit 0 or 2 — never a traceback, never exit 70 — and every exit-0 output must be
finite. About 2,100 cases in all; the example database is off and the runs are derandomised
(tests/conftest.py), so CI sees the same cases every time.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from costsim.cli import app

ROOT = Path(__file__).resolve().parents[1]
PILOT = ROOT / "scenarios" / "pilot.parquet"
runner = CliRunner()


def fuzz(examples: int) -> settings:
    """Hypothesis settings of a fuzz test: ``examples`` cases; fixtures are reused on purpose."""
    return settings(
        max_examples=examples,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# Values a careless hand or a broken tool puts where a number, a name or a list belongs.
ODD = st.one_of(
    st.sampled_from(
        [
            None, True, False, 0, -1, 1, 2, 20, 1e6, 1e300, -1e300, 10**30, 2**63, 0.5, -0.5,
            "nan", "inf", "-inf", "", "often", "20%", "1e400s", "2026-02-30", "30d", "0s", [], {},
            [1, 2], {"a": 1}, [None],
        ]
    ),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=10),  # plausible values, so that many runs get to forecast
    st.integers(min_value=0, max_value=100),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=6),
)  # fmt: skip


def _leaves(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every value in a nested document (containers included)."""
    out = [path] if path else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _leaves(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += _leaves(value, (*path, i))
    return out


@st.composite
def mutations(draw: st.DrawFn, base: dict[str, Any], max_changes: int = 3) -> dict[str, Any]:
    """``base`` with one to ``max_changes`` leaves replaced, deleted, or keys added."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, max_changes))):
        paths = _leaves(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = copy.deepcopy(draw(ODD))  # never share a drawn {} or []
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "volumes", "seed ", "1"]))] = copy.deepcopy(
                draw(ODD)
            )
    return doc


# The one infinity an output may hold by design: the Monte Carlo error (and the open end of the
# interval) of a quantile the trials cannot bound, which the notes then call unresolved.
UNBOUNDED = ("quantile_se", "quantile_ci95")


def _finite_everywhere(value: Any, where: str = "", unbounded_ok: bool = False) -> None:
    """No NaN, no infinity (written as null or as the strings inf/-inf) in a JSON output's
    figures, but for the error bars of unresolved quantiles."""
    if isinstance(value, dict):
        for k, v in value.items():
            _finite_everywhere(v, f"{where}.{k}", unbounded_ok or k in UNBOUNDED)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _finite_everywhere(v, f"{where}[{i}]", unbounded_ok)
    elif isinstance(value, float):
        assert math.isfinite(value), where
    elif isinstance(value, str):
        allowed = ("inf", "-inf") if unbounded_ok else ()
        assert value not in ("inf", "-inf", "nan") or value in allowed, where


def _assert_clean(result: Any, what: str) -> None:
    event(f"exit {result.exit_code}")  # --hypothesis-show-statistics shows the mix
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        what,
        repr(result.exception),
    )
    assert result.exit_code in (0, 2), (what, result.exit_code, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr, what
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (what, result.stderr)


def _forecast_json(scenario: Path, *extra: str) -> Any:
    args = ["forecast", str(scenario), "--trials", "100", "--no-bridge", "--json", "-", *extra]
    return runner.invoke(app, args)


# ---------------------------------------------------------------------------------------------
# Fixtures: a small model, a scenario and a baseline that are valid as they are
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("fuzz")
    df = pd.read_parquet(PILOT)
    small = df[df["query_class"].isin(["lookup", "agent_tool_use"])].iloc[:4000]
    small.to_parquet(d / "small.parquet")
    fitted = runner.invoke(app, ["fit", str(d / "small.parquet"), "-o", str(d / "m.json"), "-q"])
    assert fitted.exit_code == 0, fitted.stderr
    return d


BASE_SCENARIO: dict[str, Any] = {
    "model": "m.json",
    "horizon": "7d",
    "resolution": "1h",
    "start": "2027-01-04T00:00:00Z",
    "volume": {"requests": 200_000, "growth": 0.1, "uncertainty": 0.2},
    "mix": {"lookup": 0.7, "agent_tool_use": 0.3},
    "traffic": {
        "shape": "pilot",
        "spikes": {"rate": 0.5, "magnitude": {"median": 2, "sd": 0.4}, "duration": "2h"},
        "events": [{"name": "launch", "at": "2d", "duration": "1d", "multiplier": 2}],
    },
    "reliability": {"load_exponent": 1, "max_attempts": 3, "spike_cold_share": 0.2},
    "budget": {"p95": {"fail": 1e9, "warn": 1e8}},
    "seed": 1,
}


# Re-pricing refits each class (about 0.1 s): only the scenario fuzz pays for it.
PRICED_SCENARIO = {
    **BASE_SCENARIO,
    "pricing": {
        "default": {"input_per_mtok": 2.5, "output_per_mtok": 10},
        "classes": {"agent_tool_use": {"output_per_mtok": 15, "per_request": 0.001}},
    },
}


def test_the_unmutated_documents_run(workdir: Path) -> None:
    path = workdir / "s.yaml"
    path.write_text(yaml.safe_dump(PRICED_SCENARIO))
    result = _forecast_json(path)
    assert result.exit_code == 0, result.stderr
    _finite_everywhere(json.loads(result.stdout))


@fuzz(1100)
@given(doc=mutations(PRICED_SCENARIO))
def test_fuzzed_scenarios_exit_0_or_2(workdir: Path, doc: dict[str, Any]) -> None:
    path = workdir / "fuzz.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    result = _forecast_json(path)
    _assert_clean(result, yaml.safe_dump(doc))
    if result.exit_code == 0:
        _finite_everywhere(json.loads(result.stdout))


@fuzz(600)
@given(data=st.data())
def test_fuzzed_model_files_exit_0_or_2(workdir: Path, data: st.DataObject) -> None:
    base = json.loads((workdir / "m.json").read_text())
    doc = data.draw(mutations(base))
    (workdir / "fm.json").write_text(json.dumps(doc))
    scenario = workdir / "fm.yaml"
    if not scenario.exists():
        scenario.write_text(yaml.safe_dump({**BASE_SCENARIO, "model": "fm.json"}))
    result = _forecast_json(scenario)
    _assert_clean(result, "model mutation")
    if result.exit_code == 0:
        _finite_everywhere(json.loads(result.stdout))


@pytest.fixture(scope="module")
def baseline(workdir: Path) -> dict[str, Any]:
    scenario = workdir / "b.yaml"
    scenario.write_text(yaml.safe_dump({**BASE_SCENARIO, "trials": 200}))
    made = runner.invoke(
        app, ["forecast", str(scenario), "--json", str(workdir / "base.json"), "-q", "--no-bridge"]
    )
    assert made.exit_code == 0, made.stderr
    return dict(json.loads((workdir / "base.json").read_text()))


def _affordable(doc: dict[str, Any]) -> bool:
    """A mutated baseline asking for millions of trials is valid but slow: not fuzzed here."""
    trials = doc.get("trials")
    return not (isinstance(trials, (int, float)) and not isinstance(trials, bool) and trials > 5000)


@fuzz(400)
@given(data=st.data())
def test_fuzzed_baselines_exit_0_2_or_a_verdict(
    workdir: Path, baseline: dict[str, Any], data: st.DataObject
) -> None:
    doc = data.draw(mutations(baseline).filter(_affordable))
    path = workdir / "fb.json"
    path.write_text(json.dumps(doc))
    result = runner.invoke(
        app, ["check", str(workdir / "b.yaml"), "--baseline", str(path), "--json", "-"]
    )
    # a valid baseline may be judged a regression (3) or a broken budget (1): verdicts, not bugs
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    event(f"exit {result.exit_code}")
    assert result.exit_code in (0, 1, 2, 3), (result.exit_code, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    if result.exit_code != 2:
        _finite_everywhere(json.loads(result.stdout))
