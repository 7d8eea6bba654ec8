"""The model file is validated on load: every hand edit that would give a wrong forecast is a
`ModelFileError` naming the key path, all problems at once, on one line (exit 2 in the CLI)."""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from synth import SplicedTruth, make_log
from typer.testing import CliRunner

from costsim.cli import app
from costsim.errors import ModelFileError
from costsim.model.file import model_from_dict, model_to_dict, model_to_json
from costsim.model.fit import QUANTITIES, FitOptions, fit_model
from costsim.model.format import XI_RANGE, ModelDoc

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "scenarios" / "pilot.model.json"
PILOT_TEXT = MODEL.read_text()
C = "classes.lookup"
Q = f"{C}.quantities.cost_usd"
DIST = f"{Q}.distribution"
TAIL = f"{Q}.tail"
PYDANTIC_WORDS = ("Input should", "validation error", "pydantic", "Value error", "Field required")
DELETE = object()
runner = CliRunner()


def pilot() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(PILOT_TEXT)
    return doc


def _node(doc: Any, path: str) -> tuple[Any, str | int]:
    """The container holding ``path`` (dotted, with [i] for list items) and the last key."""
    parts: list[str | int] = []
    for name in path.split("."):
        head, *indexes = name.split("[")
        parts.append(head)
        parts += [int(i.rstrip("]")) for i in indexes]
    for part in parts[:-1]:
        doc = doc[part]
    return doc, parts[-1]


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    parent, key = _node(doc, path)
    if value is DELETE:
        del parent[key]
    else:
        parent[key] = value
    return doc


def _get(doc: dict[str, Any], path: str) -> Any:
    parent, key = _node(doc, path)
    return parent[key]


def _error(doc: Any) -> str:
    with pytest.raises(ModelFileError) as info:
        model_from_dict(doc, "m.json")
    text = str(info.value)
    assert text.startswith("m.json: ") and "\n" not in text
    assert not any(word in text for word in PYDANTIC_WORDS), text
    return text


def _swap_quantiles(d: dict[str, Any]) -> None:
    bq = _get(d, f"{DIST}.body_quantiles")
    bq[3], bq[4] = bq[4], bq[3]


def _not_psd(d: dict[str, Any]) -> None:
    corr = _get(d, f"{C}.dependence.correlation")
    for i, j, v in ((0, 1, 0.99), (0, 2, 0.99), (1, 2, -0.99)):
        corr[i][j] = corr[j][i] = v


