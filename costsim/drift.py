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
correlation phi are found by maximum likelihood (a vectorized grid, then Nelder-Mead from the best
grid points, on log q and logit phi).

The forecast side (:func:`horizon_shift`) starts from the filtered level at the pilot's *last*
window, so a pilot whose level moved is followed, and its spread grows with the horizon (a
random walk without bound, an AR(1) up to its stationary spread and the uncertainty of mu).
Drift shared between classes (:func:`common_loadings`) is a one-factor model on the classes'
state innovations, from pairwise bivariate likelihoods.

Pure functions on arrays: nothing here prints, reads files or draws random numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import optimize, signal

from .errors import FitError

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
_NM_OPTIONS = {"xatol": 1e-3, "fatol": 1e-4}
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

    chosen = grid(candidates[0])
    chosen_w, first_median = candidates[0], float(np.median(chosen[2]))
    for w in candidates:
        g = grid(w)
        if int(np.sum(g[2] >= min_count)) < min_windows:
            break  # longer windows only leave fewer
        chosen, chosen_w = g, w
        if np.median(g[2]) >= min_median:
            break
    size, idx, n = chosen
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
    m_obs, n_obs = means[observed], n[observed].astype(float)
    dispersion = 0.0
    if n_obs.size:
        weights = n_obs / n_obs.sum()
        wmean = float(weights @ m_obs)
        raw = float(weights @ (m_obs - wmean) ** 2)
        dispersion = max(raw - within * (n_obs.size - 1) / n_obs.sum(), 0.0)
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


@dataclass(frozen=True)
class _Data:
    """The observed windows of a series, centred on its reference, as the filter reads them."""

    m: list[float]  # centred window means
    v: list[float]  # sampling variances s2 / n_t
    gaps: list[int]  # windows since the previous observation (the first: since window 0)
    tail: int  # windows from the last observation to the grid's last window
    vbar: float  # median sampling variance, the scale of the q grid
    mvar: float  # variance of the observed means

    @classmethod
    def of(cls, series: DriftSeries) -> _Data:
        obs = series.observed
        idx = np.flatnonzero(obs)
        m = series.mean[idx] - series.reference
        v = series.variance[idx]
        gaps = np.diff(np.concatenate([[0], idx]))
        gaps[0] = idx[0] if idx.size else 0
        return cls(
            m=m.tolist(),
            v=v.tolist(),
            gaps=gaps.tolist(),
            tail=int(series.windows - 1 - idx[-1]) if idx.size else 0,
            vbar=float(np.median(v)) if idx.size else 1.0,
            mvar=float(np.var(m)) if idx.size > 1 else 0.0,
        )


def _geometric(phi: float, steps: float) -> float:
    """sum_{j=0}^{steps-1} phi^(2j) = (1 - phi^(2 steps)) / (1 - phi^2), stably; steps at 1."""
    if phi >= 1.0:
        return float(steps)
    if phi <= 0.0:
        return 1.0 if steps >= 1 else 0.0
    lp = 2.0 * math.log(phi)
    return math.expm1(steps * lp) / math.expm1(lp)


@dataclass(frozen=True)
class _FilterEnd:
    loglik: float
    mu: float  # GLS estimate of the location (centred scale)
    mu_var: float
    level: float  # filtered level at the grid's last window (centred scale)
    level_var: float
    level_mu_cov: float


