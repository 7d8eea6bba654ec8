"""What the fit and forecast pictures show, computed once (issue 12): pure numbers, no drawing.

`fit_diagnostics` turns a pilot log and the model fitted to it into a `FitDiagnostics`: per
class, the survival curve of the unit cost with the spliced fit over it, the tail QQ points with
a band from the parameter draws, the tail shape across the threshold candidates, and the drift
windows with the filtered level; for the whole pilot, the share of requests against the share of
cost per class and the concentration curve. `daily_fan` and `class_contributions` do the same
for a `Forecast`. `costsim.report.html` only draws these objects.

Everything is deterministic: the same log and model give the same numbers. Work is bounded: the
survival curve counts rows against a fixed grid (one pass), the QQ points and candidates come
from the fit's own diagnostics (at most ``tail.K_MAX`` exceedances a class), and the
concentration curve sorts at most ``CONCENTRATION_ROWS`` costs (a fixed-seed subsample above).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..logs import PilotLog
from ..model.drift import DriftFit, filtered_levels
from ..model.fit import ClassFit, FittedModel, QuantityFit, drift_series, quantity_values
from ..model.tail import CI_LEVEL, K_MAX, profile_draws
from ..simulate.forecast import Forecast, quantile_with_error

__all__ = [
    "BAND_LEVEL",
    "CONCENTRATION_GRID",
    "CONCENTRATION_ROWS",
    "SURVIVAL_POINTS",
    "ClassDiagnostics",
    "Concentration",
    "Contributions",
    "DriftTrack",
    "FanData",
    "FitDiagnostics",
    "Shares",
    "SurvivalCurve",
    "TailQQ",
    "ThresholdStability",
    "class_contributions",
    "daily_fan",
    "fit_diagnostics",
]

BAND_LEVEL = 0.90  # pointwise band of the tail QQ plot, from the fit's parameter draws
SURVIVAL_POINTS = 160  # points of the log grid the survival curves are evaluated on
SURVIVAL_REACH = 3.0  # the fitted curve is drawn up to this many times the largest value
CONCENTRATION_ROWS = 1 << 21  # costs sorted for the concentration curve (subsample above)
#: shares of requests (the costliest x) the concentration curve is evaluated at
CONCENTRATION_GRID: tuple[float, ...] = tuple(
    float(v)
    for v in np.unique(
        np.concatenate([np.geomspace(1e-4, 1.0, 49), [0.001, 0.01, 0.05, 0.1, 0.2, 0.5]])
    )
)
_SEED_KEY = 12  # spawn key of the subsample's stream (issue 12), apart from the fit's streams
_FAN_LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SurvivalCurve:
    """P(X > x) on a log grid ``x``: the pilot's (``empirical``, over the class's positive
    values) and the spliced fit's (``fitted``); ``threshold`` is where the GPD tail starts
    (None without a tail), ``tail_prob`` its mass, ``zero_share`` the share of rows at 0 (not
    on a log axis), ``cap`` the tail's upper bound."""

    x: np.ndarray
    empirical: np.ndarray
    fitted: np.ndarray
    threshold: float | None
    tail_prob: float
    zero_share: float
    cap: float | None
    n: int


@dataclass(frozen=True)
class TailQQ:
    """Exceedance quantiles, the pilot's against the fit's, at plotting positions ``prob``;
    ``lower`` / ``upper``: the pointwise ``level`` band of the fitted quantile over the fit's
    (xi, sigma) draws."""

    prob: np.ndarray
    empirical: np.ndarray
    fitted: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: float
    threshold: float
    exceedances: int


@dataclass(frozen=True)
class ThresholdStability:
    """The tail shape fitted at each candidate threshold (lowest first) with its own profile
    likelihood interval (``level``), and the threshold the fit chose, with the model's shape
    ``model_xi`` and interval ``xi_ci`` (which also carries the threshold's uncertainty)."""

    threshold: np.ndarray
    exceedances: np.ndarray
    xi: np.ndarray
    xi_lower: np.ndarray
    xi_upper: np.ndarray
    p_value: np.ndarray
    level: float
    chosen: float
    model_xi: float
    xi_ci: tuple[float, float] | None
    method: str


