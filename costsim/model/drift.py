"""Drift of the unit cost between time windows: a state-space model fitted to the pilot.

A pilot's mean cost per request moves from window to window more than sampling explains. Per
window t the pilot gives the mean m_t of y = log(unit cost) over its n_t requests; with the
pooled within-window variance s2 its sampling variance is known, s2 / n_t. The window means are
modelled as a noisy view of a latent log level L_t:

    m_t = L_t + e_t,               e_t ~ N(0, s2 / n_t)        (windows with few requests: missing)
    none:         L_t = mu
    ar1:          L_t - mu = phi (L_{t-1} - mu) + eta_t,        eta_t ~ N(0, q), 0 < phi < 1,
                  started from its stationary law N(mu, q / (1 - phi^2))
    random_walk:  L_t = L_{t-1} + eta_t,                         L_0 = mu

The location mu enters the three kinds in the same way (m_t = mu + x_t + e_t with x a zero-mean
process), so each kind's likelihood is computed with mu integrated out under a flat prior (the
diffuse, or restricted, likelihood of a Kalman filter augmented with the regressor "1"): the
three log-likelihoods are comparable and the kind is chosen by AIC (an AR(1) only when the pilot
rejects a unit root, see :func:`fit_state_space`). The variance q and the
correlation phi are found by maximum likelihood on log q and logit phi: a grid, then Newton's
method from its best points. Both evaluate many (phi, q) at once without a loop over windows
(:func:`_batch`: the state's precision is tridiagonal, one LAPACK factorisation serves every
candidate); :func:`_kalman`, the scalar filter, is the definition they are tested against and
gives the filtered level window by window (:func:`filtered_levels`, for the report).

The forecast side (:func:`horizon_shift`) starts from the filtered level at the pilot's *last*
window, so a pilot whose level moved is followed, and its spread grows with the horizon (a
random walk without bound, an AR(1) up to its stationary spread and the uncertainty of mu).
Drift shared between classes (:func:`common_loadings`) is a one-factor model on the classes'
state innovations, from pairwise bivariate likelihoods.

Pure functions on arrays: nothing here prints, reads files or draws random numbers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Literal

import numpy as np
from scipy import optimize
from scipy.linalg import lapack

from ..errors import FitError

__all__ = [
    "DEFAULT_LEVEL_SD",
    "DEFAULT_PHI",
    "KINDS",
    "MIN_MEDIAN_COUNT",
    "MIN_PER_WINDOW",
    "MIN_WINDOWS",
    "UNIT_ROOT_LR",
    "WINDOW_LADDER_S",
    "WINDOW_S",
    "DriftFit",
    "DriftKind",
    "DriftSeries",
    "common_loadings",
    "default_drift",
    "drift_windows",
    "filtered_levels",
    "fit_drift",
    "fit_state_space",
    "horizon_shift",
    "log_likelihood",
]

DriftKind = Literal["none", "ar1", "random_walk"]
KINDS: tuple[DriftKind, ...] = ("none", "ar1", "random_walk")
#: free parameters beyond the (integrated) location mu, for AIC
_PARAMS: Mapping[DriftKind, int] = {"none": 0, "ar1": 2, "random_walk": 1}

WINDOW_S = 3600.0
#: window lengths tried, in order, when a class is too sparse for the requested window
WINDOW_LADDER_S: tuple[float, ...] = tuple(
    3600.0 * h for h in (1, 2, 3, 4, 6, 8, 12, 24, 48, 96, 168)
)
MIN_MEDIAN_COUNT = 20  # a typical window should hold this many requests ...
MIN_WINDOWS = 8  # ... and the pilot at least this many observed windows
MIN_PER_WINDOW = 5  # a window with fewer requests is a missing observation
#: the default when the pilot cannot tell (too short, no timestamps): an AR(1) per window with
#: this stationary level sd and correlation, and a long-run level as uncertain as that spread
DEFAULT_LEVEL_SD = 0.10
DEFAULT_PHI = 0.9
_FLOOR_FRACTION = 1e-3  # unit costs below this fraction of the median are floored (log of 0)
#: an ar1 is chosen over a random walk only when 2 (loglik_ar1 - loglik_walk) reaches this
UNIT_ROOT_LR = 6.0
_LOG_2PI = math.log(2.0 * math.pi)
_LOGIT_PHI_BOUNDS = (-6.0, 9.2)  # phi in (0.0025, 0.9999)
_PHI_GRID = (0.3, 0.6, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
_Q_GRID_POINTS = 20
_RIDGE = 1.0  # ridge on the loadings (against the posterior precisions of the pairs' r)
_R_GRID = np.linspace(-0.99, 0.99, 45)  # correlation grid of the pairwise likelihoods


@dataclass(frozen=True, eq=False)
class DriftSeries:
    """Per-window summaries of log unit cost on a regular grid of ``window_s`` from ``start``.

    ``mean[t]`` is the mean of y = log(unit cost) over window t's ``count[t]`` requests, NaN
    when the window holds fewer than ``min_count`` (a missing observation, kept on the time
    axis); ``within_var`` is the pooled within-window variance s2, so an observed window mean
    has sampling variance s2 / count[t]. ``reference`` is the pilot's overall mean log level
    (the count-weighted mean of the window means, all requests included); ``dispersion`` the
    count-weighted variance of the true window levels about it, estimated as the weighted
    variance of the observed means minus its sampling part (floored at 0).
    """

    window_s: float
    start: float
    mean: np.ndarray
    count: np.ndarray
    within_var: float
    reference: float
    dispersion: float
    min_count: int = MIN_PER_WINDOW
    note: str | None = None

    @property
    def windows(self) -> int:
        return int(self.mean.size)

    @property
    def observed(self) -> np.ndarray:
        """Boolean mask of the windows that count as observations."""
        return np.asarray(self.count >= self.min_count)

    @property
    def variance(self) -> np.ndarray:
        """Sampling variance s2 / n_t of each window mean (inf where not observed)."""
        n = self.count.astype(float)
        return np.where(self.observed, self.within_var / np.maximum(n, 1.0), np.inf)


@dataclass(frozen=True)
class DriftFit:
    """The fitted drift of one class (see the module docstring for the model).

    ``mu`` is the long-run level (ar1, none) or the level at window 0 (random_walk), log scale,
    with posterior variance ``mu_var`` (mu integrated out under a flat prior); ``phi`` the
    window-to-window correlation (1 for a random walk, 0 for none); ``state_sd`` the innovation
    sd sqrt(q) per window; ``level_end`` / ``level_end_var`` the filtered level at the pilot's
    last window and its variance (mu's uncertainty included), ``level_mu_cov`` their covariance.
    ``reference`` is the pilot's overall mean log level, the level the fitted cost distribution
    corresponds to; ``dispersion`` the request-weighted variance of the pilot's window levels
    about it (a Jensen term: the pilot's mean cost is exp(reference + dispersion / 2) times the
    per-request factor). ``loglik`` holds the diffuse log-likelihood of each kind, ``aic`` the
    criterion the kind was chosen by. ``estimated`` is False for the documented default
    (:func:`default_drift`), whose ``note`` says why; a note also explains a lengthened window.
    """

    kind: DriftKind
    estimated: bool
    window_s: float
    windows: int
    observed: int
    mu: float
    mu_var: float
    phi: float
    state_sd: float
    level_end: float
    level_end_var: float
    level_mu_cov: float
    reference: float
    dispersion: float
    within_var: float
    loglik: Mapping[str, float] = field(default_factory=dict)
    aic: Mapping[str, float] = field(default_factory=dict)
    note: str | None = None

    @property
    def stationary_sd(self) -> float:
        """Sd of the level about mu for an AR(1), sqrt(q / (1 - phi^2)); inf for a walk."""
        if self.kind == "none":
            return 0.0
        if self.kind == "random_walk":
            return math.inf
        return self.state_sd / math.sqrt(-math.expm1(2.0 * math.log(self.phi)))


# ---------------------------------------------------------------------------------- windows


def _log_values(value: np.ndarray) -> np.ndarray:
    """y = log(max(value, 1e-3 * median of the positive values)), as the fit does."""
    positive = value[value > 0]
    if positive.size == 0:
        raise ValueError("value: no positive unit costs to take the log of")
    floor = _FLOOR_FRACTION * float(np.median(positive))
    return np.log(np.maximum(value, floor))


def _hours(seconds: float) -> str:
    h = seconds / 3600.0
    return f"{h / 24:g} d" if h >= 24 and h % 24 == 0 else f"{h:g} h"


Grid = tuple[int, np.ndarray, np.ndarray]  # windows, each row's window, rows per window


def choose_window(
    grid: Callable[[float], Grid],
    candidates: Sequence[float],
    adapt: bool,
    min_median: int = MIN_MEDIAN_COUNT,
    min_windows: int = MIN_WINDOWS,
    min_count: int = MIN_PER_WINDOW,
) -> tuple[Grid, float, str | None]:
    """The shortest candidate window whose median window holds ``min_median`` requests, as long
    as ``min_windows`` windows keep ``min_count`` each; its grid, length and a note when it
    was lengthened or is still thin. ``grid(w)`` lays the rows on windows of ``w`` seconds
    (from rows in memory, or from a streamed pilot's per-window counts)."""
    chosen = grid(candidates[0])
    chosen_w, first_median = candidates[0], float(np.median(chosen[2]))
    for w in candidates:
        g = grid(w)
        if int(np.sum(g[2] >= min_count)) < min_windows:
            break  # longer windows only leave fewer
        chosen, chosen_w = g, w
        if np.median(g[2]) >= min_median:
            break
    n = chosen[2]
    median = float(np.median(n))
    note = None
    if chosen_w != candidates[0]:
        note = (
            f"windows lengthened from {_hours(candidates[0])} to {_hours(chosen_w)}: a "
            f"{_hours(candidates[0])} window held a median of {first_median:g} requests "
            f"({min_median} wanted)"
        )
    if median < min_median and adapt and int(np.sum(n >= min_count)) >= min_windows:
        note = (note + "; " if note else "") + (
            f"{_hours(chosen_w)} windows hold a median of {median:g} requests ({min_median} "
            f"wanted), but longer ones would leave fewer than {min_windows} in the pilot"
        )
    return chosen, chosen_w, note


def window_dispersion(means: np.ndarray, counts: np.ndarray, within: float) -> float:
    """The request-weighted variance of the observed windows' mean levels about their own
    mean, less what the within-window variance ``within`` alone would put there (the
    expected spread of means of ``counts`` draws); at least 0. `DriftSeries.dispersion`."""
    if not means.size:
        return 0.0
    n = counts.astype(float)
    weights = n / n.sum()
    wmean = float(weights @ means)
    raw = float(weights @ (means - wmean) ** 2)
    return max(raw - within * (n.size - 1) / n.sum(), 0.0)


def drift_windows(
    timestamp: np.ndarray,
    value: np.ndarray,
    window_s: float = WINDOW_S,
    *,
    adapt: bool = True,
    start: float | None = None,
    end: float | None = None,
    min_median: int = MIN_MEDIAN_COUNT,
    min_windows: int = MIN_WINDOWS,
    min_count: int = MIN_PER_WINDOW,
) -> DriftSeries:
    """Window means of log unit cost, on a window long enough for the class's traffic.

    The grid starts at ``start`` (default: the first timestamp) and covers the pilot up to
    ``end`` (default: the last timestamp). With ``adapt``, the window starts at ``window_s``
    and is lengthened along :data:`WINDOW_LADDER_S` (2 h, 3 h, 4 h, 6 h, 8 h, 12 h, 1 d, ...)
    until the median window (over the whole grid, empty windows included) holds at least
    ``min_median`` requests, as long as at least ``min_windows`` windows stay observed;
    otherwise the longest window that keeps ``min_windows`` is used and the note says so.
    Windows with fewer than ``min_count`` requests are missing observations.

    With W_t the requests of window t (y centred on the overall mean for precision):
        m_t = mean_{i in W_t} y_i,  s2 = sum_t sum_{i in W_t} (y_i - m_t)^2 / (N - #windows)
    """
    t = np.asarray(timestamp, dtype=float).ravel()
    x = np.asarray(value, dtype=float).ravel()
    if t.shape != x.shape:
        raise ValueError(f"timestamp and value: lengths differ ({t.size} vs {x.size})")
    if t.size == 0:
        raise ValueError("timestamp: no requests")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(x))):
        raise ValueError("timestamp and value: must be finite")
    if not window_s > 0:
        raise ValueError(f"window_s: expected a positive number of seconds, got {window_s}")
    y = _log_values(x)
    t0 = float(t.min()) if start is None else float(start)
    t1 = float(t.max()) if end is None else float(end)
    if t.min() < t0 or t.max() > t1:
        raise ValueError(f"timestamp: requests outside the pilot's [start, end] = [{t0}, {t1}]")
    span = t1 - t0
    candidates = [float(window_s)]
    if adapt:
        candidates += [w for w in WINDOW_LADDER_S if w > window_s]

    def grid(w: float) -> tuple[int, np.ndarray, np.ndarray]:
        size = math.floor(span / w) + 1 if end is None else max(math.ceil(span / w), 1)
        idx = np.minimum(np.floor((t - t0) / w).astype(np.int64), size - 1)
        return size, idx, np.bincount(idx, minlength=size)

    (size, idx, n), chosen_w, note = choose_window(
        grid, candidates, adapt, min_median, min_windows, min_count
    )
    centre = float(np.mean(y))
    yc = y - centre
    s1 = np.bincount(idx, weights=yc, minlength=size)
    ss = np.bincount(idx, weights=yc * yc, minlength=size)
    nonempty = n > 0
    means = np.where(nonempty, s1 / np.maximum(n, 1), 0.0)
    df = int(n.sum()) - int(nonempty.sum())
    within = float(np.sum(ss - n * means**2) / df) if df > 0 else float(np.var(yc))
    within = max(within, 1e-12)
    observed = n >= min_count
    dispersion = window_dispersion(means[observed], n[observed], within)
    return DriftSeries(
        window_s=chosen_w,
        start=t0,
        mean=np.where(observed, means + centre, np.nan),
        count=n.astype(np.int64),
        within_var=within,
        reference=centre + float(s1.sum() / n.sum()),
        dispersion=dispersion,
        min_count=min_count,
        note=note,
    )


