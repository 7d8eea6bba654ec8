"""Helicone request export (``npx @helicone/export``, or the request query API): JSONL, JSON or
CSV, one row per request.

A trace is a Helicone session (the ``Helicone-Session-Id`` request property); the default class
is the session's name (``Helicone-Session-Name``). ``prompt_tokens`` counts all input tokens,
``prompt_cache_read_tokens`` the cached part. A request failed when its HTTP status is not 2xx.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from costsim.sources._base import Calls, Format
from costsim.sources._fields import Fields

_PROPS = ("request_properties", "properties")


def _detect(keys: frozenset[str]) -> str | None:
    if "request_created_at" in keys and keys & {
        "response_status",
        "response_created_at",
        "delay_ms",
    }:
        return "a Helicone request export"
    return None


def _prop(name: str) -> tuple[str, ...]:
    return tuple(f"{p}.{name}" for p in _PROPS)


def _calls(table: pa.Table) -> Calls:
    f = Fields(table)
    n = f.rows
    start = f.time("request_created_at")
    delay = f.number("delay_ms", "latency")
    end = np.where(np.isnan(delay), f.time("response_created_at"), start + delay / 1000.0)
    code = f.number("response_status", "status")
    error = ~np.isnan(code) & ((code < 200) | (code >= 300))
    return Calls(
        is_call=np.ones(n, dtype=bool),
        trace_id=f.text(*_prop("Helicone-Session-Id")),
        is_root=None,
        cost=f.number("costUSD", "cost_usd", "cost"),
        input_tokens=f.number("prompt_tokens"),
        output_tokens=f.number("completion_tokens"),
        cached_input_tokens=f.number("prompt_cache_read_tokens"),
        start=start,
        end=end,
        error=error,
        model=f.text("model", "response_model", "request_model"),
    )


FORMAT = Format(
    name="helicone",
    title="a Helicone request export",
    expects="request_created_at, response_status, prompt_tokens, completion_tokens, cost",
    detect=_detect,
    calls=_calls,
    default_class=_prop("Helicone-Session-Name"),
    traces=True,
)
