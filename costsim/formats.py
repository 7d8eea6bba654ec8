"""What every declared file format shares (the model file, the baseline, the scenario).

A format is declared once, with pydantic v2 models (or pydantic dataclasses) whose fields carry
the types below; `validated` checks a document against it and turns pydantic's errors into
costsim's one-line messages (``key.path: message; key.path: message``), every problem at once,
unknown keys with a did-you-mean; `clean_schema` turns pydantic's JSON Schema into ours.

The number, list and choice types validate a value themselves (one plain validator), so that
the message names the bound the value broke in our words, and describe their own schema.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Strict,
    TypeAdapter,
    ValidationError,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import ArgsKwargs, CoreSchema, PydanticCustomError, core_schema

from .errors import CostsimError

T = TypeVar("T")
Problem = tuple[str, str]  # (key below the failing location, message)
INFINITIES = {"inf": math.inf, "-inf": -math.inf}  # how the writers store infinite numbers
_PROBLEMS = "costsim_problems"
_UNKNOWN = "unknown key"
_NOT_A_KEY = "keys must be strings (quote it in the YAML file)"
_DOCUMENT = "costsim_document"  # in the validation context: the values come from a file
_ALLOWED = "x-allowed"  # our bounds in words, moved into the description by `clean_schema`
# A YAML 1.2 float that YAML 1.1 (PyYAML) reads as a string, such as 1e6 (no dot).
_EXPONENT_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)[eE][-+]?\d+")


# ---------------------------------------------------------------------------------------------
# Values shown as written, problems raised together
# ---------------------------------------------------------------------------------------------


def show(value: Any) -> str:
    """A value as the file has it, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true (a boolean)" if value else "false (a boolean)"
    if isinstance(value, int) and value.bit_length() > 64:  # repr may refuse a huge one
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, date):
        return value.isoformat()
    return f"a {type(value).__name__}"


def key_text(key: Any) -> str:
    """A mapping key as it reads in the file."""
    if isinstance(key, bool):
        return str(key).lower()
    if isinstance(key, str):
        return key
    if isinstance(key, int) and key.bit_length() > 64:
        return show(key)
    return key.isoformat() if isinstance(key, date) else str(key)


def problems_error(problems: Iterable[Problem], allowed: Sequence[str] = ()) -> PydanticCustomError:
    """One pydantic error carrying several of our problems (each with its own sub-key)."""
    items = tuple(problems)
    text = "; ".join(f"{key}: {message}" if key else message for key, message in items)
    return PydanticCustomError(
        _PROBLEMS, "{text}", {"text": text, "problems": items, "allowed": tuple(allowed)}
    )


def raise_problems(problems: list[Problem]) -> None:
    if problems:
        raise problems_error(problems)


def suggest(name: str, allowed: Sequence[str]) -> str | None:
    """The allowed name closest to ``name`` (case aside), if one is close."""
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    if not close:
        lowered = {a.lower(): a for a in allowed}
        close = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=1)]
    return close[0] if close else None


def _unknown_key(key: str, allowed: Sequence[str]) -> str:
    guess = suggest(key, allowed)
    if guess is not None:
        return f"{_UNKNOWN}; did you mean '{guess}'?"
    return f"{_UNKNOWN}; allowed: {', '.join(allowed)}" if allowed else _UNKNOWN


# ---------------------------------------------------------------------------------------------
# Declared values: each validates itself and describes its schema
# ---------------------------------------------------------------------------------------------


class Declared:
    """Metadata that validates a value itself (one plain validator) and describes its schema.

    It checks the values of a document (read through `validated`); a value given in code (a
    section built or `dataclasses.replace`d by the program) is taken as it is, as a plain
    dataclass would take it."""

    def __call__(self, value: Any) -> Any:
        raise NotImplementedError

    def json_schema(self) -> JsonSchemaValue:
        raise NotImplementedError

    def _check(self, value: Any, info: core_schema.ValidationInfo) -> Any:
        context = info.context
        return self(value) if isinstance(context, dict) and context.get(_DOCUMENT) else value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.with_info_plain_validator_function(self._check)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return self.json_schema()


