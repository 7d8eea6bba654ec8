"""Reading fields of a flat export table by dotted path, and converting them, vectorised.

Nested JSON is flattened into dotted column names when it is read (``metadata.route``). Where a
nested object is still one column -- a JSON-encoded string (CSV exports), or a Parquet map -- a
path reaches into it: ``metadata.route`` parses the ``metadata`` column as JSON objects (all rows
at once, through ``pyarrow.json``) and takes ``route``.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from costsim.errors import LogSchemaError


def flatten(table: pa.Table) -> pa.Table:
    """Structs flattened into dotted column names, recursively."""
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    return table


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _json_lines(col: pa.ChunkedArray | pa.Array, wrap: bool) -> bytes:
    """The cells of a string column as newline-delimited JSON objects (bad cells -> {})."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if not _is_text(col.type):
        col = pc.cast(col, pa.string())
    col = pc.cast(col, pa.large_string())
    # Raw newlines inside JSON are whitespace: they can go without changing the value.
    text = pc.replace_substring_regex(pc.utf8_trim_whitespace(col), r"[\r\n]", " ")
    opener = "[" if wrap else "{"
    good = pc.fill_null(pc.starts_with(text, opener), False)
    big = pa.large_string()
    if wrap:
        text = pc.binary_join_element_wise(
            pa.scalar('{"v":', big), text, pa.scalar("}", big), pa.scalar("", big)
        )
    text = pc.if_else(good, text, pa.scalar("{}", big))
    text = pc.binary_join_element_wise(text, pa.scalar("", big), pa.scalar("\n", big))
    arr = text if isinstance(text, pa.Array) else text.combine_chunks()
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[
        arr.offset : arr.offset + len(arr) + 1
    ]
    data = arr.buffers()[2]
    if data is None:
        return b""
    return data.to_pybytes()[int(offsets[0]) : int(offsets[-1])]


def parse_json_column(col: pa.ChunkedArray | pa.Array, *, wrap: bool = False) -> pa.Table:
    """A column of JSON-encoded objects (or arrays, with ``wrap``: column ``v``) as a table."""
    n = len(col)
    data = _json_lines(col, wrap)
    if n == 0 or not data:
        return pa.table({"_": pa.nulls(n)})
    try:
        table = pa_json.read_json(
            io.BytesIO(data), read_options=pa_json.ReadOptions(block_size=1 << 24)
        )
        if table.num_rows == n:
            return flatten(table)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Mixed types across rows: parse value by value (slow path, small CSV exports only).
    records = [json.loads(line) for line in data.decode("utf-8").split("\n")]
    return records_table(records)


def records_table(records: list[dict]) -> pa.Table:
    """A flat table from JSON records whose fields pyarrow cannot type on its own."""
    frame = pd.json_normalize(records, sep=".") if records else pd.DataFrame()
    for name in frame.columns:
        col = frame[name]
        if col.dtype != object:
            continue
        kinds = {
            type(v) for v in col if v is not None and not (isinstance(v, float) and np.isnan(v))
        }
        if kinds <= {str}:
            continue
        if kinds <= {int, float, bool} and bool not in kinds:
            frame[name] = pd.to_numeric(col, errors="coerce")
            continue
        frame[name] = [
            None
            if v is None or (isinstance(v, float) and np.isnan(v))
            else (json.dumps(v) if isinstance(v, (list, dict)) else str(v))
            for v in col
        ]
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table if table.num_columns else pa.table({"_": pa.nulls(len(records))})


