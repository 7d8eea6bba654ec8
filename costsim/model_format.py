"""The model file's format, declared once with pydantic v2, and the machinery every declared
file format shares: number types that read what our writers write, and the translation of
pydantic's errors into costsim's one-line messages (``key.path: message; ...``).

The writer (`modelfile.model_to_dict`) controls the model file, so unknown keys are refused at
every structural level; only ``summary`` (extra statistics) and ``diagnostics`` (free-form) are
open. Checks that involve several fields (a cap bounding the body, a correlation matrix that is
positive semi-definite, shares summing to 1) run once the fields they read are valid.
"""

from __future__ import annotations

import difflib
import math
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Strict,
    ValidationError,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from .drift import KINDS as DRIFT_KINDS
from .errors import CostsimError
from .fit import QUANTITIES

KIND = "costsim.model"
SCHEMA_VERSION = 2  # 2: drift as a state-space model

# Tail shape xi of a point estimate. The fitter searches [-0.5, 3]; -1 is the uniform
# distribution, below which the GPD density rises towards its end point and the likelihood has
# no maximum; above 5 the tail is so heavy that its cap alone decides every figure (the 0.1%
# exceedance quantile is sigma * 1000**5 / 5): almost surely a typo (xi = 50 for 0.50).
# Parameter draws are only required to be finite: a borrowed shape's draws are normal draws
# around a pooled value and may legitimately fall outside any fixed range.
XI_RANGE = (-1.0, 5.0)
SUM_TOLERANCE = 1e-6  # relative: the writer rounds every share to 10 significant digits
SYMMETRY_TOLERANCE = 1e-9  # correlations are written to 10 significant digits
EIGEN_TOLERANCE = 1e-8
TAIL_SOURCES = ("fitted", "borrowed", "none")
SUMMARY_KEYS = ("total", "mean", "p50", "p95", "p99", "max")
INFINITIES = {"inf": math.inf, "-inf": -math.inf}  # how the writers store infinite numbers

M = TypeVar("M", bound=BaseModel)
Problem = tuple[str, str]  # (key below the failing location, message)
_PROBLEMS = "costsim_problems"
_UNKNOWN = "unknown key"


# ---------------------------------------------------------------------------------------------
# Shared by every declared format: values shown as written, problems raised together
# ---------------------------------------------------------------------------------------------


def show(value: Any) -> str:
    """A value as the file has it, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true (a boolean)" if value else "false (a boolean)"
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= 24 else f"{text[:20]}... ({len(text)} digits)"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


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


def _unknown_key(key: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"{_UNKNOWN}; did you mean '{close[0]}'?"
    return f"{_UNKNOWN}; allowed: {', '.join(allowed)}" if allowed else _UNKNOWN


def _bounds(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return ""


def _as_number(value: Any) -> float | None:
    """A JSON number or one of the writer's infinity strings; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            x = float(value)
        except OverflowError:  # an integer too long for a float
            x = math.inf if value > 0 else -math.inf
        return None if math.isnan(x) else x
    if isinstance(value, str):
        return INFINITIES.get(value)
    return None


class _Declared:
    """Metadata that validates a value itself (one plain validator) and describes its schema."""

    def __call__(self, value: Any) -> Any:
        raise NotImplementedError

    def json_schema(self) -> JsonSchemaValue:
        raise NotImplementedError

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(self)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return self.json_schema()


