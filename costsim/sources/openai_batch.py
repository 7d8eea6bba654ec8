"""OpenAI Batch API output: JSON lines with ``custom_id``, ``response`` (``status_code``,
``body`` = the endpoint's response with ``model`` and ``usage``) and ``error``.

No costs (priced from the catalog) and no traces. The default class is the ``custom_id`` up to
its last ``-``, ``_``, ``:``, ``/`` or ``#`` (``summarize-0042`` -> ``summarize``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from costsim.sources._base import Calls, Format
from costsim.sources._fields import Fields, to_text
from costsim.sources._status import present

PREFIX = "custom_id_prefix"
_BODY = "response.body"


def _detect(keys: frozenset[str]) -> str | None:
    if "custom_id" in keys and any(k == "response" or k.startswith("response.") for k in keys):
        return "OpenAI Batch output"
    return None


def with_prefix(table: pa.Table) -> pa.Table:
    if "custom_id" not in table.column_names or PREFIX in table.column_names:
        return table
    ids = to_text(table["custom_id"], table.num_rows)
    stem = pc.replace_substring_regex(ids, r"[-_:/#][^-_:/#]*$", "")
    stem = pc.if_else(pc.equal(stem, ""), ids, stem)
    return table.append_column(PREFIX, stem)


def _calls(table: pa.Table) -> Calls:
    f = Fields(with_prefix(table))
    n = f.rows
    code = f.number("response.status_code")
    failed = present(f.text("error.code", "error.message", f"{_BODY}.error.message"))
    error = failed | (~np.isnan(code) & ((code < 200) | (code >= 300)))
    return Calls(
        is_call=np.ones(n, dtype=bool),
        trace_id=None,
        is_root=None,
        cost=np.full(n, np.nan),
        input_tokens=f.number(f"{_BODY}.usage.prompt_tokens", f"{_BODY}.usage.input_tokens"),
        output_tokens=f.number(f"{_BODY}.usage.completion_tokens", f"{_BODY}.usage.output_tokens"),
        cached_input_tokens=f.number(
            f"{_BODY}.usage.prompt_tokens_details.cached_tokens",
            f"{_BODY}.usage.input_tokens_details.cached_tokens",
        ),
        start=f.time(f"{_BODY}.created", f"{_BODY}.created_at"),
        end=np.full(n, np.nan),
        error=error,
        model=f.text(f"{_BODY}.model"),
    )


FORMAT = Format(
    name="openai-batch",
    title="OpenAI Batch output",
    expects="custom_id, response.body.usage, response.body.model, error",
    detect=_detect,
    calls=_calls,
    default_class=(PREFIX,),
    class_note="custom_id up to its last separator",
)
