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
from datetime import UTC, datetime
from functools import cached_property

import numpy as np

from ..errors import ScenarioError
from ..scenario import MAX_REQUESTS, MAX_SPIKES_PER_TRIAL, Scenario, format_duration

MONDAY = datetime(2024, 1, 1, tzinfo=UTC).timestamp()  # a Monday, 00:00 UTC
MONTH_S = 30 * 86400.0

# Memory: the traffic layer refuses, with the knob to turn, what would not fit in these budgets.
# The scenario's own bounds keep a forecast within them (MAX_SPIKES_PER_TRIAL x 2000 trials a
# chunk x SPIKE_BYTES is just under SPIKE_MEMORY); the checks here guard the arrays themselves.
GIB = 2**30
SPIKE_MEMORY = GIB  # the spikes of one chunk of trials
SPIKE_BYTES = 128  # per spike: 4 arrays of 8 bytes kept, and the temporaries that draw them,
# spread them over the classes (`draw_traffic`) and over buckets (`Spikes.grid`)
PLAN_MEMORY = GIB  # the (buckets x classes) arrays of the traffic plan
PLAN_ARRAYS = 6  # (buckets x classes) float arrays alive at once: 5 at the peak of `build_plan`
# (measured), 2 kept in the plan and 2 more while `draw_traffic` spreads spikes
GRID_MEMORY = GIB  # a (trials x buckets) spike grid and its temporaries
GRID_ARRAYS = 5  # (trials x buckets) float arrays alive at once in `Spikes.grid`
SPREAD_CELLS = 1 << 20  # spikes x classes spread at once by `draw_traffic` (8 MiB an array)

# Buckets whose base rows agree in direction to this relative precision share a group (a few
# hundred units in the last place: the rounding of `build_plan`'s products, far below 1e-10).
GROUP_TOLERANCE = 1e-13
MAX_BLOCK = 64  # buckets in a block of `BucketGroups` at most (see there)


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

    @cached_property
    def groups(self) -> BucketGroups:
        """The buckets of ``base`` grouped by the direction of their rows (`bucket_groups`)."""
        return bucket_groups(self.base)

    @cached_property
    def groups_no_events(self) -> BucketGroups:
        """The buckets of ``base_no_events`` grouped by the direction of their rows."""
        return bucket_groups(self.base_no_events)


@dataclass(frozen=True)
class BucketGroups:
    """Buckets whose base rows are proportional: ``base[b] = scale[b] * rows[group[b]]``.

    The hour-of-day shape repeats, while growth, weekdays and the events that hit every class
    only scale a bucket's row, so a month has about 24 groups whatever its resolution: effects
    of the load are computed per trial and group, not per trial and bucket. ``scale`` is at most
    1 (each group's row is its largest bucket's). A bucket that fits no group to
    `GROUP_TOLERANCE` is a group of its own, so the grouping is exact up to rounding whatever
    the plan.

    Blocks are runs of consecutive buckets of one group, at most `MAX_BLOCK` long: a spike's
    part in a block is a difference of prefix sums within the block, never of sums over the
    whole horizon (which could dwarf it).
    """

    group: np.ndarray  # (buckets,) int
    scale: np.ndarray  # (buckets,)
    rows: np.ndarray  # (groups, classes)
    block: np.ndarray  # (buckets,) the block of each bucket
    block_start: np.ndarray  # (blocks + 1,): first bucket of each block, then the bucket count

    @property
    def n_groups(self) -> int:
        return int(self.rows.shape[0])

    @cached_property
    def block_scale(self) -> np.ndarray:
        """The largest scale of each block's buckets."""
        return np.maximum.reduceat(self.scale, self.block_start[:-1])

    def group_sums(self, values: np.ndarray) -> np.ndarray:
        """Per group, the sum of a per-bucket quantity."""
        return np.bincount(self.group, weights=values, minlength=self.n_groups)

    def block_prefix(self, values: np.ndarray) -> np.ndarray:
        """Inclusive prefix sums of a per-bucket quantity, restarting at every block: a
        Hillis-Steele scan, log2(`MAX_BLOCK`) vectorised steps at most."""
        offset = np.arange(values.size) - self.block_start[self.block]
        out = np.asarray(values, dtype=float)
        step = 1
        while step <= int(offset.max(initial=0)):
            shifted = np.zeros_like(out)
            shifted[step:] = np.where(offset[step:] >= step, out[:-step], 0.0)
            out = out + shifted
            step *= 2
        return out

    def range_sums(
        self, prefix: np.ndarray, values: np.ndarray, lo: np.ndarray, hi: np.ndarray
    ) -> np.ndarray:
        """Sums of a per-bucket quantity over buckets lo..hi-1, each range within one block
        (``prefix``: its `block_prefix`)."""
        return prefix[hi - 1] - prefix[lo] + values[lo]


