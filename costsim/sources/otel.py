"""OpenTelemetry spans from the OTLP JSON file exporter (one ``{"resourceSpans": [...]}`` per
line, or one such document): ``resourceSpans[].scopeSpans[].spans[]``.

LLM calls are spans with GenAI semantic-convention attributes (``gen_ai.usage.input_tokens``,
``gen_ai.request.model``, ...) or OpenInference ones (``llm.token_count.prompt``,
``llm.model_name``). Attributes become columns ``attributes.<key>`` (resource attributes
``resource.attributes.<key>``), so ``class_from="attributes.app.feature"`` reads the attribute
``app.feature``. A trace is a ``traceId``; its root is the span without a parent; the default
class is the root span's name (column ``trace.name``). No cost in spans: calls are priced from
the catalog. ``status.code`` 2 (``STATUS_CODE_ERROR``) is an error.

Read columnar: ``pyarrow.json`` parses the exports (blocks in parallel) against a schema of the
fields used, planned from the first block; the nested lists are exploded with
``list_flatten``/``list_parent_indices`` and the attributes pivoted by key with numpy index
arrays -- a Python step per block and distinct key, none per span or attribute. A column's
type follows the values, as a table of the spans' records would have it (all numbers: numbers,
integers only where every span has one; all text: text; a mix: each value as text). Files this
cannot read exactly (types that change within the file, ``kvlistValue`` or nested arrays, JSON
that is not one object per line and not one document) are walked in Python, span by span.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from costsim.sources._base import Calls, Format
from costsim.sources._fields import Fields, records_table
from costsim.sources._io import FileDocuments
from costsim.sources._status import present, text_in

_A = "attributes."
_R = "resource.attributes."
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

_BLOCK = 1 << 25  # pyarrow.json block size (a block must hold whole lines)
_SAMPLE = 1 << 22  # the first whole lines of this many bytes plan the schema
_MAX_BLOCK = (1 << 31) - 1


def _detect(keys: frozenset[str]) -> str | None:
    if "resourceSpans" in keys:
        return "OpenTelemetry spans (OTLP JSON)"
    return None


# -- the span-by-span walk (files the columnar read cannot take exactly) -----------------------


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


def _walk(documents: list[dict]) -> pa.Table:
    rows: list[dict] = []
    for doc in documents:
        for rs in doc.get("resourceSpans") or []:
            resource: dict = {}
            _attrs((rs.get("resource") or {}).get("attributes"), _R, resource)
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


# -- the columnar read ---------------------------------------------------------------------------


class _Slow(Exception):
    """The columnar read cannot give the walk's table exactly: walk the spans."""


_STRING, _INT, _FLOAT, _BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()
# Value kinds, as the walk's Python values: none, str, bool, float, int.
_NONE, _STR, _BOOLK, _FLOATK, _INTK = 0, 1, 2, 3, 4


def _at(t: pa.DataType | None, *path: str) -> pa.DataType | None:
    """The sampled type at a path of struct fields (lists are stepped through)."""
    for name in path:
        while t is not None and (pa.types.is_list(t) or pa.types.is_large_list(t)):
            t = t.value_type
        if t is None or not pa.types.is_struct(t) or t.get_field_index(name) < 0:
            return None
        t = t.field(name).type
    return t


def _leaf(
    seen: list[pa.DataType | None], default: pa.DataType, *allowed: pa.DataType
) -> pa.DataType:
    """The type to declare for a scalar field, from its types in the sample."""
    types = {t for t in seen if t is not None and not pa.types.is_null(t)}
    if not types:
        return default
    if len(types) > 1:
        raise _Slow(types)
    (t,) = types
    if t == _INT and _FLOAT in allowed:
        return _FLOAT  # a JSON number without a fraction: read as a double anyway
    if t not in allowed:
        raise _Slow(t)
    return t


