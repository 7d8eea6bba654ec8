"""Scenario files: parsing, every validation error by its key path, the JSON Schema, `init`."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import warnings
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from synth import make_log

from costsim import scenario as sc
from costsim.errors import CostsimWarning, ScenarioError
from costsim.logs import read_pilot
from costsim.model.file import load_model, save_model
from costsim.model.fit import fit_model
from costsim.scenario import (
    Budget,
    BudgetLimit,
    Event,
    Mix,
    NewClass,
    Price,
    Pricing,
    Reliability,
    Spikes,
    Traffic,
    Volume,
    format_duration,
    init_scenario_text,
    json_schema,
    load_scenario,
    parse_duration,
    parse_scenario,
    validate_against_model,
)

ROOT = Path(__file__).resolve().parents[1]
PILOT = ROOT / "scenarios" / "pilot.parquet"
DAY = 86400.0
CLASSES = ("agent", "lookup", "rag")

FULL = """\
model: pilot.model.json
horizon: 30d
resolution: 1h
start: 2026-12-07T00:00:00Z
volume:
  requests: 1000000
  growth: 0.1
  uncertainty: 0.2
mix:
  lookup: 0.7
  rag: 0.25
  agent_v2: 0.05
mix_relative: false
mix_concentration: 300
new_classes:
  agent_v2: {like: agent, cost_scale: 1.5}
traffic:
  shape: pilot
  hourly: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2]
  weekly: [1, 1, 1, 1, 1, 0.5, 0.5]
  spikes: {rate: 0.5, magnitude: {median: 3, sd: 0.5}, duration: 2h, classes: all}
  events:
    - {name: launch, at: 7d, duration: 2d, multiplier: 3, classes: [lookup, agent_v2]}
pricing:
  default: {input_per_mtok: 3, output_per_mtok: 15, cached_per_mtok: 0.3, per_request: 0}
  classes: {rag: {input_per_mtok: 0.02}}
reliability:
  error_rate: 0.02
  load_exponent: 1.0
  max_attempts: 3
  billed_failures: true
  cold_start_rate: 0.01
  cold_start_cost_ratio: 1.2
  spike_cold_share: 0.3
budget:
  p95: 120000
  p50: {fail: 100000, warn: 90000}
  exceed: [{amount: 150000, max_prob: 0.05}]
trials: 10000
seed: 7
"""

MINIMAL = {"model": "m.json", "horizon": "30d", "volume": {"requests": 1000}}


def full() -> dict[str, Any]:
    return yaml.safe_load(FULL)


def with_(base: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with ``a.b.c`` set to ``value`` (deleted when value is ...)."""
    data = copy.deepcopy(base)
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


def problems(data: Any, path: Path | None = None) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, path)
    message = str(info.value)
    assert "\n" not in message
    return message


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# ---------------------------------------------------------------------------------------------
# A valid scenario
# ---------------------------------------------------------------------------------------------


def test_full_scenario_parses_to_the_expected_values(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    s = load_scenario(path)
    assert (s.path, s.model_path, s.pilot_path) == (path, tmp_path / "pilot.model.json", None)
    assert (s.horizon_s, s.resolution_s, s.start) == (30 * DAY, 3600.0, "2026-12-07T00:00:00Z")
    assert s.volume == Volume(requests=1e6, growth=0.1, uncertainty=0.2)
    assert s.mix == Mix(
        shares={"lookup": 0.7, "rag": 0.25, "agent_v2": 0.05},
        relative=False,
        concentration=300.0,
        new_classes={"agent_v2": NewClass(like="agent", cost_scale=1.5)},
    )
    tr = s.traffic
    assert (tr.shape, tr.hourly, tr.weekly) == (
        "pilot",
        (1.0,) * 23 + (2.0,),
        (1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5),
    )
    sp = tr.spikes
    assert (sp.rate_per_day, sp.magnitude_median, sp.magnitude_sd, sp.duration_s, sp.classes) == (
        0.5,
        3.0,
        0.5,
        7200.0,
        None,
    )
    assert tr.events == (
        Event(
            name="launch",
            at=7 * DAY,
            duration=2 * DAY,
            multiplier=3.0,
            classes=("lookup", "agent_v2"),
        ),
    )
    assert (tr.events[0].start_s, tr.events[0].duration_s) == (7 * DAY, 2 * DAY)
    assert s.pricing == Pricing(
        default=Price(3.0, 15.0, 0.3, 0.0), classes={"rag": Price(input_per_mtok=0.02)}
    )
    assert s.reliability == Reliability(
        error_rate=0.02,
        load_exponent=1.0,
        max_attempts=3,
        billed_failures=True,
        cold_start_rate=0.01,
        cold_start_cost_ratio=1.2,
        spike_cold_share=0.3,
    )
    assert s.budget.limits == (BudgetLimit("p50", 100000.0, 90000.0), BudgetLimit("p95", 120000.0))
    assert s.budget.max_exceed_prob == ((150000.0, 0.05),)
    assert (s.trials, s.seed, s.deployments, s.route, s.default_route) == (10000, 7, {}, None, None)
    assert s.buckets == 720
    assert isinstance(s.trials, int) and isinstance(s.seed, int)
    assert isinstance(s.reliability.max_attempts, int)
    validate_against_model(s, CLASSES)


def test_a_scenario_is_frozen_and_replaced_like_a_dataclass(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path, FULL))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.trials = 5  # type: ignore[misc]
    again = dataclasses.replace(s, trials=500, seed=3)
    assert (again.trials, again.seed, again.raw, again.path) == (500, 3, s.raw, s.path)
    assert dataclasses.replace(again, trials=s.trials, seed=s.seed) == s
    # values given in code are taken as they are (a baseline's trials, say), as before
    assert dataclasses.replace(s, trials=1).trials == 1


