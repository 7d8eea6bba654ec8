"""What every reader hands back, and how a format is declared.

A reader turns the flat table of an export (nested fields flattened into dotted column names,
``usage_details.input``) into `Calls`: one element per row of the export, numpy arrays for the
numbers and a mask of the rows that are LLM calls. Rows that are not calls (spans, events) are
kept so that the class of a trace can come from its root.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class Calls:
    """Rows of an export as arrays (length = rows); ``is_call`` marks the LLM calls."""

    is_call: np.ndarray  # bool
    trace_id: pa.Array | None  # string, null where the row has no trace
    is_root: np.ndarray | None  # bool: the row is the root of its trace
    cost: np.ndarray  # float64 USD, NaN = no cost in the export
    input_tokens: np.ndarray  # float64, all input tokens (cached included)
    output_tokens: np.ndarray
    cached_input_tokens: np.ndarray  # float64, cache reads (a part of input_tokens)
    start: np.ndarray  # float64 epoch seconds UTC
    end: np.ndarray  # float64 epoch seconds UTC (NaN when unknown)
    error: np.ndarray  # bool
    model: pa.Array  # string
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reads:
    """The fields a reader uses, so that a large JSON export is read without the rest (its
    ``input``/``output`` texts above all). Dotted paths, as `Fields` takes them.

    ``numbers`` and ``values`` (text, times) are read for their values only: a field the file
    does not have reads as all missing, which the reader treats like an absent one. In each
    group of ``present`` the reader uses the first field that exists, so whether it exists
    matters and is found out exactly (else the file is read whole).
    """

    numbers: tuple[str, ...] = ()
    values: tuple[str, ...] = ()
    present: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class Format:
    """One export format: how to recognise it, what it is called, how to read it."""

    name: str  # the --format value
    title: str  # words for the user: "a Langfuse observations export"
    expects: str  # the fields that identify it, for messages
    detect: Callable[[frozenset[str]], str | None]  # keys -> title variant, or None
    calls: Callable[[pa.Table], Calls]
    default_class: tuple[str, ...]  # class_from expressions, the first that exists is used
    tags: tuple[str, ...] = ()  # columns holding a list of tags, first found wins
    traces: bool = False  # whether the format has trace ids
    loader: str = "flat"  # "flat": one row per record; "otel": spans of OTLP JSON
    class_note: str = ""  # what the default class means, for the detected line
    reads: Reads | None = None  # the fields `calls` uses; None: every field is read
