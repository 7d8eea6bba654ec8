"""The scenario format declared once: deployments, route and catalog model names in pricing,
each bad block reported by its key path; the JSON Schema derived from the same declaration."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from costsim.errors import ScenarioError
from costsim.scenario import (
    ApiOption,
    Price,
    ProvisionedOption,
    json_schema,
    parse_scenario,
    validate_against_model,
)

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("agent", "lookup", "rag")
BASE: dict[str, Any] = {"model": "m.json", "horizon": "30d", "volume": {"requests": 1000}}

DEPLOYMENTS = """\
deployments:
  openai:
    kind: api
    pricing:
      default: {model: "openai:gpt-4o", output_per_mtok: 12}
      classes: {rag: {model: "openai:gpt-4o-mini"}}
    batch: {classes: [lookup], discount: 0.5}
    rate_limit: {requests_per_minute: 10000}
    switch: {cost: 5000, lead_time: 14d}
  gpus:
    kind: provisioned
    gpu_hour_usd: 2.5
    throughput: {default: 4, classes: {agent: 0.5}}
    replicas: {min: 1, max: 8}
    autoscale: {target_utilization: 0.6, scale_up_delay: 5m, scale_down_after: 1h}
    overflow: openai
    commitment: {replicas: 2, gpu_hour_usd: 1.8}
    switch: {cost: 20000, lead_time: 30d}
route:
  default: gpus
  classes: {agent: openai}