@dataclass(frozen=True)
class Num(_Declared):
    """A number within bounds (finite unless ``finite=False``), or an integer; null if allowed.

    Booleans and text are refused; the strings "inf" and "-inf" are read as infinities (the
    writers store them so), then refused where a finite number is needed."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    finite: bool = True
    integer: bool = False
    null: bool = False

    def describe(self, plural: bool = False) -> str:
        noun = (
            ("integers" if plural else "an integer")
            if self.integer
            else ("numbers" if plural else "a number")
        )
        text = f"{noun} {_bounds(self.lo, self.hi, self.lo_open, self.hi_open)}".rstrip()
        return text if self.finite else f'{text} (or "inf")'

    def parse(self, value: Any) -> float | int | None:
        """The value, or None when it is not acceptable (null included)."""
        x = _as_number(value)
        if x is None or (self.finite and not math.isfinite(x)):
            return None
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return None
        if self.hi is not None and (x >= self.hi if self.hi_open else x > self.hi):
            return None
        if self.integer:
            if not x.is_integer():
                return None
            return value if isinstance(value, int) else int(x)
        return x

    def __call__(self, value: Any) -> float | int | None:
        if value is None and self.null:
            return None
        x = self.parse(value)
        if x is None:
            what = self.describe() + (" or null" if self.null else "")
            raise problems_error([("", f"expected {what}, got {show(value)}")])
        return x

    def json_schema(self) -> JsonSchemaValue:
        out: dict[str, Any] = {"type": "integer" if self.integer else "number"}
        for key, bound, is_open in (
            ("minimum", self.lo, self.lo_open),
            ("maximum", self.hi, self.hi_open),
        ):
            if bound is not None:
                out[("exclusiveM" + key[1:]) if is_open else key] = bound
        options = [out]
        if not self.finite:
            options.append({"enum": [k for k, v in INFINITIES.items() if self.parse(k) == v]})
        if self.null:
            options.append({"type": "null"})
        return out if len(options) == 1 else {"anyOf": options}


def integer(lo: int, hi: int | None = None) -> Num:
    return Num(lo, hi, integer=True)


@dataclass(frozen=True)
class Nums(_Declared):
    """A list of numbers (each an ``item``), of a given or least length, optionally ordered."""

    item: Num
    length: int | None = None
    min_length: int = 0
    non_decreasing: bool = False
    null: bool = False

    def describe(self) -> str:
        count = (
            f"{self.length} "
            if self.length is not None
            else f"at least {self.min_length} "
            if self.min_length > 1
            else ""
        )
        return f"a list of {count}{self.item.describe(plural=True)}"

    def __call__(self, value: Any) -> tuple[float, ...] | None:
        if value is None and self.null:
            return None
        short = isinstance(value, list) and (
            len(value) < self.min_length or (self.length is not None and len(value) != self.length)
        )
        if not isinstance(value, list) or short:
            got = f"{len(value)} values" if isinstance(value, list) else show(value)
            what = self.describe() + (" or null" if self.null else "")
            raise problems_error([("", f"expected {what}, got {got}")])
        parsed = [self.item.parse(v) for v in value]
        bad = [i for i, x in enumerate(parsed) if x is None]
        if bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            got = show(value[bad[0]])
            raise problems_error(
                [(f"[{bad[0]}]", f"expected {self.item.describe()}, got {got}{more}")]
            )
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
class Choice(_Declared):
    """One of a few names (as a value, or as the keys of a mapping)."""

    options: tuple[str, ...]

    def __call__(self, value: Any) -> str:
        if isinstance(value, str) and value in self.options:
            return value
        close = (
            difflib.get_close_matches(value, self.options, n=1) if isinstance(value, str) else []
        )
        hint = f"; did you mean '{close[0]}'?" if close else ""
        message = f"expected one of {', '.join(self.options)}, got {show(value)}{hint}"
        raise problems_error([("", message)], allowed=self.options)

    def json_schema(self) -> JsonSchemaValue:
        return {"enum": list(self.options)}


Flag = Annotated[bool, Strict()]


def sums_to_one(values: Iterable[float]) -> str | None:
    """None when ``values`` sum to 1 (within the rounding of the writer), else why not."""
    total = math.fsum(values)
    if math.isclose(total, 1.0, rel_tol=SUM_TOLERANCE):
        return None
    return f"must sum to 1, got {total:.10g}"


class Closed(BaseModel):
    """A mapping of the file whose keys are all declared: an unknown key is a mistake."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Open(BaseModel):
    """A mapping that may carry keys a newer writer added; readers ignore them."""

    model_config = ConfigDict(extra="allow", frozen=True)


