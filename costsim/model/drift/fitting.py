"""The fit: q and phi by maximum likelihood on log q and logit phi (a grid, then Newton from
its best points), the kind by AIC (an AR(1) only when the pilot rejects a unit root), and
the default when the pilot cannot tell (`fit_state_space`, `fit_drift`, `default_drift`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...errors import FitError
from .batch import _Batch, _batch
from .kalman import _Data, _FilterEnd
from .series import (
    _LOGIT_PHI_BOUNDS,
    _PARAMS,
    _PHI_GRID,
    _Q_GRID_POINTS,
    DEFAULT_LEVEL_SD,
    DEFAULT_PHI,
    KINDS,
    MIN_WINDOWS,
    UNIT_ROOT_LR,
    WINDOW_S,
    DriftFit,
    DriftKind,
    DriftSeries,
)
from .windows import _hours, _log_values, drift_windows

_FD_STEP = 1e-3  # central differences on z = (log q, logit phi) for the gradient and Hessian
_GAIN_TOL = 1e-10  # a climb stops when its next step would gain less log-likelihood than this
_STEP_TOL = 1e-8  # ... or move z less than this
_MAX_STEP = 1.0  # first trust radius on each coordinate of z (a grid cell and a half of log q)
_NEWTON_ITERS = 60
_SAME = 0.05  # two climbs whose best points are this close (on z) climb the same hill
#: where a Newton pass evaluates the likelihood around z, in units of _FD_STEP (a walk: the
#: first three, on log q)
_STENCIL = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [-1, -1]], dtype=float)


def _expit(z: np.ndarray | float) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.asarray(z, dtype=float))))


def _derivatives(f: Sequence[float]) -> tuple[list[float], list[list[float]]]:
    """Gradient and Hessian by central differences from the likelihood on :data:`_STENCIL`
    (three points: on the first coordinate only)."""
    h = _FD_STEP
    f0, fx, fx_ = f[:3]
    g, hxx = [(fx - fx_) / (2 * h), 0.0], (fx - 2 * f0 + fx_) / (h * h)
    if len(f) == 3:
        return g, [[hxx, 0.0], [0.0, -1.0]]
    fy, fy_, fpp, fmm = f[3:]
    g[1] = (fy - fy_) / (2 * h)
    hxy = (fpp + fmm - fx - fx_ - fy - fy_ + 2 * f0) / (2 * h * h)
    return g, [[hxx, hxy], [hxy, (fy - 2 * f0 + fy_) / (h * h)]]


def _ascent(
    g: list[float], hess: list[list[float]], move: list[bool], radius: float
) -> tuple[list[float], bool]:
    """A step towards a maximum of the local quadratic, on the coordinates that ``move`` (the
    others stay): along each eigenvector of the Hessian, Newton's step where the curvature is
    negative, else ``radius`` up the slope; at most ``radius`` on either coordinate (a ridge is
    followed rather than zig-zagged across). Returns the step and whether the radius cut it."""
    a, b, c = hess[0][0], hess[0][1], hess[1][1]
    if not move[0]:
        a, b, g = -1.0, 0.0, [0.0, g[1]]
    if not move[1]:
        c, b, g = -1.0, 0.0, [g[0], 0.0]
    # eigenvectors (cos, sin) and (-sin, cos) of [[a, b], [b, c]]
    angle = 0.5 * math.atan2(2.0 * b, a - c)
    u = (math.cos(angle), math.sin(angle))
    v = (-u[1], u[0])
    d = [0.0, 0.0]
    for e in (u, v):
        curve = a * e[0] ** 2 + 2.0 * b * e[0] * e[1] + c * e[1] ** 2
        slope = g[0] * e[0] + g[1] * e[1]
        size = -slope / curve if curve < 0 else math.copysign(2.0 * radius, slope) * (slope != 0)
        d = [d[0] + size * e[0], d[1] + size * e[1]]
    longest = max(map(abs, d))
    if longest <= radius:
        return d, False
    return [di * radius / longest for di in d], True


def _gain(g: list[float], hess: list[list[float]], d: list[float]) -> float:
    """The likelihood gain of the step d that the local quadratic predicts."""
    return sum(g[i] * d[i] + 0.5 * d[i] * hess[i][j] * d[j] for i in range(2) for j in range(2))


def _grid_step(
    f: np.ndarray, axes: Sequence[np.ndarray], at: tuple[int, ...], lo: list[float], hi: list[float]
) -> tuple[list[float], float]:
    """A first step from the best point ``at`` of a likelihood grid ``f`` (one axis per
    coordinate of z, at the points ``axes``), costing no evaluation: Newton's step on the
    quadratic through the grid neighbours. Along a coordinate where the best point is on the
    grid's edge the maximum may lie beyond it: the step goes outwards. Returns the step and
    the likelihood's slope along it (from the same neighbours)."""
    g, hess = [0.0, 0.0], [[-1.0, 0.0], [0.0, -1.0]]
    move, edge, edge_slope = [False, False], [0.0, 0.0], 0.0
    f0 = float(f[at])
    for k, x in enumerate(axes):
        i = at[k]
        near = [(*at[:k], i + s, *at[k + 1 :]) for s in (-1, 1) if 0 <= i + s < x.size]
        if len(near) == 2 and np.all(np.isfinite([f[n] for n in near])):
            a, b = x[i] - x[i - 1], x[i + 1] - x[i]
            down, up = float(f[near[0]]) - f0, float(f[near[1]]) - f0
            g[k] = (a * a * up - b * b * down) / (a * b * (a + b))
            hess[k][k] = 2.0 * (a * up + b * down) / (a * b * (a + b))
            move[k] = True
        elif len(near) == 1 and np.isfinite(f[near[0]]):
            # below the grid's smallest q the likelihood is linear in q (q << s2 / n): the
            # maximum is at the bound; elsewhere a step outwards, as far as a climb's first
            edge[k] = lo[k] - float(x[i]) if k == 0 and i == 0 else _MAX_STEP * (1 if i else -1)
            edge_slope += (f0 - float(f[near[0]])) / abs(float(x[i] - x[near[0][k]])) * abs(edge[k])
    if all(move) and len(axes) == 2:
        (c, r), (xq, xp) = at, axes
        corners = f[c + 1, r + 1] - f[c + 1, r - 1] - f[c - 1, r + 1] + f[c - 1, r - 1]
        if np.isfinite(corners):
            hess[0][1] = hess[1][0] = float(corners) / (
                (xq[c + 1] - xq[c - 1]) * (xp[r + 1] - xp[r - 1])
            )
    d, _ = _ascent(g, hess, move, _MAX_STEP)
    step = [d[k] if move[k] else edge[k] for k in range(2)]
    return step, g[0] * d[0] + g[1] * d[1] + edge_slope


