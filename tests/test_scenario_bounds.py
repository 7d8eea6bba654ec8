"""Scenario bounds: every number of the format has finite bounds, stated in the JSON Schema and in
the parser's messages from one source; a bad scenario ends in a `ScenarioError` naming the key,
never in another exception; the traffic layer refuses what would not fit in memory."""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costsim import scenario as sc
from costsim.errors import ScenarioError
from costsim.scenario import (
    Scenario,
    json_schema,
    load_scenario,
    parse_scenario,
    validate_against_model,
)
from costsim.simulate import traffic as tf

DAY = 86400.0
CLASSES = ("agent", "lookup", "rag")

BASE: dict[str, Any] = {
    "model": "m.json",
    "horizon": "30d",
    "resolution": "1h",
    "start": "2026-12-07T00:00:00Z",
    "volume": {"requests": 1_000_000, "growth": 0.1, "uncertainty": 0.2},
    "mix": {"lookup": 0.7, "rag": 0.25, "agent_v2": 0.05},
    "mix_concentration": 300,
    "new_classes": {"agent_v2": {"like": "agent", "cost_scale": 1.5}},
    "traffic": {
        "shape": "pilot",
        "hourly": [1.0] * 24,
        "weekly": [1, 1, 1, 1, 1, 0.5, 0.5],
        "spikes": {"rate": 0.5, "magnitude": {"median": 3, "sd": 0.5}, "duration": "2h"},
        "events": [{"name": "launch", "at": "7d", "duration": "2d", "multiplier": 3}],
    },
    "pricing": {
        "default": {
            "input_per_mtok": 3,
            "output_per_mtok": 15,
            "cached_per_mtok": 0.3,
            "per_request": 0,
        },
        "classes": {"rag": {"input_per_mtok": 0.02, "output_per_mtok": 1, "per_request": 0.001}},
    },
    "reliability": {
        "error_rate": 0.02,
        "load_exponent": 1.0,
        "max_attempts": 3,
        "billed_failures": True,
        "cold_start_rate": 0.01,
        "cold_start_cost_ratio": 1.2,
        "spike_cold_share": 0.3,
    },
    "budget": {
        "p95": {"fail": 120000, "warn": 90000},
        "exceed": [{"amount": 150000, "max_prob": 0.05}],
    },
    "trials": 10000,
    "seed": 7,
}


def test_base_document_is_valid() -> None:
    validate_against_model(parse_scenario(copy.deepcopy(BASE)), CLASSES)


# ---------------------------------------------------------------------------------------------
# The schema's bounds are the parser's bounds
# ---------------------------------------------------------------------------------------------

Path_ = tuple[str | int, ...]
_BOUND_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _resolve(node: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    target: Any = schema
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def _leaves(
    node: dict[str, Any], schema: dict[str, Any], path: Path_, doc: Any
) -> Iterator[tuple[Path_, dict[str, Any]]]:
    """Every numeric leaf of the schema, with the document path it describes: a class name of
    the base document stands for ``additionalProperties``, item 0 for ``items``."""
    node = _resolve(node, schema)
    if node.get("type") in ("number", "integer"):
        yield path, node
    for branch in (*node.get("oneOf", ()), *node.get("anyOf", ())):
        yield from _leaves(branch, schema, path, doc)
    sub = doc if isinstance(doc, dict) else {}
    for key, child in node.get("properties", {}).items():
        yield from _leaves(child, schema, (*path, key), sub.get(key))
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and sub:
        name = next(iter(sub))
        yield from _leaves(extra, schema, (*path, name), sub[name])
    if isinstance(node.get("items"), dict):
        first = doc[0] if isinstance(doc, list) and doc else None
        yield from _leaves(node["items"], schema, (*path, 0), first)


def _numeric_leaves() -> list[tuple[Path_, dict[str, Any]]]:
    schema = json_schema()
    found = list(_leaves(schema, schema, (), BASE))
    unique: dict[Path_, dict[str, Any]] = {}
    for path, node in found:
        unique.setdefault(path, node)  # a number and its object form: the same bounds
    return list(unique.items())


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _set(doc: dict[str, Any], path: Path_, value: Any) -> None:
    node: Any = doc
    for i, part in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(part, int):
            node = node[part]
            continue
        if not isinstance(node.get(part), (dict, list)) or (
            isinstance(nxt, str) and not isinstance(node[part], dict)
        ):
            node[part] = {}  # e.g. a number shorthand replaced by its object form
        node = node[part]
    node[path[-1]] = value


def _drop(doc: dict[str, Any], *keys: str) -> None:
    node: Any = doc
    *parents, last = keys
    for k in parents:
        node = node.get(k) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)


