"""The scenario format (DESIGN section 3), declared once.

Each section is a frozen pydantic dataclass whose fields are the keys of the YAML file: the
docstring under a field is its description (in the JSON Schema and the `init` template), its
type says what is allowed. Values read in other units are kept in the unit the code uses
(durations in seconds, with ``*_s`` properties); checks that span several keys run once the
keys they read are valid. What the code reads and the file does not say (the resolved model
path, the file's own path, the document as read) is added by `Scenario`, for the file it was
read from.

Bounds are generous (no real scenario comes near them) but finite: the engine multiplies
volume x growth x events x spikes x prices, and with these the product stays below about 1e40
USD, far from float overflow.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass
from pydantic.json_schema import JsonSchemaValue

from ..defaults import MAX_SEED
from ..formats import (
    Choice,
    Declared,
    Flag,
    NonEmpty,
    Num,
    Nums,
    Problem,
    adapter,
    clean_schema,
    drop_nulls,
    is_document,
    keys,
    problems_error,
    raise_problems,
    shorthand,
    show,
    suggest,
)
from .durations import Duration, format_duration

DEFAULT_RESOLUTION_S = 3600.0
MIN_RESOLUTION_S = 60.0
MAX_HORIZON_S = 3650 * 86400.0  # ten years: growth compounded over it and spike counts stay finite
MAX_BUCKETS = 100_000
MAX_REQUESTS = 1e13  # the engine's finest stratum is 1e-13: beyond this, exact draws pile up
BUCKET_TOLERANCE = 1e-9  # relative: horizon / resolution must be this close to a whole number
MIX_TOLERANCE = 1e-6
MIN_MIX_WEIGHT = 1e-6  # with mix_relative, the largest weight: below, weight x share may underflow
DEFAULT_TRIALS = 10_000
MIN_TRIALS = 100
MAX_TRIALS = 10_000_000
MAX_USD = 1e15  # budgets: a thousand times the largest cloud bill; prices x volume stay far below
# Spikes per trial (rate x horizon in days): the traffic layer holds every spike of a chunk of
# trials (2000) at about 128 bytes each while it draws and spreads them: 4096 is about 1 GiB.
MAX_SPIKES_PER_TRIAL = 4096
MAX_SPIKE_SHARE = 1.0  # rate x duration: the expected share of time in a spike; above 1, spikes
# overlap all the time and are a higher volume, not spikes
MAX_REPLICAS = 100_000
BUDGET_STATS = ("p5", "p50", "p90", "p95", "p99", "mean")
TRAFFIC_SHAPES = ("pilot", "flat")
THROTTLE = "throttle"  # a provisioned option's overflow when it names no other option
START_YEARS = (1970, 2199)  # a start outside is a typo (the shapes align to it, nothing else)
HOURS = 24
WEEKDAYS = 7
_VOLUME_AMOUNTS = {"requests": None, "per_hour": 3600.0, "per_day": 86400.0}  # seconds per unit
_NICE_RESOLUTIONS = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 14400, 21600, 28800, 43200, 86400)


def _config(**schema: Any) -> ConfigDict:
    """A mapping of the format: frozen, refusing unknown keys, each key described by the
    docstring under it; ``schema`` adds JSON Schema keywords (such as a ``oneOf``)."""
    return ConfigDict(
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        validate_by_name=True,  # code builds sections by attribute (dataclasses.replace) ...
        validate_by_alias=True,  # ... files by key (`validated` reads keys only)
        json_schema_extra=schema or None,
    )


_CONFIG = _config()


@dataclass(config=_CONFIG)
class _Section:
    """The base of every section: null values are absent."""

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        return drop_nulls(data)


def _cap(lo: float, hi: float, meaning: str = "", **kw: Any) -> Num:
    """A number in [lo, hi] where hi is a plausibility cap (a message names lo alone unless
    the value is above hi)."""
    return Num(lo, hi, meaning=meaning, cap=True, **kw)


def _count(lo: int, hi: int, meaning: str = "", cap: bool = True) -> Num:
    return Num(lo, hi, integer=True, meaning=meaning, cap=cap)


# The numbers of the format. USD prices: the dearest models charge a few hundred USD per
# million tokens, so ten thousand is generous.
Share = Annotated[
    float, _cap(0.0, 1e6, "a share, or with mix_relative a weight on the pilot share")
]
PerMtok = _cap(0.0, 1e4)
Usd = Annotated[float, _cap(0.0, MAX_USD, "USD over the horizon", lo_open=True)]
Requests = Annotated[float, _cap(0.0, MAX_REQUESTS, lo_open=True)]
Probability = Annotated[float, Num(0.0, 1.0)]


@dataclasses.dataclass(frozen=True)
class ClassList(Declared):
    """The classes affected: ``all`` (None), a class name, or a list of distinct names."""

    def __call__(self, value: Any) -> tuple[str, ...] | None:
        if value is None or value == "all":
            return None
        value = [value] if isinstance(value, str) else value
        value = list(value) if isinstance(value, tuple) else value
        if not isinstance(value, list) or not value:
            raise problems_error(
                [("", f"expected all or a list of class names, got {show(value)}")]
            )
        problems: list[Problem] = []
        for i, name in enumerate(value):
            if not isinstance(name, str) or not name.strip():
                problems.append((f"[{i}]", f"expected a class name, got {show(name)}"))
            elif name in value[:i]:
                problems.append((f"[{i}]", f"class '{name}' is listed twice"))
        raise_problems(problems)
        return tuple(value)

    def json_schema(self) -> JsonSchemaValue:
        name = {"type": "string", "minLength": 1}
        names = {"type": "array", "items": name, "minItems": 1, "uniqueItems": True}
        return {"anyOf": [name, names]}


Classes = Annotated[tuple[str, ...] | None, ClassList()]


def _iso(value: datetime | date) -> str:
    """ISO 8601 in UTC (``Z``); a date or a date-time without a zone is taken as UTC. One that
    UTC cannot hold (0001-01-01T00:00+01:00) is written as it is."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except (OverflowError, ValueError):
        return value.isoformat()
    return value.isoformat().replace("+00:00", "Z")


