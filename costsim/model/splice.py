"""The spliced distribution: an empirical body below a threshold and a GPD tail above it.

This is the one object the simulator samples from. With ``zeta = P(X > u)``:

    F(x) = (1 - zeta) * B(x)                               x <= u
    F(x) = (1 - zeta) + zeta * G(x - u)                    x > u

``B`` is the body's conditional distribution, stored as its quantile function on a fixed grid of
probabilities and interpolated linearly (so atoms, e.g. zero-cost requests, are kept). ``G`` is a
GPD, optionally truncated at a ``cap`` (a physical bound such as a context window) and
renormalised, which keeps every moment finite.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .tail import gpd_logsf

BODY_POINTS = 257  # quantile-grid points of the body; part of the model file format
_XI_ZERO = 1e-9


def gpd_cdf(y: np.ndarray | float, xi: float, sigma: float) -> np.ndarray:
    """G(y) = 1 - S(y) of the GPD(xi, sigma) at exceedances y >= 0 (1 beyond the end of a
    bounded tail), from `tail.gpd_logsf` (accurate where G is small). Written out rather than
    through ``scipy.stats.genpareto``, whose checks cost more than the arithmetic on the fit's
    few thousand values a call (tested against it)."""
    return np.asarray(-np.expm1(gpd_logsf(np.asarray(y, dtype=float), xi, sigma)))


def tail_exceedance(
    r: np.ndarray,
    xi: float | np.ndarray,
    sigma: float | np.ndarray,
    cap_excess: float | np.ndarray | None = None,
) -> np.ndarray:
    """GPD exceedance quantiles at conditional tail probabilities ``r``, element-wise parameters.

    With a cap c on the exceedance the GPD is truncated: y = G^-1(r * G(c)). Writing
    s = 1 - r * G(c) for the untruncated survival probability,
        y = sigma * expm1(-xi * log(s)) / xi        (xi != 0)
        y = -sigma * log(s)                         (xi == 0)
    which is ``scipy.stats.genpareto.isf(s, xi, scale=sigma)`` (tested against it), written out
    so that per-element parameters vectorise without scipy's overhead. ``cap_excess`` may be
    per element too (NaN: no cap).
    """
    return _exceedance(np.asarray(r, dtype=float), xi, sigma, cap_excess, survival=False)


def tail_exceedance_sf(
    v: np.ndarray,
    xi: float | np.ndarray,
    sigma: float | np.ndarray,
    cap_excess: float | None = None,
) -> np.ndarray:
    """`tail_exceedance` at ``r = 1 - v``, given the conditional survival probability ``v``
    itself: exact however small ``v`` is (``1 - v`` would lose its digits in the far tail).
    With a cap, the untruncated survival probability is 1 - G(c) + v G(c)."""
    return _exceedance(np.asarray(v, dtype=float), xi, sigma, cap_excess, survival=True)


def _exceedance(
    p: np.ndarray,
    xi: float | np.ndarray,
    sigma: float | np.ndarray,
    cap_excess: float | np.ndarray | None,
    survival: bool,
) -> np.ndarray:
    """The exceedance at the tail's CDF ``p`` (``survival``: at its survival probability)."""
    xi_a = np.asarray(xi, dtype=float)
    sigma_a = np.asarray(sigma, dtype=float)
    small = np.abs(xi_a) < _XI_ZERO
    safe_xi = np.where(small, 1.0, xi_a)
    with np.errstate(divide="ignore", invalid="ignore"):
        if cap_excess is None:
            return _exceedance_at(np.log(p) if survival else np.log1p(-p), small, safe_xi, sigma_a)
        log_sf_cap = _log_sf_cap(small, safe_xi, sigma_a, cap_excess)
        mass = -np.expm1(log_sf_cap)
        log_s = np.log(np.exp(log_sf_cap) + mass * p) if survival else np.log1p(-p * mass)
        if np.ndim(cap_excess):  # a cap per element: NaN, none
            free = np.isnan(cap_excess)
            log_s[free] = (np.log(p) if survival else np.log1p(-p))[free]
    return _exceedance_at(log_s, small, safe_xi, sigma_a)


