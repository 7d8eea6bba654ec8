"""AWS Bedrock model-invocation logs (CloudWatch Logs or S3 delivery): JSON lines with
``modelId``, ``timestamp``, ``input.inputTokenCount``, ``output.outputTokenCount``, the cache
read/write counts, ``requestMetadata`` (the caller's key-value pairs) and ``errorCode``.

No costs (priced from the catalog). Input tokens are the uncached input plus cache reads and
writes; cached input tokens are the cache reads. Latency comes from the Converse response's
``metrics.latencyMs`` where it was logged. The class defaults to ``requestMetadata.query_class``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from costsim.sources._base import Calls, Format
from costsim.sources._fields import Fields
from costsim.sources._status import present


def _detect(keys: frozenset[str]) -> str | None:
    if "modelId" in keys and keys & {
        "input.inputTokenCount",
        "output.outputTokenCount",
        "schemaType",
    }:
        return "AWS Bedrock model-invocation logs"
    return None


def _calls(table: pa.Table) -> Calls:
    f = Fields(table)
    n = f.rows
    start = f.time("timestamp")
    latency = f.number("output.outputBodyJson.metrics.latencyMs", "output.latencyMs")
    cached = f.number("input.cacheReadInputTokenCount")
    inp = f.numbers_sum(
        "input.inputTokenCount", "input.cacheReadInputTokenCount", "input.cacheWriteInputTokenCount"
    )
    return Calls(
        is_call=np.ones(n, dtype=bool),
        trace_id=None,
        is_root=None,
        cost=np.full(n, np.nan),
        input_tokens=inp,
        output_tokens=f.number("output.outputTokenCount"),
        cached_input_tokens=cached,
        start=start,
        end=start + latency / 1000.0,
        error=present(f.text("errorCode", "error.code")),
        model=f.text("modelId"),
    )


FORMAT = Format(
    name="bedrock",
    title="AWS Bedrock model-invocation logs",
    expects="modelId, timestamp, input.inputTokenCount, output.outputTokenCount",
    detect=_detect,
    calls=_calls,
    default_class=("requestMetadata.query_class",),
)