def test_raw_is_the_whole_document_and_serialises_as_json(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path, FULL))
    expected = full()
    expected["start"] = "2026-12-07T00:00:00Z"  # YAML reads it as a datetime
    assert s.raw == expected
    assert json.loads(json.dumps(s.raw)) == expected


def test_minimal_scenario_takes_the_documented_defaults() -> None:
    s = parse_scenario(MINIMAL)
    assert s.path is None
    assert s.model_path == Path("m.json") and s.pilot_path is None
    assert s.horizon_s == 30 * DAY and s.resolution_s == 3600.0 and s.buckets == 720
    assert s.volume == Volume(requests=1000.0)
    assert s.mix == Mix()
    assert s.traffic == Traffic()
    assert s.pricing is None
    assert s.reliability == Reliability()
    assert s.budget == Budget()
    assert (s.trials, s.seed, s.start) == (10_000, 0, None)


def test_paths_are_relative_to_the_scenario_and_not_checked(tmp_path: Path) -> None:
    s = parse_scenario(with_(MINIMAL, "model", "../models/m.json"), tmp_path / "s.yaml")
    assert s.model_path == tmp_path / "../models/m.json"
    s = parse_scenario(with_(MINIMAL, "model", "x.json"), None, base_dir=tmp_path / "b")
    assert s.model_path == tmp_path / "b" / "x.json"
    absolute = str(tmp_path / "abs.json")
    assert parse_scenario(with_(MINIMAL, "model", absolute), tmp_path / "s.yaml").model_path == (
        Path(absolute)
    )
    data = with_(with_(MINIMAL, "model", ...), "pilot", "logs/pilot.parquet")
    s = parse_scenario(data, tmp_path / "s.yaml")
    assert s.pilot_path == tmp_path / "logs" / "pilot.parquet" and s.model_path is None


@pytest.mark.parametrize(
    ("volume", "requests"),
    [
        ({"requests": 5000}, 5000.0),
        ({"per_hour": 1500}, 1500.0 * 24 * 30),
        ({"per_day": 36000}, 36000.0 * 30),
        ({"requests": "1e6"}, 1e6),  # YAML 1.2 number that PyYAML reads as a string
        ({"requests": 1.5e6}, 1.5e6),
    ],
)
def test_volume_forms(volume: dict[str, Any], requests: float) -> None:
    s = parse_scenario(with_(MINIMAL, "volume", volume))
    assert s.volume.requests == pytest.approx(requests)


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        (datetime(2026, 12, 7, tzinfo=UTC), "2026-12-07T00:00:00Z"),
        (datetime(2026, 12, 7, 2, tzinfo=timezone(timedelta(hours=2))), "2026-12-07T00:00:00Z"),
        (datetime(2026, 12, 7, 5), "2026-12-07T05:00:00Z"),  # no zone: UTC
        (date(2026, 12, 7), "2026-12-07T00:00:00Z"),
        ("2026-12-07T00:00:00Z", "2026-12-07T00:00:00Z"),
        ("2026-12-07T01:00:00+01:00", "2026-12-07T00:00:00Z"),
        ("2026-12-07", "2026-12-07T00:00:00Z"),
    ],
)
def test_start_accepts_datetimes_dates_and_iso_strings(value: Any, iso: str) -> None:
    assert parse_scenario(with_(MINIMAL, "start", value)).start == iso


def test_start_as_yaml_reads_it(tmp_path: Path) -> None:
    text = "model: m.json\nhorizon: 7d\nvolume: {requests: 10}\nstart: 2026-12-07 06:00:00+02:00\n"
    assert load_scenario(write(tmp_path, text)).start == "2026-12-07T04:00:00Z"