def _filter(data: _Data, kind: DriftKind, phi: float, q: float) -> _FilterEnd:
    """Diffuse log-likelihood of the window means and the filtered level at the last window.

    Augmented Kalman filter: with x the zero-mean state (L = mu + x), the data m_t and the
    regressor 1 go through the same filter, giving innovations v_t and u_t with variance F_t;
    for a given mu the innovation is v_t - mu u_t. With S_ab = sum_t a_t b_t / F_t,
        mu_hat = S_uv / S_uu,  Var(mu) = 1 / S_uu,
        loglik = -1/2 [(n - 1) log 2pi + sum_t log F_t + log S_uu + S_vv - S_uv^2 / S_uu],
    the likelihood with mu integrated out under a flat prior (the same for every kind). At the
    end, x = x_d - mu a with variance P, so L_end = x_d + mu (1 - a).
    """
    walk = kind == "random_walk"
    if kind == "none":
        phi, q = 0.0, 0.0
    if walk:
        phi = 1.0
    x = a = 0.0
    p = 0.0 if walk or kind == "none" else q / -math.expm1(2.0 * math.log(phi))
    phi2 = phi * phi
    slogf = svv = suv = suu = 0.0
    log = math.log
    for m, v, g in zip(data.m, data.v, data.gaps, strict=True):
        if g == 1:
            x *= phi
            a *= phi
            p = phi2 * p + q
        elif g > 1:
            pg = phi**g
            x *= pg
            a *= pg
            p = pg * pg * p + q * _geometric(phi, g)
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
    if data.tail:
        pg = phi**data.tail
        x *= pg
        a *= pg
        p = pg * pg * p + q * _geometric(phi, data.tail)
    n = len(data.m)
    mu = suv / suu
    mu_var = 1.0 / suu
    loglik = -0.5 * ((n - 1) * _LOG_2PI + slogf + log(suu) + svv - suv * mu)
    b = 1.0 - a
    return _FilterEnd(loglik, mu, mu_var, x + mu * b, p + b * b * mu_var, b * mu_var)


def _loglik_grid(data: _Data, phi: np.ndarray, q: np.ndarray, walk: np.ndarray) -> np.ndarray:
    """:func:`_filter`'s log-likelihood for many (phi, q) at once (one pass over windows)."""
    phi = np.where(walk, 1.0, phi)
    lp = 2.0 * np.log(np.where(walk, 0.5, phi))
    denom = np.where(walk, 1.0, np.expm1(lp))
    x = np.zeros_like(q)
    a = np.zeros_like(q)
    p = np.where(walk, 0.0, -q / denom)
    slogf, svv, suv, suu = (np.zeros_like(q) for _ in range(4))
    phi2 = phi * phi
    for m, v, g in zip(data.m, data.v, data.gaps, strict=True):
        if g >= 1:
            pg = phi if g == 1 else phi**g
            x *= pg
            a *= pg
            geo = 1.0 if g == 1 else np.where(walk, float(g), np.expm1(g * lp) / denom)
            p = (phi2 if g == 1 else pg * pg) * p + q * geo
        f = p + v
        e = m - x
        u = 1.0 - a
        k = p / f
        x += k * e
        a += k * u
        p *= v / f
        slogf += np.log(f)
        svv += e * e / f
        suv += u * e / f
        suu += u * u / f
    n = len(data.m)
    return -0.5 * ((n - 1) * _LOG_2PI + slogf + np.log(suu) + svv - suv * suv / suu)


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
    if not data.m:
        raise ValueError("series: no observed windows")
    return _filter(data, kind, phi, q).loglik


# -------------------------------------------------------------------------------- fitting


