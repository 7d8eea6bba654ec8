"""Planning the read: which columns exist, with which types, in which files; the scan of
the record batches with only those columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds

from costsim.errors import LogSchemaError

from .locate import _ARROW_ERRORS, _error, _first_line, _Source
from .table import (
    _BATCH_ROWS,
    _CLASS,
    _COST_ROLES,
    _COUNT,
    _CSV_NULLS,
    _DICT,
    _FLAG,
    _NUMBER,
    _ROLES,
    _STATUS,
    _TIME,
    ColumnMap,
    _Role,
)


def _is_string_view(t: pa.DataType) -> bool:
    check = getattr(pa.types, "is_string_view", None)  # pyarrow >= 16
    return bool(check(t)) if check is not None else False


def _kind_of(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        return _kind_of(t.value_type)
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or _is_string_view(t):
        return "string"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "time"
    return str(t)


_ALLOWED_KINDS = {
    _CLASS: ({"string", "number", "null"}, "strings"),
    _NUMBER: ({"number", "string", "null"}, "numbers"),
    _COUNT: ({"number", "string", "null"}, "whole numbers"),
    _TIME: ({"time", "number", "string", "null"}, "datetimes, ISO strings or epoch seconds"),
    _STATUS: ({"string", "null"}, "strings such as 'ok' / 'error'"),
    _FLAG: ({"bool", "number", "string", "null"}, "booleans, 0/1 or 'true'/'false'"),
}


@dataclass(frozen=True)
class _Plan:
    roles: tuple[tuple[_Role, str], ...]  # role and the column it is read from
    schema: pa.Schema  # projected dataset schema
    partitioning: ds.Partitioning | None
    dictionary_columns: tuple[str, ...]
    notes: tuple[str, ...]


def _csv_format(string_columns: Iterable[str] = ()) -> ds.CsvFileFormat:
    convert = pa_csv.ConvertOptions(
        column_types={name: pa.string() for name in string_columns},
        null_values=_CSV_NULLS,
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    return ds.CsvFileFormat(convert_options=convert)


def _partition_keys(source: _Source, file: str) -> list[str]:
    if source.base is None:
        return []
    return [p.split("=", 1)[0] for p in source.parts(file)[:-1] if "=" in p]


def _plan(source: _Source, cmap: ColumnMap) -> _Plan:
    fs = source.fs
    probe = ds.ParquetFileFormat() if source.fmt == "Parquet" else _csv_format()
    schemas: list[pa.Schema] = []
    for file in source.files:
        try:
            schemas.append(probe.inspect(file, fs))
        except _ARROW_ERRORS as exc:
            if "Empty CSV file" in str(exc) and source.base is None:
                raise _error(f"pilot log {source.src} has no rows") from None
            raise _error(
                f"cannot read {source.path_for_message(file)} as {source.fmt}: {_first_line(exc)}"
            ) from None

    found: list[str] = []
    for schema in schemas:
        found.extend(n for n in schema.names if n not in found)
    partition_keys: list[str] = []
    for file in source.files:
        partition_keys.extend(k for k in _partition_keys(source, file) if k not in partition_keys)
    partition_keys = [k for k in partition_keys if k not in found]
    available = found + partition_keys

    def shown() -> str:
        names = available[:30]
        more = f", ... ({len(available) - 30} more)" if len(available) > 30 else ""
        return (", ".join(names) + more) if names else "no columns"

    defaults = ColumnMap()
    notes: list[str] = []
    chosen: list[tuple[_Role, str]] = []
    for role in _ROLES:
        name = getattr(cmap, role.attr)
        if not name:
            continue  # an empty name switches the column off
        if name in available:
            chosen.append((role, name))
        elif role.attr == "query_class":
            raise _error(
                f"{source.src}: missing column '{name}' ({role.what}; choose another with "
                f"{role.option}); found: {shown()}"
            )
        elif name != getattr(defaults, role.attr):
            raise _error(
                f"{source.src}: missing column '{name}' ({role.what}, set with {role.option}); "
                f"found: {shown()}"
            )
    names = {role.attr: name for role, name in chosen}
    if not any(attr in names for attr in _COST_ROLES):
        raise _error(
            f"{source.src}: no cost or token columns: expected '{cmap.cost}', or "
            f"'{cmap.input_tokens}' and/or '{cmap.output_tokens}'; found: {shown()} "
            "(choose them with --cost-col, --input-tokens-col, --output-tokens-col)"
        )
    if "status" in names and "error" in names:
        notes.append(
            f"both '{names['status']}' and '{names['error']}' columns present; "
            f"errors are read from '{names['status']}'"
        )
        chosen = [(r, n) for r, n in chosen if r.attr != "error"]

    # One type per column across files; the files must agree on what kind of values it holds.
    types: dict[str, pa.DataType] = {}
    for column in dict.fromkeys(n for _, n in chosen):
        if column in partition_keys:
            continue
        for file, schema in zip(source.files, schemas, strict=True):
            if len(schema.get_all_field_indices(column)) > 1:
                raise _error(
                    f"{source.path_for_message(file)}: column '{column}' appears more than once"
                )
        having = [
            (f, s.field(column).type)
            for f, s in zip(source.files, schemas, strict=True)
            if column in s.names
        ]
        if len(having) < len(source.files):
            lacking = next(
                f for f, s in zip(source.files, schemas, strict=True) if column not in s.names
            )
            raise _error(
                f"{source.src}: files disagree on column '{column}': "
                f"{source.label(having[0][0])} has {having[0][1]}, "
                f"{source.label(lacking)} does not have it"
            )
        if source.fmt == "CSV":
            # CSV is text: every column is read as strings and parsed by the converters, so
            # what arrow would infer from the first block of each file does not matter.
            types[column] = pa.string()
            continue
        by_kind: dict[str, tuple[str, pa.DataType]] = {}
        for file, t in having:
            by_kind.setdefault(_kind_of(t), (file, t))
        if len(by_kind) > 1:
            by_kind.pop("null", None)  # an all-null file agrees with anything
        if len(by_kind) > 1:
            (f1, t1), (f2, t2) = list(by_kind.values())[:2]
            raise _error(
                f"{source.src}: files disagree on column '{column}': "
                f"{source.label(f1)} has {t1}, {source.label(f2)} has {t2}"
            )
        distinct = {t for _, t in having}
        if len(distinct) == 1:
            types[column] = having[0][1]
        else:
            kind = next(iter(by_kind))
            types[column] = {
                "number": pa.float64(),
                "string": pa.string(),
                "time": pa.timestamp("us", tz="UTC"),
                "bool": pa.bool_(),
            }.get(kind, having[0][1])
    for column in partition_keys:
        types[column] = pa.string()  # hive partition values are text; converters parse them

    dictionary_columns: list[str] = []
    for role, column in chosen:
        kind = _kind_of(types[column])
        allowed, words = _ALLOWED_KINDS[role.kind]
        if kind not in allowed:
            raise _error(
                f"{source.src}: column '{column}' ({role.what}) has type {types[column]}; "
                f"expected {words}"
            )
        if (
            source.fmt == "Parquet"
            and role.kind in (_CLASS, _STATUS)
            and kind == "string"
            and column not in partition_keys
        ):
            types[column] = _DICT  # decoded straight from Parquet dictionary pages
            dictionary_columns.append(column)

    used_partitions = [k for k in partition_keys if k in types]
    partitioning = (
        ds.HivePartitioning(pa.schema([(k, pa.string()) for k in used_partitions]))
        if used_partitions
        else None
    )
    schema = pa.schema([(c, types[c]) for c in dict.fromkeys(n for _, n in chosen)])
    return _Plan(tuple(chosen), schema, partitioning, tuple(dictionary_columns), tuple(notes))


def _scan(source: _Source, plan: _Plan) -> tuple[int | None, Iterator[pa.RecordBatch]]:
    """The number of rows when known from metadata (Parquet), and the record batches in order."""
    fmt: ds.FileFormat
    if source.fmt == "Parquet":
        fmt = ds.ParquetFileFormat(
            read_options=ds.ParquetReadOptions(dictionary_columns=list(plan.dictionary_columns))
        )
    else:
        fmt = _csv_format(plan.schema.names)

    def failure(exc: BaseException) -> LogSchemaError:
        return _error(f"cannot read {source.src} as {source.fmt}: {_first_line(exc)}")

    try:
        dataset = ds.dataset(
            list(source.files),
            schema=plan.schema,
            format=fmt,
            partitioning=plan.partitioning,
            partition_base_dir=source.base,
            filesystem=source.fs,
        )
        total = dataset.count_rows() if source.fmt == "Parquet" else None
        scanner = dataset.scanner(
            columns=plan.schema.names, batch_size=_BATCH_ROWS, use_threads=True, batch_readahead=4
        )
    except _ARROW_ERRORS as exc:
        raise failure(exc) from None

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from scanner.to_batches()
        except _ARROW_ERRORS as exc:
            raise failure(exc) from None

    return total, batches()
