"""Finding the files of an export and reading them into flat tables.

What a file holds is told from its bytes, never its name: gzip by its magic number (any file may
be gzipped), Parquet by ``PAR1``, JSON by a leading ``{`` or ``[`` (JSON lines, one JSON array, or
one JSON document), CSV otherwise. A directory is read as one log: its data files in sorted path
order (hidden and ``_``-prefixed entries and run manifests skipped).

A URI (``s3://bucket/exports/``, ``gs://...``, ``file:///...``) is opened through pyarrow's
filesystems: its files are told apart and their format detected where they are (a few KB of
each, or a Parquet footer), so that costsim's own table is left there for the streaming fit;
an export is then copied to a temporary directory (`staged`) and read as a local one.
"""

from __future__ import annotations

import gzip
import io
import json
import mmap
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from costsim.logs import is_uri, list_uri
from costsim.sources._fields import error, flatten, records_table

_SAMPLE_BYTES = 1 << 20
_COPY_BYTES = 1 << 23  # a remote export is copied in pieces this large
_BLOCK = 1 << 24  # pyarrow.json block size; also the sample a projection is planned from
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
    filesystem: Any = None  # a pyarrow FileSystem holding ``path``; None: this machine's


def locate(src: str) -> list[DataFile]:
    if is_uri(src):
        return _locate_uri(src)
    path = Path(src)
    if not path.exists():
        raise error(f"pilot log not found: {src}")
    if path.is_file():
        return [_one_file(_classify(str(path), src))]
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
    return _data_files(files, src)


def _one_file(file: DataFile) -> DataFile:
    """A log that is one file, refused when it holds nothing (as costsim's table reader says
    of it; in a directory, such a file is passed over)."""
    if file.kind == "empty":
        raise error(f"pilot log {file.label} has no rows")
    return file


def _data_files(files: list[DataFile], src: str) -> list[DataFile]:
    files = [f for f in files if f.kind != "empty"]
    if not files:
        raise error(
            f"{src}: no data files in directory (expected costsim's table as .parquet, .pq or "
            ".csv files, or a tool's export)"
        )
    return files


def _locate_uri(src: str) -> list[DataFile]:
    """The files at a URI, as `locate` finds them in a local directory (same order and
    skipping), each classified from its first bytes where it is."""
    at = list_uri(src)
    base = src.rstrip("/")
    try:
        if at.is_file:
            return [_one_file(_classify(at.root, src, at.fs))]
        files = [
            _classify(path, "/".join([base, *parts]), at.fs)
            for parts, path in at.files
            if not any(p in _SKIP_DIRS for p in parts[:-1]) and "." in parts[-1]
        ]
    except (pa.ArrowException, OSError) as exc:
        text = str(exc).strip()
        raise error(f"cannot open {src}: {text.splitlines()[0] if text else exc}") from None
    return _data_files(files, src)


@contextmanager
def staged(files: list[DataFile]) -> Iterator[list[DataFile]]:
    """The files, those on another filesystem copied to a temporary directory first (removed
    afterwards); their labels, kinds and order kept. An export is read whole into memory
    anyway: a copy on local disk costs its size once, and lets every reader read it locally."""
    if all(f.filesystem is None for f in files):
        yield files
        return
    with tempfile.TemporaryDirectory(prefix="costsim-export-") as tmp:
        local = []
        for i, f in enumerate(files):
            if f.filesystem is None:
                local.append(f)
                continue
            target = os.path.join(tmp, f"{i:06d}-{os.path.basename(f.path)}")
            try:
                with (
                    f.filesystem.open_input_stream(f.path, compression=None) as src,
                    open(target, "wb") as dst,
                ):
                    shutil.copyfileobj(src, dst, _COPY_BYTES)
            except (pa.ArrowException, OSError) as exc:
                text = str(exc).strip()
                reason = text.splitlines()[0] if text else type(exc).__name__
                raise error(f"cannot copy {f.label}: {reason}") from None
            local.append(replace(f, path=target, filesystem=None))
        yield local