@dataclasses.dataclass(frozen=True)
class Start(Declared):
    """An ISO date-time (or a date), in the years `START_YEARS`, kept as ISO text in UTC."""

    def __call__(self, value: Any) -> str:
        when: date | None = value if isinstance(value, (datetime, date)) else None
        if isinstance(value, str):
            text = value.strip()
            text = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
            try:
                when = datetime.fromisoformat(text)
            except ValueError:
                pass
        first, last = START_YEARS
        if when is not None and first <= when.year <= last:
            iso = _iso(when)
            if iso.endswith("Z") and first <= int(iso[:4]) <= last:  # in UTC too
                return iso
        if when is not None:
            message = f"expected a date-time in the years {first} to {last}, got {show(value)}"
        else:
            message = (
                "expected an ISO date-time such as 2026-12-07T00:00:00Z (or a date such as "
                f"2026-12-07) that exists, got {show(value)}"
            )
        raise problems_error([("", message)])

    def json_schema(self) -> JsonSchemaValue:
        return {
            "type": "string",
            "anyOf": [{"format": "date-time"}, {"format": "date"}],
            "pattern": r"^\s*(19[7-9][0-9]|2[01][0-9][0-9])-",  # the years START_YEARS
        }


def _not_all_zero(values: tuple[float, ...] | None) -> tuple[float, ...] | None:
    if values is not None and not any(v > 0 for v in values):
        raise problems_error([("", "expected at least one value > 0, got all zeros")])
    return values


# Relative values, renormalised to mean 1: a million to one covers any day or week.
Hourly = Annotated[
    tuple[float, ...],
    Nums(
        _cap(0.0, 1e6, "relative traffic in that hour"), HOURS, what="one per hour, from 00:00 UTC"
    ),
    AfterValidator(_not_all_zero),
]
Weekly = Annotated[
    tuple[float, ...],
    Nums(
        _cap(0.0, 1e6, "relative traffic on that day"), WEEKDAYS, what="one per day, Monday first"
    ),
    AfterValidator(_not_all_zero),
]


# ---------------------------------------------------------------------------------------------
# Volume, mix, traffic
# ---------------------------------------------------------------------------------------------


@dataclass(config=_config(oneOf=[{"required": [k]} for k in _VOLUME_AMOUNTS]))
class Volume(_Section):
    """Production volume: exactly one of requests, per_hour or per_day."""

    requests: Requests = 0.0
    """Requests over the whole horizon (once read, always filled in: a rate times the
    horizon, before growth)."""
    per_hour: Requests | None = None
    """Requests per hour at the start (growth compounds on top)."""
    per_day: Requests | None = None
    """Requests per day at the start (growth compounds on top)."""
    # Up to +1000% a month: compounded over ten years, 11 ** 122 = 1e127 stays finite (the
    # traffic layer compounds in logs, so a decline towards -100% does not underflow to 0 / 0).
    growth: Annotated[
        float, _cap(-1.0, 10.0, "relative growth per 30 days: 0.1 means +10% a month", lo_open=True)
    ] = 0.0
    """Relative growth per 30 days, compounding through the horizon (0.1 = +10% a month)."""
    # sd of the log: 2 is already a factor e**2 = 7.4 either way at one sd; 20 (meant as 20%)
    # would put every trial at $0 or astronomically high.
    uncertainty: Annotated[float, _cap(0.0, 2.0, "the sd of log volume: 0.2 means about +-20%")] = (
        0.0
    )
    """Standard deviation of the log of the volume, drawn per trial (0 = known)."""

    @model_validator(mode="before")
    @classmethod
    def _one_amount(cls, data: Any) -> Any:
        if is_document(data) and isinstance(data, dict):
            given = [k for k in _VOLUME_AMOUNTS if data.get(k) is not None]
            if not given:
                raise problems_error(
                    [("", "give one of requests (over the horizon), per_hour or per_day")]
                )
            if len(given) > 1:
                raise problems_error([(
                    "",
                    f"give exactly one of requests, per_hour or per_day, not {' and '.join(given)}",
                )])  # fmt: skip
        return data


