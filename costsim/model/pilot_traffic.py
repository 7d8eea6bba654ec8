"""The pilot's traffic: its volume and span, the intensity by hour of day and day of week,
and how concentrated its mix of classes is.
"""

from __future__ import annotations

import math

import numpy as np

from .fitted import Traffic
from .summaries import (
    VALUES,
    LogSummary,
    bin_centres,
    normalise,
)


def _phase_profile(
    counts: np.ndarray, start: float, end: float, period_s: float, bins: int
) -> tuple[float, ...]:
    """Relative intensity by phase (hour of day, day of week), per unit of time observed,
    from the requests per phase bin (``counts``) and the pilot's span [start, end]."""
    counts = np.asarray(counts, dtype=float)
    step = period_s / bins
    slots = np.arange(math.floor(start / step), math.ceil(end / step))
    exposure = np.bincount((slots % bins).astype(np.int64), minlength=bins).astype(float)
    rate = np.where(exposure > 0, counts / np.maximum(exposure, 1.0), 0.0)
    mean = rate.mean()
    return tuple(float(v) for v in (rate / mean if mean > 0 else np.ones(bins)))


def _traffic(summary: LogSummary, notes: list[str]) -> Traffic:
    n = summary.n
    if not summary.spec.has_time or not math.isfinite(summary.t_min):
        notes.append("no timestamps: no traffic shape, volume rate or drift from the pilot")
        return Traffic(n, None, None, None, None, None, None)
    start, end = summary.t_min, summary.t_max
    duration = end - start
    rate = n / (duration / 3600.0) if duration > 0 else None
    hourly = weekly = None
    if duration >= 86400.0:
        hours = np.sum([c.hours for c in summary.classes.values()], axis=0)
        hourly = _phase_profile(hours, start, end, 86400.0, 24)
    else:
        notes.append("pilot shorter than a day: no hour-of-day shape (flat assumed)")
    # Epoch 0 was a Thursday: shifted so that bin 0 is Monday.
    if duration >= 7 * 86400.0:
        weekly = _phase_profile(
            summary.weekdays, start + 3 * 86400.0, end + 3 * 86400.0, 7 * 86400.0, 7
        )
    else:
        notes.append("pilot shorter than a week: no day-of-week shape (flat assumed)")
    return Traffic(n, start, end, duration, rate, hourly, weekly)


def _concentration(summary: LogSummary) -> dict[str, float] | None:
    """Share of the cost from the costliest 1% and 5% of requests: exact while they are among
    the `CONCENTRATION_TOP` costliest kept (a log of up to 1.3M requests); beyond, from the
    cost histogram, every request at the geometric centre of its bin of 1/128 octave: within
    0.3% of the share."""
    acc = VALUES.zeros()
    for c in summary.classes.values():
        acc = acc + c.sums["cost_usd"]
    total = float(VALUES.value(normalise(acc[:, None]))[0])
    if total <= 0:
        return None
    n = summary.n
    top = summary.costliest()
    out: dict[str, float] = {}
    for label, frac in (("top_1pct", 0.01), ("top_5pct", 0.05)):
        k = max(1, math.ceil(frac * n))
        if k <= top.size:
            out[label] = math.fsum(top[:k]) / total
            continue
        # the histogram, costliest bins first, each request at its bin's centre
        counts = summary.conc_count[::-1]
        sums = (counts * bin_centres()[::-1]).astype(float)
        cum = np.cumsum(counts)
        b = int(np.searchsorted(cum, k))  # the bin the k-th costliest request falls in
        before = int(cum[b - 1]) if b > 0 else 0
        out[label] = (math.fsum(sums[:b]) + (k - before) * bin_centres()[::-1][b]) / total
    return out