@dataclass
class _Climb:
    """One start of :func:`_newton` in z = (log q, logit phi) (a walk's second coordinate is
    unused, ``lo`` = ``hi`` there): the best point so far, where it was evaluated (a batch and
    its index), and ``z``, the point to evaluate next."""

    best: list[float]
    best_ll: float
    found: tuple[_Batch, int]
    z: list[float]
    lo: list[float]
    hi: list[float]
    slope: float  # the likelihood's slope along the step from ``best`` to ``z``
    measured: bool = False  # whether that step came from a stencil at ``best`` (else: the grid)
    radius: float = _MAX_STEP
    done: bool = False

    @classmethod
    def from_grid(
        cls,
        grid: tuple[_Batch, int],
        f: np.ndarray,
        axes: Sequence[np.ndarray],
        at: tuple[int, ...],
        lo: list[float],
        hi: list[float],
    ) -> _Climb:
        """A climb from the best point ``at`` of a likelihood grid ``f`` (evaluated as
        ``grid``), its first step from the grid (:func:`_grid_step`)."""
        best = [float(x[i]) for x, i in zip(axes, at, strict=True)] + [0.0] * (2 - len(axes))
        step, slope = _grid_step(f, axes, at, lo, hi)
        climb = cls(best, float(f[at]), grid, best, lo, hi, slope)
        climb.go(step)
        return climb

    @property
    def step(self) -> list[float]:
        return [z - b for z, b in zip(self.z, self.best, strict=True)]

    def go(self, step: list[float]) -> None:
        """Set the next point ``best + step``, within the box."""
        self.z = [
            min(max(b + d, lo), hi)
            for b, d, lo, hi in zip(self.best, step, self.lo, self.hi, strict=True)
        ]
        self.done = max(map(abs, self.step)) < _STEP_TOL

    def end(self, tail: int) -> _FilterEnd:
        """The filter's end at the best point."""
        return self.found[0].end(self.found[1], tail)

    def update(self, f: list[float], found: tuple[_Batch, int]) -> None:
        """Take the likelihood on the stencil around ``z`` (evaluated at ``found``): step on
        from it if it is no worse than ``best``, else step back towards ``best``."""
        if not f[0] >= self.best_ll:
            self._back(f[0] - self.best_ll)
            return
        self.best, self.best_ll, self.found, self.measured = self.z, f[0], found, True
        if not all(map(math.isfinite, f)):
            self.done = True
            return
        g, hess = _derivatives(f)
        move = [
            self.lo[k] < self.hi[k]
            and not (self.z[k] <= self.lo[k] and g[k] < 0)
            and not (self.z[k] >= self.hi[k] and g[k] > 0)
            for k in range(2)
        ]
        d, cut = _ascent(g, hess, move, self.radius)
        self.go(d)
        step = self.step
        self.slope = g[0] * step[0] + g[1] * step[1]
        if cut:
            self.radius *= 2.0
        self.done = self.done or _gain(g, hess, step) < _GAIN_TOL

    def _back(self, drop: float) -> None:
        """Shorten the step to where the parabola through the slope at ``best`` and the value
        ``drop`` below it at ``z`` peaks (within a tenth and a half of the step); a step from
        the grid is not trusted that far: the stencil goes to ``best`` itself instead."""
        if not self.measured:  # (re-evaluated there: accepted, whatever the rounding)
            self.z, self.best_ll, self.measured = self.best, -math.inf, True
            return
        alpha = 0.5
        if math.isfinite(drop):
            alpha = min(max(self.slope / (2.0 * (self.slope - drop)), 0.1), 0.5)
        self.go([alpha * d for d in self.step])
        self.slope *= alpha
        self.radius = max(map(abs, self.step))
        self.done = self.done or self.slope < _GAIN_TOL