@dataclass(config=_CONFIG)
class NewClass(_Section):
    """A production class the pilot did not have, borrowed from a pilot class."""

    like: Annotated[str, NonEmpty()]
    """The pilot class it is like."""
    # More than a thousand times cheaper or dearer than its pilot class is not "like" it.
    cost_scale: Annotated[float, _cap(1e-3, 1e3, "per-request cost relative to its like class")] = (
        1.0
    )
    """Per-request cost relative to that class."""


@dataclasses.dataclass(frozen=True)
class Mix:
    """Production shares per class, as the simulator reads them: ``shares`` None for the
    pilot's mix; ``relative``: values multiply the pilot shares (renormalised), else they are
    absolute and sum to 1, unlisted classes getting 0; ``concentration``: the Dirichlet
    concentration of the per-trial mix (None = fixed)."""

    shares: dict[str, float] | None = None
    relative: bool = False
    concentration: float | None = None
    new_classes: dict[str, NewClass] = dataclasses.field(default_factory=dict)


@dataclass(config=_CONFIG)
class Magnitude(_Section):
    """A spike's traffic multiplier, lognormal."""

    # A spike a hundred times the usual traffic is plenty, and an sd of 1 (x/ 2.7 at one sd)
    # already makes one spike in 40 a dip; the engine draws the requests of intensities far above
    # the expected one by one, so larger ones cost memory.
    median: Annotated[
        float, _cap(1.0, 100.0, "the median traffic multiplier of a spike", lo_open=True)
    ] = 2.0
    """Median multiplier."""
    sd: Annotated[
        float,
        _cap(0.0, 1.0, "the sd of the log multiplier: 0.5 means about x/ 1.6 around the median"),
    ] = 0.5
    """Standard deviation of the log multiplier."""


_MEDIAN = _cap(1.0, 100.0, "the median traffic multiplier of a spike", lo_open=True)


@dataclass(config=_CONFIG)
class Spikes(_Section):
    """Random traffic spikes. rate x duration (the expected share of time in a spike) is at
    most 1 day a day, and rate x horizon (spikes per trial) at most 4096."""

    # One spike a minute on average; see also MAX_SPIKES_PER_TRIAL and MAX_SPIKE_SHARE.
    rate: Annotated[float, _cap(0.0, 1440.0, "spikes per day, on average")]
    """Expected spikes per day."""
    magnitude: Annotated[Magnitude, shorthand("median", _MEDIAN, Magnitude, "the median")] = (
        dataclasses.field(default_factory=Magnitude)
    )
    """Traffic multiplier of a spike: its median, or {median, sd}."""
    duration: Annotated[float, Duration(0.0, MAX_HORIZON_S, lo_open=True)] = 3600.0
    """How long a spike lasts."""
    classes: Classes = None
    """The classes it hits: all, a class name, or a list of class names."""

    @property
    def rate_per_day(self) -> float:
        return self.rate

    @property
    def magnitude_median(self) -> float:
        return self.magnitude.median

    @property
    def magnitude_sd(self) -> float:
        return self.magnitude.sd

    @property
    def duration_s(self) -> float:
        return self.duration

    @model_validator(mode="after")
    def _not_all_the_time(self) -> Spikes:
        share = self.rate * self.duration / 86400.0
        if share > MAX_SPIKE_SHARE:
            given = self.duration != 3600.0
            what = f"{'' if given else 'the default '}duration {format_duration(self.duration)}"
            fix = f"{'' if given else 'set '}traffic.spikes.duration"
            raise_problems([(
                "" if given else "rate",
                f"rate {self.rate:g} a day x {what} puts traffic in a spike {share:.3g} of the "
                f"time on average (at most {MAX_SPIKE_SHARE:g}: spikes that never end are volume): "
                f"lower traffic.spikes.rate or {fix}",
            )])  # fmt: skip
        return self


@dataclass(config=_CONFIG)
class Event(_Section):
    """A scheduled event such as a launch: multiplies the traffic of its classes while it
    lasts; it ends within the horizon."""

    name: Annotated[str, NonEmpty()]
    """Label for reports."""
    at: Annotated[
        float, Duration(0.0, MAX_HORIZON_S, hi_open=True, meaning="from the horizon's start")
    ]
    """Start, from the horizon's start."""
    duration: Annotated[float, Duration(0.0, MAX_HORIZON_S, lo_open=True)]
    """How long it lasts."""
    # A launch at a thousand times the usual traffic is already extreme.
    multiplier: Annotated[
        float, _cap(0.0, 1e3, "the traffic multiplier while it lasts", lo_open=True)
    ]
    """Traffic multiplier while it lasts."""
    classes: Classes = None
    """The classes it affects: all, a class name, or a list of class names."""

    @property
    def start_s(self) -> float:
        return self.at

    @property
    def duration_s(self) -> float:
        return self.duration


