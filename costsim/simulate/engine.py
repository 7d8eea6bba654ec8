"""The stratified engine (DESIGN section 4): the sum of per-request costs of a class in a trial,
from its unit cost's parameter rows (`costsim.simulate.unitcost`).

`aggregate` costs O(strata), not O(requests): the per-request distribution is cut into strata
by survival probability (fine in the tail); each stratum's conditional mean and variance are
precomputed, for the point estimate and for every parameter draw of the tail. Given a trial's
intensity Lambda, stratum k holds Poisson(Lambda * p_k) requests, whose sum is n * mean plus a
normal term with variance n * var (each stratum is bounded, so this is accurate). The leading
strata that would each hold ``BULK_EXPECTED`` requests or more are one. The region above the
last stratum that would hold more than ``EXACT_EXPECTED`` requests per trial, which includes
the unbounded top of the tail, is drawn exactly, request by request. `aggregate_classes` does
this for all classes of a chunk at once, each from its own stream.

`reference_sum` is the plain per-request Monte Carlo, kept for verification.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import special

from ..model.splice import (
    tail_exceedance_of,
    tail_exceedance_sf,
)
from .inversion import poisson_inverse
from .unitcost import UnitCost, locate_rows, ppf_grid

BODY_EDGES_Q = np.linspace(0.0, 0.9, 10)  # body strata: 10% each up to the 90% quantile
TAIL_STEP = 0.5  # then survival probability halves every stratum ...
S_MIN = 1e-13  # ... down to this
EXACT_EXPECTED = 16.0  # expected exact draws per trial and class, at most (about)
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(16)
BULK_EXPECTED = 256.0  # strata holding at least this many requests are one (`build_strata`)


@dataclass(frozen=True)
class Strata:
    """Survival-probability edges s_0 = 1 > s_1 > ... > s_K and per-stratum moments.

    ``mean``, ``var``, ``lo``, ``hi`` have shape (parameter rows, K), or fewer columns when
    built for a reference intensity (the strata above its exact cut); stratum k holds the
    requests with survival probability in (s_{k+1}, s_k]. ``columns[k]``: the column of
    `aggregate`'s random numbers that stratum k's counts use (its first fine stratum), so that
    strata built for other intensities draw the same numbers where they coincide.
    """

    edges: np.ndarray
    probs: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    unit: UnitCost
    columns: np.ndarray

    def for_exact_draws(self, reference_intensity: float) -> Strata:
        """These strata as `aggregate` uses them at ``reference_intensity``: without the unit's
        bodies when its exact draws all fall in every row's tail (the moments are computed
        already; what is left of the unit are the exact draws'), else as they are."""
        s_cut = float(self.edges[exact_cut(self, reference_intensity)])
        if self.unit.body_dropped or not self.unit.tail_above(s_cut):
            return self
        return replace(self, unit=self.unit.without_body())


def _edges() -> np.ndarray:
    tail_s = np.geomspace(0.1, S_MIN, round(np.log(S_MIN / 0.1) / np.log(TAIL_STEP)) + 1)
    edges = np.concatenate([1.0 - BODY_EDGES_Q, tail_s[1:]])
    edges.flags.writeable = False
    return edges


_EDGES = _edges()


def _base_edges() -> np.ndarray:
    """Survival-probability edges of the fine strata (read-only: one array for every class)."""
    return _EDGES


def strata_count() -> int:
    """The number of fine strata: the most a class has."""
    return int(_base_edges().size - 1)


