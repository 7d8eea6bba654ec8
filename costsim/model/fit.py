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

import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from ..errors import CostsimWarning, FitError, LogSchemaError
from ..logs import (
    ColumnMap,
    Issues,
    LogSource,
    PilotLog,
    Timestamps,
    empty_columns,
    export_table,
    invalid_rows,
    open_log,
)
from ..parallel import SERIAL, Parallel
from ..progress import Progress
from .drift import (
    WINDOW_LADDER_S,
    DriftSeries,
)
from .drift_grid import _DriftGrid, _YSums
from .fitted import (
    BOUNDED,
    COPULA_ROWS,
    DEFAULT_CAP_FACTOR,
    DRIFT_WINDOW_S,
    MIN_CLASS_ROWS,
    PROCESSES_EARLY_ROWS,
    ClassFit,
    FitOptions,
    FittedModel,
    QuantityFit,
    Rates,
    SourceFit,
    Traffic,
    quantity_values,
    tail_verdict,
)
from .pilot_traffic import _concentration, _traffic
from .quantity import (
    _finish_quantity,
    _pooled_shape,
    _prepare_summarized,
    _warn_heavy,
    fit_values,
)
from .rates import _copula, _rates, average_ranks
from .summaries import (
    QUANTITIES,
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
    drift_base,
    floor_item,
    floor_range,
    floors_to_sum,
    limits,
    memory_items,
    merge_below_floor,
    present_fields,
    role_fields,
    sample_rows_for,
    summarize,
    summarize_item,
    summarize_range,
)
from .tail import (
    TailFit,
)

# The fit's public names, here where a program imports them from; each lives in its room:
# `fitted` (the model's types, options, constants), `quantity`, `rates`, `drift_grid` and
# `pilot_traffic` (the parts of a class's and the pilot's fit), this module the entry points.
__all__ = [
    "BOUNDED",
    "DEFAULT_CAP_FACTOR",
    "DRIFT_WINDOW_S",
    "MIN_CLASS_ROWS",
    "QUANTITIES",
    "ClassFit",
    "FitOptions",
    "FittedModel",
    "QuantityFit",
    "Rates",
    "SourceFit",
    "Traffic",
    "average_ranks",
    "drift_series",
    "fit_export",
    "fit_model",
    "fit_source",
    "fit_summary",
    "fit_values",
    "quantity_values",
    "stream_workers",
    "tail_verdict",
]


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
        parallel.start_processes(__name__, workers=True)  # up by the time the log is summarised
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
    its entry point (``if __name__ == "__main__":``, see `costsim.parallel.processes.START_METHOD`).
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
        parallel = stream_workers(parallel, log)
        if (log.total or 0) >= PROCESSES_EARLY_ROWS:
            # for the classes' fits: up, and idle, by the time the log is read
            parallel.start_processes(__name__, workers=True)
        spec = _spec(role_fields(log), options)
        summary = LogSummary(spec)
        issues = Issues()
        times = Timestamps()
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
    for a in range(0, rows.size, limits.MEMORY_CHUNK_ROWS):
        r = rows[a : a + limits.MEMORY_CHUNK_ROWS]
        values = {name: getattr(log, name)[r] for name in fields}
        summarize(summary, Rows(("",), np.zeros(r.size, dtype=np.int64), r, values))
    summary.t_min, summary.t_max = float(log.timestamp.min()), float(log.timestamp.max())
    summary.finish()
    c = summary.classes[""]
    below: dict[str, Windows] = {}
    floors = floors_to_sum(summary)
    for a in range(0, rows.size, limits.MEMORY_CHUNK_ROWS) if floors else ():
        r = rows[a : a + limits.MEMORY_CHUNK_ROWS]
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

    if spec.has_cost and all(c.cost_total == 0 for c in classes.values()):
        warnings.warn(
            "every cost in the pilot is $0: a forecast of this model is $0 unless its scenario "
            "prices the tokens (pricing:); is the cost column the right one (--cost-col)?",
            CostsimWarning,
            stacklevel=2,
        )
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