def _expit(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _maximise(data: _Data) -> dict[DriftKind, tuple[float, float, _FilterEnd]]:
    """(phi, q, filter end) at the maximum likelihood of each kind.

    A grid over log q (and logit phi for the ar1) evaluated in one vectorized pass gives the
    starts; Nelder-Mead polishes the ar1 from its best grid point (and from a second region's
    best when nearly as likely), bounded Brent the walk's log q around its best grid point.
    """
    top = max(data.mvar, data.vbar)
    lo, hi = math.log(1e-8 * data.vbar), math.log(100.0 * top)
    logq = np.linspace(math.log(1e-5 * data.vbar), math.log(4.0 * top), _Q_GRID_POINTS)
    phis = np.array(_PHI_GRID)
    grid_phi = np.concatenate([np.repeat(phis, logq.size), np.ones(logq.size)])
    grid_q = np.exp(np.concatenate([np.tile(logq, phis.size), logq]))
    walk = np.zeros(grid_q.size, dtype=bool)
    walk[-logq.size :] = True
    ll = _loglik_grid(data, grid_phi, grid_q, walk)
    ll = np.where(np.isfinite(ll), ll, -np.inf)
    out: dict[DriftKind, tuple[float, float, _FilterEnd]] = {
        "none": (0.0, 0.0, _filter(data, "none", 0.0, 0.0))
    }

    def ar1_cost(z: np.ndarray) -> float:
        r = _filter(data, "ar1", _expit(float(z[1])), math.exp(float(z[0]))).loglik
        return -r if math.isfinite(r) else 1e300

    def walk_cost(z: float) -> float:
        r = _filter(data, "random_walk", 1.0, math.exp(z)).loglik
        return -r if math.isfinite(r) else 1e300

    n_ar1 = phis.size * logq.size
    order = np.argsort(-ll[:n_ar1])
    starts = [int(order[0])]
    for i in order[1:]:  # a second start in another region, if nearly as likely
        if ll[i] < ll[order[0]] - 2.0:
            break
        if abs(grid_phi[i] - grid_phi[order[0]]) > 0.02 or abs(int(i) - int(order[0])) > 2:
            starts.append(int(i))
            break
    best: tuple[float, np.ndarray] | None = None
    bounds = [(lo, hi), _LOGIT_PHI_BOUNDS]
    for i in starts:
        z0 = np.array([math.log(grid_q[i]), _logit(float(grid_phi[i]))])
        res = optimize.minimize(
            ar1_cost, z0, method="Nelder-Mead", bounds=bounds, options=_NM_OPTIONS
        )
        for cost, z in ((float(res.fun), res.x), (ar1_cost(z0), z0)):
            if best is None or cost < best[0]:
                best = (cost, z)
    assert best is not None
    phi, q = _expit(float(best[1][1])), math.exp(float(best[1][0]))
    out["ar1"] = (phi, q, _filter(data, "ar1", phi, q))
    j = int(np.argmax(ll[n_ar1:]))
    step = float(logq[1] - logq[0])
    bracket = (
        lo if j == 0 else float(logq[j]) - step,
        hi if j == logq.size - 1 else float(logq[j]) + step,
    )
    res = optimize.minimize_scalar(
        walk_cost, bounds=bracket, method="bounded", options={"xatol": 1e-3}
    )
    z = float(res.x) if res.fun <= walk_cost(float(logq[j])) else float(logq[j])
    q = math.exp(z)
    out["random_walk"] = (1.0, q, _filter(data, "random_walk", 1.0, q))
    return out


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
    cw = signal.lfilter([1.0], [1.0, -phi], w[::-1])[::-1]
    lead = _geometric(phi, gap_windows + 1) - 1.0  # sum_{j=1}^{gap} phi^(2j)
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


def _pair_loglik(
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
            if not obs.any():
                continue
            var = np.where(obs, v[cls, t], 1.0)
            pc, pd = (p11, p12) if first else (p12, p22)  # P h: the column of the observed state
            f = np.where(obs, (pc if first else pd) + var, 1.0)
            k1 = np.where(obs, pc / f, 0.0)
            k2 = np.where(obs, pd / f, 0.0)
            e = m[cls, t] - (x1 if first else x2)
            u1 = (1.0 - a11) if first else -a21
            u2 = -a12 if first else (1.0 - a22)
            x1, x2 = x1 + k1 * e, x2 + k2 * e
            a11, a12 = a11 + k1 * u1, a12 + k1 * u2
            a21, a22 = a21 + k2 * u1, a22 + k2 * u2
            # P - K h'P, h'P = (pc, pd)
            p11, p12, p22 = p11 - k1 * pc, p12 - k1 * pd, p22 - k2 * pd
            wo = obs / f
            slogf += np.where(obs, np.log(f), 0.0)
            svv += wo * e * e
            s1 += wo * u1 * e
            s2 += wo * u2 * e
            s11 += wo * u1 * u1
            s12 += wo * u1 * u2
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