def _head(path: str, gzipped: bool, size: int = _SAMPLE_BYTES, filesystem: Any = None) -> bytes:
    try:
        if filesystem is not None:
            with filesystem.open_input_stream(path, compression="gzip" if gzipped else None) as s:
                return bytes(s.read() if size < 0 else s.read(size))
        if gzipped:
            with gzip.open(path, "rb") as fh:
                return fh.read(size)
        with open(path, "rb") as fh:
            return fh.read(size)
    except (OSError, EOFError, pa.ArrowException) as exc:
        raise error(f"cannot read {path}: {exc}") from None


def _read(f: DataFile, size: int = _SAMPLE_BYTES) -> bytes:
    """The first ``size`` bytes of a file, uncompressed (``-1``: all of them), where it is."""
    return _head(f.path, f.gzipped, size, f.filesystem)


def _classify(path: str, label: str, filesystem: Any = None) -> DataFile:
    raw = _head(path, False, 4096, filesystem)  # one read (a request, on object storage)
    gzipped = raw[:2] == b"\x1f\x8b"
    if raw[:4] == b"PAR1":
        return DataFile(path, label, "parquet", False, filesystem)
    head = _head(path, True, 4096, filesystem) if gzipped else raw
    head = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        return DataFile(path, label, "empty", gzipped, filesystem)
    kind = "json" if head[:1] in (b"{", b"[") else "csv"
    return DataFile(path, label, kind, gzipped, filesystem)


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
            schema = pq.read_schema(f.path, filesystem=f.filesystem)
        except (pa.ArrowException, OSError) as exc:
            raise error(f"cannot read {f.label} as Parquet: {exc}") from None
        empty = flatten(schema.empty_table())
        return frozenset(empty.column_names)
    head = _read(f)
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
    raw = _read(f, -1)
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


def load_flat(f: DataFile, wanted: Wanted | None = None) -> pa.Table:
    """A whole file as one flat table (nested fields as dotted columns).

    With ``wanted``, JSON lines are read projected onto those fields where that gives the
    reader the same table values (see `Wanted`); every other field may be left out.
    """
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
        head = _read(f, 64).lstrip(b"\xef\xbb\xbf \t\r\n")
        if head[:1] == b"{":
            projected = _read_projected(f, wanted) if wanted is not None else None
            if projected is not None:
                return projected
            table = pa_json.read_json(stream, read_options=pa_json.ReadOptions(block_size=_BLOCK))
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


class FileDocuments(dict):
    """The JSON records of a file, not read yet: stands in for them in `load_documents`. A
    reader that reads a file in bulk (columnar) takes ``file``; `documents` parses it record
    by record."""

    def __init__(self, f: DataFile) -> None:
        super().__init__()
        self.file = f

    def documents(self) -> list[dict]:
        return _records_of(_load_document(self.file))

    def head(self, size: int) -> bytes:
        """The first ``size`` bytes of the file (uncompressed); ``-1``: all of it."""
        return _read(self.file, size)

    def stream(self) -> pa.NativeFile:
        return pa.input_stream(self.file.path, compression="gzip" if self.file.gzipped else None)


def load_documents(f: DataFile) -> list[dict]:
    """The JSON records of a file (OTLP JSON: one ``{"resourceSpans": ...}`` per line), as one
    `FileDocuments` that a bulk reader reads itself (`FileDocuments.documents` parses them)."""
    if f.kind != "json":
        raise error(f"{f.label}: expected JSON, found {f.kind.upper()}")
    return [FileDocuments(f)]


@dataclass(frozen=True)
class Wanted:
    """The fields a reader will use (`costsim.sources._base.Reads`, plus the class fields).

    ``numbers``/``values``: read for their values (absent = all missing). ``present``: groups in
    which the first field that exists is used; a field the sampled first block does not have is
    known absent only if its key occurs nowhere in the file. ``strict``: the last group must have
    a field that exists (an explicit ``--class-from``), else its error needs the whole file.
    """

    numbers: tuple[str, ...]
    values: tuple[str, ...]
    present: tuple[tuple[str, ...], ...]
    strict: bool = False


class _Whole(Exception):
    """The projection cannot be planned exactly: read every field."""