class Fields:
    """Column look-up by dotted path, with JSON/map columns opened on demand (cached)."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.names = set(table.column_names)
        self._parsed: dict[str, Fields] = {}

    @property
    def rows(self) -> int:
        return self.table.num_rows

    def get(self, path: str) -> pa.ChunkedArray | pa.Array | None:
        if path in self.names:
            return self.table[path]
        parts = path.split(".")
        for i in range(len(parts) - 1, 0, -1):
            head, rest = ".".join(parts[:i]), ".".join(parts[i:])
            if head not in self.names:
                continue
            col = self.table[head]
            if pa.types.is_map(col.type):
                key = pa.scalar(rest, col.type.key_type)
                return pc.map_lookup(col, key, "first")
            if _is_text(col.type):
                inner = self._parsed.get(head)
                if inner is None:
                    inner = Fields(parse_json_column(col))
                    self._parsed[head] = inner
                return inner.get(rest)
        return None

    def first(self, *paths: str) -> tuple[pa.ChunkedArray | pa.Array | None, str | None]:
        """The first of ``paths`` that exists and has a value in some row."""
        fallback: tuple[pa.ChunkedArray | pa.Array | None, str | None] = (None, None)
        for path in paths:
            col = self.get(path)
            if col is None:
                continue
            if col.null_count < len(col):
                return col, path
            if fallback[0] is None:
                fallback = (col, path)
        return fallback

    def has(self, *paths: str) -> bool:
        return any(self.get(p) is not None for p in paths)

    def _existing(self, paths: tuple[str, ...]) -> list[pa.ChunkedArray | pa.Array]:
        cols = (self.get(p) for p in paths)
        return [c for c in cols if c is not None]

    def number(self, *paths: str) -> np.ndarray:
        """The first of ``paths`` that has a value, row by row (NaN where none has)."""
        out = np.full(self.rows, np.nan)
        for col in self._existing(paths):
            values = to_float(col, self.rows)
            out = np.where(np.isnan(out), values, out)
        return out

    def numbers_sum(self, *paths: str) -> np.ndarray:
        """Sum of the fields that exist (missing values count 0); NaN where all are missing."""
        total = np.zeros(self.rows)
        seen = np.zeros(self.rows, dtype=bool)
        for path in paths:
            col = self.get(path)
            if col is None:
                continue
            values = to_float(col, self.rows)
            ok = ~np.isnan(values)
            total[ok] += values[ok]
            seen |= ok
        total[~seen] = np.nan
        return total

    def text(self, *paths: str) -> pa.Array:
        """The first of ``paths`` that has a value, row by row (null where none has)."""
        cols = [to_text(c, self.rows) for c in self._existing(paths)]
        if not cols:
            return pa.nulls(self.rows, pa.string())
        return cols[0] if len(cols) == 1 else pc.coalesce(*cols)

    def time(self, *paths: str) -> np.ndarray:
        out = np.full(self.rows, np.nan)
        for col in self._existing(paths):
            values = to_seconds(col, self.rows)
            out = np.where(np.isnan(out), values, out)
        return out

    def tag_lists(self, path: str) -> pa.Array | None:
        """A list<string> column of tags, from a list column or JSON-encoded arrays."""
        col = self.get(path)
        if col is None:
            return None
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            return pc.cast(col, pa.list_(pa.string()))
        if _is_text(col.type):
            parsed = parse_json_column(col, wrap=True)
            if "v" in parsed.column_names:
                v = parsed["v"].combine_chunks()
                if pa.types.is_list(v.type):
                    return pc.cast(v, pa.list_(pa.string()))
                return pa.array(
                    [None if s is None else json.loads(s) for s in v.to_pylist()],
                    pa.list_(pa.string()),
                )
            return pa.nulls(len(col), pa.list_(pa.string()))
        return None


def to_float(col: pa.ChunkedArray | pa.Array | None, rows: int) -> np.ndarray:
    if col is None:
        return np.full(rows, np.nan)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    t = col.type
    if pa.types.is_null(t):
        return np.full(rows, np.nan)
    if pa.types.is_dictionary(t):
        col = col.dictionary_decode()
        t = col.type
    if pa.types.is_boolean(t):
        col = pc.cast(col, pa.int8())
    if _is_text(t):
        try:
            col = pc.cast(pc.if_else(pc.equal(col, ""), pa.scalar(None, t), col), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            series = pd.to_numeric(pd.Series(col.to_pandas(), dtype=object), errors="coerce")
            return np.asarray(series, dtype=np.float64)
    try:
        values = pc.cast(col, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return np.full(rows, np.nan)
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)


def to_text(col: pa.ChunkedArray | pa.Array | None, rows: int) -> pa.Array:
    if col is None:
        return pa.nulls(rows, pa.string())
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.dictionary_decode()
        t = col.type
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        col = pc.list_element(pc.if_else(pc.greater(pc.list_value_length(col), 0), col, None), 0)
        t = col.type
    if pa.types.is_null(t):
        return pa.nulls(rows, pa.string())
    if pa.types.is_floating(t):
        # 3.0 -> "3": ids and labels read as floats (CSV) should not grow a ".0".
        whole = pc.fill_null(pc.equal(col, pc.floor(col)), False)
        as_int = pc.cast(pc.if_else(whole, col, None), pa.int64(), safe=False)
        col = pc.if_else(whole, pc.cast(as_int, pa.string()), pc.cast(col, pa.string()))
    try:
        out = pc.cast(col, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.nulls(rows, pa.string())
    # Empty strings are missing values (Langfuse writes "" for unset fields).
    return pc.if_else(pc.equal(pc.utf8_trim_whitespace(out), ""), pa.scalar(None, pa.string()), out)


_UNITS = ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3))


def to_seconds(col: pa.ChunkedArray | pa.Array | None, rows: int) -> np.ndarray:
    """Epoch seconds (float64, NaN when missing) from datetimes, ISO strings or epoch numbers
    (seconds, ms, us or ns, told apart by magnitude). Strings without a zone are UTC."""
    if col is None:
        return np.full(rows, np.nan)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    t = col.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        col = pc.cast(col, pa.timestamp("ns", tz=getattr(t, "tz", None) or "UTC"))
        ns = np.asarray(col.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        ns[np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)] = np.nan
        return ns / 1e9
    if _is_text(t):
        numeric = pc.match_substring_regex(col, r"^\s*[0-9]+(\.[0-9]*)?\s*$")
        if pc.all(pc.or_kleene(numeric, col.is_null())).as_py() is not False:
            return _scale(to_float(col, rows))
        # Arrow parses strict ISO 8601 (all naive, or all with a zone) as pandas does; anything
        # else (mixed, malformed, other precisions) goes to pandas, which leaves bad cells NaN.
        for zone in (None, "UTC"):
            try:
                stamps = pc.cast(col, pa.timestamp("ns", tz=zone))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
            ns = np.asarray(stamps.cast(pa.int64()).to_numpy(zero_copy_only=False), np.float64)
            ns[np.asarray(stamps.is_null().to_numpy(zero_copy_only=False), dtype=bool)] = np.nan
            return ns / 1e9
        parsed = pd.to_datetime(
            pd.Series(col.to_pandas(), dtype=object), utc=True, format="ISO8601", errors="coerce"
        )
        ns = parsed.to_numpy(dtype="datetime64[ns]").view(np.int64).astype(np.float64)
        ns[np.asarray(parsed.isna().to_numpy(), dtype=bool)] = np.nan
        return ns / 1e9
    return _scale(to_float(col, rows))


def _scale(values: np.ndarray) -> np.ndarray:
    finite = np.abs(values[np.isfinite(values)])
    if finite.size:
        magnitude = float(np.median(finite))
        for threshold, divisor in _UNITS:
            if magnitude >= threshold:
                return values / divisor
    return values


def error(message: str) -> LogSchemaError:
    """A LogSchemaError on one line."""
    return LogSchemaError(" ".join(message.split()))