def test_relative_mix_need_not_sum_to_one() -> None:
    data = {**MINIMAL, "mix": {"agent": 3, "lookup": 0.5}, "mix_relative": True}
    s = parse_scenario(data)
    assert s.mix.relative and s.mix.shares == {"agent": 3.0, "lookup": 0.5}


def test_shorthands_spike_magnitude_and_single_class() -> None:
    data = {**MINIMAL, "traffic": {"spikes": {"rate": 1, "magnitude": 4, "classes": "rag"}}}
    s = parse_scenario(data)
    assert s.traffic.spikes == Spikes(rate=1.0, magnitude={"median": 4.0}, classes=("rag",))


def test_event_may_end_exactly_at_the_horizon_and_start_at_zero() -> None:
    event = {"name": "e", "at": 0, "duration": "30d", "multiplier": 2}
    data = {**MINIMAL, "traffic": {"events": [event]}}
    assert parse_scenario(data).traffic.events == (
        Event(name="e", at=0.0, duration=30 * DAY, multiplier=2.0),
    )


def test_null_values_mean_absent() -> None:
    data = {**MINIMAL, "mix": None, "traffic": None, "reliability": {"error_rate": None}}
    s = parse_scenario(data)
    assert s.mix == Mix() and s.traffic == Traffic() and s.reliability == Reliability()


