"""What the command line names, told without importing what reads it (pyarrow, pandas: about
a second): whether a path is a filesystem URI (`is_uri`), how many bytes a local log holds at
least (`local_bytes`), and the names of the log's columns (`ColumnMap`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass


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


def is_uri(src: str) -> bool:
    """A path naming a filesystem (``file://``, ``s3://``, ``gs://``, ``hdfs://`` ...)."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", src) is not None


def on_this_machine(src: str) -> list[str]:
    """The local path an input names, for the check that no output overwrites it: the path
    itself, that of a ``file://`` URI, or none for a remote URI (``s3://`` ...)."""
    if not is_uri(src):
        return [src]
    if src.lower().startswith("file://"):
        from urllib.parse import unquote, urlparse

        return [unquote(urlparse(src).path)]
    return []


def local_bytes(src: str, enough: int) -> int:
    """The bytes of a local Parquet file, or of the Parquet files under a local directory
    (those a dataset reads: no hidden or ``_``-prefixed names), counted until ``enough`` is
    reached; 0 for a URI, another kind of file, or a path that is not there."""
    if is_uri(src):
        return 0
    try:
        if not os.path.isdir(src):
            return os.path.getsize(src) if _parquet(os.path.basename(src)) else 0
        total = 0
        for root, dirs, files in os.walk(src):
            dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
            for name in files:
                if _parquet(name) and not name.startswith((".", "_")):
                    total += os.path.getsize(os.path.join(root, name))
                    if total >= enough:
                        return total
        return total
    except OSError:
        return 0


def _parquet(name: str) -> bool:
    return name.lower().endswith((".parquet", ".pq"))
