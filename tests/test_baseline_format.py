"""A baseline (a stored `costsim forecast --json`) is validated on load: every value `costsim
check` reads is checked, problems are a `BaselineError` naming the key path, one line, exit 2."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_model_format import PYDANTIC_WORDS, REPLACEMENTS, key_paths, mutate_at
from typer.testing import CliRunner

from costsim import check
from costsim.baseline import BaselineError, load_baseline
from costsim.cli import app

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "launch_month.yaml"
runner = CliRunner()


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A real baseline: `costsim forecast scenarios/launch_month.yaml --trials 200 --json`."""
    out = tmp_path_factory.mktemp("baseline") / "base.json"
    result = runner.invoke(
        app, ["forecast", str(SCENARIO), "--trials", "200", "--json", str(out), "-q"]
    )
    assert result.exit_code == 0, result.stderr
    return out, json.loads(out.read_text())


def _write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


def _error(path: Path) -> str:
    with pytest.raises(BaselineError) as info:
        load_baseline(path)
    text = str(info.value)
    assert text.startswith(f"baseline {path}: ") and "\n" not in text
    assert not any(word in text for word in PYDANTIC_WORDS), text
    return text


def _swap_p50_p90(d: dict[str, Any]) -> None:
    q = d["quantiles"]
    q["p50"], q["p90"] = q["p90"], q["p50"]


MUTATIONS: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("null quantiles", lambda d: d.update(quantiles=dict.fromkeys(d["quantiles"])),
     "quantiles.p5: expected a number >= 0, got null"),
    ("text seed", lambda d: d.update(seed="7"), "seed: expected an integer >= 0, got '7'"),
    ("boolean seed", lambda d: d.update(seed=True),
     "seed: expected an integer >= 0, got true (a boolean)"),
    ("negative seed", lambda d: d.update(seed=-1), "seed: expected an integer >= 0, got -1"),
    ("missing quantile", lambda d: d["quantiles"].pop("p99"), "quantiles.p99: required"),
    ("missing mean", lambda d: d["quantiles"].pop("mean"), "quantiles.mean: required"),
    ("negative quantile", lambda d: d["quantiles"].update(p5=-1),
     "quantiles.p5: expected a number >= 0, got -1"),
    ("infinite quantile", lambda d: d["quantiles"].update(mean="inf"),
     "quantiles.mean: expected a number >= 0, got 'inf'"),
    ("quantiles out of order", _swap_p50_p90, "quantiles.p90: must be >= p50"),
    ("quantiles not a mapping", lambda d: d.update(quantiles=[1, 2]),
     "quantiles: expected a mapping, got a list"),
    ("standard error NaN", lambda d: d["quantile_se"].update(p95="NaN"),
     "quantile_se.p95: expected a number >= 0 (or \"inf\"), got 'NaN'"),
    ("standard error missing", lambda d: d["quantile_se"].pop("p50"),
     "quantile_se.p50: required"),
    ("no trials", lambda d: d.update(trials=0), "trials: expected an integer >= 1, got 0"),
    ("fractional trials", lambda d: d.update(trials=2.5),
     "trials: expected an integer >= 1, got 2.5"),
    ("infinite horizon", lambda d: d.update(horizon_s="inf"),
     "horizon_s: expected a number > 0, got 'inf'"),
    ("zero horizon", lambda d: d.update(horizon_s=0), "horizon_s: expected a number > 0, got 0"),
    ("model hash a number", lambda d: d.update(model_hash=5),
     "model_hash: expected a string, got 5"),
    ("model hash missing", lambda d: d.pop("model_hash"), "model_hash: required"),
    ("per class missing", lambda d: d.pop("per_class"), "per_class: required"),
    ("class mean cost negative", lambda d: d["per_class"]["lookup"].update(mean_cost=-3),
     "per_class.lookup.mean_cost: expected a number >= 0, got -3"),
    ("class mean cost missing", lambda d: d["per_class"]["lookup"].pop("mean_cost"),
     "per_class.lookup.mean_cost: required"),
    ("class not a mapping", lambda d: d["per_class"].update(lookup=5),
     "per_class.lookup: expected a mapping, got 5"),
    ("percentiles short", lambda d: d["percentiles"].pop(),
     "percentiles: expected a list of 101 numbers >= 0, got 100 values"),
    ("percentiles null", lambda d: d.update(percentiles=None),
     "percentiles: expected a list of 101 numbers >= 0, got null"),
    ("percentile text", lambda d: d["percentiles"].__setitem__(50, "x"),
     "percentiles[50]: expected a number >= 0, got 'x'"),
    ("percentiles decreasing", lambda d: d["percentiles"].reverse(),
     "percentiles: must be non-decreasing"),
    ("scenario document not a mapping", lambda d: d["scenario"].update(document=[1]),
     "scenario.document: expected a mapping, got a list"),
    ("scenario not a mapping", lambda d: d.update(scenario="s.yaml"),
     "scenario: expected a mapping, got 's.yaml'"),
    ("kind", lambda d: d.update(kind="costsim.model"), "not a costsim forecast"),
    ("schema version", lambda d: d.update(schema_version=2), "forecast schema_version 2"),
    ("schema version a boolean", lambda d: d.update(schema_version=True),
     "forecast schema_version True"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "message"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS]
)
def test_each_problem_names_its_key_path(
    made: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    mutate: Callable[[dict[str, Any]], Any],
    message: str,
) -> None:
    doc = copy.deepcopy(made[1])
    mutate(doc)
    text = _error(_write(tmp_path / "b.json", doc))
    assert message in text, text