# ---------------------------------------------------------------------------------------------
# Bad scenarios: every problem by its key path
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dotted", "value", "expected"),
    [
        (
            "mix_concentraton",
            3,
            "mix_concentraton: unknown key; did you mean 'mix_concentration'?",
        ),
        ("traffic.spikes.rat", 1, "traffic.spikes.rat: unknown key; did you mean 'rate'?"),
        ("volume.reqests", 1, "volume.reqests: unknown key; did you mean 'requests'?"),
        ("budget.p97", 1, "budget.p97: unknown key; did you mean"),
        ("reliability.Error_Rate", 0.1, "did you mean 'error_rate'?"),
        ("zzz", 1, "zzz: unknown key; allowed: model, pilot, horizon, resolution"),
        (
            "traffic.spikes.rate",
            "often",
            "traffic.spikes.rate: expected a number >= 0, got 'often'",
        ),
        ("volume.requests", -5, "volume.requests: expected a number > 0, got -5"),
        (  # text in exponent form, as YAML 1.1 reads it: above the cap like the number
            "volume.requests",
            "1e300",
            "volume.requests: expected a number in (0, 1e+13], got '1e300'",
        ),
        ("volume.growth", True, "volume.growth: expected a number > -1, got true (a boolean)"),
        ("volume.growth", -1, "volume.growth: expected a number > -1, got -1"),
        ("volume.uncertainty", ".nan", "volume.uncertainty: expected a number >= 0"),
        ("volume.uncertainty", float("inf"), "volume.uncertainty: expected a number >= 0, got inf"),
        ("mix.lookup", "lots", "mix.lookup: expected a number >= 0, got 'lots'"),
        ("mix.lookup", -0.1, "mix.lookup: expected a number >= 0, got -0.1"),
        ("mix", {"lookup": 0.7, "rag": 0.25}, "mix: shares sum to 0.95, expected 1 (or set "),
        ("mix", {"lookup": 0, "rag": 0}, "mix: every share is 0"),
        ("mix", {}, "mix: expected at least one class"),
        ("mix", ["lookup"], "mix: expected a mapping, got a list"),
        ("mix_relative", "yes", "mix_relative: expected true or false, got 'yes'"),
        ("mix_concentration", 0, "mix_concentration: expected a number >= 1, got 0"),
        ("new_classes.agent_v2.like", ..., "new_classes.agent_v2.like: required"),
        ("new_classes.agent_v2.like", "agent_v2", "new_classes.agent_v2.like: a new class cannot"),
        ("new_classes.agent_v2.cost_scale", 0, "new_classes.agent_v2.cost_scale: expected a"),
        ("new_classes.other", {"like": "agent"}, "new_classes.other: not in mix"),
        ("horizon", ..., "horizon: required"),
        ("horizon", "30 days!", "horizon: expected a duration >= 1m such as 30d"),
        ("horizon", "1M", "(months differ in length: write days, e.g. 30d)"),
        ("horizon", 0, "horizon: expected a duration >= 1m"),
        ("resolution", "7h", "resolution: 7h does not divide the horizon (30d) into whole buckets"),
        ("resolution", "30s", "resolution: expected a duration >= 1m such as"),
        ("resolution", "31d", "resolution: 31d is longer than the horizon (30d)"),
        ("start", "tomorrow", "start: expected an ISO date-time such as 2026-12-07T00:00:00Z"),
        ("volume", 5, "volume: expected a mapping, got 5"),
        ("volume", ..., "volume: required"),
        ("volume", {"growth": 0.1}, "volume: give one of requests (over the horizon), per_hour"),
        ("traffic.shape", "spiky", "traffic.shape: expected one of pilot, flat, got 'spiky'"),
        ("traffic.shape", "Flat", "did you mean 'flat'?"),
        ("traffic.hourly", [1, 2, 3], "traffic.hourly: expected a list of 24 numbers >= 0"),
        ("traffic.hourly", [0] * 24, "traffic.hourly: expected at least one value > 0"),
        ("traffic.weekly", [1, 1, 1, -1, 1, 1, 1], "traffic.weekly[3]: expected a number >= 0"),
        ("traffic.spikes.rate", ..., "traffic.spikes.rate: required"),
        ("traffic.spikes.magnitude", 0.8, "traffic.spikes.magnitude: expected a number > 1"),
        ("traffic.spikes.magnitude", {"median": 2, "sd": -1}, "traffic.spikes.magnitude.sd"),
        ("traffic.spikes.duration", "forever", "traffic.spikes.duration: expected a duration"),
        ("traffic.spikes.classes", [], "traffic.spikes.classes: expected all or a list"),
        ("traffic.spikes.classes", ["a", "a"], "traffic.spikes.classes[1]: class 'a' is listed"),
        ("traffic.events", {"name": "x"}, "traffic.events: expected a list, got a mapping"),
        ("pricing.default.input_per_mtok", -3, "pricing.default.input_per_mtok: expected a"),
        ("pricing.classes.rag.output_per_mtk", 1, "did you mean 'output_per_mtok'?"),
        ("reliability.error_rate", 1, "reliability.error_rate: expected a number in [0, 1), got 1"),
        ("reliability.cold_start_rate", 1.5, "reliability.cold_start_rate: expected a number in"),
        ("reliability.max_attempts", 2.5, "reliability.max_attempts: expected an integer >= 1"),
        ("reliability.max_attempts", 0, "reliability.max_attempts: expected an integer >= 1"),
        ("reliability.billed_failures", 1, "reliability.billed_failures: expected true or false"),
        ("reliability.load_exponent", -1, "reliability.load_exponent: expected a number >= 0"),
        ("budget.p95", "lots", "budget.p95: expected a number > 0 (the fail level) or"),
        ("budget.p95", -1, "budget.p95: expected a number > 0, got -1"),
        ("budget.p50", {"warn": 5}, "budget.p50.fail: required"),
        ("budget.p50", {"fail": 5, "warn": 6}, "budget.p50.warn: expected less than fail (5)"),
        ("budget.exceed", [{"amount": 1, "max_prob": 1}], "budget.exceed[0].max_prob: expected"),
        ("budget.exceed", [{"amount": 0, "max_prob": 0.5}], "budget.exceed[0].amount: expected"),
        ("budget.exceed", 5, "budget.exceed: expected a list"),
        ("trials", 50, "trials: expected an integer in [100, 10000000], got 50"),
        ("trials", 10.5, "trials: expected an integer in [100, 10000000], got 10.5"),
        ("trials", True, "trials: expected an integer in [100, 10000000], got true"),
        ("seed", -1, "seed: expected an integer >= 0, got -1"),
        ("seed", "seven", "seed: expected an integer >= 0, got 'seven'"),
    ],
)
def test_bad_field_is_reported_by_its_key_path(dotted: str, value: Any, expected: str) -> None:
    message = problems(with_(full(), dotted, value))
    assert expected in message
    assert message.count(": ") >= 1


def test_two_of_requests_per_hour_per_day() -> None:
    message = problems(with_(MINIMAL, "volume", {"requests": 10, "per_hour": 5}))
    assert (
        "volume: give exactly one of requests, per_hour or per_day, not requests and per_hour"
        in (message)
    )


def test_model_and_pilot_exactly_one() -> None:
    assert "model: give either model" in problems({**MINIMAL, "pilot": "p.parquet"})
    assert "model: required" in problems(with_(MINIMAL, "model", ...))
    assert "model: expected a non-empty string, got 5" in problems(with_(MINIMAL, "model", 5))


def test_resolution_that_does_not_divide_suggests_ones_that_do() -> None:
    message = problems({**MINIMAL, "resolution": "7h"})
    assert "(e.g. 6h or 8h)" in message


def test_bad_resolution_is_reported_once() -> None:
    assert problems({**MINIMAL, "resolution": "often"}).count("resolution") == 1


def test_default_resolution_longer_than_a_short_horizon() -> None:
    message = problems({**MINIMAL, "horizon": "30m"})
    assert "resolution: the default 1h is longer than the horizon (30m)" in message