@dataclass(config=_CONFIG)
class Traffic(_Section):
    """Traffic shape, spikes and events."""

    shape: Annotated[str, Choice(TRAFFIC_SHAPES)] = "pilot"
    """pilot: the pilot's hour-of-day and weekday shape (flat where it had none); flat: none."""
    hourly: Hourly | None = None
    """24 relative values, one per hour of the day from 00:00 UTC, not all zero (overrides the
    shape)."""
    weekly: Weekly | None = None
    """7 relative values, one per day of the week, Monday first, not all zero."""
    spikes: Spikes = dataclasses.field(default_factory=lambda: Spikes(rate=0.0))
    """Random traffic spikes."""
    events: tuple[Event, ...] = ()
    """Scheduled events."""

    @model_validator(mode="after")
    def _distinct_names(self) -> Traffic:
        raise_problems([
            (f"events[{i}].name", f"another event is already named '{e.name}'")
            for i, e in enumerate(self.events)
            if e.name in [f.name for f in self.events[:i]]
        ])  # fmt: skip
        return self


# ---------------------------------------------------------------------------------------------
# Pricing and deployments
# ---------------------------------------------------------------------------------------------


@dataclass(config=_CONFIG)
class Price(_Section):
    """Token prices in USD. A class with a price is re-priced from its tokens; a missing price
    falls back to pricing.default."""

    input_per_mtok: Annotated[float, PerMtok] | None = None
    """USD per million input tokens."""
    output_per_mtok: Annotated[float, PerMtok] | None = None
    """USD per million output tokens."""
    cached_per_mtok: Annotated[float, PerMtok] | None = None
    """USD per million cached input tokens."""
    per_request: Annotated[float, _cap(0.0, 1e3, "USD per request")] | None = None
    """USD per request."""
    model: Annotated[str, NonEmpty(what="a catalog model such as openai:gpt-4o")] | None = None
    """A catalog model ("provider:model") whose prices apply; the prices above override it."""


@dataclass(config=_CONFIG)
class Pricing(_Section):
    """Token pricing; omitted = the pilot's billed cost."""

    default: Price | None = None
    """Prices of every class without its own."""
    classes: dict[str, Price] = dataclasses.field(default_factory=dict)
    """Per-class prices."""


@dataclass(config=_CONFIG)
class Switch(_Section):
    """What leaving an option costs."""

    cost: Annotated[float, _cap(0.0, MAX_USD, "USD")] = 0.0
    """One-off cost of switching away, USD."""
    lead_time: Annotated[float, Duration(0.0, MAX_HORIZON_S)] = 0.0
    """How long a switch takes."""

    @property
    def lead_time_s(self) -> float:
        return self.lead_time


@dataclass(config=_CONFIG)
class Batch(_Section):
    """Batch pricing of some classes."""

    discount: Annotated[float, Num(0.0, 1.0, meaning="fraction off: price x (1 - discount)")]
    """Fraction off the price: price x (1 - discount)."""
    classes: Classes = None
    """The classes sent as batches: all, a class name, or a list of class names."""


@dataclass(config=_CONFIG)
class RateLimit(_Section):
    """The provider's rate limit."""

    requests_per_minute: Annotated[float, _cap(0.0, 1e9, lo_open=True)]
    """Requests per minute allowed."""


@dataclass(config=_CONFIG)
class ApiOption(_Section):
    """Serving through an API, priced per token."""

    kind: Literal["api"]
    """api: priced per token."""
    pricing: Pricing | None = None
    """Token prices (same shape as the top-level pricing); omitted = the pilot's cost."""
    batch: Batch | None = None
    """Batch discount."""
    rate_limit: RateLimit | None = None
    """Rate limit (excess requests are throttled)."""
    switch: Switch | None = None
    """What leaving this option costs."""


Throughput = Annotated[
    float, _cap(0.0, 1e6, "requests per second one replica serves", lo_open=True)
]


@dataclass(config=_CONFIG)
class Throughputs(_Section):
    """Requests per second one replica serves."""

    default: Throughput
    """For every class without its own."""
    classes: dict[str, Throughput] = dataclasses.field(default_factory=dict)
    """Per class."""


@dataclass(config=_CONFIG)
class Replicas(_Section):
    """How many replicas may run."""

    min: Annotated[int, _count(0, MAX_REPLICAS)]
    """Replicas always running."""
    max: Annotated[int, _count(1, MAX_REPLICAS)]
    """Most replicas running (at least min)."""

    @model_validator(mode="after")
    def _ordered(self) -> Replicas:
        if self.max < self.min:
            raise_problems([("max", f"expected at least min ({self.min}), got {self.max}")])
        return self


@dataclass(config=_CONFIG)
class Autoscale(_Section):
    """How the replicas follow the load."""

    target_utilization: Annotated[float, Num(0.0, 1.0, lo_open=True)] = 0.7
    """Utilisation the autoscaler aims at."""
    scale_up_delay: Annotated[float, Duration(0.0, MAX_HORIZON_S)] = 300.0
    """Time for a new replica to serve (a cold start)."""
    scale_down_after: Annotated[float, Duration(0.0, MAX_HORIZON_S)] = 900.0
    """Idle time before a replica is removed."""

    @property
    def scale_up_delay_s(self) -> float:
        return self.scale_up_delay

    @property
    def scale_down_after_s(self) -> float:
        return self.scale_down_after


