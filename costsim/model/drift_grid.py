"""A class's drift windows from a summary's per-base-window sums (`_DriftGrid`): every
window length the drift tries from one pass over the rows, and the drift shared between
classes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .drift import (
    MIN_PER_WINDOW,
    WINDOW_LADDER_S,
    DriftFit,
    DriftSeries,
    choose_window,
    common_loadings,
    default_drift,
    fit_state_space,
    window_dispersion,
)
from .fitted import ClassFit, FitOptions
from .pilot_traffic import _phase_profile
from .summaries import (
    LOGS,
    SQUARES,
    ClassSummary,
    LogSummary,
    Windows,
    drift_floor,
    normalise,
)


def _hours(seconds: float) -> str:
    h = seconds / 3600.0
    return f"{h / 24:g} d" if h >= 24 and h % 24 == 0 else f"{h:g} h"


_YSums = tuple[np.ndarray, np.ndarray, np.ndarray]  # per base window: rows, sums of y and y^2


class _DriftGrid:
    """Drift windows from a summary's per-base-window sums.

    The same estimate as `costsim.model.drift.drift_windows` and `fit_drift` on the class's rows,
    with windows aligned on the epoch (a window of w seconds holds the arrivals t with
    floor(t / w) equal; an hour is a clock hour): a window of w = k base windows sums k base
    windows, so every length the drift tries comes from one pass over the rows.
    y = log(max(unit cost, floor)), the floor a thousandth of the median positive unit cost
    (`costsim.model.summaries.drift_floor`); the rows below it are the smallest kept, or were summed
    by a second pass (``below``).
    """

    def __init__(self, summary: LogSummary, options: FitOptions) -> None:
        spec = summary.spec
        self.spec = spec
        self.window_s = options.drift_window_s
        self.base_s = base = spec.base_s
        # longer windows tried: whole multiples of the base
        self.ladder = tuple(
            w
            for w in WINDOW_LADDER_S
            if w > self.window_s and abs(w / base - round(w / base)) < 1e-9
        )
        self.has_time = spec.has_time and math.isfinite(summary.t_min)
        self.t_min = summary.t_min if self.has_time else None
        self.t_max = summary.t_max if self.has_time else None
        # base windows of the first and last arrival (as the rows' are computed)
        self.g_min = int(summary.t_min // base) if self.has_time else 0
        self.g_max = int(summary.t_max // base) if self.has_time else 0

    def y_sums(self, c: ClassSummary, below: Windows | None) -> _YSums | None:
        """Per base window with requests: rows, and sums of y and y^2 (None: no positive
        unit cost); ``below``: the class's sums of the second pass, if it had one."""
        w = c.windows
        floor = drift_floor(c, self.spec)
        if int(w.npos.sum()) == 0 or floor is None:
            return None
        size = w.ids.size
        if below is None:  # every positive unit cost below the floor is among those kept
            low, low_window, _ = c.smallest_units()
            sel = low < floor
            at = np.searchsorted(w.ids, low_window[sel])
            y = np.log(low[sel])
            k = np.bincount(at, minlength=size)
            s1_low = LOGS.sums(y, at, size, nonnegative=False)
            s2_low = SQUARES.sums(y * y, at, size)
        else:
            at = np.searchsorted(w.ids, below.ids)
            k = np.zeros(size, dtype=np.int64)
            k[at] = below.n
            s1_low, s2_low = LOGS.zeros(size), SQUARES.zeros(size)
            s1_low[:, at] = below.s1
            s2_low[:, at] = below.s2
        s1 = LOGS.values(normalise(w.s1 - s1_low))
        s2 = SQUARES.values(normalise(w.s2 - s2_low))
        log_floor = math.log(floor)
        floored = (w.n - w.npos + k).astype(float)
        return w.n, s1 + floored * log_floor, s2 + floored * log_floor * log_floor

    def series(
        self,
        sums: _YSums,
        ids: np.ndarray,
        window_s: float,
        adapt: bool,
    ) -> DriftSeries:
        """`costsim.model.drift.drift_windows` on the base windows' sums."""
        n_b, s1_b, s2_b = sums
        candidates = [window_s, *(w for w in self.ladder if w > window_s)] if adapt else [window_s]

        def grid(w: float) -> tuple[int, np.ndarray, np.ndarray]:
            k = round(w / self.base_s)
            first = self.g_min // k
            size = self.g_max // k - first + 1
            idx = ids // k - first
            return size, idx, np.bincount(idx, weights=n_b, minlength=size).astype(np.int64)

        (size, idx, n), chosen_w, note = choose_window(grid, candidates, adapt)
        # With y summed per window (S1, S2 over n rows), the centred means and the pooled
        # within-window variance of costsim.model.drift.drift_windows:
        #   m_t = S1_t / n_t - ybar,  s2 = sum_t (S2_t - S1_t^2 / n_t) / (N - #windows)
        total_n = float(n_b.sum())
        centre = float(s1_b.sum()) / total_n
        s1 = np.bincount(idx, weights=s1_b, minlength=size)
        s2 = np.bincount(idx, weights=s2_b, minlength=size)
        nonempty = n > 0
        nn = np.maximum(n, 1)
        means = np.where(nonempty, s1 / nn - centre, 0.0)
        df = int(n.sum()) - int(nonempty.sum())
        m2 = np.where(nonempty, s2 - s1 * s1 / nn, 0.0)
        within = float(np.sum(m2) / df) if df > 0 else float(s2.sum() / total_n - centre**2)
        within = max(within, 1e-12)
        observed = n >= MIN_PER_WINDOW
        dispersion = window_dispersion(means[observed], n[observed], within)
        k = round(chosen_w / self.base_s)
        return DriftSeries(
            window_s=chosen_w,
            start=(self.g_min // k) * k * self.base_s,
            mean=np.where(observed, means + centre, np.nan),
            count=n,
            within_var=within,
            reference=centre,
            dispersion=dispersion,
            min_count=MIN_PER_WINDOW,
            note=note,
        )

    def fit(self, c: ClassSummary, below: Windows | None) -> tuple[DriftFit, _YSums | None]:
        """The class's unit-cost drift, a state-space model on adaptive windows, and its
        `y_sums` (None without)."""
        window = self.window_s
        if "cost_usd" not in self.spec.quantities and "unit" not in self.spec.fields:
            return default_drift(window, 0.0, "no cost or token column"), None
        sums = self.y_sums(c, below)
        if sums is None:
            return default_drift(window, 0.0, "no positive unit costs"), None
        reference = float(sums[1].sum()) / float(sums[0].sum())
        if not self.has_time:
            return default_drift(window, reference, "no timestamps"), sums
        return fit_state_space(self.series(sums, c.windows.ids, window, adapt=True)), sums

    def hourly(self, c: ClassSummary) -> tuple[float, ...] | None:
        """The class's hour-of-day profile, for a pilot at least a day long."""
        if self.t_min is None or self.t_max is None or self.t_max - self.t_min < 86400.0:
            return None
        return _phase_profile(c.hours, self.t_min, self.t_max, 86400.0, 24)

    def common(
        self,
        classes: dict[str, ClassFit],
        sums: Mapping[str, tuple[_YSums, np.ndarray] | None],
    ) -> dict[str, float]:
        """Each class's share of drift common to all classes, on one window grid (the longest
        window any drifting class needed), where at least two classes drift; ``sums``: each
        class's `y_sums` and the ids of its base windows."""
        drifting = [n for n, c in classes.items() if c.drift.estimated and c.drift.kind != "none"]
        if not self.has_time or len(drifting) < 2:
            return {}
        window = max(classes[n].drift.window_s for n in drifting)
        series, fits = [], []
        for name in drifting:
            entry = sums[name]
            assert entry is not None
            s = self.series(*entry, window, adapt=False)
            series.append(s)
            fits.append(fit_state_space(s, (classes[name].drift.kind,)))
        return dict(zip(drifting, (float(r) for r in common_loadings(fits, series)), strict=True))