# ---------------------------------------------------------------------------------------------
# Shared: pydantic's errors in our words
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
        elif get_origin(tp) in (Union, types.UnionType):
            tp = next(a for a in get_args(tp) if a is not type(None))
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _allowed_keys(schema: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The keys declared at ``loc[:-1]`` (walking models, mappings and lists from ``schema``)."""
    tp: Any = schema
    for part in loc[:-1]:
        tp = _strip(tp)
        if _is_model(tp):
            field = tp.model_fields.get(part)
            if field is None:
                return []
            tp = field.annotation
        else:  # dict[str, X] or list[X]: the value type
            args = get_args(tp)
            if not args:
                return []
            tp = args[-1]
    tp = _strip(tp)
    return list(tp.model_fields) if _is_model(tp) else []


def _translate(err: Any, schema: type[BaseModel]) -> list[Problem]:
    """One pydantic error as our (path, message) problems."""
    loc, kind, value = tuple(err["loc"]), err["type"], err.get("input")
    ctx = err.get("ctx") or {}
    if loc and loc[-1] == "[key]":  # a mapping key that is not allowed
        allowed = ctx.get("allowed") or ()
        return [(_path(loc[:-1]), _unknown_key(str(loc[-2]), allowed))]
    where = _path(loc)
    if kind == _PROBLEMS:
        return [(_join(where, key), message) for key, message in ctx["problems"]]
    messages: dict[str, Callable[[], str]] = {
        "missing": lambda: "required",
        "extra_forbidden": lambda: _unknown_key(str(loc[-1]), _allowed_keys(schema, loc)),
        "dict_type": lambda: f"expected a mapping, got {show(value)}",
        "model_type": lambda: f"expected a mapping, got {show(value)}",
        "list_type": lambda: f"expected a list, got {show(value)}",
        "string_type": lambda: f"expected a string, got {show(value)}",
        "bool_type": lambda: f"expected true or false, got {show(value)}",
        "literal_error": lambda: f"expected {ctx.get('expected')}, got {show(value)}",
    }
    message = messages.get(kind, lambda: f"not a valid value here, got {show(value)}")()
    return [(where, message)]


def validated(schema: type[M], data: Any, error: type[CostsimError], prefix: str) -> M:
    """``data`` checked against ``schema``, or ``error`` with every problem on one line:
    ``prefix: key.path: message; key.path: message``."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        problems = [p for e in exc.errors(include_url=False) for p in _translate(e, schema)]
        unknown = {where for where, message in problems if message.startswith(_UNKNOWN)}
        problems = [  # what is wrong inside an unknown key is noise
            (where, message)
            for where, message in problems
            if message.startswith(_UNKNOWN) or not any(_within(where, u) for u in unknown)
        ]
        text = "; ".join(f"{where}: {message}" if where else message for where, message in problems)
        raise error(" ".join(f"{prefix}: {text}".splitlines())) from None


# ---------------------------------------------------------------------------------------------
# The model file
# ---------------------------------------------------------------------------------------------

Quantity = Annotated[str, Choice(QUANTITIES)]
Count = Annotated[int, integer(0)]
Positive = Annotated[float, Num(0.0, lo_open=True)]
NonNegative = Annotated[float, Num(0.0)]
OptionalProbability = Annotated[float | None, Num(0.0, 1.0, null=True)]
OptionalNonNegative = Annotated[float | None, Num(0.0, null=True)]
OptionalNumber = Annotated[float | None, Num(null=True)]
Profile24 = Annotated[tuple[float, ...] | None, Nums(Num(0.0), length=24, null=True)]
Profile7 = Annotated[tuple[float, ...] | None, Nums(Num(0.0), length=7, null=True)]


class SourceDoc(Closed):
    path: str
    rows_read: Count
    rows_dropped: Count
    columns: dict[str, str]


class OptionsDoc(Closed):
    seed: Count
    caps: dict[Quantity, Positive]
    # a default cap is the largest value seen times this factor: below 1 it would not bound the data
    default_cap_factor: Annotated[float | None, Num(1.0, null=True)]
    min_class_rows: Annotated[int, integer(1)]
    drift_window_s: Positive


class TrafficDoc(Closed):
    requests: Annotated[int, integer(1)]  # the pilot mean cost is the total over it
    start: OptionalNumber
    end: OptionalNumber
    duration_s: OptionalNonNegative
    rate_per_hour: OptionalNonNegative
    hourly_profile: Profile24
    weekday_profile: Profile7

    @model_validator(mode="after")
    def _ordered(self) -> TrafficDoc:
        if self.start is not None and self.end is not None and self.end < self.start:
            raise_problems(
                [("end", f"must not be before start ({show(self.start)}), got {show(self.end)}")]
            )
        return self


class DistributionDoc(Closed):
    # The body's quantile function on an equally spaced grid; ties are atoms (e.g. zero cost).
    body_quantiles: Annotated[tuple[float, ...], Nums(Num(0.0), min_length=2, non_decreasing=True)]
    tail_prob: Annotated[float, Num(0.0, 1.0, hi_open=True)]
    xi: Annotated[float, Num(*XI_RANGE)]
    sigma: Positive
    cap: Annotated[float | None, Num(0.0, lo_open=True, null=True)] = None
    # probabilities of the body quantiles when not equally spaced (the exact edges of atoms)
    body_probs: Annotated[
        tuple[float, ...] | None, Nums(Num(0.0, 1.0), min_length=2, non_decreasing=True, null=True)
    ] = None

    @model_validator(mode="after")
    def _cap_bounds_body(self) -> DistributionDoc:
        if self.body_probs is not None:
            p = self.body_probs
            why = None
            if len(p) != len(self.body_quantiles):
                why = f"expected one per body quantile ({len(self.body_quantiles)}), got {len(p)}"
            elif p[0] != 0.0 or p[-1] != 1.0:
                why = "must run from 0 to 1"
            raise_problems([("body_probs", why)] if why else [])
        top = self.body_quantiles[-1]
        if self.cap is not None and self.cap < top:
            raise_problems(
                [
                    (
                        "cap",
                        f"must be >= the largest body quantile ({show(top)}), got {show(self.cap)}",
                    )
                ]
            )
        return self


class DrawsDoc(Closed):
    xi: Annotated[tuple[float, ...], Nums(Num(), min_length=1)]
    sigma: Annotated[tuple[float, ...], Nums(Num(0.0, lo_open=True), min_length=1)]

    @model_validator(mode="after")
    def _paired(self) -> DrawsDoc:
        if len(self.xi) != len(self.sigma):
            raise_problems(
                [("sigma", f"expected as many draws as xi ({len(self.xi)}), got {len(self.sigma)}")]
            )
        return self


class TailDoc(Closed):
    source: Annotated[str, Choice(TAIL_SOURCES)]
    verdict: str | None = None  # recomputed on load
    xi: Annotated[float | None, Num(*XI_RANGE, null=True)] = None
    xi_ci: Annotated[
        tuple[float, ...] | None, Nums(Num(), length=2, non_decreasing=True, null=True)
    ] = None
    ci_level: Annotated[float | None, Num(0.0, 1.0, lo_open=True, hi_open=True, null=True)] = None
    cap_source: str | None = None
    draws: DrawsDoc | None = None


def _summary_complete(summary: dict[str, float]) -> dict[str, float]:
    raise_problems([(key, "required") for key in SUMMARY_KEYS if key not in summary])
    return summary


class QuantityDoc(Closed):
    n: Annotated[int, integer(1)]
    distribution: DistributionDoc
    tail: TailDoc
    # statistics of the pilot's values (all >= 0); a newer writer may add some
    summary: Annotated[
        dict[str, Annotated[float, Num(0.0, finite=False)]], AfterValidator(_summary_complete)
    ]
    diagnostics: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> QuantityDoc:
        dist, tail = self.distribution, self.tail
        problems: list[Problem] = []
        if tail.xi is not None and tail.xi != dist.xi:
            problems.append(
                ("tail.xi", f"must equal distribution.xi ({dist.xi:g}), got {tail.xi:g}")
            )
        if dist.tail_prob > 0 and dist.cap is None:
            draws = tail.draws.xi if tail.draws is not None else ()
            heavy = next((f"xi = {x:g}" for x in (dist.xi, *draws) if x >= 1.0), None)
            if heavy is not None:
                problems.append((
                    "distribution.cap",
                    f"required: a tail shape {heavy} >= 1 has an infinite mean; set a cap "
                    "(refit with `costsim fit --cap QUANTITY=VALUE`)",
                ))  # fmt: skip
        raise_problems(problems)
        return self


class DependenceDoc(Closed):
    method: Annotated[str, Choice(("gaussian copula on ranks",))]
    variables: list[Quantity]
    correlation: list[Annotated[tuple[float, ...], Nums(Num(-1.0, 1.0))]]

    @model_validator(mode="after")
    def _correlation_matrix(self) -> DependenceDoc:
        raise_problems(correlation_problems(self.variables, self.correlation))
        return self


def correlation_problems(variables: list[str], rows: list[tuple[float, ...]]) -> list[Problem]:
    """A correlation matrix over ``variables``: square, symmetric, unit diagonal, PSD."""
    k = len(variables)
    if len(set(variables)) != k:
        return [("variables", "must not repeat a quantity")]
    if len(rows) != k or any(len(row) != k for row in rows):
        shape = f"{len(rows)} rows of {', '.join(sorted({str(len(r)) for r in rows})) or 0}"
        return [("correlation", f"expected a {k} x {k} matrix (one row per variable), got {shape}")]
    c = np.asarray(rows, dtype=float).reshape(k, k)
    if not np.allclose(np.diag(c), 1.0, rtol=0.0, atol=SYMMETRY_TOLERANCE):
        return [("correlation", "must have 1 on its diagonal")]
    if not np.allclose(c, c.T, rtol=0.0, atol=SYMMETRY_TOLERANCE):
        return [("correlation", "must be symmetric")]
    low = float(np.linalg.eigvalsh(c).min()) if k else 0.0
    if low < -EIGEN_TOLERANCE:
        return [("correlation", f"must be positive semi-definite (smallest eigenvalue {low:.3g})")]
    return []


class RatesDoc(Closed):
    error_rate: OptionalProbability
    retry_pmf: Annotated[tuple[float, ...] | None, Nums(Num(0.0, 1.0), min_length=1, null=True)]
    retry_mean: OptionalNonNegative
    retry_cost_share: OptionalProbability
    cold_start_rate: OptionalProbability
    cold_start_cost_ratio: OptionalNonNegative
    cold_start_latency_ms: OptionalNumber  # a difference of medians, cold minus warm

    @model_validator(mode="after")
    def _pmf(self) -> RatesDoc:
        why = None if self.retry_pmf is None else sums_to_one(self.retry_pmf)
        raise_problems([("retry_pmf", why)] if why else [])
        return self


class DriftDoc(Closed):
    """`costsim.drift.DriftFit`: the unit cost's drift as a state-space model."""

    kind: Annotated[str, Choice(DRIFT_KINDS)]
    estimated: Flag
    window_s: Positive
    windows: Count
    observed: Count
    mu: Annotated[float, Num()]
    mu_var: NonNegative
    phi: Annotated[float, Num(0.0, 1.0)]
    state_sd: NonNegative
    level_end: Annotated[float, Num()]
    level_end_var: NonNegative
    level_mu_cov: Annotated[float, Num()]
    reference: Annotated[float, Num()]
    dispersion: NonNegative
    within_var: NonNegative
    loglik: dict[Annotated[str, Choice(DRIFT_KINDS)], Annotated[float, Num(finite=False)]] = Field(
        default_factory=dict
    )
    aic: dict[Annotated[str, Choice(DRIFT_KINDS)], Annotated[float, Num(finite=False)]] = Field(
        default_factory=dict
    )
    common: Annotated[float, Num(0.0, 1.0)] = 0.0
    note: str | None = None


class ClassDoc(Closed):
    requests: Annotated[int, integer(1)]
    share: Annotated[float, Num(0.0, 1.0)]
    cost_total: OptionalNonNegative
    quantities: dict[Quantity, QuantityDoc]
    dependence: DependenceDoc
    rates: RatesDoc
    drift: DriftDoc
    hourly_profile: Profile24 = None

    @model_validator(mode="after")
    def _copula_covers_quantities(self) -> ClassDoc:
        have, named = list(self.quantities), self.dependence.variables
        if set(named) != set(have):
            raise_problems([(
                "dependence.variables",
                f"expected the class's quantities ({', '.join(have) or 'none'}), got "
                f"{', '.join(named) or 'none'}",
            )])  # fmt: skip
        return self


class ModelDoc(Closed):
    """The model file (``costsim fit`` output), as `modelfile.model_to_dict` writes it."""

    kind: Annotated[str, Choice((KIND,))]
    schema_version: Annotated[int, integer(SCHEMA_VERSION, SCHEMA_VERSION)]
    costsim_version: str
    source: SourceDoc
    options: OptionsDoc
    traffic: TrafficDoc
    concentration: dict[str, Annotated[float, Num(0.0, 1.0)]] | None = None
    classes: dict[str, ClassDoc]
    notes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shares(self) -> ModelDoc:
        if not self.classes:
            raise_problems([("classes", "expected at least one class")])
        why = sums_to_one(c.share for c in self.classes.values())
        raise_problems([("classes", f"shares {why}")] if why else [])
        return self