# ---------------------------------------------------------------------------- Kalman filter


_Values = np.ndarray | float  # an array, or one value


@dataclass(frozen=True, eq=False)
class _Data:
    """The observed windows of a series, centred, as the filter reads them."""

    m: np.ndarray  # centred window means
    v: np.ndarray  # sampling variances s2 / n_t
    index: np.ndarray  # the observed windows on the series' grid
    gaps: np.ndarray  # windows since the previous observation (the first: since window 0)
    tail: int  # windows from the last observation to the grid's last window
    vbar: float  # median sampling variance, the scale of the q grid
    mvar: float  # variance of the observed means

    @classmethod
    def of(cls, series: DriftSeries, centre: float | None = None) -> _Data:
        """The series' observed windows, centred on ``centre`` (default: its reference)."""
        idx = np.flatnonzero(series.observed)
        m = series.mean[idx] - (series.reference if centre is None else centre)
        v = series.variance[idx]
        return cls(
            m=m,
            v=v,
            index=idx,
            gaps=np.diff(idx, prepend=0),
            tail=int(series.windows - 1 - idx[-1]) if idx.size else 0,
            vbar=float(np.median(v)) if idx.size else 1.0,
            mvar=float(np.var(m)) if idx.size > 1 else 0.0,
        )

    @cached_property
    def iv(self) -> np.ndarray:
        return 1.0 / self.v

    @cached_property
    def regressors(self) -> np.ndarray:
        """The data m and the location's regressor 1, as rows."""
        return np.stack([self.m, np.ones(self.m.size)])

    @cached_property
    def quadratic(self) -> np.ndarray:
        """b' V^-1 b~ for b, b~ the regressors (2 x 2)."""
        return np.asarray((self.regressors * self.iv) @ self.regressors.T)

    @cached_property
    def lags(self) -> np.ndarray:
        """0, 1, ..., the longest gap: the powers of phi a chain needs."""
        return np.arange(self.gaps.max() + 1.0)

    @cached_property
    def constant(self) -> float:
        """(n - 1) log 2pi + log det V: the part of -2 loglik no model changes."""
        return float((self.m.size - 1) * _LOG_2PI + np.log(self.v).sum())


