"""The model file's format, declared once with pydantic v2 (the machinery every declared format
shares, such as the number types and the translation of pydantic's errors, is `formats`).

The writer (`modelfile.model_to_dict`) controls the model file, so unknown keys are refused at
every structural level; only ``summary`` (extra statistics) and ``diagnostics`` (free-form) are
open. Checks that involve several fields (a cap bounding the body, a correlation matrix that is
positive semi-definite, shares summing to 1) run once the fields they read are valid.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, Field, model_validator

from ..formats import (
    Choice,
    Closed,
    Flag,
    Num,
    Nums,
    Problem,
    integer,
    raise_problems,
    show,
    validated,
)
from ..formats import sums_to_one as _sums_to_one
from .drift import KINDS as DRIFT_KINDS
from .fit import QUANTITIES

__all__ = ["KIND", "SCHEMA_VERSION", "ClassDoc", "ModelDoc", "QuantityDoc", "validated"]

KIND = "costsim.model"
SCHEMA_VERSION = 2  # 2: drift as a state-space model

# Tail shape xi of a point estimate. The fitter searches [-0.5, 3]; -1 is the uniform
# distribution, below which the GPD density rises towards its end point and the likelihood has
# no maximum; above 5 the tail is so heavy that its cap alone decides every figure (the 0.1%
# exceedance quantile is sigma * 1000**5 / 5): almost surely a typo (xi = 50 for 0.50).
# Parameter draws are only required to be finite: a borrowed shape's draws are normal draws
# around a pooled value and may legitimately fall outside any fixed range.
XI_RANGE = (-1.0, 5.0)
SUM_TOLERANCE = 1e-6  # relative: the writer rounds every share to 10 significant digits
SYMMETRY_TOLERANCE = 1e-9  # correlations are written to 10 significant digits
EIGEN_TOLERANCE = 1e-8
TAIL_SOURCES = ("fitted", "borrowed", "none")
SUMMARY_KEYS = ("total", "mean", "p50", "p95", "p99", "max")


def sums_to_one(values: Any) -> str | None:
    return _sums_to_one(values, SUM_TOLERANCE)


# ---------------------------------------------------------------------------------------------
# The model file
# ---------------------------------------------------------------------------------------------

Quantity = Annotated[str, Choice(QUANTITIES)]
Count = Annotated[int, integer(0)]
Positive = Annotated[float, Num(0.0, lo_open=True)]
NonNegative = Annotated[float, Num(0.0)]
OptionalProbability = Annotated[float | None, Num(0.0, 1.0, null=True)]
OptionalNonNegative = Annotated[float | None, Num(0.0, null=True)]
OptionalNumber = Annotated[float | None, Num(null=True)]
Profile24 = Annotated[tuple[float, ...] | None, Nums(Num(0.0), length=24, null=True)]
Profile7 = Annotated[tuple[float, ...] | None, Nums(Num(0.0), length=7, null=True)]


class SourceDoc(Closed):
    path: str
    rows_read: Count
    rows_dropped: Count
    columns: dict[str, str]


class OptionsDoc(Closed):
    seed: Count
    caps: dict[Quantity, Positive]
    # a default cap is the largest value seen times this factor: below 1 it would not bound the data
    default_cap_factor: Annotated[float | None, Num(1.0, null=True)]
    min_class_rows: Annotated[int, integer(1)]
    drift_window_s: Positive


class TrafficDoc(Closed):
    requests: Annotated[int, integer(1)]  # the pilot mean cost is the total over it
    start: OptionalNumber
    end: OptionalNumber
    duration_s: OptionalNonNegative
    rate_per_hour: OptionalNonNegative
    hourly_profile: Profile24
    weekday_profile: Profile7

    @model_validator(mode="after")
    def _ordered(self) -> TrafficDoc:
        if self.start is not None and self.end is not None and self.end < self.start:
            raise_problems(
                [("end", f"must not be before start ({show(self.start)}), got {show(self.end)}")]
            )
        return self


class DistributionDoc(Closed):
    # The body's quantile function on an equally spaced grid; ties are atoms (e.g. zero cost).
    body_quantiles: Annotated[tuple[float, ...], Nums(Num(0.0), min_length=2, non_decreasing=True)]
    tail_prob: Annotated[float, Num(0.0, 1.0, hi_open=True)]
    xi: Annotated[float, Num(*XI_RANGE)]
    sigma: Positive
    cap: Annotated[float | None, Num(0.0, lo_open=True, null=True)] = None
    # probabilities of the body quantiles when not equally spaced (the exact edges of atoms)
    body_probs: Annotated[
        tuple[float, ...] | None, Nums(Num(0.0, 1.0), min_length=2, non_decreasing=True, null=True)
    ] = None

    @model_validator(mode="after")
    def _cap_bounds_body(self) -> DistributionDoc:
        if self.body_probs is not None:
            p = self.body_probs
            why = None
            if len(p) != len(self.body_quantiles):
                why = f"expected one per body quantile ({len(self.body_quantiles)}), got {len(p)}"
            elif p[0] != 0.0 or p[-1] != 1.0:
                why = "must run from 0 to 1"
            raise_problems([("body_probs", why)] if why else [])
        top = self.body_quantiles[-1]
        if self.cap is not None and self.cap < top:
            raise_problems(
                [
                    (
                        "cap",
                        f"must be >= the largest body quantile ({show(top)}), got {show(self.cap)}",
                    )
                ]
            )
        return self


class DrawsDoc(Closed):
    xi: Annotated[tuple[float, ...], Nums(Num(), min_length=1)]
    sigma: Annotated[tuple[float, ...], Nums(Num(0.0, lo_open=True), min_length=1)]

    @model_validator(mode="after")
    def _paired(self) -> DrawsDoc:
        if len(self.xi) != len(self.sigma):
            raise_problems(
                [("sigma", f"expected as many draws as xi ({len(self.xi)}), got {len(self.sigma)}")]
            )
        return self


class TailDoc(Closed):
    source: Annotated[str, Choice(TAIL_SOURCES)]
    verdict: str | None = None  # recomputed on load
    xi: Annotated[float | None, Num(*XI_RANGE, null=True)] = None
    xi_ci: Annotated[
        tuple[float, ...] | None, Nums(Num(), length=2, non_decreasing=True, null=True)
    ] = None
    ci_level: Annotated[float | None, Num(0.0, 1.0, lo_open=True, hi_open=True, null=True)] = None
    cap_source: str | None = None
    draws: DrawsDoc | None = None


def _summary_complete(summary: dict[str, float]) -> dict[str, float]:
    raise_problems([(key, "required") for key in SUMMARY_KEYS if key not in summary])
    return summary


class QuantityDoc(Closed):
    n: Annotated[int, integer(1)]
    distribution: DistributionDoc
    tail: TailDoc
    # statistics of the pilot's values (all >= 0); a newer writer may add some
    summary: Annotated[
        dict[str, Annotated[float, Num(0.0, finite=False)]], AfterValidator(_summary_complete)
    ]
    diagnostics: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> QuantityDoc:
        dist, tail = self.distribution, self.tail
        problems: list[Problem] = []
        if tail.xi is not None and tail.xi != dist.xi:
            problems.append(
                ("tail.xi", f"must equal distribution.xi ({dist.xi:g}), got {tail.xi:g}")
            )
        if dist.tail_prob > 0 and dist.cap is None:
            draws = tail.draws.xi if tail.draws is not None else ()
            heavy = next((f"xi = {x:g}" for x in (dist.xi, *draws) if x >= 1.0), None)
            if heavy is not None:
                problems.append((
                    "distribution.cap",
                    f"required: a tail shape {heavy} >= 1 has an infinite mean; set a cap "
                    "(refit with `costsim fit --cap QUANTITY=VALUE`)",
                ))  # fmt: skip
        raise_problems(problems)
        return self


class DependenceDoc(Closed):
    method: Annotated[str, Choice(("gaussian copula on ranks",))]
    variables: list[Quantity]
    correlation: list[Annotated[tuple[float, ...], Nums(Num(-1.0, 1.0))]]

    @model_validator(mode="after")
    def _correlation_matrix(self) -> DependenceDoc:
        raise_problems(correlation_problems(self.variables, self.correlation))
        return self


def correlation_problems(variables: list[str], rows: list[tuple[float, ...]]) -> list[Problem]:
    """A correlation matrix over ``variables``: square, symmetric, unit diagonal, PSD."""
    k = len(variables)
    if len(set(variables)) != k:
        return [("variables", "must not repeat a quantity")]
    if len(rows) != k or any(len(row) != k for row in rows):
        shape = f"{len(rows)} rows of {', '.join(sorted({str(len(r)) for r in rows})) or 0}"
        return [("correlation", f"expected a {k} x {k} matrix (one row per variable), got {shape}")]
    c = np.asarray(rows, dtype=float).reshape(k, k)
    if not np.allclose(np.diag(c), 1.0, rtol=0.0, atol=SYMMETRY_TOLERANCE):
        return [("correlation", "must have 1 on its diagonal")]
    if not np.allclose(c, c.T, rtol=0.0, atol=SYMMETRY_TOLERANCE):
        return [("correlation", "must be symmetric")]
    low = float(np.linalg.eigvalsh(c).min()) if k else 0.0
    if low < -EIGEN_TOLERANCE:
        return [("correlation", f"must be positive semi-definite (smallest eigenvalue {low:.3g})")]
    return []


class RatesDoc(Closed):
    error_rate: OptionalProbability
    retry_pmf: Annotated[tuple[float, ...] | None, Nums(Num(0.0, 1.0), min_length=1, null=True)]
    retry_mean: OptionalNonNegative
    retry_cost_share: OptionalProbability
    cold_start_rate: OptionalProbability
    cold_start_cost_ratio: OptionalNonNegative
    cold_start_latency_ms: OptionalNumber  # a difference of medians, cold minus warm

    @model_validator(mode="after")
    def _pmf(self) -> RatesDoc:
        why = None if self.retry_pmf is None else sums_to_one(self.retry_pmf)
        raise_problems([("retry_pmf", why)] if why else [])
        return self


class DriftDoc(Closed):
    """`costsim.model.drift.DriftFit`: the unit cost's drift as a state-space model."""

    kind: Annotated[str, Choice(DRIFT_KINDS)]
    estimated: Flag
    window_s: Positive
    windows: Count
    observed: Count
    mu: Annotated[float, Num()]
    mu_var: NonNegative
    phi: Annotated[float, Num(0.0, 1.0)]
    state_sd: NonNegative
    level_end: Annotated[float, Num()]
    level_end_var: NonNegative
    level_mu_cov: Annotated[float, Num()]
    reference: Annotated[float, Num()]
    dispersion: NonNegative
    within_var: NonNegative
    loglik: dict[Annotated[str, Choice(DRIFT_KINDS)], Annotated[float, Num(finite=False)]] = Field(
        default_factory=dict
    )
    aic: dict[Annotated[str, Choice(DRIFT_KINDS)], Annotated[float, Num(finite=False)]] = Field(
        default_factory=dict
    )
    common: Annotated[float, Num(0.0, 1.0)] = 0.0
    note: str | None = None


