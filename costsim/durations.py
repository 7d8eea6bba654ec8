"""Durations as scenarios and options (``--drift-window``) write them: ``30d``, ``12h``, ``15m``,
``90s``, ``2w`` (long unit names such as ``2 weeks`` too), combinations such as ``1h30m``, or a
number of seconds. Outside the scenario package, so that ``costsim fit`` reads its option
without importing the scenario's declarations (0.16 s)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic.json_schema import JsonSchemaValue

from .formats import _ALLOWED, Num, problems_error, show

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
_HINT = "such as 30d, 12h, 15m, 90s or 2w (or a number of seconds)"


def seconds_in(value: Any) -> float | None:
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


def _problem(value: Any, bound: str) -> str:
    hint = ""
    if isinstance(value, str) and _MONTHS.search(value):
        hint = " (months differ in length: write days, e.g. 30d)"
    return f"expected a duration {bound} {_HINT}, got {show(value)}{hint}"


def parse_duration(text: str | float) -> float:
    """Seconds in a duration: ``30d``, ``12h``, ``15m``, ``90s``, ``2w`` (long unit names such
    as ``2 weeks`` too), a combination such as ``1h30m``, or a number of seconds. Raises
    `ValueError` (with a message naming the allowed forms) unless it is finite and > 0."""
    seconds = seconds_in(text)
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(_problem(text, "> 0"))
    return seconds


def format_duration(seconds: float) -> str:
    """A short duration string that `parse_duration` reads back: ``30d``, ``1h``, ``90s``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and float(seconds) % size == 0:
            return f"{round(seconds / size)}{unit}"
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{Decimal(repr(float(seconds))):f}s"  # positional: no exponent


@dataclass(frozen=True)
class Duration(Num):
    """A duration within bounds (in seconds), read as seconds; its bounds are written as
    durations (``in [1m, 3650d]``)."""

    cap: bool = True

    def text(self, x: float) -> str:
        return format_duration(x) if x > 0 else f"{x:g}"

    def __call__(self, value: Any) -> float:
        seconds = seconds_in(value)
        if seconds is None or self.parse(seconds) is None:
            finite = seconds if seconds is not None and math.isfinite(seconds) else None
            raise problems_error([("", _problem(value, self.broken(finite)))])
        return seconds

    def json_schema(self) -> JsonSchemaValue:
        return {
            "anyOf": [
                {"type": "number", **self.bounds()},
                {"type": "string", "pattern": DURATION_PATTERN},
            ],
            _ALLOWED: f"{self.range()} (as a number: seconds; as text, a duration such as 30d, "
            "12h, 15m, 90s, 2w or 1h30m)",
        }