def _geometric(phi: _Values, steps: _Values) -> np.ndarray:
    """sum_{j=0}^{steps-1} phi^(2j) = (1 - phi^(2 steps)) / (1 - phi^2), elementwise, stably:
    ``steps`` for phi >= 1 (a walk), 1 for phi <= 0 and steps >= 1 (no memory)."""
    phi, steps = np.asarray(phi, dtype=float), np.asarray(steps, dtype=float)
    inner = (phi > 0.0) & (phi < 1.0)
    lp = 2.0 * np.log(np.where(inner, phi, 0.5))
    return np.where(
        phi >= 1.0, steps, np.where(inner, np.expm1(steps * lp) / np.expm1(lp), steps >= 1.0)
    )


def _dynamics(kind: DriftKind, phi: float, q: float) -> tuple[float, float, float]:
    """(phi, q, P_0) of a kind: the state's variance P_0 at window 0 is the stationary
    q / (1 - phi^2) for an ar1 and 0 for a walk (L_0 = mu) and for none (phi = q = 0)."""
    if kind == "none":
        return 0.0, 0.0, 0.0
    if kind == "random_walk":
        return 1.0, q, 0.0
    return phi, q, q / -math.expm1(2.0 * math.log(phi))


@dataclass(frozen=True)
class _FilterEnd:
    loglik: float
    mu: float  # GLS estimate of the location (centred scale)
    mu_var: float
    level: float  # filtered level at the grid's last window (centred scale)
    level_var: float
    level_mu_cov: float