# (what the mutation does, the mutation: a path and a new value, or a function; the key path and
#  the message expected in the error)
MUTATIONS: list[tuple[str, str | Callable[[dict[str, Any]], None], Any, str, str]] = [
    # types
    ("bool is not a number", f"{C}.requests", True, f"{C}.requests",
     "expected an integer >= 1, got true (a boolean)"),
    ("text is not a number", f"{C}.share", "0.5", f"{C}.share",
     "expected a number in [0, 1], got '0.5'"),
    ("NaN text", f"{DIST}.tail_prob", "NaN", f"{DIST}.tail_prob",
     "expected a number in [0, 1), got 'NaN'"),
    ("infinity where a finite number is needed", f"{DIST}.sigma", "inf", f"{DIST}.sigma",
     "expected a number > 0, got 'inf'"),
    ("a list for a mapping", C, [], C, "expected a mapping, got a list"),
    ("a number for a string", "source.path", 5, "source.path", "expected a string, got 5"),
    ("an integer for a flag", f"{C}.drift.estimated", 1, f"{C}.drift.estimated",
     "expected true or false, got 1"),
    # required and unknown keys
    ("missing key", f"{C}.drift", DELETE, f"{C}.drift", "required"),
    ("missing summary statistic", f"{Q}.summary.mean", DELETE, f"{Q}.summary.mean", "required"),
    ("unknown key, close to a known one", f"{C}.sahre", 0.1, f"{C}.sahre",
     "unknown key; did you mean 'share'?"),
    ("unknown key", f"{DIST}.shape", 1, f"{DIST}.shape",
     "unknown key; allowed: body_quantiles, tail_prob, xi, sigma, cap"),
    ("unknown top-level key", "extra", 1, "extra", "unknown key; allowed: kind,"),
    ("unknown quantity", f"{C}.quantities.widgets", {}, f"{C}.quantities.widgets",
     "unknown key; allowed: cost_usd, input_tokens, output_tokens, cached_share, latency_ms"),
    ("unknown quantity in caps", "options.caps.cost", 5.0, "options.caps.cost",
     "unknown key; did you mean 'cost_usd'?"),
    # the distribution
    ("body quantiles empty", f"{DIST}.body_quantiles", [], f"{DIST}.body_quantiles",
     "expected a list of at least 2 numbers >= 0, got 0 values"),
    ("body quantile negative", f"{DIST}.body_quantiles[0]", -3, f"{DIST}.body_quantiles[0]",
     "expected a number >= 0, got -3"),
    ("body quantile not finite", f"{DIST}.body_quantiles[2]", "inf", f"{DIST}.body_quantiles[2]",
     "expected a number >= 0, got 'inf'"),
    # a list of floats alone is checked at once (`Num.accepts_all`): its bad values too
    ("body quantile a negative float", f"{DIST}.body_quantiles[7]", -3.5,
     f"{DIST}.body_quantiles[7]", "expected a number >= 0, got -3.5"),
    ("body quantile a float NaN", f"{DIST}.body_quantiles[9]", float("nan"),
     f"{DIST}.body_quantiles[9]", "expected a number >= 0, got "),
    ("body quantile a float infinity", f"{DIST}.body_quantiles[9]", float("inf"),
     f"{DIST}.body_quantiles[9]", "expected a number >= 0, got "),
    ("body quantiles decreasing", _swap_quantiles, None, f"{DIST}.body_quantiles",
     "must be non-decreasing"),
    ("tail probability 1", f"{DIST}.tail_prob", 1, f"{DIST}.tail_prob",
     "expected a number in [0, 1), got 1"),
    ("sigma 0", f"{DIST}.sigma", 0, f"{DIST}.sigma", "expected a number > 0, got 0"),
    ("xi out of range", f"{DIST}.xi", 5.5, f"{DIST}.xi", "expected a number in [-1, 5], got 5.5"),
    ("xi below -1", f"{DIST}.xi", -2, f"{DIST}.xi", "expected a number in [-1, 5], got -2"),
    ("cap 0", f"{DIST}.cap", 0, f"{DIST}.cap", "expected a number > 0 or null, got 0"),
    ("cap below the body", f"{DIST}.cap", 1e-9, f"{DIST}.cap",
     "must be >= the largest body quantile"),
    ("xi >= 1 without a cap", lambda d: _get(d, DIST).update(xi=5, cap=None), None,
     f"{DIST}.cap", "required: a tail shape xi = 5 >= 1 has an infinite mean"),
    ("a draw of xi >= 1 without a cap",
     lambda d: (_set(d, f"{DIST}.cap", None), _set(d, f"{TAIL}.draws.xi[7]", 1.25)), None,
     f"{DIST}.cap", "required: a tail shape xi = 1.25 >= 1 has an infinite mean"),
    # the tail
    ("tail xi differs from the distribution's", f"{TAIL}.xi", 0.3, f"{TAIL}.xi",
     "must equal distribution.xi"),
    ("unknown tail source", f"{TAIL}.source", "fited", f"{TAIL}.source",
     "expected one of fitted, borrowed, none, got 'fited'; did you mean 'fitted'?"),
    ("xi interval reversed", f"{TAIL}.xi_ci", [0.2, -0.1], f"{TAIL}.xi_ci",
     "must be non-decreasing, but [1] = -0.1 < [0] = 0.2"),
    ("xi interval of 3 values", f"{TAIL}.xi_ci", [0, 1, 2], f"{TAIL}.xi_ci",
     "expected a list of 2 numbers or null, got 3 values"),
    ("negative sigma draws",
     lambda d: _get(d, f"{TAIL}.draws").update(sigma=[-s for s in _get(d, f"{TAIL}.draws.sigma")]),
     None, f"{TAIL}.draws.sigma[0]", "expected a number > 0, got -"),
    ("NaN xi draw", f"{TAIL}.draws.xi[4]", "NaN", f"{TAIL}.draws.xi[4]",
     "expected a number, got 'NaN'"),
    ("draws of different lengths", lambda d: _get(d, f"{TAIL}.draws.sigma").pop(), None,
     f"{TAIL}.draws.sigma", "expected as many draws as xi (200), got 199"),
    ("summary statistic negative", f"{Q}.summary.p95", -1, f"{Q}.summary.p95",
     'expected a number >= 0 (or "inf"), got -1'),
    ("quantity fitted from 0 rows", f"{Q}.n", 0, f"{Q}.n", "expected an integer >= 1, got 0"),
    # the class
    ("requests 0", f"{C}.requests", 0, f"{C}.requests", "expected an integer >= 1, got 0"),
    ("requests fractional", f"{C}.requests", 2.5, f"{C}.requests",
     "expected an integer >= 1, got 2.5"),
    ("negative share", f"{C}.share", -0.2, f"{C}.share", "expected a number in [0, 1], got -0.2"),
    ("shares not summing to 1", lambda d: _set(d, f"{C}.share", _get(d, f"{C}.share") + 0.1),
     None, "classes", "shares must sum to 1, got 1.1"),
    ("negative cost total", f"{C}.cost_total", -1, f"{C}.cost_total",
     "expected a number >= 0 or null, got -1"),
    ("class hourly profile of 23 hours", f"{C}.hourly_profile", [1.0] * 23,
     f"{C}.hourly_profile", "expected a list of 24 numbers >= 0 or null, got 23 values"),
    # the copula
    ("correlation not square", lambda d: _get(d, f"{C}.dependence.correlation")[0].pop(), None,
     f"{C}.dependence.correlation", "expected a 5 x 5 matrix (one row per variable)"),
    ("correlation of another size", f"{C}.dependence.correlation", [[1.0]],
     f"{C}.dependence.correlation", "expected a 5 x 5 matrix"),
    ("correlation not symmetric", f"{C}.dependence.correlation[0][1]", 0.5,
     f"{C}.dependence.correlation", "must be symmetric"),
    ("correlation diagonal not 1", f"{C}.dependence.correlation[2][2]", 0.9,
     f"{C}.dependence.correlation", "must have 1 on its diagonal"),
    ("correlation above 1", f"{C}.dependence.correlation[0][1]", 2,
     f"{C}.dependence.correlation[0][1]", "expected a number in [-1, 1], got 2"),
    ("correlation not positive semi-definite", _not_psd, None, f"{C}.dependence.correlation",
     "must be positive semi-definite"),
    ("copula variable unknown", f"{C}.dependence.variables[0]", "cost",
     f"{C}.dependence.variables[0]", "expected one of cost_usd, input_tokens"),
    ("copula variables not the quantities", f"{C}.dependence.variables[0]", "latency_ms",
     f"{C}.dependence.variables", "must not repeat a quantity"),
    ("copula missing a quantity",
     lambda d: _get(d, f"{C}.dependence").update(variables=["cost_usd"], correlation=[[1.0]]),
     None, f"{C}.dependence.variables", "expected the class's quantities (cost_usd, input_tokens"),
    # rates
    ("error rate above 1", f"{C}.rates.error_rate", 1.5, f"{C}.rates.error_rate",
     "expected a number in [0, 1] or null, got 1.5"),
    ("cold start rate negative", f"{C}.rates.cold_start_rate", -0.1, f"{C}.rates.cold_start_rate",
     "expected a number in [0, 1] or null, got -0.1"),
    ("retry probability above 1", f"{C}.rates.retry_pmf[1]", 2, f"{C}.rates.retry_pmf[1]",
     "expected a number in [0, 1], got 2"),
    ("retry pmf not summing to 1", f"{C}.rates.retry_pmf", [0.5, 0.4], f"{C}.rates.retry_pmf",
     "must sum to 1, got 0.9"),
    ("retry mean negative", f"{C}.rates.retry_mean", -1, f"{C}.rates.retry_mean",
     "expected a number >= 0 or null, got -1"),
    ("cold start cost ratio negative", f"{C}.rates.cold_start_cost_ratio", -1,
     f"{C}.rates.cold_start_cost_ratio", "expected a number >= 0 or null, got -1"),
    # drift
    ("drift window 0", f"{C}.drift.window_s", 0, f"{C}.drift.window_s",
     "expected a number > 0, got 0"),
    ("drift windows negative", f"{C}.drift.windows", -1, f"{C}.drift.windows",
     "expected an integer >= 0, got -1"),
    ("drift level variance infinite", f"{C}.drift.level_end_var", "inf",
     f"{C}.drift.level_end_var", "expected a number >= 0, got 'inf'"),
    ("drift step sd negative", f"{C}.drift.state_sd", -0.1, f"{C}.drift.state_sd",
     "expected a number >= 0, got -0.1"),
    ("drift phi above 1", f"{C}.drift.phi", 1.5, f"{C}.drift.phi",
     "expected a number in [0, 1], got 1.5"),
    ("drift kind unknown", f"{C}.drift.kind", "garch", f"{C}.drift.kind",
     "expected one of none, ar1, random_walk, got 'garch'"),
    ("drift share above 1", f"{C}.drift.common", 1.2, f"{C}.drift.common",
     "expected a number in [0, 1], got 1.2"),
    # traffic, options, source
    ("traffic requests 0", "traffic.requests", 0, "traffic.requests",
     "expected an integer >= 1, got 0"),
    ("hourly profile negative", "traffic.hourly_profile[3]", -1, "traffic.hourly_profile[3]",
     "expected a number >= 0, got -1"),
    ("weekday profile of 6 days", "traffic.weekday_profile", [1.0] * 6, "traffic.weekday_profile",
     "expected a list of 7 numbers >= 0 or null, got 6 values"),
    ("negative duration", "traffic.duration_s", -5, "traffic.duration_s",
     "expected a number >= 0 or null, got -5"),
    ("end before start", "traffic.end", 0, "traffic.end", "must not be before start"),
    ("negative seed", "options.seed", -1, "options.seed", "expected an integer >= 0, got -1"),
    ("cap factor below 1", "options.default_cap_factor", 0.5, "options.default_cap_factor",
     "expected a number >= 1 or null, got 0.5"),
    ("negative rows", "source.rows_read", -1, "source.rows_read",
     "expected an integer >= 0, got -1"),
    ("concentration above 1", "concentration.top_1pct", 1.5, "concentration.top_1pct",
     "expected a number in [0, 1], got 1.5"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "value", "where", "message"),
    [m[1:] for m in MUTATIONS],
    ids=[m[0] for m in MUTATIONS],
)
def test_each_problem_names_its_key_path(
    mutate: str | Callable[[dict[str, Any]], None], value: Any, where: str, message: str
) -> None:
    doc = pilot()
    if callable(mutate):
        mutate(doc)
    else:
        _set(doc, mutate, value)
    text = _error(doc)
    assert f"{where}: {message}" in text, text