# Other keys a value at a bound needs to be valid with (checks that span several keys).
def _context(path: Path_, value: float, doc: dict[str, Any]) -> None:
    dotted = _dotted(path)
    tr = doc["traffic"]
    if dotted == "horizon" and value < 3600:
        doc["resolution"] = 60
        tr.pop("events")
    elif dotted == "resolution" and value > 30 * DAY:
        doc["horizon"] = sc.MAX_HORIZON_S
    elif dotted in ("volume.per_hour", "volume.per_day"):
        doc["volume"] = {}
        doc["horizon"] = "1h" if dotted.endswith("hour") else "1d"
        tr.pop("events")
    elif dotted.startswith("mix."):
        doc["mix_relative"] = True
    elif dotted == "traffic.spikes.rate":
        doc["horizon"] = "1d"
        tr["spikes"]["duration"] = 60  # at 1440 a day: a spike the whole time on average
        tr.pop("events")
    elif dotted == "traffic.spikes.duration":
        tr["spikes"]["rate"] = 1e-4
    elif dotted.startswith("traffic.events[0]") and value > 30 * DAY:
        doc["horizon"] = sc.MAX_HORIZON_S
        if dotted.endswith(".at"):
            tr["events"][0]["duration"] = 1e-3  # within the horizon's tolerance
        else:
            tr["events"][0]["at"] = 0
    elif dotted.startswith("budget.") and dotted.endswith(".fail"):
        _drop(doc, *dotted.split(".")[:2], "warn")
    elif dotted.startswith("budget.") and dotted.endswith(".warn"):
        _set(doc, (*path[:-1], "fail"), sc.MAX_USD)


def _outside_and_inside(node: dict[str, Any]) -> list[tuple[str, float, float]]:
    """For each bound: (keyword, a value just outside, the value at it or just inside)."""
    integer = node["type"] == "integer"
    out = []
    for key in _BOUND_KEYS:
        if key not in node:
            continue
        b = node[key]
        away = -math.inf if "inimum" in key else math.inf
        if key.startswith("exclusive"):
            inside = (b + (1 if away < 0 else -1)) if integer else math.nextafter(b, -away)
            out.append((key, b, inside))
        else:
            outside = (b + (-1 if away < 0 else 1)) if integer else math.nextafter(b, away)
            out.append((key, outside, b))
    return out


LEAVES = _numeric_leaves()
CASES = [
    pytest.param(path, key, outside, inside, id=f"{_dotted(path)}-{key}")
    for path, node in LEAVES
    for key, outside, inside in _outside_and_inside(node)
]


def test_every_number_of_the_schema_has_both_bounds_and_a_description() -> None:
    assert len(LEAVES) >= 45
    for path, node in LEAVES:
        lower = {"minimum", "exclusiveMinimum"} & set(node)
        upper = {"maximum", "exclusiveMaximum"} & set(node)
        assert len(lower) == 1 and len(upper) == 1, _dotted(path)
        assert all(math.isfinite(node[k]) for k in (*lower, *upper)), _dotted(path)


@pytest.mark.parametrize(("path", "keyword", "outside", "inside"), CASES)
def test_a_value_just_outside_a_bound_is_refused_and_the_bound_accepted(
    path: Path_, keyword: str, outside: float, inside: float
) -> None:
    dotted = _dotted(path)
    bad = copy.deepcopy(BASE)
    _context(path, outside, bad)
    _set(bad, path, outside)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(bad)
    assert f"{dotted}: expected " in str(info.value)
    if "aximum" in keyword:  # above a cap: the whole range is named
        assert re.search(rf"{re.escape(dotted)}: expected an? \w+ in [\[(]", str(info.value))

    good = copy.deepcopy(BASE)
    _context(path, inside, good)
    _set(good, path, inside)
    parse_scenario(good)  # no error

    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json_schema())
    assert list(validator.iter_errors(bad)), dotted
    assert [e.message for e in validator.iter_errors(good)] == [], dotted


def test_the_schema_describes_each_bound_in_words() -> None:
    schema = json_schema()
    uncertainty = schema["properties"]["volume"]["properties"]["uncertainty"]
    assert uncertainty["maximum"] == 2
    assert (
        "Allowed: in [0, 2] (the sd of log volume: 0.2 means about +-20%)"
        in (uncertainty["description"])
    )
    horizon = schema["properties"]["horizon"]
    assert "Allowed: in [1m, 3650d]" in horizon["description"]