def bucket_groups(base: np.ndarray) -> BucketGroups:
    """Group the buckets of ``base`` (buckets x classes) by the direction of their rows.

    Directions are compared on a coarse grid first (rows scaled to sum 1, to 2^-32), then every
    bucket is checked against its group's row to `GROUP_TOLERANCE`; one that fails becomes a
    group of its own. All-zero rows form one group of scale 0.
    """
    n_buckets = base.shape[0]
    total = base.sum(axis=1)
    direction = base / np.where(total > 0, total, 1.0)[:, None]
    group = _row_classes(np.rint(direction * 2.0**32))
    order = np.lexsort((total, group))  # by group, then total: each group's largest last
    rep = order[np.r_[np.flatnonzero(np.diff(group[order])), n_buckets - 1]]
    top = total[rep][group]
    scale = np.where(top > 0, total / np.where(top > 0, top, 1.0), 0.0)
    fits = np.all(np.abs(base - scale[:, None] * base[rep][group]) <= GROUP_TOLERANCE * base, 1)
    alone = np.flatnonzero(~fits)
    group[alone] = rep.size + np.arange(alone.size)
    scale[alone] = 1.0
    rows = np.vstack([base[rep], base[alone]])
    starts = np.r_[True, group[1:] != group[:-1]]
    run_start = np.flatnonzero(starts)
    offset = np.arange(n_buckets) - run_start[np.cumsum(starts) - 1]
    starts |= offset % MAX_BLOCK == 0
    return BucketGroups(
        group, scale, rows, np.cumsum(starts) - 1, np.r_[np.flatnonzero(starts), n_buckets]
    )


def _row_classes(a: np.ndarray) -> np.ndarray:
    """The class of each row of ``a`` among its distinct rows, numbered in their lexicographic
    order: ``np.unique(a, axis=0, return_inverse=True)[1]``, 20-30x faster (that sorts the rows
    as one structured array: 0.07-0.1 s for the 43,200 buckets of 30 days at 1 minute)."""
    if a.shape[0] == 0:
        return np.zeros(0, dtype=np.intp)
    order = np.lexsort(a.T[::-1])  # the first column the primary key
    ranked = a[order]
    new = np.r_[True, np.any(ranked[1:] != ranked[:-1], axis=1)]
    out = np.empty(a.shape[0], dtype=np.intp)
    out[order] = np.cumsum(new) - 1
    return out


@dataclass(frozen=True)
class Drivers:
    """Which drivers of the gap between the naive estimate and the forecast are switched on."""

    tail: bool = True  # per-request randomness from the fitted distribution (else: means)
    spikes: bool = True  # random spikes and scheduled events
    retries: bool = True
    cold_starts: bool = True
    uncertainty: bool = True  # volume, mix, tail parameters and drift drawn per trial


ALL_DRIVERS = Drivers()