def test_every_problem_at_once_on_one_line() -> None:
    doc = pilot()
    _swap_quantiles(doc)
    _set(doc, f"{C}.share", -0.2)
    _set(doc, "traffic.requests", "many")
    text = _error(doc)
    problems = text.removeprefix("m.json: ").split("; ")
    assert problems[0] == "traffic.requests: expected an integer >= 1, got 'many'"
    assert problems[1] == f"{C}.share: expected a number in [0, 1], got -0.2"
    assert problems[2].startswith(f"{DIST}.body_quantiles: must be non-decreasing")
    assert len(problems) == 3  # the shares' sum is not checked while a share is invalid


def test_nothing_reported_inside_an_unknown_key() -> None:
    text = _error(_set(pilot(), f"{C}.quantities.cost_usdd", 1))
    assert text == f"m.json: {C}.quantities.cost_usdd: unknown key; did you mean 'cost_usd'?"


def test_a_key_with_a_newline_stays_on_one_line() -> None:
    _error(_set(pilot(), "a\nb", 1))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (f"{Q}.summary.max", "inf"),  # the writer stores infinities as text
        (f"{Q}.summary.p999", 0.5),  # summary is open to new statistics
        (f"{Q}.diagnostics.anything", {"free": ["form"]}),  # diagnostics are free-form
        (f"{C}.cost_total", None),
        (f"{C}.rates.error_rate", None),
        (f"{DIST}.xi", XI_RANGE[1]),  # the range is closed; the cap bounds the mean
        (f"{DIST}.body_quantiles", [0.0, 0.0, 0.0, 0.01, 0.01, 0.02]),  # ties: atoms
        (f"{TAIL}.xi", None),
        (f"{TAIL}.draws", None),
        (f"{C}.requests", 3085.0),  # an integral number is an integer
    ],
)
def test_legitimate_values_load(path: str, value: Any) -> None:
    doc = _set(pilot(), path, value)
    if path == f"{DIST}.xi":
        _set(doc, f"{TAIL}.xi", value)
    model = model_from_dict(doc, "m.json")
    assert model.classes["lookup"].share == _get(doc, f"{C}.share")


