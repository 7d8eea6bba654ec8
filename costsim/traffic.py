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
        first = int(ev.start_s // res)
        last = math.ceil((ev.start_s + ev.duration_s) / res)
        cols = _class_mask(ev.classes, classes)
        events[first:last, cols] *= ev.multiplier
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
class TrialTraffic:
    """One chunk of trials: per-class expected requests and per-bucket detail where needed."""

    intensity: np.ndarray  # (trials, classes): Lambda
    volume: np.ndarray  # (trials,)
    mix_factor: np.ndarray  # (trials, classes)
    spikes: np.ndarray | None  # (trials, buckets) multiplier, None when no spike


def draw_traffic(
    plan: TrafficPlan,
    scenario: Scenario,
    n_trials: int,
    drivers: Drivers,
    rng_volume: np.random.Generator,
    rng_mix: np.random.Generator,
    rng_spikes: np.random.Generator,
) -> TrialTraffic:
    """Per-trial volume, mix and spikes; the per-class intensity of every trial."""
    n_buckets, n_classes = plan.base.shape
    z = rng_volume.standard_normal(n_trials)
    sd = scenario.volume.uncertainty if drivers.uncertainty else 0.0
    volume = np.exp(sd * z - 0.5 * sd * sd)
    conc = scenario.mix.concentration
    alpha = np.maximum(plan.mix * (conc or 1.0), 1e-300)
    g = rng_mix.standard_gamma(np.broadcast_to(alpha, (n_trials, n_classes)))
    if conc is not None and drivers.uncertainty:
        shares = g / g.sum(axis=1, keepdims=True)
        mix_factor = np.where(plan.mix > 0, shares / np.where(plan.mix > 0, plan.mix, 1.0), 0.0)
    else:
        mix_factor = np.ones((n_trials, n_classes))
    base = plan.base if drivers.spikes else plan.base_no_events
    spikes = _draw_spikes(scenario, n_trials, n_buckets, rng_spikes) if drivers.spikes else None
    per_class = base.sum(axis=0)[None, :] * np.ones((n_trials, 1))
    if spikes is not None:
        extra = (spikes - 1.0) @ base  # (trials, classes)
        per_class = per_class + extra * plan.spike_hit[None, :]
    intensity = volume[:, None] * mix_factor * per_class
    return TrialTraffic(intensity, volume, mix_factor, spikes)


def _draw_spikes(
    scenario: Scenario, n_trials: int, n_buckets: int, rng: np.random.Generator
) -> np.ndarray | None:
    """Spike multipliers (trials x buckets): Poisson many spikes, uniform start, lognormal size."""
    sp = scenario.traffic.spikes
    days = scenario.horizon_s / 86400.0
    counts = rng.poisson(sp.rate_per_day * days, size=n_trials)
    total = int(counts.sum())
    # draw the same number of uniforms whatever happens, for common random numbers
    if sp.rate_per_day <= 0:
        return None
    out = np.zeros((n_trials, n_buckets + 1))
    if total:
        trial = np.repeat(np.arange(n_trials), counts)
        start = rng.random(total) * scenario.horizon_s
        size = np.exp(np.log(sp.magnitude_median) + sp.magnitude_sd * rng.standard_normal(total))
        first = np.minimum((start // scenario.resolution_s).astype(np.int64), n_buckets - 1)
        length = max(1, round(sp.duration_s / scenario.resolution_s))
        last = np.minimum(first + length, n_buckets)
        np.add.at(out, (trial, first), size - 1.0)
        np.add.at(out, (trial, last), -(size - 1.0))
    return 1.0 + np.cumsum(out, axis=1)[:, :n_buckets]


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