@dataclass(config=_CONFIG)
class Commitment(_Section):
    """Replicas reserved (and paid) for the whole horizon at a committed price."""

    replicas: Annotated[int, _count(0, MAX_REPLICAS)]
    """Committed replicas (at most replicas.max)."""
    gpu_hour_usd: Annotated[float, _cap(0.0, 1e4, "USD per replica-hour", lo_open=True)]
    """Committed price per replica-hour, USD."""


@dataclass(config=_CONFIG)
class ProvisionedOption(_Section):
    """Self-hosted or provisioned GPUs, priced per replica-hour."""

    kind: Literal["provisioned"]
    """provisioned: priced per replica-hour."""
    gpu_hour_usd: Annotated[float, _cap(0.0, 1e4, "USD per replica-hour", lo_open=True)]
    """Price per replica-hour, USD."""
    throughput: Throughputs
    """Requests per second one replica serves."""
    replicas: Replicas
    """How many replicas may run."""
    autoscale: Autoscale = dataclasses.field(default_factory=Autoscale)
    """How the replicas follow the load."""
    overflow: Annotated[str, NonEmpty(what="the name of another option or throttle")] = THROTTLE
    """Where traffic beyond the capacity goes: another option, or throttle."""
    commitment: Commitment | None = None
    """Replicas committed for the whole horizon."""
    switch: Switch | None = None
    """What leaving this option costs."""

    @model_validator(mode="after")
    def _commitment_fits(self) -> ProvisionedOption:
        c, top = self.commitment, self.replicas.max
        if c is not None and c.replicas > top:
            raise_problems(
                [
                    (
                        "commitment.replicas",
                        f"expected at most replicas.max ({top}), got {c.replicas}",
                    )
                ]
            )
        return self


Deployment = Annotated[ApiOption | ProvisionedOption, Field(discriminator="kind")]


@dataclass(config=_CONFIG)
class Route(_Section):
    """Which option serves each class."""

    default: Annotated[str, NonEmpty(what="the name of an option")] | None = None
    """The option of every class without its own (default: the first option)."""
    classes: dict[str, Annotated[str, NonEmpty(what="the name of an option")]] = dataclasses.field(
        default_factory=dict
    )
    """Per class: the option that serves it."""


# ---------------------------------------------------------------------------------------------
# Reliability and budget
# ---------------------------------------------------------------------------------------------


@dataclass(config=_CONFIG)
class Reliability(_Section):
    """How production's reliability differs from the pilot's; every key omitted reproduces the
    pilot (its cost already has its retries)."""

    # A probability (the engine caps it at 0.999 where load raises it).
    error_rate: Annotated[float, Num(0.0, 1.0, hi_open=True)] | None = None
    """Per-attempt failure probability (omitted: the pilot's, per class)."""
    # Failures scale with (load / mean load) ** k: 1 is proportional, 10 already a cliff.
    load_exponent: Annotated[
        float, _cap(0.0, 10.0, "failures scale with load ** load_exponent")
    ] = 0.0
    """Failures scale with (load / mean load) ** load_exponent (0 = flat)."""
    # Attempts are computed by repeated products, one per attempt: 100 is far past any policy.
    max_attempts: (
        Annotated[int, _count(1, 100, "attempts per request, the first included")] | None
    ) = None
    """Attempts per request including the first (omitted: the pilot's behaviour)."""
    billed_failures: Flag = True
    """Whether failed attempts are billed."""
    cold_start_rate: (
        Annotated[float, Num(0.0, 1.0, meaning="share of requests served cold")] | None
    ) = None
    """Share of requests served cold (omitted: the pilot's, per class)."""
    # A cold request a thousand times as dear as a warm one is beyond any cold start.
    cold_start_cost_ratio: (
        Annotated[float, _cap(0.0, 1e3, "cost of a cold request / a warm one", lo_open=True)] | None
    ) = None
    """Cost of a cold request / a warm one (omitted: the pilot's)."""
    spike_cold_share: Annotated[
        float, Num(0.0, 1.0, meaning="share of a sudden rise served cold")
    ] = 0.0
    """Share of the extra requests of a sudden rise served cold."""


@dataclass(config=_CONFIG)
class Limit(_Section):
    """Fail and warn levels (USD over the horizon)."""

    fail: Annotated[float, _cap(0.0, MAX_USD, "the fail level, USD over the horizon", lo_open=True)]
    """Fail level (USD)."""
    warn: (
        Annotated[
            float,
            _cap(0.0, MAX_USD, "USD over the horizon, below fail", lo_open=True, hi_open=True),
        ]
        | None
    ) = None
    """Warn level (USD), below fail."""

    @model_validator(mode="after")
    def _warn_below_fail(self) -> Limit:
        if self.warn is not None and self.warn >= self.fail:
            raise_problems(
                [("warn", f"expected less than fail ({self.fail:g}), got {self.warn:g}")]
            )
        return self