@dataclass(frozen=True)
class _Filtered:
    """The filter's pass over the observed windows: the state after each observation (x the
    zero-mean state, a the regressor 1's coefficient, p the variance), and the likelihood."""

    x: np.ndarray
    a: np.ndarray
    p: np.ndarray
    loglik: float
    mu: float
    mu_var: float


def _kalman(data: _Data, kind: DriftKind, phi: float, q: float) -> _Filtered:
    """Diffuse log-likelihood of the window means, and the filtered states, for one model.

    Augmented Kalman filter: with x the zero-mean state (L = mu + x), the data m_t and the
    regressor 1 go through the same filter, giving innovations v_t and u_t with variance F_t;
    for a given mu the innovation is v_t - mu u_t. With S_ab = sum_t a_t b_t / F_t,
        mu_hat = S_uv / S_uu,  Var(mu) = 1 / S_uu,
        loglik = -1/2 [(n - 1) log 2pi + sum_t log F_t + log S_uu + S_vv - S_uv^2 / S_uu],
    the likelihood with mu integrated out under a flat prior (the same for every kind). This is
    the definition; :func:`_batch` computes the same for many (phi, q) at once.
    """
    phi, q, p = _dynamics(kind, phi, q)
    x = a = 0.0
    phi2 = phi * phi
    slogf = svv = suv = suu = 0.0
    xs, as_, ps = [], [], []
    log = math.log
    for m, v, g in zip(data.m.tolist(), data.v.tolist(), data.gaps.tolist(), strict=True):
        if g == 1:
            x *= phi
            a *= phi
            p = phi2 * p + q
        elif g > 1:
            pg = phi**g
            x *= pg
            a *= pg
            p = pg * pg * p + q * float(_geometric(phi, g))
        f = p + v
        e = m - x
        u = 1.0 - a
        k = p / f
        x += k * e
        a += k * u
        p *= v / f
        slogf += log(f)
        svv += e * e / f
        suv += u * e / f
        suu += u * u / f
        xs.append(x)
        as_.append(a)
        ps.append(p)
    n = data.m.size
    mu = suv / suu
    loglik = -0.5 * ((n - 1) * _LOG_2PI + slogf + log(suu) + svv - suv * mu)
    return _Filtered(np.array(xs), np.array(as_), np.array(ps), loglik, mu, 1.0 / suu)