def build_strata(unit: UnitCost, reference_intensity: float | None = None) -> Strata:
    """Precompute the strata of a unit-cost distribution, for every parameter row.

    With a ``reference_intensity`` (a forecast gives one per class), strata are for that
    intensity: the leading fine strata that would each hold at least ``BULK_EXPECTED``
    requests are one stratum (a sum of that many bounded costs is normal to well within the
    Monte Carlo error, and counting them apart only costs time), and only the strata above
    its `exact_cut` get moments (the rest is drawn exactly): `aggregate` then needs that
    reference intensity, or a lower one. Without, every fine stratum.

    Moments are exact for the body (its quantile function is piecewise linear) and by
    Gauss-Legendre in log(s) for the tail, each row split at its own threshold (`_moments`);
    merged strata combine their fine strata's moments.
    """
    edges = _base_edges()
    columns = np.arange(edges.size - 1)
    k, j = _layout(edges, reference_intensity)
    probs = edges[:-1] - edges[1:]
    m1, m2 = _moments(unit, edges[: k + 1])
    # Values at the stratum edges, to keep a stratum's normal term inside its range (a
    # stratum's upper edge is the next one's lower: the quantiles are found once)
    q_edges = np.clip(1.0 - edges[: k + 1], 0.0, 1.0 - 1e-16)
    at_edges = ppf_grid(unit, q_edges)
    lo, hi = at_edges[:, 1:], at_edges[:, :-1]
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    if reference_intensity is not None:
        if j > 1:  # fine strata 0 .. j-1 become one
            p = probs[:j]
            m1 = np.column_stack([m1[:, :j] @ p / p.sum(), m1[:, j:]])
            m2 = np.column_stack([m2[:, :j] @ p / p.sum(), m2[:, j:]])
            lo = np.column_stack([lo[:, 0], lo[:, j:]])
            hi = np.column_stack([hi[:, j - 1], hi[:, j:]])
            edges = np.concatenate([edges[:1], edges[j:]])
            columns = np.concatenate([columns[:1], columns[j:]])
            probs = edges[:-1] - edges[1:]
    scale = unit.scale
    var = np.maximum(m2 - m1 * m1, 0.0)
    return Strata(edges, probs, m1 * scale, var * scale**2, lo * scale, hi * scale, unit, columns)


def _layout(edges: np.ndarray, reference_intensity: float | None) -> tuple[int, int]:
    """`build_strata`'s fine strata with moments (0 .. k-1: those below the exact cut), and
    how many leading ones become one (j, when more than 1)."""
    if reference_intensity is None:
        return edges.size - 1, 0
    k = _cut(edges, reference_intensity)
    bulk = np.flatnonzero(reference_intensity * (edges[:-1] - edges[1:]) < BULK_EXPECTED)
    return k, min(int(bulk[0]) if bulk.size else k, k)


def strata_columns(reference_intensity: float) -> int:
    """How many strata with moments `build_strata` makes for ``reference_intensity``."""
    k, j = _layout(_base_edges(), reference_intensity)
    return k - j + 1 if j > 1 else k


