"""Fitting a per-class cost model to a pilot log (DESIGN section 2).

`fit_source` streams a log (any size, bounded memory, any number of workers) and `fit_model`
takes a validated `PilotLog` in memory; both summarise the rows (`costsim.model.summaries`) and
`fit_summary` turns the summary into a `FittedModel`: per class, a spliced distribution
(empirical body + GPD tail) for each measured quantity, the rank dependence between them, the
rates (errors, retries, cold starts), the drift of the unit cost between time windows, and the
pilot's volume, mix and traffic shape. The same rows give the same model, to the byte, however
they are read. Pure: no printing (`fit_source` reads the log it is given).
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from scipy import special

from ..errors import FitError, HeavyTailWarning, LogSchemaError, SmallSampleWarning
from ..logs import (
    ColumnMap,
    DroppedRows,
    Issues,
    LogSource,
    PilotLog,
    empty_columns,
    export_table,
    invalid_rows,
    open_log,
)
from ..logs.convert import _Timestamps
from ..parallel import SERIAL, Parallel
from ..progress import Progress
from .drift import (
    MIN_PER_WINDOW,
    WINDOW_LADDER_S,
    DriftFit,
    DriftSeries,
    choose_window,
    common_loadings,
    default_drift,
    fit_state_space,
    window_dispersion,
)
from .splice import BODY_POINTS, SplicedDistribution
from .summaries import (
    LOG_FIELDS,
    LOGS,
    MEMORY_CHUNK_ROWS,
    QUANTITIES,
    SAMPLE_ROWS,
    SQUARES,
    TOP_ROWS,
    VALUES,
    ClassSummary,
    FloorJob,
    LogSummary,
    MemoryJob,
    Rows,
    StreamJob,
    SummarySpec,
    Windows,
    add_below_floor,
    bin_centres,
    drift_base,
    drift_floor,
    floor_item,
    floor_range,
    floors_to_sum,
    memory_items,
    merge_below_floor,
    normalise,
    present_fields,
    role_fields,
    sample_rows_for,
    summarize,
    summarize_item,
    summarize_range,
)
from .tail import (
    CI_LEVEL,
    K_FRACTION,
    N_DRAWS,
    TailFit,
    fit_tail,
    fit_tail_fixed_shape,
    has_candidates,
)

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
    values = getattr(log, LOG_FIELDS[q])
    return None if values is None else np.asarray(values)


COPULA_ROWS = 1 << 16
#: a log of at least this many rows is read or summarised for about a second: the worker
#: processes that fit its classes (`fit_summary`) start meanwhile rather than after it
PROCESSES_EARLY_ROWS = 1 << 19
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
# Public entry points
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFit:
    """A model fitted to a streamed log, and the rows dropped as invalid (``drop_invalid``)."""

    model: FittedModel
    dropped: tuple[DroppedRows, ...]


def fit_model(
    log: PilotLog,
    options: FitOptions | None = None,
    progress: Progress | None = None,
    *,
    parallel: Parallel = SERIAL,
) -> FittedModel:
    """Fit the per-class model to a log in memory. Raises `FitError` when a class cannot be
    fitted.

    The log is summarised in chunks exactly as `fit_source` streams one (row i of the log at
    position i), so a log read whole and the same rows streamed give the same model, to the
    byte. ``parallel`` spreads the chunks over threads, and the classes over worker processes
    (`fit_summary`), or both over a Dask cluster (same result). ``progress`` is told of each
    class fitted."""
    options = _checked(options)
    if log.n_rows >= PROCESSES_EARLY_ROWS:
        parallel.start_processes(__name__)  # for the classes' fits, while the log is summarised
    counts = np.bincount(log.class_index, minlength=len(log.classes))
    for name, count in zip(log.classes, counts, strict=False):
        _check_rows(name, int(count), options)
    spec = _spec(present_fields(log), options)
    summary = LogSummary(spec)
    items = memory_items(log.n_rows)
    for part in _in_order(
        parallel, summarize_range, items, lambda: MemoryJob(log, spec, summary.bounds())
    ):
        summary.merge(part)
    below = _below_floor(summary, floor_range, items, log, parallel)
    return fit_summary(
        summary,
        options,
        source=log.source,
        rows_read=log.rows_read,
        rows_dropped=sum(d.count for d in log.dropped),
        columns=log.columns,
        notes=log.notes,
        progress=progress,
        below_floor=below,
        parallel=parallel,
    )


def _in_order(
    parallel: Parallel, fn: Any, items: Sequence[Any], shared: Callable[[], Any]
) -> Iterator[Any]:
    """``parallel.map`` over the items a window at a time, so that only a window's results
    (each a part's summary, up to tens of MB) are alive at once, whatever the number of items;
    ``shared()`` makes each window's shared value (the bounds of what was merged so far)."""
    window = max(2 * parallel.workers, 16 if parallel.scheduler is not None else 2)
    for start in range(0, len(items), window):
        yield from parallel.map(fn, items[start : start + window], shared())


def _below_floor(
    summary: LogSummary,
    fn: Any,
    items: Sequence[Any],
    log: LogSource | PilotLog,
    parallel: Parallel,
) -> dict[str, Windows]:
    """The second pass over the log for the classes `floors_to_sum` names (rare)."""
    summary.finish()
    floors = floors_to_sum(summary)
    below: dict[str, Windows] = {}
    if floors:
        job = FloorJob(log, summary.spec.base_s, floors)
        for part in _in_order(parallel, fn, items, lambda: job):
            merge_below_floor(below, part)
    return below


def fit_source(
    path: str | Path,
    columns: ColumnMap | None = None,
    options: FitOptions | None = None,
    *,
    drop_invalid: bool = False,
    progress: Progress | None = None,
    parallel: Parallel = SERIAL,
) -> SourceFit:
    """Stream a pilot log and fit the per-class model, in bounded memory whatever its size.

    ``path`` is what `costsim.logs.read_pilot` reads (a Parquet file or dataset directory,
    hive-partitioned or not, a CSV file or directory, local or behind a pyarrow filesystem URI)
    with the same columns, checks and messages (1-based row numbers of the whole log). The log
    is cut into items of whole row groups (`costsim.logs.stream.ITEM_ROWS`), each read in record
    batches with column projection and summarised (`costsim.model.summaries`); ``parallel`` runs the
    items on threads or a Dask cluster and their summaries merge exactly, then the classes' fits
    on worker processes or the cluster (`fit_summary`), so the model is the same, to the byte,
    for any number of workers, any cut of the log into files and row groups, and equal to
    `fit_model` on the log read whole. A script that runs it on several local workers guards
    its entry point (``if __name__ == "__main__":``, see `costsim.parallel.START_METHOD`).
    Raises `LogSchemaError` for bad input and `FitError` when a class cannot be fitted.
    """
    options = _checked(options)
    src = str(path)
    try:
        return _fit_source(src, columns, options, drop_invalid, progress, parallel)
    except MemoryError:
        raise FitError(
            f"{src}: out of memory while streaming the log; fit it with fewer --workers, or "
            "rewrite its files with smaller row groups (e.g. 1M rows)"
        ) from None


#: memory the items of a streamed fit running at once may take (threads are capped to it)
STREAM_MEMORY = 3 << 29  # 1.5 GiB
_WORKER_BASE = 128 << 20  # a worker's record batch and its temporaries
_WORKER_ROW = 96  # bytes per row of an item: its summary's sample rows, its read buffers


def stream_workers(parallel: Parallel, log: LogSource) -> Parallel:
    """``parallel`` with at most as many local threads as the memory bound allows for items
    of this log's size (a Dask cluster's memory is its own). The result does not depend on
    the number of workers, so the cap changes only the time."""
    if parallel.scheduler is not None or parallel.workers <= 1:
        return parallel
    item_rows = max((item.rows or 0 for item in log.items), default=0)
    per_worker = _WORKER_BASE + _WORKER_ROW * item_rows
    cap = max(1, STREAM_MEMORY // per_worker)
    return replace(parallel, workers=min(parallel.workers, cap))


def _fit_source(
    src: str,
    columns: ColumnMap | None,
    options: FitOptions,
    drop_invalid: bool,
    progress: Progress | None,
    parallel: Parallel,
) -> SourceFit:
    ignore: set[str] = set()
    while True:
        log = open_log(src, columns, ignore=ignore)
        if (log.total or 0) >= PROCESSES_EARLY_ROWS:
            parallel.start_processes(__name__)  # for the classes' fits, while the log is read
        parallel = stream_workers(parallel, log)
        spec = _spec(role_fields(log), options)
        summary = LogSummary(spec)
        issues = Issues()
        times = _Timestamps()
        rows = invalid = 0
        for result in _in_order(
            parallel,
            summarize_item,
            log.items,
            lambda: StreamJob(log, spec, drop_invalid, summary.bounds()),  # noqa: B023
        ):
            summary.merge(result.summary)
            issues.extend(result.issues)
            times.merge(result.times)
            rows += result.rows
            invalid += result.invalid
            if progress is not None:
                progress("reading rows", rows, log.total)
        if rows == 0:
            raise LogSchemaError(f"pilot log {src} has no rows")
        empty = empty_columns(log.roles, issues.missing, rows)
        if not empty:
            break
        # A column empty in every row is absent, not a reason to reject every row: read the
        # log again without it (its metadata did not say; rare).
        ignore |= {role.attr for role, _ in empty}
    notes = list(log.plan.notes)
    for role, name in log.roles:
        if role.kind == "time":
            notes.extend(times.notes(name))
    listed = issues.listed(role for role, _ in log.roles)
    dropped = invalid_rows(src, rows, invalid, listed, drop_invalid)
    for name, c in sorted(summary.classes.items()):
        _check_rows(name, c.n, options)
    below = _below_floor(summary, floor_item, log.items, log, parallel)
    model = fit_summary(
        summary,
        options,
        source=src,
        rows_read=rows,
        rows_dropped=sum(d.count for d in dropped),
        columns=log.columns,
        notes=tuple(notes),
        progress=progress,
        below_floor=below,
        parallel=parallel,
    )
    return SourceFit(model, dropped)


def fit_export(
    source: Any,
    path: str | Path,
    options: FitOptions | None = None,
    *,
    drop_invalid: bool = False,
    progress: Progress | None = None,
    parallel: Parallel = SERIAL,
) -> SourceFit:
    """`fit_source` for a tool's export read by `costsim.sources` (its table goes through a
    temporary Parquet file, as `costsim.logs.read_export` does); messages name ``path``."""
    table, cmap = export_table(source)
    src = str(path)
    with tempfile.TemporaryDirectory(prefix="costsim-") as tmp:
        part = os.path.join(tmp, "export.parquet")
        pq.write_table(table, part)
        del table
        try:
            fitted = fit_source(
                part, cmap, options, drop_invalid=drop_invalid, progress=progress, parallel=parallel
            )
        except LogSchemaError as exc:
            raise LogSchemaError(str(exc).replace(part, src)) from None
    return replace(fitted, model=replace(fitted.model, source=src))


def drift_series(
    log: PilotLog, rows: np.ndarray, window_s: float, options: FitOptions | None = None
) -> DriftSeries | None:
    """The drift windows of ``rows`` of a log (a class's) on the grid the fit puts them on:
    windows of ``window_s`` (a window length the fit chose) aligned on the epoch, y floored as
    the fit floors it. For pictures (`costsim.report.diagnostics`); None without timestamps or
    without
    a positive unit cost."""
    options = options or FitOptions()
    spec = replace(
        _spec(present_fields(log), options), sample_rows=sample_rows_for(len(log.classes))
    )
    if log.timestamp is None or rows.size == 0:
        return None
    summary = LogSummary(spec)
    fields = present_fields(log)
    for a in range(0, rows.size, MEMORY_CHUNK_ROWS):
        r = rows[a : a + MEMORY_CHUNK_ROWS]
        values = {name: getattr(log, name)[r] for name in fields}
        summarize(summary, Rows(("",), np.zeros(r.size, dtype=np.int64), r, values))
    summary.t_min, summary.t_max = float(log.timestamp.min()), float(log.timestamp.max())
    summary.finish()
    c = summary.classes[""]
    below: dict[str, Windows] = {}
    floors = floors_to_sum(summary)
    for a in range(0, rows.size, MEMORY_CHUNK_ROWS) if floors else ():
        r = rows[a : a + MEMORY_CHUNK_ROWS]
        values = {name: getattr(log, name)[r] for name in fields}
        add_below_floor(
            below, Rows(("",), np.zeros(r.size, dtype=np.int64), r, values), spec.base_s, floors
        )
    grid = _DriftGrid(summary, options)
    sums = grid.y_sums(c, below.get(""))
    if sums is None:
        return None
    return grid.series(sums, c.windows.ids, window_s, adapt=False)


def _checked(options: FitOptions | None) -> FitOptions:
    options = options or FitOptions()
    unknown = sorted(set(options.caps) - set(QUANTITIES))
    if unknown:
        raise FitError(f"--cap {unknown[0]}: unknown quantity; allowed: {', '.join(QUANTITIES)}")
    return options


def _check_rows(name: str, count: int, options: FitOptions) -> None:
    if count < options.min_class_rows:
        raise FitError(
            f"class '{name}' has {count} row{'s' if count != 1 else ''}; at least "
            f"{options.min_class_rows} are needed to fit a class (merge it into another "
            "class or drop its rows)"
        )


def _spec(fields: Iterable[str], options: FitOptions) -> SummarySpec:
    return SummarySpec.of(fields, options.seed, drift_base(options.drift_window_s, WINDOW_LADDER_S))


def fit_summary(
    summary: LogSummary,
    options: FitOptions,
    *,
    source: str,
    rows_read: int,
    rows_dropped: int,
    columns: ColumnMap,
    notes: Sequence[str] = (),
    progress: Progress | None = None,
    below_floor: Mapping[str, Windows] | None = None,
    parallel: Parallel = SERIAL,
) -> FittedModel:
    """Fit the per-class model to a log's summary (`costsim.model.summaries`); ``below_floor``
    holds the second pass's sums for the classes `floors_to_sum` names.

    Each class is one job (`_fit_class`, its own random stream), run by ``parallel`` in
    worker processes (the fit of a class is many small numpy calls, which hold the interpreter
    lock) or on a Dask cluster; the jobs' results are merged in class order, so the model is
    the same for any number of workers. What needs every class (the tail shape pooled for the
    small classes, the drift common to all classes) is done here, after the jobs."""
    spec = summary.spec
    summary.finish()
    names = sorted(summary.classes)
    for name in names:
        _check_rows(name, summary.classes[name].n, options)
    present = list(spec.quantities)
    all_notes: list[str] = list(notes)
    streams = np.random.SeedSequence(options.seed).spawn(len(names) + 1)
    pooled_rng = np.random.default_rng(streams[-1])
    k = summary.sample_rows
    big = [n for n in names if summary.classes[n].n > k]
    if big and k < spec.sample_rows:
        all_notes.append(
            f"{len(names)} classes: the body, copula and medians of "
            f"{_listing(big)} come from a sample of {k:,} of their rows each (memory bound)"
        )

    drift = _DriftGrid(summary, options)
    job = _ClassJob(spec, options, tuple(present), summary.n, drift)
    below = below_floor or {}
    items = [
        _ClassItem(name, summary.classes[name], below.get(name), streams[ci])
        for ci, name in enumerate(names)
    ]
    parts: list[_ClassPart] = []
    for part in parallel.map(_fit_class, items, job, processes=True):
        parts.append(part)
        if progress is not None:
            progress("fitting classes", len(parts), len(names))

    # Pooled tail shapes for the classes too small to fit their own, then their quantities.
    pooled = {q: _pooled_shape(q, parts, pooled_rng, all_notes) for q in present}
    classes: dict[str, ClassFit] = {}
    for part in parts:
        quantities = {
            q: part.quantities[q]
            if q in part.quantities
            else _finish_quantity(part.name, q, part.small[q], pooled[q], options)
            for q in present
        }
        classes[part.name] = replace(part.fit, quantities=quantities)
        for qf in quantities.values():
            _warn_heavy(part.name, qf)

    common = drift.common(classes, {p.name: p.drift_sums for p in parts})
    classes = {n: replace(c, drift_common=common.get(n, 0.0)) for n, c in classes.items()}
    traffic = _traffic(summary, all_notes)
    return FittedModel(
        source=source,
        rows_read=rows_read,
        rows_dropped=rows_dropped,
        columns={k: str(v) for k, v in vars(columns).items()},
        options=options,
        classes=classes,
        traffic=traffic,
        concentration=_concentration(summary) if spec.has_cost else None,
        notes=tuple(all_notes),
    )


@dataclass(frozen=True)
class _ClassJob:
    """What every class's job shares: the summary's spec and everything log-wide."""

    spec: SummarySpec
    options: FitOptions
    present: tuple[str, ...]
    total_n: int
    drift: _DriftGrid


@dataclass(frozen=True)
class _ClassItem:
    """One class's job: its summary, its second-pass sums (rare) and its random stream."""

    name: str
    summary: ClassSummary
    below: Windows | None
    stream: np.random.SeedSequence


@dataclass(frozen=True)
class _ClassPart:
    """A class fitted but for what needs every class: its quantities that borrow a pooled tail
    shape (``small``: their `_prepare` results, the class's generator inside, where the job
    left it) and its share of the common drift (``drift_sums``: its drift windows' sums)."""

    name: str
    fit: ClassFit
    quantities: dict[str, QuantityFit]
    small: dict[str, dict[str, Any]]
    tails: dict[str, TailFit | None]
    drift_sums: tuple[_YSums, np.ndarray] | None  # and the ids of its base windows


def _fit_class(job: _ClassJob, item: _ClassItem) -> _ClassPart:
    """Everything of one class that needs no other class (see `fit_summary`)."""
    c, spec = item.summary, job.spec
    rng = np.random.default_rng(item.stream)
    sample = c.sample(spec.fields)
    preps = {q: _prepare_summarized(q, c, sample[q], rng) for q in job.present}
    quantities = {
        q: _finish_quantity(item.name, q, prep, None, job.options)
        for q, prep in preps.items()
        if not prep["small"]
    }
    cost_total = VALUES.value(c.sums["cost_usd"])[()] if spec.has_cost else None
    drift, sums = job.drift.fit(c, item.below)
    fit = ClassFit(
        name=item.name,
        requests=c.n,
        share=c.n / job.total_n,
        cost_total=None if cost_total is None else float(cost_total),
        quantities={},
        dependence=_copula(c.sample_first(COPULA_ROWS, spec.fields), list(job.present)),
        rates=_rates(c, sample, spec),
        drift=drift,
        hourly_profile=job.drift.hourly(c),
    )
    return _ClassPart(
        name=item.name,
        fit=fit,
        quantities=quantities,
        small={q: prep for q, prep in preps.items() if prep["small"]},
        tails={q: prep["tail"] for q, prep in preps.items()},
        drift_sums=None if sums is None else (sums, c.windows.ids),
    )


def _listing(names: Sequence[str], shown: int = 3) -> str:
    quoted = [f"'{n}'" for n in names[:shown]]
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(quoted) + more


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
    n = x.size
    top_n = min(n, TOP_ROWS)
    top = np.sort(np.partition(x, n - top_n)[n - top_n :]) if top_n < n else np.sort(x)
    sample_sorted = np.sort(sample)
    qs = np.quantile(x if n > SAMPLE_ROWS else sample_sorted, _SUMMARY_PROBS)
    total = float(x.sum())
    at_max = int(np.count_nonzero(x == top[-1]))
    prep = _prepare(n, top, sample_sorted, total, qs, at_max, rng)
    options = FitOptions(caps={name: cap} if cap is not None else {}, default_cap_factor=None)
    if prep["small"]:
        prep["small"] = False  # no pooled shape here: an empirical distribution
    return _finish_quantity(name, name, prep, None, options)


_SUMMARY_PROBS = (0.5, 0.95, 0.99)


def _prepare_summarized(
    q: str, c: ClassSummary, sample: np.ndarray, rng: np.random.Generator
) -> dict[str, Any]:
    """`_prepare` from a class's summary: its exact top values and count at the largest, its
    exact total, and its sample (every row of a class that fits it)."""
    n = c.n
    top = c.sorted_top(q)
    sample_sorted = np.sort(sample)
    qs = _summary_quantiles(n, top, sample_sorted)
    largest, at_max = c.at_max[q]
    assert largest == top[-1]
    total = float(VALUES.value(c.sums[q])[()])
    return _prepare(n, top, sample_sorted, total, qs, at_max, rng)


def _summary_quantiles(n: int, top: np.ndarray, sample_sorted: np.ndarray) -> np.ndarray:
    """Quantiles of a class: of the sample when it holds every row; else exact from the top
    values where the quantile falls among them, else from the sample (its rank error)."""
    if sample_sorted.size >= n:
        return np.quantile(sample_sorted, _SUMMARY_PROBS)
    out = np.empty(len(_SUMMARY_PROBS))
    first = n - top.size  # the rank (0-based, ascending) of top[0]
    for i, p in enumerate(_SUMMARY_PROBS):
        pos = p * (n - 1)
        lo = math.floor(pos)
        if lo >= first:
            a = top[lo - first]
            b = top[min(lo + 1, n - 1) - first]
            out[i] = a + (pos - lo) * (b - a)
        else:
            out[i] = np.quantile(sample_sorted, p)
    return out


def _prepare(
    n: int,
    top: np.ndarray,
    sample_sorted: np.ndarray,
    total: float,
    qs: np.ndarray,
    at_max: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Summary statistics and (when the class is large enough) an own tail fit, from the top
    ``min(n, K_MAX + 1)`` values (ascending), the sorted sample, the total and the rows at the
    largest value."""
    summary = {
        "total": total,
        "mean": total / n,
        "p50": float(qs[0]),
        "p95": float(qs[1]),
        "p99": float(qs[2]),
        "max": float(top[-1]),
    }
    # An atom at the very top (many rows at the largest value, e.g. outputs cut at max_tokens)
    # is a hard limit, not a tail: nothing lies beyond it, and a GPD fitted through a point
    # mass would be wrong. The class is then empirical up to that value, the atom kept exact.
    capped = at_max < n and at_max >= max(ATOM_SHARE * n, 2.0)  # all rows equal: no limit
    small = not has_candidates(n) and not capped
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
    q: str, parts: Sequence[_ClassPart], rng: np.random.Generator, notes: list[str]
) -> dict[str, Any] | None:
    """Inverse-variance pooled tail shape of the classes that fitted their own tail."""
    fits = [tail for p in parts if (tail := p.tails[q]) is not None]
    needs = [p.name for p in parts if q in p.small]
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
    z = special.ndtri(0.5 + CI_LEVEL / 2)  # scipy.stats.norm.ppf
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
    sample: Mapping[str, np.ndarray], present: list[str]
) -> tuple[tuple[str, ...], np.ndarray]:
    """Gaussian-copula correlation (of normal scores of ranks) between the quantities, on the
    class's first ``COPULA_ROWS`` sampled rows (in log order)."""
    m = sample[present[0]].size if present else 0
    scores = []
    for q in present:
        r = average_ranks(sample[q])
        scores.append(special.ndtri((r - 0.5) / m))
    z = np.vstack(scores) if scores else np.zeros((0, 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(z) if m > 2 else np.eye(len(present))
    corr = np.atleast_2d(np.nan_to_num(corr, nan=0.0))
    np.fill_diagonal(corr, 1.0)
    return tuple(present), corr


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of the values, ties given the mean of their ranks (all NaN when a value is):
    ``scipy.stats.rankdata(x)``, exactly (the ranks are half-integers), for one array without
    its checks."""
    x = np.asarray(x, dtype=float)
    if np.isnan(x).any():
        return np.full(x.size, np.nan)
    order = np.argsort(x)  # any order of equal values: they get the same rank
    ordered = x[order]
    first = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    counts = np.diff(first, append=x.size)
    ranks = np.empty(x.size)
    ranks[order] = np.repeat((first + 1.0) + (counts - 1.0) / 2, counts)
    return ranks


def _rates(c: ClassSummary, sample: Mapping[str, np.ndarray], spec: SummarySpec) -> Rates:
    n = c.n
    error_rate = c.errors / n if spec.has("error") else None
    retry_pmf = retry_mean = retry_share = None
    if spec.has("retries"):
        used = int(np.flatnonzero(c.retries).max(initial=0)) + 1
        retry_pmf = tuple(float(v) for v in c.retries[:used] / n)
        retry_mean = float(VALUES.value(c.sums["retries"])[()]) / n
        if spec.has_cost:
            total = float(VALUES.value(c.sums["cost_usd"])[()])
            share = float(VALUES.value(c.sums["retry_cost"])[()])
            retry_share = share / total if total > 0 else 0.0
    cold_rate = cold_cost = cold_lat = None
    if spec.has("cold_start"):
        n_cold = c.cold
        cold_rate = n_cold / n
        if 0 < n_cold < n:
            if spec.has_cost:
                total = float(VALUES.value(c.sums["cost_usd"])[()])
                cold_sum = float(VALUES.value(c.sums["cold_cost"])[()])
                warm_mean = (total - cold_sum) / (n - n_cold)
                cold_cost = cold_sum / n_cold / warm_mean if warm_mean > 0 else None
            if "cold" in sample:
                # medians of the sample (every row of a class that fits it)
                flag = sample["cold"] > 0.5
                lat = sample["latency_ms"]
                if flag.any() and not flag.all():
                    cold_lat = float(np.median(lat[flag]) - np.median(lat[~flag]))
    return Rates(error_rate, retry_pmf, retry_mean, retry_share, cold_rate, cold_cost, cold_lat)


def _hours(seconds: float) -> str:
    h = seconds / 3600.0
    return f"{h / 24:g} d" if h >= 24 and h % 24 == 0 else f"{h:g} h"


_YSums = tuple[np.ndarray, np.ndarray, np.ndarray]  # per base window: rows, sums of y and y^2


class _DriftGrid:
    """Drift windows from a summary's per-base-window sums.

    The same estimate as `costsim.model.drift.drift_windows` and `fit_drift` on the class's rows,
    with windows aligned on the epoch (a window of w seconds holds the arrivals t with
    floor(t / w) equal; an hour is a clock hour): a window of w = k base windows sums k base
    windows, so every length the drift tries comes from one pass over the rows.
    y = log(max(unit cost, floor)), the floor a thousandth of the median positive unit cost
    (`costsim.model.summaries.drift_floor`); the rows below it are the smallest kept, or were summed
    by a second pass (``below``).
    """

    def __init__(self, summary: LogSummary, options: FitOptions) -> None:
        spec = summary.spec
        self.spec = spec
        self.window_s = options.drift_window_s
        self.base_s = base = spec.base_s
        # longer windows tried: whole multiples of the base
        self.ladder = tuple(
            w
            for w in WINDOW_LADDER_S
            if w > self.window_s and abs(w / base - round(w / base)) < 1e-9
        )
        self.has_time = spec.has_time and math.isfinite(summary.t_min)
        self.t_min = summary.t_min if self.has_time else None
        self.t_max = summary.t_max if self.has_time else None
        # base windows of the first and last arrival (as the rows' are computed)
        self.g_min = int(summary.t_min // base) if self.has_time else 0
        self.g_max = int(summary.t_max // base) if self.has_time else 0

    def y_sums(self, c: ClassSummary, below: Windows | None) -> _YSums | None:
        """Per base window with requests: rows, and sums of y and y^2 (None: no positive
        unit cost); ``below``: the class's sums of the second pass, if it had one."""
        w = c.windows
        floor = drift_floor(c, self.spec)
        if int(w.npos.sum()) == 0 or floor is None:
            return None
        size = w.ids.size
        if below is None:  # every positive unit cost below the floor is among those kept
            low, low_window, _ = c.smallest_units()
            sel = low < floor
            at = np.searchsorted(w.ids, low_window[sel])
            y = np.log(low[sel])
            k = np.bincount(at, minlength=size)
            s1_low = LOGS.sums(y, at, size, nonnegative=False)
            s2_low = SQUARES.sums(y * y, at, size)
        else:
            at = np.searchsorted(w.ids, below.ids)
            k = np.zeros(size, dtype=np.int64)
            k[at] = below.n
            s1_low, s2_low = LOGS.zeros(size), SQUARES.zeros(size)
            s1_low[:, at] = below.s1
            s2_low[:, at] = below.s2
        s1 = LOGS.values(normalise(w.s1 - s1_low))
        s2 = SQUARES.values(normalise(w.s2 - s2_low))
        log_floor = math.log(floor)
        floored = (w.n - w.npos + k).astype(float)
        return w.n, s1 + floored * log_floor, s2 + floored * log_floor * log_floor

    def series(
        self,
        sums: _YSums,
        ids: np.ndarray,
        window_s: float,
        adapt: bool,
    ) -> DriftSeries:
        """`costsim.model.drift.drift_windows` on the base windows' sums."""
        n_b, s1_b, s2_b = sums
        candidates = [window_s, *(w for w in self.ladder if w > window_s)] if adapt else [window_s]

        def grid(w: float) -> tuple[int, np.ndarray, np.ndarray]:
            k = round(w / self.base_s)
            first = self.g_min // k
            size = self.g_max // k - first + 1
            idx = ids // k - first
            return size, idx, np.bincount(idx, weights=n_b, minlength=size).astype(np.int64)

        (size, idx, n), chosen_w, note = choose_window(grid, candidates, adapt)
        # With y summed per window (S1, S2 over n rows), the centred means and the pooled
        # within-window variance of costsim.model.drift.drift_windows:
        #   m_t = S1_t / n_t - ybar,  s2 = sum_t (S2_t - S1_t^2 / n_t) / (N - #windows)
        total_n = float(n_b.sum())
        centre = float(s1_b.sum()) / total_n
        s1 = np.bincount(idx, weights=s1_b, minlength=size)
        s2 = np.bincount(idx, weights=s2_b, minlength=size)
        nonempty = n > 0
        nn = np.maximum(n, 1)
        means = np.where(nonempty, s1 / nn - centre, 0.0)
        df = int(n.sum()) - int(nonempty.sum())
        m2 = np.where(nonempty, s2 - s1 * s1 / nn, 0.0)
        within = float(np.sum(m2) / df) if df > 0 else float(s2.sum() / total_n - centre**2)
        within = max(within, 1e-12)
        observed = n >= MIN_PER_WINDOW
        dispersion = window_dispersion(means[observed], n[observed], within)
        k = round(chosen_w / self.base_s)
        return DriftSeries(
            window_s=chosen_w,
            start=(self.g_min // k) * k * self.base_s,
            mean=np.where(observed, means + centre, np.nan),
            count=n,
            within_var=within,
            reference=centre,
            dispersion=dispersion,
            min_count=MIN_PER_WINDOW,
            note=note,
        )

    def fit(self, c: ClassSummary, below: Windows | None) -> tuple[DriftFit, _YSums | None]:
        """The class's unit-cost drift, a state-space model on adaptive windows, and its
        `y_sums` (None without)."""
        window = self.window_s
        if "cost_usd" not in self.spec.quantities and "unit" not in self.spec.fields:
            return default_drift(window, 0.0, "no cost or token column"), None
        sums = self.y_sums(c, below)
        if sums is None:
            return default_drift(window, 0.0, "no positive unit costs"), None
        reference = float(sums[1].sum()) / float(sums[0].sum())
        if not self.has_time:
            return default_drift(window, reference, "no timestamps"), sums
        return fit_state_space(self.series(sums, c.windows.ids, window, adapt=True)), sums

    def hourly(self, c: ClassSummary) -> tuple[float, ...] | None:
        """The class's hour-of-day profile, for a pilot at least a day long."""
        if self.t_min is None or self.t_max is None or self.t_max - self.t_min < 86400.0:
            return None
        return _phase_profile(c.hours, self.t_min, self.t_max, 86400.0, 24)

    def common(
        self,
        classes: dict[str, ClassFit],
        sums: Mapping[str, tuple[_YSums, np.ndarray] | None],
    ) -> dict[str, float]:
        """Each class's share of drift common to all classes, on one window grid (the longest
        window any drifting class needed), where at least two classes drift; ``sums``: each
        class's `y_sums` and the ids of its base windows."""
        drifting = [n for n, c in classes.items() if c.drift.estimated and c.drift.kind != "none"]
        if not self.has_time or len(drifting) < 2:
            return {}
        window = max(classes[n].drift.window_s for n in drifting)
        series, fits = [], []
        for name in drifting:
            entry = sums[name]
            assert entry is not None
            s = self.series(*entry, window, adapt=False)
            series.append(s)
            fits.append(fit_state_space(s, (classes[name].drift.kind,)))
        return dict(zip(drifting, (float(r) for r in common_loadings(fits, series)), strict=True))


def _phase_profile(
    counts: np.ndarray, start: float, end: float, period_s: float, bins: int
) -> tuple[float, ...]:
    """Relative intensity by phase (hour of day, day of week), per unit of time observed,
    from the requests per phase bin (``counts``) and the pilot's span [start, end]."""
    counts = np.asarray(counts, dtype=float)
    step = period_s / bins
    slots = np.arange(math.floor(start / step), math.ceil(end / step))
    exposure = np.bincount((slots % bins).astype(np.int64), minlength=bins).astype(float)
    rate = np.where(exposure > 0, counts / np.maximum(exposure, 1.0), 0.0)
    mean = rate.mean()
    return tuple(float(v) for v in (rate / mean if mean > 0 else np.ones(bins)))


def _traffic(summary: LogSummary, notes: list[str]) -> Traffic:
    n = summary.n
    if not summary.spec.has_time or not math.isfinite(summary.t_min):
        notes.append("no timestamps: no traffic shape, volume rate or drift from the pilot")
        return Traffic(n, None, None, None, None, None, None)
    start, end = summary.t_min, summary.t_max
    duration = end - start
    rate = n / (duration / 3600.0) if duration > 0 else None
    hourly = weekly = None
    if duration >= 86400.0:
        hours = np.sum([c.hours for c in summary.classes.values()], axis=0)
        hourly = _phase_profile(hours, start, end, 86400.0, 24)
    else:
        notes.append("pilot shorter than a day: no hour-of-day shape (flat assumed)")
    # Epoch 0 was a Thursday: shifted so that bin 0 is Monday.
    if duration >= 7 * 86400.0:
        weekly = _phase_profile(
            summary.weekdays, start + 3 * 86400.0, end + 3 * 86400.0, 7 * 86400.0, 7
        )
    else:
        notes.append("pilot shorter than a week: no day-of-week shape (flat assumed)")
    return Traffic(n, start, end, duration, rate, hourly, weekly)


def _concentration(summary: LogSummary) -> dict[str, float] | None:
    """Share of the cost from the costliest 1% and 5% of requests: exact while they are among
    the `CONCENTRATION_TOP` costliest kept (a log of up to 1.3M requests); beyond, from the
    cost histogram, every request at the geometric centre of its bin of 1/128 octave: within
    0.3% of the share."""
    acc = VALUES.zeros()
    for c in summary.classes.values():
        acc = acc + c.sums["cost_usd"]
    total = float(VALUES.value(normalise(acc[:, None]))[0])
    if total <= 0:
        return None
    n = summary.n
    top = summary.costliest()
    out: dict[str, float] = {}
    for label, frac in (("top_1pct", 0.01), ("top_5pct", 0.05)):
        k = max(1, math.ceil(frac * n))
        if k <= top.size:
            out[label] = math.fsum(top[:k]) / total
            continue
        # the histogram, costliest bins first, each request at its bin's centre
        counts = summary.conc_count[::-1]
        sums = (counts * bin_centres()[::-1]).astype(float)
        cum = np.cumsum(counts)
        b = int(np.searchsorted(cum, k))  # the bin the k-th costliest request falls in
        before = int(cum[b - 1]) if b > 0 else 0
        out[label] = (math.fsum(sums[:b]) + (k - before) * bin_centres()[::-1][b]) / total
    return out