def test_too_many_buckets() -> None:
    message = problems({**MINIMAL, "horizon": "100d", "resolution": "1m"})
    assert "resolution: 1m gives 144000 buckets over the horizon (100d), at most 100000" in message


def test_resolution_divides_within_relative_tolerance() -> None:
    s = parse_scenario({**MINIMAL, "horizon": 3 * 3600.0 * (1 + 1e-12), "resolution": "1h"})
    assert s.buckets == 3


def test_event_past_the_horizon() -> None:
    event = {"name": "launch", "at": "29d", "duration": "2d", "multiplier": 3}
    message = problems(with_(full(), "traffic.events", [event]))
    assert "traffic.events[0]: ends at 31d (at 29d + duration 2d), after the horizon (30d)" in (
        message
    )


def test_event_fields_and_duplicate_names() -> None:
    events = [
        {"name": "a", "at": -1, "duration": "1d", "multiplier": 2},
        {"name": "a", "at": "1d", "duration": "1d"},
        "launch",
    ]
    message = problems(with_(full(), "traffic.events", events))
    assert "traffic.events[0].at: expected a duration >= 0" in message
    assert "traffic.events[1].multiplier: required" in message
    assert "traffic.events[2]: expected a mapping, got 'launch'" in message
    # names are compared once every event is valid
    events = [{"name": "a", "at": 0, "duration": "1d", "multiplier": 2}] * 2
    message = problems(with_(full(), "traffic.events", events))
    assert message == "traffic.events[1].name: another event is already named 'a'"


def test_boolean_is_not_a_number_in_yaml(tmp_path: Path) -> None:
    text = FULL.replace("requests: 1000000", "requests: yes").replace("seed: 7", "seed: on")
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, text))
    message = str(info.value)
    assert "volume.requests: expected a number > 0, got true (a boolean)" in message
    assert "seed: expected an integer >= 0, got true (a boolean)" in message


def test_several_errors_reported_together_on_one_line(tmp_path: Path) -> None:
    data = with_(full(), "volume.requests", -5)
    data = with_(data, "traffic.spikes.rate", "often")
    data = with_(data, "mix_concentraton", 3)
    data = with_(data, "trials", 5)
    message = problems(data, tmp_path / "scenario.yaml")
    assert message.startswith(f"{tmp_path / 'scenario.yaml'}: ")
    assert message.count(str(tmp_path)) == 1  # the file is named once
    for part in (
        "volume.requests: expected a number > 0, got -5",
        "traffic.spikes.rate: expected a number >= 0, got 'often'",
        "mix_concentraton: unknown key; did you mean 'mix_concentration'?",
        "trials: expected an integer in [100, 10000000], got 5",
    ):
        assert part in message
    assert (
        "volume.requests: expected a number > 0, got -5; "
        "traffic.spikes.rate: expected a number >= 0, got 'often'"
    ) in message


def test_no_path_no_prefix() -> None:
    assert problems(with_(MINIMAL, "seed", -1)) == "seed: expected an integer >= 0, got -1"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (None, "the scenario is empty"),
        ([1, 2], "expected a mapping of scenario keys (model, horizon, volume, ...) at the top"),
        ("model: x", "at the top level, got 'model: x'"),
    ],
)
def test_top_level_must_be_a_mapping(data: Any, expected: str) -> None:
    assert expected in problems(data)


def test_non_string_keys() -> None:
    message = problems({**MINIMAL, "mix": {1: 0.5, "a": 0.5}})
    assert "mix.1: keys must be strings (quote it in the YAML file)" in message
    assert "shares sum" not in message  # not a second, misleading error


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ScenarioError, match=r"^scenario file not found: .*nope\.yaml$"):
        load_scenario(missing)