def _as_number(value: Any) -> float | None:
    """A number, one of the writers' infinity strings or a number in exponent form ("1e6");
    None for anything else (booleans and NaN included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            x = float(value)
        except OverflowError:  # an integer too long for a float
            x = math.inf if value > 0 else -math.inf
        return None if math.isnan(x) else x
    if isinstance(value, str):
        if _EXPONENT_NUMBER.fullmatch(value.strip()):
            return float(value)
        return INFINITIES.get(value)
    return None


@dataclass(frozen=True)
class Num(Declared):
    """A number within bounds (finite unless ``finite=False``), or an integer; null if allowed.

    Booleans and text are refused (but "1e6", which YAML 1.1 reads as text, is a number; the
    strings "inf" and "-inf" are read as infinities, as the writers store them, then refused
    where a finite number is needed). ``meaning`` says what a value means, after the range.
    With ``cap``, the upper bound is a plausibility cap rather than the edge of the value's
    domain (as 1 is for a probability): a message names the lower bound alone (``>= 0``) for a
    value below it or not a number, and the whole range with its meaning for a value above."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    finite: bool = True
    integer: bool = False
    null: bool = False
    meaning: str = ""
    cap: bool = False

    def text(self, x: float) -> str:
        return str(int(x)) if self.integer else f"{x:g}"

    def range(self) -> str:
        """The allowed values in words: ``in [0, 2] (meaning)``, ``>= 0``."""
        lo, hi = self.lo, self.hi
        if lo is not None and hi is not None:
            text = (
                f"in {'(' if self.lo_open else '['}{self.text(lo)}, {self.text(hi)}"
                f"{')' if self.hi_open else ']'}"
            )
        elif lo is not None:
            text = f"{'>' if self.lo_open else '>='} {self.text(lo)}"
        elif hi is not None:
            text = f"{'<' if self.hi_open else '<='} {self.text(hi)}"
        else:
            return ""
        return f"{text} ({self.meaning})" if self.meaning else text

    def broken(self, value: Any = None) -> str:
        """The bound a message names for ``value`` (None: any value)."""
        if self.cap and self.lo is not None and not self.above(value):
            return f"{'>' if self.lo_open else '>='} {self.text(self.lo)}"
        return self.range()

    def above(self, value: Any) -> bool:
        exact = isinstance(value, int) and not isinstance(value, bool)  # however long
        x = value if exact else _as_number(value)  # "1e300" too, which YAML 1.1 reads as text
        if self.hi is None or x is None or not (exact or math.isfinite(x)):
            return False
        return x >= self.hi if self.hi_open else x > self.hi

    def describe(self, value: Any = None, plural: bool = False) -> str:
        noun = (
            ("integers" if plural else "an integer")
            if self.integer
            else ("numbers" if plural else "a number")
        )
        text = f"{noun} {self.broken(value)}".rstrip()
        return text if self.finite else f'{text} (or "inf")'

    def parse(self, value: Any) -> float | int | None:
        """The value, or None when it is not acceptable (null included)."""
        if self.integer and isinstance(value, int) and not isinstance(value, bool):
            x: float | int = value  # compared exactly: no rounding through a float
        else:
            f = _as_number(value)
            if f is None or (self.integer and not (math.isfinite(f) and f.is_integer())):
                return None
            x = int(f) if self.integer else f
        if self.finite and isinstance(x, float) and not math.isfinite(x):
            return None
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return None
        if self.hi is not None and (x >= self.hi if self.hi_open else x > self.hi):
            return None
        return x

    def accepts_all(self, values: list[Any]) -> bool:
        """Whether `parse` returns every one of ``values`` as it is: plain floats within bounds
        (checked at once; False means only: ask `parse`, one by one)."""
        if self.integer or len(values) < 16 or set(map(type, values)) != {float}:
            return False
        import numpy as np  # here: reading a scenario or a schema needs no numpy

        x = np.array(values)
        ok = np.isfinite(x) if self.finite else ~np.isnan(x)
        if self.lo is not None:
            ok &= (x > self.lo) if self.lo_open else (x >= self.lo)
        if self.hi is not None:
            ok &= (x < self.hi) if self.hi_open else (x <= self.hi)
        return bool(ok.all())

    def __call__(self, value: Any) -> float | int | None:
        if value is None and self.null:
            return None
        x = self.parse(value)
        if x is None:
            what = self.describe(value) + (" or null" if self.null else "")
            raise problems_error([("", f"expected {what}, got {show(value)}")])
        return x

    def bounds(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, bound, is_open in (
            ("minimum", self.lo, self.lo_open),
            ("maximum", self.hi, self.hi_open),
        ):
            if bound is not None:
                out[("exclusiveM" + key[1:]) if is_open else key] = bound
        return out

    def json_schema(self) -> JsonSchemaValue:
        out: dict[str, Any] = {"type": "integer" if self.integer else "number", **self.bounds()}
        options = [out]
        if not self.finite:
            options.append({"enum": [k for k, v in INFINITIES.items() if self.parse(k) == v]})
        if self.null:
            options.append({"type": "null"})
        schema = out if len(options) == 1 else {"anyOf": options}
        return {**schema, _ALLOWED: self.range()} if self.meaning or self.cap else schema


def integer(lo: int, hi: int | None = None) -> Num:
    return Num(lo, hi, integer=True)


@dataclass(frozen=True)
class Nums(Declared):
    """A list of numbers (each an ``item``), of a given or least length, optionally ordered;
    ``what`` says what the values are."""

    item: Num
    length: int | None = None
    min_length: int = 0
    non_decreasing: bool = False
    null: bool = False
    what: str = ""

    def describe(self) -> str:
        count = (
            f"{self.length} "
            if self.length is not None
            else f"at least {self.min_length} "
            if self.min_length > 1
            else ""
        )
        text = f"a list of {count}{self.item.describe(plural=True)}"
        return f"{text} ({self.what})" if self.what else text

    def __call__(self, value: Any) -> tuple[float, ...] | None:
        if value is None and self.null:
            return None
        if isinstance(value, tuple):
            value = list(value)  # as built in code
        short = isinstance(value, list) and (
            len(value) < self.min_length or (self.length is not None and len(value) != self.length)
        )
        if not isinstance(value, list) or short:
            got = f"{len(value)} values" if isinstance(value, list) else show(value)
            what = self.describe() + (" or null" if self.null else "")
            raise problems_error([("", f"expected {what}, got {got}")])
        if self.item.accepts_all(value):  # the common case (a model file's long lists), quickly
            values = tuple(value)
        else:
            parsed = [self.item.parse(v) for v in value]
            bad = [i for i, x in enumerate(parsed) if x is None]
            if bad:
                more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
                first = value[bad[0]]
                message = f"expected {self.item.describe(first)}, got {show(first)}{more}"
                raise problems_error([(f"[{bad[0]}]", message)])
            values = tuple(float(x) for x in parsed if x is not None)
        if self.non_decreasing:
            drops = [i for i in range(1, len(values)) if values[i] < values[i - 1]]
            if drops:
                i = drops[0]
                raise problems_error(
                    [("", f"must be non-decreasing, but [{i}] = {show(value[i])} < "
                          f"[{i - 1}] = {show(value[i - 1])}")]
                )  # fmt: skip
        return values

    def json_schema(self) -> JsonSchemaValue:
        out: dict[str, Any] = {"type": "array", "items": self.item.json_schema()}
        if self.length is not None:
            out["minItems"] = out["maxItems"] = self.length
        elif self.min_length:
            out["minItems"] = self.min_length
        return {"anyOf": [out, {"type": "null"}]} if self.null else out


@dataclass(frozen=True)
class Choice(Declared):
    """One of a few names (as a value, or as the keys of a mapping)."""

    options: tuple[str, ...]

    def __call__(self, value: Any) -> str:
        if isinstance(value, str) and value in self.options:
            return value
        raise problems_error([("", self.message(value))], allowed=self.options)

    def message(self, value: Any) -> str:
        guess = suggest(value, self.options) if isinstance(value, str) else None
        hint = f"; did you mean '{guess}'?" if guess else ""
        return f"expected one of {', '.join(self.options)}, got {show(value)}{hint}"

    def json_schema(self) -> JsonSchemaValue:
        return {"enum": list(self.options)}


@dataclass(frozen=True)
class NonEmpty(Declared):
    """A string with something in it (a name, a path); null if allowed."""

    null: bool = False
    what: str = "a non-empty string"

    def __call__(self, value: Any) -> str | None:
        if isinstance(value, str) and value.strip():
            return value
        if value is None and self.null:
            return None
        raise problems_error([("", f"expected {self.what}, got {show(value)}")])

    def json_schema(self) -> JsonSchemaValue:
        out = {"type": "string", "minLength": 1}
        return {"anyOf": [out, {"type": "null"}]} if self.null else out


Flag = Annotated[bool, Strict()]


def shorthand(key: str, value: Num, schema: Any, what: str) -> BeforeValidator:
    """A mapping that may be written as one number, its ``key`` (``magnitude: 3`` for
    ``{median: 3}``); ``schema`` is the mapping's type, ``what`` names the number."""

    def expand(data: Any) -> Any:
        if isinstance(data, dict) or dataclasses.is_dataclass(data) or data is None:
            return data
        if _as_number(data) is None:
            raise problems_error([(
                "",
                f"expected a number {value.broken()} ({what}) or a mapping of "
                f"{', '.join(keys(schema))}, got {show(data)}",
            )])  # fmt: skip
        return {key: value(data)}

    number = Annotated[float, value]
    return BeforeValidator(expand, json_schema_input_type=Union[number, schema])  # noqa: UP007


def sums_to_one(values: Iterable[float], tolerance: float) -> str | None:
    """None when ``values`` sum to 1 (within ``tolerance``, relative), else why not."""
    total = math.fsum(values)
    if math.isclose(total, 1.0, rel_tol=tolerance):
        return None
    return f"must sum to 1, got {total:.10g}"


class Closed(BaseModel):
    """A mapping of the file whose keys are all declared: an unknown key is a mistake."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Open(BaseModel):
    """A mapping that may carry keys a newer writer added; readers ignore them."""

    model_config = ConfigDict(extra="allow", frozen=True)


def drop_nulls(data: Any) -> Any:
    """A mapping read from a file with its null values left out (null means absent)."""
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if v is not None}
    return data


def is_document(data: Any) -> bool:
    """Whether a model validator sees a document (a mapping), not a construction in code."""
    return not isinstance(data, ArgsKwargs)


# ---------------------------------------------------------------------------------------------
# pydantic's errors in our words
# ---------------------------------------------------------------------------------------------


def _join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    if key.startswith("[") or not where:
        return f"{where}{key}"
    return f"{where}.{key}" if key else where


def _path(loc: Sequence[str | int]) -> str:
    where = ""
    for part in loc:
        where = _join(where, part)
    return where


def _within(where: str, outer: str) -> bool:
    return where == outer or where.startswith((f"{outer}.", f"{outer}["))


def _strip(tp: Any) -> Any:
    """The type inside ``Annotated[...]`` and ``X | None``."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp):
            options = [a for a in get_args(tp) if a is not type(None)]
            tp = options[0] if len(options) == 1 else Union[tuple(options)]  # noqa: UP007
        else:
            return tp


def _fields(tp: Any) -> dict[str, Any]:
    """The declared fields of a model or pydantic dataclass (else empty)."""
    fields = getattr(tp, "__pydantic_fields__", None) if isinstance(tp, type) else None
    return dict(fields) if fields else {}


def keys(tp: Any) -> tuple[str, ...]:
    """The keys of a declared mapping as the file writes them (aliases where given)."""
    return tuple(f.alias or name for name, f in _fields(tp).items())


def _tagged(tp: Any) -> dict[str, Any]:
    """The members of a union tagged by their ``kind``, by tag (else empty)."""
    if get_origin(tp) not in (Union, types.UnionType):
        return {}
    kinds = {a: _fields(a).get("kind") for a in get_args(tp)}
    return {t: a for a, k in kinds.items() if k is not None for t in get_args(k.annotation)}


def _walk(schema: Any, loc: Sequence[str | int]) -> tuple[tuple[str | int, ...], Any]:
    """``loc`` without the tags pydantic adds inside a tagged union, and the type it reaches
    (None when it leaves the declaration)."""
    tp: Any = schema
    clean: list[str | int] = []
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        clean.append(part)
        fields = _fields(tp)
        if fields:
            by_key = {f.alias or name: f for name, f in fields.items()}
            field = by_key.get(part) if isinstance(part, str) else None
            tp = field.annotation if field is not None else None
        else:
            args = get_args(tp)
            tp = args[-1] if args else None  # dict[str, X], list[X], tuple[X, ...]
        tp = _strip(tp)
        members = _tagged(tp)
        if members and parts and str(parts[0]) in members:
            tp = members[str(parts.pop(0))]
    return tuple(clean), tp


def _translate(err: Any, schema: Any) -> list[Problem]:
    """One pydantic error as our (path, message) problems."""
    loc, kind, value = tuple(err["loc"]), err["type"], err.get("input")
    ctx = err.get("ctx") or {}
    if loc and loc[-1] == "[key]":  # a mapping key that is not allowed
        where = _path(_walk(schema, loc[:-2])[0])
        key = key_text(value)
        if kind == _PROBLEMS:
            return [(_join(where, key), _unknown_key(key, ctx.get("allowed") or ()))]
        return [(_join(where, key), _NOT_A_KEY)]
    if kind == "invalid_key":
        return [(_join(_path(_walk(schema, loc[:-1])[0]), key_text(value)), _NOT_A_KEY)]
    clean, tp = _walk(schema, loc)
    where = _path(clean)
    if kind == _PROBLEMS:
        return [(_join(where, key), message) for key, message in ctx["problems"]]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = Choice(tuple(_tagged(tp)))
        if kind == "union_tag_not_found":
            return [(_join(where, "kind"), f"required (one of {', '.join(tags.options)})")]
        got = value.get("kind") if isinstance(value, dict) else value
        return [(_join(where, "kind"), tags.message(got))]
    allowed = lambda: list(keys(_walk(schema, loc[:-1])[1]))  # noqa: E731
    messages: dict[str, Callable[[], str]] = {
        "missing": lambda: "required",
        "missing_keyword_only_argument": lambda: "required",
        "missing_argument": lambda: "required",
        "extra_forbidden": lambda: _unknown_key(str(loc[-1]), allowed()),
        "unexpected_keyword_argument": lambda: _unknown_key(str(loc[-1]), allowed()),
        "dict_type": lambda: f"expected a mapping, got {show(value)}",
        "model_type": lambda: f"expected a mapping, got {show(value)}",
        "model_attributes_type": lambda: f"expected a mapping, got {show(value)}",
        "dataclass_type": lambda: f"expected a mapping, got {show(value)}",
        "list_type": lambda: f"expected a list, got {show(value)}",
        "tuple_type": lambda: f"expected a list, got {show(value)}",
        "string_type": lambda: f"expected a string, got {show(value)}",
        "bool_type": lambda: f"expected true or false, got {show(value)}",
        "literal_error": lambda: f"expected {ctx.get('expected')}, got {show(value)}",
    }
    message = messages.get(kind, lambda: f"not a valid value here, got {show(value)}")()
    return [(where, message)]


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def adapter(schema: Any) -> TypeAdapter[Any]:
    """The (cached) validator and schema builder of a declared type."""
    if schema not in _ADAPTERS:
        _ADAPTERS[schema] = TypeAdapter(schema)
    return _ADAPTERS[schema]


def validated(
    schema: type[T],
    data: Any,
    error: type[CostsimError],
    prefix: str | None,
    context: dict[str, Any] | None = None,
) -> T:
    """``data`` checked against ``schema`` (a model or a pydantic dataclass), or ``error`` with
    every problem on one line: ``prefix: key.path: message; key.path: message``. Unknown keys
    come first; what is wrong inside an unknown key is not reported. Keys are read as the file
    writes them (aliases), never by the attribute names of the code."""
    try:
        result: T = adapter(schema).validate_python(
            data, context={**(context or {}), _DOCUMENT: True}, by_alias=True, by_name=False
        )
        return result
    except ValidationError as exc:
        problems = [p for e in exc.errors(include_url=False) for p in _translate(e, schema)]

        def is_key(message: str) -> bool:
            return message.startswith((_UNKNOWN, _NOT_A_KEY))

        unknown = {where for where, message in problems if is_key(message)}
        problems = [
            (where, message)
            for where, message in problems
            if is_key(message) or not any(_within(where, u) for u in unknown)
        ]
        problems.sort(key=lambda p: not is_key(p[1]))  # stable: unknown keys first
        text = "; ".join(f"{where}: {message}" if where else message for where, message in problems)
        text = f"{prefix}: {text}" if prefix is not None else text
        raise error(" ".join(text.splitlines())) from None


# ---------------------------------------------------------------------------------------------
# The JSON Schema
# ---------------------------------------------------------------------------------------------


def clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """pydantic's JSON Schema as ours: no generated titles, descriptions on one line with our
    bounds in words at the end (``Allowed: in [0, 2] (meaning).``), a described mapping's
    description next to every reference to it, no defaults (the descriptions say them)."""
    defs = schema.get("$defs", {})

    def clean(node: Any, names: bool = False) -> Any:
        """``node`` cleaned; with ``names``, a mapping of property names to schemas."""
        if isinstance(node, list):
            return [clean(v) for v in node]
        if not isinstance(node, dict):
            return node
        if names:
            return {k: clean(v) for k, v in node.items()}
        out = {
            k: clean(v, names=k in ("properties", "$defs"))
            for k, v in node.items()
            if k not in ("title", "default")  # the descriptions say what an omitted key means
        }
        allowed = out.pop(_ALLOWED, None)
        text = " ".join(out.get("description", "").split())
        if allowed:
            text = f"{text} Allowed: {allowed}.".strip()
        ref = out.get("$ref", "")
        if not text and ref.startswith("#/$defs/"):
            described = defs.get(ref.removeprefix("#/$defs/"), {}).get("description", "")
            text = " ".join(described.split())
        if text:
            out["description"] = text
        return out

    result: dict[str, Any] = clean(schema)
    return result


def read_json(path: str | Path, what: str, error: type[CostsimError]) -> Any:
    """A JSON document, or ``error`` with one line: not found, or not readable JSON."""
    p = Path(path)
    if p.is_dir():
        raise error(f"{path}: is a directory, expected a {what} (JSON)")
    if not p.is_file():
        raise error(f"{what} not found: {path}")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: bad UTF-8, JSON, or a huge integer
        raise error(f"{path}: cannot read the {what} as JSON ({exc})") from None