# ---------------------------------------------------------------------------------------------
# Messages with the meaning, and the checks that span several keys
# ---------------------------------------------------------------------------------------------


def _message(doc: dict[str, Any]) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(doc)
    return str(info.value)


def _with(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        _set(doc, tuple(dotted.split("__")), value)
    return doc


def test_uncertainty_meant_as_a_percentage_is_refused_with_its_meaning() -> None:
    assert _message(_with(volume__uncertainty=20)) == (
        "volume.uncertainty: expected a number in [0, 2] (the sd of log volume: 0.2 means "
        "about +-20%), got 20"
    )


def test_spikes_per_trial_are_bounded_naming_rate_and_horizon() -> None:
    doc = _with(traffic__spikes__rate=200, traffic__spikes__duration="1m")
    message = _message(doc)
    assert message.startswith(
        "traffic.spikes.rate: 200 spikes a day over 30d is about 6e+03 spikes per trial; costsim "
        f"holds at most {sc.MAX_SPIKES_PER_TRIAL} per trial"
    )
    assert "lower traffic.spikes.rate or shorten the horizon" in message


def test_spikes_that_never_end_are_refused() -> None:
    message = _message(_with(traffic__spikes__rate=24, traffic__spikes__duration="2h"))
    assert "traffic.spikes: rate 24 a day x duration 2h puts traffic in a spike 2 of the time" in (
        message
    )
    doc = _with(traffic__spikes__rate=48)
    del doc["traffic"]["spikes"]["duration"]  # the default: 1h
    assert "traffic.spikes.rate: rate 48 a day x the default duration 1h puts traffic" in (
        _message(doc)
    )


def test_a_rate_with_growth_must_stay_within_the_total_volume() -> None:
    doc = _with(volume={"per_day": 1e10, "growth": 10}, horizon="365d", resolution="1d")
    doc["traffic"].pop("events")
    message = _message(doc)
    assert message.startswith("volume: ")
    assert "requests over the horizon (growing 10 per 30 days) is beyond costsim's range" in (
        message
    )
    assert "lower volume.per_day or volume.growth" in message
    doc["volume"]["growth"] = 0
    assert parse_scenario(doc).volume.requests == pytest.approx(3.65e12)


def test_growth_at_its_bounds_over_ten_years_stays_finite() -> None:
    for growth in (-0.99, 10.0):
        doc = _with(horizon="3650d", resolution="1d", volume={"requests": 1e6, "growth": growth})
        s = parse_scenario(doc)
        plan = tf.build_plan(s, CLASSES, np.array([0.5, 0.3, 0.2]), {}, None, None)
        assert np.all(np.isfinite(plan.base)) and plan.base_no_events.sum() == pytest.approx(1e6)


def test_relative_mix_weights_must_not_all_be_tiny() -> None:
    doc = _with(mix={"lookup": 1e-300, "rag": 0}, mix_relative=True)
    doc.pop("new_classes")
    assert "mix: with mix_relative, values are weights on the pilot shares" in _message(doc)


# ---------------------------------------------------------------------------------------------
# Dates
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30",
        "2026-13-01",
        "2026-02-29T00:00:00Z",
        "2026-12-07T25:00:00Z",
        "2026-12-07T23:61:00Z",
        "2026-12-07 10:00:00 +25:00",
        "0000-01-01",
        "'2026-02-30'",
        "'2026-12-07T00:00:00+99:00'",
    ],
)
def test_impossible_start_dates_name_the_key(tmp_path: Path, text: str) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(f"model: m.json\nhorizon: 30d\nstart: {text}\nvolume: {{requests: 1000}}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(p)
    assert f"{p}: start: expected " in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        "1969-12-31",
        "2200-01-01T00:00:00Z",
        date(1, 1, 1),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),  # before year 1 in UTC
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),  # after 9999 in UTC
        datetime(2199, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),  # 2200 in UTC
    ],
)
def test_start_outside_the_years_allowed(value: Any) -> None:
    first, last = sc.START_YEARS
    assert f"start: expected a date-time in the years {first} to {last}" in _message(
        _with(start=value)
    )


def test_start_at_the_edges_of_the_years_allowed() -> None:
    assert parse_scenario(_with(start="1970-01-01")).start == "1970-01-01T00:00:00Z"
    assert parse_scenario(_with(start=date(2199, 12, 31))).start == "2199-12-31T00:00:00Z"


