"""Reading and validating pilot logs (DESIGN sections 1 and 7).

One row per request, from a Parquet file, a directory / hive-partitioned Parquet dataset, or CSV,
on this machine or behind a URI pyarrow's filesystems know (``s3://``, ``gs://``, ``file://``).
Only the columns costsim needs are read. Every problem becomes a `LogSchemaError` whose message
is one line naming the file, the column and the rows concerned.

Every record batch (column projection) is converted to numpy and validated at once
(`Chunk`). `read_pilot` collects the batches into a `PilotLog` in memory (and refuses, in one
line, a log that would not fit); `open_log` plans a log for streaming instead: it is cut into
`ScanItem`s of whole Parquet row groups, each knowing the position of its first row from the
files' metadata, and an `ItemReader` gives an item's chunks, so that items can be read on any
worker (`costsim.model.summaries`). Row numbers in messages are 1-based positions in the whole log
(files of a directory in sorted path order, rows in file order), however it is read.
"""

from __future__ import annotations

import os
import re
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds
import pyarrow.fs as pa_fs
import pyarrow.parquet as pq

from costsim.errors import LogSchemaError
from costsim.progress import Progress


@dataclass(frozen=True)
class ColumnMap:
    """Names of the pilot-log columns; every one can be overridden from the CLI."""

    query_class: str = "query_class"
    cost: str = "cost_usd"
    input_tokens: str = "input_tokens"
    output_tokens: str = "output_tokens"
    cached_input_tokens: str = "cached_input_tokens"
    timestamp: str = "timestamp"
    latency: str = "latency_ms"
    status: str = "status"
    error: str = "error"
    retries: str = "retries"
    cold_start: str = "cold_start"
    calls: str = "calls"


@dataclass(frozen=True)
class DroppedRows:
    """Rows removed by ``drop_invalid``: why, how many, and the first few 1-based row numbers."""

    reason: str
    count: int
    first_rows: tuple[int, ...]


@dataclass(frozen=True)
class PilotLog:
    """A validated pilot log as column arrays (one element per request).

    Optional columns are ``None`` when the log does not have them. Numeric arrays are float64
    (tokens included, so that sums never overflow); flags are bool; ``retries`` is int64;
    ``timestamp`` is float64 epoch seconds (UTC).
    """

    source: str
    classes: tuple[str, ...]
    class_index: np.ndarray
    cost: np.ndarray | None
    input_tokens: np.ndarray | None
    output_tokens: np.ndarray | None
    cached_input_tokens: np.ndarray | None
    timestamp: np.ndarray | None
    latency_ms: np.ndarray | None
    error: np.ndarray | None
    retries: np.ndarray | None
    cold_start: np.ndarray | None
    rows_read: int
    columns: ColumnMap = field(default_factory=ColumnMap)
    dropped: tuple[DroppedRows, ...] = ()
    notes: tuple[str, ...] = ()
    calls: np.ndarray | None = None  # LLM calls per query (a trace's), when the log has them

    @property
    def n_rows(self) -> int:
        return int(self.class_index.shape[0])


# --------------------------------------------------------------------------------------------
# Roles: what each ColumnMap field means and how its values are converted.

_CLASS, _NUMBER, _COUNT, _TIME, _STATUS, _FLAG = (
    "class",
    "number",
    "count",
    "time",
    "status",
    "flag",
)


@dataclass(frozen=True)
class _Role:
    attr: str  # field of ColumnMap
    kind: str  # one of the converters above
    what: str  # words for messages
    output: str  # field of PilotLog
    option: str  # the CLI option that names the column


_ROLES: tuple[_Role, ...] = (
    _Role("query_class", _CLASS, "the query class", "class_index", "--class-col"),
    _Role("cost", _NUMBER, "cost in USD", "cost", "--cost-col"),
    _Role("input_tokens", _NUMBER, "input tokens", "input_tokens", "--input-tokens-col"),
    _Role("output_tokens", _NUMBER, "output tokens", "output_tokens", "--output-tokens-col"),
    _Role(
        "cached_input_tokens",
        _NUMBER,
        "cached input tokens",
        "cached_input_tokens",
        "--cached-tokens-col",
    ),
    _Role("timestamp", _TIME, "arrival time", "timestamp", "--timestamp-col"),
    _Role("latency", _NUMBER, "latency in ms", "latency_ms", "--latency-col"),
    _Role("status", _STATUS, "request outcome ok/error", "error", "--status-col"),
    _Role("error", _FLAG, "error flag", "error", "--error-col"),
    _Role("retries", _COUNT, "retry count", "retries", "--retries-col"),
    _Role("cold_start", _FLAG, "cold-start flag", "cold_start", "--cold-start-col"),
    _Role("calls", _NUMBER, "calls per query", "calls", "--calls-col"),
)
_COST_ROLES = ("cost", "input_tokens", "output_tokens")