def _newton(data: _Data, climbs: Sequence[_Climb]) -> None:
    """Climb to local maxima of the log-likelihood in z = (log q, logit phi) within boxes,
    from several starts at once.

    Each pass evaluates :data:`_STENCIL` around every unfinished climb's next point in one
    :func:`_batch` call, which gives the likelihood there and its gradient and Hessian by
    central differences. A better point is accepted and Newton's step taken from it (up the
    gradient where the likelihood is not concave), within a trust radius that doubles after a
    step it cut, projected on the box (a coordinate at a bound the gradient points out of stays
    there); a worse one is stepped back from (:meth:`_Climb._back`). A climb is done when the
    step would gain less than _GAIN_TOL or move z less than _STEP_TOL, or when another climb
    in the same box has come within _SAME of it (the less likely one stops).
    """
    for _ in range(_NEWTON_ITERS):
        todo = [c for c in climbs if not c.done]
        if not todo:
            return
        stencils = [_STENCIL if c.lo[1] < c.hi[1] else _STENCIL[:3] for c in todo]
        points = np.concatenate([c.z + _FD_STEP * st for c, st in zip(todo, stencils, strict=True)])
        walk = np.concatenate([np.full(len(st), st is not _STENCIL) for st in stencils])
        phi = np.where(walk, 1.0, _expit(points[:, 1]))
        res = _batch(data, phi, np.exp(points[:, 0]), walk)
        values = np.where(np.isfinite(res.loglik), res.loglik, -np.inf).tolist()
        k = 0
        for c, st in zip(todo, stencils, strict=True):
            c.update(values[k : k + len(st)], (res, k))
            k += len(st)
        for a, b in itertools.combinations(climbs, 2):
            if (
                not (a.done or b.done)
                and (a.lo, a.hi) == (b.lo, b.hi)
                and max(abs(x - y) for x, y in zip(a.best, b.best, strict=True)) < _SAME
            ):
                (a if a.best_ll < b.best_ll else b).done = True