@dataclass(frozen=True)
class DriftTrack:
    """The class's drift windows: ``start`` (epoch seconds) of each window of ``window_s``, the
    mean log unit cost ``mean`` (NaN where a window holds too few requests), its sampling sd
    ``sd`` and request ``count``; ``level`` / ``level_sd``: the fitted state-space model's
    filtered log level (the long-run level ``mu`` when the drift is the default)."""

    start: np.ndarray
    window_s: float
    mean: np.ndarray
    sd: np.ndarray
    count: np.ndarray
    level: np.ndarray
    level_sd: np.ndarray
    kind: str
    estimated: bool
    reference: float
    measure: str  # "cost_usd" or "tokens": what the unit cost is
    note: str | None


@dataclass(frozen=True)
class ClassDiagnostics:
    """One class's pictures; a part is None when it cannot be drawn, ``missing`` says why."""

    name: str
    quantity: str
    survival: SurvivalCurve | None
    tail_qq: TailQQ | None
    stability: ThresholdStability | None
    drift: DriftTrack | None
    missing: dict[str, str]


@dataclass(frozen=True)
class Shares:
    """Per class (in the model's order): share of requests and share of cost (None without a
    cost column), as `dashboard.summarize_fit` computes them."""

    classes: tuple[str, ...]
    request_share: np.ndarray
    cost_share: np.ndarray | None


@dataclass(frozen=True)
class Concentration:
    """Share of the pilot's cost carried by the costliest ``top`` share of its requests (the
    ceil(top * N) costliest), on `CONCENTRATION_GRID`; ``sampled`` rows when subsampled."""

    top: np.ndarray
    cost_share: np.ndarray
    n: int
    sampled: int | None


@dataclass(frozen=True)
class FitDiagnostics:
    source: str
    classes: tuple[ClassDiagnostics, ...]
    shares: Shares
    concentration: Concentration | None
    notes: tuple[str, ...]


@dataclass(frozen=True)
class FanData:
    """Cost per day over the horizon: quantiles over trials (``levels``) of each day's cost,
    rows in the order of ``levels``, and the naive linear estimate per day."""

    day: np.ndarray  # 1, 2, ... (days since the horizon's start, ending that day)
    levels: tuple[float, ...]
    quantiles: np.ndarray  # (levels, days)
    naive: np.ndarray  # (days,)

    def at(self, level: float) -> np.ndarray:
        return np.asarray(self.quantiles[self.levels.index(level)])


@dataclass(frozen=True)
class Contributions:
    """Each class's cost in the trials near the forecast's P50 and near its P95 (the trials
    inside the quantile's 95% order-statistic interval), its mean and naive cost."""

    classes: tuple[str, ...]
    naive: np.ndarray
    mean: np.ndarray
    at_p50: np.ndarray
    at_p95: np.ndarray


# ---------------------------------------------------------------------------------------------
# Fit
# ---------------------------------------------------------------------------------------------


def _tail_quantity(c: ClassFit) -> str:
    """The quantity the pictures show: the unit cost, else what the dashboard's tail shows."""
    return "cost_usd" if "cost_usd" in c.quantities else next(iter(c.quantities))