def tail_exceedance_of(
    r: np.ndarray,
    at: np.ndarray,
    xi: np.ndarray,
    sigma: np.ndarray,
    cap_excess: np.ndarray | None = None,
) -> np.ndarray:
    """`tail_exceedance` at ``r`` with element i's parameters at entry ``at[i]`` of the tables
    ``xi``, ``sigma`` and ``cap_excess`` (NaN: no cap): the same numbers, with what depends on
    the parameters alone (a cap's mass) found once per entry, for tables far shorter than
    ``r``."""
    small = np.abs(xi) < _XI_ZERO
    safe_xi = np.where(small, 1.0, xi)
    with np.errstate(divide="ignore", invalid="ignore"):
        if cap_excess is None:
            log_s = np.log1p(-r)
        else:
            mass = -np.expm1(_log_sf_cap(small, safe_xi, sigma, cap_excess))
            mass[np.isnan(cap_excess)] = 1.0  # no cap: log1p(-r * 1) is log1p(-r)
            log_s = np.log1p(-r * mass.take(at))
    return _exceedance_at(log_s, small.take(at), safe_xi.take(at), sigma.take(at))


def _log_sf_cap(
    small: np.ndarray, safe_xi: np.ndarray, sigma: np.ndarray, cap_excess: float | np.ndarray
) -> np.ndarray:
    """log S(c), with 1 - S(c) = G(c) the mass below the cap: S(c) = (1 + xi c / sigma)^(-1/xi),
    or exp(-c / sigma)."""
    z = np.maximum(safe_xi * cap_excess / sigma, -1.0 + 1e-15)
    return np.asarray(np.where(small, -cap_excess / sigma, -np.log1p(z) / safe_xi))


def _exceedance_at(
    log_s: np.ndarray, small: np.ndarray, safe_xi: np.ndarray, sigma: np.ndarray
) -> np.ndarray:
    """The GPD exceedance whose untruncated survival probability is exp(``log_s``)."""
    log_s = np.maximum(log_s, -745.0)
    with np.errstate(over="ignore"):
        general = sigma * np.expm1(-safe_xi * log_s) / safe_xi
    if not np.any(small):  # the common case: no exponential tail
        return np.asarray(general, dtype=float)
    return np.asarray(np.where(small, -sigma * log_s, general), dtype=float)