def _plan(sample: pa.Schema) -> pa.Schema:
    """The explicit schema of the fields read, with the sample's scalar types."""
    rs = sample.field("resourceSpans").type if "resourceSpans" in sample.names else None
    groups = ("scopeSpans", "instrumentationLibrarySpans")

    def span(*path: str) -> list[pa.DataType | None]:
        return [_at(rs, g, "spans", *path) for g in groups]

    kv_places = [("resource", "attributes"), *((g, "spans", "attributes") for g in groups)]

    def value(*path: str) -> list[pa.DataType | None]:
        out = []
        for place in kv_places:
            out.append(_at(rs, *place, "value", *path))
            out.append(_at(rs, *place, "value", "arrayValue", "values", *path))
        return out

    text = _leaf(value("stringValue"), _STRING, _STRING)
    boolean = _leaf(value("boolValue"), _BOOL, _BOOL)
    double = _leaf(value("doubleValue"), _FLOAT, _FLOAT)
    integer = _leaf(value("intValue"), _STRING, _STRING, _INT)
    key = _leaf([_at(rs, *p, "key") for p in kv_places], _STRING, _STRING)
    scalars = [
        ("stringValue", text),
        ("boolValue", boolean),
        ("doubleValue", double),
        ("intValue", integer),
    ]
    nested = [("arrayValue", pa.struct([])), ("kvlistValue", pa.struct([]))]
    element = pa.struct(scalars + nested)
    array = pa.struct([("values", pa.list_(element))])
    kv = pa.list_(
        pa.struct(
            [("key", key), ("value", pa.struct([*scalars, ("arrayValue", array), nested[1]]))]
        )
    )
    fields = [
        (name, _leaf(span(name), _STRING, _STRING))
        for name in ("traceId", "spanId", "parentSpanId", "name")
    ]
    fields.append(("kind", _leaf(span("kind"), _INT, _INT, _STRING)))
    for name in ("startTimeUnixNano", "endTimeUnixNano"):
        fields.append((name, _leaf(span(name), _STRING, _STRING, _INT)))
    status = pa.struct(
        [
            ("code", _leaf(span("status", "code"), _INT, _INT, _STRING)),
            ("message", _leaf(span("status", "message"), _STRING, _STRING)),
        ]
    )
    scope_name = _leaf(
        [_at(rs, g, s, "name") for g in groups for s in ("scope", "instrumentationLibrary")],
        _STRING,
        _STRING,
    )
    spans = pa.list_(pa.struct([*fields, ("status", status), ("attributes", kv)]))
    scope = pa.struct([("name", scope_name)])
    ss = pa.list_(
        pa.struct([("scope", scope), ("instrumentationLibrary", scope), ("spans", spans)])
    )
    resource = pa.struct([("attributes", kv)])
    return pa.schema(
        [
            (
                "resourceSpans",
                pa.list_(
                    pa.struct(
                        [
                            ("resource", resource),
                            ("scopeSpans", ss),
                            ("instrumentationLibrarySpans", ss),
                        ]
                    )
                ),
            )
        ]
    )


def _options(sample: bytes, block: int) -> tuple[pa_json.ReadOptions, pa_json.ParseOptions]:
    """Read options, and the schema planned from ``sample`` (whole lines)."""
    options = pa_json.ReadOptions(block_size=block)
    inferred = pa_json.read_json(io.BytesIO(sample), read_options=options).schema
    parse = pa_json.ParseOptions(
        explicit_schema=_plan(inferred), unexpected_field_behavior="ignore"
    )
    return options, parse


def _read(data: bytes, sample: bytes, block: int) -> list[pa.RecordBatch]:
    """JSON lines in memory read against the schema planned from ``sample``."""
    options, parse = _options(sample, block)
    return pa_json.read_json(
        io.BytesIO(data), read_options=options, parse_options=parse
    ).to_batches()


def _cut(sample: bytes) -> bytes | None:
    """The whole lines of a sample (None if it has none)."""
    cut = sample.rfind(b"\n")
    return None if cut < 0 else sample[: cut + 1]


