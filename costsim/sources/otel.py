"""OpenTelemetry spans from the OTLP JSON file exporter (one ``{"resourceSpans": [...]}`` per
line, or one such document): ``resourceSpans[].scopeSpans[].spans[]``.

LLM calls are spans with GenAI semantic-convention attributes (``gen_ai.usage.input_tokens``,
``gen_ai.request.model``, ...) or OpenInference ones (``llm.token_count.prompt``,
``llm.model_name``). Attributes become columns ``attributes.<key>`` (resource attributes
``resource.attributes.<key>``), so ``class_from="attributes.app.feature"`` reads the attribute
``app.feature``. A trace is a ``traceId``; its root is the span without a parent; the default
class is the root span's name (column ``trace.name``). No cost in spans: calls are priced from
the catalog. ``status.code`` 2 (``STATUS_CODE_ERROR``) is an error.

The OTLP structure is walked in Python, span by span (OTLP files are rarely the bulk export).
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from costsim.sources._base import Calls, Format
from costsim.sources._fields import Fields, records_table
from costsim.sources._status import present, text_in

_A = "attributes."
_INPUT = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
_OUTPUT = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
)
_CACHED = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
)
_MODEL = ("gen_ai.response.model", "gen_ai.request.model", "llm.model_name")
_COST = ("llm.cost.total", "gen_ai.usage.cost")


def _detect(keys: frozenset[str]) -> str | None:
    if "resourceSpans" in keys:
        return "OpenTelemetry spans (OTLP JSON)"
    return None


def _value(v: object) -> object:
    if not isinstance(v, dict):
        return v
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            return v["intValue"]
    if "arrayValue" in v:
        return json.dumps([_value(x) for x in (v["arrayValue"] or {}).get("values", [])])
    if "kvlistValue" in v:
        return json.dumps(v["kvlistValue"])
    return None


def _attrs(items: object, prefix: str, row: dict) -> None:
    if isinstance(items, list):
        for kv in items:
            if isinstance(kv, dict) and "key" in kv:
                row[prefix + str(kv["key"])] = _value(kv.get("value"))


def spans_table(documents: list[dict]) -> pa.Table:
    rows: list[dict] = []
    for doc in documents:
        for rs in doc.get("resourceSpans") or []:
            resource: dict = {}
            _attrs((rs.get("resource") or {}).get("attributes"), "resource.attributes.", resource)
            for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []:
                scope = (ss.get("scope") or ss.get("instrumentationLibrary") or {}).get("name")
                for span in ss.get("spans") or []:
                    status = span.get("status") or {}
                    row = {
                        "traceId": span.get("traceId"),
                        "spanId": span.get("spanId"),
                        "parentSpanId": span.get("parentSpanId") or None,
                        "name": span.get("name"),
                        "kind": span.get("kind"),
                        "startTimeUnixNano": str(span.get("startTimeUnixNano") or "") or None,
                        "endTimeUnixNano": str(span.get("endTimeUnixNano") or "") or None,
                        "status.code": None if status.get("code") is None else str(status["code"]),
                        "status.message": status.get("message"),
                        "scope.name": scope,
                        **resource,
                    }
                    _attrs(span.get("attributes"), _A, row)
                    rows.append(row)
    roots = {r["traceId"]: r["name"] for r in rows if r["parentSpanId"] is None}
    for r in rows:
        r["trace.name"] = roots.get(r["traceId"])
    return records_table(rows)


def _calls(table: pa.Table) -> Calls:
    f = Fields(table)
    n = f.rows
    tokens = _INPUT + _OUTPUT + _MODEL
    is_call = np.zeros(n, dtype=bool)
    for key in tokens:
        col = f.get(_A + key)
        if col is not None:
            is_call |= present(pc.cast(col, pa.string()) if not pa.types.is_null(col.type) else col)
    kind = f.get(_A + "openinference.span.kind")
    if kind is not None:
        is_call |= text_in(f.text(_A + "openinference.span.kind"), {"llm"})
    a = tuple
    return Calls(
        is_call=is_call,
        trace_id=f.text("traceId"),
        is_root=~present(f.text("parentSpanId")),
        cost=f.number(*a(_A + k for k in _COST)),
        input_tokens=f.number(*a(_A + k for k in _INPUT)),
        output_tokens=f.number(*a(_A + k for k in _OUTPUT)),
        cached_input_tokens=f.number(*a(_A + k for k in _CACHED)),
        start=f.time("startTimeUnixNano"),
        end=f.time("endTimeUnixNano"),
        error=text_in(f.text("status.code"), {"2", "status_code_error", "error"}),
        model=f.text(*a(_A + k for k in _MODEL)),
    )


FORMAT = Format(
    name="otel",
    title="OpenTelemetry GenAI spans (OTLP JSON)",
    expects='OTLP JSON: {"resourceSpans": [{"scopeSpans": [{"spans": [...]}]}]}',
    detect=_detect,
    calls=_calls,
    default_class=("trace.name",),
    traces=True,
    loader="otel",
    class_note="the root span's name",
)
