"""The rest of a class's rows: the rank dependence between its quantities (a Gaussian
copula) and its rates (errors, retries, cold starts).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import special

from .fitted import Rates
from .summaries import (
    VALUES,
    ClassSummary,
    SummarySpec,
)


def _copula(
    sample: Mapping[str, np.ndarray], present: list[str]
) -> tuple[tuple[str, ...], np.ndarray]:
    """Gaussian-copula correlation (of normal scores of ranks) between the quantities, on the
    class's first ``COPULA_ROWS`` sampled rows (in log order)."""
    m = sample[present[0]].size if present else 0
    scores = []
    for q in present:
        r = average_ranks(sample[q])
        scores.append(special.ndtri((r - 0.5) / m))
    z = np.vstack(scores) if scores else np.zeros((0, 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(z) if m > 2 else np.eye(len(present))
    corr = np.atleast_2d(np.nan_to_num(corr, nan=0.0))
    np.fill_diagonal(corr, 1.0)
    return tuple(present), corr


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of the values, ties given the mean of their ranks (all NaN when a value is):
    ``scipy.stats.rankdata(x)``, exactly (the ranks are half-integers), for one array without
    its checks."""
    x = np.asarray(x, dtype=float)
    if np.isnan(x).any():
        return np.full(x.size, np.nan)
    order = np.argsort(x)  # any order of equal values: they get the same rank
    ordered = x[order]
    first = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    counts = np.diff(first, append=x.size)
    ranks = np.empty(x.size)
    ranks[order] = np.repeat((first + 1.0) + (counts - 1.0) / 2, counts)
    return ranks


def _rates(c: ClassSummary, sample: Mapping[str, np.ndarray], spec: SummarySpec) -> Rates:
    n = c.n
    error_rate = c.errors / n if spec.has("error") else None
    retry_pmf = retry_mean = retry_share = None
    if spec.has("retries"):
        used = int(np.flatnonzero(c.retries).max(initial=0)) + 1
        retry_pmf = tuple(float(v) for v in c.retries[:used] / n)
        retry_mean = float(VALUES.value(c.sums["retries"])[()]) / n
        if spec.has_cost:
            total = float(VALUES.value(c.sums["cost_usd"])[()])
            share = float(VALUES.value(c.sums["retry_cost"])[()])
            retry_share = share / total if total > 0 else 0.0
    cold_rate = cold_cost = cold_lat = None
    if spec.has("cold_start"):
        n_cold = c.cold
        cold_rate = n_cold / n
        if 0 < n_cold < n:
            if spec.has_cost:
                total = float(VALUES.value(c.sums["cost_usd"])[()])
                cold_sum = float(VALUES.value(c.sums["cold_cost"])[()])
                warm_mean = (total - cold_sum) / (n - n_cold)
                cold_cost = cold_sum / n_cold / warm_mean if warm_mean > 0 else None
            if "cold" in sample:
                # medians of the sample (every row of a class that fits it)
                flag = sample["cold"] > 0.5
                lat = sample["latency_ms"]
                if flag.any() and not flag.all():
                    cold_lat = float(np.median(lat[flag]) - np.median(lat[~flag]))
    return Rates(error_rate, retry_pmf, retry_mean, retry_share, cold_rate, cold_cost, cold_lat)