def _predict(
    x: _Values, a: _Values, p: _Values, phi: _Values, q: _Values, steps: _Values
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The filtered state carried ``steps`` windows ahead without observations:
    x phi^s, a phi^s, p phi^(2s) + q sum_{j<s} phi^(2j)."""
    decay = np.asarray(phi, dtype=float) ** steps
    return x * decay, a * decay, decay * decay * p + q * _geometric(phi, steps)


def _filter_end(
    loglik: float,
    mu: float,
    mu_var: float,
    state: tuple[float, float, float],
    phi: float,
    q: float,
    tail: int,
) -> _FilterEnd:
    """The filtered level at the grid's last window from the state (x, a, P) at the last
    observation, carried on ``tail`` windows: there x = x_d - mu a with variance P, so
        L_end = x_d + mu b,  Var = P + b^2 Var(mu),  Cov(L_end, mu) = b Var(mu),  b = 1 - a."""
    x, a, p = _predict(*state, phi, q, tail)
    b = 1.0 - float(a)
    return _FilterEnd(loglik, mu, mu_var, float(x) + mu * b, float(p) + b * b * mu_var, b * mu_var)


def _filter(data: _Data, kind: DriftKind, phi: float, q: float) -> _FilterEnd:
    """:func:`_kalman`'s likelihood and the filtered level at the grid's last window."""
    run = _kalman(data, kind, phi, q)
    phi, q, _ = _dynamics(kind, phi, q)
    state = (float(run.x[-1]), float(run.a[-1]), float(run.p[-1]))
    return _filter_end(run.loglik, run.mu, run.mu_var, state, phi, q, data.tail)


def filtered_levels(series: DriftSeries, fit: DriftFit) -> tuple[np.ndarray, np.ndarray]:
    """Filtered log level L_t | m_1..m_t of ``fit``'s model at every window of ``series``, and
    its variance, with the location at the fit's estimate:
        L_t = mu + x_t - mu a_t,  Var = P_t + (1 - a_t)^2 Var(mu)
    (x, a, P the filter's state, a window without an observation carrying the last one on).
    At the fit's own last window this is ``level_end``. The default drift (not estimated) and
    ``none`` have no level of their own: the long-run level mu throughout.
    """
    t_len = series.windows
    if not fit.estimated or fit.kind == "none":
        return np.full(t_len, fit.mu), np.full(t_len, fit.mu_var)
    data = _Data.of(series, centre=fit.reference)
    phi, q, p0 = _dynamics(fit.kind, fit.phi, fit.state_sd**2)
    windows = np.arange(t_len)
    # each window carries on the state of its last observation, or window 0's before the first
    last = np.searchsorted(data.index, windows, side="right") - 1
    seen = last >= 0
    x = a = np.zeros(t_len)
    p = np.full(t_len, p0)
    origin = np.zeros(t_len, dtype=np.int64)
    if data.m.size:
        run = _kalman(data, fit.kind, phi, q)
        at = np.maximum(last, 0)
        x, a = np.where(seen, run.x[at], 0.0), np.where(seen, run.a[at], 0.0)
        p = np.where(seen, run.p[at], p0)
        origin = np.where(seen, data.index[at], 0)
    x, a, p = _predict(x, a, p, phi, q, windows - origin)
    b = 1.0 - a
    return fit.reference + x + (fit.mu - fit.reference) * b, p + b * b * fit.mu_var


def log_likelihood(series: DriftSeries, kind: DriftKind, phi: float = 0.0, q: float = 0.0) -> float:
    """Diffuse log-likelihood (mu integrated out) of a series' window means under one kind.

    ``phi`` is used by ar1 only, ``q`` (innovation variance per window) by ar1 and random_walk.
    """
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    if kind == "ar1" and not 0.0 < phi < 1.0:
        raise ValueError(f"phi: expected 0 < phi < 1 for an ar1, got {phi}")
    if q < 0:
        raise ValueError(f"q: expected a variance >= 0, got {q}")
    data = _Data.of(series)
    if not data.m.size:
        raise ValueError("series: no observed windows")
    return _filter(data, kind, phi, q).loglik


# ------------------------------------------------------------------- many models at once

_BATCH_VALUES = 8192  # candidates x windows per LAPACK call: the temporaries stay in the cache


@dataclass(frozen=True)
class _Batch:
    """:func:`_filter` for many models at once, one entry per candidate: the log-likelihood,
    the location's estimate and variance, the state (x, a, P) at the last observation, and the
    model (phi, q) that carries it on to the grid's end."""

    loglik: np.ndarray
    mu: np.ndarray
    mu_var: np.ndarray
    x: np.ndarray
    a: np.ndarray
    p: np.ndarray
    phi: np.ndarray
    q: np.ndarray

    def end(self, i: int, tail: int) -> _FilterEnd:
        state = (float(self.x[i]), float(self.a[i]), float(self.p[i]))
        return _filter_end(
            float(self.loglik[i]),
            float(self.mu[i]),
            float(self.mu_var[i]),
            state,
            float(self.phi[i]),
            float(self.q[i]),
            tail,
        )

    @classmethod
    def concat(cls, parts: Sequence[_Batch]) -> _Batch:
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))