def _file_batches(doc: FileDocuments, stream: bool) -> Iterator[pa.RecordBatch]:
    """A file's documents as record batches. With ``stream``, a large file is read block by
    block (each block let go once used), and a read error may come after some batches."""
    head = doc.head(_BLOCK)
    if len(head) < _BLOCK:  # the whole file: one block
        data = head if head.endswith(b"\n") else head + b"\n"
        try:
            yield from _read(data, _cut(data[:_SAMPLE]) or data, max(len(data), 1 << 16))
        except pa.ArrowException:
            yield from _lines_batches(doc.documents())
        return
    sample = _cut(head[:_SAMPLE]) or _cut(head)
    del head
    if sample is not None:
        if stream:
            options, parse = _options(sample, _BLOCK)
            yield from pa_json.open_json(doc.stream(), read_options=options, parse_options=parse)
            return
        try:
            options, parse = _options(sample, _BLOCK)
            table = pa_json.read_json(doc.stream(), read_options=options, parse_options=parse)
        except pa.ArrowException:
            pass  # a line longer than a block, a pretty-printed document, changing types
        else:
            yield from table.to_batches()
            return
    data = doc.head(-1)
    if not data.endswith(b"\n"):
        data += b"\n"
    if len(data) <= _MAX_BLOCK:
        try:  # one long line (a single-document file): one block
            batches = _read(data, data, len(data))
        except pa.ArrowException:
            pass
        else:
            del data
            yield from batches
            return
    del data
    yield from _lines_batches(doc.documents())


def _lines_batches(documents: list[dict]) -> list[pa.RecordBatch]:
    """Documents (parsed in Python) read columnar as JSON lines."""
    lines = [json.dumps(d, separators=(",", ":")).encode() for d in documents]
    if not lines:
        return []
    longest = max(len(line) for line in lines) + 1
    if longest > _MAX_BLOCK:
        raise _Slow("a document longer than a block")
    data = b"\n".join(lines) + b"\n"
    block = min(_MAX_BLOCK, max(_BLOCK, longest))
    first = _cut(data[:block]) or data
    try:
        return _read(data, first, block)
    except pa.ArrowException:
        raise _Slow("types change within the documents") from None