@dataclass(frozen=True)
class SplicedDistribution:
    """Body quantile grid + GPD tail (xi, sigma) above ``threshold`` with mass ``tail_prob``."""

    body_quantiles: np.ndarray
    tail_prob: float
    xi: float
    sigma: float
    cap: float | None = None
    body_grid: np.ndarray | None = None  # probabilities of the body quantiles; None: equal steps

    # -- construction ---------------------------------------------------------------------------

    @property
    def threshold(self) -> float:
        return float(self.body_quantiles[-1])

    @property
    def body_probs(self) -> np.ndarray:
        """Probabilities of the body's quantile points: equally spaced, or with the exact edges
        of the body's atoms (values a pilot repeats, e.g. price tiers) added."""
        if self.body_grid is not None:
            return self.body_grid
        return np.linspace(0.0, 1.0, self.body_quantiles.size)

    @property
    def has_tail(self) -> bool:
        return self.tail_prob > 0.0

    def with_tail(self, xi: float, sigma: float) -> SplicedDistribution:
        """The same body with other tail parameters (a draw of parameter uncertainty)."""
        return replace(self, xi=float(xi), sigma=float(sigma))

    # -- the tail's conditional distribution ----------------------------------------------------

    def _tail_cap_cdf(self) -> float:
        """G(cap - u): the untruncated GPD's mass below the cap (1 without a cap)."""
        if self.cap is None:
            return 1.0
        yc = max(self.cap - self.threshold, 0.0)
        return float(gpd_cdf(yc, self.xi, self.sigma))

    def _tail_ppf(self, r: np.ndarray) -> np.ndarray:
        """Exceedance quantiles for conditional tail probabilities ``r`` in [0, 1]."""
        return tail_exceedance(r, self.xi, self.sigma, self.cap_excess)

    @property
    def cap_excess(self) -> float | None:
        return None if self.cap is None else max(self.cap - self.threshold, 0.0)

    def ppf_params(self, q: np.ndarray, xi: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """Quantiles at ``q`` with per-element tail parameters (one parameter draw per value)."""
        q = np.asarray(q, dtype=float)
        body_mass = 1.0 - self.tail_prob
        r_body = np.clip(q / body_mass, 0.0, 1.0) if body_mass > 0 else np.ones_like(q)
        out = np.interp(r_body, self.body_probs, self.body_quantiles)
        if self.has_tail:
            in_tail = q > body_mass
            if np.any(in_tail):
                r = np.clip((q[in_tail] - body_mass) / self.tail_prob, 0.0, 1.0)
                xi_t = np.broadcast_to(xi, q.shape)[in_tail]
                sigma_t = np.broadcast_to(sigma, q.shape)[in_tail]
                out[in_tail] = self.threshold + tail_exceedance(r, xi_t, sigma_t, self.cap_excess)
        return np.asarray(out, dtype=float)

    def _tail_mean(self) -> float:
        """E[Y] of the (truncated) GPD exceedance Y.

        With S the GPD survival function and c the cap on Y:
            E[Y | Y <= c] = (int_0^c S(y) dy - c * S(c)) / (1 - S(c)),
            int_0^c S dy = sigma * (1 - (1 + xi c / sigma)^(1 - 1/xi)) / (1 - xi)
        with the limits sigma * (1 - exp(-c / sigma)) at xi = 0 and sigma * log1p(c / sigma) at
        xi = 1. Without a cap: sigma / (1 - xi) for xi < 1, infinite otherwise.
        """
        xi, sigma = self.xi, self.sigma
        if self.cap is None:
            return sigma / (1.0 - xi) if xi < 1.0 else float("inf")
        c = max(self.cap - self.threshold, 0.0)
        if c == 0.0:
            return 0.0
        if abs(xi) < _XI_ZERO:
            integral = sigma * -np.expm1(-c / sigma)
        else:
            log_base = np.log1p(xi * c / sigma) if xi * c / sigma > -1 else -np.inf
            if abs(xi - 1.0) < _XI_ZERO:
                integral = sigma * log_base
            else:
                integral = sigma * -np.expm1((xi - 1.0) / xi * log_base) / (1.0 - xi)
        s_c = float(np.exp(gpd_logsf(np.asarray(c, dtype=float), xi, sigma)))
        mass = 1.0 - s_c
        return float((integral - c * s_c) / mass) if mass > 0 else 0.0

    # -- the distribution -----------------------------------------------------------------------

    def ppf(self, q: np.ndarray | float) -> np.ndarray:
        """Quantile function, vectorised."""
        q = np.atleast_1d(np.asarray(q, dtype=float))
        return self.ppf_params(q, np.asarray(self.xi), np.asarray(self.sigma))

    def cdf(self, x: np.ndarray | float) -> np.ndarray:
        """Distribution function, vectorised (right-continuous at the body's atoms)."""
        x = np.asarray(x, dtype=float)
        bq, bp = self.body_quantiles, self.body_probs
        idx = np.searchsorted(bq, x, side="right")
        lo = np.clip(idx - 1, 0, bq.size - 1)
        hi = np.clip(idx, 0, bq.size - 1)
        width = bq[hi] - bq[lo]
        frac = np.where(width > 0, (x - bq[lo]) / np.where(width > 0, width, 1.0), 0.0)
        r = np.where(
            idx <= 0, 0.0, np.where(idx >= bq.size, 1.0, bp[lo] + frac * (bp[hi] - bp[lo]))
        )
        out = (1.0 - self.tail_prob) * r
        if self.has_tail:
            y = np.maximum(x - self.threshold, 0.0)
            g = gpd_cdf(y, self.xi, self.sigma) / self._tail_cap_cdf()
            out = np.where(
                x > self.threshold,
                (1.0 - self.tail_prob) + self.tail_prob * np.minimum(g, 1.0),
                out,
            )
        return np.asarray(out, dtype=float)

    def rvs(self, size: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Random draws by inversion (one uniform per draw, so common random numbers hold)."""
        return self.ppf(rng.random(size))

    def mean(self) -> float:
        """Mean: the body's (trapezoid of its quantile function) plus the tail's."""
        body_mean = float(np.trapezoid(self.body_quantiles, self.body_probs))
        if not self.has_tail:
            return body_mean
        return (1.0 - self.tail_prob) * body_mean + self.tail_prob * (
            self.threshold + self._tail_mean()
        )

    @property
    def upper_bound(self) -> float:
        """Largest possible value (cap, or the finite end of a xi < 0 tail, or inf)."""
        if not self.has_tail:
            return self.threshold
        end = self.threshold - self.sigma / self.xi if self.xi < 0 else float("inf")
        return min(end, self.cap) if self.cap is not None else end

    # -- serialisation ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "body_quantiles": [float(v) for v in self.body_quantiles],
            "tail_prob": float(self.tail_prob),
            "xi": float(self.xi),
            "sigma": float(self.sigma),
            "cap": None if self.cap is None else float(self.cap),
            **({} if self.body_grid is None else {"body_probs": self.body_grid.tolist()}),
        }
