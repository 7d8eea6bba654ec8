"""Backtests (DESIGN section 8): fit on the past of a log, forecast its future, score the forecast.

A backtest is the user's own calibration check. At each origin the log's rows before the origin
are fitted (`fit.fit_model`) and the window ``[origin, origin + horizon)`` after it is forecast
(`forecast.run_forecast`) from a scenario built here: the window's actual number of requests
and actual class mix, known exactly (no volume or mix uncertainty), so that the score is about
unit cost; or, with ``volume_as_planned``, the fitted past's request rate times the horizon and
its mix, as a user would have planned, so that volume error shows as well. The actual cost of
the window is then compared with the forecast distribution: where it falls (its PIT, the share
of trials below it), whether P5-P95 and P25-P75 contain it, and the interval score of the 90%
interval.

Origins: ``split`` (a fraction of the log's time span, or a time inside it) is the last one;
with ``rolling`` K, the K origins divide the stretch from the log's first request to the split
evenly (the first at 1/K of the way), and every origin is forecast over the same horizon
(default: from the split to the log's last request). A window that reaches the log's end
includes its last request; every other window is half-open. Classes with too few rows before
an origin to be fitted are left out of both sides there, and a note says so.

Pure: arrays in, a frozen `Backtest` out; nothing is printed, read or written. Every fit and
forecast uses the given seed (common random numbers across origins, as between two scenarios);
the Monte Carlo error of a PIT, about 0.01 at 2,000 trials, is small next to its spread. Within
a window the forecast draws the number of requests as Poisson about the volume it is given, so
"the actual volume" is the expected one: a difference only in windows of a few requests.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from .errors import CostsimError, CostsimWarning
from .logs import PilotLog
from .model.fit import FitOptions, fit_model
from .parallel import SERIAL, Parallel
from .progress import Progress
from .scenario import MIN_RESOLUTION_S, parse_scenario
from .simulate.forecast import run_forecast

DEFAULT_TRIALS = 2000
DEFAULT_RESOLUTION_S = 3600.0  # each window is cut into buckets of at most an hour
MAX_ROLLING = 1000
ALPHA = 0.1  # the interval scored is the central 90% one, P5-P95
QUANTILES = {"p5": 0.05, "p25": 0.25, "p50": 0.50, "p75": 0.75, "p95": 0.95}
FEW_ORIGINS = 5  # below, coverage is too coarse to judge calibration by: a note says so


class BacktestError(CostsimError):
    """A backtest cannot be run on this log with these options (bad split, horizon, log)."""


@dataclass(frozen=True)
class BacktestOrigin:
    """One origin: the model fitted before it against what happened in the window after it.

    Money is USD over the window. ``quantiles`` has keys p5, p25, p50, p75, p95. ``pit`` is the
    share of trials below ``actual`` (uniform on [0, 1] across origins when the forecast is
    calibrated). ``interval_score`` is the 90% interval score (Gneiting & Raftery 2007):
    (u - l) + (2 / alpha) (l - y) 1[y < l] + (2 / alpha) (y - u) 1[y > u], alpha = 0.1, l = P5,
    u = P95: the width, plus a penalty for a miss; lower is better. ``width`` is
    (P95 - P5) / P50. ``naive_linear`` is the pilot mean cost per request times the requests the
    forecast was given; ``naive_error`` and ``p50_error`` are relative to ``actual``.
    """

    split: float  # the origin, epoch seconds (UTC)
    horizon_s: float
    fit_requests: int  # rows the model was fitted on (classes left out excluded)
    requests: int  # actual requests in the window (fitted classes only)
    forecast_requests: float  # requests the forecast was given
    actual: float
    quantiles: dict[str, float]
    naive_linear: float
    pit: float
    in_p5_p95: bool
    in_p25_p75: bool
    interval_score: float
    width: float | None  # None when P50 is 0
    naive_error: float | None  # None when actual is 0
    p50_error: float | None
    excluded: tuple[str, ...]  # classes of the window that were not fitted
    excluded_requests: int
    excluded_cost: float


@dataclass(frozen=True)
class Backtest:
    """Every origin of a backtest, and how well the forecasts covered the actual costs."""

    source: str
    log_start: float  # epoch seconds of the first and last request
    log_end: float
    rows: int
    split: float  # the last origin, epoch seconds
    rolling: int
    horizon_s: float
    volume_as_planned: bool
    trials: int
    seed: int
    origins: tuple[BacktestOrigin, ...]
    coverage_p5_p95: float  # share of origins whose actual lies in P5-P95 (nominal 0.90)
    coverage_p25_p75: float  # ... in P25-P75 (nominal 0.50)
    mean_interval_score: float
    mean_pit: float
    mean_abs_p50_error: float | None
    mean_abs_naive_error: float | None
    notes: tuple[str, ...]


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------

_SPLIT_HINT = (
    "a fraction of the log's time span strictly between 0 and 1 (0.5 fits the first half), or "
    "an ISO date-time inside the log such as 2026-10-12T00:00:00Z"
)


def parse_split(text: str) -> float | datetime:
    """``--split``: a fraction (a float) or a time (a timezone-aware datetime; a date or a time
    without a zone is taken as UTC). Raises `BacktestError`."""
    value = text.strip()
    try:
        fraction = float(value)
    except ValueError:
        pass
    else:
        if not (math.isfinite(fraction) and 0.0 < fraction < 1.0):
            raise BacktestError(f"--split: expected {_SPLIT_HINT}, got {text!r}")
        return fraction
    iso = value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        raise BacktestError(f"--split: expected {_SPLIT_HINT}, got {text!r}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def iso(t: float) -> str:
    """Epoch seconds as an ISO date-time in UTC (``Z``), to the second when it is whole."""
    when = datetime.fromtimestamp(t, tz=UTC)
    spec = "seconds" if t == math.floor(t) else "milliseconds"
    return when.isoformat(timespec=spec).replace("+00:00", "Z")


def duration_text(seconds: float) -> str:
    """A duration to the second, as `scenario.parse_duration` reads it: ``7d``, ``6d23h58m8s``."""
    left = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


# ---------------------------------------------------------------------------------------------
# The log, cut at an origin
# ---------------------------------------------------------------------------------------------


def _rows(log: PilotLog, rows: np.ndarray, keep: tuple[str, ...]) -> PilotLog:
    """The log restricted to ``rows`` (indices) of the classes ``keep``, renumbered."""
    codes = np.full(len(log.classes), -1, dtype=np.int32)
    for new, name in enumerate(keep):
        codes[log.classes.index(name)] = new
    mapped = codes[log.class_index[rows]]
    rows = rows[mapped >= 0]

    def take(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[rows]

    return replace(
        log,
        classes=keep,
        class_index=codes[log.class_index[rows]],
        cost=take(log.cost),
        input_tokens=take(log.input_tokens),
        output_tokens=take(log.output_tokens),
        cached_input_tokens=take(log.cached_input_tokens),
        timestamp=take(log.timestamp),
        latency_ms=take(log.latency_ms),
        error=take(log.error),
        retries=take(log.retries),
        cold_start=take(log.cold_start),
        rows_read=int(rows.size),
        dropped=(),
    )


def _origins(start: float, split: float, rolling: int) -> list[float]:
    """K origins dividing [start, split] evenly, the last at the split; whole seconds."""
    return [math.floor(start + (split - start) * k / rolling) for k in range(1, rolling + 1)]


def _resolution(horizon_s: float) -> float:
    """The largest bucket of at most an hour that divides the horizon into whole buckets."""
    return horizon_s / math.ceil(horizon_s / DEFAULT_RESOLUTION_S - 1e-9)


def _scenario_document(
    source: str,
    origin: float,
    horizon_s: float,
    requests: float,
    mix: dict[str, float] | None,
    trials: int,
    seed: int,
) -> dict[str, object]:
    doc: dict[str, object] = {
        "pilot": source,
        "horizon": horizon_s,
        "resolution": _resolution(horizon_s),
        "start": iso(origin),
        "volume": {"requests": requests},
        "trials": trials,
        "seed": seed,
    }
    if mix is not None:
        doc["mix"] = mix
    return doc


# ---------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------


def interval_score(lower: float, upper: float, y: float, alpha: float = ALPHA) -> float:
    """The interval score of the central (1 - alpha) interval [lower, upper] for an outcome y
    (Gneiting & Raftery 2007, eq. 43):
    (u - l) + (2 / alpha) (l - y) 1[y < l] + (2 / alpha) (y - u) 1[y > u]."""
    score = upper - lower
    if y < lower:
        score += 2.0 / alpha * (lower - y)
    elif y > upper:
        score += 2.0 / alpha * (y - upper)
    return score


def _relative(value: float, actual: float) -> float | None:
    return (value - actual) / actual if actual > 0 else None


def _mean(values: list[float | None]) -> float | None:
    kept = [abs(v) for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


# ---------------------------------------------------------------------------------------------
# The backtest
# ---------------------------------------------------------------------------------------------


def _split_time(split: float | datetime, start: float, end: float) -> float:
    if isinstance(split, datetime):
        t = split.timestamp()
        if t <= start:
            raise BacktestError(
                f"--split {iso(t)} is not after the log's first request ({iso(start)}): there "
                f"is nothing before it to fit; give a time between {iso(start)} and {iso(end)}"
            )
        if t >= end:
            raise BacktestError(
                f"--split {iso(t)} is not before the log's last request ({iso(end)}): there is "
                f"nothing after it to forecast; give a time between {iso(start)} and {iso(end)}"
            )
        return t
    if not 0.0 < split < 1.0:
        raise BacktestError(f"--split: expected {_SPLIT_HINT}, got {split!r}")
    return math.floor(start + split * (end - start))


def _check_log(log: PilotLog) -> tuple[np.ndarray, np.ndarray]:
    if log.timestamp is None:
        name = log.columns.timestamp
        raise BacktestError(
            f"{log.source}: a backtest needs arrival times, and the log has no timestamp column "
            f"('{name}'); name it with --timestamp-col"
        )
    if log.cost is None:
        raise BacktestError(
            f"{log.source}: a backtest compares forecasts with billed costs, and the log has no "
            f"cost column ('{log.columns.cost}'); name it with --cost-col"
        )
    order = np.argsort(log.timestamp, kind="stable")
    return order, log.timestamp[order]


def run_backtest(
    log: PilotLog,
    split: float | datetime,
    *,
    rolling: int = 1,
    horizon_s: float | None = None,
    volume_as_planned: bool = False,
    trials: int = DEFAULT_TRIALS,
    seed: int = 0,
    fit_options: FitOptions | None = None,
    progress: Progress | None = None,
    parallel: Parallel = SERIAL,
) -> Backtest:
    """Fit before each origin, forecast the window after it, and score the forecasts.

    ``split`` is a fraction of the log's time span (a float strictly between 0 and 1) or a time
    inside it (a datetime); ``rolling`` the number of origins, ending at the split;
    ``horizon_s`` the length of every window (default: from the split to the log's last
    request). ``fit_options`` (its seed is replaced by ``seed``) are those of `fit_model`.
    ``parallel``: where each origin's fit and forecast run (the same numbers wherever).
    Raises `BacktestError` when the log cannot be backtested with these options.
    """
    order, ts = _check_log(log)
    if not 1 <= rolling <= MAX_ROLLING:
        raise BacktestError(f"--rolling: expected an integer in [1, {MAX_ROLLING}], got {rolling}")
    start, end = float(ts[0]), float(ts[-1])
    if not end > start:
        raise BacktestError(
            f"{log.source}: every request has the same timestamp ({iso(start)}): the log spans "
            "no time to split"
        )
    split_t = _split_time(split, start, end)
    given = horizon_s is not None
    if horizon_s is None:
        horizon_s = end - split_t
    elif not (math.isfinite(horizon_s) and horizon_s > 0):
        raise BacktestError(f"--horizon: expected a duration > 0, got {horizon_s!r} seconds")
    if horizon_s < MIN_RESOLUTION_S:
        raise BacktestError(
            f"--horizon: {duration_text(horizon_s)} is shorter than a minute; give a longer "
            "--horizon"
            if given
            else f"the split {iso(split_t)} leaves {duration_text(horizon_s)} before the log's "
            f"last request ({iso(end)}), less than the minute a forecast needs; give an "
            "earlier --split"
        )
    if split_t + horizon_s > end:
        raise BacktestError(
            f"--horizon {duration_text(horizon_s)} from the split {iso(split_t)} ends at "
            f"{iso(split_t + horizon_s)}, after the log's last request ({iso(end)}); give at "
            f"most {duration_text(math.floor(end - split_t))} or an earlier --split"
        )
    options = replace(fit_options or FitOptions(), seed=seed)
    origins = _origins(start, split_t, rolling)
    results: list[BacktestOrigin] = []
    notes: list[str] = []
    heavy: dict[str, float] = {}  # class: largest cost tail shape xi >= 0.5 of any origin's fit
    for k, origin in enumerate(origins):
        result = _one_origin(
            log,
            order,
            ts,
            origin,
            horizon_s,
            volume_as_planned,
            trials,
            seed,
            options,
            notes,
            heavy,
            parallel,
        )
        results.append(result)
        if progress is not None:
            progress("backtest origins", k + 1, len(origins))
    if heavy:
        listed = ", ".join(f"{name} (xi up to {xi:.2f})" for name, xi in sorted(heavy.items()))
        notes.append(
            f"cost tails with infinite variance (xi >= 0.5) in the fit of at least one origin: "
            f"{listed}; they are capped (see costsim fit) and widen the upper quantiles"
        )
    n = len(results)
    if n < FEW_ORIGINS:
        notes.append(
            f"{n} origin{'s' if n != 1 else ''}: coverage moves in steps of {1 / n:.0%} and "
            "says little about calibration on its own; --rolling 10 gives a fairer picture"
        )
    return Backtest(
        source=log.source,
        log_start=start,
        log_end=end,
        rows=log.n_rows,
        split=float(origins[-1]),
        rolling=rolling,
        horizon_s=float(horizon_s),
        volume_as_planned=volume_as_planned,
        trials=trials,
        seed=seed,
        origins=tuple(results),
        coverage_p5_p95=sum(o.in_p5_p95 for o in results) / n,
        coverage_p25_p75=sum(o.in_p25_p75 for o in results) / n,
        mean_interval_score=float(np.mean([o.interval_score for o in results])),
        mean_pit=float(np.mean([o.pit for o in results])),
        mean_abs_p50_error=_mean([o.p50_error for o in results]),
        mean_abs_naive_error=_mean([o.naive_error for o in results]),
        notes=tuple(dict.fromkeys(notes)),
    )


def _one_origin(
    log: PilotLog,
    order: np.ndarray,
    ts: np.ndarray,
    origin: float,
    horizon_s: float,
    volume_as_planned: bool,
    trials: int,
    seed: int,
    options: FitOptions,
    notes: list[str],
    heavy: dict[str, float],
    parallel: Parallel,
) -> BacktestOrigin:
    start, end = float(ts[0]), float(ts[-1])
    stop = origin + horizon_s
    cut = int(np.searchsorted(ts, origin, side="left"))
    last = ts.size if stop >= end else int(np.searchsorted(ts, stop, side="left"))
    window = f"{iso(origin)} + {duration_text(horizon_s)}"
    if cut == 0:
        raise BacktestError(
            f"no request before the origin {iso(origin)} (the log starts at {iso(start)}): "
            "nothing to fit; give a later --split or fewer --rolling origins"
        )
    if last == cut:
        raise BacktestError(
            f"no request in the window {window}: nothing to compare a forecast with; give a "
            "longer --horizon or another --split"
        )
    past, future = order[:cut], order[cut:last]
    past_counts = np.bincount(log.class_index[past], minlength=len(log.classes))
    fitted = tuple(
        name
        for name, c in zip(log.classes, past_counts, strict=True)
        if c >= options.min_class_rows
    )
    if not fitted:
        raise BacktestError(
            f"too few requests before the origin {iso(origin)} to fit: {cut:,} request"
            f"{'s' if cut != 1 else ''}, and no class has the {options.min_class_rows} a fit "
            "needs; give a later --split or fewer --rolling origins"
        )
    assert log.cost is not None  # checked by _check_log
    classes = np.asarray(log.class_index[future])
    costs = log.cost[future]
    counts = np.bincount(classes, minlength=len(log.classes))
    sums = np.bincount(classes, weights=costs, minlength=len(log.classes))
    is_fitted = np.array([name in fitted for name in log.classes])
    excluded = tuple(
        name for i, name in enumerate(log.classes) if counts[i] > 0 and not is_fitted[i]
    )
    excluded_requests = int(counts[~is_fitted].sum())
    excluded_cost = float(sums[~is_fitted].sum())
    if excluded:
        notes.append(
            f"origin {iso(origin)}: {', '.join(excluded)} ({excluded_requests:,} requests, "
            f"${excluded_cost:,.2f} in the window) had fewer than {options.min_class_rows} "
            "requests before it to fit: left out of both the forecast and the actual"
        )
    requests = int(counts[is_fitted].sum())
    if requests == 0:
        raise BacktestError(
            f"every request in the window {window} belongs to a class with fewer than "
            f"{options.min_class_rows} requests before it: nothing to forecast; give a later "
            "--split"
        )
    actual = float(math.fsum(costs[is_fitted[classes]]))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CostsimWarning)  # summed up in `heavy` instead
        model = fit_model(_rows(log, past, fitted), options, parallel=parallel)
    for name, cf in model.classes.items():
        qf = cf.quantities.get("cost_usd")
        if qf is not None and qf.verdict in ("very heavy", "infinite mean"):
            heavy[name] = max(heavy.get(name, -math.inf), float(qf.dist.xi))

    if volume_as_planned:
        fit_rows = sum(model.classes[n].requests for n in fitted)
        planned = fit_rows / (origin - start) * horizon_s  # the past's rate over the window
        volume, mix = planned, None  # the past's mix
    else:
        volume = float(requests)
        mix = {
            name: int(counts[i]) / requests
            for i, name in enumerate(log.classes)
            if is_fitted[i] and counts[i] > 0
        }
    doc = _scenario_document(log.source, origin, horizon_s, volume, mix, trials, seed)
    scenario = parse_scenario(doc)
    fc = run_forecast(scenario, model, bridge=False, parallel=parallel)

    values = np.quantile(fc.totals, list(QUANTILES.values()))
    q = {k: float(v) for k, v in zip(QUANTILES, values, strict=True)}
    return BacktestOrigin(
        split=float(origin),
        horizon_s=float(horizon_s),
        fit_requests=int(sum(c.requests for c in model.classes.values())),
        requests=requests,
        forecast_requests=float(fc.projected_requests),
        actual=actual,
        quantiles=q,
        naive_linear=float(fc.naive_linear),
        pit=float(np.mean(fc.totals < actual)),
        in_p5_p95=q["p5"] <= actual <= q["p95"],
        in_p25_p75=q["p25"] <= actual <= q["p75"],
        interval_score=interval_score(q["p5"], q["p95"], actual),
        width=(q["p95"] - q["p5"]) / q["p50"] if q["p50"] > 0 else None,
        naive_error=_relative(float(fc.naive_linear), actual),
        p50_error=_relative(q["p50"], actual),
        excluded=excluded,
        excluded_requests=excluded_requests,
        excluded_cost=excluded_cost,
    )