def test_dates_elsewhere_are_reported_not_raised() -> None:
    early = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))
    message = _message(_with(seed=early, mix={"lookup": early}))
    assert "seed: expected an integer" in message and "mix.lookup: expected a number" in message


# ---------------------------------------------------------------------------------------------
# Odd input: key-path problems, never another exception
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("seed: 1" + "0" * 5000, "seed: expected an integer >= 0, got '1000"),  # not a number
        ("horizon: 1" + "0" * 400, "horizon: expected a duration >= 1m"),
        ("horizon: 1e400s", "horizon: expected a duration >= 1m"),
        ("horizon: 1e400", "horizon: expected a duration >= 1m"),
        ("horizon: " + "9" * 400 + "d", "horizon: expected a duration >= 1m"),
        ("trials: 1e400", "trials: expected an integer in [100, 10000000], got '1e400'"),
        ("mix: {1: 1}", "mix.1: keys must be strings"),
        ("mix: {2026-01-01: 1}", "mix.2026-01-01: keys must be strings"),
        ("mix: {lookup: [[1]]}", "mix.lookup: expected a number >= 0, got a list"),
        ("traffic: {hourly: [[1], 2]}", "traffic.hourly: expected a list of 24 numbers"),
        ("traffic: {spikes: {rate: [1], classes: [1, null]}}", "traffic.spikes.classes[0]: "),
        ("traffic: {events: [{name: 5, at: 2026-01-01, duration: [], multiplier: {}}]}", "at: "),
        ("budget: {p95: {fail: .inf}}", "budget.p95.fail: expected a number > 0, got inf"),
    ],
)
def test_odd_yaml_is_a_key_path_problem(tmp_path: Path, yaml_text: str, expected: str) -> None:
    p = tmp_path / "s.yaml"
    base = {"model": "m.json", "horizon": "30d", "volume": {"requests": 1000}}
    key = yaml_text.split(":", 1)[0]
    base.pop(key, None)
    p.write_text(yaml.safe_dump(base) + yaml_text + "\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(p)
    assert expected in str(info.value)


def test_huge_integer_key_and_value_in_a_document() -> None:
    huge = 10**5000
    message = _message(_with(mix={huge: 1.0}, seed=huge))
    assert "keys must be strings" in message
    assert "seed: expected an integer in [0, 9223372036854775807], got an integer of" in message


def test_unhashable_key_in_yaml(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("model: m.json\nhorizon: 30d\nvolume: {requests: 1}\nmix: {? [a] : 1}\n")
    with pytest.raises(ScenarioError, match="invalid YAML at line 4"):
        load_scenario(p)


def test_deeply_nested_yaml(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("mix: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ScenarioError, match="invalid YAML"):
        load_scenario(p)


def test_class_names_against_the_model_are_strings_only() -> None:
    s = parse_scenario(_with(traffic__spikes__classes=["rag", "nope"]))
    with pytest.raises(ScenarioError, match=r"traffic.spikes.classes\[1\]: class 'nope'"):
        validate_against_model(s, CLASSES)


# Random documents: a valid scenario with leaves replaced by values of other types, keys deleted
# and unknown keys added.
_TZ = st.builds(
    timezone, st.timedeltas(min_value=-timedelta(hours=23), max_value=timedelta(hours=23))
)
_ODD_STRINGS = st.sampled_from(
    [
        "1e400", "1e400s", "-1e400", "1e6", "1E-320", "nan", ".inf", "2026-02-30", "2026-12-07",
        "2026-12-07T00:00:00+99:00", "0001-01-01T00:00:00+05:00", "all", "30d", "1h30m", "1M",
        "0", "-1", "", " ", "9" * 500, "1" * 5000 + "d", "\x00", "Z", "z",
    ]
)  # fmt: skip
_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400), 2**63, 2**63 - 1, 2**64, 10**4000, -1, 0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([5e-324, -0.0, 1e308, 1e-300, 0.999, 1.0, 2.0, 1440.0, 1e13, 1e15]),
    st.text(max_size=12),
    _ODD_STRINGS,
    st.dates(),
    st.datetimes(timezones=st.none() | _TZ),
)
_KEYS = st.one_of(
    st.text(max_size=8),
    st.integers(),
    st.sampled_from([10**400, True, None, 1.5, float("nan"), date(2026, 1, 1)]),
    st.sampled_from([*sc.TOP_KEYS, *sc.VOLUME_KEYS, *sc.RELIABILITY_KEYS, "median", "fail"]),
)
_VALUE = st.recursive(
    _LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=6,
)


def _paths(node: Any, path: Path_ = ()) -> list[Path_]:
    out: list[Path_] = [path] if path else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*path, i))
    return out