"""


def doc(**extra: Any) -> dict[str, Any]:
    return {**copy.deepcopy(BASE), **yaml.safe_load(DEPLOYMENTS), **extra}


def error(data: dict[str, Any]) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    message = str(info.value)
    assert "\n" not in message
    assert not any(w in message for w in ("Input should", "pydantic", "validation error"))
    return message


def set_at(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


def test_a_valid_deployments_block_parses_with_seconds_and_values() -> None:
    s = parse_scenario(doc())
    assert list(s.deployments) == ["openai", "gpus"]
    api, gpus = s.deployments["openai"], s.deployments["gpus"]
    assert isinstance(api, ApiOption) and isinstance(gpus, ProvisionedOption)
    assert api.pricing is not None and api.pricing.default == Price(
        output_per_mtok=12.0, model="openai:gpt-4o"
    )
    assert api.pricing.classes["rag"].model == "openai:gpt-4o-mini"
    assert api.batch is not None and (api.batch.classes, api.batch.discount) == (("lookup",), 0.5)
    assert api.rate_limit is not None and api.rate_limit.requests_per_minute == 10000.0
    assert api.switch is not None and (api.switch.cost, api.switch.lead_time_s) == (
        5000.0,
        14 * 86400,
    )
    assert gpus.gpu_hour_usd == 2.5
    assert (gpus.throughput.default, gpus.throughput.classes) == (4.0, {"agent": 0.5})
    assert (gpus.replicas.min, gpus.replicas.max) == (1, 8)
    a = gpus.autoscale
    assert (a.target_utilization, a.scale_up_delay_s, a.scale_down_after_s) == (0.6, 300.0, 3600.0)
    assert gpus.overflow == "openai"
    assert gpus.commitment is not None and (
        gpus.commitment.replicas,
        gpus.commitment.gpu_hour_usd,
    ) == (
        2,
        1.8,
    )
    assert gpus.switch is not None and gpus.switch.lead_time_s == 30 * 86400
    assert s.route is not None and (s.route.default, s.route.classes) == (
        "gpus",
        {"agent": "openai"},
    )
    assert s.default_route == "gpus"
    validate_against_model(s, CLASSES)


def test_provisioned_defaults_and_the_first_option_as_default_route() -> None:
    data = doc()
    del data["route"]
    gpus = data["deployments"]["gpus"]
    for key in ("autoscale", "overflow", "commitment", "switch"):
        del gpus[key]
    s = parse_scenario(data)
    option = s.deployments["gpus"]
    assert isinstance(option, ProvisionedOption)
    a = option.autoscale
    assert (a.target_utilization, a.scale_up_delay_s, a.scale_down_after_s) == (0.7, 300.0, 900.0)
    assert option.overflow == "throttle" and option.commitment is None
    assert s.route is None and s.default_route == "openai"


def test_without_deployments_the_mapping_is_empty() -> None:
    s = parse_scenario(copy.deepcopy(BASE))
    assert s.deployments == {} and s.route is None and s.default_route is None


@pytest.mark.parametrize(
    ("dotted", "value", "expected"),
    [
        ("deployments.gpus.kind", "gpu", "deployments.gpus.kind: expected one of api, provisioned, "
         "got 'gpu'"),
        ("deployments.gpus.kind", ..., "deployments.gpus.kind: required (one of api, provisioned)"),
        ("deployments.gpus.overflow", "gpus", "deployments.gpus.overflow: cannot overflow to "
         "itself"),
        ("deployments.gpus.overflow", "opnai", "deployments.gpus.overflow: expected one of "
         "throttle, openai, got 'opnai'; did you mean 'openai'?"),
        ("route.default", "gpu", "route.default: expected one of openai, gpus, got 'gpu'; did you "
         "mean 'gpus'?"),
        ("route.classes.agent", "other", "route.classes.agent: expected one of openai, gpus, got "
         "'other'"),
        ("deployments.gpus.commitment.replicas", 9, "deployments.gpus.commitment.replicas: "
         "expected at most replicas.max (8), got 9"),
        ("deployments.gpus.replicas.max", 0, "deployments.gpus.replicas.max: expected an integer "
         ">= 1, got 0"),
        ("deployments.gpus.replicas.min", 9, "deployments.gpus.replicas.max: expected at least "
         "min (9), got 8"),
        ("deployments.gpus.replicas.min", 1.5, "deployments.gpus.replicas.min: expected an "
         "integer"),
        ("deployments.gpus.throughput.default", 0, "deployments.gpus.throughput.default: expected "
         "a number > 0, got 0"),
        ("deployments.gpus.throughput.classes.agent", -1, "deployments.gpus.throughput.classes."
         "agent: expected a number > 0, got -1"),
        ("deployments.gpus.throughput", ..., "deployments.gpus.throughput: required"),
        ("deployments.gpus.gpu_hour_usd", ..., "deployments.gpus.gpu_hour_usd: required"),
        ("deployments.gpus.gpu_hour_usd", 0, "deployments.gpus.gpu_hour_usd: expected a number "
         "> 0"),
        ("deployments.gpus.autoscale.target_utilization", 0, "deployments.gpus.autoscale."
         "target_utilization: expected a number in (0, 1], got 0"),
        ("deployments.gpus.autoscale.scale_up_delay", "soon", "deployments.gpus.autoscale."
         "scale_up_delay: expected a duration >= 0 such as 30d"),
        ("deployments.gpus.switch.lead_time", "1M", "(months differ in length"),
        ("deployments.openai.batch.discount", 1.5, "deployments.openai.batch.discount: expected "
         "a number in [0, 1] (fraction off: price x (1 - discount)), got 1.5"),
        ("deployments.openai.rate_limit.requests_per_minute", 0, "deployments.openai.rate_limit."
         "requests_per_minute: expected a number > 0"),
        ("deployments.openai.pricing.default.model", "", "deployments.openai.pricing.default."
         "model: expected a catalog model such as openai:gpt-4o, got ''"),
        ("deployments.openai.switch.cost", -1, "deployments.openai.switch.cost: expected a number "
         ">= 0, got -1"),
        ("deployments.openai", 5, "deployments.openai: expected a mapping, got 5"),
    ],
)  # fmt: skip
def test_a_bad_block_is_reported_by_its_key_path(dotted: str, value: Any, expected: str) -> None:
    assert expected in error(set_at(doc(), dotted, value))


@pytest.mark.parametrize(
    ("dotted", "key", "expected"),
    [
        ("deployments.gpus", "gpu_hour", "deployments.gpus.gpu_hour: unknown key; did you mean "
         "'gpu_hour_usd'?"),
        ("deployments.gpus.autoscale", "scale_up", "deployments.gpus.autoscale.scale_up: unknown "
         "key; did you mean 'scale_up_delay'?"),
        ("deployments.openai", "ratelimit", "deployments.openai.ratelimit: unknown key; did you "
         "mean 'rate_limit'?"),
        ("deployments.openai.pricing.default", "modle", "deployments.openai.pricing.default.modle: "
         "unknown key; did you mean 'model'?"),
        ("deployments.gpus.replicas", "maximum", "deployments.gpus.replicas.maximum: unknown key; "
         "did you mean 'max'?"),
        ("route", "clases", "route.clases: unknown key; did you mean 'classes'?"),
    ],
)  # fmt: skip
def test_unknown_keys_inside_deployments_get_a_did_you_mean(
    dotted: str, key: str, expected: str
) -> None:
    data = doc()
    node = data
    for part in dotted.split("."):
        node = node[part]
    node[key] = 1
    assert expected in error(data)


def test_an_api_key_on_a_provisioned_option_is_unknown() -> None:
    data = doc()
    data["deployments"]["gpus"]["batch"] = {"discount": 0.5}
    message = error(data)
    assert message.startswith("deployments.gpus.batch: unknown key; allowed: kind, gpu_hour_usd")


def test_route_needs_deployments() -> None:
    data = {**copy.deepcopy(BASE), "route": {"default": "x"}}
    assert error(data) == "route: only with deployments (name the options there)"


def test_several_problems_in_deployments_are_reported_together() -> None:
    data = doc()
    set_at(data, "deployments.gpus.gpu_hour_usd", "cheap")
    set_at(data, "deployments.openai.batch.discount", 2)
    set_at(data, "volume.requests", -5)
    message = error(data)
    for part in (
        "volume.requests: expected a number > 0, got -5",
        "deployments.openai.batch.discount: expected a number in [0, 1]",
        "deployments.gpus.gpu_hour_usd: expected a number > 0, got 'cheap'",
    ):
        assert part in message


def test_model_names_in_pricing() -> None:
    data = {
        **copy.deepcopy(BASE),
        "pricing": {
            "default": {"model": "openai:gpt-4o"},
            "classes": {"rag": {"model": "anthropic:claude-sonnet-4", "output_per_mtok": 10}},
        },
    }
    s = parse_scenario(data)
    assert s.pricing is not None
    assert s.pricing.default == Price(model="openai:gpt-4o")
    assert s.pricing.classes["rag"] == Price(
        output_per_mtok=10.0, model="anthropic:claude-sonnet-4"
    )
    assert Price(1.0, 2.0).model is None  # positional, as before
    bad = set_at(copy.deepcopy(data), "pricing.default.model", 5)
    assert "pricing.default.model: expected a catalog model such as openai:gpt-4o, got 5" in error(
        bad
    )


def test_class_names_in_deployments_are_checked_against_the_model() -> None:
    data = doc()
    set_at(data, "route.classes", {"agnt": "openai"})
    set_at(data, "deployments.gpus.throughput.classes", {"lokup": 2})
    set_at(data, "deployments.openai.batch.classes", ["rag", "rga"])
    set_at(data, "deployments.openai.pricing.classes", {"zzz": {"model": "x:y"}})
    s = parse_scenario(data)
    with pytest.raises(ScenarioError) as info:
        validate_against_model(s, CLASSES)
    message = str(info.value)
    for part in (
        "deployments.openai.pricing.classes.zzz: class not in the model; model classes: ",
        "deployments.openai.batch.classes[1]: class 'rga' not in the model; did you mean 'rag'?",
        "deployments.gpus.throughput.classes.lokup: class not in the model; did you mean 'lookup'?",
        "route.classes.agnt: class not in the model; did you mean 'agent'?",
    ):
        assert part in message


def test_the_schema_describes_deployments_and_validates_them() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    assert [e.message for e in validator.iter_errors(doc())] == []
    bad = set_at(doc(), "deployments.gpus.kind", "gpu")
    assert list(validator.iter_errors(bad))
    bad = set_at(doc(), "deployments.gpus.replicas.min", -1)
    assert list(validator.iter_errors(bad))
    pricing = schema["properties"]["pricing"]["anyOf"][0]["properties"]
    assert "model" in pricing["default"]["anyOf"][0]["properties"]


BUNDLED = sorted((ROOT / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_every_bundled_scenario_validates_against_the_schema(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(
        json_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data = parse_scenario(data, path).raw  # dates as ISO text, as JSON has them
    assert [e.message for e in validator.iter_errors(data)] == []
