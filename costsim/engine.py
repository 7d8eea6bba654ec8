"""The unit-cost layer (DESIGN section 4): the sum of per-request costs of a class in a trial.

`aggregate` costs O(strata), not O(requests): the per-request distribution is cut into strata
by survival probability (fine in the tail); each stratum's conditional mean and variance are
precomputed, for the point estimate and for every parameter draw of the tail. Given a trial's
intensity Lambda, stratum k holds Poisson(Lambda * p_k) requests, whose sum is n * mean plus a
normal term with variance n * var (each stratum is bounded, so this is accurate). The region
above the last stratum that would hold more than ``EXACT_EXPECTED`` requests per trial, which
includes the unbounded top of the tail, is drawn exactly, request by request.

`reference_sum` is the plain per-request Monte Carlo, kept for verification.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from .splice import SplicedDistribution, tail_exceedance

BODY_EDGES_Q = np.linspace(0.0, 0.9, 10)  # body strata: 10% each up to the 90% quantile
TAIL_STEP = 2.0**-0.5  # then survival probability halves every two strata ...
S_MIN = 1e-13  # ... down to this
EXACT_EXPECTED = 16.0  # expected exact draws per trial and class, at most (about)
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(16)
_BODY_NODES = 128


@dataclass(frozen=True)
class UnitCost:
    """The per-request cost of one production class, with draws of its tail parameters.

    Row 0 of the parameter arrays is the point estimate; rows 1.. are the fit's draws.
    ``scale`` multiplies every cost (a new class borrowed from a pilot class).
    """

    dist: SplicedDistribution
    xi: np.ndarray
    sigma: np.ndarray
    scale: float = 1.0

    @classmethod
    def from_fit(
        cls,
        dist: SplicedDistribution,
        xi_draws: np.ndarray | None,
        sigma_draws: np.ndarray | None,
        scale: float = 1.0,
    ) -> UnitCost:
        xi = np.array([dist.xi])
        sigma = np.array([dist.sigma])
        if dist.has_tail and xi_draws is not None and sigma_draws is not None:
            xi = np.concatenate([xi, xi_draws])
            sigma = np.concatenate([sigma, sigma_draws])
        return cls(dist, xi, sigma, scale)

    @property
    def n_params(self) -> int:
        return int(self.xi.size)


@dataclass(frozen=True)
class Strata:
    """Survival-probability edges s_0 = 1 > s_1 > ... > s_K and per-stratum moments.

    ``mean``, ``var``, ``lo``, ``hi`` have shape (parameter rows, K); stratum k holds the
    requests with survival probability in (s_{k+1}, s_k].
    """

    edges: np.ndarray
    probs: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    unit: UnitCost


def _base_edges() -> np.ndarray:
    """Survival-probability edges of the strata before a tail threshold is added."""
    tail_s = np.geomspace(0.1, S_MIN, round(np.log(S_MIN / 0.1) / np.log(TAIL_STEP)) + 1)
    return np.concatenate([1.0 - BODY_EDGES_Q, tail_s[1:]])


def strata_count() -> int:
    """The most strata a class has (one more where its tail threshold splits a stratum)."""
    return int(_base_edges().size)


def build_strata(unit: UnitCost) -> Strata:
    """Precompute the strata of a unit-cost distribution, for every parameter row."""
    d = unit.dist
    edges = _base_edges()
    if d.has_tail and S_MIN < d.tail_prob < 1.0:
        edges = np.unique(np.concatenate([edges, [d.tail_prob]]))[::-1]
    probs = edges[:-1] - edges[1:]
    rows, k = unit.n_params, probs.size
    mean = np.empty((rows, k))
    var = np.empty((rows, k))
    zeta = d.tail_prob if d.has_tail else 0.0
    is_tail = edges[1:] < zeta * (1 - 1e-12) if zeta > 0 else np.zeros(k, bool)
    if not d.has_tail:
        is_tail[:] = False
    # Body strata (same for every parameter row): fine midpoint rule on q.
    body = np.flatnonzero(~is_tail)
    if body.size:
        u = (np.arange(_BODY_NODES) + 0.5) / _BODY_NODES
        q = 1.0 - (edges[body, None] - u[None, :] * probs[body, None])
        x = d.ppf(q.ravel()).reshape(q.shape)
        mean[:, body] = x.mean(axis=1)
        var[:, body] = np.maximum(x.var(axis=1), 0.0)
    # Tail strata: Gauss-Legendre in t = log(s), per parameter row.
    tail = np.flatnonzero(is_tail)
    if tail.size:
        a, b = np.log(edges[tail + 1]), np.log(edges[tail])
        t = 0.5 * (b - a)[:, None] * _GL_NODES[None, :] + 0.5 * (a + b)[:, None]
        w = 0.5 * (b - a)[:, None] * _GL_WEIGHTS[None, :] * np.exp(t)  # ds = s dt
        w = w / w.sum(axis=1, keepdims=True)
        r = 1.0 - np.exp(t) / zeta  # conditional tail probability
        x = d.threshold + tail_exceedance(
            r[None, :, :], unit.xi[:, None, None], unit.sigma[:, None, None], d.cap_excess
        )
        m1 = np.sum(w[None] * x, axis=2)
        m2 = np.sum(w[None] * x * x, axis=2)
        mean[:, tail] = m1
        var[:, tail] = np.maximum(m2 - m1 * m1, 0.0)
    # Values at the stratum edges, to keep a stratum's normal term inside its range.
    q_edges = 1.0 - edges
    lo = _ppf_rows(unit, q_edges[1:])
    hi = _ppf_rows(unit, q_edges[:-1])
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    scale = unit.scale
    return Strata(edges, probs, mean * scale, var * scale**2, lo * scale, hi * scale, unit)


def _ppf_rows(unit: UnitCost, q: np.ndarray) -> np.ndarray:
    """Quantiles at ``q`` for every parameter row: (rows, q.size)."""
    rows = unit.n_params
    qq = np.broadcast_to(np.clip(q, 0.0, 1.0 - 1e-16), (rows, q.size)).ravel()
    xi = np.repeat(unit.xi, q.size)
    sigma = np.repeat(unit.sigma, q.size)
    return unit.dist.ppf_params(qq, xi, sigma).reshape(rows, q.size)


def poisson_inverse(mu: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Poisson(mu) counts by inversion of one uniform each, so that a count moves smoothly with
    its mean: two scenarios whose intensities differ a little share their random numbers.

    Exact (cumulative probabilities) below ``_POISSON_EXACT_BELOW``; above, the Cornish-Fisher
    expansion of the Poisson quantile, mu + z sqrt(mu) + (z^2 - 1)/6 + (z^3 - 7z)/(72 sqrt(mu)),
    with a continuity correction.
    """
    mu = np.asarray(mu, dtype=float)
    u = np.broadcast_to(np.asarray(u, dtype=float), mu.shape)
    out = np.zeros(mu.shape)
    big = mu >= _POISSON_EXACT_BELOW
    if big.any():
        m, z = mu[big], special.ndtri(np.clip(u[big], 1e-16, 1 - 1e-16))
        root = np.sqrt(m)
        x = m + z * root + (z * z - 1.0) / 6.0 + (z**3 - 7.0 * z) / (72.0 * root)
        out[big] = np.maximum(np.ceil(x - 0.5), 0.0)
    small = ~big & (mu > 0)
    if small.any():
        m, v = mu[small], u[small]
        pmf = np.exp(-m)
        cdf = pmf.copy()
        n = np.zeros(m.shape)
        for k in range(1, _POISSON_MAX_K):  # at most ~100 steps, each over all elements
            below = cdf < v
            if not below.any():
                break
            n += below
            pmf = pmf * m / k
            cdf = cdf + pmf
        out[small] = n
    return out