def fit_diagnostics(log: PilotLog, model: FittedModel) -> FitDiagnostics:
    """Every number the fit's pictures show, from the pilot log and the model fitted to it."""
    counts = np.bincount(log.class_index, minlength=len(log.classes))
    order = np.argsort(log.class_index, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    rows_of = {name: order[bounds[i] : bounds[i + 1]] for i, name in enumerate(log.classes)}
    notes: list[str] = []
    classes = []
    for name, c in model.classes.items():
        rows = rows_of.get(name)
        if rows is None:
            notes.append(f"class '{name}' is not in the log: no pictures")
            continue
        classes.append(_class_diagnostics(log, c, rows))
    concentration = _concentration(log, model.seed)
    if concentration is not None and concentration.sampled is not None:
        notes.append(
            f"concentration curve from a subsample of {concentration.sampled:,} of "
            f"{concentration.n:,} requests (fixed seed)"
        )
    return FitDiagnostics(
        source=model.source,
        classes=tuple(classes),
        shares=_shares(model),
        concentration=concentration,
        notes=tuple(notes),
    )


def _class_diagnostics(log: PilotLog, c: ClassFit, rows: np.ndarray) -> ClassDiagnostics:
    q = _tail_quantity(c)
    qf = c.quantities[q]
    values = quantity_values(log, q)
    missing: dict[str, str] = {}
    survival = qq = stability = None
    if values is None:
        missing["distribution"] = f"the log has no {q} column"
    else:
        x = np.asarray(values[rows], dtype=float)
        survival = _survival(x, qf)
        if survival is None:
            missing["distribution"] = f"no positive {q} values to draw on a log scale"
        stability, why = _stability(x, qf)
        if why:
            missing["threshold-stability"] = why
    qq, why = _tail_qq(qf)
    if why:
        missing["tail-qq"] = why
    drift, why = _drift_track(log, rows, c.drift)
    if why:
        missing["drift"] = why
    return ClassDiagnostics(c.name, q, survival, qq, stability, drift, missing)


def _survival(x: np.ndarray, qf: QuantityFit) -> SurvivalCurve | None:
    """Empirical and fitted P(X > x) on a log grid from the smallest positive value to
    `SURVIVAL_REACH` times the largest (the cap, if nearer). One counting pass over the rows."""
    n = x.size
    positive = x[x > 0]
    if n == 0 or positive.size == 0:
        return None
    lo, top = float(positive.min()), float(positive.max())
    dist = qf.dist
    hi = top * SURVIVAL_REACH if dist.has_tail else top
    if dist.cap is not None:
        hi = min(hi, dist.cap)
    hi = max(hi, top)
    grid = np.geomspace(lo, hi, SURVIVAL_POINTS) if hi > lo else np.array([lo])
    # rows at or below each grid point: searchsorted of the rows into the grid, then counts
    idx = np.searchsorted(grid, x, side="left")  # grid[idx-1] < x <= grid[idx]
    below = np.cumsum(np.bincount(idx, minlength=grid.size + 1))[: grid.size]
    empirical = 1.0 - below / n
    fitted = np.clip(1.0 - dist.cdf(grid), 0.0, 1.0)
    return SurvivalCurve(
        x=grid,
        empirical=empirical,
        fitted=fitted,
        threshold=dist.threshold if dist.has_tail else None,
        tail_prob=float(dist.tail_prob),
        zero_share=float(np.count_nonzero(x <= 0) / n),
        cap=dist.cap if dist.has_tail else None,
        n=n,
    )


def _tail_qq(qf: QuantityFit) -> tuple[TailQQ | None, str]:
    """The fit's own QQ points (`fit._tail_qq`) and a band: each plotting position's fitted
    quantile under every (xi, sigma) draw, its (1 -+ BAND_LEVEL) / 2 quantiles."""
    points = qf.diagnostics.get("tail_qq")
    if qf.tail_source == "none" or not qf.dist.has_tail:
        return None, "no GPD tail was fitted to this class (empirical distribution)"
    if not points:
        return None, "the model holds no tail QQ points"
    arr = np.asarray(points, dtype=float)
    prob, emp, fitted = arr[:, 0], arr[:, 1], arr[:, 2]
    lower, upper = fitted.copy(), fitted.copy()
    if qf.xi_draws is not None and qf.sigma_draws is not None and qf.xi_draws.size:
        d = qf.xi_draws.size
        qs = qf.dist.ppf_params(
            np.repeat(prob, d), np.tile(qf.xi_draws, prob.size), np.tile(qf.sigma_draws, prob.size)
        ).reshape(prob.size, d)
        lo_hi = np.quantile(qs, [(1 - BAND_LEVEL) / 2, (1 + BAND_LEVEL) / 2], axis=1)
        lower, upper = lo_hi[0], lo_hi[1]
    return (
        TailQQ(
            prob=prob,
            empirical=emp,
            fitted=fitted,
            lower=lower,
            upper=upper,
            level=BAND_LEVEL,
            threshold=qf.dist.threshold,
            exceedances=int(qf.diagnostics.get("exceedances", 0)),
        ),
        "",
    )


def _stability(x: np.ndarray, qf: QuantityFit) -> tuple[ThresholdStability | None, str]:
    """xi at each candidate threshold with its profile-likelihood interval, refitted on the
    candidate's own exceedances (the fit keeps only the point estimates)."""
    cands = qf.diagnostics.get("candidates") or []
    if qf.tail_source == "borrowed":
        return None, "the tail shape is borrowed from the pooled classes (too few rows)"
    if not cands:
        return None, "no threshold candidates (too few rows for a tail of its own)"
    n = x.size
    k_top = min(n, K_MAX + 1)
    top = np.sort(np.partition(x, n - k_top)[n - k_top :]) if k_top < n else np.sort(x)
    th, ks, xis, los, his, ps = [], [], [], [], [], []
    for cand in cands:
        u = float(cand["threshold"])
        y = top[top > u] - u
        if y.size < 2:
            continue
        # the interval does not depend on the draws; one draw from a fixed stream is discarded
        (lo, hi), _, _ = profile_draws(
            y, float(cand["xi"]), float(cand["sigma"]), np.random.default_rng(0), n_draws=1
        )
        th.append(u)
        ks.append(int(cand["k"]))
        xis.append(float(cand["xi"]))
        los.append(lo)
        his.append(hi)
        ps.append(float(cand["p_value"]))
    if not th:
        return None, "the candidates' exceedances are not in the log"
    return (
        ThresholdStability(
            threshold=np.array(th),
            exceedances=np.array(ks, dtype=np.int64),
            xi=np.array(xis),
            xi_lower=np.array(los),
            xi_upper=np.array(his),
            p_value=np.array(ps),
            level=CI_LEVEL,
            chosen=float(qf.diagnostics.get("threshold", qf.dist.threshold)),
            model_xi=float(qf.dist.xi),
            xi_ci=qf.xi_ci,
            method=str(qf.diagnostics.get("threshold_method", "")),
        ),
        "",
    )


def _unit_measure(log: PilotLog, rows: np.ndarray) -> tuple[np.ndarray | None, str]:
    """The unit cost the drift was fitted on (as `fit` does): cost, else input + output."""
    if log.cost is not None:
        return log.cost[rows], "cost_usd"
    parts = [a[rows] for a in (log.input_tokens, log.output_tokens) if a is not None]
    return (np.sum(parts, axis=0), "tokens") if parts else (None, "")


def _drift_track(log: PilotLog, rows: np.ndarray, fit: DriftFit) -> tuple[DriftTrack | None, str]:
    """The drift windows on the fitted window length and the filtered level of the fitted
    state-space model (see `costsim.model.drift`), window by window."""
    if log.timestamp is None:
        return None, "the log has no timestamps: no drift windows"
    value, measure = _unit_measure(log, rows)
    if value is None or not np.any(value > 0):
        return None, "no positive unit costs to take the log of"
    series = drift_series(log, rows, fit.window_s)  # the fit's own grid and floor
    if series is None:
        return None, "no positive unit costs to take the log of"
    observed = series.observed
    with np.errstate(invalid="ignore"):
        sd = np.where(observed, np.sqrt(series.variance), np.nan)
    level, level_var = filtered_levels(series, fit)
    return (
        DriftTrack(
            start=series.start + series.window_s * np.arange(series.windows, dtype=float),
            window_s=series.window_s,
            mean=np.asarray(series.mean, dtype=float),
            sd=sd,
            count=np.asarray(series.count),
            level=level,
            level_sd=np.sqrt(np.maximum(level_var, 0.0)),
            kind=fit.kind,
            estimated=fit.estimated,
            reference=fit.reference,
            measure=measure,
            note=fit.note,
        ),
        "",
    )


def _shares(model: FittedModel) -> Shares:
    names = tuple(model.classes)
    req = np.array([model.classes[n].share for n in names], dtype=float)
    totals = [model.classes[n].cost_total for n in names]
    cost: np.ndarray | None = None
    if any(t is not None for t in totals):
        total = sum(t or 0.0 for t in totals)
        cost = np.array([(t or 0.0) / total if total else 0.0 for t in totals], dtype=float)
    return Shares(names, req, cost)


def _concentration(log: PilotLog, seed: int) -> Concentration | None:
    """Share of cost in the costliest ceil(x N) requests, x on `CONCENTRATION_GRID`."""
    if log.cost is None:
        return None
    cost = np.asarray(log.cost, dtype=float)
    n = cost.size
    sampled = None
    if n > CONCENTRATION_ROWS:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_SEED_KEY,)))
        cost = cost[rng.choice(n, CONCENTRATION_ROWS, replace=False)]
        sampled = CONCENTRATION_ROWS
    total = float(cost.sum())
    if n == 0 or total <= 0:
        return None
    desc = np.sort(cost)[::-1]
    cum = np.cumsum(desc)
    top = np.array(CONCENTRATION_GRID)
    k = np.clip(np.ceil(top * desc.size).astype(np.int64), 1, desc.size)
    return Concentration(top=top, cost_share=cum[k - 1] / total, n=n, sampled=sampled)