_DTYPES: dict[str, np.dtype] = {
    _CLASS: np.dtype(np.int32),
    _NUMBER: np.dtype(np.float64),
    _COUNT: np.dtype(np.int64),
    _TIME: np.dtype(np.float64),
    _STATUS: np.dtype(np.bool_),
    _FLAG: np.dtype(np.bool_),
}
_PARQUET_SUFFIXES = (".parquet", ".pq")
_CSV_SUFFIXES = (".csv", ".csv.gz")
_BATCH_ROWS = 1 << 18
_MAX_ROWS_SHOWN = 5
_MAX_EXAMPLES = 3
# Largest magnitude a cost, token count, latency or retry count may have. The fit squares
# values summed over up to ~1e9 rows (and the GPD likelihood exponentiates them); 1e15 keeps
# that far from float overflow, and no real request costs $1e15 or has 1e15 tokens.
MAX_VALUE = 1e15
_DICT = pa.dictionary(pa.int32(), pa.string())
# CSV cells read as missing. "NaN"/"inf" are deliberately absent: they parse as float NaN/inf.
_CSV_NULLS = ["", "NA", "N/A", "n/a", "NULL", "null", "None", "#N/A"]
_NUMBER_PATTERN = r"^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|(?i:nan|inf|infinity))$"
_OK_WORDS = frozenset({"ok", "success", "succeeded"})
_ERROR_WORDS = frozenset({"error", "failed", "failure", "fail", "timeout"})
_TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
_FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})
_TIME_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
# Magnitudes from which a number since the epoch is read in a finer unit than seconds.
_EPOCH_UNITS = (
    (1e17, "nanoseconds", 1e9),
    (1e14, "microseconds", 1e6),
    (1e11, "milliseconds", 1e3),
)


# --------------------------------------------------------------------------------------------
# Locating the files.


@dataclass(frozen=True)
class _Source:
    src: str  # the path as given, for messages
    fmt: str  # "Parquet" or "CSV"
    files: tuple[str, ...]  # file paths, sorted
    base: str | None  # the directory, when the source is one
    filesystem: pa_fs.FileSystem | None = None  # None: the local one (a plain path)

    @property
    def fs(self) -> pa_fs.FileSystem:
        return self.filesystem if self.filesystem is not None else pa_fs.LocalFileSystem()

    def parts(self, file: str) -> list[str]:
        """The file's path below the directory, as a list of names."""
        if self.base is None:
            return [file]
        if self.filesystem is None:
            return os.path.relpath(file, self.base).split(os.sep)
        return file[len(self.base.rstrip("/")) + 1 :].split("/")

    def label(self, file: str) -> str:
        """How a file of the source is named in messages."""
        if self.base is None:
            return self.src
        return "/".join(self.parts(file))

    def path_for_message(self, file: str) -> str:
        if self.base is None:
            return self.src
        if self.filesystem is None:
            return os.path.join(self.src, self.label(file))
        return f"{self.src.rstrip('/')}/{self.label(file)}"


def is_table_name(name: str) -> bool:
    """A file name costsim's table may have (.parquet, .pq, .csv, compressed or not)."""
    return _format_of(name) is not None


