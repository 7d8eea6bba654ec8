"""The scalar Kalman filter, augmented with the location mu (the diffuse likelihood): the
definition the batched likelihood is tested against, and the filtered levels the report
draws (`filtered_levels`, `log_likelihood`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .series import _LOG_2PI, KINDS, DriftFit, DriftKind, DriftSeries

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
