"""Maximum likelihood for many sets of exceedances at once, along Grimshaw's profile curve
(`fit_gpd_mle` for one set)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, partial

import numpy as np
from scipy import optimize

from .gpd import _BLOCK_VALUES, XI_MAX, XI_MIN, _score_bracket, _score_newton, log1p

#
# For a fixed ratio tau = xi / sigma the likelihood is maximised over xi in closed form
# (Grimshaw 1993, "Computing maximum likelihood estimates for the generalized Pareto
# distribution", Technometrics 35(2)):
#
#     xi(tau) = mean(log1p(tau * y)),   sigma(tau) = xi(tau) / tau   (sigma(0) = mean(y)),
#     l*(tau) / k = -log sigma(tau) - 1 - xi(tau).
#
# Every stationary point of the likelihood lies on this curve, so the search in (xi, sigma) is
# one-dimensional and each point of it costs one pass over the data, with no inner solve. The
# candidate thresholds of a quantity are fitted together, by array operations over all of their
# exceedances laid end to end, instead of one Nelder-Mead run (hundreds of passes) each.

GRID_POINTS = 20  # points of the profile grid along the curve (see `_grid`)
T_LOW = -12.0  # t = log1p(tau * max(y)) at the grid's low end: a support bound 6e-6 above max(y)
_SERIES_TAU = 1e-3  # below this |tau| the curve's derivatives come from their Taylor series
_NEWTON_TOL = 1e-6  # Newton stops after a step this small on t (relative): then within ~1e-12
_NEWTON_ITERS = 60  # at most: enough for bisection alone across the widest bracket


@dataclass(frozen=True)
class _Sets:
    """Several sets of exceedances laid end to end, each divided by its own largest value.

    On the scale ``r = y / max(y)`` every set lies in (0, 1], so one grid of
    ``t = log1p(tau)`` (tau on that scale) suits all of them, and ``mean`` reduces each set with
    one ``np.add.reduceat``: the work for ten candidate thresholds is a handful of array
    operations, not ten Python-level optimisations."""

    r: np.ndarray  # y / y_max of its set
    counts: np.ndarray  # size of each set
    starts: np.ndarray  # first index of each set in ``r``
    y_max: np.ndarray  # the largest exceedance of each set

    @cached_property
    def moments(self) -> np.ndarray:
        """mean(r^n) of each set for n = 1..7 (rows): the series near tau = 0 need them."""
        powers = np.cumprod(np.broadcast_to(self.r, (7, self.r.size)), axis=0)
        return self.mean(powers)

    @property
    def k(self) -> np.ndarray:
        return np.asarray(self.counts, dtype=float)

    def mean(self, values: np.ndarray) -> np.ndarray:
        """Mean of each set, over the last axis of ``values``."""
        return np.asarray(np.add.reduceat(values, self.starts, axis=-1) / self.counts)

    def spread(self, per_set: np.ndarray) -> np.ndarray:
        """A value per set (last axis) repeated for each of its values."""
        return np.repeat(per_set, self.counts, axis=-1)

    def values(self, i: int) -> np.ndarray:
        """The r values of set ``i``."""
        return self.r[self.starts[i] : self.starts[i] + self.counts[i]]

    def subset(self, idx: np.ndarray) -> _Sets:
        """The sets ``idx`` (repeats allowed), still on their own r scales."""
        counts = self.counts[idx]
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        pos = np.arange(int(counts.sum())) - np.repeat(offsets - self.starts[idx], counts)
        return _make_sets(self.r[pos], counts)


def _make_sets(y: np.ndarray, sizes: np.ndarray) -> _Sets:
    """Sets of the given sizes from their exceedances, end to end."""
    counts = np.asarray(sizes, dtype=np.intp)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp)
    y_max = np.maximum.reduceat(y, starts)
    return _Sets(y / np.repeat(y_max, counts), counts, starts, y_max)


def _sigma_r(sets: _Sets, xi: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """sigma(tau) / y_max = xi(tau) / tau, and mean(r) (the exponential's) at tau = 0."""
    if np.all(tau != 0):
        return np.asarray(xi / tau)
    out = np.broadcast_to(sets.moments[0], xi.shape).copy()
    return np.asarray(np.divide(xi, tau, out=out, where=tau != 0))


def _curve(sets: _Sets, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The profile curve at ``tau`` (per set, last axis; r scale): xi, sigma / y_max, and
    l*/k + log(y_max)."""
    xi = sets.mean(log1p(sets.spread(tau) * sets.r))
    s = _sigma_r(sets, xi, tau)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = -np.log(s) - 1.0 - xi
    return xi, s, np.asarray(g)


def _curve_on_grid(sets: _Sets, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """xi and l*/k + log(y_max) at every grid point (rows) of every set (columns), a block of
    grid rows per array operation (see ``_BLOCK_VALUES``)."""
    rows = max(1, _BLOCK_VALUES // sets.r.size)
    blocks = [_curve(sets, np.expm1(t[i : i + rows])) for i in range(0, t.shape[0], rows)]
    return np.concatenate([b[0] for b in blocks]), np.concatenate([b[2] for b in blocks])


def _curve_derivatives(sets: _Sets, tau: np.ndarray) -> tuple[np.ndarray, ...]:
    """xi(tau), and the first and second derivatives in tau of l*/k (r scale); the sign of the
    first is that of the slope in t = log1p(tau) too.

    With x = tau r and the set means B = mean(r/(1+x)) (= d xi/d tau), C = mean(x/(1+x)),
    F = mean(r/(1+x)^2), D = mean(r^2/(1+x)^2), and A = (xi - C) / tau^2 (= -d sigma/d tau):

        d l*/k = A / s - B,    d2 l*/k = A' / s + (A / s)^2 + D,    A' = (B - F)/tau^2 - 2A/tau.

    A and A' lose about eps / |tau| and eps / tau^2 to cancellation; below ``_SERIES_TAU``
    their series in tau from the moments of r are used, so tau = 0 (the exponential) needs no
    special case: A = sum_n>=2 (-1)^n (n-1)/n tau^(n-2) M_n, A' its derivative."""
    x = sets.spread(tau) * sets.r
    inv = 1.0 / (1.0 + x)
    terms = np.empty((5, x.size))  # one reduction for the five means
    log1p(x, out=terms[0])
    np.multiply(sets.r, inv, out=terms[1])
    np.multiply(x, inv, out=terms[2])
    np.multiply(terms[1], inv, out=terms[3])
    np.multiply(terms[1], terms[1], out=terms[4])
    xi, b, c, f, d = sets.mean(terms)
    near = np.abs(tau) < _SERIES_TAU
    safe = np.where(near, 1.0, tau)
    a = (xi - c) / (safe * safe)
    da = (b - f) / (safe * safe) - 2.0 * a / safe
    if near.any():
        m2, m3, m4, m5, m6, m7 = sets.moments[1:]
        a_near = m2 / 2 + tau * (
            -2 / 3 * m3 + tau * (0.75 * m4 + tau * (-0.8 * m5 + tau * 5 / 6 * m6))
        )
        da_near = -2 / 3 * m3 + tau * (
            1.5 * m4 + tau * (-2.4 * m5 + tau * (10 / 3 * m6 - tau * 30 / 7 * m7))
        )
        a, da = np.where(near, a_near, a), np.where(near, da_near, da)
    s = _sigma_r(sets, xi, tau)
    return xi, a / s - b, da / s + (a / s) ** 2 + d


def _grid(sets: _Sets) -> np.ndarray:
    """``GRID_POINTS`` values of t = log1p(tau) per set (rows: points) spanning every xi that
    can be fitted.

    As 1 + (e^t - 1) r >= e^t r, xi(t) >= t + mean(log r): above the grid's top xi > XI_MAX + 1.
    At its bottom (``T_LOW``) the support would end 6e-6 * max(y) above the largest value."""
    t_high = XI_MAX + 1.0 - sets.mean(np.log(np.maximum(sets.r, 1e-300)))
    steps = np.linspace(0.0, 1.0, GRID_POINTS)[:, None]
    return np.asarray(T_LOW + steps * (t_high - T_LOW))


def _start(t: np.ndarray, g: np.ndarray, best: np.ndarray) -> tuple[np.ndarray, ...]:
    """Bracket and starting point of the refinement around each set's best grid point: the two
    neighbouring grid cells (20 below or above the grid at its ends) and the vertex of the
    parabola through the three grid points."""
    cols, last = np.arange(best.size), t.shape[0] - 1
    lo = np.where(best > 0, t[np.maximum(best - 1, 0), cols], T_LOW - 20.0)
    hi = np.where(best < last, t[np.minimum(best + 1, last), cols], t[last, cols] + 20.0)
    g_lo, g_hi = g[np.maximum(best - 1, 0), cols], g[np.minimum(best + 1, last), cols]
    g_mid, t_mid = g[best, cols], t[best, cols]
    with np.errstate(divide="ignore", invalid="ignore"):
        h = t[1] - t[0]
        vertex = t_mid + 0.5 * h * (g_lo - g_hi) / (g_lo - 2.0 * g_mid + g_hi)
    inner = (best > 0) & (best < last) & np.isfinite(vertex) & (vertex > lo) & (vertex < hi)
    return lo, hi, np.where(inner, vertex, t_mid)


def _newton(
    sets: _Sets, lo: np.ndarray, hi: np.ndarray, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The curve's maximum in t within [lo, hi] for every set at once, from ``t``: Newton on the
    slope, bisecting the bracket whenever Newton would leave it or the curve is not concave
    there. A set stops early where the maximum is seen to lie beyond [XI_MIN, XI_MAX] (the
    slope points further out from a point already outside): its edge decides (`_fit_sets`).
    Returns t, whether it converged to a maximum, and whether it stopped outside."""
    done = out = np.zeros(t.shape, dtype=bool)
    for _ in range(_NEWTON_ITERS):
        tau = np.expm1(t)
        xi, d1, d2 = _curve_derivatives(sets, tau)
        out = out | (~done & (((d1 < 0) & (xi < XI_MIN)) | ((d1 > 0) & (xi > XI_MAX))))
        lo, hi = np.where(d1 > 0, t, lo), np.where(d1 > 0, hi, t)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = np.log1p(tau - d1 / d2)
        keep = (d2 < 0) & (newton >= lo) & (newton <= hi)
        step = np.where(done | out, 0.0, np.where(keep, newton, 0.5 * (lo + hi)) - t)
        t = t + step
        # quadratic convergence: after a Newton step of d the error is about d^2
        done = done | (keep & (np.abs(step) <= _NEWTON_TOL * np.maximum(1.0, np.abs(t))))
        if np.all(done | out):
            break
    return t, done, out


def _scalar_max(sets: _Sets, i: int, lo: float, hi: float) -> float:
    """Fallback for a set whose grid cells around its best point hold no single concave
    maximum (never met in the tests' thousands of samples): a bounded scalar search (Brent)."""
    one = _make_sets(sets.values(i), sets.counts[i : i + 1])

    def neg(t: float) -> float:
        return -float(_curve(one, np.array([np.expm1(t)]))[2][0])

    res = optimize.minimize_scalar(neg, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
    return float(res.x)


def _edges(
    sets: _Sets, idx: np.ndarray, xi: np.ndarray, t0: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(sigma, loglik) of the sets ``idx`` at fixed values ``xi`` (edges of [XI_MIN, XI_MAX]),
    sigma profiled, all at once: `profile_sigma`'s Newton on its score curve D, each set on its
    own r scale (where max r = 1), started from ``t0`` (the curve's own maximum, nearby)."""
    sub = sets.subset(idx)
    spread = 1.0 / np.minimum.reduceat(sub.r, sub.starts)
    lo, hi = _score_bracket(xi, sub.k, spread)
    target = -np.log1p(xi)
    t = _score_newton(
        partial(_sets_score_curve, sub),
        np.clip(t0, lo, hi),
        lo,
        hi,
        target,
        np.ones(idx.size, dtype=bool),
        _NEWTON_ITERS,
    )
    tau = np.expm1(t)
    s = xi / tau
    mean_log = sub.mean(log1p(sub.spread(tau) * sub.r))
    loglik = sub.k * (-np.log(s * sub.y_max) - (1.0 + 1.0 / xi) * mean_log)
    return s * sets.y_max[idx], loglik - sub.k * np.log(sets.y_max[idx])


def _sets_score_curve(sets: _Sets, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`_score_curve` for one t per set (r scale: max r = 1, so tau = expm1(t))."""
    tau = np.expm1(t)
    inv = 1.0 / (1.0 + sets.spread(tau) * sets.r)
    r_inv = sets.r * inv
    c = tau * sets.mean(r_inv)
    dc = sets.mean(r_inv * inv)
    return np.log1p(-c), -dc / (1.0 - c) * np.exp(t)


def _fit_sets(sets: _Sets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximum-likelihood (xi, sigma, loglik) of every set, xi within [XI_MIN, XI_MAX].

    1. The profile curve on a grid of t for every set at once, and the best grid point whose
       xi is allowed. 2. Its local maximum within the neighbouring cells, by Newton (to 1e-12
       in t). 3. Where that maximum's xi is outside [XI_MIN, XI_MAX], or the curve beyond one
       end of the range climbs above it (the likelihood grows without bound as xi -> -1), the
       best point on that edge (sigma profiled at the fixed xi) competes and the higher
       likelihood wins: the constrained maximum, which Nelder-Mead approached by sliding along
       the edge."""
    t = _grid(sets)
    xi_g, g_g = _curve_on_grid(sets, t)
    allowed = (xi_g >= XI_MIN) & (xi_g <= XI_MAX) & np.isfinite(g_g)
    best = np.argmax(np.where(allowed, g_g, -np.inf), axis=0)
    lo, hi, t0 = _start(t, g_g, best)
    t_star, converged, out = _newton(sets, lo, hi, t0)
    for i in np.flatnonzero(~converged & ~out & allowed.any(axis=0)):  # never met: scalar
        t_star[i] = _scalar_max(sets, int(i), float(lo[i]), float(hi[i]))
    xi, s, g = _curve(sets, np.expm1(t_star))
    inside = (xi >= XI_MIN) & (xi <= XI_MAX) & np.isfinite(g)
    g_in = np.where(inside, g, -np.inf)
    loglik = sets.k * (g_in - np.log(sets.y_max))
    sigma = s * sets.y_max
    need_low = np.any((xi_g < XI_MIN) & (g_g > g_in), axis=0) | (~inside & ~(xi > XI_MAX))
    need_high = np.any((xi_g > XI_MAX) & (g_g > g_in), axis=0) | (~inside & ~(xi < XI_MIN))
    low, high = np.flatnonzero(need_low), np.flatnonzero(need_high)
    if low.size + high.size:  # the likelihood leans on an edge (bounded data: often)
        idx = np.concatenate([low, high])
        edge = np.repeat([XI_MIN, XI_MAX], [low.size, high.size])
        sigma_e, ll_e = _edges(sets, idx, edge, t_star[idx])
        order = np.lexsort((-ll_e, idx))  # a set with both edges keeps the better one
        pick = order[np.concatenate([[True], np.diff(idx[order]) != 0])]
        pick = pick[ll_e[pick] > loglik[idx[pick]]]
        i = idx[pick]
        xi[i], sigma[i], loglik[i] = edge[pick], sigma_e[pick], ll_e[pick]
    return xi, sigma, loglik


def fit_gpd_mle(y_sorted: np.ndarray) -> tuple[float, float, float]:
    """Maximum-likelihood (xi, sigma, loglik) for positive exceedances, xi within
    [XI_MIN, XI_MAX]: `_fit_sets` with one set."""
    y = np.asarray(y_sorted, dtype=float)
    scale = float(y.mean()) if y.size else np.nan
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError("exceedances must be positive")
    xi, sigma, loglik = _fit_sets(_make_sets(y, np.array([y.size])))
    if not np.isfinite(loglik[0]):
        raise ValueError("no finite GPD likelihood for these exceedances")
    return float(xi[0]), float(sigma[0]), float(loglik[0])