def test_directory_is_not_a_scenario(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="is a directory"):
        load_scenario(tmp_path)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("model: m.json\nhorizon: 30d\nvolume:\n  requests: [1, 2\n", "line 5, column 1"),
        ("model: m.json\nhorizon: 30d\nvolume: requests: 5\n", "line 3, column 17"),
        ("model: m.json\nhorizon: 30d\n\tvolume: 1\n", "line 3, column 1"),
    ],
)
def test_malformed_yaml_names_line_and_column(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid YAML at {where}: ")
    assert "\n" not in message


def test_duplicate_keys_are_an_error(tmp_path: Path) -> None:
    text = "model: m.json\nhorizon: 30d\nvolume: {requests: 5}\nhorizon: 7d\n"
    with pytest.raises(ScenarioError, match=r"invalid YAML at line 4, column 1: duplicate key"):
        load_scenario(write(tmp_path, text))


def test_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    text = (
        "model: m.json\nhorizon: 30d\nvolume: {requests: 5}\n"
        "pricing:\n  default: &p {input_per_mtok: 3, output_per_mtok: 15}\n"
        "  classes:\n    rag: {<<: *p, input_per_mtok: 1}\n"
    )
    s = load_scenario(write(tmp_path, text))
    assert s.pricing is not None and s.pricing.classes["rag"] == Price(1.0, 15.0)


def test_yaml_tags_are_not_executed(tmp_path: Path) -> None:
    text = "model: !!python/object/apply:os.system ['echo hi']\nhorizon: 30d\n"
    with pytest.raises(ScenarioError, match="invalid YAML at line 1"):
        load_scenario(write(tmp_path, text))


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_bytes(b"model: \xff\xfe\n")
    with pytest.raises(ScenarioError, match="not UTF-8"):
        load_scenario(path)


# ---------------------------------------------------------------------------------------------
# Against a model
# ---------------------------------------------------------------------------------------------


def test_class_absent_from_the_model() -> None:
    data = with_(full(), "mix", {"agnt": 0.5, "lookup": 0.5})
    data = with_(data, "new_classes", ...)
    data = with_(data, "traffic.events", ...)
    s = parse_scenario(data)
    with pytest.raises(ScenarioError) as info:
        validate_against_model(s, CLASSES)
    assert str(info.value) == (
        "mix.agnt: class not in the model; did you mean 'agent'? model classes: agent, lookup, rag"
    )


def test_every_class_reference_is_checked(tmp_path: Path) -> None:
    data = with_(full(), "traffic.spikes.classes", ["lookup", "rga"])
    event = {"name": "e", "at": 0, "duration": "1d", "multiplier": 2, "classes": ["zzz"]}
    data = with_(data, "traffic.events", [event])
    data = with_(data, "pricing.classes", {"lokup": {"input_per_mtok": 1}})
    data = with_(data, "new_classes.agent_v2.like", "agnet")
    s = parse_scenario(data, tmp_path / "s.yaml")
    with pytest.raises(ScenarioError) as info:
        validate_against_model(s, CLASSES)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 's.yaml'}: ")
    assert "new_classes.agent_v2.like: class 'agnet' not in the model; did you mean 'agent'?" in (
        message
    )
    assert "traffic.spikes.classes[1]: class 'rga' not in the model; did you mean 'rag'?" in (
        message
    )
    assert "traffic.events[0].classes[0]: class 'zzz' not in the model; model classes: " in (
        message
    )
    assert "pricing.classes.lokup: class not in the model; did you mean 'lookup'?" in message
    assert "(new classes: agent_v2)" in message


def test_new_classes_may_be_used_where_classes_are_named() -> None:
    s = parse_scenario(full())
    validate_against_model(s, CLASSES)  # agent_v2 in mix, events; pricing of a model class


def test_new_class_must_not_clash_with_a_model_class() -> None:
    data = with_(full(), "new_classes", {"rag": {"like": "agent"}})
    s = parse_scenario(data)
    with pytest.raises(ScenarioError, match=r"new_classes\.rag: already a class of the model"):
        validate_against_model(s, CLASSES)


def test_model_classes_missing_from_an_absolute_mix_are_fine() -> None:
    s = parse_scenario({**MINIMAL, "mix": {"lookup": 1}})
    validate_against_model(s, CLASSES)


# ---------------------------------------------------------------------------------------------
# Durations
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30d", 30 * DAY),
        ("12h", 43200.0),
        ("15m", 900.0),
        ("90s", 90.0),
        ("2w", 14 * DAY),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("2 weeks", 14 * DAY),
        ("10 min", 600.0),
        (" 3600 ", 3600.0),
        (3600, 3600.0),
        (0.5, 0.5),
    ],
)
def test_parse_duration(text: Any, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["0", 0, "-1h", "1M", "1mo", "abc", "", "1h-", True, None, "h"])
def test_parse_duration_rejects(text: Any) -> None:
    with pytest.raises(ValueError, match="expected a duration > 0 such as 30d"):
        parse_duration(text)


@given(st.integers(1, 10**6), st.sampled_from(["s", "m", "h", "d", "w"]))
def test_parse_duration_units(n: int, unit: str) -> None:
    size = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    assert parse_duration(f"{n}{unit}") == n * size


@given(st.integers(1, 10**9))
def test_format_duration_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# JSON Schema
# ---------------------------------------------------------------------------------------------


