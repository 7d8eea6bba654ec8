"""LiteLLM: the proxy's ``LiteLLM_SpendLogs`` table exported as CSV/JSON, and the
``StandardLoggingPayload`` JSON lines written by bucket logging (S3, GCS, Azure).

One row per call. Cost is ``spend`` (spend logs) or ``response_cost`` (payload); a trace is
``trace_id`` (payload) or ``session_id`` (spend logs); an error is ``status == "failure"``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from costsim.sources._base import Calls, Format
from costsim.sources._fields import Fields
from costsim.sources._status import present, text_in


def _detect(keys: frozenset[str]) -> str | None:
    start = keys & {"startTime", "start_time"}
    if start and {"request_id", "spend"} <= keys:
        return "LiteLLM spend logs (LiteLLM_SpendLogs)"
    if start and "response_cost" in keys and keys & {"prompt_tokens", "completion_tokens"}:
        return "LiteLLM StandardLoggingPayload logs"
    return None


def _calls(table: pa.Table) -> Calls:
    f = Fields(table)
    n = f.rows
    status = f.text("status", "metadata.status")
    if f.has("status", "metadata.status"):
        error = text_in(status, {"failure", "error", "failed"})
    else:
        error = present(f.text("error_str", "error_information.error_class"))
    return Calls(
        is_call=np.ones(n, dtype=bool),
        trace_id=f.text("trace_id", "session_id", "metadata.trace_id"),
        is_root=None,
        cost=f.number("spend", "response_cost"),
        input_tokens=f.number("prompt_tokens"),
        output_tokens=f.number("completion_tokens"),
        cached_input_tokens=f.number(
            "metadata.usage_object.prompt_tokens_details.cached_tokens",
            "metadata.usage_object.cache_read_input_tokens",
            "metadata.additional_usage_values.cache_read_input_tokens",
            "cache_read_input_tokens",
        ),
        start=f.time("startTime", "start_time"),
        end=f.time("endTime", "end_time"),
        error=error,
        model=f.text("model", "model_group"),
    )


FORMAT = Format(
    name="litellm",
    title="LiteLLM spend logs",
    expects="request_id, spend, startTime (spend logs) or response_cost, prompt_tokens, startTime",
    detect=_detect,
    calls=_calls,
    default_class=("tag:",),
    tags=("request_tags", "metadata.tags"),
    traces=True,
    class_note="the first request tag",
)