def _children(lists: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The values of a list array, and the index of the list each came from."""
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    return pc.list_flatten(lists), np.asarray(parents, dtype=np.int64)


def _mask(arr: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def _nulls_where(values: pa.Array, missing: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(missing), pa.scalar(None, values.type), values)


def _json_texts(values: pa.Array) -> pa.Array:
    """Strings as ``json.dumps`` writes them."""
    simple = _mask(pc.match_substring_regex(values, r"^[ !#-\[\]-~]*$"))
    quoted = pc.binary_join_element_wise('"', values, '"', "")
    if simple.all():
        return quoted
    hard = np.flatnonzero(~simple & _mask(pc.is_valid(values)))
    dumped = [json.dumps(v) for v in values.take(pa.array(hard)).to_pylist()]
    idx = np.full(len(values), -1, dtype=np.int64)
    idx[hard] = np.arange(hard.size)
    taken = pa.array(dumped, _STRING).take(pa.array(idx, mask=idx < 0))
    return pc.if_else(pa.array(idx >= 0), taken, quoted)


def _ints(raw: pa.Array) -> tuple[np.ndarray, pa.Array, np.ndarray]:
    """``intValue`` as the walk's ``int()``: (parsed, integers, has a value that is no integer)."""
    valid = _mask(pc.is_valid(raw))
    if pa.types.is_integer(raw.type):
        return valid, pc.cast(raw, _INT), np.zeros(len(raw), dtype=bool)
    trimmed = pc.utf8_trim_whitespace(raw)
    ok = _mask(pc.match_substring_regex(trimmed, r"^[+-]?[0-9]+$"))
    try:
        ints = pc.cast(_nulls_where(trimmed, ~ok), _INT)
    except pa.ArrowInvalid:
        raise _Slow("an integer beyond 64 bits") from None
    return ok, ints, valid & ~ok


def _reprs(values: np.ndarray) -> pa.Array:
    return pa.array([repr(float(v)) for v in values], _STRING)


@dataclass
class _Values:
    """Attribute values (one per key-value pair) as the walk's Python values would be."""

    kind: np.ndarray  # int8 value kind
    text: pa.Array  # string where str
    ints: np.ndarray  # int64 where int
    floats: np.ndarray  # float64 where float
    bools: np.ndarray  # bool where bool

    def texts(self, pos: np.ndarray, mixed: bool) -> pa.Array:
        """The values at ``pos`` as text: strings as they are; with ``mixed``, every value as
        ``str()`` writes it (the walk's table for a column of mixed types)."""
        take = pa.array(pos)
        out = self.text.take(take)
        if not mixed:
            return out
        kind = self.kind[pos]
        for k, conv in (
            (_INTK, lambda i: pc.cast(pa.array(self.ints[i]), _STRING)),
            (_BOOLK, lambda i: pa.array(np.where(self.bools[i], "True", "False"), _STRING)),
            (_FLOATK, lambda i: _reprs(self.floats[i])),
        ):
            sel = np.flatnonzero(kind == k)
            if sel.size:
                idx = np.full(len(pos), -1, dtype=np.int64)
                idx[sel] = np.arange(sel.size)
                part = conv(pos[sel]).take(pa.array(idx, mask=idx < 0))
                out = pc.if_else(pa.array(idx >= 0), part, out)
        nan = (kind == _FLOATK) & np.isnan(self.floats[pos])
        return _nulls_where(out, nan) if nan.any() else out


def _values(value: pa.Array) -> _Values:
    n = len(value)
    field = {
        name: pc.struct_field(value, name) for name in value.type.names if name != "kvlistValue"
    }
    has = {name: _mask(pc.is_valid(arr)) for name, arr in field.items()}
    has_kv = _mask(pc.is_valid(pc.struct_field(value, "kvlistValue")))
    parsed, ints, raw_int = _ints(field["intValue"])
    s, b, d, i, a = (
        has[k] for k in ("stringValue", "boolValue", "doubleValue", "intValue", "arrayValue")
    )
    kind = np.select(
        [s, b, d, i & parsed, i, a],
        [_STR, _BOOLK, _FLOATK, _INTK, _STR, _STR],
        _NONE,
    ).astype(np.int8)
    if (has_kv & (kind == _NONE)).any():
        raise _Slow("kvlistValue")
    text = field["stringValue"]
    use_raw = raw_int & ~s & ~b & ~d
    use_array = a & ~s & ~b & ~d & ~i
    if use_raw.any():
        text = pc.if_else(pa.array(use_raw), pc.cast(field["intValue"], _STRING), text)
    if use_array.any():
        text = pc.if_else(pa.array(use_array), _arrays(field["arrayValue"]), text)
    return _Values(
        kind=kind,
        text=text,
        ints=np.asarray(pc.fill_null(ints, 0).to_numpy(zero_copy_only=False), dtype=np.int64),
        floats=np.asarray(
            pc.fill_null(field["doubleValue"], np.nan).to_numpy(zero_copy_only=False),
            dtype=np.float64,
        )
        if d.any()
        else np.full(n, np.nan),
        bools=_mask(field["boolValue"]),
    )


def _arrays(array: pa.Array) -> pa.Array:
    """``arrayValue`` as the walk's ``json.dumps`` of its values."""
    lists = pc.struct_field(array, "values")
    elements, _ = _children(lists)
    for name in ("arrayValue", "kvlistValue"):
        if pc.any(pc.is_valid(pc.struct_field(elements, name))).as_py():
            raise _Slow(f"{name} in an array")
    f = {
        name: pc.struct_field(elements, name)
        for name in ("stringValue", "boolValue", "doubleValue")
    }
    s, b, d = (_mask(pc.is_valid(f[k])) for k in ("stringValue", "boolValue", "doubleValue"))
    parsed, ints, raw_int = _ints(pc.struct_field(elements, "intValue"))
    text = pa.nulls(len(elements), _STRING)
    steps = (
        (s, lambda: _json_texts(f["stringValue"])),
        (b & ~s, lambda: pc.if_else(f["boolValue"], "true", "false")),
        (
            d & ~s & ~b,
            lambda: pa.array(
                [json.dumps(v) for v in f["doubleValue"].to_pylist()], _STRING, from_pandas=False
            ),
        ),
        (parsed & ~s & ~b & ~d, lambda: pc.cast(ints, _STRING)),
        (
            raw_int & ~s & ~b & ~d,
            lambda: _json_texts(pc.cast(pc.struct_field(elements, "intValue"), _STRING)),
        ),
    )
    for sel, make in steps:
        if sel.any():
            text = pc.if_else(pa.array(sel), make(), text)
    text = pc.fill_null(text, "null")
    lengths = np.asarray(
        pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False), np.int64
    )
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    joined = pc.binary_join(
        pa.ListArray.from_arrays(pa.array(offsets, pa.int64()).cast(pa.int32()), text), ", "
    )
    return pc.binary_join_element_wise("[", joined, "]", "")