_FAIL = _cap(0.0, MAX_USD, "the fail level, USD over the horizon", lo_open=True)
BudgetLevel = Annotated[Limit, shorthand("fail", _FAIL, Limit, "the fail level")]


@dataclass(config=_CONFIG)
class Exceedance(_Section):
    """The probability that the cost exceeds amount must stay below max_prob."""

    amount: Usd
    """USD over the horizon."""
    max_prob: Annotated[float, Num(0.0, 1.0, lo_open=True, hi_open=True)]
    """Largest allowed probability of exceeding amount."""


@dataclasses.dataclass(frozen=True)
class BudgetLimit:
    """A budget on one statistic (``p5`` ... ``p99`` or ``mean``), as `check` reads it."""

    stat: str
    fail: float
    warn: float | None = None


@dataclass(config=_CONFIG)
class Budget(_Section):
    """Budgets for `costsim check`, in USD over the horizon: a statistic's fail level, or
    {fail, warn} with warn below fail."""

    p5: BudgetLevel | None = None
    """Budget on the 5th percentile."""
    p50: BudgetLevel | None = None
    """Budget on the median."""
    p90: BudgetLevel | None = None
    """Budget on the 90th percentile."""
    p95: BudgetLevel | None = None
    """Budget on the 95th percentile."""
    p99: BudgetLevel | None = None
    """Budget on the 99th percentile."""
    mean: BudgetLevel | None = None
    """Budget on the mean."""
    exceed: tuple[Exceedance, ...] = ()
    """Limits on the probability of exceeding an amount."""

    @property
    def limits(self) -> tuple[BudgetLimit, ...]:
        levels = ((s, getattr(self, s)) for s in BUDGET_STATS)
        return tuple(BudgetLimit(s, v.fail, v.warn) for s, v in levels if v is not None)

    @property
    def max_exceed_prob(self) -> tuple[tuple[float, float], ...]:
        return tuple((e.amount, e.max_prob) for e in self.exceed)


# ---------------------------------------------------------------------------------------------
# The scenario
# ---------------------------------------------------------------------------------------------


def _at_least_one(shares: dict[str, float] | None) -> dict[str, float] | None:
    if shares is not None and not shares:
        raise problems_error(
            [("", "expected at least one class: share (or leave mix out for the pilot mix)")]
        )
    return shares


