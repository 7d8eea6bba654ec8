"""Converters: one arrow array in, a numpy array and the problems found out (numbers,
counts, statuses, flags, class codes, timestamps).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .plan import _kind_of
from .table import (
    _EPOCH_UNITS,
    _ERROR_WORDS,
    _FALSE_WORDS,
    _MAX_EXAMPLES,
    _NUMBER_PATTERN,
    _OK_WORDS,
    _TIME_UNITS,
    _TRUE_WORDS,
    MAX_VALUE,
)

# (reason, mask of offending rows, a few offending values for the message)
_Problem = tuple[str, np.ndarray, list[str]]


def _null_mask(arr: pa.Array) -> np.ndarray | None:
    if arr.null_count == 0:
        return None
    return np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def _examples(arr: pa.Array, mask: np.ndarray) -> list[str]:
    picked = arr.filter(pa.array(mask)).slice(0, 50).to_pylist()
    return [repr(v) for v in dict.fromkeys(picked)][:_MAX_EXAMPLES]


def _is_stringlike(t: pa.DataType) -> bool:
    return _kind_of(t) == "string"


def _to_numbers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray | None, list[_Problem]]:
    """Numeric values (integers stay integers unless nulls make them float, NaN where
    missing), the missing mask, and 'not a number' problems."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    n = len(arr)
    if pa.types.is_null(t):
        return np.full(n, np.nan), np.ones(n, dtype=bool), []
    if _is_stringlike(t):
        return _parse_numbers(arr)
    if pa.types.is_decimal(t):
        arr = pc.cast(arr, pa.float64())
    return np.asarray(arr.to_numpy(zero_copy_only=False)), _null_mask(arr), []