def _maximise(data: _Data) -> dict[DriftKind, tuple[float, float, _FilterEnd]]:
    """(phi, q, filter end) at the maximum likelihood of each kind.

    A grid over log q (and phi for the ar1), and none, evaluated in one :func:`_batch` call
    gives the starts: the ar1's best grid point (and a second region's best when nearly as
    likely), the walk's best with its neighbouring cells as the box; :func:`_newton` then
    climbs from all of them at once.
    """
    top = max(data.mvar, data.vbar)
    lo, hi = math.log(1e-8 * data.vbar), math.log(100.0 * top)
    logq = np.linspace(math.log(1e-5 * data.vbar), math.log(4.0 * top), _Q_GRID_POINTS)
    phis = np.array(_PHI_GRID)
    n_ar1 = phis.size * logq.size
    # ar1 on phi x q, the walk on q, none last (phi = q = 0)
    grid_phi = np.concatenate([np.repeat(phis, logq.size), np.ones(logq.size), [0.0]])
    grid_q = np.concatenate([np.exp(np.tile(logq, phis.size)), np.exp(logq), [0.0]])
    walk = np.zeros(grid_q.size, dtype=bool)
    walk[n_ar1:-1] = True
    grid = _batch(data, grid_phi, grid_q, walk)
    ll = np.where(np.isfinite(grid.loglik), grid.loglik, -np.inf)
    order = np.argsort(-ll[:n_ar1])
    starts = [int(order[0])]
    for i in order[1:]:  # a second start in another region, if nearly as likely
        if ll[i] < ll[order[0]] - 2.0:
            break
        if abs(grid_phi[i] - grid_phi[order[0]]) > 0.02 or abs(int(i) - int(order[0])) > 2:
            starts.append(int(i))
            break
    j = int(np.argmax(ll[n_ar1:-1]))
    cell = float(logq[1] - logq[0])
    # the ar1's grid as (log q, logit phi), the walk's as log q
    f_ar1 = ll[:n_ar1].reshape(phis.size, logq.size).T
    axes = (logq, np.log(phis / (1.0 - phis)))
    climbs = [
        _Climb.from_grid(
            (grid, i),
            f_ar1,
            axes,
            (i % logq.size, i // logq.size),
            [lo, _LOGIT_PHI_BOUNDS[0]],
            [hi, _LOGIT_PHI_BOUNDS[1]],
        )
        for i in starts
    ]
    walk_lo = lo if j == 0 else float(logq[j]) - cell
    walk_hi = hi if j == logq.size - 1 else float(logq[j]) + cell
    climbs.append(
        _Climb.from_grid(
            (grid, n_ar1 + j), ll[n_ar1:-1], (logq,), (j,), [walk_lo, 0.0], [walk_hi, 0.0]
        )
    )
    _newton(data, climbs)
    ar1 = max(climbs[:-1], key=lambda c: c.best_ll)  # the first of equals
    walk_fit = climbs[-1]
    return {
        "none": (0.0, 0.0, grid.end(grid_q.size - 1, data.tail)),
        "ar1": (float(_expit(ar1.best[1])), math.exp(ar1.best[0]), ar1.end(data.tail)),
        "random_walk": (1.0, math.exp(walk_fit.best[0]), walk_fit.end(data.tail)),
    }


def default_drift(
    window_s: float = WINDOW_S,
    reference: float = 0.0,
    why: str = "no timestamps",
    *,
    windows: int = 0,
    observed: int = 0,
    within_var: float = 0.0,
) -> DriftFit:
    """The documented default when the pilot cannot estimate drift (``estimated=False``).

    An AR(1) per window with stationary sd ``DEFAULT_LEVEL_SD`` (10%) and correlation
    ``DEFAULT_PHI`` (0.9), whose long-run level mu is itself uncertain by that spread about the
    pilot's level (a short pilot does not pin it down): Var(mu) = tau^2, the last level
    L_end = mu + x with Var(x) = tau^2, so Var(L_end) = 2 tau^2 and Cov(L_end, mu) = tau^2.
    """
    tau2 = DEFAULT_LEVEL_SD**2
    note = (
        f"{why}; assuming a default drift: an AR(1) of {DEFAULT_LEVEL_SD:.0%} level spread with "
        f"window-to-window correlation {DEFAULT_PHI:g}, about a level uncertain by as much"
    )
    return DriftFit(
        kind="ar1",
        estimated=False,
        window_s=float(window_s),
        windows=windows,
        observed=observed,
        mu=reference,
        mu_var=tau2,
        phi=DEFAULT_PHI,
        state_sd=DEFAULT_LEVEL_SD * math.sqrt(1.0 - DEFAULT_PHI**2),
        level_end=reference,
        level_end_var=2.0 * tau2,
        level_mu_cov=tau2,
        reference=reference,
        dispersion=0.0,
        within_var=within_var,
        note=note,
    )


def fit_state_space(series: DriftSeries, kinds: Sequence[DriftKind] = KINDS) -> DriftFit:
    """Fit none / ar1 / random_walk to a window series by maximum likelihood; choose by AIC.

    AIC_k = -2 loglik_k + 2 p_k with p = 0 (none), 1 (random_walk: q), 2 (ar1: phi, q); mu is
    integrated out of every kind alike. The smallest AIC wins; a tie goes to the simpler kind.
    One exception: the ar1 is a candidate only when the pilot rejects a unit root,
        2 (loglik_ar1 - loglik_random_walk) >= UNIT_ROOT_LR (6.0).
    A pilot cannot tell a walk from a slow AR(1) whose mean reversion takes longer than the
    pilot, and the two forecasts differ most exactly there: an AR(1) with phi fitted a little
    below 1 reverts to mu within days and its interval barely grows with the horizon. Under a
    random walk, AIC alone picks such an ar1 in about 10% of pilots, and those forecasts miss;
    the LR of a walk's pilots stays below 6 in about 99% (simulated, 30 to 1000 windows,
    q / (s2 / n) from 0.003 to 3). A slow AR(1) is then forecast as a walk: wider, not missed.
    ``kinds`` restricts the choice (e.g. to force a random walk). Fewer than ``MIN_WINDOWS``
    observed windows give :func:`default_drift`.
    """
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"kinds: expected a non-empty subset of {KINDS}, got {list(kinds)}")
    observed = int(series.observed.sum())
    if observed < MIN_WINDOWS:
        why = (
            f"pilot too short to estimate drift ({observed} windows of "
            f"{_hours(series.window_s)} with >= {series.min_count} requests; {MIN_WINDOWS} "
            "needed)"
        )
        if series.note:
            why = f"{series.note}; {why}"
        return default_drift(
            series.window_s,
            series.reference,
            why,
            windows=series.windows,
            observed=observed,
            within_var=series.within_var,
        )
    data = _Data.of(series)
    fits = _maximise(data)
    loglik: dict[str, float] = {k: fits[k][2].loglik for k in KINDS}
    bad = {k: v for k, v in loglik.items() if not math.isfinite(v)}
    if bad:
        raise FitError(f"drift: the log-likelihood is not finite ({bad}) on {observed} windows")
    aic: dict[str, float] = {k: -2.0 * loglik[k] + 2.0 * _PARAMS[k] for k in KINDS}
    candidates = [
        k
        for k in kinds
        if k != "ar1"
        or "random_walk" not in kinds
        or 2.0 * (loglik["ar1"] - loglik["random_walk"]) >= UNIT_ROOT_LR
    ]
    kind = min(candidates, key=lambda k: (aic[k], _PARAMS[k]))
    phi, q, end = fits[kind]
    ref = series.reference
    return DriftFit(
        kind=kind,
        estimated=True,
        window_s=series.window_s,
        windows=series.windows,
        observed=observed,
        mu=ref + end.mu,
        mu_var=end.mu_var,
        phi=phi,
        state_sd=math.sqrt(q),
        level_end=ref + end.level,
        level_end_var=end.level_var,
        level_mu_cov=end.level_mu_cov,
        reference=ref,
        dispersion=series.dispersion if kind != "none" else 0.0,
        within_var=series.within_var,
        loglik=loglik,
        aic=aic,
        note=series.note,
    )


def fit_drift(
    timestamp: np.ndarray | None,
    value: np.ndarray,
    window_s: float = WINDOW_S,
    *,
    adapt: bool = True,
    start: float | None = None,
    end: float | None = None,
    kinds: Sequence[DriftKind] = KINDS,
) -> DriftFit:
    """One class's drift from its requests: :func:`drift_windows` then :func:`fit_state_space`.

    Without timestamps, or without a positive unit cost, the result is :func:`default_drift`.
    """
    x = np.asarray(value, dtype=float).ravel()
    positive = x[np.isfinite(x) & (x > 0)]
    reference = float(np.mean(_log_values(x))) if positive.size else 0.0
    if positive.size == 0:
        return default_drift(window_s, reference, "no positive unit costs")
    if timestamp is None:
        return default_drift(window_s, reference, "no timestamps")
    series = drift_windows(timestamp, x, window_s, adapt=adapt, start=start, end=end)
    return fit_state_space(series, kinds)
