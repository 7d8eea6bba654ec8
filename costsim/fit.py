"""Fitting a per-class cost model to a pilot log (DESIGN section 2).

`fit_model` takes a validated `PilotLog` and returns a `FittedModel`: per class, a spliced
distribution (empirical body + GPD tail) for each measured quantity, the rank dependence between
them, the rates (errors, retries, cold starts), the drift of the unit cost between time windows,
and the pilot's volume, mix and traffic shape. Pure: no printing, no files.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import special, stats

from .drift import (
    DriftFit,
    common_loadings,
    default_drift,
    drift_windows,
    fit_drift,
    fit_state_space,
)
from .errors import FitError, HeavyTailWarning, SmallSampleWarning
from .logs import PilotLog
from .progress import Progress
from .splice import BODY_POINTS, SplicedDistribution
from .tail import (
    CI_LEVEL,
    K_FRACTION,
    K_MAX,
    N_DRAWS,
    TailFit,
    candidate_counts,
    fit_tail,
    fit_tail_fixed_shape,
)

QUANTITIES = (
    "cost_usd", "input_tokens", "output_tokens", "cached_share", "latency_ms", "calls",
)  # fmt: skip
_LOG_FIELDS = {
    "cost_usd": "cost",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "latency_ms": "latency_ms",
    "calls": "calls",  # LLM calls per query: an agent's steps are heavy-tailed too
}
BOUNDED = {"cached_share": 1.0}  # quantities with a natural upper bound


def quantity_values(log: PilotLog, q: str) -> np.ndarray | None:
    """A measured quantity for every row, or None. ``cached_share`` is cached input tokens over
    input tokens (0 without input): it keeps a price sheet's cached discount inside [0, 1]."""
    if q == "cached_share":
        if log.cached_input_tokens is None or log.input_tokens is None:
            return None
        inp = log.input_tokens
        share = np.divide(log.cached_input_tokens, inp, out=np.zeros_like(inp), where=inp > 0)
        return np.asarray(np.clip(share, 0.0, 1.0))
    values = getattr(log, _LOG_FIELDS[q])
    return None if values is None else np.asarray(values)


SAMPLE_ROWS = 1 << 18  # rows per class used for the body grid, KS and the copula (exact below)
COPULA_ROWS = 1 << 16
MIN_CLASS_ROWS = 10
DEFAULT_CAP_FACTOR = 10.0
DRIFT_WINDOW_S = 3600.0
RETRY_PMF_MAX = 10
ATOM_SHARE = 0.01  # a value repeated in at least this share of a class's rows is an atom
XI_BETWEEN_SD_MIN = 0.1  # least between-class sd of the tail shape a borrowed shape carries
BOUNDED_XI = -0.25  # below this (and an interval under 0) a tail is called bounded, not light


@dataclass(frozen=True)
class FitOptions:
    """Options of the fit. ``caps`` maps a quantity name to a physical upper bound."""

    seed: int = 0
    caps: Mapping[str, float] = field(default_factory=dict)
    default_cap_factor: float | None = DEFAULT_CAP_FACTOR
    min_class_rows: int = MIN_CLASS_ROWS
    drift_window_s: float = DRIFT_WINDOW_S


@dataclass(frozen=True)
class QuantityFit:
    """One measured quantity of one class: its distribution, uncertainty and diagnostics."""

    name: str
    n: int
    dist: SplicedDistribution
    xi_ci: tuple[float, float] | None
    xi_draws: np.ndarray | None
    sigma_draws: np.ndarray | None
    cap_source: str | None
    tail_source: str  # "fitted", "borrowed", "none"
    summary: dict[str, float]
    diagnostics: dict[str, Any]

    @property
    def verdict(self) -> str:
        return tail_verdict(self)


@dataclass(frozen=True)
class Rates:
    error_rate: float | None
    retry_pmf: tuple[float, ...] | None
    retry_mean: float | None
    retry_cost_share: float | None
    cold_start_rate: float | None
    cold_start_cost_ratio: float | None
    cold_start_latency_ms: float | None