def _parse_numbers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray | None, list[_Problem]]:
    try:  # fast path: every present value is a plain number
        parsed = pc.cast(arr, pa.float64())
        values = np.asarray(parsed.to_numpy(zero_copy_only=False), dtype=np.float64)
        return values, _null_mask(parsed), []
    except pa.ArrowInvalid:
        pass
    text = pc.utf8_trim_whitespace(arr)
    missing = np.asarray(
        pc.fill_null(pc.equal(pc.binary_length(text), 0), True).to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    good = pc.fill_null(pc.match_substring_regex(text, _NUMBER_PATTERN), False)
    parsed = pc.cast(pc.if_else(good, text, pa.scalar(None, text.type)), pa.float64())
    values = np.asarray(parsed.to_numpy(zero_copy_only=False), dtype=np.float64)
    bad = ~missing & ~np.asarray(good.to_numpy(zero_copy_only=False), dtype=bool)
    problems: list[_Problem] = []
    if bad.any():
        problems.append(("not a number", bad, _examples(text, bad)))
    return values, (missing if missing.any() else None), problems


def _check_range(
    values: np.ndarray,
    missing: np.ndarray | None,
    earlier: list[_Problem],
    *,
    allow_negative: bool = False,
    largest: float | None = MAX_VALUE,
) -> list[_Problem]:
    """``earlier`` problems plus those of a numeric column: missing, NaN, infinite, negative,
    and (with ``largest``) magnitudes beyond it, which would overflow the fit's arithmetic.

    Values that are NaN because they are missing or already reported (e.g. not a number) are
    not reported again as NaN.
    """
    problems = list(earlier)
    if missing is not None:
        problems.append(("missing", missing, []))
    lo, hi = values.min(), values.max()
    bound = np.inf if largest is None else largest
    if (allow_negative or lo >= 0) and -bound <= lo and hi <= bound:
        return problems  # no NaN either: min/max would be NaN
    nan = np.isnan(values)
    if missing is not None:
        nan &= ~missing
    for _, mask, _ in earlier:
        nan &= ~mask
    inf = np.isinf(values)
    if nan.any():
        problems.append(("NaN", nan, []))
    if inf.any():
        problems.append(("infinite", inf, []))
    if not allow_negative:
        negative = (values < 0) & ~inf
        if negative.any():
            problems.append(("negative", negative, []))
    if largest is not None:
        with np.errstate(invalid="ignore"):
            huge = (np.abs(values) > largest) & ~inf
        if huge.any():
            problems.append(
                (f"too large (above {largest:g})", huge, [_fmt_number(values[huge][0])])
            )
    return problems


def _fmt_number(x: float) -> str:
    return f"{x:g}"


def _convert_number(arr: pa.Array) -> tuple[np.ndarray, list[_Problem]]:
    values, missing, problems = _to_numbers(arr)
    return values, _check_range(values, missing, problems)


def _convert_count(arr: pa.Array) -> tuple[np.ndarray, list[_Problem]]:
    values, problems = _convert_number(arr)
    if values.dtype.kind in "iu":
        return values.astype(np.int64, copy=False), problems
    with np.errstate(invalid="ignore"):
        fractional = np.isfinite(values) & (
            (np.floor(values) != values) | (np.abs(values) >= 2.0**62)
        )
    if fractional.any():
        problems.append(("not a whole number", fractional, [_fmt_number(values[fractional][0])]))
    bad = np.zeros(values.shape[0], dtype=bool)
    for _, mask, _ in problems:
        bad |= mask
    if bad.any():
        values = np.where(bad, 0.0, values)
    return values.astype(np.int64), problems


def _dictionary_parts(arr: pa.Array) -> tuple[list[object], np.ndarray, np.ndarray | None]:
    """Distinct values, the index of each row into them, and the null mask."""
    if not pa.types.is_dictionary(arr.type):
        if pa.types.is_null(arr.type):
            return [], np.zeros(len(arr), dtype=np.int32), np.ones(len(arr), dtype=bool)
        if not _is_stringlike(arr.type):
            arr = pc.cast(arr, pa.string())
        arr = pc.dictionary_encode(arr)
    indices = arr.indices
    nulls = _null_mask(indices)
    if nulls is not None:
        indices = pc.fill_null(indices, 0)
    labels = arr.dictionary.to_pylist()
    return labels, np.asarray(indices.to_numpy(zero_copy_only=False)), nulls


def _lookup(
    arr: pa.Array, mapping: Callable[[object], int], missing_code: int
) -> tuple[np.ndarray, list[str]]:
    """Map each distinct value through ``mapping``; return per-row codes and unknown values."""
    labels, idx, nulls = _dictionary_parts(arr)
    lut = np.array([mapping(v) for v in labels] or [missing_code], dtype=np.int32)
    codes = lut[idx]
    if nulls is not None:
        codes[nulls] = missing_code
    unknown = [repr(v) for v, code in zip(labels, lut, strict=False) if code == _UNKNOWN]
    return codes, unknown[:_MAX_EXAMPLES]


def _word(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip().lower()
    return text or None


_MISSING, _UNKNOWN = -2, -1


def _words(
    arr: pa.Array, true: frozenset[str], false: frozenset[str], reason: str
) -> tuple[np.ndarray, list[_Problem]]:
    """A column of words: True where a word is in ``true``, False in ``false``; any other word
    is a problem (``reason``), a null is missing."""

    def mapping(value: object) -> int:
        word = _word(value)
        if word is None:
            return _MISSING
        return 1 if word in true else 0 if word in false else _UNKNOWN

    codes, unknown = _lookup(arr, mapping, _MISSING)
    return codes == 1, _code_problems(codes, unknown, reason)


def _convert_status(arr: pa.Array) -> tuple[np.ndarray, list[_Problem]]:
    """True where a request failed."""
    return _words(arr, _ERROR_WORDS, _OK_WORDS, "not ok/error")


def _convert_flag(arr: pa.Array) -> tuple[np.ndarray, list[_Problem]]:
    t = arr.type
    if pa.types.is_boolean(t):
        missing = _null_mask(arr)
        values = np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)
        return values, [("missing", missing, [])] if missing is not None else []
    if _kind_of(t) == "number":
        numbers, missing, _ = _to_numbers(arr)
        bad = (numbers != 0) & (numbers != 1)
        if missing is not None:
            bad &= ~missing
        problems: list[_Problem] = [("missing", missing, [])] if missing is not None else []
        if bad.any():
            problems.append(("not a boolean", bad, [_fmt_number(numbers[bad][0])]))
        return numbers == 1, problems
    return _words(arr, _TRUE_WORDS, _FALSE_WORDS, "not a boolean")


def _code_problems(codes: np.ndarray, unknown_values: list[str], reason: str) -> list[_Problem]:
    problems: list[_Problem] = []
    if codes.min() >= 0:
        return problems
    missing = codes == _MISSING
    if missing.any():
        problems.append(("missing", missing, []))
    unknown = codes == _UNKNOWN
    if unknown.any():
        problems.append((reason, unknown, unknown_values))
    return problems


class _ClassCodes:
    """Provisional class codes, stable across batches; sorted once all rows are read."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}

    def convert(self, arr: pa.Array) -> tuple[np.ndarray, list[_Problem]]:
        def mapping(value: object) -> int:
            if value is None:
                return _MISSING
            label = str(value)
            if not label.strip():
                return _MISSING
            return self.codes.setdefault(label, len(self.codes))

        codes, _ = _lookup(arr, mapping, _MISSING)
        empty = codes < 0
        return codes, [("empty", empty, [])] if empty.any() else []

    def labels(self) -> list[str]:
        """The labels seen so far, by code."""
        return list(self.codes)  # dicts keep insertion order: label of code i is the i-th


_YEAR_2000 = 946_684_800.0  # 2000-01-01T00:00:00Z in seconds since the epoch


class Timestamps:
    """Arrival times to epoch seconds.

    Numbers are epoch seconds, or milliseconds, microseconds or nanoseconds since the epoch when
    their magnitude says so (at least 1e11, 1e14, 1e17: a number of seconds that large would lie
    thousands of years ahead). The unit is read from each value, so the result does not depend
    on how the log is cut into batches, files or workers.
    """

    def __init__(self) -> None:
        self.naive = False
        self.units: dict[str, int] = {}  # unit name -> rows converted from it
        self.early = 0  # numbers that fall before 2000 once read as times: not times, likely
        self.string_target: pa.DataType | None = None  # the cast that parsed the last strings

    def convert(self, arr: pa.Array) -> tuple[np.ndarray, list[_Problem]]:
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        t = arr.type
        problems: list[_Problem] = []
        if pa.types.is_timestamp(t) or pa.types.is_date(t):
            seconds, missing = self._from_temporal(arr)
        elif _is_stringlike(t):
            seconds, missing, problems = self._from_strings(arr)
        else:
            seconds, missing, problems = _to_numbers(arr)
            seconds = self._scale(seconds)
        return seconds, _check_range(seconds, missing, problems, allow_negative=True, largest=None)

    def _scale(self, values: np.ndarray) -> np.ndarray:
        """Numbers since the epoch in seconds, each by its magnitude (those before 2000
        counted)."""
        seconds = self._scaled(np.asarray(values, dtype=np.float64))
        with np.errstate(invalid="ignore"):
            self.early += int(np.count_nonzero(seconds < _YEAR_2000))
        return seconds

    def _scaled(self, values: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            magnitude = np.abs(values)
            if not np.nanmax(magnitude, initial=0.0) >= _EPOCH_UNITS[-1][0]:
                return values
            divisor = np.ones(values.shape[0])
            for threshold, unit, factor in _EPOCH_UNITS:
                at = (magnitude >= threshold) & (divisor == 1.0) & np.isfinite(magnitude)
                count = int(np.count_nonzero(at))
                if count:
                    divisor[at] = factor
                    self.units[unit] = self.units.get(unit, 0) + count
        return values / divisor

    def merge(self, other: Timestamps) -> None:
        self.naive = self.naive or other.naive
        self.early += other.early
        for unit, count in other.units.items():
            self.units[unit] = self.units.get(unit, 0) + count

    def notes(self, column: str) -> list[str]:
        notes: list[str] = []
        if self.naive:
            notes.append(f"{column}: no time zone given; read as UTC")
        for _, unit, _ in reversed(_EPOCH_UNITS):
            if unit in self.units:
                notes.append(
                    f"{column}: numbers look like {unit} since the epoch; converted to seconds"
                )
        if self.early:
            notes.append(
                f"{column}: {self.early:,} of its numbers fall before 2000 when read as times "
                "since 1970: is it the arrival-time column (--timestamp-col)?"
            )
        return notes

    def _from_temporal(self, arr: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
        t = arr.type
        if pa.types.is_timestamp(t):
            scale = _TIME_UNITS[t.unit]
            self.naive = self.naive or t.tz is None
            raw = arr.view(pa.int64())
        elif pa.types.is_date32(t):
            scale = 1.0 / 86400.0
            raw = arr.view(pa.int32())
        else:  # date64: milliseconds
            scale = 1e3
            raw = arr.view(pa.int64())
        seconds = np.asarray(raw.to_numpy(zero_copy_only=False))
        if scale != 1.0:
            seconds = seconds / scale
        return seconds, _null_mask(arr)

    def _from_strings(self, arr: pa.Array) -> tuple[np.ndarray, np.ndarray | None, list[_Problem]]:
        # A failed cast costs as much as a successful one: try first what worked last time.
        targets = [pa.float64(), pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")]
        if self.string_target is not None:
            targets.remove(self.string_target)
            targets.insert(0, self.string_target)
        for target in targets:
            try:
                parsed = pc.cast(arr, target)
            except pa.ArrowInvalid:
                continue
            self.string_target = target
            if target == pa.float64():
                values = np.asarray(parsed.to_numpy(zero_copy_only=False), dtype=np.float64)
                return self._scale(values), _null_mask(parsed), []
            seconds, missing = self._from_temporal(parsed)
            return seconds, missing, []
        return self._from_mixed_strings(arr)

    def _from_mixed_strings(
        self, arr: pa.Array
    ) -> tuple[np.ndarray, np.ndarray | None, list[_Problem]]:
        # Mixed ISO 8601 forms (offsets on some rows, not others): parse value by value.
        import pandas as pd  # only on this slow path

        text = pc.utf8_trim_whitespace(arr)
        missing = np.asarray(
            pc.fill_null(pc.equal(pc.binary_length(text), 0), True).to_numpy(zero_copy_only=False),
            dtype=bool,
        )
        strings = np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)
        strings[missing] = None
        parsed = pd.to_datetime(
            pd.Series(strings, dtype=object), utc=True, format="ISO8601", errors="coerce"
        )
        nat = np.asarray(parsed.isna().to_numpy(), dtype=bool)
        ns = parsed.to_numpy(dtype="datetime64[ns]").view(np.int64)
        seconds = ns.astype(np.float64) / 1e9
        seconds[nat] = np.nan
        bad = nat & ~missing
        zoned = pc.match_substring_regex(
            text, r"\d:\d\d(?::\d\d(?:[.,]\d+)?)?\s*(?:[zZ]|[+-]\d\d(?::?\d\d)?)$"
        )
        naive = ~np.asarray(pc.fill_null(zoned, False).to_numpy(zero_copy_only=False), dtype=bool)
        self.naive = self.naive or bool((naive & ~nat).any())
        problems: list[_Problem] = []
        if bad.any():
            problems.append(("not an ISO 8601 date/time", bad, _examples(text, bad)))
        return seconds, (missing if missing.any() else None), problems
