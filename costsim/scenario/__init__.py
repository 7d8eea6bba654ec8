"""Scenario files (DESIGN section 3): YAML describing production, validated into a `Scenario`.

The format is declared once, in `format` (pydantic dataclasses): validation, the JSON Schema
(`json_schema`, what `costsim schema` prints) and the comments of the `init` template
(`template`) all come from that declaration. Every bad field is reported by its key path and
the allowed values, all of them at once, in one single-line `ScenarioError` whose problems are
joined with ``"; "``, e.g.::

    scenario.yaml: volume.requests: expected a number > 0, got -5; traffic.spikes.rate:
    expected a number >= 0, got 'often'

Paths inside a scenario are relative to the scenario file. Durations are strings such as
``30d``, ``12h``, ``15m``, ``90s`` or ``2w`` (or combinations such as ``1h30m``, or a number of
seconds).
"""

from __future__ import annotations

from ..defaults import MAX_SEED
from ..durations import DURATION_PATTERN, format_duration, parse_duration
from ..formats import keys
from .common import (
    BUDGET_STATS,
    DEFAULT_RESOLUTION_S,
    DEFAULT_TRIALS,
    MAX_BUCKETS,
    MAX_HORIZON_S,
    MAX_REQUESTS,
    MAX_SPIKE_SHARE,
    MAX_SPIKES_PER_TRIAL,
    MAX_TRIALS,
    MAX_USD,
    MIN_RESOLUTION_S,
    MIN_TRIALS,
    START_YEARS,
    THROTTLE,
    TRAFFIC_SHAPES,
)
from .format import Scenario, ScenarioDoc, json_schema
from .pricing import (
    ApiOption,
    Autoscale,
    Batch,
    Commitment,
    Deployment,
    Price,
    Pricing,
    ProvisionedOption,
    RateLimit,
    Replicas,
    Route,
    Switch,
    Throughputs,
)
from .reading import load_scenario, parse_scenario, read_yaml, validate_against_model
from .reliability import Budget, BudgetLimit, Exceedance, Limit, Reliability
from .template import init_scenario_text
from .traffic import Event, Magnitude, Mix, NewClass, Spikes, Traffic, Volume

# The keys of each section, as the file writes them.
TOP_KEYS = keys(ScenarioDoc)
VOLUME_KEYS = keys(Volume)
TRAFFIC_KEYS = keys(Traffic)
SPIKES_KEYS = keys(Spikes)
EVENT_KEYS = keys(Event)
PRICING_KEYS = keys(Pricing)
PRICE_KEYS = keys(Price)
RELIABILITY_KEYS = keys(Reliability)
BUDGET_KEYS = keys(Budget)

__all__ = [
    "BUDGET_KEYS",
    "BUDGET_STATS",
    "DEFAULT_RESOLUTION_S",
    "DEFAULT_TRIALS",
    "DURATION_PATTERN",
    "EVENT_KEYS",
    "MAX_BUCKETS",
    "MAX_HORIZON_S",
    "MAX_REQUESTS",
    "MAX_SEED",
    "MAX_SPIKES_PER_TRIAL",
    "MAX_SPIKE_SHARE",
    "MAX_TRIALS",
    "MAX_USD",
    "MIN_RESOLUTION_S",
    "MIN_TRIALS",
    "PRICE_KEYS",
    "PRICING_KEYS",
    "RELIABILITY_KEYS",
    "SPIKES_KEYS",
    "START_YEARS",
    "THROTTLE",
    "TOP_KEYS",
    "TRAFFIC_KEYS",
    "TRAFFIC_SHAPES",
    "VOLUME_KEYS",
    "ApiOption",
    "Autoscale",
    "Batch",
    "Budget",
    "BudgetLimit",
    "Commitment",
    "Deployment",
    "Event",
    "Exceedance",
    "Limit",
    "Magnitude",
    "Mix",
    "NewClass",
    "Price",
    "Pricing",
    "ProvisionedOption",
    "RateLimit",
    "Reliability",
    "Replicas",
    "Route",
    "Scenario",
    "ScenarioDoc",
    "Spikes",
    "Switch",
    "Throughputs",
    "Traffic",
    "Volume",
    "format_duration",
    "init_scenario_text",
    "json_schema",
    "load_scenario",
    "parse_duration",
    "parse_scenario",
    "read_yaml",
    "validate_against_model",
]
