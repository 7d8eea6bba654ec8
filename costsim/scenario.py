"""Scenario files (DESIGN section 3): YAML describing production, validated into a `Scenario`.

Every bad field is reported by its key path and the allowed values, all of them at once, in one
single-line `ScenarioError` whose problems are joined with ``"; "``, e.g.::

    scenario.yaml: volume.requests: expected a number > 0, got -5; traffic.spikes.rate:
    expected a number >= 0, got 'often'

Paths inside a scenario are relative to the scenario file. Durations are strings such as
``30d``, ``12h``, ``15m``, ``90s`` or ``2w`` (or combinations such as ``1h30m``, or a number of
seconds).

`parse_scenario` checks the file on its own; `validate_against_model` then checks the class
names it uses against a fitted model. `json_schema` describes the same format for editors and
`init_scenario_text` writes a commented starting scenario for a fitted model.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from .errors import ScenarioError

if TYPE_CHECKING:
    from .fit import FittedModel

T = TypeVar("T")

DEFAULT_RESOLUTION_S = 3600.0
MIN_RESOLUTION_S = 60.0
MAX_BUCKETS = 100_000
MAX_REQUESTS = 1e13  # the engine's finest stratum is 1e-13: beyond this, exact draws pile up
BUCKET_TOLERANCE = 1e-9  # relative: horizon / resolution must be this close to a whole number
MIX_TOLERANCE = 1e-6
DEFAULT_TRIALS = 10_000
MIN_TRIALS = 100
MAX_TRIALS = 10_000_000
BUDGET_STATS = ("p5", "p50", "p90", "p95", "p99", "mean")
TRAFFIC_SHAPES = ("pilot", "flat")
HOURS = 24
WEEKDAYS = 7


@dataclass(frozen=True)
class Volume:
    """Requests over the horizon: exactly one of ``requests`` (total over the horizon),
    ``per_hour`` or ``per_day`` is given in the file; ``requests`` is always filled in
    (a rate times the horizon's length, before growth; ``raw["volume"]`` tells which form was
    given: a total is shaped by growth, a rate is the rate at the start, growth on top).
    ``growth`` is the relative growth per 30 days, compounding through the horizon
    (0.1 = +10% a month). ``uncertainty`` is the standard deviation of the log of the volume,
    drawn per trial (0 = the volume is known)."""

    requests: float
    growth: float = 0.0
    uncertainty: float = 0.0


@dataclass(frozen=True)
class NewClass:
    """A production class the pilot did not have, borrowed from a pilot class ``like``,
    whose per-request cost is ``cost_scale`` times that class's. A new class must have a
    share in ``mix``; in a relative mix its value multiplies the pilot share of ``like``."""

    like: str
    cost_scale: float = 1.0


@dataclass(frozen=True)
class Mix:
    """Production shares per class. ``shares`` is None for the pilot mix. With ``relative``,
    values multiply the pilot shares and are renormalised; otherwise they are absolute and
    must sum to 1 (within 1e-6) over the listed classes, unlisted classes getting 0.
    ``concentration`` is the Dirichlet concentration of the per-trial mix (None = fixed)."""

    shares: dict[str, float] | None = None
    relative: bool = False
    concentration: float | None = None
    new_classes: dict[str, NewClass] = field(default_factory=dict)


@dataclass(frozen=True)
class Spikes:
    """Random traffic spikes: ``rate`` expected spikes per day; each multiplies the intensity
    of the classes it hits by a lognormal factor with ``magnitude_median`` (> 1) and
    ``magnitude_sd`` (sd of its log), for ``duration_s`` seconds. ``classes`` None = all."""

    rate_per_day: float = 0.0
    magnitude_median: float = 2.0
    magnitude_sd: float = 0.5
    duration_s: float = 3600.0
    classes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Event:
    """A scheduled event (a launch, a campaign): multiplies the intensity of ``classes``
    (None = all) by ``multiplier`` from ``start_s`` (seconds after the horizon's start) for
    ``duration_s`` seconds."""

    name: str
    start_s: float
    duration_s: float
    multiplier: float
    classes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Traffic:
    """Traffic shape. ``shape`` is "pilot" (the pilot's hour-of-day / day-of-week shape, flat
    where the pilot had none) or "flat"; ``hourly`` (24 values) and ``weekly`` (7 values,
    Monday first) override it; values are relative (renormalised to mean 1)."""

    shape: str = "pilot"
    hourly: tuple[float, ...] | None = None
    weekly: tuple[float, ...] | None = None
    spikes: Spikes = field(default_factory=Spikes)
    events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class Price:
    """Token price sheet in USD: per million input, output and cached input tokens, plus a fee
    per request. A class with a price is re-priced from its tokens; without, its pilot cost is
    used. ``None`` fields fall back to ``pricing.default``."""

    input_per_mtok: float | None = None
    output_per_mtok: float | None = None
    cached_per_mtok: float | None = None
    per_request: float | None = None


@dataclass(frozen=True)
class Pricing:
    default: Price | None = None
    classes: dict[str, Price] = field(default_factory=dict)


@dataclass(frozen=True)
class Reliability:
    """How production's reliability differs from the pilot's. Every ``None`` reproduces the
    pilot, so a scenario without ``reliability`` bills exactly what the pilot billed.

    ``error_rate``: per-attempt failure probability (None = the pilot's per class);
    ``load_exponent``: failures scale with (load / mean load) ** load_exponent (0 = flat);
    ``max_attempts``: attempts per request including the first (None = the pilot's behaviour);
    ``billed_failures``: whether failed attempts are billed (default True, as in the pilot);
    ``cold_start_rate``: share of requests served cold (None = the pilot's per class);
    ``cold_start_cost_ratio``: cost of a cold request / a warm one (None = the pilot's);
    ``spike_cold_share``: share of the extra requests of a sudden rise served cold (0 = none).
    """

    error_rate: float | None = None
    load_exponent: float = 0.0
    max_attempts: int | None = None
    billed_failures: bool = True
    cold_start_rate: float | None = None
    cold_start_cost_ratio: float | None = None
    spike_cold_share: float = 0.0


@dataclass(frozen=True)
class BudgetLimit:
    """A threshold on a reported statistic (``p5`` ... ``p99`` or ``mean``) in USD over the
    horizon, with an optional warn level below it."""

    stat: str
    fail: float
    warn: float | None = None


@dataclass(frozen=True)
class Budget:
    limits: tuple[BudgetLimit, ...] = ()
    max_exceed_prob: tuple[tuple[float, float], ...] = ()  # (amount USD, max probability)


@dataclass(frozen=True)
class Scenario:
    path: Path | None  # the scenario file (None when built in code)
    model_path: Path | None  # `model:`, resolved relative to the scenario file
    pilot_path: Path | None  # or `pilot:` (a log to fit on the fly); exactly one is given
    horizon_s: float
    resolution_s: float
    volume: Volume
    mix: Mix = field(default_factory=Mix)
    traffic: Traffic = field(default_factory=Traffic)
    pricing: Pricing | None = None
    reliability: Reliability = field(default_factory=Reliability)
    budget: Budget = field(default_factory=Budget)
    trials: int = 10_000
    seed: int = 0
    start: str | None = (
        None  # ISO date-time of the horizon's start (aligns shapes); None = Monday 00:00 UTC
    )
    raw: dict[str, Any] = field(default_factory=dict)  # the parsed YAML, for hashing and reports

    @property
    def buckets(self) -> int:
        return round(self.horizon_s / self.resolution_s)


# ---------------------------------------------------------------------------------------------
# The keys of the format
# ---------------------------------------------------------------------------------------------

TOP_KEYS = (
    "model",
    "pilot",
    "horizon",
    "resolution",
    "start",
    "volume",
    "mix",
    "mix_relative",
    "mix_concentration",
    "new_classes",
    "traffic",
    "pricing",
    "reliability",
    "budget",
    "trials",
    "seed",
)
VOLUME_KEYS = ("requests", "per_hour", "per_day", "growth", "uncertainty")
_VOLUME_AMOUNTS = {"requests": None, "per_hour": 3600.0, "per_day": 86400.0}  # seconds per unit
NEW_CLASS_KEYS = ("like", "cost_scale")
TRAFFIC_KEYS = ("shape", "hourly", "weekly", "spikes", "events")
SPIKES_KEYS = ("rate", "magnitude", "duration", "classes")
MAGNITUDE_KEYS = ("median", "sd")
EVENT_KEYS = ("name", "at", "duration", "multiplier", "classes")
PRICING_KEYS = ("default", "classes")
PRICE_KEYS = ("input_per_mtok", "output_per_mtok", "cached_per_mtok", "per_request")
RELIABILITY_KEYS = (
    "error_rate",
    "load_exponent",
    "max_attempts",
    "billed_failures",
    "cold_start_rate",
    "cold_start_cost_ratio",
    "spike_cold_share",
)
BUDGET_KEYS = (*BUDGET_STATS, "exceed")
BUDGET_LIMIT_KEYS = ("fail", "warn")
EXCEED_KEYS = ("amount", "max_prob")


# ---------------------------------------------------------------------------------------------
# Durations
# ---------------------------------------------------------------------------------------------

_UNIT_S = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), 604800.0),
}
_UNITS = "|".join(sorted(_UNIT_S, key=len, reverse=True))  # longest first: "min" before "m"
_DECIMAL = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_PART = re.compile(rf"({_DECIMAL})\s*({_UNITS})")
_DURATION_PARTS = re.compile(rf"\s*(?:{_DECIMAL}\s*(?:{_UNITS})\s*)+")
_SECONDS = re.compile(rf"\s*{_DECIMAL}(?:[eE][-+]?\d+)?\s*")
# Also valid in ECMA-262, for the JSON Schema.
DURATION_PATTERN = rf"^\s*(?:{_DECIMAL}(?:[eE][-+]?\d+)?|(?:{_DECIMAL}\s*(?:{_UNITS})\s*)+)\s*$"
_MONTHS = re.compile(r"\d\s*(?:M|mo|mon|mons|month|months)\s*$")
_DURATION_HINT = "such as 30d, 12h, 15m, 90s or 2w (or a number of seconds)"


def _duration_seconds(value: Any) -> float | None:
    """Seconds in a duration (a number or a string), or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        return None
    if _SECONDS.fullmatch(value):
        return float(value)
    if _DURATION_PARTS.fullmatch(value):
        return sum(float(n) * _UNIT_S[u] for n, u in _DURATION_PART.findall(value))
    return None


def _duration_problem(value: Any, bound: str) -> str:
    hint = ""
    if isinstance(value, str) and _MONTHS.search(value):
        hint = " (months differ in length: write days, e.g. 30d)"
    return f"expected a duration {bound} {_DURATION_HINT}, got {_show(value)}{hint}"


def parse_duration(text: str | float) -> float:
    """Seconds in a duration: ``30d``, ``12h``, ``15m``, ``90s``, ``2w`` (long unit names such
    as ``2 weeks`` too), a combination such as ``1h30m``, or a number of seconds. Raises
    `ValueError` (with a message naming the allowed forms) unless it is finite and > 0."""
    seconds = _duration_seconds(text)
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(_duration_problem(text, "> 0"))
    return seconds


def format_duration(seconds: float) -> str:
    """A short duration string that `parse_duration` reads back: ``30d``, ``1h``, ``90s``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and float(seconds) % size == 0:
            return f"{round(seconds / size)}{unit}"
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{Decimal(repr(float(seconds))):f}s"  # positional: no exponent


# ---------------------------------------------------------------------------------------------
# Problem collection and value checks
# ---------------------------------------------------------------------------------------------


class _Problems:
    """Every problem found, each as ``key.path: message``."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}" if where else message)

    def raise_if_any(self, path: Path | None) -> None:
        if self.items:
            raise _error(path, "; ".join(self.items))


def _error(path: Path | str | None, message: str) -> ScenarioError:
    text = f"{path}: {message}" if path is not None else message
    return ScenarioError(re.sub(r"[\r\n]+", " ", text))  # always one line


def _show(value: Any) -> str:
    """A value as the user wrote it, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true (a boolean)" if value else "false (a boolean)"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return f"a {type(value).__name__}"


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def _suggest(name: str, allowed: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    if not close:
        lowered = {a.lower(): a for a in allowed}
        close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
        close = [lowered[c] for c in close]
    return close[0] if close else None


def _unknown_key(key: str, allowed: Sequence[str]) -> str:
    guess = _suggest(key, allowed)
    if guess is not None:
        return f"unknown key; did you mean '{guess}'?"
    return f"unknown key; allowed: {', '.join(allowed)}"


# A YAML 1.2 float that YAML 1.1 (PyYAML) reads as a string, such as 1e6 (no dot).
_EXPONENT_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)[eE][-+]?\d+")


@dataclass(frozen=True)
class _Range:
    lo: float | None = None
    lo_open: bool = False
    hi: float | None = None
    hi_open: bool = False

    def __contains__(self, x: float) -> bool:
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return False
        return not (self.hi is not None and (x >= self.hi if self.hi_open else x > self.hi))

    def __str__(self) -> str:
        if self.hi is None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}" if self.lo is not None else ""
        if self.lo is None:
            return f"{'<' if self.hi_open else '<='} {self.hi:g}"
        left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
        return f"in {left}{self.lo:g}, {self.hi:g}{right}"


POSITIVE = _Range(0.0, lo_open=True)
NON_NEGATIVE = _Range(0.0)
PROBABILITY = _Range(0.0, hi=1.0)
GROWTH = _Range(-1.0, lo_open=True)

_Check = Callable[[Any, str, _Problems], T | None]


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
        return float(value)
    return None


def _number(bounds: _Range) -> _Check[float]:
    what = f"a number {bounds}".rstrip()

    def check(value: Any, where: str, problems: _Problems) -> float | None:
        x = _as_number(value)
        if x is None or not math.isfinite(x) or x not in bounds:
            problems.add(where, f"expected {what}, got {_show(value)}")
            return None
        return x

    return check


def _integer(lo: int, hi: int | None = None) -> _Check[int]:
    what = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"

    def check(value: Any, where: str, problems: _Problems) -> int | None:
        x = _as_number(value)
        if (
            x is None
            or not math.isfinite(x)
            or x != int(x)
            or x < lo
            or (hi is not None and x > hi)
        ):
            problems.add(where, f"expected {what}, got {_show(value)}")
            return None
        return int(value) if isinstance(value, int) else int(x)

    return check


def _boolean(value: Any, where: str, problems: _Problems) -> bool | None:
    if isinstance(value, bool):
        return value
    problems.add(where, f"expected true or false, got {_show(value)}")
    return None


def _text(value: Any, where: str, problems: _Problems) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    problems.add(where, f"expected a non-empty string, got {_show(value)}")
    return None


def _choice(options: Sequence[str]) -> _Check[str]:
    def check(value: Any, where: str, problems: _Problems) -> str | None:
        if isinstance(value, str) and value in options:
            return value
        message = f"expected one of {', '.join(options)}, got {_show(value)}"
        guess = _suggest(value, options) if isinstance(value, str) else None
        problems.add(where, message + (f"; did you mean '{guess}'?" if guess else ""))
        return None

    return check


def _duration(bounds: _Range = POSITIVE) -> _Check[float]:
    def check(value: Any, where: str, problems: _Problems) -> float | None:
        seconds = _duration_seconds(value)
        if seconds is None or not math.isfinite(seconds) or seconds not in bounds:
            problems.add(where, _duration_problem(value, str(bounds)))
            return None
        return seconds

    return check


def _profile(n: int, what: str) -> _Check[tuple[float, ...]]:
    def check(value: Any, where: str, problems: _Problems) -> tuple[float, ...] | None:
        if not isinstance(value, list) or len(value) != n:
            got = f"{len(value)} values" if isinstance(value, list) else _show(value)
            problems.add(where, f"expected a list of {n} numbers >= 0 ({what}), got {got}")
            return None
        values = [_number(NON_NEGATIVE)(v, f"{where}[{i}]", problems) for i, v in enumerate(value)]
        if any(v is None for v in values):
            return None
        out = tuple(v for v in values if v is not None)
        if not any(v > 0 for v in out):
            problems.add(where, "expected at least one value > 0, got all zeros")
            return None
        return out

    return check


def _class_list(value: Any, where: str, problems: _Problems) -> tuple[str, ...] | None:
    """``all`` (None) or a list of distinct class names."""
    if value == "all":
        return None
    if isinstance(value, str):
        value = [value]  # a single class name
    if not isinstance(value, list) or not value:
        problems.add(where, f"expected all or a list of class names, got {_show(value)}")
        return None
    names: list[str] = []
    for i, v in enumerate(value):
        if not isinstance(v, str) or not v.strip():
            problems.add(f"{where}[{i}]", f"expected a class name, got {_show(v)}")
        elif v in names:
            problems.add(f"{where}[{i}]", f"class '{v}' is listed twice")
        else:
            names.append(v)
    return tuple(names)


def _mapping(
    value: Any, where: str, problems: _Problems, allowed: Sequence[str] | None = None
) -> dict[str, Any] | None:
    """A mapping with string keys; with ``allowed``, unknown keys are reported and dropped and
    null values are treated as absent."""
    if not isinstance(value, dict):
        problems.add(where, f"expected a mapping, got {_show(value)}")
        return None
    out: dict[str, Any] = {}
    for key, v in value.items():
        if not isinstance(key, str):
            shown = str(key).lower() if isinstance(key, bool) else str(key)
            problems.add(_join(where, shown), "keys must be strings (quote it in the YAML file)")
        elif allowed is not None and key not in allowed:
            problems.add(_join(where, key), _unknown_key(key, allowed))
        elif allowed is None or v is not None:
            out[key] = v
    return out


def _get(
    m: dict[str, Any], key: str, where: str, problems: _Problems, check: _Check[T], default: T
) -> T:
    """``m[key]`` checked, or ``default`` when absent, null or invalid (the problem is kept)."""
    if key not in m:
        return default
    value = check(m[key], _join(where, key), problems)
    return default if value is None else value


def _required(
    m: dict[str, Any], key: str, where: str, problems: _Problems, check: _Check[T], what: str
) -> T | None:
    if key not in m:
        problems.add(_join(where, key), f"required ({what})")
        return None
    return check(m[key], _join(where, key), problems)


def _section(
    m: dict[str, Any], key: str, where: str, problems: _Problems, allowed: Sequence[str]
) -> dict[str, Any] | None:
    if key not in m:
        return None
    return _mapping(m[key], _join(where, key), problems, allowed)


# ---------------------------------------------------------------------------------------------
# Reading and parsing
# ---------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing duplicate keys (which YAML would silently overwrite)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, Any]] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:  # with the tag: 1 and true are different keys though 1 == True
                duplicate = (key_node.tag, key) in seen
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add((key_node.tag, key))
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(path: str | Path, exc: yaml.YAMLError) -> ScenarioError:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        message = f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
        ctx, ctx_mark = exc.context, exc.context_mark
        if ctx and ctx_mark is not None and ctx_mark.line != mark.line:
            message += f" ({ctx} at line {ctx_mark.line + 1}, column {ctx_mark.column + 1})"
        return _error(path, message)
    return _error(path, f"invalid YAML: {exc}")


def read_yaml(path: str | Path, what: str = "scenario") -> Any:
    """Read a YAML file safely (duplicate keys refused); errors name the file, line and column."""
    p = Path(path)
    if p.is_dir():
        raise _error(path, f"is a directory, expected a {what} file (YAML)")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{what} file not found: {path}") from None
    except UnicodeDecodeError:
        raise _error(path, f"cannot read the {what} file: not UTF-8 text") from None
    except OSError as exc:
        raise _error(path, f"cannot read the {what} file ({exc.strerror or exc})") from None
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        raise _yaml_problem(path, exc) from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file. Raises `ScenarioError` listing every problem."""
    p = Path(path)
    return parse_scenario(read_yaml(p), p, p.parent)


def _plain(obj: Any) -> Any:
    """The YAML document with dates as ISO strings, so that it serialises as JSON."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, (datetime, date)):
        return _iso(obj)
    return obj


def _iso(value: datetime | date) -> str:
    """ISO 8601 in UTC (``Z``); a date or a date-time without a zone is taken as UTC."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _start(value: Any, where: str, problems: _Problems) -> str | None:
    if isinstance(value, (datetime, date)):
        return _iso(value)
    if isinstance(value, str):
        text = value.strip()
        text = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
        try:
            return _iso(datetime.fromisoformat(text))
        except ValueError:
            pass
    problems.add(
        where, f"expected an ISO date-time such as 2026-12-07T00:00:00Z, got {_show(value)}"
    )
    return None


def parse_scenario(data: Any, path: Path | None = None, base_dir: Path | None = None) -> Scenario:
    """Validate an already-parsed YAML document. Raises `ScenarioError`.

    ``path`` (the scenario file) prefixes messages; ``model:`` and ``pilot:`` are resolved
    relative to ``base_dir`` (default: the file's folder), without checking that they exist.
    """
    path = Path(path) if path is not None else None
    if base_dir is None and path is not None:
        base_dir = path.parent
    if data is None:
        raise _error(path, "the scenario is empty; expected a mapping with model, horizon, volume")
    if not isinstance(data, dict):
        raise _error(
            path,
            "expected a mapping of scenario keys (model, horizon, volume, ...) at the top level, "
            f"got {_show(data)}",
        )
    problems = _Problems()
    top = _mapping(data, "", problems, TOP_KEYS) or {}

    model_path, pilot_path = _sources(top, problems, base_dir)
    horizon = _required(top, "horizon", "", problems, _duration(), "a duration such as 30d")
    before = len(problems.items)
    resolution = _get(top, "resolution", "", problems, _duration(), DEFAULT_RESOLUTION_S)
    if horizon is not None and len(problems.items) == before:
        _check_resolution(horizon, resolution, "resolution" in top, problems)
    start = _get(top, "start", "", problems, _start, None)
    volume = _volume(top, horizon, problems)
    mix = _mix(top, problems)
    traffic = _traffic(top, horizon, problems)
    pricing = _pricing(top, problems)
    reliability = _reliability(top, problems)
    budget = _budget(top, problems)
    trials = _get(top, "trials", "", problems, _integer(MIN_TRIALS, MAX_TRIALS), DEFAULT_TRIALS)
    seed = _get(top, "seed", "", problems, _integer(0), 0)

    problems.raise_if_any(path)
    assert horizon is not None and volume is not None  # else a problem was raised
    return Scenario(
        path=path,
        model_path=model_path,
        pilot_path=pilot_path,
        horizon_s=horizon,
        resolution_s=resolution,
        volume=volume,
        mix=mix,
        traffic=traffic,
        pricing=pricing,
        reliability=reliability,
        budget=budget,
        trials=trials,
        seed=seed,
        start=start,
        raw=_plain(data),
    )


def _sources(
    top: dict[str, Any], problems: _Problems, base_dir: Path | None
) -> tuple[Path | None, Path | None]:
    given = [k for k in ("model", "pilot") if k in top]
    if not given:
        problems.add("model", "required (the fitted model file, or pilot: a log to fit on the fly)")
    elif len(given) == 2:
        problems.add("model", "give either model (a fitted model) or pilot (a log), not both")

    def resolve(key: str) -> Path | None:
        text = _get(top, key, "", problems, _text, None)
        if text is None:
            return None
        p = Path(text).expanduser()
        return p if p.is_absolute() or base_dir is None else base_dir / p

    return resolve("model"), resolve("pilot")


_NICE_RESOLUTIONS = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 14400, 21600, 28800, 43200, 86400)


def _divides(horizon: float, resolution: float) -> bool:
    ratio = horizon / resolution
    return abs(ratio - round(ratio)) <= BUCKET_TOLERANCE * ratio


def _check_resolution(horizon: float, resolution: float, given: bool, problems: _Problems) -> None:
    shown = format_duration(resolution) if given else f"the default {format_duration(resolution)}"
    if resolution < MIN_RESOLUTION_S:
        problems.add("resolution", f"expected a duration >= 60 s (1m), got {resolution:g} s")
    elif resolution > horizon * (1 + BUCKET_TOLERANCE):
        problems.add(
            "resolution",
            f"{shown} is longer than the horizon ({format_duration(horizon)}) (set a shorter "
            "resolution)",
        )
    elif not _divides(horizon, resolution):
        fits = [r for r in _NICE_RESOLUTIONS if _divides(horizon, r) and horizon / r <= MAX_BUCKETS]
        hint = ""
        if fits:
            best = sorted(fits, key=lambda r: abs(math.log(r / resolution)))[:2]
            hint = f" (e.g. {' or '.join(format_duration(r) for r in sorted(best))})"
        problems.add(
            "resolution",
            f"{shown} does not divide the horizon ({format_duration(horizon)}) into whole "
            f"buckets ({horizon / resolution:.6g}){hint}",
        )
    elif round(horizon / resolution) > MAX_BUCKETS:
        problems.add(
            "resolution",
            f"{shown} gives {round(horizon / resolution)} buckets over the horizon "
            f"({format_duration(horizon)}), at most {MAX_BUCKETS} are allowed (set a coarser "
            "resolution)",
        )


def _volume(top: dict[str, Any], horizon: float | None, problems: _Problems) -> Volume | None:
    if "volume" not in top:
        problems.add("volume", "required (requests over the horizon, per_hour or per_day)")
        return None
    m = _section(top, "volume", "", problems, VOLUME_KEYS)
    if m is None:
        return None
    given = [k for k in _VOLUME_AMOUNTS if k in m]
    requests: float | None = None
    if not given:
        problems.add("volume", "give one of requests (over the horizon), per_hour or per_day")
    elif len(given) > 1:
        problems.add(
            "volume",
            f"give exactly one of requests, per_hour or per_day, not {' and '.join(given)}",
        )
    amounts = {k: _number(POSITIVE)(m[k], f"volume.{k}", problems) for k in given}
    if len(given) == 1:
        key = given[0]
        amount, unit = amounts[key], _VOLUME_AMOUNTS[key]
        if amount is not None and horizon is not None:
            requests = amount if unit is None else amount * horizon / unit
    growth = _get(m, "growth", "volume", problems, _number(GROWTH), 0.0)
    uncertainty = _get(m, "uncertainty", "volume", problems, _number(NON_NEGATIVE), 0.0)
    if requests is None:
        return None
    if requests > MAX_REQUESTS:
        problems.add(
            "volume",
            f"{requests:.3g} requests over the horizon is beyond costsim's range "
            f"(at most {MAX_REQUESTS:.0e})",
        )
        return None
    return Volume(requests=requests, growth=growth, uncertainty=uncertainty)


def _mix(top: dict[str, Any], problems: _Problems) -> Mix:
    relative = _get(top, "mix_relative", "", problems, _boolean, False)
    concentration = _get(top, "mix_concentration", "", problems, _number(POSITIVE), None)
    shares: dict[str, float] | None = None
    if "mix" in top:
        m = _mapping(top["mix"], "mix", problems)
        if m is not None and not top["mix"]:
            problems.add(
                "mix", "expected at least one class: share (or leave mix out for the pilot mix)"
            )
        elif m is not None:
            checked = {k: _number(NON_NEGATIVE)(v, f"mix.{k}", problems) for k, v in m.items()}
            shares = {k: v for k, v in checked.items() if v is not None}
            if len(shares) == len(top["mix"]):  # every key and share valid
                total = math.fsum(shares.values())
                if total <= 0:
                    problems.add("mix", "every share is 0 (at least one must be > 0)")
                elif not relative and abs(total - 1.0) > MIX_TOLERANCE:
                    problems.add(
                        "mix",
                        f"shares sum to {total:.6g}, expected 1 (or set mix_relative: true)",
                    )
    new_classes: dict[str, NewClass] = {}
    spec = _mapping(top["new_classes"], "new_classes", problems) if "new_classes" in top else None
    declared = spec or {}
    for name, value in declared.items():
        where = f"new_classes.{name}"
        m = _mapping(value, where, problems, NEW_CLASS_KEYS)
        if m is None:
            continue
        like = _required(m, "like", where, problems, _text, "the pilot class it is like")
        scale = _get(m, "cost_scale", where, problems, _number(POSITIVE), 1.0)
        if like is None:
            continue
        if like == name:
            problems.add(f"{where}.like", "a new class cannot be like itself (name a pilot class)")
        elif like in declared:
            problems.add(f"{where}.like", f"'{like}' is itself a new class (name a pilot class)")
        if shares is None or name not in shares:
            problems.add(where, "not in mix (give it a share there, or it gets no traffic)")
        new_classes[name] = NewClass(like=like, cost_scale=scale)
    return Mix(
        shares=shares, relative=relative, concentration=concentration, new_classes=new_classes
    )


def _magnitude(value: Any, where: str, problems: _Problems) -> tuple[float, float] | None:
    """``magnitude: 3`` (a median) or ``{median: 3, sd: 0.5}``."""
    default = Spikes()
    median_check = _number(_Range(1.0, lo_open=True))
    if not isinstance(value, dict):
        if _as_number(value) is None:
            problems.add(
                where, f"expected {{median: > 1, sd: >= 0}} or a number > 1, got {_show(value)}"
            )
            return None
        median = median_check(value, where, problems)
        return None if median is None else (median, default.magnitude_sd)
    m = _mapping(value, where, problems, MAGNITUDE_KEYS)
    if m is None:
        return None
    median = _get(m, "median", where, problems, median_check, default.magnitude_median)
    sd = _get(m, "sd", where, problems, _number(NON_NEGATIVE), default.magnitude_sd)
    return median, sd


def _spikes(tr: dict[str, Any], problems: _Problems) -> Spikes:
    where = "traffic.spikes"
    m = _section(tr, "spikes", "traffic", problems, SPIKES_KEYS)
    if m is None:
        return Spikes()
    default = Spikes()
    rate = _required(m, "rate", where, problems, _number(NON_NEGATIVE), "spikes per day")
    magnitude = _get(
        m,
        "magnitude",
        where,
        problems,
        _magnitude,
        (default.magnitude_median, default.magnitude_sd),
    )
    duration = _get(m, "duration", where, problems, _duration(), default.duration_s)
    classes = _get(m, "classes", where, problems, _class_list, None)
    return Spikes(
        rate_per_day=rate if rate is not None else 0.0,
        magnitude_median=magnitude[0],
        magnitude_sd=magnitude[1],
        duration_s=duration,
        classes=classes,
    )


def _events(tr: dict[str, Any], horizon: float | None, problems: _Problems) -> tuple[Event, ...]:
    if "events" not in tr:
        return ()
    value = tr["events"]
    if not isinstance(value, list):
        problems.add("traffic.events", f"expected a list of events, got {_show(value)}")
        return ()
    events: list[Event] = []
    names: set[str] = set()
    for i, item in enumerate(value):
        where = f"traffic.events[{i}]"
        m = _mapping(item, where, problems, EVENT_KEYS)
        if m is None:
            continue
        name = _required(m, "name", where, problems, _text, "a label such as launch")
        at = _required(m, "at", where, problems, _duration(NON_NEGATIVE), "offset from the start")
        duration = _required(m, "duration", where, problems, _duration(), "a duration")
        multiplier = _required(
            m, "multiplier", where, problems, _number(POSITIVE), "the traffic multiplier"
        )
        classes = _get(m, "classes", where, problems, _class_list, None)
        if name is not None:
            if name in names:
                problems.add(f"{where}.name", f"another event is already named '{name}'")
            names.add(name)
        if at is not None and duration is not None and horizon is not None:
            if at + duration > horizon * (1 + BUCKET_TOLERANCE):
                problems.add(
                    where,
                    f"ends at {format_duration(at + duration)} (at {format_duration(at)} + "
                    f"duration {format_duration(duration)}), after the horizon "
                    f"({format_duration(horizon)})",
                )
        if name is not None and at is not None and duration is not None and multiplier is not None:
            events.append(Event(name, at, duration, multiplier, classes))
    return tuple(events)


def _traffic(top: dict[str, Any], horizon: float | None, problems: _Problems) -> Traffic:
    tr = _section(top, "traffic", "", problems, TRAFFIC_KEYS)
    if tr is None:
        return Traffic()
    where = "traffic"
    return Traffic(
        shape=_get(tr, "shape", where, problems, _choice(TRAFFIC_SHAPES), "pilot"),
        hourly=_get(
            tr, "hourly", where, problems, _profile(HOURS, "one per hour, from 00:00 UTC"), None
        ),
        weekly=_get(
            tr, "weekly", where, problems, _profile(WEEKDAYS, "one per day, Monday first"), None
        ),
        spikes=_spikes(tr, problems),
        events=_events(tr, horizon, problems),
    )


def _price(value: Any, where: str, problems: _Problems) -> Price | None:
    m = _mapping(value, where, problems, PRICE_KEYS)
    if m is None:
        return None
    values = {k: _get(m, k, where, problems, _number(NON_NEGATIVE), None) for k in PRICE_KEYS}
    return Price(**values)


def _pricing(top: dict[str, Any], problems: _Problems) -> Pricing | None:
    m = _section(top, "pricing", "", problems, PRICING_KEYS)
    if not m:
        return None
    default = _get(m, "default", "pricing", problems, _price, None)
    classes: dict[str, Price] = {}
    spec = _mapping(m["classes"], "pricing.classes", problems) if "classes" in m else None
    for name, value in (spec or {}).items():
        price = _price(value, f"pricing.classes.{name}", problems)
        if price is not None:
            classes[name] = price
    return Pricing(default=default, classes=classes)


def _reliability(top: dict[str, Any], problems: _Problems) -> Reliability:
    m = _section(top, "reliability", "", problems, RELIABILITY_KEYS)
    if m is None:
        return Reliability()
    w = "reliability"
    d = Reliability()
    return Reliability(
        error_rate=_get(
            m, "error_rate", w, problems, _number(_Range(0.0, hi=1.0, hi_open=True)), None
        ),
        load_exponent=_get(m, "load_exponent", w, problems, _number(NON_NEGATIVE), d.load_exponent),
        max_attempts=_get(m, "max_attempts", w, problems, _integer(1), None),
        billed_failures=_get(m, "billed_failures", w, problems, _boolean, d.billed_failures),
        cold_start_rate=_get(m, "cold_start_rate", w, problems, _number(PROBABILITY), None),
        cold_start_cost_ratio=_get(
            m, "cold_start_cost_ratio", w, problems, _number(POSITIVE), None
        ),
        spike_cold_share=_get(
            m, "spike_cold_share", w, problems, _number(PROBABILITY), d.spike_cold_share
        ),
    )


def _limit(stat: str) -> _Check[BudgetLimit]:
    def check(value: Any, where: str, problems: _Problems) -> BudgetLimit | None:
        if not isinstance(value, dict):
            if _as_number(value) is None:
                problems.add(
                    where,
                    f"expected a number > 0 (the fail level) or {{fail: > 0, warn: > 0}}, "
                    f"got {_show(value)}",
                )
                return None
            fail = _number(POSITIVE)(value, where, problems)
            return None if fail is None else BudgetLimit(stat, fail)
        m = _mapping(value, where, problems, BUDGET_LIMIT_KEYS)
        if m is None:
            return None
        fail = _required(m, "fail", where, problems, _number(POSITIVE), "the fail level in USD")
        warn = _get(m, "warn", where, problems, _number(POSITIVE), None)
        if fail is None:
            return None
        if warn is not None and warn >= fail:
            problems.add(f"{where}.warn", f"expected less than fail ({fail:g}), got {warn:g}")
        return BudgetLimit(stat, fail, warn)

    return check


def _exceed_item(value: Any, where: str, problems: _Problems) -> tuple[float, float] | None:
    m = _mapping(value, where, problems, EXCEED_KEYS)
    if m is None:
        return None
    amount = _required(m, "amount", where, problems, _number(POSITIVE), "USD over the horizon")
    prob = _required(
        m,
        "max_prob",
        where,
        problems,
        _number(_Range(0.0, lo_open=True, hi=1.0, hi_open=True)),
        "the largest allowed probability of exceeding amount",
    )
    return None if amount is None or prob is None else (amount, prob)


def _budget(top: dict[str, Any], problems: _Problems) -> Budget:
    m = _section(top, "budget", "", problems, BUDGET_KEYS)
    if m is None:
        return Budget()
    limits = [_get(m, s, "budget", problems, _limit(s), None) for s in BUDGET_STATS]
    exceed: list[tuple[float, float]] = []
    if "exceed" in m:
        items = m["exceed"]
        if not isinstance(items, list):
            problems.add(
                "budget.exceed",
                f"expected a list of {{amount: > 0, max_prob: in (0, 1)}}, got {_show(items)}",
            )
            items = []
        for i, item in enumerate(items):
            pair = _exceed_item(item, f"budget.exceed[{i}]", problems)
            if pair is not None:
                exceed.append(pair)
    return Budget(
        limits=tuple(limit for limit in limits if limit is not None),
        max_exceed_prob=tuple(exceed),
    )


# ---------------------------------------------------------------------------------------------
# Against a model
# ---------------------------------------------------------------------------------------------


def validate_against_model(scenario: Scenario, classes: tuple[str, ...]) -> None:
    """Check class names used by the scenario against the model's classes (ScenarioError).

    Classes named in ``mix``, the spikes' and events' ``classes`` and ``pricing.classes`` must
    be model classes or declared new classes; ``new_classes.*.like`` must be a model class and
    a new class must not take a model class's name. Model classes missing from an absolute mix
    get a share of 0.
    """
    model = tuple(classes)
    known = set(model)
    new = tuple(n for n in scenario.mix.new_classes if n not in known)
    problems = _Problems()

    def listing(with_new: bool) -> str:
        text = f"model classes: {', '.join(model)}"
        return text + (f" (new classes: {', '.join(new)})" if with_new and new else "")

    def check(where: str, name: str, *, keyed: bool, with_new: bool = True) -> None:
        pool = model + (new if with_new else ())
        if name in pool:
            return
        what = "class not in the model" if keyed else f"class '{name}' not in the model"
        guess = _suggest(name, pool)
        hint = f"; did you mean '{guess}'? " if guess else "; "
        problems.add(where, f"{what}{hint}{listing(with_new)}")

    for name, spec in scenario.mix.new_classes.items():
        where = f"new_classes.{name}"
        if name in known:
            problems.add(
                where,
                "already a class of the model (pick another name, or change its share in mix)",
            )
        check(f"{where}.like", spec.like, keyed=False, with_new=False)
    for name in scenario.mix.shares or {}:
        check(f"mix.{name}", name, keyed=True)
    for i, name in enumerate(scenario.traffic.spikes.classes or ()):
        check(f"traffic.spikes.classes[{i}]", name, keyed=False)
    for k, event in enumerate(scenario.traffic.events):
        for i, name in enumerate(event.classes or ()):
            check(f"traffic.events[{k}].classes[{i}]", name, keyed=False)
    for name in scenario.pricing.classes if scenario.pricing is not None else {}:
        check(f"pricing.classes.{name}", name, keyed=True)
    problems.raise_if_any(scenario.path)


# ---------------------------------------------------------------------------------------------
# JSON Schema, for editors
# ---------------------------------------------------------------------------------------------


def _obj(
    description: str,
    properties: dict[str, Any],
    *,
    required: Sequence[str] = (),
    **extra: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "description": description,
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        out["required"] = list(required)
    out.update(extra)
    return out


def _num(description: str, **bounds: float) -> dict[str, Any]:
    return {"type": "number", "description": description, **bounds}


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the scenario format, for editors.

    It describes what `parse_scenario` accepts; the checks that span several keys (the
    resolution dividing the horizon, absolute mix shares summing to 1, an event ending within
    the horizon, warn below fail) are made by `parse_scenario` only.
    """
    ref = "#/$defs/"
    price = _obj(
        "Token prices in USD. A class with a price is re-priced from its tokens; missing fields "
        "fall back to pricing.default.",
        {
            "input_per_mtok": _num("USD per million input tokens.", minimum=0),
            "output_per_mtok": _num("USD per million output tokens.", minimum=0),
            "cached_per_mtok": _num("USD per million cached input tokens.", minimum=0),
            "per_request": _num("USD per request.", minimum=0),
        },
    )
    budget_limit = {
        "description": "A budget on this statistic of the cost over the horizon (USD): the fail "
        "level, or {fail, warn} with warn < fail.",
        "oneOf": [
            {"type": "number", "exclusiveMinimum": 0},
            _obj(
                "Fail and warn levels (USD).",
                {
                    "fail": _num("Fail level (USD).", exclusiveMinimum=0),
                    "warn": _num("Warn level (USD), below fail.", exclusiveMinimum=0),
                },
                required=["fail"],
            ),
        ],
    }
    defs: dict[str, Any] = {
        "duration": {
            "description": f"A duration {_DURATION_HINT}; combinations such as 1h30m.",
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": DURATION_PATTERN},
            ],
        },
        "offset": {
            "description": f"An offset from the start of the horizon: a duration {_DURATION_HINT}.",
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": DURATION_PATTERN},
            ],
        },
        "classes": {
            "description": "The classes affected: all, a class name, or a list of class names.",
            "anyOf": [
                {"type": "string", "minLength": 1},
                {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "minItems": 1,
                    "uniqueItems": True,
                },
            ],
        },
        "price": price,
        "budget_limit": budget_limit,
    }
    volume = _obj(
        "Production volume: exactly one of requests, per_hour or per_day.",
        {
            "requests": _num("Requests over the whole horizon.", exclusiveMinimum=0),
            "per_hour": _num(
                "Requests per hour at the start (growth compounds on top).", exclusiveMinimum=0
            ),
            "per_day": _num(
                "Requests per day at the start (growth compounds on top).", exclusiveMinimum=0
            ),
            "growth": _num(
                "Relative growth per 30 days, compounding (0.1 = +10% a month). Default 0.",
                exclusiveMinimum=-1,
            ),
            "uncertainty": _num(
                "Standard deviation of the log of the volume, drawn per trial. Default 0.",
                minimum=0,
            ),
        },
        oneOf=[{"required": [k]} for k in _VOLUME_AMOUNTS],
    )
    spikes = _obj(
        "Random traffic spikes.",
        {
            "rate": _num("Expected spikes per day.", minimum=0),
            "magnitude": {
                "description": "Traffic multiplier of a spike (lognormal): its median, or "
                "{median, sd} with sd the standard deviation of its log (default 0.5).",
                "oneOf": [
                    {"type": "number", "exclusiveMinimum": 1},
                    _obj(
                        "Lognormal multiplier.",
                        {
                            "median": _num("Median multiplier.", exclusiveMinimum=1),
                            "sd": _num("Standard deviation of the log multiplier.", minimum=0),
                        },
                    ),
                ],
            },
            "duration": {"$ref": ref + "duration", "description": "How long a spike lasts."},
            "classes": {"$ref": ref + "classes"},
        },
        required=["rate"],
    )
    event = _obj(
        "A scheduled event such as a launch.",
        {
            "name": {"type": "string", "minLength": 1, "description": "Label for reports."},
            "at": {"$ref": ref + "offset", "description": "Start, from the horizon's start."},
            "duration": {"$ref": ref + "duration", "description": "How long it lasts."},
            "multiplier": _num("Traffic multiplier while it lasts.", exclusiveMinimum=0),
            "classes": {"$ref": ref + "classes"},
        },
        required=["name", "at", "duration", "multiplier"],
    )

    def profile(n: int, what: str) -> dict[str, Any]:
        return {
            "type": "array",
            "description": f"{n} relative values >= 0 ({what}), not all zero.",
            "items": {"type": "number", "minimum": 0},
            "minItems": n,
            "maxItems": n,
        }

    traffic = _obj(
        "Traffic shape, spikes and events.",
        {
            "shape": {
                "enum": list(TRAFFIC_SHAPES),
                "description": "pilot: the pilot's hour-of-day and weekday shape; flat: none.",
            },
            "hourly": profile(HOURS, "one per hour of the day, from 00:00 UTC"),
            "weekly": profile(WEEKDAYS, "one per day of the week, Monday first"),
            "spikes": spikes,
            "events": {"type": "array", "items": event, "description": "Scheduled events."},
        },
    )
    reliability = _obj(
        "How production's reliability differs from the pilot's (omitted = the pilot's).",
        {
            "error_rate": _num("Per-attempt failure probability.", minimum=0, exclusiveMaximum=1),
            "load_exponent": _num(
                "Failures scale with (load / mean load) ** load_exponent. Default 0.", minimum=0
            ),
            "max_attempts": {
                "type": "integer",
                "minimum": 1,
                "description": "Attempts per request including the first.",
            },
            "billed_failures": {
                "type": "boolean",
                "description": "Whether failed attempts are billed. Default true.",
            },
            "cold_start_rate": _num("Share of requests served cold.", minimum=0, maximum=1),
            "cold_start_cost_ratio": _num(
                "Cost of a cold request / a warm one.", exclusiveMinimum=0
            ),
            "spike_cold_share": _num(
                "Share of the extra requests of a sudden rise served cold. Default 0.",
                minimum=0,
                maximum=1,
            ),
        },
    )
    budget = _obj(
        "Budgets for `costsim check`, in USD over the horizon.",
        {
            **{s: {"$ref": ref + "budget_limit"} for s in BUDGET_STATS},
            "exceed": {
                "type": "array",
                "description": "Limits on the probability of exceeding an amount.",
                "items": _obj(
                    "The probability that the cost exceeds amount must stay below max_prob.",
                    {
                        "amount": _num("USD over the horizon.", exclusiveMinimum=0),
                        "max_prob": _num(
                            "Largest allowed probability.", exclusiveMinimum=0, exclusiveMaximum=1
                        ),
                    },
                    required=["amount", "max_prob"],
                ),
            },
        },
    )
    properties: dict[str, Any] = {
        "model": {
            "type": "string",
            "minLength": 1,
            "description": "The fitted model file (costsim fit), relative to this file.",
        },
        "pilot": {
            "type": "string",
            "minLength": 1,
            "description": "A pilot log to fit on the fly, relative to this file (instead of "
            "model).",
        },
        "horizon": {"$ref": ref + "duration", "description": "How far ahead to forecast."},
        "resolution": {
            "$ref": ref + "duration",
            "description": "Time bucket of the simulation: >= 1m, dividing the horizon into at "
            f"most {MAX_BUCKETS} buckets. Default 1h.",
        },
        "start": {
            "type": "string",
            "anyOf": [{"format": "date-time"}, {"format": "date"}],
            "description": "ISO date-time of the horizon's start (UTC unless a zone is given). "
            "Default: a Monday 00:00 UTC.",
        },
        "volume": volume,
        "mix": {
            "type": "object",
            "description": "Production share of each class; omitted = the pilot's mix. Absolute "
            "shares sum to 1 (unlisted classes get 0).",
            "additionalProperties": {"type": "number", "minimum": 0},
            "minProperties": 1,
        },
        "mix_relative": {
            "type": "boolean",
            "description": "Mix values multiply the pilot shares (renormalised). Default false.",
        },
        "mix_concentration": _num(
            "Dirichlet concentration of the per-trial mix (larger = surer).", exclusiveMinimum=0
        ),
        "new_classes": {
            "type": "object",
            "description": "Classes the pilot did not have, each borrowed from a pilot class; "
            "give each a share in mix.",
            "additionalProperties": _obj(
                "A new class.",
                {
                    "like": {"type": "string", "minLength": 1, "description": "A pilot class."},
                    "cost_scale": _num(
                        "Per-request cost relative to that class. Default 1.", exclusiveMinimum=0
                    ),
                },
                required=["like"],
            ),
        },
        "traffic": traffic,
        "pricing": _obj(
            "Token pricing; omitted = the pilot's billed cost.",
            {
                "default": {"$ref": ref + "price"},
                "classes": {
                    "type": "object",
                    "description": "Per-class prices.",
                    "additionalProperties": {"$ref": ref + "price"},
                },
            },
        ),
        "reliability": reliability,
        "budget": budget,
        "trials": {
            "type": "integer",
            "minimum": MIN_TRIALS,
            "maximum": MAX_TRIALS,
            "description": f"Monte Carlo trials. Default {DEFAULT_TRIALS}.",
        },
        "seed": {"type": "integer", "minimum": 0, "description": "Random seed. Default 0."},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "costsim scenario",
        "description": "Production as expected, for costsim forecast and costsim check.",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "required": ["horizon", "volume"],
        "oneOf": [{"required": ["model"]}, {"required": ["pilot"]}],
        "$defs": defs,
    }


# ---------------------------------------------------------------------------------------------
# A starting scenario for a fitted model
# ---------------------------------------------------------------------------------------------

_PLAIN_SCALAR = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "all"}


# Characters YAML allows unescaped in a double-quoted scalar (printable, not a line break).
_YAML_RAW = re.compile(
    "[\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)


def _yaml_str(text: str) -> str:
    """A string as a YAML scalar: plain when that reads back as the same string, else
    double-quoted with YAML escapes."""
    if _PLAIN_SCALAR.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif _YAML_RAW.fullmatch(ch):
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def _comment(text: str) -> str:
    """Text safe inside a YAML comment: one line, printable characters only."""
    return "".join(ch if _YAML_RAW.fullmatch(ch) else " " for ch in " ".join(text.split()))


def _rounded_shares(shares: dict[str, float]) -> tuple[dict[str, int], int]:
    """Shares as integers over 10**d summing exactly to 10**d (largest remainders), with the
    fewest decimals d >= 4 that keep every positive share positive."""
    total = math.fsum(shares.values())
    names = list(shares)
    units: list[int] = []
    d = 4
    for d in range(4, 13):
        scale = 10**d
        exact = [shares[n] / total * scale for n in names]
        units = [math.floor(x) for x in exact]
        order = sorted(range(len(names)), key=lambda i: units[i] - exact[i])
        for i in order[: scale - sum(units)]:
            units[i] += 1
        if all(u > 0 for u, n in zip(units, names, strict=True) if shares[n] > 0):
            break
    return dict(zip(names, units, strict=True)), d


def _money(x: float) -> str:
    """A round amount: two significant digits."""
    if x <= 0:
        return "0"
    digits = max(0, 1 - math.floor(math.log10(x)))
    return f"{round(x, -(math.floor(math.log10(x)) - 1)):,.{min(digits, 2)}f}".replace(",", "")


def _pct_range(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.1%}" if math.isclose(lo, hi) else f"{lo:.1%} to {hi:.1%} by class"


def init_scenario_text(model: FittedModel, model_path: str) -> str:
    """A commented starting scenario (YAML text) for a fitted model.

    The volume is the pilot's request rate extrapolated to the 30-day horizon (the pilot's
    request count when it had no timestamps), the mix is the pilot's; spikes, an event,
    pricing, reliability and a budget are given as commented-out examples.
    """
    names = list(model.classes)
    traffic = model.traffic
    horizon_h = 30 * 24.0
    if traffic.rate_per_hour:
        requests = max(1, round(traffic.rate_per_hour * horizon_h))
        volume_note = (
            f"the pilot's {traffic.rate_per_hour:,.1f} requests/hour extrapolated to 30 days"
        )
    else:
        requests = max(1, int(traffic.requests))
        volume_note = "the pilot's request count (it had no timestamps, so no rate)"
    units, decimals = _rounded_shares({n: c.share for n, c in model.classes.items()})
    width = max(len(_yaml_str(n)) for n in names) + 2
    unit_cost = {n: (c.cost_total or 0.0) / max(c.requests, 1) for n, c in model.classes.items()}
    cheapest, costliest = (
        min(names, key=unit_cost.__getitem__),
        max(names, key=unit_cost.__getitem__),
    )
    shapes = [
        label
        for label, profile in (
            ("hour of day", traffic.hourly_profile),
            ("weekday", traffic.weekday_profile),
        )
        if profile is not None
    ]
    shape_note = (
        f"the pilot's {' and '.join(shapes)} shape" if shapes else "the pilot had no shape: flat"
    )
    has_tokens = any("input_tokens" in c.quantities for c in model.classes.values())
    error_rates = [
        c.rates.error_rate for c in model.classes.values() if c.rates.error_rate is not None
    ]
    cold_rates = [
        c.rates.cold_start_rate
        for c in model.classes.values()
        if c.rates.cold_start_rate is not None
    ]
    costs = [c.cost_total for c in model.classes.values()]
    naive = None
    if all(c is not None for c in costs) and traffic.requests > 0:
        naive = math.fsum(c for c in costs if c is not None) / traffic.requests * requests

    lines = [
        "# costsim scenario: production as you expect it (`costsim forecast`, `costsim check`).",
        f"# Started from the fitted model of {_comment(str(model.source))} "
        f"({traffic.requests} requests, "
        f"{len(names)} classes).",
        "# Paths are relative to this file. Durations: 30d, 12h, 15m, 90s, 2w or seconds.",
        "",
        f"model: {_yaml_str(model_path)}",
        "",
        "horizon: 30d            # how far ahead to forecast",
        "resolution: 1h          # time bucket of the traffic simulation",
        "# start: 2027-01-04T00:00:00Z   # start of the horizon (aligns daily and weekly shapes)",
        "",
        "volume:",
        f"  requests: {requests}   # over the horizon: {volume_note}",
        "  growth: 0             # relative growth per 30 days, compounding (0.1 = +10% a month)",
        "  uncertainty: 0        # sd of the log volume, drawn per trial (0.2 = about +-20%)",
        "",
        "# Production share of each class, here the pilot's. Absolute shares sum to 1 (a class",
        "# left out gets 0); with `mix_relative: true` they multiply the pilot's shares instead.",
        "mix:",
    ]
    for name in names:
        key = _yaml_str(name) + ":"
        lines.append(f"  {key:<{width}} {units[name] / 10**decimals:.{decimals}f}")
    lines += [
        "# mix_concentration: 300   # per-trial uncertainty of the mix (Dirichlet; larger = surer)",
        "# new_classes:             # classes the pilot did not have (give each a share in mix)",
        f"#   {_yaml_str(costliest + '_v2')}: {{like: {_yaml_str(costliest)}, cost_scale: 1.5}}",
        "",
        "traffic:",
        f"  shape: pilot          # {shape_note}; or flat",
        "  # hourly: [...]        # 24 relative values from 00:00 UTC, overriding the shape",
        "  # weekly: [1, 1, 1, 1, 1, 0.6, 0.5]   # Monday first",
        "  # spikes:              # random spikes",
        "  #   rate: 0.5          # expected spikes per day",
        "  #   magnitude: {median: 3, sd: 0.5}   # traffic multiplier (lognormal)",
        "  #   duration: 2h",
        "  #   classes: all       # or a list of classes",
        "  # events:              # scheduled, such as a launch",
        "  #   - {name: launch, at: 7d, duration: 2d, multiplier: 3, classes: all}",
        "",
        "# pricing:                 # re-price from tokens (USD per million); omitted = pilot cost",
    ]
    if not has_tokens:
        lines.append("#                           (this pilot has no token counts to re-price)")
    lines += [
        "#   default: {input_per_mtok: 3, output_per_mtok: 15, cached_per_mtok: 0.3}",
        "#   classes:",
        f"#     {_yaml_str(cheapest)}: {{input_per_mtok: 0.5, output_per_mtok: 1.5}}",
        "",
        "# reliability:             # omitted = the pilot's behaviour",
        "#   error_rate: 0.02        # per attempt"
        + (f" (pilot: {_pct_range(error_rates)})" if error_rates else ""),
        "#   load_exponent: 1        # errors rise with (load / mean load) ** load_exponent",
        "#   max_attempts: 3         # attempts per request, the first included",
        "#   billed_failures: true",
        "#   cold_start_rate: 0.01   # share of requests served cold"
        + (f" (pilot: {_pct_range(cold_rates)})" if cold_rates else ""),
        "#   cold_start_cost_ratio: 1.2",
        "#   spike_cold_share: 0.3   # share of a spike's extra requests served cold",
        "",
        "# budget:                  # for `costsim check`: USD over the horizon",
    ]
    if naive is not None:
        lines.append(
            f"#   # naive linear estimate: ${naive:,.0f} (pilot mean cost per request x requests)"
        )
        fail, warn, amount = _money(1.5 * naive), _money(1.2 * naive), _money(2 * naive)
    else:
        fail, warn, amount = "120000", "100000", "150000"
    lines += [
        f"#   p95: {{fail: {fail}, warn: {warn}}}",
        f"#   exceed: [{{amount: {amount}, max_prob: 0.05}}]",
        "",
        "trials: 10000",
        "seed: 0",
        "",
    ]
    return "\n".join(lines)
