"""What the scenario format's sections share: its bounds and defaults, the pydantic
configuration, and the field types and checks more than one section uses.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, model_validator
from pydantic.dataclasses import dataclass
from pydantic.json_schema import JsonSchemaValue

from ..formats import (
    Declared,
    Num,
    Nums,
    Problem,
    drop_nulls,
    problems_error,
    raise_problems,
    show,
)

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
