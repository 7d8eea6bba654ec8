"""Streaming: a log cut into items of whole row groups (`open_log`), each read on its own
(`ItemReader`), on any worker.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .collect import Chunk, _Reader, empty_columns
from .convert import Timestamps
from .locate import _ARROW_ERRORS, _error, _first_line, _locate, _Source
from .plan import _Plan, _plan, _scan
from .table import _BATCH_ROWS, _CLASS, ColumnMap, _Role

#: rows an item of a streamed log holds at least (whole Parquet row groups, small files packed
#: together; a CSV log is one item). The cut does not change any result, only how work spreads.
ITEM_ROWS = 1 << 20
_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"  # a hive partition value that stands for null


@dataclass(frozen=True)
class ScanItem:
    """A part of a log read on its own: whole row groups of one or more files, in log order.
    ``offset`` is the 0-based position of its first row in the log; ``rows`` None when not
    known before reading (CSV)."""

    index: int
    offset: int
    rows: int | None
    pieces: tuple[tuple[str, tuple[int, ...] | None], ...]  # (file, row groups; None: all)


@dataclass(frozen=True)
class LogSource:
    """A located and planned pilot log, cut into items; what a worker needs to read its item
    (picklable: it travels to a Dask cluster)."""

    src: str
    columns: ColumnMap
    source: _Source
    plan: _Plan
    items: tuple[ScanItem, ...]
    total: int | None  # rows, when the metadata says (Parquet)

    @property
    def roles(self) -> tuple[tuple[_Role, str], ...]:
        return self.plan.roles


def open_log(
    path: str | Path, columns: ColumnMap | None = None, *, ignore: Iterable[str] = ()
) -> LogSource:
    """Locate and plan a pilot log for streaming, without reading its rows.

    Parquet logs are cut into items of whole row groups (`ITEM_ROWS`); their row counts come
    from the files' metadata, so every item knows the position of its rows in the log. An
    optional column whose metadata says it is null in every row is left out now (with the note
    `read_pilot` would give); so are the columns named in ``ignore`` (role names of
    `ColumnMap`, found empty in every row by an earlier pass).
    """
    cmap = columns if columns is not None else ColumnMap()
    src = str(path)
    source = _locate(src)
    plan = _plan(source, cmap)
    if source.fmt == "CSV":
        whole = ScanItem(0, 0, None, tuple((f, None) for f in source.files))
        return LogSource(src, cmap, source, _without(plan, set(ignore)), (whole,), None)
    groups, null_counts = _row_groups(source, plan)
    total = sum(n for _, _, n in groups)
    empty = set(ignore)
    if total > 0:
        empty |= {
            r.attr
            for r, _ in empty_columns(plan.roles, lambda r: null_counts.get(r.attr, -1), total)
        }
    items: list[ScanItem] = []
    pieces: list[tuple[str, list[int]]] = []
    offset = rows = 0
    for file, group, n in groups:
        if n == 0:
            continue
        if pieces and pieces[-1][0] == file:
            pieces[-1][1].append(group)
        else:
            pieces.append((file, [group]))
        rows += n
        if rows >= ITEM_ROWS:
            items.append(_item(len(items), offset, rows, pieces))
            offset, rows, pieces = offset + rows, 0, []
    if pieces:
        items.append(_item(len(items), offset, rows, pieces))
    return LogSource(src, cmap, source, _without(plan, empty), tuple(items), total)


def _item(index: int, offset: int, rows: int, pieces: list[tuple[str, list[int]]]) -> ScanItem:
    return ScanItem(index, offset, rows, tuple((f, tuple(g)) for f, g in pieces))


def _row_groups(source: _Source, plan: _Plan) -> tuple[list[tuple[str, int, int]], dict[str, int]]:
    """(file, row group, rows) of every row group in log order, and per role the rows its
    column is null in by the metadata (absent where the metadata does not say)."""
    fs = source.fs
    groups: list[tuple[str, int, int]] = []
    nulls: dict[str, int] = {}
    unknown: set[str] = set()
    partition = set(plan.partitioning.schema.names) if plan.partitioning is not None else set()
    for file in source.files:
        try:
            meta = pq.ParquetFile(file, filesystem=fs).metadata
        except _ARROW_ERRORS as exc:
            raise _error(
                f"cannot read {source.path_for_message(file)} as Parquet: {_first_line(exc)}"
            ) from None
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            groups.append((file, g, rg.num_rows))
            by_name = {rg.column(j).path_in_schema: rg.column(j) for j in range(rg.num_columns)}
            for role, name in plan.roles:
                if name in partition or role.attr in unknown:
                    unknown.add(role.attr)
                    continue
                stats = by_name[name].statistics if name in by_name else None
                if stats is None or not stats.has_null_count:
                    unknown.add(role.attr)
                    continue
                nulls[role.attr] = nulls.get(role.attr, 0) + stats.null_count
    return groups, {k: v for k, v in nulls.items() if k not in unknown}


def _without(plan: _Plan, attrs: set[str]) -> _Plan:
    """The plan without the roles ``attrs`` (columns empty in every row), with their notes."""
    if not attrs:
        return plan
    roles = tuple((r, n) for r, n in plan.roles if r.attr not in attrs or r.kind == _CLASS)
    notes = [
        f"column '{n}' is empty in every row; ignored" for r, n in plan.roles if (r, n) not in roles
    ]
    used = {n for _, n in roles}
    schema = pa.schema([f for f in plan.schema if f.name in used])
    partitioning = plan.partitioning
    if partitioning is not None:
        keys = [k for k in partitioning.schema.names if k in used]
        partitioning = (
            ds.HivePartitioning(pa.schema([(k, pa.string()) for k in keys])) if keys else None
        )
    dictionary = tuple(c for c in plan.dictionary_columns if c in used)
    return _Plan(roles, schema, partitioning, dictionary, (*plan.notes, *notes))


class ItemReader:
    """The chunks of one item of a streamed log, converted and checked, in order; afterwards
    ``times`` holds what was learnt of the timestamps (for the notes)."""

    def __init__(self, log: LogSource, item: ScanItem) -> None:
        self.log = log
        self.item = item
        self.reader = _Reader(log.plan)

    @property
    def times(self) -> Timestamps:
        return self.reader.times

    def __iter__(self) -> Iterator[Chunk]:
        offset = self.item.offset
        for batch in self._batches():
            if batch.num_rows == 0:
                continue
            yield self.reader.convert(batch, offset)
            offset += batch.num_rows

    def _batches(self) -> Iterator[pa.RecordBatch]:
        source, plan = self.log.source, self.log.plan
        if source.fmt == "CSV":
            yield from _scan(source, plan)[1]
            return
        for file, groups in self.item.pieces:
            try:
                yield from _parquet_batches(source, plan, file, groups)
            except _ARROW_ERRORS as exc:
                raise _error(
                    f"cannot read {source.path_for_message(file)} as {source.fmt}: "
                    f"{_first_line(exc)}"
                ) from None


def _parquet_batches(
    source: _Source, plan: _Plan, file: str, groups: tuple[int, ...] | None
) -> Iterator[pa.RecordBatch]:
    """Record batches of row groups of one Parquet file, in the plan's schema.

    A `pyarrow.parquet.ParquetFile` decodes batch by batch (a dataset scanner materialises
    whole row groups: twice the memory); columns whose type differs from the plan's are cast
    as the dataset would, hive partition values (URI-decoded, ``__HIVE_DEFAULT_PARTITION__``
    null) are added as constant columns."""
    partition = {}
    if plan.partitioning is not None:
        wanted = set(plan.partitioning.schema.names)
        for segment in source.parts(file)[:-1]:
            key, sep, value = segment.partition("=")
            if sep and key in wanted:
                partition[key] = None if value == _HIVE_NULL else urllib.parse.unquote(value)
    reader = pq.ParquetFile(
        file,
        filesystem=source.fs,
        read_dictionary=list(plan.dictionary_columns),
        buffer_size=1 << 20,
        pre_buffer=True,
    )
    in_file = [f.name for f in plan.schema if f.name not in partition]
    for batch in reader.iter_batches(
        batch_size=_BATCH_ROWS,
        row_groups=list(groups) if groups is not None else None,
        columns=in_file,
        use_threads=True,
    ):
        arrays = []
        for f in plan.schema:
            if f.name in partition:
                arrays.append(pa.array([partition[f.name]] * batch.num_rows, f.type))
                continue
            column = batch.column(f.name)
            arrays.append(column if column.type == f.type else column.cast(f.type))
        yield pa.RecordBatch.from_arrays(arrays, schema=plan.schema)
