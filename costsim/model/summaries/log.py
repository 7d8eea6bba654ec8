"""The summary of a log (`LogSummary`), and how rows are added to it (`summarize`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ...errors import FitError
from . import limits
from .classes import ClassSummary
from .exact import LOGS, SQUARES, VALUES, normalise
from .spec import (
    HIST_BINS,
    HIST_LOW,
    HIST_PER_OCTAVE,
    RETRY_BINS,
    SummarySpec,
    priorities,
    quantity_arrays,
    sample_rows_for,
    unit_measure,
)


@dataclass
class LogSummary:
    """The summary of a log, or of a part of it (see `costsim.model.summaries`)."""

    spec: SummarySpec
    classes: dict[str, ClassSummary] = field(default_factory=dict)
    rows_read: int = 0  # rows read, invalid ones included
    t_min: float = math.inf
    t_max: float = -math.inf
    weekdays: np.ndarray = field(default_factory=lambda: np.zeros(7, dtype=np.int64))
    conc_top: np.ndarray = field(default_factory=lambda: np.zeros(0))
    conc_floor: float = -math.inf  # costs <= this cannot enter conc_top
    conc_count: np.ndarray = field(default_factory=lambda: np.zeros(HIST_BINS, dtype=np.int64))
    ceilings: Mapping[str, int] = field(default_factory=dict)  # of new classes' samples

    @property
    def n(self) -> int:
        return sum(c.n for c in self.classes.values())

    @property
    def sample_rows(self) -> int:
        return sample_rows_for(len(self.classes), self.spec.sample_rows)

    def merge(self, other: LogSummary) -> None:
        """Add a summary of other rows of the same log (any order gives the same result)."""
        for label in other.classes:
            if label not in self.classes:
                self.classes[label] = ClassSummary()
        if len(self.classes) > limits.MAX_CLASSES:
            raise FitError(too_many_classes(len(self.classes)))
        k = self.sample_rows
        for label, c in other.classes.items():
            self.classes[label].merge(c, k)
        for c in self.classes.values():
            c.trim_sample(k)  # memory: the merged summary holds at most SAMPLE_BUDGET rows
        self.rows_read += other.rows_read
        self.t_min = min(self.t_min, other.t_min)
        self.t_max = max(self.t_max, other.t_max)
        self.weekdays += other.weekdays
        self.add_concentration_top(other.conc_top)
        self.conc_floor = max(self.conc_floor, other.conc_floor)
        self.conc_count += other.conc_count
        cells = sum(c.windows.ids.size for c in self.classes.values())
        if cells > limits.MAX_WINDOW_CELLS:
            raise FitError(
                f"drift: {cells:,} (class, window) cells of {self.spec.base_s:g} s hold "
                f"requests, more than {limits.MAX_WINDOW_CELLS:,}; pass a longer --drift-window "
                "(or check the timestamps)"
            )

    def finish(self) -> None:
        """Trim every class's buffers to what the fit reads (its sample to exactly
        `sample_rows`: `ClassSummary.trim`)."""
        k = self.sample_rows
        for c in self.classes.values():
            c.trim(k)

    def bounds(self) -> Bounds:
        """What this summary (of some rows) tells a summary of other rows: no row of a class
        with a priority at or above its ceiling can enter the merged sample, no cost at or
        below the floor the costliest kept. Items given them return less, the same result."""
        return Bounds(
            {
                label: c.prio_ceiling
                for label, c in self.classes.items()
                if c.prio_ceiling is not None
            },
            self.conc_floor,
        )

    def add_concentration_top(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        merged = np.concatenate([self.conc_top, values])
        if merged.size >= 2 * limits.CONCENTRATION_TOP:
            cut = merged.size - limits.CONCENTRATION_TOP
            merged = np.partition(merged, cut)[cut:]
            self.conc_floor = max(self.conc_floor, float(merged.min()))
        self.conc_top = merged

    def costliest(self) -> np.ndarray:
        """The `CONCENTRATION_TOP` largest costs (all when fewer), descending."""
        top = self.conc_top
        if top.size > limits.CONCENTRATION_TOP:
            cut = top.size - limits.CONCENTRATION_TOP
            top = np.partition(top, cut)[cut:]
        return np.sort(top)[::-1]


@dataclass(frozen=True)
class Bounds:
    """See `LogSummary.bounds`."""

    ceilings: Mapping[str, int] = field(default_factory=dict)
    conc_floor: float = -math.inf

    def summary(self, spec: SummarySpec) -> LogSummary:
        """An empty summary that starts from these bounds."""
        return LogSummary(spec, ceilings=self.ceilings, conc_floor=self.conc_floor)


def too_many_classes(n: int) -> str:
    return (
        f"the log has more than {limits.MAX_CLASSES:,} query classes ({n:,} so far); costsim "
        "fits each class on its own: is the class column the right one? (choose it with "
        "--class-col)"
    )


@dataclass
class Rows:
    """Valid rows to summarise: class codes indexing ``labels``, each row's 0-based position
    in the log, and PilotLog fields (``cost``, ``timestamp``, ``error``, ``retries`` ...)."""

    labels: Sequence[str]
    codes: np.ndarray
    positions: np.ndarray
    values: Mapping[str, np.ndarray | None]


def summarize(summary: LogSummary, rows: Rows) -> None:
    """Add ``rows`` (a chunk of at most 2^21) to ``summary``.

    The rows are put in class order once (a stable radix sort), so that every per-class
    figure is a sum over a contiguous slice (``np.add.reduceat``: fast, and free of the GIL
    for the threads of `costsim.parallel`)."""
    spec = summary.spec
    m = rows.codes.shape[0]
    if m == 0:
        return
    if m > 1 << 21:
        raise ValueError(f"rows: at most 2^21 a chunk, got {m}")
    counts = np.bincount(rows.codes, minlength=len(rows.labels))
    present = np.flatnonzero(counts)
    c_n = present.size
    sizes = counts[present]
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    starts = bounds[:-1]
    if c_n == 1:
        order = None
    else:
        lut = np.zeros(len(rows.labels), dtype=np.int16)
        lut[present] = np.arange(c_n, dtype=np.int16)
        order = np.argsort(lut[rows.codes], kind="stable")

    def gather(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None or order is None else np.asarray(a)[order]

    values = {k: (v if order is None else gather(v)) for k, v in rows.values.items()}
    positions = np.asarray(rows.positions, dtype=np.int64)
    if order is not None:
        positions = positions[order]
    classes = []
    for code in present:
        label = rows.labels[int(code)]
        if label not in summary.classes:
            summary.classes[label] = ClassSummary(prio_ceiling=summary.ceilings.get(label))
            if len(summary.classes) > limits.MAX_CLASSES:
                raise FitError(too_many_classes(len(summary.classes)))
        classes.append(summary.classes[label])
    for c, size in zip(classes, sizes, strict=True):
        c.n += int(size)
    slices = [(i, int(bounds[i]), int(bounds[i + 1])) for i in range(c_n)]

    qs = quantity_arrays(values)
    unit = unit_measure(values)

    def add_sums(key: str, x: np.ndarray) -> None:
        acc = VALUES.reduce(x, starts)
        for i, c in enumerate(classes):
            c.add_sum(key, acc[:, i])

    def per_class(flags: np.ndarray) -> np.ndarray:
        return np.add.reduceat(flags.view(np.int8), starts, dtype=np.int64)

    # sums and counts
    for q in spec.quantities:
        add_sums(q, qs[q])
    retries = values.get("retries")
    cost = values.get("cost")
    if retries is not None:
        r = np.asarray(retries, dtype=np.float64)
        add_sums("retries", r)
        if cost is not None:
            add_sums("retry_cost", cost * r / (1.0 + r))
        slot = np.repeat(np.arange(c_n), sizes)
        binned = np.bincount(
            slot * RETRY_BINS + np.minimum(retries, RETRY_BINS - 1), minlength=c_n * RETRY_BINS
        ).reshape(c_n, RETRY_BINS)
        for i, c in enumerate(classes):
            c.retries += binned[i]
    cold = values.get("cold_start")
    if cold is not None:
        n_cold = per_class(cold)
        for i, c in enumerate(classes):
            c.cold += int(n_cold[i])
        if cost is not None:
            add_sums("cold_cost", np.where(cold, cost, 0.0))
    error = values.get("error")
    if error is not None:
        n_err = per_class(error)
        for i, c in enumerate(classes):
            c.errors += int(n_err[i])

    # tails: the top values, every row at the largest counted
    for q in spec.quantities:
        x = qs[q]
        for i, a, b in slices:
            c = classes[i]
            part = x[a:b]
            floor = c.top_floor.get(q)
            # when the floor has reached the largest value, rows at it no longer enter: count
            full = c.saturated(q)
            c.add_top(q, part if floor is None else part[part > floor])
            if full is not None:
                extra = int(np.count_nonzero(part == full))
                if extra:
                    c._count_max(q, full, extra)

    # the sample
    k = spec.sample_rows
    prio = priorities(positions, spec.key)
    columns = []
    for f in spec.fields:
        if f == "unit":
            assert unit is not None
            columns.append(unit)
        elif f == "cold":
            columns.append(np.asarray(values["cold_start"]).astype(np.float64))
        else:
            columns.append(qs[f])
    for i, a, b in slices:
        c = classes[i]
        if c.prio_ceiling is None:
            idx: slice | np.ndarray = slice(a, b)
        else:
            idx = np.flatnonzero(prio[a:b] < np.uint64(c.prio_ceiling)) + a
        data = np.column_stack([col[idx] for col in columns])
        if data.shape[0]:
            c.add_sample(prio[idx], positions[idx], data, k)

    # time: drift windows, hours of day, days of week
    t = values.get("timestamp")
    hour: np.ndarray | None = None
    if t is not None:
        t = np.asarray(t, dtype=np.float64)
        summary.t_min = min(summary.t_min, float(t.min()))
        summary.t_max = max(summary.t_max, float(t.max()))
        hour = np.floor(t / 3600.0).astype(np.int64)
        slot = np.repeat(np.arange(c_n), sizes)
        by_hour = np.bincount(slot * 24 + hour % 24, minlength=c_n * 24).reshape(c_n, 24)
        for i, c in enumerate(classes):
            c.hours += by_hour[i]
        # epoch 0 was a Thursday: shifted so that bin 0 is Monday
        summary.weekdays += np.bincount((hour + 72) // 24 % 7, minlength=7)
    if unit is not None:
        if t is None or not spec.has_time:
            wid = np.zeros(m, dtype=np.int64)
        elif spec.base_s == 3600.0 and hour is not None:
            wid = hour
        else:
            wid = np.floor(t / spec.base_s).astype(np.int64)
        positive = unit > 0
        for i, a, b in slices:
            c = classes[i]
            part = unit[a:b]
            low = np.flatnonzero((part < c.low_ceiling) & positive[a:b])
            if low.size:
                c.add_low(part[low], wid[a:b][low])
        _add_windows(classes, sizes, wid, unit, positive)

    # concentration
    if cost is not None:
        summary.add_concentration_top(cost[cost > summary.conc_floor])
        summary.conc_count += np.bincount(cost_bins(cost), minlength=HIST_BINS)


def cost_bins(cost: np.ndarray) -> np.ndarray:
    """Histogram bin of each cost: 0 for 0, 1 below 2^HIST_LOW, then 1/128 octaves."""
    with np.errstate(divide="ignore"):
        octave = np.floor(np.log2(cost) * HIST_PER_OCTAVE)
    b = np.clip(octave - HIST_LOW * HIST_PER_OCTAVE, -1, HIST_BINS - 3) + 2
    return np.where(cost > 0, b, 0).astype(np.int64)


def bin_centres() -> np.ndarray:
    """The cost each histogram bin stands for: its geometric centre (0 for the first two)."""
    b = np.arange(HIST_BINS - 2, dtype=np.float64)
    centre = np.exp2((b + 0.5) / HIST_PER_OCTAVE + HIST_LOW)
    return np.concatenate([[0.0, 0.0], centre])


def _add_windows(
    classes: list[ClassSummary],
    sizes: np.ndarray,
    wid: np.ndarray,
    unit: np.ndarray,
    positive: np.ndarray,
) -> None:
    """Per (class, window) cell of the chunk (rows in class order): rows, positive rows, exact
    sums of y = log(unit cost) and y^2 over the positive ones."""
    m = wid.size
    c_n = sizes.size
    slot = np.repeat(np.arange(c_n), sizes)
    w0 = int(wid.min())
    span = int(wid.max()) - w0 + 1
    key = slot * span + (wid - w0)
    y = np.zeros(m)
    np.log(unit, out=y, where=positive)
    change = np.flatnonzero(key[1:] != key[:-1]) + 1
    if change.size > m // 8:  # rows out of time order: sort them by cell
        order = np.argsort(key, kind="stable")
        key, y, positive = key[order], y[order], positive[order]
        change = np.flatnonzero(key[1:] != key[:-1]) + 1
    starts = np.concatenate([[0], change])
    run_key = key[starts]
    n = np.diff(np.concatenate([starts, [m]]))
    npos = np.add.reduceat(positive.view(np.int8), starts, dtype=np.int64)
    s1 = LOGS.reduce(y, starts, nonnegative=False)
    s2 = SQUARES.reduce(y * y, starts)
    cells, inverse = np.unique(run_key, return_inverse=True)
    if cells.size < run_key.size:  # a cell in several runs: add them up
        n = np.bincount(inverse, weights=n, minlength=cells.size).astype(np.int64)
        npos = np.bincount(inverse, weights=npos, minlength=cells.size).astype(np.int64)
        s1, s2 = _add_columns(s1, inverse, cells.size), _add_columns(s2, inverse, cells.size)
    slot_of = cells // span
    bounds = np.searchsorted(slot_of, np.arange(c_n + 1))
    for i in range(c_n):
        a, b = bounds[i], bounds[i + 1]
        if b > a:
            ids = cells[a:b] - slot_of[a:b] * span + w0
            classes[i].windows.add(ids, n[a:b], npos[a:b], s1[:, a:b], s2[:, a:b])


def _add_columns(acc: np.ndarray, inverse: np.ndarray, cells: int) -> np.ndarray:
    out = np.zeros((acc.shape[0], cells), dtype=np.int64)
    for j in range(acc.shape[0]):
        np.add.at(out[j], inverse, acc[j])
    return normalise(out)