@dataclass
class _Pairs:
    """Key-value pairs of one block: key ids, owner (span or resource) index, values."""

    keys: np.ndarray  # int32 global key id
    owner: np.ndarray  # int32 owner index in the block
    values: _Values
    order: np.ndarray  # pair positions sorted by key (stable)
    bounds: np.ndarray  # bounds[k], bounds[k+1]: the run of key k in order


class _Keys:
    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def encode(self, keys: pa.Array) -> np.ndarray:
        enc = pc.dictionary_encode(keys)
        local = np.array(
            [self.ids.setdefault(k, len(self.ids)) for k in enc.dictionary.to_pylist()],
            dtype=np.int64,
        )
        idx = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        return local[idx] if local.size else idx


def _pairs(lists: pa.Array, keys: _Keys, keep_owner: np.ndarray | None = None) -> _Pairs | None:
    kv, owner = _children(lists)
    valid = _mask(pc.is_valid(pc.struct_field(kv, "key")))
    if keep_owner is not None:
        valid &= keep_owner[owner]
    if not valid.all():
        sel = np.flatnonzero(valid)
        kv, owner = kv.take(pa.array(sel)), owner[sel]
    if len(kv) == 0:
        return None
    ids = keys.encode(pc.struct_field(kv, "key")).astype(np.int32)
    order = np.argsort(ids, kind="stable").astype(np.int32)
    bounds = np.searchsorted(ids[order], np.arange(len(keys.ids) + 1))
    values = _values(pc.struct_field(kv, "value"))
    return _Pairs(ids, owner.astype(np.int32), values, order, bounds)


@dataclass
class _Block:
    rows: int
    base: dict[str, pa.Array]
    attrs: _Pairs | None
    resource: _Pairs | None
    span_resource: np.ndarray  # resource (owner) index of each span
    resource_spans: np.ndarray  # spans per resource


