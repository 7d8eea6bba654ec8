"""A quantity's tail fitted (`fit_tail`), or its scale alone under a borrowed shape
(`fit_tail_fixed_shape`), with its uncertainty (`TailFit`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .goodness import anderson_darling, anderson_darling_pvalue
from .gpd import profile_sigma
from .threshold import ThresholdCandidate, choose_threshold, exceedances, forward_stop
from .uncertainty import _mixed_draws, sigma_draws_given_xi


@dataclass(frozen=True)
class TailFit:
    """A GPD fitted to the exceedances of ``threshold`` with its uncertainty."""

    threshold: float
    k: int
    xi: float
    sigma: float
    xi_ci: tuple[float, float]
    xi_draws: np.ndarray
    sigma_draws: np.ndarray
    ad: float
    p_value: float
    candidates: tuple[ThresholdCandidate, ...]
    method: str


def fit_tail(top_sorted: np.ndarray, n: int, rng: np.random.Generator) -> TailFit | None:
    """Choose a threshold and fit the tail; ``None`` when there are too few distinct values."""
    idx, cands = choose_threshold(top_sorted, n)
    if idx < 0:
        return None
    c = cands[idx]
    u, y = exceedances(top_sorted, n, c.k)
    ci, xi_draws, sigma_draws = _mixed_draws(top_sorted, n, cands, idx, u, rng)
    return TailFit(
        threshold=u,
        k=int(y.size),
        xi=c.xi,
        sigma=c.sigma,
        xi_ci=ci,
        xi_draws=xi_draws,
        sigma_draws=sigma_draws,
        ad=c.ad,
        p_value=c.p_value,
        candidates=cands,
        method="ForwardStop on Anderson-Darling p-values"
        if forward_stop(np.array([x.p_value for x in cands])) < len(cands)
        else "no candidate passed the Anderson-Darling test; the best-fitting one",
    )


def fit_tail_fixed_shape(
    top_sorted: np.ndarray,
    n: int,
    xi: float,
    xi_ci: tuple[float, float],
    xi_draws: np.ndarray,
    k: int,
    rng: np.random.Generator,
) -> TailFit | None:
    """Fit only sigma, with a tail shape borrowed from elsewhere (small classes)."""
    k = min(k, top_sorted.size - 1)
    if k < 2:
        return None
    u, y = exceedances(top_sorted, n, k)
    if y.size < 2:
        return None
    sigma, _ = profile_sigma(y, np.array([xi]))
    sigma_draws = sigma_draws_given_xi(y, np.asarray(xi_draws, dtype=float), rng)
    a2 = anderson_darling(np.sort(y), xi, float(sigma[0]))
    return TailFit(
        threshold=u,
        k=int(y.size),
        xi=float(xi),
        sigma=float(sigma[0]),
        xi_ci=xi_ci,
        xi_draws=np.asarray(xi_draws, dtype=float),
        sigma_draws=sigma_draws,
        ad=a2,
        p_value=anderson_darling_pvalue(a2, xi),
        candidates=(),
        method="shape borrowed from the pooled classes; scale fitted",
    )