def _moments(unit: UnitCost, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E[X] and E[X^2] of each parameter row within each stratum between survival
    probabilities ``edges`` (decreasing): (rows, strata) each, ``scale`` excluded.

    Row r's quantile function is its body below q = 1 - zeta_r and its tail above, so each
    stratum is split there. The body's quantile function is linear between its points: on a
    piece from y0 to y1 of width w, the integral of x is w (y0 + y1) / 2 and that of x^2 is
    w (y0^2 + y0 y1 + y1^2) / 3, summed up to each edge (exact). The tail's part: 16-point
    Gauss-Legendre in t = log(s) (ds = s dt), where s^(1 - xi) and s^(1 - 2 xi) are smooth.
    """
    d = unit.dist
    n_rows = unit.n_params
    zeta = unit.tail_prob if unit.tail_prob is not None else np.full(n_rows, d.tail_prob)
    zeta = zeta if d.has_tail else np.zeros(n_rows)
    probs = edges[:-1] - edges[1:]
    body1, body2 = _body_integrals(unit, 1.0 - zeta, 1.0 - edges)
    i1, i2 = np.diff(body1, axis=1), np.diff(body2, axis=1)
    # the tail's part of stratum k in row r: s from min(s_k, zeta_r) down to s_(k+1)
    top = np.minimum(edges[None, :-1], zeta[:, None])
    bottom = np.broadcast_to(edges[None, 1:], top.shape)
    some = np.flatnonzero((top > bottom).any(axis=0))
    if some.size:
        first = int(some[0])
        a = np.log(bottom[:, first:])
        with np.errstate(divide="ignore"):
            b = np.maximum(np.log(top[:, first:]), a)  # an empty part: zero width
        half = 0.5 * (b - a)
        t = half[..., None] * _GL_NODES + 0.5 * (a + b)[..., None]
        w = half[..., None] * _GL_WEIGHTS * np.exp(t)
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.exp(t) / zeta[:, None, None]  # the tail's own survival probability
        v = np.where(np.isfinite(v), np.minimum(v, 1.0), 1.0)
        x = d.threshold + tail_exceedance_sf(
            v, unit.xi[:, None, None], unit.sigma[:, None, None], d.cap_excess
        )
        i1[:, first:] += np.sum(w * x, axis=2)
        i2[:, first:] += np.sum(w * x * x, axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        m1 = np.where(probs > 0, i1 / probs, 0.0)
        m2 = np.where(probs > 0, i2 / probs, 0.0)
    if unit.row_scale is not None:
        m1 = m1 * unit.row_scale[:, None]
        m2 = m2 * unit.row_scale[:, None] ** 2
    return m1, m2


def _body_integrals(
    unit: UnitCost, body_mass: np.ndarray, q: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The integrals of x and x^2 over the body's part of [0, q] for every row and ascending
    ``q``: (rows, q.size) each. In row r the body is q <= body_mass[r], where x is the body's
    quantile at q / body_mass[r]."""
    d = unit.dist
    n_rows = unit.n_params
    y = d.body_quantiles
    cum = unit.cum_rows()
    y0, y1 = y[:-1], y[1:]
    width = np.diff(cum, axis=1)
    zero = np.zeros((n_rows, 1))
    c1 = np.concatenate([zero, np.cumsum(width * (0.5 * (y0 + y1)), axis=1)], axis=1)
    c2 = np.concatenate(
        [zero, np.cumsum(width * ((y0 * y0 + y0 * y1 + y1 * y1) / 3.0), axis=1)], axis=1
    )
    mass = body_mass[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(mass > 0, np.clip(np.minimum(q[None, :], mass) / mass, 0.0, 1.0), 0.0)
    rows = np.broadcast_to(np.arange(n_rows)[:, None], r.shape).ravel()
    j, frac = locate_rows(r.ravel(), rows, np.ascontiguousarray(cum), ascending=True)
    at = rows * y.size + j
    start = np.take(cum, at)
    lo_y, hi_y = y0[j], y1[j]
    x = lo_y + frac * (hi_y - lo_y)
    part = r.ravel() - start  # from the bin's start to r
    f1 = np.take(c1, at) + part * (0.5 * (lo_y + x))
    f2 = np.take(c2, at) + part * ((lo_y * lo_y + lo_y * x + x * x) / 3.0)
    return mass * f1.reshape(r.shape), mass * f2.reshape(r.shape)


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
    depend only on the number of trials (each stratum has its fixed column of the stream), and
    counts are drawn by inversion: two scenarios run with the same seed share them (common
    random numbers) even when their volumes differ. ``reference_intensity`` (default: the
    chunk's largest) sets where exact draws begin; a forecast fixes it per class, so that it
    does not move from run to run. One class of `aggregate_classes`.
    """
    lam = np.asarray(intensity, dtype=float)
    total, requests = aggregate_classes(
        [strata], lam[:, None], np.asarray(param_row)[:, None], [rng], [reference_intensity]
    )
    return total[:, 0], requests[:, 0]


def aggregate_classes(
    strata: Sequence[Strata],
    intensity: np.ndarray,
    param_row: np.ndarray,
    rngs: Sequence[np.random.Generator],
    reference_intensity: Sequence[float | None],
) -> tuple[np.ndarray, np.ndarray]:
    """`aggregate` for several classes at once: column j of ``intensity`` and ``param_row``
    (trials x classes) with ``strata[j]``, ``rngs[j]`` and ``reference_intensity[j]``; each
    class's numbers are those `aggregate` gives it alone, from its own stream. The classes'
    strata are stacked, so that each step is one array operation for all of them (in groups
    of about ``STACKED`` numbers, to bound memory)."""
    lam = np.asarray(intensity, dtype=float)
    n_trials, n_classes = lam.shape
    per_class = max(n_trials, 1) * (strata_count() // 4 + 1)  # a generous guess
    group = max(1, STACKED // per_class)
    if n_classes > group:
        parts = []
        for a in range(0, n_classes, group):
            b = a + group
            parts.append(
                _aggregate_group(
                    strata[a:b],
                    lam[:, a:b],
                    param_row[:, a:b],
                    rngs[a:b],
                    reference_intensity[a:b],
                )
            )
        return np.hstack([p[0] for p in parts]), np.hstack([p[1] for p in parts])
    return _aggregate_group(strata, lam, param_row, rngs, reference_intensity)


STACKED = 2**21  # numbers per stacked array of `aggregate_classes` (16 MiB) ...
STACKED_ARRAYS = 10  # ... of which about this many are alive at once


def _aggregate_group(
    strata: Sequence[Strata],
    lam: np.ndarray,
    param_row: np.ndarray,
    rngs: Sequence[np.random.Generator],
    reference_intensity: Sequence[float | None],
) -> tuple[np.ndarray, np.ndarray]:
    n_trials, n_classes = lam.shape
    cuts = []
    for j, st in enumerate(strata):
        ref = reference_intensity[j]
        cut = exact_cut(st, (float(lam[:, j].max()) if n_trials else 0.0) if ref is None else ref)
        if cut > st.mean.shape[1]:
            raise ValueError(
                f"strata with moments for {st.mean.shape[1]} strata, {cut} needed: build them "
                "for this reference intensity (or a higher one)"
            )
        cuts.append(cut)
    # stacked rows: class j's strata, then its exact region's count
    width = np.array(cuts) + 1
    start = np.cumsum(width) - width
    cls = np.repeat(np.arange(n_classes), width)
    exact_row = start + width - 1
    streams = [_Columns(rng, n_trials) for rng in rngs]
    u = np.empty((int(width.sum()), n_trials))
    for j, st in enumerate(strata):
        columns = np.append(st.columns[: cuts[j]], _EXACT_COUNT)
        streams[j].fill(u[start[j] : exact_row[j] + 1], columns)
    s_cut = np.array([st.edges[c] for st, c in zip(strata, cuts, strict=True)])
    probs = np.concatenate(
        [np.append(st.probs[:c], s) for st, c, s in zip(strata, cuts, s_cut, strict=True)]
    )
    drawn = poisson_inverse(probs[:, None] * lam.T[cls], u)
    m = drawn[exact_row].astype(np.int64)  # (classes, trials)
    noise = np.empty((n_classes, n_trials))
    for j, stream in enumerate(streams):
        noise[j] = stream.block(_NOISE, 1)[0]
    noise = special.ndtri(noise + 2.0**-54)  # uniforms k / 2^53, inverted at their midpoints
    total = np.zeros((n_classes, n_trials))
    n_requests = m.astype(float)
    strata_rows = np.setdiff1d(np.arange(u.shape[0]), exact_row)
    if strata_rows.size:
        has = [int(j) for j in np.flatnonzero(width > 1)]  # classes with strata
        counts = drawn[strata_rows]
        rows = param_row.T[cls[strata_rows]]  # each stratum row's parameter row per trial

        n_params = max(strata[j].mean.shape[0] for j in has)
        # each (stratum row, trial)'s entry of a (strata rows, parameter rows) table, found once
        # for the four moments (what take_along_axis finds on each call)
        rows += np.arange(counts.shape[0])[:, None] * n_params

        def summed(name: str) -> np.ndarray:  # sum over each class's strata of counts * moment
            table = np.zeros((counts.shape[0], n_params))  # (strata rows, parameter rows)
            for j in has:
                moment = getattr(strata[j], name)[:, : cuts[j]]
                at = start[j] - j
                table[at : at + cuts[j], : moment.shape[0]] = moment.T
            per = counts * table.ravel().take(rows)
            return np.add.reduceat(per, start[has] - has, axis=0)

        mean, var, lo, hi = (summed(name) for name in ("mean", "var", "lo", "hi"))
        total[has] = np.clip(mean + np.sqrt(var) * noise[has], lo, hi)
        n_requests[has] += np.add.reduceat(counts, start[has] - has, axis=0)
    # exact draws above the cut: trial t's k-th draw uses the k-th exact column's uniform t
    drawing = [int(j) for j in np.flatnonzero(m.any(axis=1))]
    if drawing:
        draws = [_exact_draws(m[j], streams[j]) for j in drawing]
        total[drawing] += _exact_sums(
            [strata[j].unit for j in drawing], draws, param_row[:, drawing], s_cut[drawing]
        )
    return total.T, n_requests.T


def _exact_draws(m: np.ndarray, stream: _Columns) -> tuple[np.ndarray, np.ndarray]:
    """The trial and uniform of each of a class's exact draws (``m`` per trial), in trial
    order, then the draws beyond the reserved slots."""
    n_trials = m.size
    reserved = np.minimum(m, EXACT_SLOTS)  # trial t's first draws: one per column
    trial = np.repeat(np.arange(n_trials), reserved)
    first = np.cumsum(reserved) - reserved  # where each trial's draws start
    slot = np.arange(trial.size) - np.repeat(first, reserved)
    slots = stream.block(_EXACT_SLOT, int(reserved.max()))  # (slots, trials)
    u = slots.ravel()[slot * n_trials + trial]
    extra = m - reserved
    if extra.any():  # beyond the reserved slots (rare): fresh uniforms, drawn last
        trial = np.concatenate([trial, np.repeat(np.arange(n_trials), extra)])
        u = np.concatenate([u, stream.rest(int(extra.sum()))])
    return trial, u


def _exact_sums(
    units: Sequence[UnitCost],
    draws: Sequence[tuple[np.ndarray, np.ndarray]],
    param_row: np.ndarray,
    s_cut: np.ndarray,
) -> np.ndarray:
    """Per class and trial, the sum of the class's exact draws above survival ``s_cut``: each
    draw's quantile by `UnitCost.ppf_rows`'s arithmetic, the classes' tails at once (a draw
    that falls in its row's body, which a row with a small zeta allows, by its class's
    `ppf_rows`). The same numbers as class by class: (classes, trials).

    Each draw's parameters are entries of tables of (class, parameter row), taken by one flat
    index; what depends on the parameters alone is found once per entry."""
    n_trials, n_columns = param_row.shape
    n_classes = len(units)
    sizes = [t.size for t, _ in draws]
    cls = np.repeat(np.arange(n_classes), sizes)
    trial = np.concatenate([t for t, _ in draws])
    u = np.concatenate([v for _, v in draws])
    n_params = max(unit.n_params for unit in units)
    at = param_row.ravel().take(trial * n_columns + cls)  # each draw's entry: (class, row)
    at += cls * n_params
    q = 1.0 - np.repeat(s_cut, sizes) * u

    def table(per: Callable[[UnitCost], np.ndarray | float]) -> np.ndarray:
        out = np.ones((n_classes, n_params))
        for j, unit in enumerate(units):
            out[j, : unit.n_params] = per(unit)
        return out.ravel()

    zeta = table(lambda un: un.dist.tail_prob if un.tail_prob is None else un.tail_prob).take(at)
    body_mass = 1.0 - zeta
    has_tail = np.array([unit.dist.has_tail for unit in units])
    in_tail = (q > body_mass) & (zeta > 0) & np.repeat(has_tail, sizes)
    values = np.empty(q.size)
    everywhere = bool(in_tail.all())  # as at most cuts: no index needed
    t: slice | np.ndarray = slice(None) if everywhere else np.flatnonzero(in_tail)
    if everywhere or in_tail.any():
        at_t = at[t]
        r = np.clip((q[t] - body_mass[t]) / zeta[t], 0.0, 1.0)
        caps = [unit.dist.cap_excess for unit in units]
        cap = None
        if any(c is not None for c in caps):
            cap = np.repeat([np.nan if c is None else c for c in caps], n_params)
        xi, sigma = table(lambda un: un.xi), table(lambda un: un.sigma)
        excess = tail_exceedance_of(r, at_t, xi, sigma, cap)
        threshold = np.array([unit.dist.threshold for unit in units])
        values[t] = threshold[cls[t]] + excess
        if any(unit.row_scale is not None for unit in units):
            row_scale = table(lambda un: 1.0 if un.row_scale is None else un.row_scale)
            values[t] *= row_scale.take(at_t)
    if not everywhere:
        for j in map(int, np.unique(cls[~in_tail])):  # draws in a row's body
            b = np.flatnonzero(~in_tail & (cls == j))
            values[b] = units[j].ppf_rows(q[b], at[b] - j * n_params)
    sums = np.bincount(cls * n_trials + trial, weights=values, minlength=n_classes * n_trials)
    scale = np.array([unit.scale for unit in units])
    return sums.reshape(n_classes, n_trials) * scale[:, None]


# `aggregate`'s random numbers: column c holds n_trials uniforms, from draw c * n_trials of the
# class's stream on; a call draws only the columns it uses (the stream is advanced past the
# others), so that its numbers do not depend on how many strata or exact draws it needs.
_EXACT_COUNT = strata_count()  # how many requests are drawn exactly
_EXACT_SLOT = _EXACT_COUNT + 1  # .. + EXACT_SLOTS - 1: each trial's k-th exact draw
_NOISE = _EXACT_SLOT + EXACT_SLOTS  # the normal of the strata's within-stratum sums
_REST = _NOISE + 1  # exact draws beyond the reserved slots (rare)


class _Columns:
    """Columns of random numbers of one `aggregate` call, each at its fixed place in the stream
    (`numpy.random.PCG64.advance`)."""

    def __init__(self, rng: np.random.Generator, n: int) -> None:
        self.rng, self.n = rng, n
        self.start = rng.bit_generator.state

    def _at(self, column: int) -> np.random.Generator:
        bit_generator = self.rng.bit_generator
        bit_generator.state = self.start
        bit_generator.advance(column * self.n)  # type: ignore[attr-defined]
        return self.rng

    def block(self, column: int, count: int) -> np.ndarray:
        """Uniforms of ``count`` columns from ``column`` on: (count, n)."""
        return self._at(column).random((count, self.n))

    def fill(self, out: np.ndarray, columns: np.ndarray) -> None:
        """Uniforms of ``columns`` (increasing) into the rows of ``out`` (columns x n)."""
        runs = np.flatnonzero(np.diff(columns) != 1) + 1
        for lo, hi in zip(np.r_[0, runs], np.r_[runs, columns.size], strict=True):
            if hi > lo:
                out[lo:hi] = self.block(int(columns[lo]), int(hi - lo))

    def rest(self, size: int) -> np.ndarray:
        """``size`` uniforms from the last column on."""
        return self._at(_REST).random(size)


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