def _format_of(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith(_PARQUET_SUFFIXES):
        return "Parquet"
    if lower.endswith(_CSV_SUFFIXES):
        return "CSV"
    return None


def is_uri(src: str) -> bool:
    """A path naming a filesystem (``file://``, ``s3://``, ``gs://``, ``hdfs://`` ...)."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", src) is not None


def _locate(src: str) -> _Source:
    if is_uri(src):
        return _locate_uri(src)
    path = Path(src)
    if not path.exists():
        raise _error(f"pilot log not found: {src}")
    if path.is_file():
        fmt = _format_of(path.name)
        if fmt is None:
            raise _error(
                f"{src}: not a Parquet or CSV file "
                "(expected .parquet, .pq, .csv or a directory of them)"
            )
        if path.stat().st_size == 0:
            raise _error(f"pilot log {src} has no rows")
        return _Source(src, fmt, (str(path),), None)
    if not path.is_dir():
        raise _error(f"{src}: not a Parquet or CSV file or a directory")
    found: dict[str, list[str]] = {"Parquet": [], "CSV": []}
    try:
        for root, dirs, names in os.walk(path):
            # Hidden and underscore-prefixed entries (_SUCCESS, _metadata, .crc) are not data.
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
            for name in names:
                fmt = _format_of(name)
                if fmt is not None and not name.startswith((".", "_")):
                    found[fmt].append(os.path.join(root, name))
    except OSError as exc:  # pragma: no cover - os.walk swallows most errors
        raise _error(f"cannot read directory {src}: {_first_line(exc)}") from None
    return _directory(src, found, lambda f: os.path.relpath(f, path).split(os.sep), str(path))


def _directory(
    src: str,
    found: dict[str, list[str]],
    parts: Callable[[str], list[str]],
    base: str,
    filesystem: pa_fs.FileSystem | None = None,
) -> _Source:
    if found["Parquet"] and found["CSV"]:
        raise _error(
            f"{src}: directory holds both Parquet and CSV files; keep one format per directory"
        )
    fmt = "Parquet" if found["Parquet"] else "CSV"
    files = sorted(found[fmt], key=parts)
    if not files:
        raise _error(
            f"{src}: no Parquet or CSV files in directory (expected .parquet, .pq or .csv files)"
        )
    return _Source(src, fmt, tuple(files), base, filesystem)


@dataclass(frozen=True)
class UriListing:
    """What is at a URI on a pyarrow filesystem: one file (``files`` empty), or a directory's
    files below ``root`` as (their path's parts below it, their path on ``fs``), sorted, without
    hidden or underscore-prefixed entries (``_SUCCESS``, ``_metadata``, ``.crc``: not data)."""

    fs: pa_fs.FileSystem
    root: str
    info: pa_fs.FileInfo
    files: list[tuple[list[str], str]]

    @property
    def is_file(self) -> bool:
        return bool(self.info.type == pa_fs.FileType.File)


def list_uri(src: str) -> UriListing:
    """The file, or the directory's files, at a URI (``s3://``, ``gs://``, ``file://`` ...):
    one request, and one listing for a directory. Missing is ``pilot log not found``, and
    the filesystem's own errors are one line."""
    try:
        fs, root = pa_fs.FileSystem.from_uri(src)
        info = fs.get_file_info(root)
    except _ARROW_ERRORS as exc:
        raise _error(f"cannot open {src}: {_first_line(exc)}") from None
    if info.type == pa_fs.FileType.NotFound:
        raise _error(f"pilot log not found: {src}")
    if info.type == pa_fs.FileType.File:
        return UriListing(fs, root, info, [])
    root = root.rstrip("/")
    try:
        listing = fs.get_file_info(pa_fs.FileSelector(root, recursive=True))
    except _ARROW_ERRORS as exc:
        raise _error(f"cannot read directory {src}: {_first_line(exc)}") from None
    files = []
    for entry in listing:
        parts = entry.path[len(root) + 1 :].split("/")
        if entry.type == pa_fs.FileType.File and not any(p.startswith((".", "_")) for p in parts):
            files.append((parts, entry.path))
    return UriListing(fs, root, info, sorted(files))


def _locate_uri(src: str) -> _Source:
    """A file or directory of costsim's own table on a pyarrow filesystem."""
    at = list_uri(src)
    if at.is_file:
        fmt = _format_of(at.info.base_name)
        if fmt is None:
            raise _error(
                f"{src}: not a Parquet or CSV file "
                "(expected .parquet, .pq, .csv or a directory of them)"
            )
        if at.info.size == 0:
            raise _error(f"pilot log {src} has no rows")
        return _Source(src, fmt, (at.root,), None, at.fs)

    def parts(file: str) -> list[str]:
        return file[len(at.root) + 1 :].split("/")

    found: dict[str, list[str]] = {"Parquet": [], "CSV": []}
    for names, path in at.files:
        fmt = _format_of(names[-1])
        if fmt is not None:
            found[fmt].append(path)
    return _directory(src, found, parts, at.root, at.fs)


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0].strip() if text else type(exc).__name__
    line = re.sub(r"^Could not open \w+ input source '.*?': ", "", line)
    if len(line) > limit:
        line = line[: limit - 3] + "..."
    return line


def _error(message: str) -> LogSchemaError:
    """The error, on one line whatever the file or column names hold."""
    return LogSchemaError(" ".join(message.splitlines()))


_ARROW_ERRORS = (pa.ArrowException, OSError, UnicodeDecodeError)


# --------------------------------------------------------------------------------------------
# Planning the read: which columns exist, with which types, in which files.


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


# --------------------------------------------------------------------------------------------
# Converters: one arrow array in, a numpy array and the problems found out.

# (reason, mask of offending rows, a few offending values for the message)
_Problem = tuple[str, np.ndarray, list[str]]


def _null_mask(arr: pa.Array) -> np.ndarray | None:
    if arr.null_count == 0:
        return None
    return np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def _examples(arr: pa.Array, mask: np.ndarray) -> list[str]:
    picked = arr.filter(pa.array(mask)).slice(0, 50).to_pylist()
    return [repr(v) for v in dict.fromkeys(picked)][:_MAX_EXAMPLES]


def _is_stringlike(t: pa.DataType) -> bool:
    return _kind_of(t) == "string"


def _to_numbers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray | None, list[_Problem]]:
    """Numeric values (integers stay integers unless nulls make them float, NaN where
    missing), the missing mask, and 'not a number' problems."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    n = len(arr)
    if pa.types.is_null(t):
        return np.full(n, np.nan), np.ones(n, dtype=bool), []
    if _is_stringlike(t):
        return _parse_numbers(arr)
    if pa.types.is_decimal(t):
        arr = pc.cast(arr, pa.float64())
    return np.asarray(arr.to_numpy(zero_copy_only=False)), _null_mask(arr), []


def _parse_numbers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray | None, list[_Problem]]:
    try:  # fast path: every present value is a plain number
        parsed = pc.cast(arr, pa.float64())
        values = np.asarray(parsed.to_numpy(zero_copy_only=False), dtype=np.float64)
        return values, _null_mask(parsed), []
    except pa.ArrowInvalid:
        pass
    text = pc.utf8_trim_whitespace(arr)
    missing = np.asarray(
        pc.fill_null(pc.equal(pc.binary_length(text), 0), True).to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    good = pc.fill_null(pc.match_substring_regex(text, _NUMBER_PATTERN), False)
    parsed = pc.cast(pc.if_else(good, text, pa.scalar(None, text.type)), pa.float64())
    values = np.asarray(parsed.to_numpy(zero_copy_only=False), dtype=np.float64)
    bad = ~missing & ~np.asarray(good.to_numpy(zero_copy_only=False), dtype=bool)
    problems: list[_Problem] = []
    if bad.any():
        problems.append(("not a number", bad, _examples(text, bad)))
    return values, (missing if missing.any() else None), problems


def _check_range(
    values: np.ndarray,
    missing: np.ndarray | None,
    earlier: list[_Problem],
    *,
    allow_negative: bool = False,
    largest: float | None = MAX_VALUE,
) -> list[_Problem]:
    """``earlier`` problems plus those of a numeric column: missing, NaN, infinite, negative,
    and (with ``largest``) magnitudes beyond it, which would overflow the fit's arithmetic.

    Values that are NaN because they are missing or already reported (e.g. not a number) are
    not reported again as NaN.
    """
    problems = list(earlier)
    if missing is not None:
        problems.append(("missing", missing, []))
    lo, hi = values.min(), values.max()
    bound = np.inf if largest is None else largest
    if (allow_negative or lo >= 0) and -bound <= lo and hi <= bound:
        return problems  # no NaN either: min/max would be NaN
    nan = np.isnan(values)
    if missing is not None:
        nan &= ~missing
    for _, mask, _ in earlier:
        nan &= ~mask
    inf = np.isinf(values)
    if nan.any():
        problems.append(("NaN", nan, []))
    if inf.any():
        problems.append(("infinite", inf, []))
    if not allow_negative:
        negative = (values < 0) & ~inf
        if negative.any():
            problems.append(("negative", negative, []))
    if largest is not None:
        with np.errstate(invalid="ignore"):
            huge = (np.abs(values) > largest) & ~inf
        if huge.any():
            problems.append(
                (f"too large (above {largest:g})", huge, [_fmt_number(values[huge][0])])
            )
    return problems


def _fmt_number(x: float) -> str:
    return f"{x:g}"


def _convert_number(arr: pa.Array) -> tuple[np.ndarray, list[_Problem]]:
    values, missing, problems = _to_numbers(arr)
    return values, _check_range(values, missing, problems)


def _convert_count(arr: pa.Array) -> tuple[np.ndarray, list[_Problem]]:
    values, problems = _convert_number(arr)
    if values.dtype.kind in "iu":
        return values.astype(np.int64, copy=False), problems
    with np.errstate(invalid="ignore"):
        fractional = np.isfinite(values) & (
            (np.floor(values) != values) | (np.abs(values) >= 2.0**62)
        )
    if fractional.any():
        problems.append(("not a whole number", fractional, [_fmt_number(values[fractional][0])]))
    bad = np.zeros(values.shape[0], dtype=bool)
    for _, mask, _ in problems:
        bad |= mask
    if bad.any():
        values = np.where(bad, 0.0, values)
    return values.astype(np.int64), problems


def _dictionary_parts(arr: pa.Array) -> tuple[list[object], np.ndarray, np.ndarray | None]:
    """Distinct values, the index of each row into them, and the null mask."""
    if not pa.types.is_dictionary(arr.type):
        if pa.types.is_null(arr.type):
            return [], np.zeros(len(arr), dtype=np.int32), np.ones(len(arr), dtype=bool)
        if not _is_stringlike(arr.type):
            arr = pc.cast(arr, pa.string())
        arr = pc.dictionary_encode(arr)
    indices = arr.indices
    nulls = _null_mask(indices)
    if nulls is not None:
        indices = pc.fill_null(indices, 0)
    labels = arr.dictionary.to_pylist()
    return labels, np.asarray(indices.to_numpy(zero_copy_only=False)), nulls


def _lookup(
    arr: pa.Array, mapping: Callable[[object], int], missing_code: int
) -> tuple[np.ndarray, list[str]]:
    """Map each distinct value through ``mapping``; return per-row codes and unknown values."""
    labels, idx, nulls = _dictionary_parts(arr)
    lut = np.array([mapping(v) for v in labels] or [missing_code], dtype=np.int32)
    codes = lut[idx]
    if nulls is not None:
        codes[nulls] = missing_code
    unknown = [repr(v) for v, code in zip(labels, lut, strict=False) if code == _UNKNOWN]
    return codes, unknown[:_MAX_EXAMPLES]


def _word(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip().lower()
    return text or None


_MISSING, _UNKNOWN = -2, -1


def _convert_status(arr: pa.Array) -> tuple[np.ndarray, list[_Problem]]:
    def mapping(value: object) -> int:
        word = _word(value)
        if word is None:
            return _MISSING
        return 0 if word in _OK_WORDS else 1 if word in _ERROR_WORDS else _UNKNOWN

    codes, unknown = _lookup(arr, mapping, _MISSING)
    return codes == 1, _code_problems(codes, unknown, "not ok/error")


def _convert_flag(arr: pa.Array) -> tuple[np.ndarray, list[_Problem]]:
    t = arr.type
    if pa.types.is_boolean(t):
        missing = _null_mask(arr)
        values = np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)
        return values, [("missing", missing, [])] if missing is not None else []
    if _kind_of(t) == "number":
        numbers, missing, _ = _to_numbers(arr)
        bad = (numbers != 0) & (numbers != 1)
        if missing is not None:
            bad &= ~missing
        problems: list[_Problem] = [("missing", missing, [])] if missing is not None else []
        if bad.any():
            problems.append(("not a boolean", bad, [_fmt_number(numbers[bad][0])]))
        return numbers == 1, problems

    def mapping(value: object) -> int:
        word = _word(value)
        if word is None:
            return _MISSING
        return 1 if word in _TRUE_WORDS else 0 if word in _FALSE_WORDS else _UNKNOWN

    codes, unknown = _lookup(arr, mapping, _MISSING)
    return codes == 1, _code_problems(codes, unknown, "not a boolean")


def _code_problems(codes: np.ndarray, unknown_values: list[str], reason: str) -> list[_Problem]:
    problems: list[_Problem] = []
    if codes.min() >= 0:
        return problems
    missing = codes == _MISSING
    if missing.any():
        problems.append(("missing", missing, []))
    unknown = codes == _UNKNOWN
    if unknown.any():
        problems.append((reason, unknown, unknown_values))
    return problems


class _ClassCodes:
    """Provisional class codes, stable across batches; sorted once all rows are read."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}

    def convert(self, arr: pa.Array) -> tuple[np.ndarray, list[_Problem]]:
        def mapping(value: object) -> int:
            if value is None:
                return _MISSING
            label = str(value)
            if not label.strip():
                return _MISSING
            return self.codes.setdefault(label, len(self.codes))

        codes, _ = _lookup(arr, mapping, _MISSING)
        empty = codes < 0
        return codes, [("empty", empty, [])] if empty.any() else []

    def labels(self) -> list[str]:
        """The labels seen so far, by code."""
        return list(self.codes)  # dicts keep insertion order: label of code i is the i-th


