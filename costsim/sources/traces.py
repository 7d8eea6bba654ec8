"""Pricing calls without a cost, and turning calls into queries (one query = one trace).

A trace's cost and tokens are the sums over its calls (its cost is missing if any call's cost
is missing after pricing); its timestamp is its first call's start; its latency runs from the
first start to the last end; it failed if its final call failed; ``calls`` counts its calls; its
model is the one most of its calls used (ties: alphabetical); its class is its root's, or else
the earliest row's that has one. All of it with numpy group reductions, no loop per trace.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from costsim.sources._base import Calls

Pricer = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def price_missing(calls: Calls, pricer: Pricer | None) -> tuple[np.ndarray, list[str]]:
    """Costs of the calls with the missing ones priced from the catalog where possible."""
    cost = calls.cost.copy()
    model = calls.model
    has_model = np.asarray(pc.is_valid(model).to_numpy(zero_copy_only=False), dtype=bool)
    tokens = ~np.isnan(calls.input_tokens) | ~np.isnan(calls.output_tokens)
    need = calls.is_call & np.isnan(cost)
    todo = need & has_model & tokens
    notes: list[str] = []
    if not need.any():
        return cost, notes
    if todo.any():
        if pricer is None:
            try:
                pricer = importlib.import_module("costsim.simulate.prices").price_calls
            except ImportError:
                pricer = None
        if pricer is None:
            notes.append(
                f"{int(need.sum()):,} calls have no cost and no price catalog is available; "
                "their cost is left empty"
            )
            return cost, notes
        idx = np.flatnonzero(todo)
        models = np.asarray(model.take(pa.array(idx)).to_numpy(zero_copy_only=False), dtype=object)
        priced = pricer(
            models,
            np.nan_to_num(calls.input_tokens[idx]),
            np.nan_to_num(calls.output_tokens[idx]),
            np.nan_to_num(calls.cached_input_tokens[idx]),
            calls.start[idx],
        )
        cost[idx] = np.asarray(priced, dtype=np.float64)
        notes.append(
            f"{idx.size:,} calls had no cost in the export and were priced from the catalog"
        )
    left = int((need & ~todo).sum())
    if left:
        notes.append(f"{left:,} calls have no cost, no model or no tokens; their cost is empty")
    return cost, notes


def _codes(values: pa.Array, rows: int) -> tuple[np.ndarray, int]:
    """Integer codes of a string array; each null gets a code of its own."""
    encoded = pc.dictionary_encode(values)
    idx = encoded.indices.to_numpy(zero_copy_only=False)
    valid = np.asarray(encoded.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    n = len(encoded.dictionary)
    codes = np.empty(rows, dtype=np.int64)
    codes[valid] = np.asarray(idx, dtype=np.float64)[valid].astype(np.int64)
    codes[~valid] = n + np.arange(int((~valid).sum()))
    return codes, n + int((~valid).sum())


def trace_class(
    codes: np.ndarray,
    n_codes: int,
    classes: pa.Array,
    is_root: np.ndarray | None,
    start: np.ndarray,
) -> pa.Array:
    """Per trace code: the root's class, else the earliest row's with a class (null if none)."""
    has = np.asarray(classes.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    rows = np.flatnonzero(has)
    out = np.full(n_codes, -1, dtype=np.int64)
    if rows.size:
        root_rank = (~is_root[rows]).astype(np.int8) if is_root is not None else np.zeros(rows.size)
        t = np.where(np.isnan(start[rows]), np.inf, start[rows])
        order = np.lexsort((t, root_rank, codes[rows]))
        sorted_codes = codes[rows][order]
        first = np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]
        out[sorted_codes[first]] = rows[order][first]
    taken = classes.take(pa.array(np.where(out >= 0, out, 0)))
    return pc.if_else(pa.array(out < 0), pa.scalar(None, pa.string()), taken)


def _most_used(model: pa.Array, g: np.ndarray, n: int) -> pa.Array:
    """Per group, the value most rows hold (nulls last; ties: alphabetical)."""
    encoded = pc.dictionary_encode(model)
    names = encoded.dictionary.to_pylist()
    order = sorted(range(len(names)), key=names.__getitem__)
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    idx = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False))
    code = np.where(idx >= 0, rank[np.maximum(idx, 0)] if len(names) else 0, len(names))
    width = len(names) + 1
    pairs, counts = np.unique(g * width + code, return_counts=True)
    group, value = pairs // width, pairs % width
    score = np.where(value == len(names), -1, counts)
    best = np.lexsort((value, -score, group))
    pick = np.flatnonzero(np.r_[True, group[best][1:] != group[best][:-1]])
    chosen = value[best][pick]
    table = pa.array([names[i] for i in order] + [None], pa.string())
    return table.take(pa.array(chosen))


def _group_sum(codes: np.ndarray, n: int, x: np.ndarray) -> np.ndarray:
    """Sum per group of the non-missing values; NaN where a group has none."""
    ok = ~np.isnan(x)
    total = np.bincount(codes, weights=np.where(ok, x, 0.0), minlength=n)
    seen = np.bincount(codes, weights=ok.astype(np.float64), minlength=n)
    total[seen == 0] = np.nan
    return total


def aggregate(
    calls: Calls, cost: np.ndarray, classes: pa.Array, unit: str
) -> tuple[dict[str, np.ndarray | pa.Array], int]:
    """The query rows (columns of the internal table) and the number of calls read."""
    rows = len(calls.is_call)
    end = np.where(np.isnan(calls.end), np.nan, calls.end)
    keep = np.flatnonzero(calls.is_call)
    n_calls = int(keep.size)
    if calls.trace_id is not None:
        codes, n_codes = _codes(calls.trace_id, rows)
        by_trace = trace_class(codes, n_codes, classes, calls.is_root, calls.start)
        own = classes
        if unit == "call":
            own = pc.coalesce(classes, by_trace.take(pa.array(codes)))
    else:
        codes, n_codes = np.arange(rows, dtype=np.int64), rows
        by_trace = classes
        own = classes
    model = calls.model
    if unit == "call":
        k = pa.array(keep)
        latency = (end[keep] - calls.start[keep]) * 1000.0
        return {
            "query_class": own.take(k),
            "cost_usd": cost[keep],
            "input_tokens": calls.input_tokens[keep],
            "output_tokens": calls.output_tokens[keep],
            "cached_input_tokens": calls.cached_input_tokens[keep],
            "timestamp": calls.start[keep],
            "latency_ms": latency,
            "status": np.where(calls.error[keep], "error", "ok").astype(object),
            "calls": np.ones(n_calls, dtype=np.int64),
            "model": model.take(k),
        }, n_calls

    # One query per trace that has at least one call.
    used, dense = np.unique(codes[keep], return_inverse=True)
    n = used.size
    g = dense.astype(np.int64)
    start = calls.start[keep]
    stop = end[keep]
    out_cost = np.bincount(g, weights=np.nan_to_num(cost[keep]), minlength=n)
    out_cost[np.bincount(g, weights=np.isnan(cost[keep]).astype(np.float64), minlength=n) > 0] = (
        np.nan
    )
    t = np.where(np.isnan(start), np.inf, start)
    e = np.where(np.isnan(stop), -np.inf, stop)
    order = np.lexsort((e, t, g))
    sg = g[order]
    first = np.flatnonzero(np.r_[True, sg[1:] != sg[:-1]])
    last = np.r_[first[1:] - 1, sg.size - 1]
    ts = np.fmin.reduceat(start[order], first)
    te = np.fmax.reduceat(stop[order], first)
    error = calls.error[keep][order][last]

    trace_model = _most_used(model.take(pa.array(keep)), g, n)

    latency = (te - ts) * 1000.0
    latency[~np.isfinite(latency)] = np.nan
    ts = np.where(np.isfinite(ts), ts, np.nan)
    return {
        "query_class": by_trace.take(pa.array(used)),
        "cost_usd": out_cost,
        "input_tokens": _group_sum(g, n, calls.input_tokens[keep]),
        "output_tokens": _group_sum(g, n, calls.output_tokens[keep]),
        "cached_input_tokens": _group_sum(g, n, calls.cached_input_tokens[keep]),
        "timestamp": ts,
        "latency_ms": latency,
        "status": np.where(error, "error", "ok").astype(object),
        "calls": np.bincount(g, minlength=n).astype(np.int64),
        "model": trace_model,
    }, n_calls