def _objects(node: Any) -> list[dict[str, Any]]:
    """Every object schema (with properties) inside a schema."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            found.append(node)
        for v in node.values():
            found.extend(_objects(v))
    elif isinstance(node, list):
        for v in node:
            found.extend(_objects(v))
    return found


def test_schema_structure() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert list(props) == list(sc.TOP_KEYS)
    assert all(props[k].get("description") for k in props)

    def at(*keys: str) -> dict[str, Any]:
        node: dict[str, Any] = schema
        for key in keys:
            node = node["properties"][key] if key != "[]" else node["items"]
            while "anyOf" in node:
                node = next(o for o in node["anyOf"] if o.get("type") != "null")
        return node

    assert set(at("volume")["properties"]) == set(sc.VOLUME_KEYS)
    assert set(at("traffic")["properties"]) == set(sc.TRAFFIC_KEYS)
    assert set(at("traffic", "spikes")["properties"]) == set(sc.SPIKES_KEYS)
    assert set(at("traffic", "events", "[]")["properties"]) == set(sc.EVENT_KEYS)
    assert set(at("reliability")["properties"]) == set(sc.RELIABILITY_KEYS)
    assert set(at("budget")["properties"]) == set(sc.BUDGET_KEYS)
    assert set(at("pricing")["properties"]) == set(sc.PRICING_KEYS)
    assert set(at("pricing", "default")["properties"]) == set(sc.PRICE_KEYS)
    assert at("traffic", "shape")["enum"] == list(sc.TRAFFIC_SHAPES)
    assert "model" in sc.PRICE_KEYS and {"deployments", "route"} <= set(sc.TOP_KEYS)
    for obj in _objects(schema):
        assert obj["additionalProperties"] is False, obj.get("description")
    text = json.dumps(schema)  # plain JSON
    assert text.count('"title"') == 1 and "$ref" not in text  # ours; none generated; inline


def _validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


VALID_DOCUMENTS = [
    full(),
    MINIMAL,
    {**MINIMAL, "mix": {"a": 2}, "mix_relative": True, "resolution": 900},
    {**MINIMAL, "traffic": {"spikes": {"rate": 1, "magnitude": 4, "classes": ["rag"]}}},
    {**MINIMAL, "traffic": {"spikes": {"rate": 1, "classes": "rag"}}},
    {**MINIMAL, "budget": {"mean": {"fail": 10, "warn": 5}}, "start": "2026-12-07"},
]


@pytest.mark.parametrize("data", VALID_DOCUMENTS)
def test_valid_scenarios_validate_against_the_schema(data: dict[str, Any]) -> None:
    validator = _validator()
    raw = parse_scenario(data).raw
    assert [e.message for e in validator.iter_errors(raw)] == []


@pytest.mark.parametrize(
    ("dotted", "value"),
    [
        ("mix_concentraton", 3),
        ("volume.requests", -5),
        ("volume.growth", True),
        ("traffic.spikes.rate", "often"),
        ("traffic.spikes.duration", "1M"),
        ("traffic.shape", "spiky"),
        ("traffic.hourly", [1, 2]),
        ("reliability.error_rate", 1),
        ("budget.p97", 5),
        ("trials", 50),
        ("volume.per_hour", 5),  # two of requests / per_hour
        ("pilot", "p.parquet"),  # both model and pilot
    ],
)
def test_schema_rejects_what_the_parser_rejects(dotted: str, value: Any) -> None:
    validator = _validator()
    data = with_(full(), dotted, value)
    data["start"] = "2026-12-07T00:00:00Z"
    problems(data)
    assert list(validator.iter_errors(data)), dotted


BUNDLED = sorted((ROOT / "scenarios").glob("*.yaml")) + sorted((ROOT / "scenarios").glob("*.yml"))


@pytest.mark.skipif(not BUNDLED, reason="no bundled example scenarios yet")
@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_bundled_examples_parse_and_validate_against_the_schema(path: Path) -> None:
    s = load_scenario(path)
    validator = _validator()
    assert [e.message for e in validator.iter_errors(s.raw)] == []


# ---------------------------------------------------------------------------------------------
# init: a starting scenario for a fitted model
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pilot_model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("model") / "pilot.model.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CostsimWarning)
        save_model(fit_model(read_pilot(PILOT)), path)
    return load_model(path)


def test_init_round_trips_for_the_bundled_pilot(pilot_model: Any, tmp_path: Path) -> None:
    text = init_scenario_text(pilot_model, "pilot.model.json")
    path = write(tmp_path, text)
    s = load_scenario(path)
    validate_against_model(s, tuple(pilot_model.classes))
    assert s.model_path == tmp_path / "pilot.model.json"
    assert (s.horizon_s, s.resolution_s, s.trials, s.seed) == (30 * DAY, 3600.0, 10_000, 0)
    rate = pilot_model.traffic.rate_per_hour
    assert s.volume.requests == pytest.approx(rate * 720, abs=0.5)
    assert s.mix.shares is not None and not s.mix.relative
    assert set(s.mix.shares) == set(pilot_model.classes)
    assert math.fsum(s.mix.shares.values()) == pytest.approx(1.0, abs=1e-12)
    for name, cls in pilot_model.classes.items():
        assert s.mix.shares[name] == pytest.approx(cls.share, abs=1e-4)
    for section in ("spikes:", "events:", "pricing:", "reliability:", "budget:"):
        assert f"# {section}" in text
    # Every commented-out example is valid too, once uncommented.
    example = re.compile(r"(\s*)# (\s*(?:- )?[a-z_][a-z0-9_]*:(?:\s.*)?)")
    uncommented = "\n".join(
        "".join(m.groups()) if (m := example.fullmatch(line)) else line
        for line in text.splitlines()
        if "hourly:" not in line and "start:" not in line
    )
    data = yaml.safe_load(uncommented)
    assert {"pricing", "reliability", "budget", "new_classes"} <= set(data)
    assert "events" in data["traffic"] and "spikes" in data["traffic"]
    data["mix"][next(iter(data["new_classes"]))] = 0.0
    validate_against_model(parse_scenario(data), tuple(pilot_model.classes))


def test_init_schema_valid(pilot_model: Any) -> None:
    validator = _validator()
    data = yaml.safe_load(init_scenario_text(pilot_model, "pilot.model.json"))
    assert [e.message for e in validator.iter_errors(data)] == []


def test_init_without_timestamps_uses_the_pilot_count() -> None:
    rng = np.random.default_rng(np.random.SeedSequence(11))
    log = make_log({"yes": rng.lognormal(size=40), "rag x": rng.lognormal(size=160)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CostsimWarning)
        model = fit_model(log)
    text = init_scenario_text(model, "models/my model.json")
    s = parse_scenario(yaml.safe_load(text), Path("s.yaml"))
    validate_against_model(s, tuple(model.classes))
    assert s.volume.requests == 200
    assert s.model_path == Path("models/my model.json")
    assert s.mix.shares == {"rag x": 0.8, "yes": 0.2}


def _fake_model(shares: dict[str, float], rate: float | None) -> Any:
    total = sum(shares.values())
    rates = SimpleNamespace(error_rate=None, cold_start_rate=None)
    classes = {
        n: SimpleNamespace(
            share=v / total,
            requests=max(1, int(v * 1000)),
            cost_total=v,
            quantities={},
            rates=rates,
        )
        for n, v in shares.items()
    }
    traffic = SimpleNamespace(
        requests=1000, rate_per_hour=rate, hourly_profile=None, weekday_profile=None
    )
    return SimpleNamespace(source="x\ny", classes=classes, traffic=traffic)


_names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(_names, st.floats(1e-6, 1.0), min_size=1, max_size=8),
    st.one_of(st.none(), st.floats(1e-3, 1e7)),
)
def test_init_round_trips_for_any_class_names_and_shares(
    shares: dict[str, float], rate: float | None
) -> None:
    model = _fake_model(shares, rate)
    s = parse_scenario(yaml.safe_load(init_scenario_text(model, "a b/m.json")))
    validate_against_model(s, tuple(shares))
    assert s.mix.shares is not None and set(s.mix.shares) == set(shares)
    assert all(v > 0 for v in s.mix.shares.values())
    assert math.fsum(s.mix.shares.values()) == pytest.approx(1.0, abs=1e-9)


def test_a_pilot_a_model_file_or_a_forecast_given_as_the_scenario_says_what_it_is(
    tmp_path: Path,
) -> None:
    # they read as "not UTF-8 text" and as a line of twenty unknown keys
    bundled = Path(__file__).resolve().parents[1] / "scenarios"
    cases = [
        (bundled / "pilot.parquet", "a pilot log or export, not a scenario (YAML)"),
        (
            bundled / "pilot.model.json",
            "a costsim.model document, not a scenario (YAML): a scenario names it (`model: "
            "pilot.model.json`)",
        ),
    ]
    forecast = tmp_path / "forecast.json"
    forecast.write_text(json.dumps({"kind": "costsim.forecast", "schema_version": 1}))
    cases.append((forecast, "a costsim.forecast document, not a scenario (YAML)"))
    for path, said in cases:
        with pytest.raises(ScenarioError) as info:
            sc.load_scenario(path)
        assert str(info.value).startswith(f"{path}: {said}"), str(info.value)
    scenario = tmp_path / "s.json"  # a scenario written as JSON is YAML all the same
    scenario.write_text(json.dumps({"model": "m.json", "horizon": "7d", "volume": {"requests": 1}}))
    assert sc.load_scenario(scenario).horizon_s == 7 * 86400
