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
MAX_HORIZON_S = 3650 * 86400.0  # ten years: growth compounded over it and spike counts stay finite
MAX_BUCKETS = 100_000
MAX_REQUESTS = 1e13  # the engine's finest stratum is 1e-13: beyond this, exact draws pile up
BUCKET_TOLERANCE = 1e-9  # relative: horizon / resolution must be this close to a whole number
MIX_TOLERANCE = 1e-6
MIN_MIX_WEIGHT = 1e-6  # with mix_relative, the largest weight: below, weight x share may underflow
DEFAULT_TRIALS = 10_000
MIN_TRIALS = 100
MAX_TRIALS = 10_000_000
MAX_SEED = 2**63 - 1  # a signed 64-bit integer: every report format and reader keeps it exact
MAX_USD = 1e15  # budgets: a thousand times the largest cloud bill; prices x volume stay far below
# Spikes per trial (rate x horizon in days): the traffic layer holds every spike of a chunk of
# trials (2000) at about 128 bytes each while it draws and spreads them: 4096 is about 1 GiB.
MAX_SPIKES_PER_TRIAL = 4096
MAX_SPIKE_SHARE = 1.0  # rate x duration: the expected share of time in a spike; above 1, spikes
# overlap all the time and are a higher volume, not spikes
BUDGET_STATS = ("p5", "p50", "p90", "p95", "p99", "mean")
TRAFFIC_SHAPES = ("pilot", "flat")
START_YEARS = (1970, 2199)  # a start outside is a typo (the shapes align to it, nothing else)
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
    if isinstance(value, int) and abs(value) > 2**1000:
        return math.inf  # too large for a float, and for any bound
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
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of {len(hex(value)) * 12 // 10} digits or so"  # repr may refuse
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


def _key_text(key: Any) -> str:
    """A key that is not a string, as it reads in the file (a huge integer: abridged)."""
    if isinstance(key, int) and key.bit_length() > 64:
        return _show(key)
    if isinstance(key, (datetime, date)):
        return key.isoformat()
    return str(key)


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
    """The allowed values of a number in the format: the one source of its bounds, read by the
    validator (`_number`, `_integer`, `_duration`) and by `json_schema`.

    ``cap``: the upper bound is a plausibility cap rather than the edge of the value's domain
    (as 1 is for a probability). A message then names the bound the value broke: the lower one
    (``>= 0``) for a value below it or not a number, the whole range with its meaning for a
    value above the cap; a domain is always named whole (``in [0, 1]``).
    """

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False
    kind: str = "number"  # "number", "integer" or "duration" (in seconds)
    meaning: str = ""  # what a value means, shown after the range in messages
    cap: bool = True

    def __contains__(self, x: float) -> bool:
        if x <= self.lo if self.lo_open else x < self.lo:
            return False
        return not (x >= self.hi if self.hi_open else x > self.hi)

    def _text(self, x: float) -> str:
        if self.kind == "duration" and x > 0:
            return format_duration(x)
        if self.kind == "integer":
            return str(int(x))
        return f"{x:g}"

    def __str__(self) -> str:
        left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
        text = f"in {left}{self._text(self.lo)}, {self._text(self.hi)}{right}"
        return f"{text} ({self.meaning})" if self.meaning else text

    def lower(self) -> str:
        """The lower bound alone: ``>= 0`` or ``> 0``."""
        return f"{'>' if self.lo_open else '>='} {self._text(self.lo)}"

    def broken(self, x: float | None) -> str:
        """The bound to name for a value ``x`` (None: not a number) outside the range."""
        above = (
            x is not None and math.isfinite(x) and (x >= self.hi if self.hi_open else x > self.hi)
        )
        return str(self) if above or not self.cap else self.lower()

    def schema(self) -> dict[str, Any]:
        """The bounds as JSON Schema keywords (durations: in seconds)."""
        return {
            "exclusiveMinimum" if self.lo_open else "minimum": self.lo,
            "exclusiveMaximum" if self.hi_open else "maximum": self.hi,
        }


def _positive(hi: float, meaning: str = "", kind: str = "number") -> _Range:
    return _Range(0.0, hi, lo_open=True, kind=kind, meaning=meaning)


def _within(lo: float, hi: float, meaning: str = "", kind: str = "number") -> _Range:
    return _Range(lo, hi, kind=kind, meaning=meaning)


def _domain(lo: float, hi: float, meaning: str = "", *, hi_open: bool = False) -> _Range:
    """A range that is the value's whole domain (a probability), not a plausibility cap."""
    return _Range(lo, hi, lo_open=False, hi_open=hi_open, meaning=meaning, cap=False)


# Every number of the format, by its key path (``*``: any class name, ``[]``: any list item;
# ``price.*``: pricing.default and pricing.classes.<class>). Bounds are generous (no real scenario
# comes near them) but finite: the engine multiplies volume x growth x events x spikes x prices,
# and with these the product stays below about 1e40 USD, far from float overflow.
BOUNDS: dict[str, _Range] = {
    # Whole buckets of at least a minute; ten years at most.
    "horizon": _within(MIN_RESOLUTION_S, MAX_HORIZON_S, kind="duration"),
    "resolution": _within(MIN_RESOLUTION_S, MAX_HORIZON_S, kind="duration"),
    # Totals and rates: with growth, the total over the horizon must stay <= MAX_REQUESTS too.
    "volume.requests": _positive(MAX_REQUESTS),
    "volume.per_hour": _positive(MAX_REQUESTS),
    "volume.per_day": _positive(MAX_REQUESTS),
    # Up to +1000% a month: compounded over ten years, 11 ** 122 = 1e127 stays finite (the
    # traffic layer compounds in logs, so a decline towards -100% does not underflow to 0 / 0).
    "volume.growth": _Range(
        -1.0, 10.0, lo_open=True, meaning="relative growth per 30 days: 0.1 means +10% a month"
    ),
    # sd of the log: 2 is already a factor e**2 = 7.4 either way at one sd; 20 (meant as 20%)
    # would put every trial at $0 or astronomically high.
    "volume.uncertainty": _within(0.0, 2.0, "the sd of log volume: 0.2 means about +-20%"),
    # Absolute shares sum to 1; relative weights are ratios: a million to one is plenty.
    "mix.*": _within(0.0, 1e6, "a share, or with mix_relative a weight on the pilot share"),
    # Dirichlet concentration: 100 is about +-5 points on a share of 0.5, 1e6 a fixed mix; below
    # 1 each trial's mix is mostly one class, and a small class's traffic can jump to a million
    # times its share (whose requests the engine then draws one by one).
    "mix_concentration": _within(1.0, 1e6, "larger is surer: 100 is about +-5 points on a share"),
    # More than a thousand times cheaper or dearer than its pilot class is not "like" it.
    "new_classes.*.cost_scale": _within(1e-3, 1e3, "per-request cost relative to its like class"),
    # Relative values, renormalised to mean 1: a million to one covers any day or week.
    "traffic.hourly[]": _within(0.0, 1e6, "relative traffic in that hour"),
    "traffic.weekly[]": _within(0.0, 1e6, "relative traffic on that day"),
    # One spike a minute on average; see also MAX_SPIKES_PER_TRIAL and MAX_SPIKE_SHARE.
    "traffic.spikes.rate": _within(0.0, 1440.0, "spikes per day, on average"),
    # A spike a hundred times the usual traffic is plenty, and an sd of 1 (x/ 2.7 at one sd)
    # already makes one spike in 40 a dip; the engine draws the requests of intensities far above
    # the expected one by one, so larger ones cost memory.
    "traffic.spikes.magnitude.median": _Range(
        1.0, 100.0, lo_open=True, meaning="the median traffic multiplier of a spike"
    ),
    "traffic.spikes.magnitude.sd": _within(
        0.0, 1.0, "the sd of the log multiplier: 0.5 means about x/ 1.6 around the median"
    ),
    "traffic.spikes.duration": _positive(MAX_HORIZON_S, kind="duration"),
    # Events start within the horizon (and end in it: checked with the horizon).
    "traffic.events[].at": _Range(
        0.0, MAX_HORIZON_S, hi_open=True, kind="duration", meaning="from the horizon's start"
    ),
    "traffic.events[].duration": _positive(MAX_HORIZON_S, kind="duration"),
    # A launch at a thousand times the usual traffic is already extreme.
    "traffic.events[].multiplier": _positive(1e3, "the traffic multiplier while it lasts"),
    # The dearest models charge a few hundred USD per million tokens: ten thousand is generous.
    "price.input_per_mtok": _within(0.0, 1e4, "USD per million input tokens"),
    "price.output_per_mtok": _within(0.0, 1e4, "USD per million output tokens"),
    "price.cached_per_mtok": _within(0.0, 1e4, "USD per million cached input tokens"),
    "price.per_request": _within(0.0, 1e3, "USD per request"),
    # A probability (the engine caps it at 0.999 where load raises it).
    "reliability.error_rate": _domain(0.0, 1.0, hi_open=True),
    # Failures scale with (load / mean load) ** k: 1 is proportional, 10 already a cliff.
    "reliability.load_exponent": _within(0.0, 10.0, "failures scale with load ** load_exponent"),
    # Attempts are computed by repeated products, one per attempt: 100 is far past any policy.
    "reliability.max_attempts": _within(
        1, 100, "attempts per request, the first included", "integer"
    ),
    "reliability.cold_start_rate": _domain(0.0, 1.0, "share of requests served cold"),
    # A cold request a thousand times as dear as a warm one is beyond any cold start.
    "reliability.cold_start_cost_ratio": _positive(1e3, "cost of a cold request / a warm one"),
    "reliability.spike_cold_share": _domain(0.0, 1.0, "share of a sudden rise served cold"),
    # USD over the horizon; warn lies below fail, so below MAX_USD.
    "budget.*.fail": _positive(MAX_USD, "the fail level, USD over the horizon"),
    "budget.*.warn": _Range(
        0.0, MAX_USD, lo_open=True, hi_open=True, meaning="USD over the horizon, below fail"
    ),
    "budget.exceed[].amount": _positive(MAX_USD, "USD over the horizon"),
    "budget.exceed[].max_prob": _Range(0.0, 1.0, lo_open=True, hi_open=True, cap=False),
    # Fewer trials cannot estimate a P95; more take hours (and memory for every trial's total).
    "trials": _Range(MIN_TRIALS, MAX_TRIALS, kind="integer", cap=False),
    "seed": _within(0, MAX_SEED, kind="integer"),
}

_Check = Callable[[Any, str, _Problems], T | None]


def _as_number(value: Any) -> float | None:
    """A number as a float (an integer too large for one: +-inf), or None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if isinstance(value, float):
        return value
    if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
        return float(value)
    return None


def _number(bounds: _Range) -> _Check[float]:
    def check(value: Any, where: str, problems: _Problems) -> float | None:
        x = _as_number(value)
        if x is None or not math.isfinite(x) or x not in bounds:
            broken = bounds.broken(None if x is None or not math.isfinite(x) else x)
            problems.add(where, f"expected a number {broken}, got {_show(value)}")
            return None
        return x

    return check


def _integer(bounds: _Range) -> _Check[int]:
    def check(value: Any, where: str, problems: _Problems) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool):
            n: int | None = value  # compared exactly: no rounding through a float
        else:
            x = _as_number(value)
            n = int(x) if x is not None and math.isfinite(x) and x == int(x) else None
        if n is None or n not in bounds:
            big = n is not None and n > bounds.hi  # not through a float: n may be huge
            broken = str(bounds) if big or not bounds.cap else bounds.lower()
            problems.add(where, f"expected an integer {broken}, got {_show(value)}")
            return None
        return n

    return check


def _bounded(key: str) -> _Check[Any]:
    """The check of the number at ``key`` (a key of `BOUNDS`)."""
    bounds = BOUNDS[key]
    if bounds.kind == "integer":
        return _integer(bounds)
    if bounds.kind == "duration":
        return _duration(bounds)
    return _number(bounds)


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


def _duration(bounds: _Range) -> _Check[float]:
    def check(value: Any, where: str, problems: _Problems) -> float | None:
        seconds = _duration_seconds(value)
        if seconds is None or not math.isfinite(seconds) or seconds not in bounds:
            finite = seconds if seconds is not None and math.isfinite(seconds) else None
            problems.add(where, _duration_problem(value, bounds.broken(finite)))
            return None
        return seconds

    return check


def _profile(key: str, n: int, what: str) -> _Check[tuple[float, ...]]:
    bounds = BOUNDS[f"{key}[]"]

    def check(value: Any, where: str, problems: _Problems) -> tuple[float, ...] | None:
        if not isinstance(value, list) or len(value) != n:
            got = f"{len(value)} values" if isinstance(value, list) else _show(value)
            problems.add(
                where, f"expected a list of {n} numbers {bounds.lower()} ({what}), got {got}"
            )
            return None
        check_value = _bounded(f"{key}[]")
        values = [check_value(v, f"{where}[{i}]", problems) for i, v in enumerate(value)]
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
            shown = str(key).lower() if isinstance(key, bool) else _key_text(key)
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

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        """A date or date-time; an impossible one (2026-02-30), or one PyYAML resolves as a
        timestamp but cannot build (a zone offset with seconds), stays a string, so that the
        key it is under reports it rather than the YAML reader failing."""
        try:
            return super().construct_yaml_timestamp(node)
        except (ValueError, OverflowError, AttributeError):
            return self.construct_scalar(node)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        """An integer; one of more digits than Python converts stays a string."""
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            return self.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


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
    except RecursionError:
        raise _error(path, f"invalid YAML: the {what} is nested too deeply") from None


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
    """ISO 8601 in UTC (``Z``); a date or a date-time without a zone is taken as UTC. One that
    UTC cannot hold (0001-01-01T00:00+01:00) is written as it is."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    try:
        value = value.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return value.isoformat()
    return value.isoformat().replace("+00:00", "Z")


def _start(value: Any, where: str, problems: _Problems) -> str | None:
    when: date | None = value if isinstance(value, (datetime, date)) else None
    if isinstance(value, str):
        text = value.strip()
        text = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            pass
    first, last = START_YEARS
    if when is not None and first <= when.year <= last:
        iso = _iso(when)
        if iso.endswith("Z") and first <= int(iso[:4]) <= last:  # in UTC too
            return iso
    if when is not None:
        problems.add(
            where,
            f"expected a date-time in the years {first} to {last}, got {_show(value)}",
        )
        return None
    problems.add(
        where,
        "expected an ISO date-time such as 2026-12-07T00:00:00Z (or a date such as 2026-12-07) "
        f"that exists, got {_show(value)}",
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
    horizon = _required(top, "horizon", "", problems, _bounded("horizon"), "a duration such as 30d")
    before = len(problems.items)
    resolution = _get(top, "resolution", "", problems, _bounded("resolution"), DEFAULT_RESOLUTION_S)
    if horizon is not None and len(problems.items) == before:
        _check_resolution(horizon, resolution, "resolution" in top, problems)
    start = _get(top, "start", "", problems, _start, None)
    volume = _volume(top, horizon, problems)
    mix = _mix(top, problems)
    traffic = _traffic(top, horizon, problems)
    pricing = _pricing(top, problems)
    reliability = _reliability(top, problems)
    budget = _budget(top, problems)
    trials = _get(top, "trials", "", problems, _bounded("trials"), DEFAULT_TRIALS)
    seed = _get(top, "seed", "", problems, _bounded("seed"), 0)

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
    if resolution > horizon * (1 + BUCKET_TOLERANCE):
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
    amounts = {k: _bounded(f"volume.{k}")(m[k], f"volume.{k}", problems) for k in given}
    if len(given) == 1:
        key = given[0]
        amount, unit = amounts[key], _VOLUME_AMOUNTS[key]
        if amount is not None and horizon is not None:
            requests = amount if unit is None else amount * horizon / unit
    growth = _get(m, "growth", "volume", problems, _bounded("volume.growth"), 0.0)
    uncertainty = _get(m, "uncertainty", "volume", problems, _bounded("volume.uncertainty"), 0.0)
    if requests is None:
        return None
    total = requests
    if given[0] != "requests" and horizon is not None:  # a rate: growth adds to the total
        total = requests * _mean_growth(growth, horizon)
    if total > MAX_REQUESTS:
        grown = f" (growing {growth:g} per 30 days)" if total != requests else ""
        problems.add(
            "volume",
            f"{total:.3g} requests over the horizon{grown} is beyond costsim's range "
            f"(at most {MAX_REQUESTS:.0e}): lower volume.{given[0]}"
            + (" or volume.growth" if grown else ""),
        )
        return None
    return Volume(requests=requests, growth=growth, uncertainty=uncertainty)


def _mean_growth(growth: float, horizon: float) -> float:
    """Mean over the horizon of (1 + growth) ** (t / 30 days):
    (e^a - 1) / a with a = ln(1 + growth) x horizon / 30 days (1 when a = 0)."""
    a = math.log1p(growth) * horizon / (30 * 86400.0)
    return math.expm1(a) / a if a != 0 else 1.0


def _mix(top: dict[str, Any], problems: _Problems) -> Mix:
    relative = _get(top, "mix_relative", "", problems, _boolean, False)
    concentration = _get(
        top, "mix_concentration", "", problems, _bounded("mix_concentration"), None
    )
    shares: dict[str, float] | None = None
    if "mix" in top:
        m = _mapping(top["mix"], "mix", problems)
        if m is not None and not top["mix"]:
            problems.add(
                "mix", "expected at least one class: share (or leave mix out for the pilot mix)"
            )
        elif m is not None:
            share = _bounded("mix.*")
            checked = {k: share(v, f"mix.{k}", problems) for k, v in m.items()}
            shares = {k: v for k, v in checked.items() if v is not None}
            if len(shares) == len(top["mix"]):  # every key and share valid
                total = math.fsum(shares.values())
                if total <= 0:
                    problems.add("mix", "every share is 0 (at least one must be > 0)")
                elif relative and max(shares.values()) < MIN_MIX_WEIGHT:
                    problems.add(
                        "mix",
                        f"with mix_relative, values are weights on the pilot shares and the "
                        f"largest is {max(shares.values()):g}: scale them up (the largest at "
                        f"least {MIN_MIX_WEIGHT:g})",
                    )
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
        scale = _get(m, "cost_scale", where, problems, _bounded("new_classes.*.cost_scale"), 1.0)
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
    median_check = _bounded("traffic.spikes.magnitude.median")
    if not isinstance(value, dict):
        if _as_number(value) is None:
            low = BOUNDS["traffic.spikes.magnitude.median"].lower()
            sd_low = BOUNDS["traffic.spikes.magnitude.sd"].lower()
            problems.add(
                where,
                f"expected {{median: {low}, sd: {sd_low}}} or a number {low}, got {_show(value)}",
            )
            return None
        median = median_check(value, where, problems)
        return None if median is None else (median, default.magnitude_sd)
    m = _mapping(value, where, problems, MAGNITUDE_KEYS)
    if m is None:
        return None
    median = _get(m, "median", where, problems, median_check, default.magnitude_median)
    sd = _get(
        m, "sd", where, problems, _bounded("traffic.spikes.magnitude.sd"), default.magnitude_sd
    )
    return median, sd


def _spikes(tr: dict[str, Any], horizon: float | None, problems: _Problems) -> Spikes:
    where = "traffic.spikes"
    m = _section(tr, "spikes", "traffic", problems, SPIKES_KEYS)
    if m is None:
        return Spikes()
    default = Spikes()
    rate = _required(m, "rate", where, problems, _bounded(f"{where}.rate"), "spikes per day")
    magnitude = _get(
        m,
        "magnitude",
        where,
        problems,
        _magnitude,
        (default.magnitude_median, default.magnitude_sd),
    )
    before = len(problems.items)
    duration = _get(
        m, "duration", where, problems, _bounded(f"{where}.duration"), default.duration_s
    )
    duration_ok = len(problems.items) == before
    classes = _get(m, "classes", where, problems, _class_list, None)
    share = rate * duration / 86400.0 if rate is not None and duration_ok else 0.0
    if share > MAX_SPIKE_SHARE:
        given = "duration" in m
        what = f"{'' if given else 'the default '}duration {format_duration(duration)}"
        problems.add(
            where if given else f"{where}.rate",
            f"rate {rate:g} a day x {what} puts traffic in a spike {share:.3g} of the time on "
            f"average (at most {MAX_SPIKE_SHARE:g}: spikes that never end are volume): lower "
            f"{where}.rate or {'' if given else 'set '}{where}.duration",
        )
    if rate is not None and horizon is not None:
        per_trial = rate * horizon / 86400.0
        if per_trial > MAX_SPIKES_PER_TRIAL:
            problems.add(
                f"{where}.rate",
                f"{rate:g} spikes a day over {format_duration(horizon)} is about "
                f"{per_trial:.3g} spikes per trial; costsim holds at most "
                f"{MAX_SPIKES_PER_TRIAL} per trial (about 1 GiB for a chunk of trials): lower "
                f"{where}.rate or shorten the horizon",
            )
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
        at = _required(
            m, "at", where, problems, _bounded("traffic.events[].at"), "offset from the start"
        )
        duration = _required(
            m, "duration", where, problems, _bounded("traffic.events[].duration"), "a duration"
        )
        multiplier = _required(
            m,
            "multiplier",
            where,
            problems,
            _bounded("traffic.events[].multiplier"),
            "the traffic multiplier",
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
            tr,
            "hourly",
            where,
            problems,
            _profile("traffic.hourly", HOURS, "one per hour, from 00:00 UTC"),
            None,
        ),
        weekly=_get(
            tr,
            "weekly",
            where,
            problems,
            _profile("traffic.weekly", WEEKDAYS, "one per day, Monday first"),
            None,
        ),
        spikes=_spikes(tr, horizon, problems),
        events=_events(tr, horizon, problems),
    )


def _price(value: Any, where: str, problems: _Problems) -> Price | None:
    m = _mapping(value, where, problems, PRICE_KEYS)
    if m is None:
        return None
    values = {k: _get(m, k, where, problems, _bounded(f"price.{k}"), None) for k in PRICE_KEYS}
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

    def get(key: str, default: Any) -> Any:
        return _get(m, key, w, problems, _bounded(f"{w}.{key}"), default)

    return Reliability(
        error_rate=get("error_rate", None),
        load_exponent=get("load_exponent", d.load_exponent),
        max_attempts=get("max_attempts", None),
        billed_failures=_get(m, "billed_failures", w, problems, _boolean, d.billed_failures),
        cold_start_rate=get("cold_start_rate", None),
        cold_start_cost_ratio=get("cold_start_cost_ratio", None),
        spike_cold_share=get("spike_cold_share", d.spike_cold_share),
    )


def _limit(stat: str) -> _Check[BudgetLimit]:
    def check(value: Any, where: str, problems: _Problems) -> BudgetLimit | None:
        fail_check, warn_check = _bounded("budget.*.fail"), _bounded("budget.*.warn")
        if not isinstance(value, dict):
            if _as_number(value) is None:
                low, warn_low = BOUNDS["budget.*.fail"].lower(), BOUNDS["budget.*.warn"].lower()
                problems.add(
                    where,
                    f"expected a number {low} (the fail level) or {{fail: {low}, warn: {warn_low}}}"
                    f", got {_show(value)}",
                )
                return None
            fail = fail_check(value, where, problems)
            return None if fail is None else BudgetLimit(stat, fail)
        m = _mapping(value, where, problems, BUDGET_LIMIT_KEYS)
        if m is None:
            return None
        fail = _required(m, "fail", where, problems, fail_check, "the fail level in USD")
        warn = _get(m, "warn", where, problems, warn_check, None)
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
    amount = _required(
        m, "amount", where, problems, _bounded("budget.exceed[].amount"), "USD over the horizon"
    )
    prob = _required(
        m,
        "max_prob",
        where,
        problems,
        _bounded("budget.exceed[].max_prob"),
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
                f"expected a list of {{amount: {BOUNDS['budget.exceed[].amount'].lower()}, "
                f"max_prob: {BOUNDS['budget.exceed[].max_prob']}}}, got {_show(items)}",
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


def _num(key: str, description: str) -> dict[str, Any]:
    """The schema of the number at ``key`` of `BOUNDS`: its bounds, and its range in words."""
    bounds = BOUNDS[key]
    kind = "integer" if bounds.kind == "integer" else "number"
    return {"type": kind, "description": f"{description} Allowed: {bounds}.", **bounds.schema()}


def _dur(key: str, description: str) -> dict[str, Any]:
    """The schema of the duration at ``key`` of `BOUNDS`: a number of seconds within its bounds,
    or a string (whose bounds only the parser checks)."""
    bounds = BOUNDS[key]
    return {
        "description": f"{description} A duration {_DURATION_HINT}; combinations such as 1h30m. "
        f"Allowed: {bounds} (as a number: seconds).",
        "anyOf": [
            {"type": "number", **bounds.schema()},
            {"type": "string", "pattern": DURATION_PATTERN},
        ],
    }


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the scenario format, for editors.

    It describes what `parse_scenario` accepts, with the bounds of every number from `BOUNDS`;
    the checks that span several keys (the resolution dividing the horizon, absolute mix shares
    summing to 1, an event ending within the horizon, warn below fail, the total volume with
    growth, spikes per trial and their share of time) and the bounds of durations written as
    strings are made by `parse_scenario` only.
    """
    ref = "#/$defs/"
    price = _obj(
        "Token prices in USD. A class with a price is re-priced from its tokens; missing fields "
        "fall back to pricing.default.",
        {
            "input_per_mtok": _num("price.input_per_mtok", "USD per million input tokens."),
            "output_per_mtok": _num("price.output_per_mtok", "USD per million output tokens."),
            "cached_per_mtok": _num(
                "price.cached_per_mtok", "USD per million cached input tokens."
            ),
            "per_request": _num("price.per_request", "USD per request."),
        },
    )
    budget_limit = {
        "description": "A budget on this statistic of the cost over the horizon (USD): the fail "
        "level, or {fail, warn} with warn < fail.",
        "oneOf": [
            _num("budget.*.fail", "Fail level (USD)."),
            _obj(
                "Fail and warn levels (USD).",
                {
                    "fail": _num("budget.*.fail", "Fail level (USD)."),
                    "warn": _num("budget.*.warn", "Warn level (USD), below fail."),
                },
                required=["fail"],
            ),
        ],
    }
    defs: dict[str, Any] = {
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
        "Production volume: exactly one of requests, per_hour or per_day; with growth, at most "
        f"{MAX_REQUESTS:.0e} requests over the horizon.",
        {
            "requests": _num("volume.requests", "Requests over the whole horizon."),
            "per_hour": _num(
                "volume.per_hour", "Requests per hour at the start (growth compounds on top)."
            ),
            "per_day": _num(
                "volume.per_day", "Requests per day at the start (growth compounds on top)."
            ),
            "growth": _num(
                "volume.growth",
                "Relative growth per 30 days, compounding (0.1 = +10% a month). Default 0.",
            ),
            "uncertainty": _num(
                "volume.uncertainty",
                "Standard deviation of the log of the volume, drawn per trial. Default 0.",
            ),
        },
        oneOf=[{"required": [k]} for k in _VOLUME_AMOUNTS],
    )
    spikes = _obj(
        f"Random traffic spikes. rate x duration (the expected share of time in a spike) is at "
        f"most {MAX_SPIKE_SHARE:g} day a day, and rate x horizon (spikes per trial) at most "
        f"{MAX_SPIKES_PER_TRIAL}.",
        {
            "rate": _num("traffic.spikes.rate", "Expected spikes per day."),
            "magnitude": {
                "description": "Traffic multiplier of a spike (lognormal): its median, or "
                "{median, sd} with sd the standard deviation of its log (default 0.5).",
                "oneOf": [
                    _num("traffic.spikes.magnitude.median", "Median multiplier."),
                    _obj(
                        "Lognormal multiplier.",
                        {
                            "median": _num("traffic.spikes.magnitude.median", "Median multiplier."),
                            "sd": _num(
                                "traffic.spikes.magnitude.sd",
                                "Standard deviation of the log multiplier.",
                            ),
                        },
                    ),
                ],
            },
            "duration": _dur("traffic.spikes.duration", "How long a spike lasts. Default 1h."),
            "classes": {"$ref": ref + "classes"},
        },
        required=["rate"],
    )
    event = _obj(
        "A scheduled event such as a launch; it ends within the horizon.",
        {
            "name": {"type": "string", "minLength": 1, "description": "Label for reports."},
            "at": _dur("traffic.events[].at", "Start, from the horizon's start."),
            "duration": _dur("traffic.events[].duration", "How long it lasts."),
            "multiplier": _num("traffic.events[].multiplier", "Traffic multiplier while it lasts."),
            "classes": {"$ref": ref + "classes"},
        },
        required=["name", "at", "duration", "multiplier"],
    )

    def profile(key: str, n: int, what: str) -> dict[str, Any]:
        return {
            "type": "array",
            "description": f"{n} relative values ({what}), not all zero.",
            "items": _num(f"{key}[]", "A relative value."),
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
            "hourly": profile("traffic.hourly", HOURS, "one per hour of the day, from 00:00 UTC"),
            "weekly": profile("traffic.weekly", WEEKDAYS, "one per day of the week, Monday first"),
            "spikes": spikes,
            "events": {"type": "array", "items": event, "description": "Scheduled events."},
        },
    )
    reliability = _obj(
        "How production's reliability differs from the pilot's (omitted = the pilot's).",
        {
            "error_rate": _num("reliability.error_rate", "Per-attempt failure probability."),
            "load_exponent": _num(
                "reliability.load_exponent",
                "Failures scale with (load / mean load) ** load_exponent. Default 0.",
            ),
            "max_attempts": _num(
                "reliability.max_attempts", "Attempts per request including the first."
            ),
            "billed_failures": {
                "type": "boolean",
                "description": "Whether failed attempts are billed. Default true.",
            },
            "cold_start_rate": _num(
                "reliability.cold_start_rate", "Share of requests served cold."
            ),
            "cold_start_cost_ratio": _num(
                "reliability.cold_start_cost_ratio", "Cost of a cold request / a warm one."
            ),
            "spike_cold_share": _num(
                "reliability.spike_cold_share",
                "Share of the extra requests of a sudden rise served cold. Default 0.",
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
                        "amount": _num("budget.exceed[].amount", "USD over the horizon."),
                        "max_prob": _num(
                            "budget.exceed[].max_prob", "Largest allowed probability."
                        ),
                    },
                    required=["amount", "max_prob"],
                ),
            },
        },
    )
    first, last = START_YEARS
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
        "horizon": _dur("horizon", "How far ahead to forecast."),
        "resolution": _dur(
            "resolution",
            f"Time bucket of the simulation, dividing the horizon into at most {MAX_BUCKETS} "
            "buckets. Default 1h.",
        ),
        "start": {
            "type": "string",
            "anyOf": [{"format": "date-time"}, {"format": "date"}],
            # the years START_YEARS, as a pattern on the leading year
            "pattern": r"^\s*(19[7-9][0-9]|2[01][0-9][0-9])-",
            "description": "ISO date-time of the horizon's start (UTC unless a zone is given), "
            f"in the years {first} to {last}. Default: a Monday 00:00 UTC.",
        },
        "volume": volume,
        "mix": {
            "type": "object",
            "description": "Production share of each class; omitted = the pilot's mix. Absolute "
            "shares sum to 1 (unlisted classes get 0); with mix_relative, the largest weight is "
            f"at least {MIN_MIX_WEIGHT:g}.",
            "additionalProperties": _num("mix.*", "The class's share (or weight)."),
            "minProperties": 1,
        },
        "mix_relative": {
            "type": "boolean",
            "description": "Mix values multiply the pilot shares (renormalised). Default false.",
        },
        "mix_concentration": _num(
            "mix_concentration", "Dirichlet concentration of the per-trial mix (larger = surer)."
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
                        "new_classes.*.cost_scale",
                        "Per-request cost relative to that class. Default 1.",
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
        "trials": _num("trials", f"Monte Carlo trials. Default {DEFAULT_TRIALS}."),
        "seed": _num("seed", "Random seed. Default 0."),
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
