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


PARAM_ROWS = 201  # parameter rows of a class: the point estimate and 200 joint draws


@dataclass(frozen=True)
class UnitCost:
    """The per-request cost of one production class as parameter rows: each row is one plausible
    model of the class given what the pilot showed (DESIGN section 2, parameter rows).

    Row 0 is the point estimate; rows 1.. are joint draws of everything a small pilot does not
    know: the body (Bayesian bootstrap: Dirichlet weights on the body's quantile bins, as many
    rows' worth as the pilot had below the threshold), the tail probability zeta (Beta(k, n - k)),
    and the tail's (xi, sigma) from the fit's joint draws. ``row_scale`` multiplies each row's
    costs (re-pricing from tokens carries the tokens' uncertainty this way); ``scale``
    multiplies every cost (a new class borrowed from a pilot class).
    """

    dist: SplicedDistribution
    xi: np.ndarray  # (rows,)
    sigma: np.ndarray  # (rows,)
    scale: float = 1.0
    tail_prob: np.ndarray | None = None  # (rows,); None: the distribution's for every row
    body_cum: np.ndarray | None = None  # (rows, body points): cumulative bin probabilities
    row_scale: np.ndarray | None = None  # (rows,)

    @classmethod
    def from_fit(
        cls,
        dist: SplicedDistribution,
        xi_draws: np.ndarray | None,
        sigma_draws: np.ndarray | None,
        scale: float = 1.0,
        n: int | None = None,
        rng: np.random.Generator | None = None,
        rows: int = PARAM_ROWS,
    ) -> UnitCost:
        """Parameter rows of a fitted quantity. With the pilot's row count ``n`` and a ``rng``,
        the body and zeta are drawn per row too; without, only the tail parameters vary."""
        xi = np.full(rows, dist.xi)
        sigma = np.full(rows, dist.sigma)
        if dist.has_tail and xi_draws is not None and sigma_draws is not None and xi_draws.size:
            xi[1:] = np.resize(np.asarray(xi_draws, dtype=float), rows - 1)
            sigma[1:] = np.resize(np.asarray(sigma_draws, dtype=float), rows - 1)
        if n is None or rng is None:
            return cls(dist, xi, sigma, scale)
        n_body = max(n * (1.0 - dist.tail_prob), 1.0)
        width = np.diff(dist.body_probs)  # each bin's share of the body's rows
        weights = rng.gamma(np.maximum(n_body * width, 1e-6), size=(rows, width.size))
        weights[0] = width  # the point estimate: the fitted body
        weights = np.maximum(weights, 1e-300)
        cum = np.concatenate([np.zeros((rows, 1)), np.cumsum(weights, axis=1)], axis=1)
        cum /= cum[:, -1:]
        zeta = np.full(rows, dist.tail_prob)
        k = dist.tail_prob * n
        if dist.has_tail and n - k > 0:
            zeta[1:] = rng.beta(max(k, 1e-3), n - k, size=rows - 1)
        return cls(dist, xi, sigma, scale, zeta, cum)

    @property
    def n_params(self) -> int:
        return int(self.xi.size)

    def ppf_rows(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Quantiles at ``q`` of the parameter row given for each element (``scale`` excluded).

        Row r: F_r(x) = (1 - zeta_r) B_r(x) below the threshold u, with B_r the body's quantile
        points at the row's cumulative bin probabilities, and (1 - zeta_r) + zeta_r G_r(x - u)
        above, with G_r the (capped) GPD of (xi_r, sigma_r).
        """
        d = self.dist
        q = np.asarray(q, dtype=float)
        rows = np.broadcast_to(np.asarray(rows), q.shape)
        zeta = self.tail_prob[rows] if self.tail_prob is not None else np.full(q.shape, d.tail_prob)
        body_mass = 1.0 - zeta
        in_tail = (q > body_mass) & (zeta > 0) if d.has_tail else np.zeros(q.shape, dtype=bool)
        out = np.empty(q.shape)
        # the body only where it applies (in the tail its top quantile would be overwritten)
        body = ~in_tail
        if body.all():
            out[...] = self._body_ppf(q, body_mass, rows)
        elif body.any():
            out[body] = self._body_ppf(q[body], body_mass[body], rows[body])
        if in_tail.any():
            r = np.clip((q[in_tail] - body_mass[in_tail]) / zeta[in_tail], 0.0, 1.0)
            rt = rows[in_tail]
            out[in_tail] = d.threshold + tail_exceedance(
                r, self.xi[rt], self.sigma[rt], d.cap_excess
            )
        if self.row_scale is not None:
            out = out * self.row_scale[rows]
        return np.asarray(out, dtype=float)

    def _body_ppf(
        self, q: np.ndarray, body_mass: np.ndarray, rows: np.ndarray, ascending: bool = False
    ) -> np.ndarray:
        """The body's quantiles at ``q`` (of the whole distribution) of each element's row
        (``ascending``: the elements in increasing order of row, then q)."""
        d = self.dist
        with np.errstate(divide="ignore", invalid="ignore"):
            r_body = np.where(body_mass > 0, np.clip(q / body_mass, 0.0, 1.0), 1.0)
        if self.body_cum is None:
            return np.interp(r_body, d.body_probs, d.body_quantiles)
        return _interp_rows(r_body, rows, self.body_cum, d.body_quantiles, ascending)

    def row_means(self) -> np.ndarray:
        """Mean cost of each parameter row (``scale`` excluded)."""
        d = self.dist
        bq = d.body_quantiles
        mids = 0.5 * (bq[1:] + bq[:-1])
        cum = (
            self.body_cum
            if self.body_cum is not None
            else np.broadcast_to(d.body_probs, (self.n_params, bq.size))
        )
        body = np.diff(cum, axis=1) @ mids
        zeta = self.tail_prob if self.tail_prob is not None else np.full(self.n_params, d.tail_prob)
        tail = d.threshold + tail_means(self.xi, self.sigma, d.cap_excess) if d.has_tail else 0.0
        means = (1.0 - zeta) * body + (zeta * tail if d.has_tail else 0.0)
        if self.row_scale is not None:
            means = means * self.row_scale
        return np.asarray(means, dtype=float)


def _interp_rows(
    x: np.ndarray,
    rows: np.ndarray,
    cum: np.ndarray,
    values: np.ndarray,
    ascending: bool = False,
) -> np.ndarray:
    """np.interp(x[i], cum[rows[i]], values) for every element, vectorised: each row's grid is
    offset by 2 * row so that one sorted array serves every row. ``ascending``: the elements
    are in increasing order of (row, x), as on a grid of quantiles; then the grid's points are
    placed among the elements, not the elements among the points (the same indices, found in
    a fraction of the time when there are many more elements than points)."""
    n_rows, points = cum.shape
    shifted = (cum + 2.0 * np.arange(n_rows)[:, None]).ravel()
    needles = x + 2.0 * rows
    if ascending:  # points at or below element i: those placed at or before it
        placed = np.searchsorted(needles, shifted, side="left")
        at = np.cumsum(np.bincount(placed, minlength=needles.size + 1))[:-1] - 1
    else:
        at = np.searchsorted(shifted, needles, side="right") - 1  # in the flattened grid
    first = rows * points  # the row's first point
    np.clip(at, first, first + points - 2, out=at)
    lo = np.take(cum, at)
    width = np.take(cum, at + 1) - lo
    frac = (x - lo) / np.where(width > 0, width, 1.0)
    np.clip(frac, 0.0, 1.0, out=frac)
    frac[~(width > 0)] = 0.0
    j = at - first
    base = np.take(values, j)
    return np.asarray(base + frac * (np.take(values, j + 1) - base), dtype=float)


def tail_means(xi: np.ndarray, sigma: np.ndarray, cap_excess: float | None) -> np.ndarray:
    """Mean GPD exceedance per (xi, sigma) pair, truncated at ``cap_excess`` when given.

    With S the survival function and c the cap: E[Y | Y <= c] = (int_0^c S - c S(c)) / (1 - S(c)),
    int_0^c S = sigma (1 - (1 + xi c / sigma)^(1 - 1/xi)) / (1 - xi), with the limits
    sigma (1 - exp(-c / sigma)) at xi = 0 and sigma log1p(c / sigma) at xi = 1. Without a cap,
    sigma / (1 - xi) for xi < 1 and infinity otherwise.
    """
    xi = np.asarray(xi, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    if cap_excess is None:
        with np.errstate(divide="ignore"):
            return np.asarray(np.where(xi < 1.0, sigma / (1.0 - xi), np.inf), dtype=float)
    c = float(cap_excess)
    if c <= 0.0:
        return np.zeros_like(xi)
    small = np.abs(xi) < 1e-9
    near_one = np.abs(xi - 1.0) < 1e-9
    safe = np.where(small | near_one, 0.5, xi)
    z = np.maximum(safe * c / sigma, -1.0 + 1e-15)
    log_base = np.log1p(z)
    with np.errstate(over="ignore", invalid="ignore"):
        general = sigma * -np.expm1((safe - 1.0) / safe * log_base) / (1.0 - safe)
        log_sf = np.where(small, -c / sigma, -log_base / safe)
    integral = np.where(
        small,
        sigma * -np.expm1(-c / sigma),
        np.where(near_one, sigma * np.log1p(c / sigma), general),
    )
    s_c = np.exp(log_sf)
    mass = 1.0 - s_c
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(mass > 0, (integral - c * s_c) / mass, 0.0)
    return np.asarray(out, dtype=float)


@dataclass(frozen=True)
class Strata:
    """Survival-probability edges s_0 = 1 > s_1 > ... > s_K and per-stratum moments.

    ``mean``, ``var``, ``lo``, ``hi`` have shape (parameter rows, K), or fewer columns when
    built for a reference intensity (the strata above its exact cut); stratum k holds the
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


def build_strata(unit: UnitCost, reference_intensity: float | None = None) -> Strata:
    """Precompute the strata of a unit-cost distribution, for every parameter row.

    Body strata (survival probability 1 down to 0.1) by a fine midpoint rule on q; tail strata
    by Gauss-Legendre in t = log(s). Both integrate the row's own quantile function, so each
    row's body, zeta and tail parameters enter its moments. With a ``reference_intensity``,
    only the strata above its `exact_cut` get moments (the rest are drawn exactly): `aggregate`
    then needs that reference intensity, or a lower one.
    """
    d = unit.dist
    edges = _base_edges()
    if d.has_tail and S_MIN < d.tail_prob < 1.0:
        edges = np.unique(np.concatenate([edges, [d.tail_prob]]))[::-1]
    probs = edges[:-1] - edges[1:]
    rows = unit.n_params
    k = probs.size if reference_intensity is None else _cut(edges, reference_intensity)
    mean = np.empty((rows, k))
    var = np.empty((rows, k))
    body = np.flatnonzero(edges[:k] > 0.1 + 1e-12)
    if body.size:
        u = (np.arange(_BODY_NODES) + 0.5) / _BODY_NODES
        q = 1.0 - (edges[body, None] - u[None, :] * probs[body, None])
        x = _ppf_grid(unit, q.ravel()).reshape(rows, *q.shape)
        mean[:, body] = x.mean(axis=2)
        var[:, body] = np.maximum(x.var(axis=2), 0.0)
    tail = np.setdiff1d(np.arange(k), body)
    if tail.size:
        a, b = np.log(edges[tail + 1]), np.log(edges[tail])
        t = 0.5 * (b - a)[:, None] * _GL_NODES[None, :] + 0.5 * (a + b)[:, None]
        w = 0.5 * (b - a)[:, None] * _GL_WEIGHTS[None, :] * np.exp(t)  # ds = s dt
        w = w / w.sum(axis=1, keepdims=True)
        q = -np.expm1(t)  # 1 - s
        x = _ppf_grid(unit, q.ravel()).reshape(rows, *q.shape)
        m1 = np.sum(w[None] * x, axis=2)
        m2 = np.sum(w[None] * x * x, axis=2)
        mean[:, tail] = m1
        var[:, tail] = np.maximum(m2 - m1 * m1, 0.0)
    # Values at the stratum edges, to keep a stratum's normal term inside its range.
    q_edges = np.clip(1.0 - edges[: k + 1], 0.0, 1.0 - 1e-16)
    lo = _ppf_grid(unit, q_edges[1:])
    hi = _ppf_grid(unit, q_edges[:-1])
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    scale = unit.scale
    return Strata(edges, probs, mean * scale, var * scale**2, lo * scale, hi * scale, unit)


def _ppf_grid(unit: UnitCost, q: np.ndarray) -> np.ndarray:
    """Quantiles at ``q`` for every parameter row: (rows, q.size).

    `UnitCost.ppf_rows` on a grid, element by element the same arithmetic, with the rows' tail
    parameters broadcast rather than gathered per element, and the tail computed only over the
    columns where some row is in it.
    """
    d = unit.dist
    n_rows = unit.n_params
    zeta = unit.tail_prob if unit.tail_prob is not None else np.full(n_rows, d.tail_prob)
    body_mass = (1.0 - zeta)[:, None]
    shape = (n_rows, q.size)
    in_tail = (q > body_mass) & (zeta > 0)[:, None] if d.has_tail else np.zeros(shape, bool)
    out = np.empty(shape)
    body = ~in_tail
    if body.any():
        rows = np.broadcast_to(np.arange(n_rows)[:, None], shape)[body]
        ascending = bool(np.all(q[1:] >= q[:-1]))
        out[body] = unit._body_ppf(
            np.broadcast_to(q, shape)[body], body_mass[rows, 0], rows, ascending
        )
    tail_cols = np.flatnonzero(in_tail.any(axis=0))
    if tail_cols.size:
        first = int(tail_cols[0])
        with np.errstate(divide="ignore", invalid="ignore"):  # zeta 0: not in the tail
            r = np.clip((q[first:] - body_mass) / zeta[:, None], 0.0, 1.0)
        r[~in_tail[:, first:]] = 0.0
        tail = d.threshold + tail_exceedance(r, unit.xi[:, None], unit.sigma[:, None], d.cap_excess)
        out[:, first:][in_tail[:, first:]] = tail[in_tail[:, first:]]
    if unit.row_scale is not None:
        out = out * unit.row_scale[:, None]
    return out


def poisson_inverse(mu: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Poisson(mu) counts by inversion of one uniform each, so that a count moves smoothly with
    its mean: two scenarios whose intensities differ a little share their random numbers.

    Exact (cumulative probabilities) below ``_POISSON_EXACT_BELOW``; above, the Cornish-Fisher
    expansion of the Poisson quantile, mu + z sqrt(mu) + (z^2 - 1)/6 + (z^3 - 7z)/(72 sqrt(mu)),
    with a continuity correction. z^3 is z * z * z, twenty times cheaper than a power: it can
    differ from one in the last place, which moves the count only where mu + ... - 1/2 lies
    within 1e-15 of an integer.
    """
    mu = np.asarray(mu, dtype=float)
    u = np.broadcast_to(np.asarray(u, dtype=float), mu.shape)
    out = np.zeros(mu.shape)
    big = mu >= _POISSON_EXACT_BELOW
    if big.any():
        m, z = mu[big], special.ndtri(np.clip(u[big], 1e-16, 1 - 1e-16))
        root = np.sqrt(m)
        z2 = z * z
        x = m + z * root + (z2 - 1.0) / 6.0 + (z2 * z - 7.0 * z) / (72.0 * root)
        out[big] = np.maximum(np.ceil(x - 0.5), 0.0)
    small = ~big & (mu > 0)
    if small.any():
        out[small] = _poisson_small(mu[small], u[small])
    return out


def _poisson_small(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Poisson(m) counts at uniforms v by the cumulative probabilities: pmf_k = pmf_(k-1) m / k,
    summed until they reach v (at most ``_POISSON_MAX_K`` - 1).

    The loop runs on the elements still below their uniform only: once half of them have
    stopped, they are dropped. Each element sees the same arithmetic as in a loop over all of
    them, so its count is the same to the last bit; the work is the sum of the counts, not
    their maximum times the number of elements.
    """
    n = np.empty(m.shape)
    where: np.ndarray = np.arange(m.size)
    pmf: np.ndarray = np.exp(-m)
    cdf = pmf.copy()
    count: np.ndarray = np.zeros(m.shape)
    below: np.ndarray = np.empty(m.shape, dtype=bool)
    for k in range(1, _POISSON_MAX_K):
        np.less(cdf, v, out=below)
        going = np.count_nonzero(below)
        if 2 * going < below.size:  # drop the stopped ones
            n[where] = count
            where, m, v = where[below], m[below], v[below]
            pmf, cdf, count = pmf[below], cdf[below], count[below]
            if not going:
                return n
            below = np.ones(going, dtype=bool)
        count += below
        pmf *= m
        pmf /= k
        cdf += pmf
    n[where] = count
    return n


_POISSON_EXACT_BELOW = 40.0
_POISSON_MAX_K = 160
EXACT_SLOTS = 64  # uniforms reserved per trial for the exact draws (more come after, if needed)


def exact_cut(strata: Strata, reference_intensity: float) -> int:
    """Index of the edge above which requests are drawn exactly: the first whose region would
    hold at most ``EXACT_EXPECTED`` requests at the reference intensity."""
    return _cut(strata.edges, reference_intensity)


def _cut(edges: np.ndarray, reference_intensity: float) -> int:
    within = np.flatnonzero(reference_intensity * edges <= EXACT_EXPECTED)
    return max(int(within[0]) if within.size else edges.size - 1, 0)


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
    if cut > strata.mean.shape[1]:
        raise ValueError(
            f"strata with moments for {strata.mean.shape[1]} strata, {cut} needed: build them "
            "for this reference intensity (or a higher one)"
        )
    # the strata's counts, and in the last column how many are drawn exactly: one inversion
    s_cut = float(edges[cut])
    mu = np.column_stack([lam[:, None] * strata.probs[None, :cut], lam * s_cut])
    drawn = poisson_inverse(mu, np.column_stack([u_counts[:, :cut], u_exact_count]))
    counts, m = drawn[:, :cut], drawn[:, cut].astype(np.int64)
    mean = strata.mean[param_row, :cut]
    var = strata.var[param_row, :cut]
    total = np.sum(counts * mean, axis=1)
    sd = np.sqrt(np.sum(counts * var, axis=1))
    lo = np.sum(counts * strata.lo[param_row, :cut], axis=1)
    hi = np.sum(counts * strata.hi[param_row, :cut], axis=1)
    total = np.clip(total + sd * noise, lo, hi)
    n_requests = counts.sum(axis=1)
    # exact draws above the cut: trial t's k-th draw uses u_exact[t, k]
    if m.any():
        reserved = np.minimum(m, EXACT_SLOTS)  # trial t's first draws: u_exact[t, :reserved[t]]
        trial = np.repeat(np.arange(n_trials), reserved)
        first = np.cumsum(reserved) - reserved  # where each trial's draws start
        slot = np.arange(trial.size) - np.repeat(first, reserved)
        u = u_exact.ravel()[trial * EXACT_SLOTS + slot]
        extra = m - reserved
        if extra.any():  # beyond the reserved slots (rare): fresh uniforms, drawn last
            trial = np.concatenate([trial, np.repeat(np.arange(n_trials), extra)])
            u = np.concatenate([u, rng.random(int(extra.sum()))])
        q = 1.0 - s_cut * u
        values = strata.unit.ppf_rows(q, param_row[trial])
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
        q = rng.random(cell.size)
        values = unit.ppf_rows(q, param_row[trial]) * flat_mult[cell]
        totals += np.bincount(trial, weights=values, minlength=n_trials)
        start = stop
    return totals * unit.scale
