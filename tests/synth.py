"""Synthetic pilot logs with known truth, for recovery tests (no files involved)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from costsim.errors import HeavyTailWarning
from costsim.logs import PilotLog
from costsim.model.fit import FitOptions, fit_model
from costsim.simulate.unitcost import UnitCost


@dataclass(frozen=True)
class SplicedTruth:
    """Lognormal body below its ``body_mass`` quantile u, GPD(xi, sigma) exceedances above."""

    xi: float
    median: float = 0.002
    s: float = 0.8
    body_mass: float = 0.9

    @property
    def body(self) -> stats.rv_continuous:
        return stats.lognorm(self.s, scale=self.median)

    @property
    def u(self) -> float:
        return float(self.body.ppf(self.body_mass))

    @property
    def sigma(self) -> float:
        # continuous density at the splice: zeta / sigma = f_body(u)
        return float((1 - self.body_mass) / self.body.pdf(self.u))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        q = rng.random(n)
        x = self.body.ppf(np.minimum(q, self.body_mass))
        tail = q > self.body_mass
        r = (q[tail] - self.body_mass) / (1 - self.body_mass)
        x[tail] = self.u + stats.genpareto.ppf(r, c=self.xi, scale=self.sigma)
        return np.asarray(x)

    def mean(self) -> float:
        body_part = float(self.body.expect(lambda v: v, ub=self.u))  # E[X; X <= u]
        return body_part + (1 - self.body_mass) * (self.u + self.sigma / (1 - self.xi))


def make_log(
    classes: dict[str, np.ndarray],
    *,
    timestamps: dict[str, np.ndarray] | None = None,
    source: str = "synthetic",
) -> PilotLog:
    """A PilotLog with a cost column only (and timestamps when given)."""
    names = tuple(sorted(classes))
    idx = np.concatenate([np.full(classes[n].size, i, dtype=np.int32) for i, n in enumerate(names)])
    cost = np.concatenate([np.asarray(classes[n], dtype=float) for n in names])
    ts = None
    if timestamps is not None:
        ts = np.concatenate([np.asarray(timestamps[n], dtype=float) for n in names])
    return PilotLog(
        source=source,
        classes=names,
        class_index=idx,
        cost=cost,
        input_tokens=None,
        output_tokens=None,
        cached_input_tokens=None,
        timestamp=ts,
        latency_ms=None,
        error=None,
        retries=None,
        cold_start=None,
        rows_read=int(cost.size),
    )


def drifting_costs(
    hours: int, per_hour: int, step_sd: float, rng: np.random.Generator, s: float = 0.8
) -> tuple[np.ndarray, np.ndarray]:
    """Hourly windows whose log unit cost follows a random walk with the given step sd."""
    level = np.concatenate([[0.0], np.cumsum(step_sd * rng.standard_normal(hours - 1))])
    hour = np.repeat(np.arange(hours), per_hour)
    ts = 1.7e9 + hour * 3600.0 + rng.random(hour.size) * 3600.0
    cost = 0.01 * np.exp(level[hour] + s * rng.standard_normal(hour.size))
    return ts, cost


def fitted_unit(xi: float) -> UnitCost:
    """The unit cost costsim fits to 20,000 draws of ``SplicedTruth(xi)`` (fixed seeds), with its
    tail's parameter draws."""
    x = SplicedTruth(xi).sample(
        20_000, np.random.default_rng(np.random.SeedSequence([31, int(10 * xi)]))
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HeavyTailWarning)
        qf = fit_model(make_log({"c": x}), FitOptions(seed=1)).classes["c"].quantities["cost_usd"]
    return UnitCost.from_fit(qf.dist, qf.xi_draws, qf.sigma_draws)
