"""The drift's floor: unit costs far below a class's median, summed apart (`floors_to_sum`,
`add_below_floor`)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .classes import ClassSummary, Windows
from .exact import LOGS, SQUARES
from .log import LogSummary, Rows
from .spec import SummarySpec, unit_measure

FLOOR_FRACTION = 1e-3  # unit costs below this fraction of the median are floored (log of 0)


def drift_floor(c: ClassSummary, spec: SummarySpec) -> float | None:
    """A thousandth of the class's median positive unit cost (of its sample: exact while the
    class fits it); None without a positive unit cost."""
    c._gather()
    if c.data is None:
        return None
    column = spec.fields.index("cost_usd" if "cost_usd" in spec.fields else "unit")
    units = c.data[:, column]
    positive = units[units > 0]
    if positive.size == 0:
        low, _, _ = c.smallest_units()
        if low.size == 0:
            return None
        positive = low
    return FLOOR_FRACTION * float(np.median(positive))


def floors_to_sum(summary: LogSummary) -> dict[str, float]:
    """The classes whose positive unit costs below the floor are not all among the smallest
    kept (more than `LOW_ROWS` of them), with their floors: their rows are read again
    (`floor_sums`). Rare: a class with that many costs a thousand times below its median."""
    out: dict[str, float] = {}
    for label, c in summary.classes.items():
        low, _, more = c.smallest_units()
        floor = drift_floor(c, summary.spec)
        if more and floor is not None and floor > float(low.max()):
            out[label] = floor
    return out


def add_below_floor(
    acc: dict[str, Windows], rows: Rows, base_s: float, floors: Mapping[str, float]
) -> None:
    """Per (class, window): the rows with a positive unit cost below the class's floor, and
    exact sums of their y and y^2 (a `Windows`, ``npos`` unused)."""
    unit = unit_measure(rows.values)
    if unit is None or rows.codes.size == 0:
        return
    lut = np.array([floors.get(label, 0.0) for label in rows.labels])
    below = (unit > 0) & (unit < lut[rows.codes])
    if not below.any():
        return
    t = rows.values.get("timestamp")
    wid = np.zeros(rows.codes.size, dtype=np.int64) if t is None else (t // base_s).astype(np.int64)
    codes, wid, y = rows.codes[below], wid[below], np.log(unit[below])
    for code in np.unique(codes):
        mine = codes == code
        ids, inverse, n = np.unique(wid[mine], return_inverse=True, return_counts=True)
        ym = y[mine]
        windows = acc.setdefault(rows.labels[int(code)], Windows())
        windows.add(
            ids,
            n,
            np.zeros(ids.size, dtype=np.int64),
            LOGS.sums(ym, inverse, ids.size, nonnegative=False),
            SQUARES.sums(ym * ym, inverse, ids.size),
        )


def merge_below_floor(total: dict[str, Windows], part: dict[str, Windows]) -> None:
    for label, windows in part.items():
        total.setdefault(label, Windows()).merge(windows)
