"""The scenario's volume, mix and traffic sections: how many requests, in which classes, with
which shape, spikes and events.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from pydantic import model_validator
from pydantic.dataclasses import dataclass

from ..durations import Duration, format_duration
from ..formats import (
    Choice,
    NonEmpty,
    is_document,
    problems_error,
    raise_problems,
    shorthand,
)
from .common import (
    _CONFIG,
    _VOLUME_AMOUNTS,
    MAX_HORIZON_S,
    MAX_SPIKE_SHARE,
    TRAFFIC_SHAPES,
    Classes,
    Hourly,
    Requests,
    Weekly,
    _cap,
    _config,
    _Section,
)


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