_POISSON_EXACT_BELOW = 40.0
_POISSON_MAX_K = 160
EXACT_SLOTS = 64  # uniforms reserved per trial for the exact draws (more come after, if needed)


def exact_cut(strata: Strata, reference_intensity: float) -> int:
    """Index of the edge above which requests are drawn exactly: the first whose region would
    hold at most ``EXACT_EXPECTED`` requests at the reference intensity."""
    within = np.flatnonzero(reference_intensity * strata.edges <= EXACT_EXPECTED)
    return max(int(within[0]) if within.size else strata.edges.size - 1, 0)


def aggregate(
    strata: Strata,
    intensity: np.ndarray,
    param_row: np.ndarray,
    rng: np.random.Generator,
    reference_intensity: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sum of per-request costs and request counts for each trial of a chunk.

    ``intensity``: expected requests per trial (Lambda); ``param_row``: the tail-parameter row
    each trial uses. The random numbers drawn, and which draw serves which stratum and trial,
    depend only on the number of trials and strata, and counts are drawn by inversion: two
    scenarios run with the same seed share them (common random numbers) even when their
    volumes differ. ``reference_intensity`` (default: the chunk's largest) sets where exact
    draws begin; a forecast fixes it per class, so that it does not move from run to run.
    """
    lam = np.asarray(intensity, dtype=float)
    n_trials = lam.size
    lam_max = float(lam.max()) if n_trials else 0.0
    edges = strata.edges
    u_counts = rng.random((n_trials, strata.probs.size))
    noise = rng.standard_normal(n_trials)
    u_exact_count = rng.random(n_trials)
    u_exact = rng.random((n_trials, EXACT_SLOTS))
    # exact region: survival probability below edges[cut]
    cut = exact_cut(strata, lam_max if reference_intensity is None else reference_intensity)
    probs = strata.probs[:cut]
    counts = poisson_inverse(lam[:, None] * probs[None, :], u_counts[:, :cut])
    mean = strata.mean[param_row, :cut]
    var = strata.var[param_row, :cut]
    total = np.sum(counts * mean, axis=1)
    sd = np.sqrt(np.sum(counts * var, axis=1))
    lo = np.sum(counts * strata.lo[param_row, :cut], axis=1)
    hi = np.sum(counts * strata.hi[param_row, :cut], axis=1)
    total = np.clip(total + sd * noise, lo, hi)
    n_requests = counts.sum(axis=1)
    # exact draws above the cut: trial t's k-th draw uses u_exact[t, k]
    s_cut = float(edges[cut])
    m = poisson_inverse(lam * s_cut, u_exact_count).astype(np.int64)
    if m.any():
        slots = min(int(m.max()), EXACT_SLOTS)
        use = np.arange(slots)[None, :] < m[:, None]
        trial = np.nonzero(use)[0]
        u = u_exact[:, :slots][use]
        extra = np.maximum(m - EXACT_SLOTS, 0)
        if extra.any():  # beyond the reserved slots (rare): fresh uniforms, drawn last
            trial = np.concatenate([trial, np.repeat(np.arange(n_trials), extra)])
            u = np.concatenate([u, rng.random(int(extra.sum()))])
        rows = param_row[trial]
        q = 1.0 - s_cut * u
        values = strata.unit.dist.ppf_params(q, strata.unit.xi[rows], strata.unit.sigma[rows])
        total = total + np.bincount(trial, weights=values, minlength=n_trials) * strata.unit.scale
    return total, n_requests + m


def reference_sum(
    unit: UnitCost,
    counts: np.ndarray,
    multipliers: np.ndarray,
    param_row: np.ndarray,
    rng: np.random.Generator,
    batch: int = 4_000_000,
) -> np.ndarray:
    """Per-request reference: draw every request and sum, per trial.

    ``counts`` (trials x buckets) are the request counts; each request of bucket b of trial t
    costs a draw from the unit distribution (with the trial's parameter row) times
    ``multipliers[t, b]``. Memory stays bounded by drawing in batches of requests.
    """
    n_trials, n_buckets = counts.shape
    flat_counts = counts.ravel().astype(np.int64)
    flat_mult = multipliers.ravel()
    totals = np.zeros(n_trials)
    cells = np.flatnonzero(flat_counts)
    start = 0
    cum = np.cumsum(flat_counts[cells])
    while start < cells.size:
        done = cum[start - 1] if start else 0
        stop = int(np.searchsorted(cum, done + batch, side="right"))
        stop = max(stop, start + 1)
        part = cells[start:stop]
        reps = flat_counts[part]
        cell = np.repeat(part, reps)
        trial = cell // n_buckets
        rows = param_row[trial]
        q = rng.random(cell.size)
        values = unit.dist.ppf_params(q, unit.xi[rows], unit.sigma[rows]) * flat_mult[cell]
        totals += np.bincount(trial, weights=values, minlength=n_trials)
        start = stop
    return totals * unit.scale