def _block(batch: pa.RecordBatch, keys: _Keys, resource_keys: _Keys) -> _Block | None:
    rs, _ = _children(batch.column("resourceSpans"))
    ss, ss_rs = _children(pc.struct_field(rs, "scopeSpans"))
    legacy = pc.struct_field(rs, "instrumentationLibrarySpans")
    if pc.any(pc.greater(pc.list_value_length(legacy), 0)).as_py():
        regular = pc.list_value_length(pc.struct_field(rs, "scopeSpans"))
        use = _mask(pc.fill_null(pc.equal(regular, 0), True))
        old, old_rs = _children(legacy)
        pick = np.flatnonzero(use[old_rs])
        ss = pa.concat_arrays([ss, old.take(pa.array(pick))])
        ss_rs = np.concatenate([ss_rs, old_rs[pick]])
        order = np.argsort(ss_rs, kind="stable")
        ss, ss_rs = ss.take(pa.array(order)), ss_rs[order]
    spans, span_ss = _children(pc.struct_field(ss, "spans"))
    n = len(spans)
    if n == 0:
        return None
    scope = pc.coalesce(
        pc.struct_field(pc.struct_field(ss, "scope"), "name"),
        pc.struct_field(pc.struct_field(ss, "instrumentationLibrary"), "name"),
    )
    f = {name: pc.struct_field(spans, name) for name in spans.type.names}
    status = f["status"]
    parent = f["parentSpanId"]
    base = {
        "traceId": f["traceId"],
        "spanId": f["spanId"],
        "parentSpanId": _nulls_where(parent, _mask(pc.equal(parent, ""))),
        "name": f["name"],
        "kind": f["kind"],
    }
    for name in ("startTimeUnixNano", "endTimeUnixNano"):
        t = f[name]
        empty = pc.equal(t, "") if pa.types.is_string(t.type) else pc.equal(t, 0)
        base[name] = _nulls_where(pc.cast(t, _STRING), _mask(empty))
    base["status.code"] = pc.cast(pc.struct_field(status, "code"), _STRING)
    base["status.message"] = pc.struct_field(status, "message")
    base["scope.name"] = scope.take(pa.array(span_ss))
    span_rs = ss_rs[span_ss]
    per_rs = np.bincount(span_rs, minlength=len(rs))
    return _Block(
        rows=n,
        base=base,
        attrs=_pairs(f["attributes"], keys),
        resource=_pairs(
            pc.struct_field(pc.struct_field(rs, "resource"), "attributes"),
            resource_keys,
            keep_owner=per_rs > 0,
        ),
        span_resource=span_rs,
        resource_spans=per_rs,
    )


def _run(pairs: _Pairs, k: int) -> np.ndarray:
    """Positions of key ``k``'s pairs, the last one of each owner only (the walk's dict)."""
    if k + 1 >= len(pairs.bounds):
        return np.empty(0, dtype=np.int64)
    pos = pairs.order[pairs.bounds[k] : pairs.bounds[k + 1]]
    if pos.size > 1:
        owner = pairs.owner[pos]
        pos = pos[np.r_[owner[1:] != owner[:-1], True]]
    return pos


@dataclass(frozen=True)
class _Column:
    name: str  # column name
    key: int  # key id
    type: pa.DataType
    mixed: bool  # values of several kinds: each as str() writes it
    resource: bool


def _types(blocks: list[_Block], keys: _Keys, resource: bool) -> list[_Column]:
    """The column of each key, typed as the walk's ``records_table`` types it."""
    total = sum(b.rows for b in blocks)
    out = []
    for name, k in keys.ids.items():
        kinds: set[int] = set()
        rows_with = 0
        for b in blocks:
            pairs = b.resource if resource else b.attrs
            if pairs is None:
                continue
            pos = _run(pairs, k)
            if pos.size:
                kind = pairs.values.kind[pos]
                kinds.update(int(x) for x in np.unique(kind))
                has = kind != _NONE
                if resource:
                    rows_with += int(b.resource_spans[pairs.owner[pos][has]].sum())
                else:
                    rows_with += int(has.sum())
        kinds.discard(_NONE)
        full = rows_with == total
        mixed = False
        if not kinds:
            t: pa.DataType = pa.null()
        elif kinds == {_STR}:
            t = _STRING
        elif kinds == {_INTK} and full:
            t = _INT
        elif kinds <= {_INTK, _FLOATK}:
            t = _FLOAT
        elif kinds == {_BOOLK} and full:
            t = _BOOL
        else:
            t, mixed = _STRING, True
        out.append(_Column((_R if resource else _A) + name, k, t, mixed, resource))
    return out


