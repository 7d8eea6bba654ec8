"""Work items: parts of a streamed log (`summarize_item`) and of a log in memory
(`summarize_range`), and the second pass of the drift's floor over them (`floor_item`,
`floor_range`). What `costsim.parallel` runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ...logs import Chunk, Issues, ItemReader, LogSource, PilotLog, ScanItem, Timestamps
from . import limits
from .classes import Windows
from .floors import add_below_floor
from .log import Bounds, LogSummary, Rows, summarize
from .spec import SummarySpec


@dataclass
class ItemResult:
    """What a work item of a streamed log returns: its rows' summary (valid rows only), the
    problems found, and what was learnt of the timestamps."""

    summary: LogSummary
    rows: int
    invalid: int
    issues: Issues
    times: Timestamps


@dataclass(frozen=True)
class StreamJob:
    """What every item of a streamed fit shares: the log, the spec, whether invalid rows
    are dropped (else, once one is found, rows are only checked, not summarised), and the
    bounds the summary of the items merged so far sets (`Bounds`)."""

    log: LogSource
    spec: SummarySpec
    drop_invalid: bool
    bounds: Bounds = field(default_factory=lambda: Bounds())


def summarize_item(job: StreamJob, item: ScanItem) -> ItemResult:
    """Read, check and summarise one item of a streamed log (run by `costsim.parallel`)."""
    summary = job.bounds.summary(job.spec)
    issues = Issues()
    reader = ItemReader(job.log, item)
    rows = invalid = 0
    for chunk in reader:
        rows += chunk.rows
        bad = _check(chunk, issues)
        n_bad = 0 if bad is None else int(np.count_nonzero(bad))
        invalid += n_bad
        if invalid and not job.drop_invalid:
            continue  # the fit will fail: only count and list the problems
        summarize(summary, chunk_rows(chunk, bad))
    for c in summary.classes.values():
        c.trim_sample(job.spec.sample_rows)  # what travels back: at most k rows a class
    summary.rows_read = rows
    return ItemResult(summary, rows, invalid, issues, reader.times)


def _check(chunk: Chunk, issues: Issues) -> np.ndarray | None:
    bad: np.ndarray | None = None
    for role, name, _, problems in chunk.columns:
        mask = issues.add(role, name, problems, chunk.offset)
        if mask is not None:
            bad = mask if bad is None else (bad | mask)
    return bad


def chunk_rows(chunk: Chunk, bad: np.ndarray | None) -> Rows:
    """The valid rows of a chunk, as `Rows`."""
    keep = None if bad is None else ~bad
    values: dict[str, np.ndarray | None] = {}
    codes: np.ndarray | None = None
    for role, _, v, _ in chunk.columns:
        v = v if keep is None else v[keep]
        if role.output == "class_index":
            codes = v
        else:
            values[role.output] = v
    assert codes is not None
    positions = np.arange(chunk.offset, chunk.offset + chunk.rows, dtype=np.int64)
    if keep is not None:
        positions = positions[keep]
    return Rows(chunk.labels, codes, positions, values)


_LOG_VALUES = (
    "cost", "input_tokens", "output_tokens", "cached_input_tokens", "timestamp", "latency_ms",
    "error", "retries", "cold_start", "calls",
)  # fmt: skip


@dataclass(frozen=True)
class MemoryJob:
    log: PilotLog
    spec: SummarySpec
    bounds: Bounds = field(default_factory=lambda: Bounds())


def summarize_range(job: MemoryJob, span: tuple[int, int]) -> LogSummary:
    """Summarise rows [a, b) of a log in memory (run by `costsim.parallel`); row i is at
    position i of the log."""
    log = job.log
    summary = job.bounds.summary(job.spec)
    a, b = span
    for start in range(a, b, limits.MEMORY_CHUNK_ROWS):
        stop = min(start + limits.MEMORY_CHUNK_ROWS, b)
        values = {name: _slice(getattr(log, name), start, stop) for name in _LOG_VALUES}
        rows = Rows(
            log.classes,
            log.class_index[start:stop],
            np.arange(start, stop, dtype=np.int64),
            values,
        )
        summarize(summary, rows)
    for c in summary.classes.values():
        c.trim_sample(job.spec.sample_rows)
    summary.rows_read = b - a
    return summary


def _slice(a: np.ndarray | None, start: int, stop: int) -> np.ndarray | None:
    return None if a is None else a[start:stop]


def memory_items(n: int) -> list[tuple[int, int]]:
    return [(a, min(a + limits.MEMORY_ITEM_ROWS, n)) for a in range(0, n, limits.MEMORY_ITEM_ROWS)]


def present_fields(log: PilotLog) -> list[str]:
    return [name for name in _LOG_VALUES if getattr(log, name) is not None]


def role_fields(log: LogSource) -> list[str]:
    return [role.output for role, _ in log.roles if role.output != "class_index"]


@dataclass(frozen=True)
class FloorJob:
    """A second pass over a log (streamed, or in memory) for `add_below_floor`."""

    log: LogSource | PilotLog
    base_s: float
    floors: Mapping[str, float]


def floor_item(job: FloorJob, item: ScanItem) -> dict[str, Windows]:
    """`add_below_floor` over one item of a streamed log (its valid rows, as in the fit)."""
    assert isinstance(job.log, LogSource)
    acc: dict[str, Windows] = {}
    for chunk in ItemReader(job.log, item):
        bad = _check(chunk, Issues())
        add_below_floor(acc, chunk_rows(chunk, bad), job.base_s, job.floors)
    return acc


def floor_range(job: FloorJob, span: tuple[int, int]) -> dict[str, Windows]:
    """`add_below_floor` over rows [a, b) of a log in memory."""
    log = job.log
    assert isinstance(log, PilotLog)
    acc: dict[str, Windows] = {}
    for start in range(span[0], span[1], limits.MEMORY_CHUNK_ROWS):
        stop = min(start + limits.MEMORY_CHUNK_ROWS, span[1])
        values = {name: _slice(getattr(log, name), start, stop) for name in _LOG_VALUES}
        rows = Rows(log.classes, log.class_index[start:stop], np.arange(start, stop), values)
        add_below_floor(acc, rows, job.base_s, job.floors)
    return acc
