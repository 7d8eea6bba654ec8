"""Langfuse observations export: the UI export (CSV/JSON, camelCase) and the blob-storage export
(``observations_v2/`` enriched or legacy ``observations/``; CSV, JSON, JSONL, Parquet; snake_case).

One row per observation. LLM calls are observations of type ``GENERATION`` (and ``EMBEDDING``);
other observations (spans, events, agents, tools) are kept only to find a trace's root.
Usage keys are disjoint in Langfuse (``input`` excludes cached input): input tokens are
``input`` plus the cache keys, cached input tokens are the cache-read keys.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from costsim.sources._base import Calls, Format, Reads
from costsim.sources._fields import Fields
from costsim.sources._status import present, text_in

_USAGE = ("usage_details", "usageDetails")
_CACHE_READ = ("input_cached_tokens", "input_cache_read", "cache_read_input_tokens")
_CACHE_WRITE = ("input_cache_creation", "cache_creation_input_tokens")


def _detect(keys: frozenset[str]) -> str | None:
    trace = keys & {"trace_id", "traceId"}
    start = keys & {"start_time", "startTime"}
    usage = any(
        k.startswith(("usage_details", "usageDetails", "cost_details", "costDetails")) for k in keys
    ) or bool(keys & {"total_cost", "totalCost", "calculatedTotalCost", "provided_model_name"})
    if trace and start and usage:
        return "a Langfuse observations export"
    return None


def _paths(*keys: str) -> tuple[str, ...]:
    return tuple(f"{u}.{k}" for k in keys for u in _USAGE)


_CACHED = _paths(*_CACHE_READ)
_INPUT = _paths("input", *_CACHE_READ, *_CACHE_WRITE)
_LEGACY_INPUT = ("usage.input", "promptTokens", "usage.promptTokens")
_OUTPUT = (*_paths("output"), "usage.output", "completionTokens", "usage.completionTokens")
_COST = (
    "total_cost",
    "totalCost",
    "cost_details.total",
    "costDetails.total",
    "calculatedTotalCost",
    "calculated_total_cost",
)
_PARENT = ("parent_observation_id", "parentObservationId")
_TRACE = ("trace_id", "traceId")
_START = ("start_time", "startTime")
_END = ("end_time", "endTime")
_MODEL = ("provided_model_name", "providedModelName", "model")


def _calls(table: pa.Table) -> Calls:
    f = Fields(table)
    n = f.rows
    kind = f.get("type")
    is_call = (
        text_in(f.text("type"), {"generation", "embedding"})
        if kind is not None
        else np.ones(n, bool)
    )
    parent = f.get(_PARENT[0])
    parent_text = f.text(*_PARENT)
    is_root = ~present(parent_text) if parent is not None or f.has(_PARENT[1]) else None
    cached = f.numbers_sum(*_CACHED)
    inp = f.numbers_sum(*_INPUT)
    legacy_in = f.number(*_LEGACY_INPUT)
    inp = np.where(np.isnan(inp), legacy_in, inp)
    out = f.number(*_OUTPUT)
    cost = f.number(*_COST)
    level = f.text("level")
    notes = []
    skipped = int((~is_call).sum())
    if skipped:
        notes.append(f"{skipped:,} observations that are not LLM calls (spans, events) not counted")
    return Calls(
        is_call=is_call,
        trace_id=f.text(*_TRACE),
        is_root=is_root,
        cost=cost,
        input_tokens=inp,
        output_tokens=out,
        cached_input_tokens=cached,
        start=f.time(*_START),
        end=f.time(*_END),
        error=text_in(level, {"error"}),
        model=pc.cast(f.text(*_MODEL), pa.string()),
        notes=tuple(notes),
    )


# What `_calls` reads. A missing parent reads like an absent one: every row is then a root, which
# ranks rows like having no parents at all. Whether ``type`` exists changes what a call is.
_READS = Reads(
    numbers=tuple(dict.fromkeys((*_CACHED, *_INPUT, *_LEGACY_INPUT, *_OUTPUT, *_COST))),
    values=(*_PARENT, *_TRACE, *_START, *_END, *_MODEL, "level"),
    present=(("type",),),
)


FORMAT = Format(
    name="langfuse",
    title="a Langfuse observations export",
    expects="trace_id, start_time, usage_details / cost_details (or traceId, startTime, ...)",
    detect=_detect,
    calls=_calls,
    default_class=("trace_name", "traceName", "name"),
    tags=("tags",),
    traces=True,
    reads=_READS,
)