def test_infinite_summary_round_trips() -> None:
    doc = _set(pilot(), f"{Q}.summary.max", "inf")
    model = model_from_dict(doc)
    assert math.isinf(model.classes["lookup"].quantities["cost_usd"].summary["max"])
    assert model_to_dict(model) == doc


def test_bundled_model_round_trips_byte_for_byte() -> None:
    assert model_to_json(model_from_dict(pilot())) == PILOT_TEXT


def test_json_schema_comes_from_the_same_declaration() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = ModelDoc.model_json_schema()
    jsonschema.validate(pilot(), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_set(pilot(), f"{C}.share", -0.2), schema)


def test_quantity_names_follow_the_fitter() -> None:
    text = _error(_set(pilot(), f"{C}.quantities.x", {}))
    assert f"allowed: {', '.join(QUANTITIES)}" in text


# ---------------------------------------------------------------------------------------------
# Models the fitter writes load back exactly
# ---------------------------------------------------------------------------------------------


def _fitted(xi: float, options: FitOptions | None = None) -> dict[str, Any]:
    rng = np.random.default_rng(11)
    truth = SplicedTruth(xi=xi)
    big, small = truth.sample(3000, rng), truth.sample(25, rng)  # the small class borrows a tail
    ts = {n: 1.7e9 + np.sort(rng.random(v.size)) * 9 * 86400 for n, v in (("a", big), ("b", small))}
    return model_to_dict(fit_model(make_log({"a": big, "b": small}, timestamps=ts), options))


