"""A log read whole into memory (`read_pilot`; refused in one line when it would not fit),
and the table a reader made of a tool's export, validated the same way (`read_export`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from costsim.errors import LogSchemaError
from costsim.progress import Progress

from .collect import Issues, _Column, _Reader, empty_columns, invalid_rows
from .locate import _error, _locate
from .plan import _Plan, _plan, _scan
from .table import _BATCH_ROWS, _CLASS, _DTYPES, _TIME, ColumnMap, PilotLog

# --------------------------------------------------------------------------------------------
# Memory: a log read whole must fit.

#: bytes a row of a log read into memory takes at its peak, per byte of its columns' values
#: (the values, the rows kept after dropping, the fit's per-class copies)
_MEMORY_FACTOR = 2.5


def _memory_available() -> int | None:
    """Bytes this process may still allocate: the system's available memory, and the cgroup's
    limit where one is set (None when neither can be read)."""
    found: list[int] = []
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as fh:
            limit = fh.read().strip()
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as fh:
            used = int(fh.read().strip())
        if limit != "max":
            found.append(max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def _check_memory(src: str, rows: int, plan: _Plan) -> None:
    per_row = sum(_DTYPES[role.kind].itemsize for role, _ in plan.roles) * _MEMORY_FACTOR
    need = rows * per_row
    available = _memory_available()
    if available is not None and need > available:
        raise _error(
            f"{src}: {rows:,} rows need about {need / 2**30:.1f} GiB to read into memory, more "
            f"than the {available / 2**30:.1f} GiB available; `costsim fit` streams a log of "
            "any size, reading it whole does not (use a part of the log, or more memory)"
        )


# --------------------------------------------------------------------------------------------
# The log read whole.


def read_pilot(
    path: str | Path,
    columns: ColumnMap | None = None,
    *,
    drop_invalid: bool = False,
    progress: Progress | None = None,
) -> PilotLog:
    """Read and validate a pilot log into memory. Raises `LogSchemaError` on any bad input.

    ``path`` is a Parquet file (``.parquet``, ``.pq``), a CSV file (``.csv``, ``.csv.gz``) or a
    directory of either, possibly hive-partitioned (``query_class=agent/part-0.parquet``), on
    this machine or behind a URI pyarrow knows (``file://``, ``s3://``, ``gs://`` ...).
    Only the columns named in ``columns`` are read. Rows with missing, NaN, infinite, negative
    or otherwise impossible values are reported with their 1-based row numbers; with
    ``drop_invalid`` they are dropped and listed in ``PilotLog.dropped`` instead. A column
    name set to ``""`` is not read. Input files are never modified. A log that would not fit in
    the memory available is refused with a `LogSchemaError` before it is read (`costsim.model.fit`'s
    `fit_source` streams logs of any size).
    """
    cmap = columns if columns is not None else ColumnMap()
    src = str(path)
    source = _locate(src)
    plan = _plan(source, cmap)
    total, batches = _scan(source, plan)
    if total is not None:
        _check_memory(src, total, plan)
    try:
        return _read_whole(src, cmap, plan, total, batches, drop_invalid, progress)
    except MemoryError:
        raise _error(
            f"{src}: not enough memory to read the log whole; `costsim fit` streams a log of "
            "any size, reading it whole does not (use a part of the log, or more memory)"
        ) from None


def _read_whole(
    src: str,
    cmap: ColumnMap,
    plan: _Plan,
    total: int | None,
    batches: Iterator[pa.RecordBatch],
    drop_invalid: bool,
    progress: Progress | None,
) -> PilotLog:
    reader = _Reader(plan)
    collected = [_Column(role, name, total) for role, name in plan.roles]
    issues = Issues()
    rows = 0
    checked = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        chunk = reader.convert(batch, rows)
        for column, (role, name, values, problems) in zip(collected, chunk.columns, strict=True):
            column.store(values, rows)
            bad = issues.add(role, name, problems, rows)
            if bad is not None:
                column.bad.append((rows, bad))
        rows += batch.num_rows
        if total is None and rows >= 2 * checked + _BATCH_ROWS:  # CSV: rows not known ahead
            _check_memory(src, rows, plan)
            checked = rows
        if progress is not None:
            progress("reading rows", rows, total)
    if rows == 0:
        raise _error(f"pilot log {src} has no rows")

    notes = list(plan.notes)
    # An optional column that is empty in every row is treated as absent.
    empty = {r.attr for r, _ in empty_columns(plan.roles, issues.missing, rows)}
    kept: list[_Column] = []
    for column in collected:
        if column.role.attr in empty:
            notes.append(f"column '{column.name}' is empty in every row; ignored")
        else:
            kept.append(column)

    invalid: np.ndarray | None = None
    for column in kept:
        for offset, mask in column.bad:
            if invalid is None:
                invalid = np.zeros(rows, dtype=bool)
            invalid[offset : offset + mask.shape[0]] |= mask
    listed = issues.listed(c.role for c in kept)
    n_invalid = 0 if invalid is None else int(np.count_nonzero(invalid))
    dropped = invalid_rows(src, rows, n_invalid, listed, drop_invalid)
    keep = None if invalid is None else ~invalid

    outputs: dict[str, np.ndarray] = {}
    class_codes: np.ndarray | None = None
    for column in kept:
        values = column.values(rows)
        if column.role.kind == _TIME:
            notes.extend(reader.times.notes(column.name))
        if keep is not None:
            values = values[keep]
        if column.role.kind == _CLASS:
            class_codes = values
            continue
        outputs[column.role.output] = values
    assert class_codes is not None  # the class column is always read

    codes = reader.classes.codes
    labels = sorted(codes, key=codes.__getitem__)
    counts = np.bincount(class_codes, minlength=len(labels))
    present = sorted(label for label, n in zip(labels, counts, strict=True) if n > 0)
    lut = np.full(max(len(labels), 1), -1, dtype=np.int32)
    for final, label in enumerate(present):
        lut[codes[label]] = final
    class_index = lut[class_codes]

    return PilotLog(
        source=src,
        classes=tuple(present),
        class_index=class_index,
        cost=outputs.get("cost"),
        input_tokens=outputs.get("input_tokens"),
        output_tokens=outputs.get("output_tokens"),
        cached_input_tokens=outputs.get("cached_input_tokens"),
        timestamp=outputs.get("timestamp"),
        latency_ms=outputs.get("latency_ms"),
        error=outputs.get("error"),
        retries=outputs.get("retries"),
        cold_start=outputs.get("cold_start"),
        rows_read=rows,
        columns=cmap,
        dropped=dropped,
        notes=tuple(notes),
        calls=outputs.get("calls"),
    )


# --------------------------------------------------------------------------------------------
# A tool's export: the table its reader made, validated as a pilot log.


def export_table(source: Any) -> tuple[pa.Table, ColumnMap]:
    """The internal table a reader made of a tool's export (`costsim.sources`), ready to be
    read as a pilot log, and its columns: calls per query only where a query is a trace."""
    table: pa.Table = source.table
    if "cached_input_tokens" in table.column_names and "input_tokens" in table.column_names:
        # an export that does not mention cached tokens for a call cached none of them
        cached, inp = table["cached_input_tokens"], table["input_tokens"]
        filled = pc.if_else(pc.and_(pc.is_null(cached), pc.is_valid(inp)), 0.0, cached)
        table = table.set_column(
            table.column_names.index("cached_input_tokens"), "cached_input_tokens", filled
        )
    return table, ColumnMap(calls="calls" if source.unit == "trace" else "")


def read_export(
    source: Any,
    path: str | Path,
    *,
    drop_invalid: bool = False,
    progress: Progress | None = None,
) -> PilotLog:
    """Validate the internal table a reader made of a tool's export (`costsim.sources`) exactly
    like a pilot log: the same checks, messages and ``drop_invalid``, naming ``path``.

    The table goes through a temporary Parquet file (one validation path for every input);
    calls per query are kept only where a query is a trace.
    """
    table, cmap = export_table(source)
    src = str(path)
    with tempfile.TemporaryDirectory(prefix="costsim-") as tmp:
        part = os.path.join(tmp, "export.parquet")
        pq.write_table(table, part)
        try:
            log = read_pilot(part, cmap, drop_invalid=drop_invalid, progress=progress)
        except LogSchemaError as exc:
            raise _error(str(exc).replace(part, src)) from None
    return replace(log, source=src)
