"""The batched drift fit (issue 11) against the Nelder-Mead fit it replaced.

`drift.fit_state_space` now evaluates the diffuse likelihood of many (phi, q) at once -- the
state's precision is tridiagonal, so one LAPACK call factorises the systems of every candidate
laid along one diagonal, without a loop over windows -- and climbs from the grid's best points
by Newton's method on a finite-difference stencil, all starts in one evaluation per step. This
file keeps a frozen copy of the previous code (the scalar Kalman filter, the grid, Nelder-Mead
on (log q, logit phi) and bounded Brent for the walk) as the reference, and checks on seeded
series (random walks, AR(1)s, no drift, a step; 8 to 336 windows; missing windows, a missing
first window, long gaps, sparse classes; the per-request pilots of ``test_drift.py``) that

* the chosen kind is the same;
* no kind's log-likelihood is lower (to 1e-9 of it: the two evaluations' rounding), and where
  the parameters differ by more than 1e-5 the new likelihood is at least as high: the new
  optimiser goes to the maximum, Nelder-Mead stopped within its tolerances (``xatol`` 1e-3 on
  (log q, logit phi), ``fatol`` 1e-4) or in a worse local maximum;
* the new fit is a maximum: no neighbour 1e-3 away on (log q, logit phi) inside the bounds is
  more likely, by the scalar Kalman filter;
* the batched likelihood and filter end equal the Kalman filter's; the filtered levels that
  the HTML report draws equal the report's former copy of the recursion; the pair likelihood
  of the shared drift, now in blocks with a shortcut for fully observed windows, equals its
  former self.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, fields

import numpy as np
import pytest
from scipy import optimize

from costsim.errors import FitError
from costsim.model.drift import (
    KINDS,
    MIN_WINDOWS,
    UNIT_ROOT_LR,
    DriftFit,
    DriftKind,
    DriftSeries,
    batch,
    default_drift,
    drift_windows,
    filtered_levels,
    fit_state_space,
    kalman,
    log_likelihood,
    shared,
)

HOUR = 3600.0
NOISE_VAR = 0.64  # per-request variance of log unit cost about the level
LL_TOL = 1e-9  # relative: the batched and the scalar likelihoods differ by about 1e-10
PARAM_RTOL = 1e-5

# ---------------------------------------------------------------------------------------------
# The reference: drift.py's fit before the batched likelihood (frozen copy)
# ---------------------------------------------------------------------------------------------

_LOG_2PI = math.log(2.0 * math.pi)
_PARAMS = {"none": 0, "ar1": 2, "random_walk": 1}
_LOGIT_PHI_BOUNDS = (-6.0, 9.2)
_PHI_GRID = (0.3, 0.6, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
_Q_GRID_POINTS = 20
_NM_OPTIONS = {"xatol": 1e-3, "fatol": 1e-4}


@dataclass(frozen=True)
class RefData:
    """The observed windows of a series, centred on its reference, as the filter reads them."""

    m: list[float]  # centred window means
    v: list[float]  # sampling variances s2 / n_t
    gaps: list[int]  # windows since the previous observation (the first: since window 0)
    tail: int  # windows from the last observation to the grid's last window
    vbar: float  # median sampling variance, the scale of the q grid
    mvar: float  # variance of the observed means

    @classmethod
    def of(cls, series: DriftSeries) -> RefData:
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


def ref_geometric(phi: float, steps: float) -> float:
    """sum_{j=0}^{steps-1} phi^(2j) = (1 - phi^(2 steps)) / (1 - phi^2), stably; steps at 1."""
    if phi >= 1.0:
        return float(steps)
    if phi <= 0.0:
        return 1.0 if steps >= 1 else 0.0
    lp = 2.0 * math.log(phi)
    return math.expm1(steps * lp) / math.expm1(lp)


@dataclass(frozen=True)
class RefEnd:
    loglik: float
    mu: float  # GLS estimate of the location (centred scale)
    mu_var: float
    level: float  # filtered level at the grid's last window (centred scale)
    level_var: float
    level_mu_cov: float


def ref_filter(data: RefData, kind: DriftKind, phi: float, q: float) -> RefEnd:
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
            p = pg * pg * p + q * ref_geometric(phi, g)
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
        p = pg * pg * p + q * ref_geometric(phi, data.tail)
    n = len(data.m)
    mu = suv / suu
    mu_var = 1.0 / suu
    loglik = -0.5 * ((n - 1) * _LOG_2PI + slogf + log(suu) + svv - suv * mu)
    b = 1.0 - a
    return RefEnd(loglik, mu, mu_var, x + mu * b, p + b * b * mu_var, b * mu_var)


def ref_loglik_grid(data: RefData, phi: np.ndarray, q: np.ndarray, walk: np.ndarray) -> np.ndarray:
    """:func:`ref_filter`'s log-likelihood for many (phi, q) at once (one pass over windows)."""
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