class _Timestamps:
    """Arrival times to epoch seconds.

    Numbers are epoch seconds, or milliseconds, microseconds or nanoseconds since the epoch when
    their magnitude says so (at least 1e11, 1e14, 1e17: a number of seconds that large would lie
    thousands of years ahead). The unit is read from each value, so the result does not depend
    on how the log is cut into batches, files or workers.
    """

    def __init__(self) -> None:
        self.naive = False
        self.units: dict[str, int] = {}  # unit name -> rows converted from it
        self.string_target: pa.DataType | None = None  # the cast that parsed the last strings

    def convert(self, arr: pa.Array) -> tuple[np.ndarray, list[_Problem]]:
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        t = arr.type
        problems: list[_Problem] = []
        if pa.types.is_timestamp(t) or pa.types.is_date(t):
            seconds, missing = self._from_temporal(arr)
        elif _is_stringlike(t):
            seconds, missing, problems = self._from_strings(arr)
        else:
            seconds, missing, problems = _to_numbers(arr)
            seconds = self._scale(seconds)
        return seconds, _check_range(seconds, missing, problems, allow_negative=True, largest=None)

    def _scale(self, values: np.ndarray) -> np.ndarray:
        """Numbers since the epoch in seconds, each by its magnitude."""
        values = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            magnitude = np.abs(values)
            if not np.nanmax(magnitude, initial=0.0) >= _EPOCH_UNITS[-1][0]:
                return values
            divisor = np.ones(values.shape[0])
            for threshold, unit, factor in _EPOCH_UNITS:
                at = (magnitude >= threshold) & (divisor == 1.0) & np.isfinite(magnitude)
                count = int(np.count_nonzero(at))
                if count:
                    divisor[at] = factor
                    self.units[unit] = self.units.get(unit, 0) + count
        return values / divisor

    def merge(self, other: _Timestamps) -> None:
        self.naive = self.naive or other.naive
        for unit, count in other.units.items():
            self.units[unit] = self.units.get(unit, 0) + count

    def notes(self, column: str) -> list[str]:
        notes: list[str] = []
        if self.naive:
            notes.append(f"{column}: no time zone given; read as UTC")
        for _, unit, _ in reversed(_EPOCH_UNITS):
            if unit in self.units:
                notes.append(
                    f"{column}: numbers look like {unit} since the epoch; converted to seconds"
                )
        return notes

    def _from_temporal(self, arr: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
        t = arr.type
        if pa.types.is_timestamp(t):
            scale = _TIME_UNITS[t.unit]
            self.naive = self.naive or t.tz is None
            raw = arr.view(pa.int64())
        elif pa.types.is_date32(t):
            scale = 1.0 / 86400.0
            raw = arr.view(pa.int32())
        else:  # date64: milliseconds
            scale = 1e3
            raw = arr.view(pa.int64())
        seconds = np.asarray(raw.to_numpy(zero_copy_only=False))
        if scale != 1.0:
            seconds = seconds / scale
        return seconds, _null_mask(arr)

    def _from_strings(self, arr: pa.Array) -> tuple[np.ndarray, np.ndarray | None, list[_Problem]]:
        # A failed cast costs as much as a successful one: try first what worked last time.
        targets = [pa.float64(), pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")]
        if self.string_target is not None:
            targets.remove(self.string_target)
            targets.insert(0, self.string_target)
        for target in targets:
            try:
                parsed = pc.cast(arr, target)
            except pa.ArrowInvalid:
                continue
            self.string_target = target
            if target == pa.float64():
                values = np.asarray(parsed.to_numpy(zero_copy_only=False), dtype=np.float64)
                return self._scale(values), _null_mask(parsed), []
            seconds, missing = self._from_temporal(parsed)
            return seconds, missing, []
        return self._from_mixed_strings(arr)

    def _from_mixed_strings(
        self, arr: pa.Array
    ) -> tuple[np.ndarray, np.ndarray | None, list[_Problem]]:
        # Mixed ISO 8601 forms (offsets on some rows, not others): parse value by value.
        import pandas as pd  # only on this slow path

        text = pc.utf8_trim_whitespace(arr)
        missing = np.asarray(
            pc.fill_null(pc.equal(pc.binary_length(text), 0), True).to_numpy(zero_copy_only=False),
            dtype=bool,
        )
        strings = np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)
        strings[missing] = None
        parsed = pd.to_datetime(
            pd.Series(strings, dtype=object), utc=True, format="ISO8601", errors="coerce"
        )
        nat = np.asarray(parsed.isna().to_numpy(), dtype=bool)
        ns = parsed.to_numpy(dtype="datetime64[ns]").view(np.int64)
        seconds = ns.astype(np.float64) / 1e9
        seconds[nat] = np.nan
        bad = nat & ~missing
        zoned = pc.match_substring_regex(
            text, r"\d:\d\d(?::\d\d(?:[.,]\d+)?)?\s*(?:[zZ]|[+-]\d\d(?::?\d\d)?)$"
        )
        naive = ~np.asarray(pc.fill_null(zoned, False).to_numpy(zero_copy_only=False), dtype=bool)
        self.naive = self.naive or bool((naive & ~nat).any())
        problems: list[_Problem] = []
        if bad.any():
            problems.append(("not an ISO 8601 date/time", bad, _examples(text, bad)))
        return seconds, (missing if missing.any() else None), problems


# --------------------------------------------------------------------------------------------
# Converting and collecting batches.


@dataclass
class _Issue:
    count: int = 0
    rows: list[int] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def extend(self, later: _Issue) -> None:
        """Add the problems of rows that come after this issue's."""
        self.count += later.count
        self.rows.extend(later.rows[: _MAX_ROWS_SHOWN - len(self.rows)])
        for example in later.examples:
            if len(self.examples) < _MAX_EXAMPLES and example not in self.examples:
                self.examples.append(example)


@dataclass
class Issues:
    """The problems found in a log's rows: per column (role) and reason, how many rows, the
    first few 1-based row numbers and a few offending values. Mergeable: the issues of a
    later part of the log `extend` those of an earlier one."""

    by_role: dict[str, tuple[str, dict[str, _Issue]]] = field(default_factory=dict)

    def add(
        self, role: _Role, column: str, problems: list[_Problem], offset: int
    ) -> np.ndarray | None:
        """Record one batch's problems of a column (``offset``: 0-based position of its first
        row); returns the mask of its rows with any problem (None: none)."""
        bad: np.ndarray | None = None
        for reason, mask, examples in problems:
            count = int(np.count_nonzero(mask))
            if count == 0:
                continue
            issue = self.by_role.setdefault(role.attr, (column, {}))[1].setdefault(reason, _Issue())
            issue.count += count
            room = _MAX_ROWS_SHOWN - len(issue.rows)
            if room > 0:
                issue.rows.extend(int(i) + offset + 1 for i in np.flatnonzero(mask)[:room])
            for example in examples:
                if len(issue.examples) < _MAX_EXAMPLES and example not in issue.examples:
                    issue.examples.append(example)
            bad = mask.copy() if bad is None else (bad | mask)
        return bad

    def extend(self, later: Issues) -> None:
        for attr, (column, reasons) in later.by_role.items():
            mine = self.by_role.setdefault(attr, (column, {}))[1]
            for reason, issue in reasons.items():
                mine.setdefault(reason, _Issue()).extend(issue)

    def missing(self, role: _Role) -> int:
        """Rows where the role's column is missing."""
        entry = self.by_role.get(role.attr)
        issue = entry[1].get("missing") if entry is not None else None
        return 0 if issue is None else issue.count

    def listed(self, roles: Iterable[_Role]) -> list[tuple[str, _Issue]]:
        """``("<column> <reason>", issue)`` of the given roles, in their order."""
        out: list[tuple[str, _Issue]] = []
        for role in roles:
            entry = self.by_role.get(role.attr)
            if entry is not None:
                out.extend((f"{entry[0]} {reason}", issue) for reason, issue in entry[1].items())
        return out


@dataclass
class Chunk:
    """One record batch converted and checked: per role, the column read, its values (numpy,
    of the role's dtype) and the problems found. ``offset`` is the 0-based position of the
    batch's first row in the whole log; class codes index ``labels``."""

    offset: int
    rows: int
    columns: list[tuple[_Role, str, np.ndarray, list[_Problem]]]
    labels: list[str]


class _Reader:
    """Converts the record batches of one scan (a log, or a part of it), in order."""

    def __init__(self, plan: _Plan) -> None:
        self.roles = plan.roles
        self.classes = _ClassCodes()
        self.times = _Timestamps()
        self.converters: dict[str, Callable[[pa.Array], tuple[np.ndarray, list[_Problem]]]] = {
            _CLASS: self.classes.convert,
            _NUMBER: _convert_number,
            _COUNT: _convert_count,
            _TIME: self.times.convert,
            _STATUS: _convert_status,
            _FLAG: _convert_flag,
        }

    def convert(self, batch: pa.RecordBatch, offset: int) -> Chunk:
        columns = []
        for role, name in self.roles:
            values, problems = self.converters[role.kind](batch.column(name))
            columns.append((role, name, values, problems))
        return Chunk(offset, batch.num_rows, columns, self.classes.labels())


@dataclass
class _Column:
    """One column being read into memory: values written batch by batch, and its bad rows."""

    role: _Role
    name: str
    total: int | None  # rows to expect, when known up front: values go straight into `out`
    out: np.ndarray | None = None
    pieces: list[np.ndarray] = field(default_factory=list)
    bad: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (offset, mask)

    def store(self, values: np.ndarray, offset: int) -> None:
        n = values.shape[0]
        if self.total is not None and self.out is None:
            self.out = np.empty(self.total, dtype=_DTYPES[self.role.kind])
        if self.out is not None and offset + n > self.out.shape[0]:
            # More rows than the metadata said: fall back to collecting pieces.
            self.pieces = [self.out[:offset]]
            self.out = self.total = None
        if self.out is not None:
            self.out[offset : offset + n] = values
        else:
            self.pieces.append(values)

    def values(self, rows: int) -> np.ndarray:
        """All values read (a fresh, writeable array); frees the pieces."""
        if self.out is not None:
            out = self.out[:rows]
        else:
            out = np.concatenate(self.pieces).astype(_DTYPES[self.role.kind], copy=False)
        self.out, self.pieces = None, []
        return out


def _describe(issues: list[tuple[str, _Issue]]) -> str:
    parts = []
    for reason, issue in issues:
        rows = ", ".join(str(r) for r in issue.rows)
        if issue.count > len(issue.rows):
            rows += ", ..."
        example = f", e.g. {', '.join(issue.examples)}" if issue.examples else ""
        parts.append(f"{reason} ({_plural(issue.count, 'row')}: {rows}{example})")
    return ", ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def empty_columns(
    roles: Iterable[tuple[_Role, str]], missing: Callable[[_Role], int], rows: int
) -> list[tuple[_Role, str]]:
    """The optional columns empty in every row, which are treated as absent: every column but
    the class, as long as a cost or token column is left that is not empty."""
    roles = list(roles)
    empty = [(r, n) for r, n in roles if r.kind != _CLASS and missing(r) == rows]
    usable_cost = [r for r, _ in roles if r.attr in _COST_ROLES and missing(r) != rows]
    return empty if usable_cost else []


def invalid_rows(
    src: str, rows: int, n_invalid: int, issues: list[tuple[str, _Issue]], drop_invalid: bool
) -> tuple[DroppedRows, ...]:
    """What becomes of a log with ``n_invalid`` invalid rows: the one-line error, or (with
    ``drop_invalid``) the rows dropped by reason."""
    if n_invalid == 0:
        return ()
    if n_invalid == rows:
        raise _error(f"{src}: all {_plural(rows, 'row')} are invalid: {_describe(issues)}")
    if not drop_invalid:
        raise _error(
            f"{src}: {_plural(n_invalid, 'invalid row')}: {_describe(issues)}; "
            "fix them or pass --drop-invalid"
        )
    return tuple(DroppedRows(reason, issue.count, tuple(issue.rows)) for reason, issue in issues)


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
# Streaming: a log cut into items of whole row groups, each read on its own.

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
    def times(self) -> _Timestamps:
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