@pytest.mark.parametrize("xi", [0.2, 1.3])
def test_fitted_models_round_trip(xi: float) -> None:
    with pytest.warns(Warning):  # a small class, and (xi >= 1) a heavy tail: reported
        doc = _fitted(xi)
    assert model_to_dict(model_from_dict(copy.deepcopy(doc))) == doc
    assert {q.tail_source for q in model_from_dict(doc).classes["b"].quantities.values()} == {
        "borrowed"
    }


def test_uncapped_infinite_mean_refused_with_the_fix() -> None:
    with pytest.warns(Warning):
        doc = _fitted(1.3, FitOptions(default_cap_factor=None))
    text = _error(doc)
    assert "classes.a.quantities.cost_usd.distribution.cap: required: a tail shape xi" in text
    assert "--cap" in text


# ---------------------------------------------------------------------------------------------
# The CLI: exit 2, one red line, no traceback
# ---------------------------------------------------------------------------------------------


def _forecast_with(tmp_path: Path, doc: dict[str, Any]) -> Any:
    model = tmp_path / "m.json"
    model.write_text(json.dumps(doc))
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        yaml.safe_dump({"model": "m.json", "horizon": "1d", "volume": {"requests": 2000}})
    )
    return runner.invoke(app, ["forecast", str(scenario), "-q", "--trials", "100", "--no-bridge"])