@dataclass(config=_config(oneOf=[{"required": ["model"]}, {"required": ["pilot"]}]), kw_only=True)
class ScenarioDoc(_Section):
    """Production as expected, for costsim forecast and costsim check."""

    model: Annotated[str, NonEmpty()] | None = None
    """The fitted model file (costsim fit), relative to this file."""
    pilot: Annotated[str, NonEmpty()] | None = None
    """A pilot log to fit on the fly, relative to this file (instead of model)."""
    horizon: Annotated[float, Duration(MIN_RESOLUTION_S, MAX_HORIZON_S)]
    """How far ahead to forecast."""
    resolution: Annotated[float, Duration(MIN_RESOLUTION_S, MAX_HORIZON_S)] = DEFAULT_RESOLUTION_S
    """Time bucket of the simulation, dividing the horizon into at most 100000 buckets."""
    start: Annotated[str, Start()] | None = None
    """ISO date-time of the horizon's start (UTC unless a zone is given; aligns the daily and
    weekly shapes). Default: a Monday 00:00 UTC."""
    volume: Volume
    """Production volume: exactly one of requests, per_hour or per_day."""
    shares: Annotated[dict[str, Share], AfterValidator(_at_least_one)] | None = Field(
        default=None, alias="mix"
    )
    """Production share of each class; omitted = the pilot's mix. Absolute shares sum to 1
    (a class left out gets 0); with mix_relative they are weights on the pilot's shares."""
    mix_relative: Flag = False
    """Mix values multiply the pilot shares (renormalised)."""
    # Dirichlet concentration: 100 is about +-5 points on a share of 0.5, 1e6 a fixed mix; below
    # 1 each trial's mix is mostly one class, and a small class's traffic can jump to a million
    # times its share (whose requests the engine then draws one by one).
    mix_concentration: (
        Annotated[float, _cap(1.0, 1e6, "larger is surer: 100 is about +-5 points on a share")]
        | None
    ) = None
    """Dirichlet concentration of the per-trial mix (larger = surer; omitted = fixed)."""
    new_classes: dict[str, NewClass] = dataclasses.field(default_factory=dict)
    """Classes the pilot did not have, each borrowed from a pilot class; give each a share in
    mix."""
    traffic: Traffic = dataclasses.field(default_factory=Traffic)
    """Traffic shape, spikes and events."""
    pricing: Pricing | None = None
    """Token pricing; omitted = the pilot's billed cost."""
    deployments: dict[str, Deployment] = dataclasses.field(default_factory=dict)
    """Ways to serve the traffic, by name (kind api or provisioned); omitted = the pricing
    above."""
    route: Route | None = None
    """Which deployment serves each class (only with deployments)."""
    reliability: Reliability = dataclasses.field(default_factory=Reliability)
    """How production's reliability differs from the pilot's (omitted = the pilot's)."""
    budget: Budget = dataclasses.field(default_factory=Budget)
    """Budgets for `costsim check`, in USD over the horizon."""
    # Fewer trials cannot estimate a P95; more take hours (and memory for every trial's total).
    trials: Annotated[int, _count(MIN_TRIALS, MAX_TRIALS, cap=False)] = DEFAULT_TRIALS
    """Monte Carlo trials."""
    seed: Annotated[int, _count(0, MAX_SEED)] = 0
    """Random seed."""

    @property
    def horizon_s(self) -> float:
        return self.horizon

    @property
    def resolution_s(self) -> float:
        return self.resolution

    @property
    def buckets(self) -> int:
        return round(self.horizon / self.resolution)

    @property
    def mix(self) -> Mix:
        return Mix(self.shares, self.mix_relative, self.mix_concentration, dict(self.new_classes))

    @property
    def default_route(self) -> str | None:
        """The option of a class without a route of its own (None without deployments)."""
        if self.route is not None and self.route.default is not None:
            return self.route.default
        return next(iter(self.deployments), None)

    @model_validator(mode="after")
    def _consistent(self) -> ScenarioDoc:
        """The checks that span sections; the volume's total and an empty pricing settled."""
        problems = [
            *self._sources(),
            *self._resolution(),
            *self._volume(),
            *self._mix(),
            *self._traffic(),
            *self._deployments(),
        ]
        raise_problems(problems)
        if self.pricing is not None and self.pricing.default is None and not self.pricing.classes:
            object.__setattr__(self, "pricing", None)
        return self

    def _sources(self) -> list[Problem]:
        if self.model is None and self.pilot is None:
            return [
                ("model", "required (the fitted model file, or pilot: a log to fit on the fly)")
            ]
        if self.model is not None and self.pilot is not None:
            return [("model", "give either model (a fitted model) or pilot (a log), not both")]
        return []

    def _resolution(self) -> list[Problem]:
        horizon, resolution = self.horizon, self.resolution
        given = resolution != DEFAULT_RESOLUTION_S
        shown = (
            format_duration(resolution) if given else f"the default {format_duration(resolution)}"
        )
        if resolution > horizon * (1 + BUCKET_TOLERANCE):
            return [(
                "resolution",
                f"{shown} is longer than the horizon ({format_duration(horizon)}) (set a shorter "
                "resolution)",
            )]  # fmt: skip
        if not _divides(horizon, resolution):
            fits = [
                r for r in _NICE_RESOLUTIONS if _divides(horizon, r) and horizon / r <= MAX_BUCKETS
            ]
            hint = ""
            if fits:
                best = sorted(fits, key=lambda r: abs(math.log(r / resolution)))[:2]
                hint = f" (e.g. {' or '.join(format_duration(r) for r in sorted(best))})"
            return [(
                "resolution",
                f"{shown} does not divide the horizon ({format_duration(horizon)}) into whole "
                f"buckets ({horizon / resolution:.6g}){hint}",
            )]  # fmt: skip
        if round(horizon / resolution) > MAX_BUCKETS:
            return [(
                "resolution",
                f"{shown} gives {round(horizon / resolution)} buckets over the horizon "
                f"({format_duration(horizon)}), at most {MAX_BUCKETS} are allowed (set a coarser "
                "resolution)",
            )]  # fmt: skip
        return []

    def _volume(self) -> list[Problem]:
        """The total over the horizon filled in: a rate x the horizon, before growth."""
        vol, horizon = self.volume, self.horizon
        key = next((k for k in ("per_hour", "per_day") if getattr(vol, k) is not None), "requests")
        unit = _VOLUME_AMOUNTS[key]
        amount = getattr(vol, key)
        if not amount:  # built in code without any amount
            return [("volume", "give one of requests (over the horizon), per_hour or per_day")]
        requests = amount if unit is None else amount * horizon / unit
        total = requests if unit is None else requests * _mean_growth(vol.growth, horizon)
        if total > MAX_REQUESTS:
            grown = f" (growing {vol.growth:g} per 30 days)" if total != requests else ""
            return [(
                "volume",
                f"{total:.3g} requests over the horizon{grown} is beyond costsim's range "
                f"(at most {MAX_REQUESTS:.0e}): lower volume.{key}"
                + (" or volume.growth" if grown else ""),
            )]  # fmt: skip
        if vol.requests != requests:
            object.__setattr__(self, "volume", dataclasses.replace(vol, requests=requests))
        return []

    def _mix(self) -> list[Problem]:
        problems: list[Problem] = []
        shares = self.shares
        if shares:
            total = math.fsum(shares.values())
            if total <= 0:
                problems.append(("mix", "every share is 0 (at least one must be > 0)"))
            elif self.mix_relative and max(shares.values()) < MIN_MIX_WEIGHT:
                problems.append((
                    "mix",
                    f"with mix_relative, values are weights on the pilot shares and the largest "
                    f"is {max(shares.values()):g}: scale them up (the largest at least "
                    f"{MIN_MIX_WEIGHT:g})",
                ))  # fmt: skip
            elif not self.mix_relative and abs(total - 1.0) > MIX_TOLERANCE:
                problems.append(
                    ("mix", f"shares sum to {total:.6g}, expected 1 (or set mix_relative: true)")
                )
        for name, spec in self.new_classes.items():
            where = f"new_classes.{name}"
            if spec.like == name:
                problems.append(
                    (f"{where}.like", "a new class cannot be like itself (name a pilot class)")
                )
            elif spec.like in self.new_classes:
                problems.append(
                    (f"{where}.like", f"'{spec.like}' is itself a new class (name a pilot class)")
                )
            if shares is None or name not in shares:
                problems.append(
                    (where, "not in mix (give it a share there, or it gets no traffic)")
                )
        return problems

    def _traffic(self) -> list[Problem]:
        problems: list[Problem] = []
        horizon, sp = self.horizon, self.traffic.spikes
        per_trial = sp.rate * horizon / 86400.0
        if per_trial > MAX_SPIKES_PER_TRIAL:
            problems.append((
                "traffic.spikes.rate",
                f"{sp.rate:g} spikes a day over {format_duration(horizon)} is about "
                f"{per_trial:.3g} spikes per trial; costsim holds at most {MAX_SPIKES_PER_TRIAL} "
                "per trial (about 1 GiB for a chunk of trials): lower traffic.spikes.rate or "
                "shorten the horizon",
            ))  # fmt: skip
        for i, ev in enumerate(self.traffic.events):
            if ev.at + ev.duration > horizon * (1 + BUCKET_TOLERANCE):
                problems.append((
                    f"traffic.events[{i}]",
                    f"ends at {format_duration(ev.at + ev.duration)} (at {format_duration(ev.at)} "
                    f"+ duration {format_duration(ev.duration)}), after the horizon "
                    f"({format_duration(horizon)})",
                ))  # fmt: skip
        return problems

    def _deployments(self) -> list[Problem]:
        names = list(self.deployments)
        if self.route is not None and not names:
            return [("route", "only with deployments (name the options there)")]
        problems: list[Problem] = []
        for name, option in self.deployments.items():
            if isinstance(option, ProvisionedOption) and option.overflow != THROTTLE:
                where = f"deployments.{name}.overflow"
                if option.overflow == name:
                    problems.append(
                        (where, f"cannot overflow to itself; name another option or {THROTTLE}")
                    )
                elif option.overflow not in names:
                    others = [THROTTLE, *(n for n in names if n != name)]
                    problems.append((where, _unknown_option(option.overflow, others)))
        if self.route is not None:
            if self.route.default is not None and self.route.default not in names:
                problems.append(("route.default", _unknown_option(self.route.default, names)))
            for cls, target in self.route.classes.items():
                if target not in names:
                    problems.append((f"route.classes.{cls}", _unknown_option(target, names)))
        return problems


