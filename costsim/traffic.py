"""The traffic layer (DESIGN section 4): request intensities per trial, time bucket and class.

Intensity of class c in bucket b of trial t:

    lambda[t, b, c] = V_t * m_tc * base[b, c] * (1 + (S_tb - 1) * hit_c)

``base`` is deterministic (projected volume x mix x diurnal / weekly shape x growth x scheduled
events); ``V_t`` (volume uncertainty), ``m_tc`` (mix uncertainty, Dirichlet) and ``S_tb``
(random spikes) are drawn per trial. Totals per class need only matrix products over buckets, so
nothing here is per request. Load-dependent effects (failures rising with load, cold starts on
sudden rises) are computed on these intensities and returned as per-trial, per-class cost
multipliers, as is the unit-cost drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from scipy import signal

from .scenario import Scenario

MONDAY = datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp()  # a Monday, 00:00 UTC
MONTH_S = 30 * 86400.0


@dataclass(frozen=True)
class TrafficPlan:
    """The deterministic part of the traffic: base intensities and what random parts apply."""

    classes: tuple[str, ...]
    base: np.ndarray  # (buckets, classes): expected requests, events included
    base_no_events: np.ndarray  # (buckets, classes)
    mix: np.ndarray  # (classes,) expected production shares
    projected_requests: float  # the scenario's volume over the horizon (no spikes, no events)
    spike_hit: np.ndarray  # (classes,) bool
    bucket_s: float


@dataclass(frozen=True)
class Drivers:
    """Which drivers of the gap between the naive estimate and the forecast are switched on."""

    tail: bool = True  # per-request randomness from the fitted distribution (else: means)
    spikes: bool = True  # random spikes and scheduled events
    retries: bool = True
    cold_starts: bool = True
    uncertainty: bool = True  # volume, mix, tail parameters and drift drawn per trial


ALL_DRIVERS = Drivers()


def _bucket_times(scenario: Scenario) -> np.ndarray:
    """Start time (epoch s) of every bucket."""
    start = MONDAY
    if scenario.start is not None:
        text = scenario.start.replace("Z", "+00:00")
        dt = datetime.fromisoformat(text)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        start = dt.timestamp()
    return start + np.arange(scenario.buckets) * scenario.resolution_s


def _shape_at(
    times: np.ndarray, hourly: np.ndarray | None, weekly: np.ndarray | None
) -> np.ndarray:
    out = np.ones(times.size)
    if hourly is not None:
        out = out * hourly[((times // 3600.0) % 24).astype(np.int64)]
    if weekly is not None:
        out = out * weekly[(((times + 3 * 86400.0) // 86400.0) % 7).astype(np.int64)]
    return out


def _normalised(values: tuple[float, ...] | None) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values, dtype=float)
    return arr / arr.mean() if arr.mean() > 0 else None


def build_plan(
    scenario: Scenario,
    classes: tuple[str, ...],
    mix: np.ndarray,
    class_hourly: dict[str, tuple[float, ...] | None],
    pilot_hourly: tuple[float, ...] | None,
    pilot_weekly: tuple[float, ...] | None,
) -> TrafficPlan:
    """Base intensities per bucket and class (deterministic)."""
    t0 = _bucket_times(scenario)
    res = scenario.resolution_s
    sub = max(1, math.ceil(res / 3600.0))  # average the shape over the hours of long buckets
    times = (t0[:, None] + (np.arange(sub)[None, :] + 0.5) * res / sub).ravel()
    tr = scenario.traffic
    weekly = _normalised(tr.weekly) if tr.weekly is not None else None
    if weekly is None and tr.shape == "pilot":
        weekly = _normalised(pilot_weekly)
    elapsed = np.arange(scenario.buckets) * res + res / 2
    growth = (1.0 + scenario.volume.growth) ** (elapsed / MONTH_S)
    shapes = np.empty((scenario.buckets, len(classes)))
    for j, name in enumerate(classes):
        hourly = _normalised(tr.hourly) if tr.hourly is not None else None
        if hourly is None and tr.shape == "pilot":
            hourly = _normalised(class_hourly.get(name)) if class_hourly.get(name) else None
            hourly = hourly if hourly is not None else _normalised(pilot_hourly)
        s = _shape_at(times, hourly, weekly).reshape(scenario.buckets, sub).mean(axis=1)
        shapes[:, j] = s / s.mean()
    vol = scenario.volume
    rate_form = (
        isinstance(scenario.raw.get("volume"), dict) and "requests" not in scenario.raw["volume"]
    )
    if rate_form:
        per_bucket = vol.requests / scenario.buckets * growth
        base = per_bucket[:, None] * shapes * mix[None, :]
    else:  # a total over the horizon: growth only shapes it
        weights = shapes * growth[:, None]
        base = vol.requests * mix[None, :] * weights / weights.sum(axis=0, keepdims=True)
    events = np.ones_like(base)
    for ev in tr.events:
        cover = bucket_overlap(
            np.array([ev.start_s]), np.array([ev.start_s + ev.duration_s]), scenario.buckets, res
        )[0]  # share of each bucket the event covers
        cols = _class_mask(ev.classes, classes)
        events[:, cols] *= (1.0 + (ev.multiplier - 1.0) * cover)[:, None]
    return TrafficPlan(
        classes=classes,
        base=base * events,
        base_no_events=base,
        mix=mix,
        projected_requests=float(base.sum()),
        spike_hit=_class_mask(tr.spikes.classes, classes),
        bucket_s=res,
    )


def _class_mask(names: tuple[str, ...] | None, classes: tuple[str, ...]) -> np.ndarray:
    if names is None:
        return np.ones(len(classes), dtype=bool)
    return np.array([c in names for c in classes], dtype=bool)


@dataclass(frozen=True)
class Spikes:
    """The random spikes of a chunk of trials, as events: trial, start and end (seconds from
    the start of the horizon) and the intensity multiplier while it lasts."""

    trial: np.ndarray
    start: np.ndarray
    end: np.ndarray
    size: np.ndarray

    def grid(self, rows: slice, n_buckets: int, bucket_s: float) -> np.ndarray:
        """Multiplier per (trial in ``rows``, bucket): 1 + (size - 1) x share of bucket covered.

        Buckets a spike covers whole get (size - 1) through a difference array; the first and
        last, partly covered, get their fraction of it. O(spikes + trials x buckets).
        """
        first_row, stop = rows.start or 0, rows.stop
        n_rows, width = stop - first_row, n_buckets + 1
        keep = (self.trial >= first_row) & (self.trial < stop)
        t = self.trial[keep] - first_row
        start, end, amp = self.start[keep], self.end[keep], self.size[keep] - 1.0
        first = np.minimum((start // bucket_s).astype(np.int64), n_buckets - 1)
        last = np.minimum((end // bucket_s).astype(np.int64), n_buckets)
        same = first == last
        head = np.where(same, end - start, (first + 1) * bucket_s - start) / bucket_s
        tail = np.where(same | (last >= n_buckets), 0.0, (end - last * bucket_s) / bucket_s)
        size = n_rows * width
        partial = np.bincount(t * width + first, weights=amp * head, minlength=size)
        partial += np.bincount(t * width + last, weights=amp * tail, minlength=size)
        whole = ~same & (last > first + 1)
        steps = np.bincount(t[whole] * width + first[whole] + 1, weights=amp[whole], minlength=size)
        steps -= np.bincount(t[whole] * width + last[whole], weights=amp[whole], minlength=size)
        grid = np.cumsum(steps.reshape(n_rows, width), axis=1) + partial.reshape(n_rows, width)
        return np.asarray(1.0 + grid[:, :n_buckets])


def bucket_overlap(
    start: np.ndarray, end: np.ndarray, n_buckets: int, bucket_s: float
) -> np.ndarray:
    """Share of each bucket covered by each interval [start, end): (intervals, buckets).

    Computed as differences of the covered time up to each bucket edge, so an interval shorter
    than a bucket counts for its fraction of it, and one across an edge for both parts.
    """
    edges = np.arange(n_buckets + 1) * bucket_s
    covered = np.clip(edges[None, :], start[:, None], end[:, None]) - start[:, None]
    return np.asarray(np.diff(covered, axis=1) / bucket_s)


@dataclass(frozen=True)
class TrialTraffic:
    """One chunk of trials: per-class expected requests, and what made them."""

    intensity: np.ndarray  # (trials, classes): Lambda
    volume: np.ndarray  # (trials,)
    mix_factor: np.ndarray  # (trials, classes)
    spikes: Spikes | None


def mix_factors(plan: TrafficPlan, gammas: np.ndarray, uncertain: bool) -> np.ndarray:
    """Per-trial mix over the expected mix, from Gamma(concentration x share) draws (Dirichlet).

    ``gammas`` come from each class's own stream, so adding a class leaves the others' alone.
    A trial whose draws all underflow (a tiny concentration) keeps the expected mix.
    """
    n_trials, n_classes = gammas.shape
    if not uncertain:
        return np.ones((n_trials, n_classes))
    total = gammas.sum(axis=1, keepdims=True)
    safe = np.where(total > 0, total, 1.0)
    shares = np.where(total > 0, gammas / safe, plan.mix[None, :])
    expected = np.where(plan.mix > 0, plan.mix, 1.0)
    return np.asarray(np.where(plan.mix > 0, shares / expected, 0.0))


def draw_traffic(
    plan: TrafficPlan,
    scenario: Scenario,
    n_trials: int,
    drivers: Drivers,
    rng_volume: np.random.Generator,
    rng_spikes: np.random.Generator,
    gammas: np.ndarray,
) -> TrialTraffic:
    """Per-trial volume, mix and spikes; the per-class intensity of every trial.

    Spikes stay events: the extra requests of a spike are the class's expected requests over
    its span (interpolated on the cumulative base intensity), times its size - 1. Nothing here
    is per bucket and trial.
    """
    z = rng_volume.standard_normal(n_trials)
    sd = scenario.volume.uncertainty if drivers.uncertainty else 0.0
    volume = np.exp(sd * z - 0.5 * sd * sd)
    uncertain = scenario.mix.concentration is not None and drivers.uncertainty
    mix_factor = mix_factors(plan, gammas, uncertain)
    base = plan.base if drivers.spikes else plan.base_no_events
    per_class = np.broadcast_to(base.sum(axis=0), (n_trials, base.shape[1])).copy()
    spikes = _draw_spikes(scenario, n_trials, rng_spikes) if drivers.spikes else None
    if spikes is not None and spikes.trial.size:
        edges = np.arange(base.shape[0] + 1) * plan.bucket_s
        cumulative = np.vstack([np.zeros(base.shape[1]), np.cumsum(base, axis=0)])
        for j in np.flatnonzero(plan.spike_hit):
            during = np.interp(spikes.end, edges, cumulative[:, j]) - np.interp(
                spikes.start, edges, cumulative[:, j]
            )
            extra = (spikes.size - 1.0) * during
            per_class[:, j] += np.bincount(spikes.trial, weights=extra, minlength=n_trials)
    intensity = volume[:, None] * mix_factor * per_class
    return TrialTraffic(intensity, volume, mix_factor, spikes)


def _draw_spikes(scenario: Scenario, n_trials: int, rng: np.random.Generator) -> Spikes | None:
    """Poisson many spikes per trial, uniform start, lognormal size, fixed duration."""
    sp = scenario.traffic.spikes
    if sp.rate_per_day <= 0:
        return None
    counts = rng.poisson(sp.rate_per_day * scenario.horizon_s / 86400.0, size=n_trials)
    total = int(counts.sum())
    start = rng.random(total) * scenario.horizon_s
    size = np.exp(np.log(sp.magnitude_median) + sp.magnitude_sd * rng.standard_normal(total))
    end = np.minimum(start + sp.duration_s, scenario.horizon_s)
    return Spikes(np.repeat(np.arange(n_trials), counts), start, end, size)


def window_weights(weights: np.ndarray, bucket_s: float, window_s: float) -> np.ndarray:
    """Bucket weights regrouped on the drift's window grid (split or summed, as needed)."""
    if bucket_s >= window_s:
        k = max(1, round(bucket_s / window_s))
        return np.repeat(weights / k, k)
    m = max(1, round(window_s / bucket_s))
    padded = np.concatenate([weights, np.zeros((-weights.size) % m)])
    return np.asarray(padded.reshape(-1, m).sum(axis=1))


def ar1_average_variance(weights: np.ndarray, level_sd: float, phi: float) -> float:
    """Variance of sum_b w_b x_b for a stationary AR(1) x with sd ``level_sd`` and lag-1
    correlation ``phi`` (weights summing to 1):
        tau^2 * (sum_b w_b^2 + 2 sum_b w_b h_b),  h_b = phi * (h_{b-1} + w_{b-1})
    The recursion runs as a linear filter, so the cost is O(buckets) without a Python loop.
    """
    if level_sd <= 0:
        return 0.0
    w = np.asarray(weights, dtype=float)
    if phi <= 0:
        return float(level_sd**2 * np.sum(w * w))
    h = signal.lfilter([0.0, phi], [1.0, -phi], w)
    return float(level_sd**2 * (np.sum(w * w) + 2.0 * np.sum(w * h)))
