"""The tail's parameter uncertainty: the profile-likelihood interval of xi and joint draws
of (xi, sigma) (`profile_draws`), mixed over the accepted thresholds (`mixed_draws`)."""

from __future__ import annotations

import numpy as np
from scipy import special

from .gpd import _BLOCK_VALUES, XI_MAX, XI_MIN, _loglik_curvature_rows, _profile_sigma
from .threshold import ThresholdCandidate, exceedances

CI_LEVEL = 0.90
N_DRAWS = 200
# the chi-square(1) quantile, as scipy.stats.chi2.ppf computes it (without importing scipy.stats)
_CHI2_CRIT = float(2.0 * special.gammaincinv(0.5, CI_LEVEL))


def _loglik_curvature(
    y: np.ndarray, xis: np.ndarray, log_sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The log-likelihood of exceedances ``y`` at each (xi_i, log sigma_i) pair (-inf outside
    the support) and its curvature in log sigma there (`_loglik_curvature_rows`), in blocks of
    pairs (see ``_BLOCK_VALUES``)."""
    rows = max(1, _BLOCK_VALUES // max(y.size, 1))
    parts = [
        _loglik_curvature_rows(y, xis[i : i + rows], log_sigma[i : i + rows])
        for i in range(0, xis.size, rows)
    ]
    if not parts:
        return np.zeros(0), np.zeros(0)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _laplace_variance(curvature: np.ndarray, k: int) -> np.ndarray:
    """1 / curvature, the variance of log sigma about its profile maximum; where the curvature
    is not a positive number, the exponential's 1 / k (its d2l/dlog(sigma)^2 = -k at the
    maximum)."""
    ok = np.isfinite(curvature) & (curvature > 0)
    return np.where(ok, 1.0 / np.where(ok, curvature, 1.0), 1.0 / k)


def profile_draws(
    y: np.ndarray,
    xi_hat: float,
    sigma_hat: float,
    rng: np.random.Generator,
    n_draws: int = N_DRAWS,
) -> tuple[tuple[float, float], np.ndarray, np.ndarray]:
    """Profile-likelihood interval of xi, and joint draws of (xi, sigma).

    The interval is where the profile deviance of xi stays under the chi-square(1) value. The
    draws follow the likelihood in both parameters (flat priors on xi and log sigma), not only
    along the ridge of profile maxima: for each xi, log sigma is normal about its profile maximum
    with the variance of the likelihood's curvature there, v(xi) = 1 / -d2l/d(log sigma)^2
    (Laplace), and xi itself is drawn from the marginal L_p(xi) * sqrt(v(xi)). Pinning sigma at
    its profile maximum would leave out the scale's own uncertainty and, with it, most of the
    uncertainty of the tail mean sigma / (1 - xi).
    """
    se = (1.0 + max(xi_hat, 0.0)) / np.sqrt(y.size)
    half = max(8.0 * se, 0.05)
    grid = np.linspace(max(XI_MIN, xi_hat - half), min(XI_MAX, xi_hat + half), 81)
    log_s = np.log(_profile_sigma(y, grid))
    # the likelihood at each profile maximum, and its curvature in log sigma there
    ll, curvature = _loglik_curvature(y, grid, log_s)
    ll_max = ll.max()
    dev = 2.0 * (ll_max - ll)
    i_max = int(np.argmax(ll))
    lo = _crossing(grid[: i_max + 1][::-1], dev[: i_max + 1][::-1])
    hi = _crossing(grid[i_max:], dev[i_max:])
    var = _laplace_variance(curvature, y.size)
    w = np.exp(ll - ll_max) * np.sqrt(var)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (w[1:] + w[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]
    u = (np.arange(n_draws) + rng.random(n_draws)) / n_draws  # stratified, then shuffled
    xi_draws = np.interp(u, cdf, grid)
    rng.shuffle(xi_draws)
    z = rng.standard_normal(n_draws)
    log_sigma = np.interp(xi_draws, grid, log_s) + z * np.sqrt(np.interp(xi_draws, grid, var))
    sigma_draws = np.exp(log_sigma)
    # a bounded tail (xi < 0) must still cover every exceedance: sigma > -xi * max(y)
    floor = np.where(xi_draws < 0, -xi_draws * float(y.max()) * (1.0 + 1e-9), 0.0)
    sigma_draws = np.maximum(sigma_draws, floor)
    return (lo, hi), xi_draws, sigma_draws


def sigma_draws_given_xi(
    y: np.ndarray, xi_draws: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Draws of sigma for given draws of xi (a borrowed shape): the profile maximum for each xi,
    with the scale's own uncertainty (log sigma normal with the likelihood's curvature)."""
    xi_draws = np.asarray(xi_draws, dtype=float)
    log_s = np.log(_profile_sigma(y, xi_draws))
    var = _laplace_variance(_loglik_curvature(y, xi_draws, log_s)[1], y.size)
    draws = np.exp(log_s + rng.standard_normal(xi_draws.size) * np.sqrt(var))
    floor = np.where(xi_draws < 0, -xi_draws * float(y.max()) * (1.0 + 1e-9), 0.0)
    return np.asarray(np.maximum(draws, floor), dtype=float)