CLI_CASES = {
    "negative share": (lambda d: _set(d, f"{C}.share", -0.2), rf"{C}\.share: expected a number"),
    "negative sigma draws": (
        lambda d: _get(d, f"{TAIL}.draws").update(sigma=[-1.0] * 200),
        rf"{TAIL}\.draws\.sigma\[0\]: expected a number > 0, got -1\.0",
    ),
    "xi 5 without a cap": (
        lambda d: _get(d, DIST).update(xi=5, cap=None),
        rf"{DIST}\.cap: required: a tail shape xi = 5 >= 1 has an infinite mean",
    ),
    "negative body quantile": (
        lambda d: _set(d, f"{DIST}.body_quantiles[0]", -1),
        rf"{DIST}\.body_quantiles\[0\]: expected a number >= 0, got -1",
    ),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_bad_model_exits_2_with_one_line(tmp_path: Path, case: str) -> None:
    mutate, pattern = CLI_CASES[case]
    doc = pilot()
    mutate(doc)
    result = _forecast_with(tmp_path, doc)
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert str(tmp_path / "m.json") in lines[0]
    assert re.search(pattern, lines[0]), lines[0]


def test_cli_valid_model_still_forecasts(tmp_path: Path) -> None:
    result = _forecast_with(tmp_path, pilot())
    assert result.exit_code == 0, result.stderr


# ---------------------------------------------------------------------------------------------
# Property: any mutation of any key is a ModelFileError or a model, never another exception
# ---------------------------------------------------------------------------------------------


def key_paths(node: Any, where: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every key path, long lists represented by their first, second and last items."""
    out = [where] if where else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += key_paths(v, (*where, k))
    elif isinstance(node, list):
        for i in sorted({0, 1, len(node) - 1} & set(range(len(node)))):
            out += key_paths(node[i], (*where, i))
    return out


PATHS = key_paths(pilot())
REPLACEMENTS = [
    "negate", "delete", "NaN", "nan", "inf", math.nan, math.inf, 1e308, -1e308, 10**400, None,
    "text", [], [1], {}, True, 0,
]  # fmt: skip


def mutate_at(doc: Any, path: tuple[str | int, ...], how: Any) -> None:
    """Replace the value at ``path`` by ``how`` (or its negative, or delete it); a path an
    earlier change removed is left alone."""
    try:
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        key = path[-1]
        if how == "delete":
            del parent[key]
        elif how == "negate":
            old = parent[key]
            is_number = isinstance(old, (int, float)) and not isinstance(old, bool)
            parent[key] = -old if is_number else -1
        else:
            parent[key] = copy.deepcopy(how)
    except (KeyError, IndexError, TypeError):
        pass


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(st.sampled_from(PATHS), st.sampled_from(REPLACEMENTS)),
        min_size=1,
        max_size=3,
    )
)
def test_any_mutation_is_a_model_or_a_model_file_error(
    changes: list[tuple[tuple[str | int, ...], Any]],
) -> None:
    doc = pilot()
    for path, how in changes:
        mutate_at(doc, path, how)
    try:
        model_from_dict(doc, "m.json")
    except ModelFileError as exc:
        text = str(exc)
        assert text.startswith("m.json: ") and "\n" not in text
        assert not any(word in text for word in PYDANTIC_WORDS), text


def test_body_probabilities_are_checked() -> None:
    doc = json.loads(MODEL.read_text())
    n = len(_get_dist(doc)["body_quantiles"])
    _set(doc, f"{DIST}.body_probs", [0.0, 1.0])
    assert f"{DIST}.body_probs: expected one per body quantile ({n}), got 2" in _error(doc)
    _set(doc, f"{DIST}.body_probs", list(np.linspace(0.1, 1.0, n)))
    assert f"{DIST}.body_probs: must run from 0 to 1" in _error(doc)
    _set(doc, f"{DIST}.body_probs", list(np.linspace(0.0, 1.0, n)))
    model_from_dict(doc)  # equally spaced, written out: as good as absent


def _get_dist(doc: dict[str, Any]) -> dict[str, Any]:
    node: Any = doc
    for key in DIST.split("."):
        node = node[key]
    return dict(node)
