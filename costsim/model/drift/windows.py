"""A class's rows to drift windows: the window length chosen (longer where the class is
sparse), the window means and their dispersion (`drift_windows`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from .series import (
    _FLOOR_FRACTION,
    MIN_MEDIAN_COUNT,
    MIN_PER_WINDOW,
    MIN_WINDOWS,
    WINDOW_LADDER_S,
    WINDOW_S,
    DriftSeries,
)


def _log_values(value: np.ndarray) -> np.ndarray:
    """y = log(max(value, 1e-3 * median of the positive values)), as the fit does."""
    positive = value[value > 0]
    if positive.size == 0:
        raise ValueError("value: no positive unit costs to take the log of")
    floor = _FLOOR_FRACTION * float(np.median(positive))
    return np.log(np.maximum(value, floor))


def _hours(seconds: float) -> str:
    h = seconds / 3600.0
    return f"{h / 24:g} d" if h >= 24 and h % 24 == 0 else f"{h:g} h"


Grid = tuple[int, np.ndarray, np.ndarray]  # windows, each row's window, rows per window


def choose_window(
    grid: Callable[[float], Grid],
    candidates: Sequence[float],
    adapt: bool,
    min_median: int = MIN_MEDIAN_COUNT,
    min_windows: int = MIN_WINDOWS,
    min_count: int = MIN_PER_WINDOW,
) -> tuple[Grid, float, str | None]:
    """The shortest candidate window whose median window holds ``min_median`` requests, as long
    as ``min_windows`` windows keep ``min_count`` each; its grid, length and a note when it
    was lengthened or is still thin. ``grid(w)`` lays the rows on windows of ``w`` seconds
    (from rows in memory, or from a streamed pilot's per-window counts)."""
    chosen = grid(candidates[0])
    chosen_w, first_median = candidates[0], float(np.median(chosen[2]))
    for w in candidates:
        g = grid(w)
        if int(np.sum(g[2] >= min_count)) < min_windows:
            break  # longer windows only leave fewer
        chosen, chosen_w = g, w
        if np.median(g[2]) >= min_median:
            break
    n = chosen[2]
    median = float(np.median(n))
    note = None
    if chosen_w != candidates[0]:
        note = (
            f"windows lengthened from {_hours(candidates[0])} to {_hours(chosen_w)}: a "
            f"{_hours(candidates[0])} window held a median of {first_median:g} requests "
            f"({min_median} wanted)"
        )
    if median < min_median and adapt and int(np.sum(n >= min_count)) >= min_windows:
        note = (note + "; " if note else "") + (
            f"{_hours(chosen_w)} windows hold a median of {median:g} requests ({min_median} "
            f"wanted), but longer ones would leave fewer than {min_windows} in the pilot"
        )
    return chosen, chosen_w, note


def window_dispersion(means: np.ndarray, counts: np.ndarray, within: float) -> float:
    """The request-weighted variance of the observed windows' mean levels about their own
    mean, less what the within-window variance ``within`` alone would put there (the
    expected spread of means of ``counts`` draws); at least 0. `DriftSeries.dispersion`."""
    if not means.size:
        return 0.0
    n = counts.astype(float)
    weights = n / n.sum()
    wmean = float(weights @ means)
    raw = float(weights @ (means - wmean) ** 2)
    return max(raw - within * (n.size - 1) / n.sum(), 0.0)


def drift_windows(
    timestamp: np.ndarray,
    value: np.ndarray,
    window_s: float = WINDOW_S,
    *,
    adapt: bool = True,
    start: float | None = None,
    end: float | None = None,
    min_median: int = MIN_MEDIAN_COUNT,
    min_windows: int = MIN_WINDOWS,
    min_count: int = MIN_PER_WINDOW,
) -> DriftSeries:
    """Window means of log unit cost, on a window long enough for the class's traffic.

    The grid starts at ``start`` (default: the first timestamp) and covers the pilot up to
    ``end`` (default: the last timestamp). With ``adapt``, the window starts at ``window_s``
    and is lengthened along :data:`WINDOW_LADDER_S` (2 h, 3 h, 4 h, 6 h, 8 h, 12 h, 1 d, ...)
    until the median window (over the whole grid, empty windows included) holds at least
    ``min_median`` requests, as long as at least ``min_windows`` windows stay observed;
    otherwise the longest window that keeps ``min_windows`` is used and the note says so.
    Windows with fewer than ``min_count`` requests are missing observations.

    With W_t the requests of window t (y centred on the overall mean for precision):
        m_t = mean_{i in W_t} y_i,  s2 = sum_t sum_{i in W_t} (y_i - m_t)^2 / (N - #windows)
    """
    t = np.asarray(timestamp, dtype=float).ravel()
    x = np.asarray(value, dtype=float).ravel()
    if t.shape != x.shape:
        raise ValueError(f"timestamp and value: lengths differ ({t.size} vs {x.size})")
    if t.size == 0:
        raise ValueError("timestamp: no requests")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(x))):
        raise ValueError("timestamp and value: must be finite")
    if not window_s > 0:
        raise ValueError(f"window_s: expected a positive number of seconds, got {window_s}")
    y = _log_values(x)
    t0 = float(t.min()) if start is None else float(start)
    t1 = float(t.max()) if end is None else float(end)
    if t.min() < t0 or t.max() > t1:
        raise ValueError(f"timestamp: requests outside the pilot's [start, end] = [{t0}, {t1}]")
    span = t1 - t0
    candidates = [float(window_s)]
    if adapt:
        candidates += [w for w in WINDOW_LADDER_S if w > window_s]

    def grid(w: float) -> tuple[int, np.ndarray, np.ndarray]:
        size = math.floor(span / w) + 1 if end is None else max(math.ceil(span / w), 1)
        idx = np.minimum(np.floor((t - t0) / w).astype(np.int64), size - 1)
        return size, idx, np.bincount(idx, minlength=size)

    (size, idx, n), chosen_w, note = choose_window(
        grid, candidates, adapt, min_median, min_windows, min_count
    )
    centre = float(np.mean(y))
    yc = y - centre
    s1 = np.bincount(idx, weights=yc, minlength=size)
    ss = np.bincount(idx, weights=yc * yc, minlength=size)
    nonempty = n > 0
    means = np.where(nonempty, s1 / np.maximum(n, 1), 0.0)
    df = int(n.sum()) - int(nonempty.sum())
    within = float(np.sum(ss - n * means**2) / df) if df > 0 else float(np.var(yc))
    within = max(within, 1e-12)
    observed = n >= min_count
    dispersion = window_dispersion(means[observed], n[observed], within)
    return DriftSeries(
        window_s=chosen_w,
        start=t0,
        mean=np.where(observed, means + centre, np.nan),
        count=n.astype(np.int64),
        within_var=within,
        reference=centre + float(s1.sum() / n.sum()),
        dispersion=dispersion,
        min_count=min_count,
        note=note,
    )