def _read_projected(f: DataFile, wanted: Wanted) -> pa.Table | None:
    """JSON lines read with only the wanted fields (large texts never materialised), or None
    when that cannot be done exactly: then the caller reads the file whole."""
    sample = _read(f, _BLOCK)
    if len(sample) == _BLOCK:
        cut = sample.rfind(b"\n")
        if cut < 0:
            return None
        sample = sample[: cut + 1]
    try:
        schema = pa_json.read_json(
            io.BytesIO(sample), read_options=pa_json.ReadOptions(block_size=_BLOCK)
        ).schema
        explicit = _projection(schema, wanted, f)
        stream = pa.input_stream(f.path, compression="gzip" if f.gzipped else None)
        table = pa_json.read_json(  # blocks parsed in parallel (open_json is serial)
            stream,
            read_options=pa_json.ReadOptions(block_size=_BLOCK),
            parse_options=pa_json.ParseOptions(
                explicit_schema=explicit, unexpected_field_behavior="ignore"
            ),
        )
    except (_Whole, pa.ArrowException, OSError):
        return None  # e.g. a type that changes after the sample: the whole read sorts it out
    return flatten(table)


def _split(path: str, fields: dict[str, pa.Field]) -> tuple[str, str]:
    """(field at this level, rest of the path): the longest leading part that is a field."""
    if path in fields:
        return path, ""
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:i])
        if head in fields:
            return head, ".".join(parts[i:])
    return parts[0], ".".join(parts[1:])


def _found(path: str, fields: dict[str, pa.Field]) -> bool | None:
    """Whether the sample has ``path``: True, False, or None when it ends in a text or map
    column (JSON inside a cell: only its content can tell)."""
    head, rest = _split(path, fields)
    field = fields.get(head)
    if field is None:
        return False
    if not rest:
        return True
    if not pa.types.is_struct(field.type):
        return None
    return _found(rest, {c.name: c for c in field.type})


def _in_file(path: str, f: DataFile) -> bool:
    """Whether the key that ends ``path`` occurs anywhere in the file (bytes, not parsed)."""
    if f.gzipped:
        return True  # not worth decompressing twice: assume it does
    key = path.rsplit(".", 1)[-1].encode() + b'"'
    with open(f.path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return False
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return data.find(key) >= 0


def _projection(schema: pa.Schema, wanted: Wanted, f: DataFile) -> pa.Schema:
    """The explicit schema: the sample's types for the wanted fields, defaults for the rest."""
    fields = {field.name: field for field in schema}
    wants = [(p, "number") for p in wanted.numbers] + [(p, "value") for p in wanted.values]
    for n, group in enumerate(wanted.present):
        for path in group:
            found = _found(path, fields)
            if found is False and _in_file(path, f):
                raise _Whole(path)  # beyond the sample, or a key elsewhere: cannot tell
            if found is not False:
                wants.append((path, "value"))
            if found:
                break
        else:
            if wanted.strict and n == len(wanted.present) - 1:
                raise _Whole(group)
    return pa.schema(_level(list(schema), wants))


def _level(sample: list[pa.Field], wants: list[tuple[str, str]]) -> list[pa.Field]:
    by_name = {field.name: field for field in sample}
    heads: dict[str, list[tuple[str, str]]] = {}
    for path, kind in wants:
        head, rest = _split(path, by_name)
        heads.setdefault(head, []).append((rest, kind))
    order = [f.name for f in sample if f.name in heads] + [h for h in heads if h not in by_name]
    out = []
    for head in order:
        items = heads[head]
        whole = [kind for rest, kind in items if not rest]
        inner = [(rest, kind) for rest, kind in items if rest]
        field = by_name.get(head)
        if field is not None and not pa.types.is_null(field.type):
            t = field.type
            if pa.types.is_struct(t) and not whole:
                t = pa.struct(_level(list(t), inner))
            elif pa.types.is_integer(t) and not inner and set(whole) == {"number"}:
                t = pa.float64()  # read as floats anyway; a later 0.5 must not fail the read
        elif whole and inner:
            raise _Whole(head)  # a value here and a record there: cannot declare both
        elif inner:
            t = pa.struct(_level([], inner))
        else:
            t = pa.float64() if set(whole) == {"number"} else pa.string()
        out.append(pa.field(head, t))
    return out