def ref_expit(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def ref_logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def ref_maximise(data: RefData) -> dict[DriftKind, tuple[float, float, RefEnd]]:
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
    ll = ref_loglik_grid(data, grid_phi, grid_q, walk)
    ll = np.where(np.isfinite(ll), ll, -np.inf)
    out: dict[DriftKind, tuple[float, float, RefEnd]] = {
        "none": (0.0, 0.0, ref_filter(data, "none", 0.0, 0.0))
    }

    def ar1_cost(z: np.ndarray) -> float:
        r = ref_filter(data, "ar1", ref_expit(float(z[1])), math.exp(float(z[0]))).loglik
        return -r if math.isfinite(r) else 1e300

    def walk_cost(z: float) -> float:
        r = ref_filter(data, "random_walk", 1.0, math.exp(z)).loglik
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
        z0 = np.array([math.log(grid_q[i]), ref_logit(float(grid_phi[i]))])
        res = optimize.minimize(
            ar1_cost, z0, method="Nelder-Mead", bounds=bounds, options=_NM_OPTIONS
        )
        for cost, z in ((float(res.fun), res.x), (ar1_cost(z0), z0)):
            if best is None or cost < best[0]:
                best = (cost, z)
    assert best is not None
    phi, q = ref_expit(float(best[1][1])), math.exp(float(best[1][0]))
    out["ar1"] = (phi, q, ref_filter(data, "ar1", phi, q))
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
    out["random_walk"] = (1.0, q, ref_filter(data, "random_walk", 1.0, q))
    return out


def ref_fit_state_space(series: DriftSeries, kinds: Sequence[DriftKind] = KINDS) -> DriftFit:
    """drift.fit_state_space before the batched likelihood (pilots of MIN_WINDOWS or more)."""
    observed = int(series.observed.sum())
    assert observed >= MIN_WINDOWS
    data = RefData.of(series)
    fits = ref_maximise(data)
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


def ref_pair_loglik(
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
    skipped, and both locations are integrated out as in :func:`ref_filter`:
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


def ref_filtered_level(
    mean: np.ndarray, variance: np.ndarray, observed: np.ndarray, fit: DriftFit
) -> tuple[np.ndarray, np.ndarray]:
    """The HTML report's former copy of the filter (costsim.report.diagnostics._filtered_level)."""
    t_len = mean.size
    mu_c = fit.mu - fit.reference
    if not fit.estimated or fit.kind == "none":
        return np.full(t_len, fit.mu), np.full(t_len, fit.mu_var)
    walk = fit.kind == "random_walk"
    phi = 1.0 if walk else fit.phi
    q = fit.state_sd**2
    x = a = 0.0
    p = 0.0 if walk else q / -math.expm1(2.0 * math.log(phi))
    level = np.empty(t_len)
    var = np.empty(t_len)
    for t in range(t_len):
        if t:
            x *= phi
            a *= phi
            p = phi * phi * p + q
        if observed[t]:
            v = float(variance[t])
            f = p + v
            k = p / f
            x += k * (float(mean[t]) - fit.reference - x)
            a += k * (1.0 - a)
            p *= v / f
        b = 1.0 - a
        level[t] = fit.reference + x + mu_c * b
        var[t] = p + b * b * fit.mu_var
    return level, var


# ---------------------------------------------------------------------------------------------
# Seeded series
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    truth: str  # none, random_walk, ar1 or step
    windows: int
    sd: float = 0.02  # innovation sd of the level per window (the step's height: 10 sd)
    phi: float = 0.9
    rate: float = 200.0  # requests per window, on average
    missing: float = 0.0  # share of windows without requests
    first_missing: bool = False
    gap: int = 0  # windows without requests in the middle
    kinds: tuple[DriftKind, ...] = KINDS

    @property
    def name(self) -> str:
        """The truth, the windows and whatever differs from the defaults."""
        extra = [
            f"{f.name}={getattr(self, f.name)}"
            for f in fields(self)
            if f.default is not MISSING and getattr(self, f.name) != f.default
        ]
        return "-".join([self.truth, str(self.windows), *extra])


def _level(case: Case, rng: np.random.Generator) -> np.ndarray:
    t = case.windows
    if case.truth == "random_walk":
        return np.cumsum(case.sd * rng.standard_normal(t))
    if case.truth == "ar1":
        x = np.empty(t)
        x[0] = case.sd / math.sqrt(1.0 - case.phi**2) * rng.standard_normal()
        for i in range(1, t):
            x[i] = case.phi * x[i - 1] + case.sd * rng.standard_normal()
        return x
    if case.truth == "step":
        return np.where(np.arange(t) >= t // 2, 10.0 * case.sd, 0.0)
    return np.zeros(t)


def make_series(case: Case, seed: int) -> DriftSeries:
    """Window means of log unit cost about a known level: Poisson requests per window (a daily
    cycle about ``rate``), per-request noise of variance NOISE_VAR; windows with fewer than
    5 requests are missing."""
    rng = np.random.default_rng(np.random.SeedSequence([20261128, seed]))
    t = np.arange(case.windows)
    count = rng.poisson(case.rate * (1.0 + 0.8 * np.sin(2.0 * np.pi * t / 24.0)))
    count[rng.random(case.windows) < case.missing] = 0
    if case.first_missing:
        count[0] = 0
    if case.gap:
        mid = case.windows // 2
        count[mid : mid + case.gap] = 0
    mean = (
        _level(case, rng)
        - 4.0
        + rng.standard_normal(case.windows) * np.sqrt(NOISE_VAR / np.maximum(count, 1))
    )
    reference = float(count @ mean / count.sum())
    return DriftSeries(
        HOUR, 0.0, np.where(count >= 5, mean, np.nan), count, NOISE_VAR, reference, 0.0
    )


CASES = [
    *(
        Case(truth, windows, sd)
        for truth in ("none", "random_walk", "ar1", "step")
        for windows, sd in ((8, 0.05), (14, 0.02), (30, 0.01), (100, 0.005), (336, 0.01))
    ),
    Case("ar1", 200, 0.03, phi=0.5),
    Case("ar1", 150, 0.01, phi=0.98),
    Case("random_walk", 60, 0.2, rate=2000.0),  # a strong drift: q far above s2 / n
    Case("random_walk", 80, 0.001),  # barely any
    Case("random_walk", 60, 0.02, missing=0.2),
    Case("ar1", 60, 0.03, first_missing=True),
    Case("none", 40, gap=10),
    Case("random_walk", 48, 0.03, first_missing=True, gap=6),
    Case("random_walk", 120, 0.02, rate=8.0),  # sparse: many windows missing
    Case("none", 120, rate=8.0),
    Case("random_walk", 60, 0.02, kinds=("random_walk",)),  # the shared drift's refit
    Case("ar1", 60, 0.02, kinds=("ar1",)),
]


def _requests_series(per_hour: float, seed: int) -> DriftSeries:
    """test_drift.py's pilots: 14 days of Poisson requests an hour, lognormal about a walk."""
    rng = np.random.default_rng(np.random.SeedSequence([2032, seed]))
    level = np.cumsum(0.01 * rng.standard_normal(14 * 24))
    n = rng.poisson(per_hour, level.size)
    hour = np.repeat(np.arange(level.size), n)
    ts = 1.7e9 + HOUR * (hour + rng.random(hour.size))
    cost = 0.002 * np.exp(level[hour] + 0.8 * rng.standard_normal(hour.size))
    return drift_windows(ts, cost, start=1.7e9, end=1.7e9 + level.size * HOUR)


# ---------------------------------------------------------------------------------------------
# The fit
# ---------------------------------------------------------------------------------------------


def _relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def _assert_maximum(series: DriftSeries, fit: DriftFit) -> None:
    """No neighbour 1e-3 away on (log q, logit phi), inside the fit's bounds, is more likely."""
    if fit.kind == "none":
        return
    data = kalman._Data.of(series)
    lo = math.log(1e-8 * data.vbar), _LOGIT_PHI_BOUNDS[0]
    hi = math.log(100.0 * max(data.mvar, data.vbar)), _LOGIT_PHI_BOUNDS[1]
    logit = math.log(fit.phi / (1.0 - fit.phi)) if fit.kind == "ar1" else 0.0
    z = np.array([2.0 * math.log(fit.state_sd), logit])
    at = log_likelihood(series, fit.kind, fit.phi, fit.state_sd**2)
    dims = 2 if fit.kind == "ar1" else 1
    for k in range(dims):
        for h in (-1e-3, 1e-3):
            y = z.copy()
            y[k] += h
            if not lo[k] <= y[k] <= hi[k]:
                continue
            phi = 1.0 / (1.0 + math.exp(-y[1])) if fit.kind == "ar1" else 1.0
            near = log_likelihood(series, fit.kind, phi, math.exp(y[0]))
            assert near <= at + LL_TOL * max(1.0, abs(at)), (k, h, near - at)


def _assert_agree(series: DriftSeries, kinds: Sequence[DriftKind]) -> None:
    old, new = ref_fit_state_space(series, kinds), fit_state_space(series, kinds)
    assert new.kind == old.kind, (old.loglik, new.loglik)
    for k in KINDS:
        tol = LL_TOL * max(1.0, abs(old.loglik[k]))
        assert new.loglik[k] >= old.loglik[k] - tol, (k, new.loglik[k] - old.loglik[k])
    scale = math.sqrt(old.mu_var * old.level_end_var)  # of the covariance, often near 0
    differ = [
        f
        for f in ("mu", "mu_var", "phi", "state_sd", "level_end", "level_end_var")
        if _relative(getattr(old, f), getattr(new, f)) > PARAM_RTOL
    ] + (["level_mu_cov"] if abs(old.level_mu_cov - new.level_mu_cov) > PARAM_RTOL * scale else [])
    if differ:  # the optimisers stopped apart: the new one no lower
        tol = LL_TOL * max(1.0, abs(old.loglik[old.kind]))
        assert new.loglik[new.kind] >= old.loglik[old.kind] - tol, differ
    _assert_maximum(series, new)
    assert (new.reference, new.dispersion, new.observed) == (
        old.reference,
        old.dispersion,
        old.observed,
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_fit_agrees_with_the_nelder_mead_reference(case: Case) -> None:
    series = make_series(case, CASES.index(case))
    assert int(series.observed.sum()) >= MIN_WINDOWS
    _assert_agree(series, case.kinds)


@pytest.mark.parametrize("per_hour", [400.0, 3.0])
def test_fit_agrees_on_test_drifts_pilots(per_hour: float) -> None:
    _assert_agree(_requests_series(per_hour, 0), KINDS)


# ---------------------------------------------------------------------------------------------
# The pieces
# ---------------------------------------------------------------------------------------------


PIECES = [
    Case("ar1", 8, 0.05),
    Case("random_walk", 30, 0.01),
    Case("step", 336, 0.01),
    Case("random_walk", 60, missing=0.2),
    Case("ar1", 60, 0.03, first_missing=True),
    Case("random_walk", 48, 0.03, first_missing=True, gap=6),
]


@pytest.mark.parametrize("case", PIECES, ids=lambda c: c.name)
def test_batched_likelihood_is_the_kalman_filter(case: Case) -> None:
    series = make_series(case, PIECES.index(case))
    data = kalman._Data.of(series)
    rng = np.random.default_rng(np.random.SeedSequence([2035, PIECES.index(case)]))
    phi = np.concatenate([rng.uniform(0.0025, 0.9999, 30), np.ones(10), [0.0]])
    q = np.concatenate([data.vbar * np.exp(rng.uniform(-18.0, 6.0, 40)), [0.0]])
    walk = np.arange(phi.size) >= 30
    walk[-1] = False
    batched = batch._batch(data, phi, q, walk)
    for i in range(phi.size):
        kind = "none" if q[i] == 0 else "random_walk" if walk[i] else "ar1"
        want = kalman._filter(data, kind, float(phi[i]), float(q[i]))
        got = batched.end(i, data.tail)
        assert got.loglik == pytest.approx(want.loglik, rel=LL_TOL, abs=LL_TOL)
        assert (got.mu, got.level) == pytest.approx((want.mu, want.level), abs=1e-8)
        assert (got.mu_var, got.level_var, got.level_mu_cov) == pytest.approx(
            (want.mu_var, want.level_var, want.level_mu_cov), rel=1e-7, abs=1e-14
        )


@pytest.mark.parametrize("case", PIECES[2:], ids=lambda c: c.name)
def test_filtered_levels_are_the_reports_former_recursion(case: Case) -> None:
    series = make_series(case, PIECES.index(case))
    fits = [fit_state_space(series, (k,)) for k in KINDS]
    fits.append(default_drift(series.window_s, series.reference, "a test"))
    for fit in fits:
        level, var = filtered_levels(series, fit)
        old = ref_filtered_level(series.mean, series.variance, series.observed, fit)
        np.testing.assert_allclose(level, old[0], rtol=0, atol=1e-10)
        np.testing.assert_allclose(var, old[1], rtol=1e-9, atol=1e-15)
        if fit.estimated:
            assert level[-1] == pytest.approx(fit.level_end, abs=1e-8)
            assert var[-1] == pytest.approx(fit.level_end_var, rel=1e-6)


def test_pair_likelihood_in_blocks_is_the_frozen_filter() -> None:
    rng = np.random.default_rng(np.random.SeedSequence(2036))
    series = [make_series(Case("random_walk", 30, missing=0.3), 40 + k) for k in range(4)]
    m = np.vstack([np.where(s.observed, s.mean - s.reference, 0.0) for s in series])
    v = np.vstack([s.variance for s in series])
    v[:, 5] = np.inf  # a window no class observed
    phi = np.array([0.9, 1.0, 0.7, 1.0])
    walk = phi == 1.0
    q = np.array([3e-3, 1e-3, 2e-3, 5e-4])
    pairs = np.array([(a, b) for a in range(4) for b in range(a + 1, 4)])
    pairs = pairs[rng.integers(0, len(pairs), 2 * shared._PAIR_BLOCK + 100)]  # three blocks
    r = rng.uniform(-0.99, 0.99, len(pairs))
    got = shared._pair_loglik(m, v, phi, q, walk, pairs, r)
    np.testing.assert_allclose(got, ref_pair_loglik(m, v, phi, q, walk, pairs, r), rtol=1e-10)
