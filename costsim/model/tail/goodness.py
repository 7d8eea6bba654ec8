"""Goodness of fit: the Anderson-Darling statistic against a GPD, and its p-value with
estimated parameters from the simulated table (``costsim/data/ad_gpd_table.json``)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np

from .gpd import gpd_logsf


def anderson_darling(y_sorted: np.ndarray, xi: float, sigma: float) -> float:
    """Anderson-Darling statistic of sorted exceedances against GPD(xi, sigma).

    A^2 = -k - (1/k) * sum_i (2i - 1) * [log F(y_i) + log S(y_{k+1-i})]
    """
    k = y_sorted.size
    log_s = gpd_logsf(y_sorted, xi, sigma)
    log_s = np.minimum(log_s, -1e-300)
    log_f = np.log(-np.expm1(log_s))
    log_f = np.maximum(log_f, -700.0)
    i = np.arange(1, k + 1)
    return float(-k - np.sum((2 * i - 1) * (log_f + log_s[::-1])) / k)


@lru_cache(maxsize=1)
def _ad_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    text = resources.files("costsim.data").joinpath("ad_gpd_table.json").read_text("utf-8")
    raw = json.loads(text)
    return (
        np.asarray(raw["xi"], dtype=float),
        np.asarray(raw["levels"], dtype=float),
        np.asarray(raw["quantiles"], dtype=float),
    )


def anderson_darling_pvalue(a2: float, xi: float) -> float:
    """Approximate p-value of the A^2 statistic when (xi, sigma) were estimated from the data."""
    return float(_ad_pvalues(np.array([a2], dtype=float), np.array([xi], dtype=float))[0])


def _ad_pvalues(a2: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """`anderson_darling_pvalue` for many (A^2, xi) pairs: the table's quantiles interpolated
    linearly in xi (clipped to the table), then the level interpolated linearly in A^2; below
    the table's first quantile linearly to p = 1, above its last an exponential tail."""
    xis, levels, quantiles = _ad_table()
    x = np.clip(xi, xis[0], xis[-1])
    j = np.clip(np.searchsorted(xis, x) - 1, 0, xis.size - 2)
    w = ((x - xis[j]) / (xis[j + 1] - xis[j]))[:, None]
    q = (1 - w) * quantiles[j] + w * quantiles[j + 1]  # one row of quantiles per statistic
    col = a2[:, None]
    i = np.clip(np.sum(q <= col, axis=1) - 1, 0, levels.size - 2)  # q[i] <= a2 < q[i + 1]
    rows = np.arange(a2.size)
    q_i, q_next = q[rows, i], q[rows, i + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = 1.0 - (levels[i] + (levels[i + 1] - levels[i]) / (q_next - q_i) * (a2 - q_i))
        first = np.where(q[:, 0] > 0, 1.0 - levels[0] * a2 / q[:, 0], 1.0)
    # beyond the table: extrapolate the upper tail exponentially
    slope = (q[:, -1] - q[:, -2]) / np.log((1 - levels[-2]) / (1 - levels[-1]))
    beyond = (1 - levels[-1]) * np.exp(-(a2 - q[:, -1]) / slope)
    return np.asarray(np.where(a2 <= q[:, 0], first, np.where(a2 >= q[:, -1], beyond, inner)))
