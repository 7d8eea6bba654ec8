"""Readers for the tools teams log LLM calls with (DESIGN section 1, "Adapters at the edge").

`read_source` turns an export -- Langfuse, LiteLLM, Helicone, OpenTelemetry GenAI spans, OpenAI
Batch output, AWS Bedrock invocation logs -- into the one internal table that
`costsim.logs.read_pilot` validates (same column names), with one row per *query*: a trace
where the format has trace ids (``unit="trace"``, its calls summed), else a call.

``format="table"`` -- or ``"auto"`` on a CSV/Parquet file whose columns match none of the
exports -- returns ``None``: the file is costsim's plain table, to be read by
`costsim.logs.read_pilot` unchanged (which names any missing column). Everything else that
cannot be read raises `LogSchemaError` with a one-line message.

Detection looks at the field names at the start of each file (its content, never its name):

======================  ==========================================================
format                  recognised by
======================  ==========================================================
``langfuse``            trace_id/traceId + start_time/startTime + usage_details/cost_details
``litellm``             request_id + spend + startTime, or response_cost + prompt_tokens + startTime
``helicone``            request_created_at + response_status/response_created_at/delay_ms
``otel``                resourceSpans
``openai-batch``        custom_id + response
``bedrock``             modelId + input.inputTokenCount/output.outputTokenCount/schemaType
``table``               query_class or cost_usd (and none of the above)
======================  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from costsim.sources import bedrock, helicone, langfuse, litellm, openai_batch, otel
from costsim.sources._base import Format
from costsim.sources._fields import Fields, error
from costsim.sources._io import (
    DataFile,
    Wanted,
    load_documents,
    load_flat,
    locate,
    sample_keys,
    staged,
)
from costsim.sources.classes import (
    UNCLASSIFIED,
    apply_class_map,
    class_values,
    finish,
    load_class_map,
)
from costsim.sources.traces import Pricer, aggregate, price_missing

__all__ = [
    "FORMATS",
    "FORMAT_NAMES",
    "UNCLASSIFIED",
    "SourceTable",
    "detect_format",
    "export_titles",
    "read_source",
]

FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        langfuse.FORMAT,
        litellm.FORMAT,
        helicone.FORMAT,
        otel.FORMAT,
        openai_batch.FORMAT,
        bedrock.FORMAT,
    )
}
FORMAT_NAMES = ("auto", "table", *FORMATS)
COLUMNS = (
    "query_class",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "timestamp",
    "latency_ms",
    "status",
    "calls",
    "model",
)


@dataclass(frozen=True)
class SourceTable:
    """An export read into the internal table (one row per query).

    ``table`` has the columns of `COLUMNS`: ``query_class`` (string), ``cost_usd`` (float64,
    null where neither the export nor the catalog gave a cost), ``input_tokens``,
    ``output_tokens``, ``cached_input_tokens`` (float64, null when unknown), ``timestamp``
    (float64 epoch seconds UTC, the query's start), ``latency_ms`` (float64), ``status``
    (``"ok"``/``"error"``), ``calls`` (int64, calls per query; 1 in call mode) and ``model``
    (string; in trace mode the model most of its calls used).
    """

    table: pa.Table
    format: str
    detected: str
    unit: str
    unclassified: int
    notes: tuple[str, ...] = ()
    calls_read: int = 0


def _title(fmt: Format, keys: frozenset[str]) -> str | None:
    return fmt.detect(keys)


def _plain(keys: frozenset[str]) -> bool:
    return "query_class" in keys or "cost_usd" in keys


def detect_format(keys: frozenset[str]) -> tuple[str, str] | None:
    """(format name, what it looks like) for a file's field names, or None if unknown."""
    for fmt in FORMATS.values():
        title = fmt.detect(keys)
        if title is not None:
            return fmt.name, title
    if _plain(keys):
        return "table", "costsim's plain table"
    return None


def _shown(keys: frozenset[str]) -> str:
    top = sorted({k.split(".", 1)[0] for k in keys})
    more = f", ... ({len(top) - 15} more)" if len(top) > 15 else ""
    return (", ".join(top[:15]) + more) if top else "no fields"


def export_titles() -> str:
    """The exports costsim reads, for a message."""
    return ", ".join(f.title for f in FORMATS.values())


def _expected() -> str:
    return "; ".join(f"{f.name} ({f.expects})" for f in FORMATS.values())


def _detect_files(files: list[DataFile], src: str, requested: str) -> tuple[str, str]:
    seen: dict[str, tuple[str, DataFile]] = {}
    unknown: list[tuple[DataFile, frozenset[str]]] = []
    for f in files:
        keys = sample_keys(f)
        found = detect_format(keys)
        if found is None:
            unknown.append((f, keys))
            continue
        seen.setdefault(found[0], (found[1], f))
    if len(seen) > 1:
        parts = ", ".join(f"{f.label} looks like {title}" for title, f in seen.values())
        raise error(f"{src}: mixed content: {parts}; read one format at a time")
    if requested not in ("auto", "table") and requested in FORMATS:
        want = FORMATS[requested]
        if seen and requested not in seen:
            title, f = next(iter(seen.values()))
            raise error(
                f"{f.label}: --format {requested} expects {want.title} ({want.expects}), "
                f"but the content looks like {title}; use --format auto"
            )
        if unknown:
            f, keys = unknown[0]
            raise error(
                f"{f.label}: --format {requested} expects {want.title} ({want.expects}); "
                f"found fields: {_shown(keys)}"
            )
        return requested, want.title
    if unknown:
        f, keys = unknown[0]
        if set(seen) == {"table"} or (f.kind in ("csv", "parquet") and not seen):
            # costsim's table: its reader takes the .parquet, .pq and .csv files of a directory
            # alone (a README beside them is not read), and checks each one's columns
            return "table", "costsim's plain table"
        if seen:
            title, _ = next(iter(seen.values()))
            raise error(
                f"{f.label}: not {title} as the other files of {src} are (found fields: "
                f"{_shown(keys)}); move it out of the directory, or read it alone"
            )
        raise error(
            f"{f.label}: unknown log format: expected one of {_expected()}, "
            f"or costsim's plain table (query_class, cost_usd, ...); found fields: {_shown(keys)}"
        )
    name, (title, _) = next(iter(seen.items()))
    return name, title


def _wanted(fmt: Format, class_from: str | None) -> Wanted | None:
    """The fields the reader and the class will use, when the format declares its own."""
    if fmt.reads is None:
        return None
    if class_from is not None and class_from.startswith("tag:"):
        classes = fmt.tags
    else:
        classes = (class_from,) if class_from is not None else fmt.default_class
    return Wanted(
        numbers=fmt.reads.numbers,
        values=fmt.reads.values,
        present=(*fmt.reads.present, classes),
        strict=class_from is not None,
    )


def _load(fmt: Format, files: list[DataFile], wanted: Wanted | None = None) -> pa.Table:
    if fmt.loader == "otel":
        docs: list[dict] = []
        for f in files:
            docs.extend(load_documents(f))
        return otel.spans_table(docs)
    if len({f.kind for f in files}) > 1:
        wanted = None  # parts in several forms are merged column by column, every column
    tables = [load_flat(f, wanted) for f in files]
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Parts disagree on a column's type: read the disagreeing columns as text.
        names = list(dict.fromkeys(n for t in tables for n in t.column_names))
        fixed = []
        for t in tables:
            cols = {}
            for name in names:
                col = t[name] if name in t.column_names else pa.nulls(t.num_rows, pa.string())
                if not (pa.types.is_list(col.type) or pa.types.is_map(col.type)):
                    col = col.cast(pa.string())
                cols[name] = col
            fixed.append(pa.table(cols))
        return pa.concat_tables(fixed, promote_options="permissive")


def read_source(
    path: str | Path,
    *,
    format: str = "auto",
    class_from: str | None = None,
    class_map: str | Path | None = None,
    unit: str | None = None,
    pricer: Pricer | None = None,
) -> SourceTable | None:
    """Read an observability/gateway export into the internal table, one row per query.

    ``path``: a file or directory here, or a URI that pyarrow's filesystems open (``s3://``,
    ``gs://``, ``file://``...; pass it as a string: `Path` would fold its ``//``); an export
    there is copied to a temporary directory and read from it. ``format``: one of
    `FORMAT_NAMES`; ``"auto"`` tells it from the content. Returns ``None`` for costsim's plain
    table (``format="table"``, or auto-detected; left where it is), to be read with
    `costsim.logs.read_pilot` or streamed by `costsim.model.fit.fit_source`. ``class_from``: dotted
    path (``metadata.route``) or tag prefix (``tag:route=``); each format has a default.
    ``class_map``: YAML file of regex -> class. ``unit``: ``"trace"`` (default where the format
    has trace ids) or ``"call"``. ``pricer``: prices calls that have no cost, ``(models, input,
    output, cached, timestamps) -> USD``; default `costsim.simulate.prices.price_calls` when that
    module exists.
    """
    src = str(path)
    if format not in FORMAT_NAMES:
        raise error(f"--format: unknown format '{format}'; allowed: {', '.join(FORMAT_NAMES)}")
    if unit not in (None, "call", "trace"):
        raise error(f"--unit: expected 'call' or 'trace', got '{unit}'")
    if format == "table":
        return None
    cmap = load_class_map(class_map) if class_map is not None else None
    files = locate(src)
    name, title = _detect_files(files, src, format)
    if name == "table":
        return None
    fmt = FORMATS[name]
    with staged(files) as local:  # an export at a URI: copied here, then read as a local one
        table = _load(fmt, local, _wanted(fmt, class_from))
    if table.num_rows == 0:
        raise error(f"pilot log {src} has no rows")
    if name == "openai-batch":
        table = openai_batch.with_prefix(table)
    calls = fmt.calls(table)
    n_calls = int(calls.is_call.sum())
    if n_calls == 0:
        raise error(f"{src}: {title} with no LLM calls ({table.num_rows:,} rows, none a call)")

    notes = list(calls.notes)
    fields = Fields(table)
    expr, raw = _classes(fields, fmt, class_from)
    if cmap is not None:
        raw, unmatched = apply_class_map(raw, cmap)
        if unmatched:
            notes.append(
                f"class map {cmap.source}: {unmatched:,} distinct values matched no rule "
                "and were kept as they are"
            )

    has_traces = calls.trace_id is not None and calls.trace_id.null_count < len(calls.trace_id)
    chosen = unit or ("trace" if has_traces else "call")
    if chosen == "trace" and not has_traces:
        notes.append(f"{title} has no trace ids here; each call is one query")
        chosen = "call"
    cost, price_notes = price_missing(calls, pricer)
    notes.extend(price_notes)
    columns, _ = aggregate(calls, cost, raw, chosen)
    classes, unclassified = finish(columns["query_class"])
    columns["query_class"] = classes
    out = _table(columns)
    if unclassified:
        notes.append(
            f"{unclassified:,} {'traces' if chosen == 'trace' else 'calls'} have no class "
            f"({expr}); counted as '{UNCLASSIFIED}' (choose the field with --class-from)"
        )
    how = "auto-detected" if format == "auto" else f"--format {name}"
    what = f"{expr} ({fmt.class_note})" if class_from is None and fmt.class_note else expr
    if cmap is not None:
        what += f" mapped by {cmap.source}"
    if chosen == "trace":
        count = f"{n_calls:,} calls in {out.num_rows:,} traces"
    else:
        count = f"{n_calls:,} calls, one query each"
    detected = f"read as {title} ({how}); class from {what}; {count}"
    if len(files) > 1:
        detected += f" from {len(files)} files"
    return SourceTable(
        table=out,
        format=name,
        detected=detected,
        unit=chosen,
        unclassified=unclassified,
        notes=tuple(notes),
        calls_read=n_calls,
    )


def _classes(fields: Fields, fmt: Format, class_from: str | None) -> tuple[str, pa.Array]:
    candidates = (class_from,) if class_from is not None else fmt.default_class
    for expr in candidates:
        values, exists = class_values(fields, expr, fmt.tags)
        if exists:
            return expr, values
    if class_from is not None and not class_from.startswith("tag:"):
        raise error(
            f"--class-from: no field '{class_from}' in the export; "
            f"found: {_shown(frozenset(fields.names))}"
        )
    if class_from is not None:
        raise error(f"--class-from {class_from}: the export has no tags ({', '.join(fmt.tags)})")
    return candidates[0], pa.nulls(fields.rows, pa.string())


def _table(columns: dict[str, np.ndarray | pa.Array]) -> pa.Table:
    def arr(name: str, t: pa.DataType) -> pa.Array:
        v = columns[name]
        if isinstance(v, (pa.Array, pa.ChunkedArray)):
            return v.cast(t)
        if t == pa.float64():
            return pa.array(v, t, from_pandas=True)  # NaN -> null
        return pa.array(v, t)

    table = pa.table(
        {
            "query_class": arr("query_class", pa.string()),
            "cost_usd": arr("cost_usd", pa.float64()),
            "input_tokens": arr("input_tokens", pa.float64()),
            "output_tokens": arr("output_tokens", pa.float64()),
            "cached_input_tokens": arr("cached_input_tokens", pa.float64()),
            "timestamp": arr("timestamp", pa.float64()),
            "latency_ms": arr("latency_ms", pa.float64()),
            "status": arr("status", pa.string()),
            "calls": arr("calls", pa.int64()),
            "model": arr("model", pa.string()),
        }
    )
    return table.sort_by([("timestamp", "ascending")]) if table.num_rows else table