# ---------------------------------------------------------------------------------------------
# Forecast
# ---------------------------------------------------------------------------------------------


def daily_fan(fc: Forecast) -> FanData | None:
    """Quantiles over trials of the cost of each day (``Forecast.daily``, trials x days) and the
    naive estimate per day (``Forecast.daily_naive``); None when the forecast has no daily costs.
    """
    daily: Any = getattr(fc, "daily", None)
    naive: Any = getattr(fc, "daily_naive", None)
    if daily is None or naive is None:
        return None
    d = np.asarray(daily, dtype=float)
    nv = np.asarray(naive, dtype=float).reshape(-1)
    if d.ndim != 2 or d.shape[1] == 0 or d.shape[0] == 0 or nv.size != d.shape[1]:
        return None
    qs = np.quantile(d, _FAN_LEVELS, axis=0)
    return FanData(
        day=np.arange(1, d.shape[1] + 1, dtype=np.int64),
        levels=_FAN_LEVELS,
        quantiles=np.asarray(qs, dtype=float),
        naive=nv,
    )


def class_contributions(fc: Forecast) -> Contributions:
    """Per class: naive and mean cost (`ClassForecast`), the cost at P95 (`ClassForecast.
    p95_contribution`) and at P50 (a ``p50_contribution`` field when the forecast has one,
    else the same rule as the P95's: the mean class cost over the trials within the P50's 95%
    order-statistic interval)."""
    names = fc.classes
    at_p50 = []
    lo = hi = None
    for j, name in enumerate(names):
        c = fc.per_class[name]
        value = getattr(c, "p50_contribution", None)
        if value is None:
            if lo is None:
                _, _, lo, hi = quantile_with_error(fc.totals, 0.5)
            window = (fc.totals >= lo) & (fc.totals <= hi)
            value = float(fc.class_totals[window, j].mean()) if window.any() else 0.0
        at_p50.append(float(value))
    return Contributions(
        classes=names,
        naive=np.array([fc.per_class[n].naive_cost for n in names], dtype=float),
        mean=np.array([fc.per_class[n].mean_cost for n in names], dtype=float),
        at_p50=np.array(at_p50, dtype=float),
        at_p95=np.array([fc.per_class[n].p95_contribution for n in names], dtype=float),
    )
