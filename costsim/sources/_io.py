"""Finding the files of an export and reading them into flat tables.

What a file holds is told from its bytes, never its name: gzip by its magic number (any file may
be gzipped), Parquet by ``PAR1``, JSON by a leading ``{`` or ``[`` (JSON lines, one JSON array, or
one JSON document), CSV otherwise. A directory is read as one log: its data files in sorted path
order (hidden and ``_``-prefixed entries and run manifests skipped).
"""

from __future__ import annotations

import gzip
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from costsim.sources._fields import error, flatten, records_table

_SAMPLE_BYTES = 1 << 20
_SKIP_DIRS = {"manifests"}
_CSV_NULLS = ["", "NA", "N/A", "NULL", "null", "None"]
# Large payload fields that costsim never reads; dropped on the slow path to save memory.
_BULKY = {
    "input",
    "output",
    "messages",
    "request_body",
    "response_body",
    "inputBodyJson",
    "outputBodyJson",
    "proxy_server_request",
    "tool_definitions",
    "tool_calls",
}


@dataclass(frozen=True)
class DataFile:
    path: str
    label: str  # for messages
    kind: str  # "parquet", "csv" or "json"
    gzipped: bool


def locate(src: str) -> list[DataFile]:
    path = Path(src)
    if not path.exists():
        raise error(f"pilot log not found: {src}")
    if path.is_file():
        return [_classify(str(path), src)]
    if not path.is_dir():
        raise error(f"{src}: not a file or a directory")
    found: list[str] = []
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")) and d not in _SKIP_DIRS)
        found.extend(
            os.path.join(root, n) for n in names if not n.startswith((".", "_")) and "." in n
        )
    found.sort(key=lambda f: os.path.relpath(f, path).split(os.sep))
    files = [_classify(f, os.path.join(src, os.path.relpath(f, path))) for f in found]
    files = [f for f in files if f.kind != "empty"]
    if not files:
        raise error(f"{src}: no data files in directory")
    return files


def _head(path: str, gzipped: bool, size: int = _SAMPLE_BYTES) -> bytes:
    try:
        if gzipped:
            with gzip.open(path, "rb") as fh:
                return fh.read(size)
        with open(path, "rb") as fh:
            return fh.read(size)
    except (OSError, EOFError) as exc:
        raise error(f"cannot read {path}: {exc}") from None


def _classify(path: str, label: str) -> DataFile:
    with open(path, "rb") as fh:
        magic = fh.read(4)
    gzipped = magic[:2] == b"\x1f\x8b"
    if magic == b"PAR1":
        return DataFile(path, label, "parquet", False)
    head = _head(path, gzipped, 4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        return DataFile(path, label, "empty", gzipped)
    kind = "json" if head[:1] in (b"{", b"[") else "csv"
    return DataFile(path, label, kind, gzipped)


def _dotted_keys(obj: object, prefix: str, out: set[str], depth: int = 0) -> None:
    if not isinstance(obj, dict) or depth > 6:
        return
    for key, value in obj.items():
        name = f"{prefix}{key}"
        out.add(name)
        _dotted_keys(value, name + ".", out, depth + 1)


def sample_keys(f: DataFile) -> frozenset[str]:
    """Dotted field names seen at the start of a file: enough to tell its format."""
    keys: set[str] = set()
    if f.kind == "parquet":
        try:
            schema = pq.read_schema(f.path)
        except (pa.ArrowException, OSError) as exc:
            raise error(f"cannot read {f.label} as Parquet: {exc}") from None
        empty = flatten(schema.empty_table())
        return frozenset(empty.column_names)
    head = _head(f.path, f.gzipped)
    if f.kind == "csv":
        line = head.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        try:
            names = pa_csv.read_csv(io.BytesIO(line.encode() + b"\n")).column_names
        except pa.ArrowException:
            names = line.split(",")
        return frozenset(n.strip() for n in names)
    for record in _sample_records(head, f):
        _dotted_keys(record, "", keys)
    return frozenset(keys)


def _sample_records(head: bytes, f: DataFile) -> list[dict]:
    text = head.decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    records: list[dict] = []
    if text.startswith("{"):
        for line in text.splitlines()[:20]:
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                break
            if isinstance(value, dict):
                records.append(value)
        if records:
            return records
    # A JSON array or a pretty-printed document: read it whole.
    doc = _load_document(f)
    return _records_of(doc)[:20]


def _load_document(f: DataFile) -> object:
    raw = _head(f.path, f.gzipped, -1)
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    records = []
    for n, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise error(f"{f.label}: line {n} is not JSON: {exc.msg}") from None
    return records


def _records_of(doc: object) -> list[dict]:
    if isinstance(doc, list):
        return [r for r in doc if isinstance(r, dict)]
    if isinstance(doc, dict):
        for key in ("data", "records", "observations", "items", "logs"):
            value = doc.get(key)
            if isinstance(value, list):
                return [r for r in value if isinstance(r, dict)]
        return [doc]
    return []


def load_flat(f: DataFile) -> pa.Table:
    """A whole file as one flat table (nested fields as dotted columns)."""
    try:
        if f.kind == "parquet":
            return flatten(pq.read_table(f.path))
        stream = pa.input_stream(f.path, compression="gzip" if f.gzipped else None)
        if f.kind == "csv":
            convert = pa_csv.ConvertOptions(
                null_values=_CSV_NULLS, strings_can_be_null=True, quoted_strings_can_be_null=True
            )
            return pa_csv.read_csv(stream, convert_options=convert)
    except (pa.ArrowException, OSError) as exc:
        raise error(f"cannot read {f.label}: {str(exc).splitlines()[0]}") from None
    try:
        head = _head(f.path, f.gzipped, 64).lstrip(b"\xef\xbb\xbf \t\r\n")
        if head[:1] == b"{":
            table = pa_json.read_json(stream, read_options=pa_json.ReadOptions(block_size=1 << 24))
            return flatten(table)
    except (pa.ArrowException, OSError):
        pass  # mixed types, pretty-printed JSON or one huge row: the slow path below
    records = [_prune(r) for r in _records_of(_load_document(f))]
    if not records:
        raise error(f"{f.label}: no JSON records found")
    return records_table(records)


def _prune(record: dict) -> dict:
    out = {}
    for key, value in record.items():
        if key in _BULKY:
            if isinstance(value, dict):  # keep small scalars next to a payload (token counts)
                out[key] = {
                    k: v for k, v in value.items() if k not in _BULKY and not isinstance(v, dict)
                }
            continue
        out[key] = _prune(value) if isinstance(value, dict) else value
    return out


def load_documents(f: DataFile) -> list[dict]:
    """The JSON records of a file (OTLP JSON: one ``{"resourceSpans": ...}`` per line)."""
    if f.kind != "json":
        raise error(f"{f.label}: expected JSON, found {f.kind.upper()}")
    return _records_of(_load_document(f))
