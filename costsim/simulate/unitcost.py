"""The per-request cost of a production class as parameter rows (DESIGN section 2): the point
estimate and joint draws of everything a small pilot does not know (`UnitCost`), their
quantiles, element by element or on a grid (`ppf_grid`), and their means, the tails' capped
ones (`tail_means`) and whether a tail's cap sets its class's mean (`cap_moves_mean`).
`costsim.simulate.engine` cuts them into strata and sums a trial's requests.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..model.splice import SplicedDistribution, tail_exceedance

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
    body_dropped: bool = False  # `without_body`: the rows' bodies left out, never to be used

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

    def tail_above(self, s: float) -> bool:
        """Whether every quantile above survival probability ``s`` lies in every row's tail
        (with a margin of 2 over rounding): draws there never use the body."""
        d = self.dist
        zeta = self.tail_prob if self.tail_prob is not None else np.array([d.tail_prob])
        return bool(d.has_tail and 2.0 * s <= float(zeta.min()))

    def cum_rows(self) -> np.ndarray:
        """Each row's cumulative body bin probabilities: (rows, body points)."""
        if self.body_dropped:
            raise RuntimeError("a unit cost without its bodies (`without_body`) reached one")
        d = self.dist
        if self.body_cum is not None:
            return self.body_cum
        return np.broadcast_to(d.body_probs, (self.n_params, d.body_probs.size))

    def without_body(self) -> UnitCost:
        """This unit without its rows' bodies (most of its bytes: sent to every worker), for
        quantiles that `tail_above` says never reach them; using them raises."""
        return replace(self, body_cum=None, body_dropped=True)

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
            out[...] = self.body_ppf(q, body_mass, rows)
        elif body.any():
            out[body] = self.body_ppf(q[body], body_mass[body], rows[body])
        if in_tail.any():
            r = np.clip((q[in_tail] - body_mass[in_tail]) / zeta[in_tail], 0.0, 1.0)
            rt = rows[in_tail]
            out[in_tail] = d.threshold + tail_exceedance(
                r, self.xi[rt], self.sigma[rt], d.cap_excess
            )
        if self.row_scale is not None:
            out = out * self.row_scale[rows]
        return np.asarray(out, dtype=float)

    def body_ppf(
        self, q: np.ndarray, body_mass: np.ndarray, rows: np.ndarray, ascending: bool = False
    ) -> np.ndarray:
        """The body's quantiles at ``q`` (of the whole distribution) of each element's row
        (``ascending``: the elements in increasing order of row, then q)."""
        d = self.dist
        cum = self.cum_rows()
        with np.errstate(divide="ignore", invalid="ignore"):
            r_body = np.where(body_mass > 0, np.clip(q / body_mass, 0.0, 1.0), 1.0)
        if self.body_cum is None:
            return np.interp(r_body, d.body_probs, d.body_quantiles)
        return interp_rows(r_body, rows, cum, d.body_quantiles, ascending)

    def row_means(self, rows: slice = slice(None)) -> np.ndarray:
        """Mean cost of each parameter row (of ``rows``; ``scale`` excluded)."""
        d = self.dist
        bq = d.body_quantiles
        mids = 0.5 * (bq[1:] + bq[:-1])
        cum = self.cum_rows()[rows]
        body = np.diff(cum, axis=1) @ mids
        zeta = (
            self.tail_prob[rows]
            if self.tail_prob is not None
            else np.full(cum.shape[0], d.tail_prob)
        )
        tail = (
            d.threshold + tail_means(self.xi[rows], self.sigma[rows], d.cap_excess)
            if d.has_tail
            else 0.0
        )
        means = (1.0 - zeta) * body + (zeta * tail if d.has_tail else 0.0)
        if self.row_scale is not None:
            means = means * self.row_scale[rows]
        return np.asarray(means, dtype=float)


def interp_rows(
    x: np.ndarray,
    rows: np.ndarray,
    cum: np.ndarray,
    values: np.ndarray,
    ascending: bool = False,
) -> np.ndarray:
    """np.interp(x[i], cum[rows[i]], values) for every element, vectorised (`locate_rows`)."""
    j, frac = locate_rows(x, rows, cum, ascending)
    base = np.take(values, j)
    return np.asarray(base + frac * (np.take(values, j + 1) - base), dtype=float)


def locate_rows(
    x: np.ndarray, rows: np.ndarray, cum: np.ndarray, ascending: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """For every element, the bin j of its row's grid cum[rows[i]] that holds x[i] (clipped to
    the grid) and its fraction of the way across it: np.interp's interval, vectorised. Each
    row's grid is offset by 2 * row so that one sorted array serves every row. ``ascending``:
    the elements are in increasing order of (row, x), as on a grid of quantiles; then, when
    there are more elements than points, the grid's points are placed among the elements, not
    the elements among the points (the same indices, found in a fraction of the time)."""
    n_rows, points = cum.shape
    shifted = (cum + 2.0 * np.arange(n_rows)[:, None]).ravel()
    needles = x + 2.0 * rows
    if ascending and needles.size > shifted.size:  # points at or below element i: those
        # placed at or before it
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
    return at - first, frac


CAP_FACTORS = (10.0, 100.0)  # the caps the bridge tries, as multiples of the model's
CAP_SENSITIVE = 0.01  # a class whose mean moves by more than this at 100x its cap


def cap_moves_mean(unit: UnitCost) -> bool:
    """Whether a capped tail's mean depends on its cap (xi near or above 1): the point
    estimate's mean moves by more than `CAP_SENSITIVE` were the cap 100x higher."""
    d = unit.dist
    if not d.has_tail or d.cap is None:
        return False
    point = slice(0, 1)  # the point estimate's row
    now = float(unit.row_means(point)[0])
    far = replace(unit, dist=replace(d, cap=CAP_FACTORS[-1] * d.cap))
    return now > 0 and float(far.row_means(point)[0]) / now - 1.0 > CAP_SENSITIVE


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


def ppf_grid(unit: UnitCost, q: np.ndarray) -> np.ndarray:
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
        out[body] = unit.body_ppf(
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