def start_epoch(scenario: Scenario) -> float | None:
    """The scenario's `start` in epoch seconds (UTC when no zone is given), or None."""
    if scenario.start is None:
        return None
    dt = datetime.fromisoformat(scenario.start.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _bucket_times(scenario: Scenario) -> np.ndarray:
    """Start time (epoch s) of every bucket."""
    start = start_epoch(scenario)
    first = MONDAY if start is None else start
    return first + np.arange(scenario.buckets) * scenario.resolution_s


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
    """Relative values scaled to mean 1 (None when none is positive). Scaled to their largest
    first, so that tiny values do not underflow to a flat profile."""
    if values is None:
        return None
    arr = np.asarray(values, dtype=float)
    top = float(arr.max()) if arr.size else 0.0
    if not top > 0 or not math.isfinite(top):
        return None
    arr = arr / top
    return arr / arr.mean()


def _check_plan_memory(scenario: Scenario, n_classes: int) -> None:
    """Refuse a plan whose (buckets x classes) arrays would not fit in `PLAN_MEMORY`."""
    buckets = scenario.buckets
    need = buckets * max(n_classes, 1) * 8 * PLAN_ARRAYS
    if need <= PLAN_MEMORY:
        return
    fits = max(PLAN_MEMORY // (max(n_classes, 1) * 8 * PLAN_ARRAYS), 1)
    coarser = 60.0 * math.ceil(scenario.horizon_s / fits / 60.0)  # whole minutes
    raise ScenarioError(
        f"resolution: {buckets:,} buckets x {n_classes:,} classes would need about "
        f"{need / GIB:.3g} GiB for the traffic plan, more than the {PLAN_MEMORY / GIB:g} GiB "
        f"costsim allows: with {n_classes:,} classes, at most {fits:,} buckets; set a coarser "
        f"resolution (at least {format_duration(coarser)}) or a shorter horizon"
    )


def build_plan(
    scenario: Scenario,
    classes: tuple[str, ...],
    mix: np.ndarray,
    class_hourly: dict[str, tuple[float, ...] | None],
    pilot_hourly: tuple[float, ...] | None,
    pilot_weekly: tuple[float, ...] | None,
) -> TrafficPlan:
    """Base intensities per bucket and class (deterministic). A `ScenarioError` when their
    arrays would not fit in `PLAN_MEMORY`."""
    _check_plan_memory(scenario, len(classes))
    t0 = _bucket_times(scenario)
    res = scenario.resolution_s
    sub = max(1, math.ceil(res / 3600.0))  # average the shape over the hours of long buckets
    times = (t0[:, None] + (np.arange(sub)[None, :] + 0.5) * res / sub).ravel()
    tr = scenario.traffic
    weekly = _normalised(tr.weekly) if tr.weekly is not None else None
    if weekly is None and tr.shape == "pilot":
        weekly = _normalised(pilot_weekly)
    elapsed = np.arange(scenario.buckets) * res + res / 2
    vol = scenario.volume
    rate_form = (
        isinstance(scenario.raw.get("volume"), dict) and "requests" not in scenario.raw["volume"]
    )
    # (1 + growth) ** (elapsed / 30 days), in logs: a steep decline over years underflows to 0
    # in the later buckets, never in all of them (the total form divides by their sum)
    log_growth = np.log1p(scenario.volume.growth) * (elapsed / MONTH_S)
    growth = np.exp(log_growth - (log_growth.max() if not rate_form else 0.0))
    shapes = np.empty((scenario.buckets, len(classes)))
    for j, name in enumerate(classes):
        hourly = _normalised(tr.hourly) if tr.hourly is not None else None
        if hourly is None and tr.shape == "pilot":
            hourly = _normalised(class_hourly.get(name)) if class_hourly.get(name) else None
            hourly = hourly if hourly is not None else _normalised(pilot_hourly)
        s = _shape_at(times, hourly, weekly).reshape(scenario.buckets, sub).mean(axis=1)
        if not s.mean() > 0:
            raise _no_traffic(scenario, name)
        shapes[:, j] = s / s.mean()
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
    spike_hit = _class_mask(tr.spikes.classes, classes)
    _check_total(scenario, float(base.sum()), (base * events).sum(axis=0), spike_hit)
    return TrafficPlan(
        classes=classes,
        base=base * events,
        base_no_events=base,
        mix=mix,
        projected_requests=float(base.sum()),
        spike_hit=spike_hit,
        bucket_s=res,
    )


def _no_traffic(scenario: Scenario, name: str) -> ScenarioError:
    """The hour-of-day and weekday shape leave a class no traffic at all in the horizon."""
    tr = scenario.traffic
    given = [f"traffic.{k}" for k in ("hourly", "weekly") if getattr(tr, k) is not None]
    source = " and ".join(given) if given else "the pilot's shape"
    fix = "give those hours or days values > 0" if given else "set traffic.shape: flat"
    return ScenarioError(
        f"traffic: {source} put no traffic in any bucket of the horizon "
        f"({format_duration(scenario.horizon_s)} from {scenario.start or 'a Monday 00:00 UTC'}) "
        f"for class '{name}': {fix}, or move start"
    )


def _check_total(
    scenario: Scenario, projected: float, with_events: np.ndarray, hit: np.ndarray
) -> None:
    """Refuse traffic whose expected requests, events and spikes included, exceed
    `MAX_REQUESTS`: the scenario checks its volume alone, and events weigh the traffic shape,
    known only here. ``with_events``: expected requests per class; ``hit``: the classes spikes
    hit."""
    sp = scenario.traffic.spikes
    share = min(sp.rate_per_day * sp.duration_s / 86400.0, 1.0)  # of the time, in a spike
    mean_size = sp.magnitude_median * math.exp(0.5 * sp.magnitude_sd**2)  # lognormal mean
    events = float(with_events.sum())
    spiked = events + share * max(mean_size - 1.0, 0.0) * float(with_events[hit].sum())
    if spiked <= MAX_REQUESTS:
        return
    parts = [
        f"x{factor:.3g} from traffic.{what}"
        for what, factor in (("events", events / projected), ("spikes", spiked / events))
        if factor > 1 + 1e-9
    ]
    raise ScenarioError(
        f"volume: {projected:.3g} requests over the horizon, {' and '.join(parts)}, is about "
        f"{spiked:.3g} expected requests, beyond costsim's range (at most {MAX_REQUESTS:.0e}): "
        "lower the volume, the events' multipliers or the spikes' rate, duration or magnitude"
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

    def of_trials(self, trials: np.ndarray) -> Spikes:
        """The spikes of ``trials`` (increasing), renumbered 0, 1, ... in that order."""
        at = np.searchsorted(trials, self.trial)
        keep = at < trials.size
        keep[keep] = trials[at[keep]] == self.trial[keep]
        return Spikes(at[keep], self.start[keep], self.end[keep], self.size[keep])

    def _cover(self, rows: slice, n_buckets: int, bucket_s: float) -> tuple[np.ndarray, ...]:
        """Each spike of the trials in ``rows`` as the buckets it touches: trial (from
        ``rows.start``), first and last bucket (the last one past the horizon when it ends
        there), the share of the first and of the last it covers, and its size - 1."""
        first_row, stop = rows.start or 0, rows.stop
        keep = (self.trial >= first_row) & (self.trial < stop)
        t = self.trial[keep] - first_row
        start, end, amp = self.start[keep], self.end[keep], self.size[keep] - 1.0
        first = np.minimum((start // bucket_s).astype(np.int64), n_buckets - 1)
        last = np.minimum((end // bucket_s).astype(np.int64), n_buckets)
        same = first == last
        head = np.where(same, end - start, (first + 1) * bucket_s - start) / bucket_s
        tail = np.where(same | (last >= n_buckets), 0.0, (end - last * bucket_s) / bucket_s)
        return t, first, last, head, tail, amp

    def segments(self, rows: slice, n_buckets: int, bucket_s: float) -> SpikeSegments:
        """The spike multiplier of the trials in ``rows`` as runs of buckets where it is
        constant: from each trial's first spiked bucket to the end of the horizon, the excess
        over 1 of `grid` run by run (0 between spikes and after the last one).

        O(spikes), whatever the resolution: a spike is three runs (its partly covered first
        and last buckets and the whole ones between), whose openings and closings, spike by
        spike in order of start, are sorted already but where spikes overlap.
        """
        t, first, last, head, tail, amp = self._cover(rows, n_buckets, bucket_s)
        if t.size == 0:  # no spike in these trials (a rare rate, or few trials)
            none = np.zeros(0, dtype=np.int64)
            return SpikeSegments(none, none, none, np.zeros(0))
        order = np.argsort(t * (n_buckets + 1) + first, kind="stable")
        t, first, last, head, tail, amp = (a[order] for a in (t, first, last, head, tail, amp))
        same = first == last
        live = np.stack(
            [np.ones(t.size, bool), ~same & (last > first + 1), ~same & (last < n_buckets)], axis=1
        )
        lo = np.stack([first, first + 1, last], axis=1)[live]
        hi = np.stack([first + 1, last, last + 1], axis=1)[live]
        value = np.stack([amp * head, amp, amp * tail], axis=1)[live]
        trial = np.broadcast_to(t[:, None], live.shape)[live]
        # each run opens at lo and closes at hi: the events of a spike in order of bucket
        at = np.stack([lo, hi], axis=1).ravel()
        key = np.repeat(trial, 2) * (n_buckets + 1) + at
        order = np.argsort(key, kind="stable")  # nearly sorted: fast
        at, trial = at[order], np.repeat(trial, 2)[order]
        step = np.stack([value, -value], axis=1).ravel()[order]
        depth = np.cumsum(np.tile([1, -1], value.size)[order])
        level = np.cumsum(step)
        new_trial = np.r_[True, trial[1:] != trial[:-1]]
        level -= (level - step)[new_trial][np.cumsum(new_trial) - 1]  # restart per trial
        level[depth == 0] = 0.0  # no spike: exactly 1
        until = np.r_[at[1:], n_buckets]
        until[np.r_[new_trial[1:], True]] = n_buckets
        keep = until > at
        return SpikeSegments(trial[keep], at[keep], until[keep], level[keep])

    def grid(self, rows: slice, n_buckets: int, bucket_s: float) -> np.ndarray:
        """Multiplier per (trial in ``rows``, bucket): 1 + (size - 1) x share of bucket covered.

        Buckets a spike covers whole get (size - 1) through a difference array; the first and
        last, partly covered, get their fraction of it. O(spikes + trials x buckets).
        """
        first_row, stop = rows.start or 0, rows.stop
        n_rows, width = stop - first_row, n_buckets + 1
        need = n_rows * width * 8 * GRID_ARRAYS
        if need > GRID_MEMORY:
            raise ScenarioError(
                f"resolution: the spikes of {n_rows:,} trials over {n_buckets:,} buckets would "
                f"need about {need / GIB:.3g} GiB, more than the {GRID_MEMORY / GIB:g} GiB "
                "costsim allows: set a coarser resolution or a shorter horizon"
            )
        t, first, last, head, tail, amp = self._cover(rows, n_buckets, bucket_s)
        same = first == last
        size = n_rows * width
        partial = np.bincount(t * width + first, weights=amp * head, minlength=size)
        partial += np.bincount(t * width + last, weights=amp * tail, minlength=size)
        whole = ~same & (last > first + 1)
        steps = np.bincount(t[whole] * width + first[whole] + 1, weights=amp[whole], minlength=size)
        steps -= np.bincount(t[whole] * width + last[whole], weights=amp[whole], minlength=size)
        grid = np.cumsum(steps.reshape(n_rows, width), axis=1) + partial.reshape(n_rows, width)
        return np.asarray(1.0 + grid[:, :n_buckets])


@dataclass(frozen=True)
class SpikeSegments:
    """Runs of buckets over which a trial's spike multiplier is constant (`Spikes.segments`),
    in order of trial and bucket; they cover each spiked trial from its first spiked bucket to
    the end of the horizon."""

    trial: np.ndarray
    start: np.ndarray  # first bucket
    stop: np.ndarray  # one past the last bucket
    excess: np.ndarray  # the multiplier - 1

    @classmethod
    def empty(cls) -> SpikeSegments:
        """No spikes."""
        none = np.zeros(0, dtype=np.int64)
        return cls(none, none, none, np.zeros(0))


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


def traffic_key(drivers: Drivers) -> tuple[bool, bool]:
    """The drivers `draw_traffic` reads: runs whose keys agree draw the same traffic from the
    same streams."""
    return drivers.spikes, drivers.uncertainty


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
        hit = np.flatnonzero(plan.spike_hit)
        at_end, at_start = _edge_below(spikes.end, edges), _edge_below(spikes.start, edges)
        step = max(1, SPREAD_CELLS // spikes.trial.size)
        for first in range(0, hit.size, step):  # classes a few at a time: bounded memory
            cols = hit[first : first + step]
            during = _interp_columns(spikes.end, at_end, edges, cumulative[:, cols])
            during -= _interp_columns(spikes.start, at_start, edges, cumulative[:, cols])
            extra = (spikes.size - 1.0)[:, None] * during
            for k, j in enumerate(cols):
                per_class[:, j] += np.bincount(
                    spikes.trial, weights=extra[:, k], minlength=n_trials
                )
    intensity = volume[:, None] * mix_factor * per_class
    return TrialTraffic(intensity, volume, mix_factor, spikes)


def _edge_below(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The last of the evenly spaced ``edges`` at or below each x (``searchsorted(edges, x,
    'right') - 1``, from a division corrected by one where it rounds across an edge)."""
    at = np.clip(np.floor(x / edges[1]).astype(np.int64), 0, edges.size - 1)
    at -= edges[at] > x
    at += (at < edges.size - 1) & (edges[np.minimum(at + 1, edges.size - 1)] <= x)
    return at


def _interp_columns(x: np.ndarray, at: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """``np.interp(x, xp, fp[:, k])`` for every column k at once, ``x`` within [xp[0], xp[-1]]
    and ``at`` its `_edge_below`: numpy's arithmetic, slope (fp[j+1] - fp[j]) / (xp[j+1] - xp[j])
    times (x - xp[j]) plus fp[j], and fp[j] itself where x is xp[j], so the very same numbers."""
    last = xp.size - 1
    j = np.minimum(at, last - 1)
    lo = fp[j]
    slope = (fp[j + 1] - lo) / (xp[j + 1] - xp[j])[:, None]
    out = slope * (x - xp[j])[:, None] + lo
    on_edge = x == xp[j]
    out[on_edge] = lo[on_edge]
    out[at == last] = fp[last]
    return out


def _check_spike_memory(scenario: Scenario, n_trials: int) -> None:
    """Refuse, before drawing them, spikes whose arrays would not fit in `SPIKE_MEMORY`."""
    sp = scenario.traffic.spikes
    per_trial = sp.rate_per_day * scenario.horizon_s / 86400.0
    need = n_trials * per_trial * SPIKE_BYTES
    if need <= SPIKE_MEMORY:
        return
    most = min(SPIKE_MEMORY // (SPIKE_BYTES * max(n_trials, 1)), MAX_SPIKES_PER_TRIAL)
    raise ScenarioError(
        f"traffic.spikes.rate: {sp.rate_per_day:g} spikes a day over "
        f"{format_duration(scenario.horizon_s)} is about {per_trial:.3g} spikes per trial, "
        f"{need / GIB:.3g} GiB for {n_trials:,} trials; costsim holds at most {most:,} per trial: "
        "lower traffic.spikes.rate or shorten the horizon"
    )


def _draw_spikes(scenario: Scenario, n_trials: int, rng: np.random.Generator) -> Spikes | None:
    """Poisson many spikes per trial, uniform start, lognormal size, fixed duration. A
    `ScenarioError` when they would not fit in `SPIKE_MEMORY`."""
    sp = scenario.traffic.spikes
    if sp.rate_per_day <= 0:
        return None
    _check_spike_memory(scenario, n_trials)
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