def _parent(doc: Any, path: Path_) -> Any:
    node = doc
    for part in path[:-1]:
        node = node[part]
    return node


@st.composite
def _mutated(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(doc, path)
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(_VALUE)
        elif action == "delete":
            del parent[path[-1]]
        else:
            target = parent[path[-1]]
            node = target if isinstance(target, dict) else parent
            if isinstance(node, dict):
                node[draw(_KEYS)] = draw(_VALUE)
    return doc


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_any_document_parses_or_raises_a_scenario_error(doc: dict[str, Any]) -> None:
    try:
        s = parse_scenario(doc)
    except ScenarioError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(s, Scenario)
    json.dumps(s.raw, sort_keys=True, default=str)  # hashed for reports
    try:
        validate_against_model(s, CLASSES)
    except ScenarioError:
        return


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_any_document_read_from_yaml_parses_or_raises_a_scenario_error(
    tmp_path_factory: pytest.TempPathFactory, doc: dict[str, Any]
) -> None:
    try:
        text = yaml.safe_dump(doc)
    except (yaml.YAMLError, TypeError, ValueError):
        return  # not representable in YAML
    p = tmp_path_factory.mktemp("fuzz") / "s.yaml"
    p.write_text(text, encoding="utf-8")
    try:
        load_scenario(p)
    except ScenarioError:
        pass


# ---------------------------------------------------------------------------------------------
# Memory: the traffic layer refuses what would not fit
# ---------------------------------------------------------------------------------------------


def test_the_spike_bound_keeps_a_chunk_within_the_spike_memory() -> None:
    chunk_trials = 2000  # forecast.CHUNK_TRIALS
    assert sc.MAX_SPIKES_PER_TRIAL * chunk_trials * tf.SPIKE_BYTES <= tf.SPIKE_MEMORY


def test_spike_memory_guard_names_the_rate() -> None:
    s = parse_scenario(_with(traffic__spikes__rate=100, traffic__spikes__duration="1m"))
    tf._check_spike_memory(s, 2000)  # fits
    with pytest.raises(ScenarioError) as info:
        tf._draw_spikes(s, 100_000, np.random.default_rng(0))
    message = str(info.value)
    assert message.startswith(
        "traffic.spikes.rate: 100 spikes a day over 30d is about 3e+03 spikes per trial"
    )
    assert "lower traffic.spikes.rate or shorten the horizon" in message


def test_plan_memory_guard_names_the_resolution() -> None:
    s = parse_scenario(
        {"model": "m", "horizon": "69d", "resolution": "1m", "volume": {"requests": 1e6}}
    )
    n = 10_000
    names = tuple(f"c{i}" for i in range(n))
    with pytest.raises(ScenarioError) as info:
        tf.build_plan(s, names, np.full(n, 1.0 / n), {}, None, None)
    message = str(info.value)
    assert message.startswith("resolution: 99,360 buckets x 10,000 classes would need about")
    assert "set a coarser resolution (at least 45m) or a shorter horizon" in message
    coarse = parse_scenario({**s.raw, "resolution": "45m"})
    assert coarse.buckets * n * 8 * tf.PLAN_ARRAYS <= tf.PLAN_MEMORY


def test_spike_grid_memory_guard_names_the_resolution() -> None:
    spikes = tf.Spikes(np.zeros(1, np.int64), np.zeros(1), np.ones(1), np.full(1, 2.0))
    assert spikes.grid(slice(0, 10), 100, 60.0).shape == (10, 100)
    with pytest.raises(ScenarioError, match="resolution: the spikes of 2,000 trials over"):
        spikes.grid(slice(0, 2000), 100_000, 60.0)


def test_tiny_profile_values_keep_their_shape() -> None:
    hourly = [5e-324] + [0.0] * 23
    s = parse_scenario(_with(traffic__hourly=hourly, start="2026-12-07"))
    plan = tf.build_plan(s, CLASSES, np.array([0.5, 0.3, 0.2]), {}, None, None)
    per_hour = plan.base.sum(axis=1)[:24]
    assert per_hour[0] > 0 and np.all(per_hour[1:] == 0)
