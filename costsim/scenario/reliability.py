"""The scenario's reliability and budget sections: errors, retries and cold starts, and the
limits a `check` compares the forecast with.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from pydantic import model_validator
from pydantic.dataclasses import dataclass

from ..formats import (
    Flag,
    Num,
    raise_problems,
    shorthand,
)
from .common import _CONFIG, BUDGET_STATS, MAX_USD, Usd, _cap, _count, _Section


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