def _unknown_option(name: str, allowed: Sequence[str]) -> str:
    guess = suggest(name, allowed)
    hint = f"; did you mean '{guess}'?" if guess else ""
    return f"expected one of {', '.join(allowed)}, got {show(name)}{hint}"


def _divides(horizon: float, resolution: float) -> bool:
    ratio = horizon / resolution
    return abs(ratio - round(ratio)) <= BUCKET_TOLERANCE * ratio


def _mean_growth(growth: float, horizon: float) -> float:
    """Mean over the horizon of (1 + growth) ** (t / 30 days):
    (e^a - 1) / a with a = ln(1 + growth) x horizon / 30 days (1 when a = 0)."""
    a = math.log1p(growth) * horizon / (30 * 86400.0)
    return math.expm1(a) / a if a != 0 else 1.0


@dataclass(config=_CONFIG, kw_only=True)
class Scenario(ScenarioDoc):
    """A scenario as the code reads it: the document, and where it came from."""

    path: Path | None = None
    """The scenario file (None when built in code)."""
    model_path: Path | None = None
    """``model``, resolved relative to the scenario file."""
    pilot_path: Path | None = None
    """Or ``pilot`` (a log to fit on the fly), resolved likewise."""
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The document as read (dates as ISO text), for hashing and reports."""

    @property
    def document(self) -> dict[str, Any]:
        return self.raw


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the scenario format, for editors, from its declaration.

    The checks that span several keys (the resolution dividing the horizon, absolute mix shares
    summing to 1, an event ending within the horizon, warn below fail, the total volume with
    growth, spikes per trial, options named by overflow and route) and the bounds of durations
    written as text are made by `parse_scenario` only.
    """
    schema = clean_schema(adapter(ScenarioDoc).json_schema(by_alias=True))
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:  # every section where it is used: one self-contained tree
        if isinstance(node, list):
            return [inline(v) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref", "").removeprefix("#/$defs/")
        if ref in defs:
            return inline({**defs[ref], **{k: v for k, v in node.items() if k != "$ref"}})
        return {k: inline(v) for k, v in node.items()}

    schema = inline(schema)
    schema["properties"] = {k: schema["properties"][k] for k in keys(ScenarioDoc)}  # file order
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "costsim scenario",
        **schema,
    }
