"""The scenario's pricing and deployments sections: price sheets, and how the classes are
served (the API, provisioned replicas, autoscaling, commitments, overflow).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic.dataclasses import dataclass

from ..durations import Duration
from ..formats import (
    NonEmpty,
    Num,
    raise_problems,
)
from .common import (
    _CONFIG,
    MAX_HORIZON_S,
    MAX_REPLICAS,
    MAX_USD,
    THROTTLE,
    Classes,
    PerMtok,
    _cap,
    _count,
    _Section,
)


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