@dataclass(frozen=True)
class ClassFit:
    name: str
    requests: int
    share: float
    cost_total: float | None
    quantities: dict[str, QuantityFit]
    dependence: tuple[tuple[str, ...], np.ndarray]
    rates: Rates
    drift: DriftFit
    hourly_profile: tuple[float, ...] | None
    drift_common: float = 0.0  # share of the drift common to all classes (a one-factor loading)


@dataclass(frozen=True)
class Traffic:
    requests: int
    start: float | None
    end: float | None
    duration_s: float | None
    rate_per_hour: float | None
    hourly_profile: tuple[float, ...] | None
    weekday_profile: tuple[float, ...] | None


@dataclass(frozen=True)
class FittedModel:
    source: str
    rows_read: int
    rows_dropped: int
    columns: dict[str, str]
    options: FitOptions
    classes: dict[str, ClassFit]
    traffic: Traffic
    concentration: dict[str, float] | None
    notes: tuple[str, ...]

    @property
    def seed(self) -> int:
        return self.options.seed


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


def fit_model(
    log: PilotLog,
    options: FitOptions | None = None,
    progress: Progress | None = None,
) -> FittedModel:
    """Fit the per-class model. Raises `FitError` when a class cannot be fitted.

    ``progress`` is told of each class fitted (two steps a class)."""
    options = options or FitOptions()
    unknown = sorted(set(options.caps) - set(QUANTITIES))
    if unknown:
        raise FitError(f"--cap {unknown[0]}: unknown quantity; allowed: {', '.join(QUANTITIES)}")
    columns = {q: quantity_values(log, q) for q in QUANTITIES}
    present = [q for q in QUANTITIES if columns[q] is not None]
    counts = np.bincount(log.class_index, minlength=len(log.classes))
    for name, count in zip(log.classes, counts, strict=False):
        if count < options.min_class_rows:
            raise FitError(
                f"class '{name}' has {count} row{'s' if count != 1 else ''}; at least "
                f"{options.min_class_rows} are needed to fit a class (merge it into another "
                "class or drop its rows)"
            )
    notes: list[str] = list(log.notes)
    order = np.argsort(log.class_index, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    streams = np.random.SeedSequence(options.seed).spawn(len(log.classes) + 1)
    pooled_rng = np.random.default_rng(streams[-1])

    # First pass: classes large enough fit their own tails.
    partial: dict[str, dict[str, Any]] = {}
    for ci, name in enumerate(log.classes):
        rows = order[bounds[ci] : bounds[ci + 1]]
        rng = np.random.default_rng(streams[ci])
        sample = (
            rows
            if rows.size <= SAMPLE_ROWS
            else np.sort(rng.choice(rows, SAMPLE_ROWS, replace=False))
        )
        qfits: dict[str, Any] = {}
        for q in present:
            column = columns[q]
            assert column is not None
            qfits[q] = _prepare_quantity(q, column[rows], column[sample], rng)
        partial[name] = {"rows": rows, "sample": sample, "rng": rng, "q": qfits}
        if progress is not None:
            progress("fitting classes", ci + 1, 2 * len(log.classes))

    # Pooled tail shapes for classes too small to fit their own.
    pooled = {q: _pooled_shape(q, partial, pooled_rng, notes) for q in present}

    classes: dict[str, ClassFit] = {}
    hourly = _hourly_profiles(log)
    total_n = log.n_rows
    for name in log.classes:
        part = partial[name]
        rows, sample = part["rows"], part["sample"]
        quantities = {
            q: _finish_quantity(name, q, part["q"][q], pooled[q], options) for q in present
        }
        cost = None if log.cost is None else log.cost[rows]
        classes[name] = ClassFit(
            name=name,
            requests=int(rows.size),
            share=rows.size / total_n,
            cost_total=None if cost is None else float(cost.sum()),
            quantities=quantities,
            dependence=_copula(columns, sample, present, part["rng"]),
            rates=_rates(log, rows),
            drift=_drift(log, rows, options.drift_window_s),
            hourly_profile=hourly(rows) if hourly is not None else None,
        )
        for qf in quantities.values():
            _warn_heavy(name, qf)
        if progress is not None:
            progress("fitting classes", len(log.classes) + len(classes), 2 * len(log.classes))

    common = _drift_common(log, classes, {n: partial[n]["rows"] for n in log.classes})
    classes = {n: replace(c, drift_common=common.get(n, 0.0)) for n, c in classes.items()}
    traffic = _traffic(log, notes)
    return FittedModel(
        source=log.source,
        rows_read=log.rows_read,
        rows_dropped=sum(d.count for d in log.dropped),
        columns={k: str(v) for k, v in vars(log.columns).items()},
        options=options,
        classes=classes,
        traffic=traffic,
        concentration=_concentration(log, classes),
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------------------------
# One quantity
# ---------------------------------------------------------------------------------------------


def fit_values(
    values: np.ndarray, rng: np.random.Generator, name: str = "cost_usd", cap: float | None = None
) -> QuantityFit:
    """Fit a spliced distribution to one array of values (e.g. costs re-priced from tokens).

    The same machinery as a class of the pilot: automatic threshold, GPD tail, profile draws.
    """
    x = np.asarray(values, dtype=float)
    if x.size < MIN_CLASS_ROWS:
        raise FitError(f"{name}: {x.size} values; at least {MIN_CLASS_ROWS} are needed to fit")
    sample = x if x.size <= SAMPLE_ROWS else rng.choice(x, SAMPLE_ROWS, replace=False)
    prep = _prepare_quantity(name, x, sample, rng)
    options = FitOptions(caps={name: cap} if cap is not None else {}, default_cap_factor=None)
    if prep["small"]:
        prep["small"] = False  # no pooled shape here: an empirical distribution
    return _finish_quantity(name, name, prep, None, options)


def _prepare_quantity(
    name: str, x: np.ndarray, xs: np.ndarray, rng: np.random.Generator
) -> dict[str, Any]:
    """Summary statistics and (when the class is large enough) an own tail fit."""
    n = x.size
    top_n = min(n, K_MAX + 1)
    top = np.sort(np.partition(x, n - top_n)[n - top_n :]) if top_n < n else np.sort(x)
    sample_sorted = np.sort(xs)
    qs = (
        np.quantile(x, [0.5, 0.95, 0.99])
        if n > SAMPLE_ROWS
        else np.quantile(sample_sorted, [0.5, 0.95, 0.99])
    )
    summary = {
        "total": float(x.sum()),
        "mean": float(x.mean()),
        "p50": float(qs[0]),
        "p95": float(qs[1]),
        "p99": float(qs[2]),
        "max": float(top[-1]),
    }
    # An atom at the very top (many rows at the largest value, e.g. outputs cut at max_tokens)
    # is a hard limit, not a tail: nothing lies beyond it, and a GPD fitted through a point
    # mass would be wrong. The class is then empirical up to that value, the atom kept exact.
    at_max = int(np.count_nonzero(x == top[-1]))
    capped = at_max < n and at_max >= max(ATOM_SHARE * n, 2.0)  # all rows equal: no limit
    small = candidate_counts(n).size == 0 and not capped
    tail = None if small or capped else fit_tail(top, n, rng)
    return {
        "n": n,
        "top": top,
        "sample": sample_sorted,
        "summary": summary,
        "tail": tail,
        "small": small,
        "capped": at_max / n if capped else None,
        "rng": rng,
    }


def _pooled_shape(
    q: str, partial: dict[str, dict[str, Any]], rng: np.random.Generator, notes: list[str]
) -> dict[str, Any] | None:
    """Inverse-variance pooled tail shape of the classes that fitted their own tail."""
    fits: list[TailFit] = [
        p["q"][q]["tail"] for p in partial.values() if p["q"][q]["tail"] is not None
    ]
    needs = [name for name, p in partial.items() if p["q"][q]["small"]]
    if not needs:
        return None
    if fits:
        xis = np.array([f.xi for f in fits])
        var = np.array([max(float(np.var(f.xi_draws)), 1e-6) for f in fits])
        w = 1.0 / var
        xi = float(np.sum(w * xis) / w.sum())
        # a small class's own shape is the pooled one plus a random effect: the spread between
        # classes, at least XI_BETWEEN_SD_MIN (one or two donor classes cannot measure it)
        between = max(float(np.var(xis, ddof=1)) if xis.size > 2 else 0.0, XI_BETWEEN_SD_MIN**2)
        se = float(np.sqrt(1.0 / w.sum() + between))
        source = f"pooled from {len(fits)} class{'es' if len(fits) > 1 else ''}"
    else:
        xi, se = 0.0, 0.2
        source = "default (no class has enough rows for its own tail)"
    z = stats.norm.ppf(0.5 + CI_LEVEL / 2)
    draws = xi + se * rng.standard_normal(N_DRAWS)
    notes.append(f"{q}: classes {', '.join(needs)} are small and borrow the tail shape {source}")
    return {"xi": xi, "ci": (xi - z * se, xi + z * se), "draws": draws, "source": source}


def _finish_quantity(
    cls: str, q: str, prep: dict[str, Any], pooled: dict[str, Any] | None, options: FitOptions
) -> QuantityFit:
    n, top, sample = prep["n"], prep["top"], prep["sample"]
    tail: TailFit | None = prep["tail"]
    notes: list[str] = []
    tail_source = "fitted" if tail is not None else "none"
    if prep["small"] and pooled is not None:
        k = max(3, int(K_FRACTION * n))  # the donors' shapes were fitted above this quantile
        tail = fit_tail_fixed_shape(
            top, n, pooled["xi"], pooled["ci"], pooled["draws"], k, prep["rng"]
        )
        if tail is not None:
            tail_source = "borrowed"
            notes.append(f"{n} rows: tail shape borrowed ({pooled['source']})")
            warnings.warn(
                f"class '{cls}' {q}: only {n} rows; tail shape borrowed ({pooled['source']})",
                SmallSampleWarning,
                stacklevel=3,
            )
    elif prep["capped"] is not None:
        notes.append(
            f"{prep['capped']:.1%} of rows sit at the largest value {_human(float(top[-1]))}, "
            "a hard limit (such as max_tokens): no tail beyond it (empirical distribution)"
        )
    elif tail is None:
        notes.append("no tail fitted: too few distinct large values (empirical distribution)")

    # Body: the conditional distribution below the threshold, on a fixed probability grid.
    u = tail.threshold if tail is not None else float(top[-1])
    body = sample[: np.searchsorted(sample, u, side="right")]
    if body.size == 0:
        body = np.array([u])
    body_p, body_q = body_grid(body, BODY_POINTS, ATOM_SHARE * sample.size)
    body_q[-1] = u
    body_q = np.maximum.accumulate(body_q)

    cap, cap_source = _cap(cls, q, prep["summary"]["max"], u, options)
    if tail is None:
        dist = SplicedDistribution(body_q, 0.0, 0.0, 1.0, None, body_p)
        cap, cap_source = None, None
    else:
        dist = SplicedDistribution(body_q, tail.k / n, tail.xi, tail.sigma, cap, body_p)

    diagnostics: dict[str, Any] = {"notes": notes}
    if tail is not None:
        diagnostics.update(
            {
                "threshold": tail.threshold,
                "threshold_quantile": 1.0 - tail.k / n,
                "exceedances": tail.k,
                "threshold_method": tail.method,
                "anderson_darling": tail.ad,
                "ad_p_value": tail.p_value,
                "candidates": [
                    {
                        "k": c.k,
                        "threshold": c.threshold,
                        "xi": c.xi,
                        "sigma": c.sigma,
                        "ad": c.ad,
                        "p_value": c.p_value,
                    }
                    for c in tail.candidates
                ],
                "tail_qq": _tail_qq(top, tail, dist),
            }
        )
    if tail is not None and tail.method.startswith("no candidate"):
        notes.append(
            f"no threshold passed the Anderson-Darling test (best p = {tail.p_value:.3f}): "
            "its GPD tail is a poor fit"
        )
    diagnostics["ks"] = _ks_distance(sample, dist)
    return QuantityFit(
        name=q,
        n=n,
        dist=dist,
        xi_ci=None if tail is None else tail.xi_ci,
        xi_draws=None if tail is None else tail.xi_draws,
        sigma_draws=None if tail is None else tail.sigma_draws,
        cap_source=cap_source,
        tail_source=tail_source,
        summary=prep["summary"],
        diagnostics=diagnostics,
    )


def _cap(
    cls: str, q: str, observed_max: float, u: float, options: FitOptions
) -> tuple[float | None, str | None]:
    if q in options.caps:
        cap = float(options.caps[q])
        if cap < observed_max:
            raise FitError(
                f"--cap {q}={cap:g} is below the largest {q} observed in class '{cls}' "
                f"({observed_max:g}); a cap must bound the data"
            )
        return cap, "user"
    if q in BOUNDED:
        return BOUNDED[q], "a share: at most 1"
    if options.default_cap_factor is None:
        return None, None
    return max(observed_max, u) * options.default_cap_factor, (
        f"default: {options.default_cap_factor:g}x the largest value in the pilot"
    )


def body_grid(
    sorted_values: np.ndarray, points: int, atom_rows: float
) -> tuple[np.ndarray | None, np.ndarray]:
    """The body's quantile function: on ``points`` equally spaced probabilities, plus the exact
    probability edges of every atom (a value repeated at least ``atom_rows`` times, e.g. a price
    tier or a maximum output length), so that an atom keeps its exact mass instead of one
    quantised to the grid's step. Returns (probabilities or None when equally spaced, values)."""
    m = sorted_values.size
    values, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    atoms = counts >= max(atom_rows, 2.0)
    grid = np.linspace(0.0, 1.0, points)
    if not atoms.any() or m < 2:
        return None, _quantile_grid(sorted_values, points)
    lo, hi = first[atoms] / m, (first[atoms] + counts[atoms]) / m
    # the grid's points off the atoms, then both edges of every atom at the atom's value: where
    # one atom ends exactly where the next begins, the probability appears twice (a jump)
    off = ~((grid[:, None] >= lo[None, :]) & (grid[:, None] <= hi[None, :])).any(axis=1)
    probs = np.concatenate([grid[off], lo, hi])
    vals = np.concatenate(
        [np.interp(grid[off] * (m - 1), np.arange(m), sorted_values), values[atoms], values[atoms]]
    )
    order = np.lexsort((vals, probs))
    return probs[order], np.maximum.accumulate(vals[order])


def _quantile_grid(sorted_values: np.ndarray, points: int) -> np.ndarray:
    """Linear-interpolation quantiles of an ascending array at ``points`` equally spaced probs."""
    pos = np.linspace(0.0, sorted_values.size - 1, points)
    return np.interp(pos, np.arange(sorted_values.size), sorted_values)


def _ks_distance(sorted_sample: np.ndarray, dist: SplicedDistribution) -> float:
    m = sorted_sample.size
    f = dist.cdf(sorted_sample)
    ecdf_hi = np.arange(1, m + 1) / m
    ecdf_lo = np.arange(0, m) / m
    return float(max(np.max(ecdf_hi - f), np.max(f - ecdf_lo), 0.0))


def _tail_qq(
    top: np.ndarray, tail: TailFit, dist: SplicedDistribution, points: int = 20
) -> list[list[float]]:
    """(probability, empirical, model) triples over the exceedances, for a tail QQ plot."""
    exc = top[top > tail.threshold]
    n_total = tail.k / dist.tail_prob
    idx = np.unique(np.round(np.geomspace(1, exc.size, min(points, exc.size))).astype(int)) - 1
    ranks = exc.size - idx  # 1 = the largest
    probs = 1.0 - (ranks - 0.5) / n_total
    model = dist.ppf(probs)
    return [[float(p), float(e), float(m)] for p, e, m in zip(probs, exc[idx], model, strict=False)]


def tail_verdict(qf: QuantityFit) -> str:
    """Plain words for the tail shape xi.

    bounded (xi clearly negative: an upper end point), light (consistent with exponential),
    heavy (0 < xi < 0.5), very heavy (xi >= 0.5: infinite variance) or infinite mean (xi >= 1).
    """
    if qf.tail_source == "none" or qf.xi_ci is None:
        return "none"
    xi = qf.dist.xi
    if xi >= 1.0:
        return "infinite mean"
    if xi >= 0.5:
        return "very heavy"
    if qf.xi_ci[1] < 0.0 and xi < BOUNDED_XI:
        return "bounded"
    if qf.xi_ci[0] <= 0.0 or xi <= 0.0:
        return "light"
    return "heavy"


def _human(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def _warn_heavy(cls: str, qf: QuantityFit) -> None:
    verdict = qf.verdict
    if verdict not in ("very heavy", "infinite mean"):
        return
    what = "infinite mean" if verdict == "infinite mean" else "infinite variance"
    bound = (
        f"bounded by a cap of {_human(qf.dist.cap)} ({qf.cap_source})"
        if qf.dist.cap is not None
        else "unbounded: set --cap to bound it"
    )
    warnings.warn(
        f"class '{cls}' {qf.name}: tail shape xi = {qf.dist.xi:.2f} >= "
        f"{'1' if what == 'infinite mean' else '0.5'} ({what}); {bound}",
        HeavyTailWarning,
        stacklevel=3,
    )


# ---------------------------------------------------------------------------------------------
# Dependence, rates, drift, traffic
# ---------------------------------------------------------------------------------------------


def _copula(
    columns: dict[str, np.ndarray | None],
    sample: np.ndarray,
    present: list[str],
    rng: np.random.Generator,
) -> tuple[tuple[str, ...], np.ndarray]:
    """Gaussian-copula correlation (of normal scores of ranks) between the quantities."""
    rows = (
        sample
        if sample.size <= COPULA_ROWS
        else np.sort(rng.choice(sample, COPULA_ROWS, replace=False))
    )
    m = rows.size
    scores = []
    for q in present:
        x = columns[q]
        assert x is not None
        r = stats.rankdata(x[rows])
        scores.append(special.ndtri((r - 0.5) / m))
    z = np.vstack(scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(z) if m > 2 else np.eye(len(present))
    corr = np.atleast_2d(np.nan_to_num(corr, nan=0.0))
    np.fill_diagonal(corr, 1.0)
    return tuple(present), corr


def _rates(log: PilotLog, rows: np.ndarray) -> Rates:
    error_rate = None if log.error is None else float(np.mean(log.error[rows]))
    retry_pmf = retry_mean = retry_share = None
    if log.retries is not None:
        r = log.retries[rows]
        counts = np.bincount(np.minimum(r, RETRY_PMF_MAX), minlength=1)
        retry_pmf = tuple(float(c) for c in counts / r.size)
        retry_mean = float(r.mean())
        if log.cost is not None:
            cost = log.cost[rows]
            total = cost.sum()
            retry_share = float(np.sum(cost * r / (1.0 + r)) / total) if total > 0 else 0.0
    cold_rate = cold_cost = cold_lat = None
    if log.cold_start is not None:
        cold = log.cold_start[rows]
        n_cold = int(np.count_nonzero(cold))
        cold_rate = n_cold / cold.size
        if 0 < n_cold < cold.size:
            if log.cost is not None:
                cost_rows = log.cost[rows]
                cold_sum = float(cost_rows @ cold)  # sums by a dot product: no gathered copies
                warm_mean = (float(cost_rows.sum()) - cold_sum) / (cold.size - n_cold)
                cold_cost = cold_sum / n_cold / warm_mean if warm_mean > 0 else None
            if log.latency_ms is not None:
                lat = log.latency_ms[rows]
                cold_lat = float(np.median(lat[cold]) - np.median(lat[~cold]))
    return Rates(error_rate, retry_pmf, retry_mean, retry_share, cold_rate, cold_cost, cold_lat)


def _unit_measure(log: PilotLog, rows: np.ndarray) -> np.ndarray | None:
    if log.cost is not None:
        return log.cost[rows]
    parts = [a[rows] for a in (log.input_tokens, log.output_tokens) if a is not None]
    return np.sum(parts, axis=0) if parts else None


def _drift(log: PilotLog, rows: np.ndarray, window_s: float) -> DriftFit:
    """The class's unit-cost drift, a state-space model on adaptive windows (costsim.drift)."""
    value = _unit_measure(log, rows)
    if value is None:
        return default_drift(window_s, 0.0, "no cost or token column")
    if log.timestamp is None:
        return fit_drift(None, value, window_s)
    start, end = float(log.timestamp.min()), float(log.timestamp.max())
    return fit_drift(log.timestamp[rows], value, window_s, start=start, end=end)


def _drift_common(
    log: PilotLog, classes: dict[str, ClassFit], rows_of: dict[str, np.ndarray]
) -> dict[str, float]:
    """Each class's share of drift common to all classes, on one window grid (the longest
    window any drifting class needed), where at least two classes drift."""
    drifting = [n for n, c in classes.items() if c.drift.estimated and c.drift.kind != "none"]
    if log.timestamp is None or len(drifting) < 2:
        return {}
    window = max(classes[n].drift.window_s for n in drifting)
    start, end = float(log.timestamp.min()), float(log.timestamp.max())
    series, fits = [], []
    for name in drifting:
        value = _unit_measure(log, rows_of[name])
        assert value is not None
        s = drift_windows(
            log.timestamp[rows_of[name]], value, window, adapt=False, start=start, end=end
        )
        series.append(s)
        fits.append(fit_state_space(s, (classes[name].drift.kind,)))
    return dict(zip(drifting, (float(r) for r in common_loadings(fits, series)), strict=True))


def _phase_profile(
    phase: np.ndarray, start: float, end: float, period_s: float, bins: int
) -> tuple[float, ...]:
    """Relative intensity by phase (hour of day, day of week), per unit of time observed,
    from each request's phase bin (``phase``) and the pilot's span [start, end]."""
    counts = np.bincount(phase, minlength=bins).astype(float)
    step = period_s / bins
    slots = np.arange(math.floor(start / step), math.ceil(end / step))
    exposure = np.bincount((slots % bins).astype(np.int64), minlength=bins).astype(float)
    rate = np.where(exposure > 0, counts / np.maximum(exposure, 1.0), 0.0)
    mean = rate.mean()
    return tuple(float(v) for v in (rate / mean if mean > 0 else np.ones(bins)))


def _phases(t: np.ndarray, period_s: float, bins: int) -> np.ndarray:
    return ((t // (period_s / bins)) % bins).astype(np.int8)


def _profile(
    t: np.ndarray, start: float, end: float, period_s: float, bins: int
) -> tuple[float, ...]:
    return _phase_profile(_phases(t, period_s, bins), start, end, period_s, bins)


def _hourly_profiles(log: PilotLog) -> Callable[[np.ndarray], tuple[float, ...]] | None:
    """The hour-of-day profile of any rows of a pilot at least a day long (None otherwise):
    every request's hour computed once, each class's rows then only counted."""
    if log.timestamp is None:
        return None
    start, end = float(log.timestamp.min()), float(log.timestamp.max())
    if end - start < 86400.0:
        return None
    hours = _phases(log.timestamp, 86400.0, 24)
    return lambda rows: _phase_profile(hours[rows], start, end, 86400.0, 24)


def _traffic(log: PilotLog, notes: list[str]) -> Traffic:
    n = log.n_rows
    if log.timestamp is None:
        notes.append("no timestamps: no traffic shape, volume rate or drift from the pilot")
        return Traffic(n, None, None, None, None, None, None)
    start, end = float(log.timestamp.min()), float(log.timestamp.max())
    duration = end - start
    rate = n / (duration / 3600.0) if duration > 0 else None
    hourly = weekly = None
    if duration >= 86400.0:
        hourly = _profile(log.timestamp, start, end, 86400.0, 24)
    else:
        notes.append("pilot shorter than a day: no hour-of-day shape (flat assumed)")
    # Epoch 0 was a Thursday: shift so that bin 0 is Monday.
    if duration >= 7 * 86400.0:
        weekly = _profile(
            log.timestamp + 3 * 86400.0, start + 3 * 86400.0, end + 3 * 86400.0, 7 * 86400.0, 7
        )
    else:
        notes.append("pilot shorter than a week: no day-of-week shape (flat assumed)")
    return Traffic(n, start, end, duration, rate, hourly, weekly)


def _concentration(log: PilotLog, classes: dict[str, ClassFit]) -> dict[str, float] | None:
    if log.cost is None:
        return None
    cost = log.cost
    total = float(cost.sum())
    if total <= 0:
        return None
    out: dict[str, float] = {}
    for label, frac in (("top_1pct", 0.01), ("top_5pct", 0.05)):
        k = max(1, math.ceil(frac * cost.size))
        out[label] = float(np.partition(cost, cost.size - k)[cost.size - k :].sum() / total)
    return out
