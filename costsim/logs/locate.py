"""Locating a log's files: a file, a directory (hive partitions too), or a URI pyarrow's
filesystems know; what a bad path is told.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pa_fs

from costsim.errors import LogSchemaError
from costsim.inputs import is_uri

from .table import _CSV_SUFFIXES, _PARQUET_SUFFIXES


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


def _locate(src: str) -> _Source:
    if is_uri(src):
        return _locate_uri(src)
    # files by their absolute path: a cluster's workers, which read them, have other working
    # directories (messages name them as given)
    path = Path(os.path.abspath(src))
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
        probe = _bounded(src)  # the first request: a missing credential said within seconds
        info = (fs if probe == src else pa_fs.FileSystem.from_uri(probe)[0]).get_file_info(root)
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


#: how long the first request to Google Cloud Storage may retry: without credentials or a
#: network, its client retries for many minutes by default, printing nothing (S3's gives up
#: within seconds). Reading goes on with the URI's own retry policy.
GCS_FIRST_RETRY_S = 10


def _bounded(src: str) -> str:
    """A ``gs://`` URI with its retries bounded by `GCS_FIRST_RETRY_S` (pyarrow's
    ``retry_limit_seconds``) unless it sets them, the rest of its query as it was written; any
    other URI as it is."""
    from urllib.parse import parse_qsl, urlsplit, urlunsplit

    parts = urlsplit(src)
    keys = {k for k, _ in parse_qsl(parts.query, keep_blank_values=True)}
    if parts.scheme not in ("gs", "gcs") or "retry_limit_seconds" in keys:
        return src
    limit = f"retry_limit_seconds={GCS_FIRST_RETRY_S}"
    return urlunsplit(parts._replace(query=f"{parts.query}&{limit}" if parts.query else limit))


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