def test_every_problem_at_once(made: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    doc = copy.deepcopy(made[1])
    doc.update(seed="7", trials=0)
    doc["quantiles"]["p50"] = None
    path = _write(tmp_path / "b.json", doc)
    assert _error(path) == (
        f"baseline {path}: seed: expected an integer >= 0, got '7'; trials: expected an integer "
        ">= 1, got 0; quantiles.p50: expected a number >= 0, got null"
    )


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(added_by_a_newer_writer={"x": 1}),  # unknown keys are ignored
        lambda d: d["per_class"]["lookup"].update(new_figure="text"),
        lambda d: d.pop("percentiles"),  # optional: no distribution shift then
        lambda d: d.pop("scenario"),  # optional: errors combined unpaired then
        lambda d: d["quantiles"].update(p50=d["quantiles"]["p5"]),  # ties are fine
    ],
)
def test_legitimate_baselines_load(
    made: tuple[Path, dict[str, Any]], tmp_path: Path, mutate: Callable[[dict[str, Any]], Any]
) -> None:
    doc = copy.deepcopy(made[1])
    mutate(doc)
    assert load_baseline(_write(tmp_path / "b.json", doc)) == doc  # the document as read


def test_real_baseline_loads_unchanged(made: tuple[Path, dict[str, Any]]) -> None:
    path, doc = made
    assert load_baseline(path) == doc


def test_names_stay_importable_from_check() -> None:
    assert check.BaselineError is BaselineError
    assert check.load_baseline is load_baseline


# ---------------------------------------------------------------------------------------------
# The CLI: exit 2, one red line, no traceback
# ---------------------------------------------------------------------------------------------

CLI_CASES = {
    "null quantiles": (
        lambda d: d.update(quantiles=dict.fromkeys(d["quantiles"])),
        "quantiles.p5: expected a number >= 0, got null",
    ),
    "text seed": (lambda d: d.update(seed="seven"), "seed: expected an integer >= 0, got 'seven'"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_bad_baseline_exits_2_with_one_line(
    made: tuple[Path, dict[str, Any]], tmp_path: Path, case: str
) -> None:
    mutate, message = CLI_CASES[case]
    doc = copy.deepcopy(made[1])
    mutate(doc)
    bad = _write(tmp_path / "bad.json", doc)
    result = runner.invoke(app, ["check", str(SCENARIO), "--baseline", str(bad)])
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: baseline {bad}: "), lines[0]
    assert message in lines[0], lines[0]


# ---------------------------------------------------------------------------------------------
# Property: any mutation of any key is a baseline or a BaselineError, never another exception
# ---------------------------------------------------------------------------------------------


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_mutation_is_a_baseline_or_a_baseline_error(
    made: tuple[Path, dict[str, Any]], tmp_path: Path, data: st.DataObject
) -> None:
    doc = copy.deepcopy(made[1])
    changes = data.draw(
        st.lists(
            st.tuples(st.sampled_from(key_paths(doc)), st.sampled_from(REPLACEMENTS)),
            min_size=1,
            max_size=3,
        )
    )
    for path, how in changes:
        mutate_at(doc, path, how)
    path = _write(tmp_path / "b.json", doc)
    try:
        load_baseline(path)
    except BaselineError as exc:
        text = str(exc)
        assert "\n" not in text
        assert not any(word in text for word in PYDANTIC_WORDS), text
