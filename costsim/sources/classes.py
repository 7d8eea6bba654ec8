"""The query class of each row: from any field (``class_from``) and a regex map (``class_map``).

``class_from`` is a dotted path into the record (``metadata.route``, ``attributes.app.feature``,
``request_properties.Helicone-Session-Name``) or a tag: ``tag:route=`` takes the first tag that
starts with ``route=`` and keeps what follows (``route=search`` -> ``search``); ``tag:`` alone
takes the first tag.

A class map is a YAML file of regular expressions and the class each one names, tried in order
(first match wins, ``re.search`` on the value found by ``class_from``)::

    "^/api/search": search
    "agent|tool": agent
    ".*": other          # optional catch-all; without it unmatched values are kept as they are

(a list of one-key mappings is accepted too). Values are mapped once per distinct value, not per
row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from costsim.formats import key_text, show
from costsim.sources._fields import Fields, error, to_text

UNCLASSIFIED = "unclassified"


@dataclass(frozen=True)
class ClassMap:
    source: str
    rules: tuple[tuple[re.Pattern[str], str], ...]


def load_class_map(path: str | Path) -> ClassMap:
    src = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"class map {src}: cannot read: {exc.strerror or exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"class map {src}: not valid YAML: {str(exc).splitlines()[0]}") from None
    items: list[tuple[object, object]]
    if isinstance(doc, dict):
        items = list(doc.items())
    elif isinstance(doc, list) and all(isinstance(d, dict) and len(d) == 1 for d in doc):
        items = [next(iter(d.items())) for d in doc]
    else:
        raise error(
            f"class map {src}: expected a mapping of regular expressions to class names "
            f"(or a list of one-key mappings), got {type(doc).__name__}"
        )
    if not items:
        raise error(f"class map {src}: no rules")
    rules = []
    for key, value in items:
        if not isinstance(key, str):
            raise error(
                f"class map {src}: key {key_text(key)}: expected a regular expression (a "
                "string: quote it in the YAML file)"
            )
        if not isinstance(value, str) or not value.strip():
            raise error(f"class map {src}: key '{key}': expected a class name, got {show(value)}")
        try:
            rules.append((re.compile(key), value.strip()))
        except re.error as exc:
            raise error(f"class map {src}: key '{key}': bad regular expression: {exc}") from None
    return ClassMap(src, tuple(rules))


def class_values(fields: Fields, expr: str, tag_columns: tuple[str, ...]) -> tuple[pa.Array, bool]:
    """The raw class of every row (null where missing), and whether the source exists at all."""
    rows = fields.rows
    if expr.startswith("tag:"):
        prefix = expr[4:]
        for column in tag_columns:
            tags = fields.tag_lists(column)
            if tags is not None:
                return _tag_values(tags, prefix), True
        return pa.nulls(rows, pa.string()), False
    col = fields.get(expr)
    return to_text(col, rows), col is not None


def _tag_values(tags: pa.Array, prefix: str) -> pa.Array:
    rows = len(tags)
    flat = pc.list_flatten(tags)
    parents = np.asarray(pc.list_parent_indices(tags).to_numpy(zero_copy_only=False))
    hit = np.asarray(
        pc.fill_null(pc.starts_with(flat, prefix), False).to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    idx = np.flatnonzero(hit)
    # The first matching tag of each row.
    first_rows, first_pos = np.unique(parents[idx], return_index=True)
    take = np.full(rows, -1, dtype=np.int64)
    take[first_rows] = idx[first_pos]
    values = pc.take(flat, pa.array(np.where(take >= 0, take, 0)))
    if prefix:
        values = pc.utf8_slice_codeunits(values, len(prefix))
    mask = pa.array(take < 0)
    out = (
        pc.if_else(mask, pa.scalar(None, pa.string()), values)
        if len(flat)
        else pa.nulls(rows, pa.string())
    )
    return to_text(out, rows)


def apply_class_map(values: pa.Array, cmap: ClassMap) -> tuple[pa.Array, int]:
    """Classes after the map; and how many distinct non-null values no rule matched."""
    encoded = (
        pc.dictionary_encode(values).combine_chunks()
        if isinstance(values, pa.ChunkedArray)
        else pc.dictionary_encode(values)
    )
    dictionary = encoded.dictionary.to_pylist()
    mapped: list[str] = []
    unmatched = 0
    for value in dictionary:
        for pattern, name in cmap.rules:
            if pattern.search(value):
                mapped.append(name)
                break
        else:
            mapped.append(value)
            unmatched += 1
    new = pa.DictionaryArray.from_arrays(encoded.indices, pa.array(mapped, pa.string()))
    return new.dictionary_decode(), unmatched


def finish(values: pa.Array) -> tuple[np.ndarray, int]:
    """Classes as a numpy object array with ``unclassified`` filled in, and that count."""
    missing = np.asarray(values.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    filled = pc.fill_null(values, UNCLASSIFIED)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=object), int(missing.sum())