def _chain(
    data: _Data, phi: np.ndarray, q: np.ndarray, walk: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The state at the observed windows as a Markov chain, per candidate (rows):
        x_t = c_t x_{t-1} + w_t,  c_t = phi^g_t,  w_t ~ N(0, W_t),  W_t = q sum_{j<g_t} phi^(2j),
    g_t the windows since the previous observation; the first, x_1 ~ N(0, W_1), W_1 the state's
    variance there: q / (1 - phi^2) for an ar1 (stationary), q g_1 for a walk (L_0 = mu). A
    slot with W_t = 0 holds no random state (a walk observed at window 0; no drift at all,
    q = 0): it becomes a unit-variance dummy, cut from the data and from its neighbours (c = 0).
    Returns c, W and the weights h_t / v_t of the observations on the state (h = 0: a dummy),
    one row for all candidates when there is no dummy."""
    powers = np.where(walk, 1.0, phi)[:, None] ** data.lags  # phi^j, j = 0 .. longest gap
    c = powers[:, data.gaps]
    squares = powers * powers
    w = q[:, None] * (np.cumsum(squares, axis=1) - squares)[:, data.gaps]  # sum_{j<g} phi^(2j)
    ar1 = np.where(walk, 0.0, phi)
    w[:, 0] = q * np.where(walk, data.gaps[0], 1.0 / ((1.0 - ar1) * (1.0 + ar1)))
    first = w[:, 0] <= 0.0  # the only slots that can be dummies: the first, or all (q = 0)
    if not first.any():
        return c, w, data.iv
    none = q <= 0.0
    weight = np.tile(data.iv, (len(q), 1))
    weight[first, 0] = weight[none] = 0.0
    w[first, 0] = w[none] = 1.0
    c[first, :2] = c[none] = 0.0
    return c, w, weight


def _batch_block(data: _Data, phi: np.ndarray, q: np.ndarray, walk: np.ndarray) -> _Batch:
    """:func:`_batch` for candidates whose windows fit one LAPACK call.

    With the chain of :func:`_chain` the window means are m = mu 1 + H x + e, e ~ N(0, V),
    V = diag(v), H = diag(h), and the precision Lambda of x is tridiagonal:
        x' Lambda x = sum_t (x_t - c_t x_{t-1})^2 / W_t,   log det Lambda = -sum_t log W_t.
    Sigma = V + H Lambda^-1 H is then inverted through T = Lambda + H V^-1 H (Woodbury),
    tridiagonal too: one LDL' factorisation (LAPACK dptsv) serves every candidate, the
    candidates' systems laid along one diagonal. With r_b = H V^-1 b and y_b = T^-1 r_b for
    b = m, 1 (the data and the location's regressor),
        b' Sigma^-1 b~ = b' V^-1 b~ - r_b' y_b~,
        log det Sigma = sum_t log v_t + sum_t log D_t + sum_t log W_t   (D the pivots of T),
    which give :func:`_kalman`'s S_vv, S_uv, S_uu and log-likelihood (to about 1e-10 of it:
    the subtraction loses what the state explains of b' V^-1 b). At the last observation the
    filtered state is the smoothed one: x = y_m, a = y_1, P = (T^-1)_nn = 1 / D_n (0 without
    drift).
    """
    c, w, hv = _chain(data, phi, q, walk)
    k, n = c.shape
    iw = 1.0 / w
    off = np.zeros((k, n))  # -c_{t+1} / W_{t+1}, the coupling of x_t and x_{t+1}; 0 at the end
    np.multiply(c[:, 1:], iw[:, 1:], out=off[:, :-1])
    diag = iw + hv
    diag[:, :-1] += c[:, 1:] * off[:, :-1]
    np.negative(off, out=off)
    rhs = np.empty((2, k, n))  # H V^-1 b, overwritten by y_b
    np.multiply(data.regressors[:, None, :], hv, out=rhs)
    pivots, _, y, info = lapack.dptsv(
        diag.ravel(),
        off.ravel()[:-1],
        rhs.reshape(2, -1).T,
        overwrite_d=1,
        overwrite_e=1,
        overwrite_b=1,
    )
    if info != 0:  # T is positive definite by construction (q >= 0, v > 0)
        raise FitError(f"drift: the state's precision is not positive definite (dptsv: {info})")
    y = y.T.reshape(2, k, n)
    pivots = pivots.reshape(k, n)
    r_y = (y * hv) @ data.regressors.T  # [a, candidate, b]: r_b' y_a
    q_ = data.quadratic
    svv, suv, suu = q_[0, 0] - r_y[0, :, 0], q_[0, 1] - r_y[0, :, 1], q_[1, 1] - r_y[1, :, 1]
    logdet = np.log(pivots * w).sum(axis=1) + np.log(suu)  # log det T/Lambda and of S_uu
    loglik = -0.5 * (data.constant + logdet + svv - suv * suv / suu)
    p_end = (q > 0.0) / pivots[:, -1]  # no drift: no state
    return _Batch(
        loglik, suv / suu, 1.0 / suu, y[0, :, -1], y[1, :, -1], p_end, np.where(walk, 1.0, phi), q
    )


def _batch(data: _Data, phi: np.ndarray, q: np.ndarray, walk: np.ndarray) -> _Batch:
    """:func:`_filter` for many (phi, q) at once (``walk``: phi = 1; phi = q = 0: none), without a
    loop over windows, in blocks of candidates."""
    rows = max(1, _BATCH_VALUES // data.m.size)
    parts = [
        _batch_block(data, phi[i : i + rows], q[i : i + rows], walk[i : i + rows])
        for i in range(0, phi.size, rows)
    ]
    return parts[0] if len(parts) == 1 else _Batch.concat(parts)


# -------------------------------------------------------------------------------- fitting

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


# ------------------------------------------------------------------------------- forecast


def horizon_shift(fit: DriftFit, weights: np.ndarray, gap_windows: int = 0) -> tuple[float, float]:
    """Log-normal law of the horizon's unit-cost level relative to the pilot: (mean, var).

    ``weights`` (w_k >= 0, normalised to sum 1) are the forecast's traffic weights on the drift
    window grid, window k of the horizon being h_k = gap_windows + 1 + k windows after the
    pilot's last one. With a = sum_k w_k phi^h_k (1 for a walk), the traffic-weighted mean log
    level Lbar = sum_k w_k L_{h_k} is normal with
        E[Lbar]   = mu + a (L_end - mu)                               (a walk: L_end)
        Var[Lbar] = (1-a)^2 Var(mu) + a^2 Var(L_end) + 2 a (1-a) Cov(L_end, mu)
                    + q (sum_k c_k^2 + c_0^2 sum_{j=1}^{gap} phi^(2j)),
    c_k = w_k + phi c_{k+1} being the weight of the innovation of horizon window k in Lbar (a
    backward linear filter, O(H), no H x H matrix). The returned ``mean`` is
        E[Lbar] - reference + (D_horizon - D_pilot) / 2,
    where the D are the expected weighted spreads of the true level within the horizon and
    within the pilot (Jensen terms), so that exp(N(mean, var)) is the law of
        (horizon's traffic-weighted mean unit cost) / (pilot's mean unit cost),
    the factor by which to multiply costs drawn from the pilot's fitted distribution. The
    median factor is exp(mean), its mean exp(mean + var / 2). ``none`` gives (0, 0): the
    pilot's distribution is the future's (its own sampling error is the fit's business).
    """
    w = np.asarray(weights, dtype=float).ravel()
    if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights: expected finite traffic weights >= 0 with a positive sum")
    if gap_windows < 0:
        raise ValueError(f"gap_windows: expected >= 0, got {gap_windows}")
    if fit.kind == "none":
        return 0.0, 0.0
    w = w / w.sum()
    phi = 1.0 if fit.kind == "random_walk" else fit.phi
    q = fit.state_sd**2
    h = gap_windows + 1.0 + np.arange(w.size)
    if phi >= 1.0:
        ph = np.ones_like(h)
    elif phi > 0.0:
        ph = np.exp(h * math.log(phi))
    else:
        ph = np.zeros_like(h)
    a = float(w @ ph)
    gap_w = fit.level_end - fit.mu
    centre = fit.mu + a * gap_w
    vm, vl, c = fit.mu_var, fit.level_end_var, fit.level_mu_cov
    param = (1.0 - a) ** 2 * vm + a * a * vl + 2.0 * a * (1.0 - a) * c
    from scipy.signal import lfilter  # here: scipy.signal's import is half of scipy

    cw = lfilter([1.0], [1.0, -phi], w[::-1])[::-1]
    lead = float(_geometric(phi, gap_windows + 1)) - 1.0  # sum_{j=1}^{gap} phi^(2j)
    var = param + q * (float(cw @ cw) + float(cw[0]) ** 2 * lead)
    # Jensen: E[sum_k w_k (L_k - Lbar)^2] = sum_k w_k Var(L_k) - Var(Lbar) + spread of E[L_k]
    if phi >= 1.0:
        geo = h
    elif phi > 0.0:
        lp = 2.0 * math.log(phi)
        geo = np.expm1(h * lp) / math.expm1(lp)
    else:
        geo = np.ones_like(h)
    var_k = (1.0 - ph) ** 2 * vm + ph * ph * vl + 2.0 * ph * (1.0 - ph) * c + q * geo
    mean_k = fit.mu + ph * gap_w
    spread = max(float(w @ var_k) - var + float(w @ (mean_k - centre) ** 2), 0.0)
    return centre - fit.reference + 0.5 * (spread - fit.dispersion), max(var, 0.0)


# ------------------------------------------------------------------------ shared drift


_PAIR_BLOCK = 4096  # pairs x correlations per pass over the windows: they stay in the cache


def _pair_loglik(
    m: np.ndarray,
    v: np.ndarray,
    phi: np.ndarray,
    q: np.ndarray,
    walk: np.ndarray,
    pairs: np.ndarray,
    r: np.ndarray,
) -> np.ndarray:
    """:func:`_pair_block` over blocks of pairs: a few thousand at a time, every array of the
    filter stays in the cache."""
    return np.concatenate(
        [
            _pair_block(m, v, phi, q, walk, pairs[i : i + _PAIR_BLOCK], r[i : i + _PAIR_BLOCK])
            for i in range(0, r.size, _PAIR_BLOCK)
        ]
    )


def _pair_block(
    m: np.ndarray,
    v: np.ndarray,
    phi: np.ndarray,
    q: np.ndarray,
    walk: np.ndarray,
    pairs: np.ndarray,
    r: np.ndarray,
) -> np.ndarray:
    """Diffuse log-likelihood of pairs of classes whose state innovations correlate by r.

    m, v: (C, T) centred window means (0 where missing) and sampling variances (inf where
    missing); phi, q, walk: (C,) each class's fitted dynamics; pairs: (G, 2) class indices;
    r: (G,) innovation correlations. Bivariate state x = (x_1, x_2) with transition
    diag(phi_1, phi_2) and innovation covariance [[q1, r s1 s2], [r s1 s2, q2]]; each class's
    observation is processed in turn (their sampling errors are independent), missing ones are
    skipped, and both locations are integrated out as in :func:`_filter`:
        loglik = -1/2 [sum log F + log det S_uu + S_vv - S_uv' S_uu^-1 S_uv] (+ constant).
    """
    i, j = pairs[:, 0], pairs[:, 1]
    f1, f2 = np.where(walk[i], 1.0, phi[i]), np.where(walk[j], 1.0, phi[j])
    q1, q2 = q[i], q[j]
    q12 = r * np.sqrt(q1 * q2)
    both_ar = ~walk[i] & ~walk[j]
    p11 = np.where(walk[i], 0.0, q1 / np.where(walk[i], 1.0, 1.0 - f1 * f1))
    p22 = np.where(walk[j], 0.0, q2 / np.where(walk[j], 1.0, 1.0 - f2 * f2))
    p12 = np.where(both_ar, q12 / np.where(both_ar, 1.0 - f1 * f2, 1.0), 0.0)
    zeros = np.zeros(r.size)
    x1, x2, a11, a12, a21, a22 = (zeros.copy() for _ in range(6))
    slogf, svv, s1, s2, s11, s12, s22 = (zeros.copy() for _ in range(7))
    for t in range(m.shape[1]):
        if t:
            x1, x2 = f1 * x1, f2 * x2
            a11, a12, a21, a22 = f1 * a11, f1 * a12, f2 * a21, f2 * a22
            p11, p12, p22 = f1 * f1 * p11 + q1, f1 * f2 * p12 + q12, f2 * f2 * p22 + q2
        for first in (True, False):
            cls = i if first else j
            obs = np.isfinite(v[cls, t])
            pc, pd = (p11, p12) if first else (p12, p22)  # P h: the column of the observed state
            if obs.all():
                f = (pc if first else pd) + v[cls, t]
                wo = 1.0 / f
                logf = np.log(f)
            elif obs.any():  # missing observations weigh nothing
                f = np.where(obs, (pc if first else pd) + np.where(obs, v[cls, t], 1.0), 1.0)
                wo = obs / f
                logf = np.where(obs, np.log(f), 0.0)
            else:
                continue
            k1, k2 = pc * wo, pd * wo
            e = m[cls, t] - (x1 if first else x2)
            u1 = (1.0 - a11) if first else -a21
            u2 = -a12 if first else (1.0 - a22)
            x1, x2 = x1 + k1 * e, x2 + k2 * e
            a11, a12 = a11 + k1 * u1, a12 + k1 * u2
            a21, a22 = a21 + k2 * u1, a22 + k2 * u2
            # P - K h'P, h'P = (pc, pd)
            p11, p12, p22 = p11 - k1 * pc, p12 - k1 * pd, p22 - k2 * pd
            slogf += logf
            we, wu1 = wo * e, wo * u1
            svv += we * e
            s1 += we * u1
            s2 += we * u2
            s11 += wu1 * u1
            s12 += wu1 * u2
            s22 += wo * u2 * u2
    det = s11 * s22 - s12 * s12
    quad = (s22 * s1 * s1 - 2.0 * s12 * s1 * s2 + s11 * s2 * s2) / det
    return np.asarray(-0.5 * (slogf + np.log(det) + svv - quad))


def common_loadings(fits: Sequence[DriftFit], series: Sequence[DriftSeries]) -> np.ndarray:
    """Share rho_j in [0, 1] of each class's drift that is common to all classes.

    One-factor model of the classes' state innovations: eta_j = sd_j (l_j c + sqrt(1 - l_j^2)
    u_j), so the innovations of classes j and k correlate by r_jk = l_j l_k. Each pair's r_jk
    is the posterior mean of its bivariate diffuse likelihood (:func:`_pair_loglik`, the fitted
    phi and q of both classes held fixed) under a flat prior on (-1, 1): with few windows the
    likelihood is flat and the estimate shrinks towards 0. The loadings l_j in [0, 1] minimise
        sum_{j<k} (r_jk - l_j l_k)^2 / s_jk^2 + sum_j l_j^2,
    s_jk being the posterior sd of r_jk (two classes: l = sqrt(max(r, 0))); the small ridge
    splits a product evenly (one correlated pair gives both classes sqrt(r), not 1 and r) and
    shrinks a little more towards 0. rho_j = l_j^2, so
    that drawing z_j = sqrt(rho_j) z_common + sqrt(1 - rho_j) z_own gives corr(z_j, z_k) =
    l_j l_k. The pairs are evaluated in one vectorized pass (a loop over windows only): 20
    classes and 336 windows take a fraction of a second.
    Classes without drift (``none``) or with the default drift get 0.

    ``series`` must share the grid (``start``, ``window_s``) the ``fits`` were fitted on;
    shorter series are padded with missing windows.
    """
    if len(fits) != len(series):
        raise ValueError(f"fits and series: lengths differ ({len(fits)} vs {len(series)})")
    c = len(fits)
    rho = np.zeros(c)
    if c < 2:
        return rho
    w0, s0 = series[0].window_s, series[0].start
    for k, (f, s) in enumerate(zip(fits, series, strict=True)):
        if s.window_s != w0 or abs(s.start - s0) > 1e-6 * w0:
            raise ValueError(
                f"series[{k}]: not on the common grid (window {s.window_s} s from {s.start}; "
                f"expected {w0} s from {s0}); rebuild it with drift_windows(..., window_s={w0}, "
                "adapt=False, start=...) and refit"
            )
        if f.estimated and f.window_s != s.window_s:
            raise ValueError(f"fits[{k}]: fitted on {f.window_s} s windows, series on {w0} s")
    active = [k for k, f in enumerate(fits) if f.estimated and f.kind != "none"]
    if len(active) < 2:
        return rho
    t_len = max(s.windows for s in series)
    m = np.zeros((c, t_len))
    v = np.full((c, t_len), np.inf)
    for k in active:
        s = series[k]
        obs = s.observed
        m[k, : s.windows] = np.where(obs, s.mean - s.reference, 0.0)
        v[k, : s.windows] = s.variance
    phi = np.array([f.phi for f in fits])
    q = np.array([f.state_sd**2 for f in fits])
    walk = np.array([f.kind == "random_walk" for f in fits])
    pair_list = [(a, b) for n, a in enumerate(active) for b in active[n + 1 :]]
    pairs = np.repeat(np.array(pair_list), _R_GRID.size, axis=0)
    r = np.tile(_R_GRID, len(pair_list))
    ll = _pair_loglik(m, v, phi, q, walk, pairs, r).reshape(len(pair_list), _R_GRID.size)
    ll = np.where(np.isfinite(ll), ll, -np.inf)
    post = np.exp(ll - ll.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    r_hat = post @ _R_GRID
    # posterior precision of each pair's r (floored: a likelihood piled on the grid's edge)
    prec = 1.0 / np.maximum(post @ _R_GRID**2 - r_hat**2, 1e-4)
    pos = {k: n for n, k in enumerate(active)}
    a_idx = np.array([pos[a] for a, _ in pair_list])
    b_idx = np.array([pos[b] for _, b in pair_list])
    if len(active) == 2:
        load = np.full(2, math.sqrt(max(float(r_hat[0]), 0.0)))
    else:

        def loss(lv: np.ndarray) -> tuple[float, np.ndarray]:
            res = r_hat - lv[a_idx] * lv[b_idx]
            g = np.zeros(lv.size)
            np.add.at(g, a_idx, -2.0 * prec * res * lv[b_idx])
            np.add.at(g, b_idx, -2.0 * prec * res * lv[a_idx])
            return float(np.sum(prec * res**2) + _RIDGE * lv @ lv), g + 2.0 * _RIDGE * lv

        pooled = float(prec @ r_hat / prec.sum())
        start = np.full(len(active), math.sqrt(min(max(pooled, 0.01), 0.99)))
        res = optimize.minimize(
            loss, start, jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * len(active)
        )
        load = np.clip(res.x, 0.0, 1.0)
    rho[active] = load**2
    return rho