class ClassDoc(Closed):
    requests: Annotated[int, integer(1)]
    share: Annotated[float, Num(0.0, 1.0)]
    cost_total: OptionalNonNegative
    quantities: dict[Quantity, QuantityDoc]
    dependence: DependenceDoc
    rates: RatesDoc
    drift: DriftDoc
    hourly_profile: Profile24 = None

    @model_validator(mode="after")
    def _copula_covers_quantities(self) -> ClassDoc:
        have, named = list(self.quantities), self.dependence.variables
        if set(named) != set(have):
            raise_problems([(
                "dependence.variables",
                f"expected the class's quantities ({', '.join(have) or 'none'}), got "
                f"{', '.join(named) or 'none'}",
            )])  # fmt: skip
        return self


class ModelDoc(Closed):
    """The model file (``costsim fit`` output), as `modelfile.model_to_dict` writes it."""

    kind: Annotated[str, Choice((KIND,))]
    schema_version: Annotated[int, integer(SCHEMA_VERSION, SCHEMA_VERSION)]
    costsim_version: str
    source: SourceDoc
    options: OptionsDoc
    traffic: TrafficDoc
    concentration: dict[str, Annotated[float, Num(0.0, 1.0)]] | None = None
    classes: dict[str, ClassDoc]
    notes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shares(self) -> ModelDoc:
        if not self.classes:
            raise_problems([("classes", "expected at least one class")])
        why = sums_to_one(c.share for c in self.classes.values())
        raise_problems([("classes", f"shares {why}")] if why else [])
        return self