def _crossing(xs: np.ndarray, dev: np.ndarray) -> float:
    """First x (walking away from the maximum) where the deviance reaches the critical value."""
    above = np.flatnonzero(dev >= _CHI2_CRIT)
    if above.size == 0:
        return float(xs[-1])
    j = int(above[0])
    if j == 0:
        return float(xs[0])
    t = (_CHI2_CRIT - dev[j - 1]) / (dev[j] - dev[j - 1])
    return float(xs[j - 1] + t * (xs[j] - xs[j - 1]))


MIXED_THRESHOLDS = 3  # the chosen threshold and the next accepted ones the draws mix over


def _mixed_draws(
    top_sorted: np.ndarray,
    n: int,
    cands: tuple[ThresholdCandidate, ...],
    idx: int,
    u: float,
    rng: np.random.Generator,
) -> tuple[tuple[float, float], np.ndarray, np.ndarray]:
    """Joint (xi, sigma) draws that carry the threshold's uncertainty too: equal shares from the
    chosen candidate and the next higher ones ForwardStop also accepts, each fitted at its own
    threshold u_c and re-expressed at the chosen u by threshold stability (exceedances of a
    GPD(xi, sigma_c) over u_c are those of a GPD(xi, sigma_c - xi (u_c - u)) over u). The 90%
    interval of xi is that of the mixture; the chosen candidate alone gave 61-75% coverage when
    the true tail started at the 90% quantile and ForwardStop took a lower one."""
    chosen = list(cands[idx : idx + MIXED_THRESHOLDS])
    shares = np.diff(np.round(np.linspace(0, N_DRAWS, len(chosen) + 1)).astype(int))
    xis, sigmas = [], []
    for c, m in zip(chosen, shares, strict=True):
        u_c, y_c = exceedances(top_sorted, n, c.k)
        _, xd, sd = profile_draws(y_c, c.xi, c.sigma, rng, n_draws=int(m))
        sd = sd - xd * (u_c - u)
        ok = sd > 0
        if not ok.all():  # a draw that cannot be carried down: one of the chosen threshold's
            _, x0, s0 = profile_draws(y_c, c.xi, c.sigma, rng, n_draws=int((~ok).sum()))
            xd[~ok], sd[~ok] = x0, np.maximum(s0 - x0 * (u_c - u), 1e-12 * max(u, 1e-300))
        xis.append(xd)
        sigmas.append(sd)
    order = rng.permutation(N_DRAWS)
    xi_draws, sigma_draws = np.concatenate(xis)[order], np.concatenate(sigmas)[order]
    lo, hi = np.quantile(xi_draws, [(1 - CI_LEVEL) / 2, (1 + CI_LEVEL) / 2])
    return (float(lo), float(hi)), xi_draws, sigma_draws