def _dense(b: _Block, c: _Column) -> pa.Array:
    """One block's part of a column: the key's values put in their rows."""
    pairs = b.resource if c.resource else b.attrs
    pos = _run(pairs, c.key) if pairs is not None else np.empty(0, dtype=np.int64)
    if pairs is None or pos.size == 0 or pa.types.is_null(c.type):
        return pa.nulls(b.rows, c.type)
    owners = len(b.resource_spans) if c.resource else b.rows
    idx = np.full(owners, -1, dtype=np.int64)
    idx[pairs.owner[pos]] = np.arange(pos.size)
    if c.resource:
        idx = idx[b.span_resource]
    v = pairs.values
    kind = v.kind[pos]
    missing = idx < 0
    if c.type == _STRING:
        return v.texts(pos, c.mixed).take(pa.array(idx, mask=missing))
    safe = np.where(missing, 0, idx)
    if c.type == _INT:
        return pa.array(v.ints[pos][safe], _INT, mask=missing)
    if c.type == _BOOL:
        return pa.array(v.bools[pos][safe], _BOOL, mask=missing)
    numbers = np.where(kind == _INTK, v.ints[pos].astype(np.float64), v.floats[pos])
    numbers = np.where(kind == _NONE, np.nan, numbers)[safe]
    return pa.array(numbers, _FLOAT, mask=missing | np.isnan(numbers))


def _trace_names(
    trace: pa.ChunkedArray, parent: pa.ChunkedArray, name: pa.ChunkedArray
) -> pa.Array:
    """Each span's trace's root name (the last root of a trace wins, as in a dict)."""
    enc = pc.dictionary_encode(trace.combine_chunks(), null_encoding="encode")
    codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    roots = np.flatnonzero(_mask(pc.is_null(parent.combine_chunks())))
    pick = np.full(len(enc.dictionary) + 1, -1, dtype=np.int64)
    if roots.size:
        rev = roots[::-1]
        used, first = np.unique(codes[rev], return_index=True)
        pick[used] = rev[first]
    row = pick[codes]
    return name.combine_chunks().take(pa.array(row, mask=row < 0))


def _iter_batches(documents: list[dict], stream: bool) -> Iterator[pa.RecordBatch]:
    plain = [d for d in documents if not isinstance(d, FileDocuments)]
    for d in documents:
        if isinstance(d, FileDocuments):
            yield from _file_batches(d, stream)
    if plain:
        yield from _lines_batches(plain)


def _columnar(documents: list[dict], stream: bool) -> pa.Table:
    keys, resource_keys = _Keys(), _Keys()
    blocks: list[_Block] = []
    for batch in _iter_batches(documents, stream):
        block = _block(batch, keys, resource_keys)
        if block is not None:
            blocks.append(block)
    if not blocks:
        return records_table([])
    parts: dict[str, list[pa.Array]] = {name: [] for name in blocks[0].base}
    columns = _types(blocks, resource_keys, resource=True) + _types(blocks, keys, resource=False)
    parts.update((c.name, []) for c in columns)
    blocks.reverse()
    while blocks:  # block by block, each let go once its part of the columns is made
        b = blocks.pop()
        for name, arr in b.base.items():
            parts[name].append(arr)
        for c in columns:
            parts[c.name].append(_dense(b, c))
        del b
    table = pa.table({name: pa.chunked_array(arrs) for name, arrs in parts.items()})
    names = _trace_names(table["traceId"], table["parentSpanId"], table["name"])
    return table.append_column("trace.name", names)


def spans_table(documents: list[dict]) -> pa.Table:
    """One row per span: the span's fields, ``resource.attributes.*``, ``attributes.*`` and
    ``trace.name``. ``documents``: OTLP JSON documents, or `FileDocuments` read columnar."""
    try:
        try:
            return _columnar(documents, stream=True)
        except pa.ArrowException:  # e.g. a long line or a changed type in a later block
            return _columnar(documents, stream=False)
    except (_Slow, pa.ArrowException):
        pass
    docs: list[dict] = []
    for d in documents:
        docs.extend(d.documents() if isinstance(d, FileDocuments) else [d])
    return _walk(docs)


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
