"""The one internal table a pilot log becomes (`PilotLog`), the names of its columns
(`ColumnMap`), and what each column means and how its values are converted (its role).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from costsim.inputs import ColumnMap


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
