"""Reliability on intensities (DESIGN sections 3 and 4): retries and cold starts as cost
multipliers, per trial and class, computed from the traffic of each bucket, never per request.

The pilot's own cost already contains its retries and cold starts, so a scenario that leaves
reliability alone gets a multiplier of exactly 1. Otherwise the multiplier is the scenario's
billed attempts (or cold-start cost) over the pilot's. The pilot's rates are estimates: like the
unit cost, they come in *parameter rows* (row 0 the point estimate, the others Bayesian-bootstrap
draws of the pilot's counts), and a trial uses the row its class drew for its unit cost, so a
small pilot's uncertain retry rate widens a forecast that changes the retry policy.

The load- and rise-dependent effects are averages over buckets, but none is taken bucket by
bucket: below its cap, a request's billed attempts are a polynomial in its failure probability,
so their average is a sum of load moments; cold starts below theirs are linear in the rises of
the traffic. Both sums are taken per group of buckets whose base intensities share a direction
(`costsim.simulate.traffic.BucketGroups`: the hours of the day), corrected over the runs of
buckets a spike covers (`costsim.simulate.traffic.Spikes.segments`): the work grows with trials x
groups and with spikes, not with buckets. Trials where a cap binds are done bucket by bucket.
Either way the numbers are the bucket-by-bucket ones up to rounding
(``tests/test_fast_kernels.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np
from scipy import sparse

from ..model.fit import ClassFit
from .traffic import BucketGroups, Drivers, Spikes, SpikeSegments, TrafficPlan, TrialTraffic

BLOCK_CELLS = 2_000_000  # trials x buckets held at once by the load-dependent effects
_RISE_CELLS = 1 << 17  # spike edges x classes at once in `_GroupLoad.rises`: 1 MiB an array
_SPIKE_EVENTS = 16  # values held per spike while its segments are sorted out (`_block_rows`)
_BISECT_STEPS = 60


def attempts(f: np.ndarray, max_attempts: int, billed_failures: bool) -> np.ndarray:
    """Billed attempts per request when each attempt fails with probability f and a request
    makes at most ``max_attempts``: (1 - f^m) / (1 - f) attempts, of which 1 - f^m succeed."""
    f = np.minimum(f, 0.999)
    f_m = np.array(f, dtype=float, copy=True)
    for _ in range(max_attempts - 1):  # f ** m by repeated products: much cheaper than pow
        f_m *= f
    succeeded = 1.0 - f_m
    return np.asarray(succeeded / (1.0 - f) if billed_failures else succeeded)


def _failure_probability(target: np.ndarray, pilot_max: int) -> np.ndarray:
    """The per-attempt failure probability f at which a request limited to ``pilot_max``
    attempts makes ``target`` attempts on average (bisection, element-wise: attempts rise
    with f)."""
    lo = np.zeros_like(target)
    hi = np.full_like(target, 0.999)
    for _ in range(_BISECT_STEPS):
        mid = 0.5 * (lo + hi)
        below = attempts(mid, pilot_max, True) < target
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def _bootstrap_shares(counts: np.ndarray, rows: int, rng: np.random.Generator) -> np.ndarray:
    """(rows, categories) category shares: row 0 the observed ones, the others Bayesian
    bootstrap draws (Dirichlet with the observed counts; an unseen category stays unseen)."""
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    shares = np.empty((rows, counts.size))
    shares[0] = counts / total if total > 0 else 0.0
    if rows > 1:
        seen = counts > 0
        g = np.zeros((rows - 1, counts.size))
        g[:, seen] = rng.gamma(counts[seen], size=(rows - 1, int(seen.sum())))
        shares[1:] = g / np.maximum(g.sum(axis=1, keepdims=True), 1e-300)
    return shares


@dataclass(frozen=True)
class ClassReliability:
    """One class's retry and cold-start behaviour, the pilot's and the scenario's.

    The pilot made at most ``pilot_max`` attempts; its per-attempt failure probability
    ``f_pilot`` is the one at which that many attempts average 1 + mean(retries). ``f`` and
    ``max_attempts`` are the scenario's (the pilot's unless it sets them). Arrays have one
    element per parameter row.
    """

    f_pilot: np.ndarray
    pilot_max: int
    f: np.ndarray
    max_attempts: int
    cold_pilot: np.ndarray  # cold-start rate per row
    cold: np.ndarray  # the scenario's cold-start rate per row
    cost_ratio_pilot: float
    cost_ratio: float
    retry_norm: np.ndarray | None = None  # per row: the pilot's attempts under the expected load
    cold_norm: np.ndarray | None = None  # per row: the pilot's cold-start cost, expected traffic


def with_norms(cr: ClassReliability, plan: TrafficPlan, rel: Any, j: int) -> ClassReliability:
    """The class's load- and rise-dependent norms, once per forecast: the pilot's behaviour
    (each parameter row's) averaged over the scenario's expected traffic of class ``j``."""
    w0 = plan.base_no_events[:, j]
    w0_sum = max(float(w0.sum()), 1e-300)
    expected = plan.base_no_events.sum(axis=1) / max(_mean_load(plan), 1e-300)
    retry = cold = None
    if rel.load_exponent != 0:
        pilot_like = _billed_attempts(cr.f_pilot, expected**rel.load_exponent, w0, cr.pilot_max)
        retry = pilot_like / w0_sum
    if rel.spike_cold_share > 0:
        cold = _cold_cost(cr.cold_pilot, rel.spike_cold_share, _rise(w0), w0, cr.cost_ratio_pilot)
        cold = cold / w0_sum
    if not w0.sum() > 0:  # a class the scenario sends no traffic: nothing to scale (not 0 / 0)
        retry = None if retry is None else np.ones_like(retry)
        cold = None if cold is None else np.ones_like(cold)
    return replace(cr, retry_norm=retry, cold_norm=cold)


def _mean_load(plan: TrafficPlan) -> float:
    """The request-weighted mean of the expected load: loads are relative to it."""
    expected_load = plan.base_no_events.sum(axis=1)
    return float(np.sum(expected_load**2) / max(float(expected_load.sum()), 1e-300))


def _billed_attempts(
    f: np.ndarray, x: np.ndarray, weights: np.ndarray, max_attempts: int
) -> np.ndarray:
    """sum_b weights_b attempts(f x_b), billed, for each f: from the moments
    sum_b weights_b (x_b / max x)^k where f max(x) is below the cap of 0.999, bucket by bucket
    elsewhere (attempts are the polynomial 1 + fx + ... + (fx)^(m-1) below the cap)."""
    peak = float(x.max(initial=0.0)) or 1.0
    direct = ~(f * peak <= 0.999)
    reach = np.where(direct, 0.0, f * peak)
    y = x / peak
    moments = np.empty(max_attempts)
    y_k = np.ones_like(y)
    for k in range(max_attempts):
        moments[k] = weights @ y_k
        y_k *= y
    out = np.full(f.shape, moments[-1])
    for k in range(max_attempts - 2, -1, -1):  # Horner
        out = out * reach + moments[k]
    if direct.any():
        out[direct] = attempts(f[direct, None] * x[None, :], max_attempts, True) @ weights
    return out


def _cold_cost(
    cold: np.ndarray, share: float, rise: np.ndarray, weights: np.ndarray, ratio: float
) -> np.ndarray:
    """sum_b weights_b (1 + c_b (ratio - 1)) with c_b = min(cold + share rise_b, 1), for each
    cold rate: linear in the rise where the cap at 1 cannot bind, bucket by bucket elsewhere."""
    total = weights.sum()
    out = total + (ratio - 1.0) * (cold * total + share * (weights @ rise))
    capped = cold + share > 1.0
    if capped.any():
        c = np.clip(cold[capped, None] + share * rise, 0.0, 1.0)
        out[capped] = (1.0 + c * (ratio - 1.0)) @ weights
    return np.asarray(out)


def class_reliability(
    cf: ClassFit, rel: Any, rows: int, seed: np.random.SeedSequence
) -> ClassReliability:
    """A class's reliability rows from its pilot counts and the scenario's reliability block."""
    rng_retry, rng_cold = (np.random.default_rng(s) for s in seed.spawn(2))
    r = cf.rates
    n = max(cf.requests, 1)
    if r.retry_pmf:
        pilot_max = max(len(r.retry_pmf), 1)
        shares = _bootstrap_shares(np.asarray(r.retry_pmf) * n, rows, rng_retry)
        mean_retries = shares @ np.arange(len(r.retry_pmf), dtype=float)
        f_pilot = (
            _failure_probability(1.0 + mean_retries, pilot_max) if pilot_max > 1 else np.zeros(rows)
        )
    else:
        pilot_max, f_pilot = 1, np.zeros(rows)
    c = r.cold_start_rate or 0.0
    cold_pilot = _bootstrap_shares(np.array([c * n, (1.0 - c) * n]), rows, rng_cold)[:, 0]
    f = np.full(rows, rel.error_rate) if rel.error_rate is not None else f_pilot
    m = rel.max_attempts if rel.max_attempts is not None else pilot_max
    cold = np.full(rows, rel.cold_start_rate) if rel.cold_start_rate is not None else cold_pilot
    rho_p = r.cold_start_cost_ratio or 1.0
    rho = rel.cold_start_cost_ratio if rel.cold_start_cost_ratio is not None else rho_p
    return ClassReliability(f_pilot, pilot_max, f, m, cold_pilot, cold, rho_p, rho)


def retries_changed(rel: Any) -> bool:
    return not (
        rel.error_rate is None
        and rel.load_exponent == 0
        and rel.max_attempts is None
        and rel.billed_failures
    )


def cold_changed(rel: Any) -> bool:
    return not (
        rel.cold_start_rate is None
        and rel.cold_start_cost_ratio is None
        and rel.spike_cold_share == 0
    )


def multipliers(
    plan: TrafficPlan,
    rel: Any,
    classes: tuple[ClassReliability, ...],
    traffic: TrialTraffic,
    drivers: Drivers,
    rows: np.ndarray,
) -> np.ndarray:
    """Per-trial, per-class cost multipliers of retries x cold starts.

    ``rows`` (trials x classes) is the parameter row each trial uses. Where the effects depend
    on load, they are computed per bucket, averaged with the class's intensity as weights, and
    divided by the same average over the scenario's expected traffic under the pilot's
    behaviour: traffic shaped as expected costs what the pilot's behaviour costs, spikes and
    events cost more. (The averages come from sums over groups of buckets and spike segments,
    `_traffic_multipliers`.)
    """
    n_trials, n_classes = traffic.intensity.shape
    mult = np.ones((n_trials, n_classes))
    retries_on = drivers.retries and retries_changed(rel)
    cold_on = drivers.cold_starts and cold_changed(rel)
    by_load = retries_on and rel.load_exponent != 0
    by_rise = cold_on and rel.spike_cold_share > 0
    if by_load or by_rise:
        normed = tuple(
            with_norms(cr, plan, rel, j)  # prepared forecasts have them already
            if (by_load and cr.retry_norm is None) or (by_rise and cr.cold_norm is None)
            else cr
            for j, cr in enumerate(classes)
        )
        _traffic_multipliers(
            plan, rel, normed, traffic, drivers.spikes, rows, (by_load, by_rise), mult
        )
    for j, cr in enumerate(classes):
        r = rows[:, j]
        if retries_on and not by_load:
            pilot = attempts(cr.f_pilot, cr.pilot_max, True)
            now = attempts(cr.f, cr.max_attempts, rel.billed_failures)
            mult[:, j] *= (now / pilot)[r]
        if cold_on and not by_rise:
            pilot_cost = 1.0 + cr.cold_pilot * (cr.cost_ratio_pilot - 1.0)
            now_cost = 1.0 + cr.cold * (cr.cost_ratio - 1.0)
            mult[:, j] *= (now_cost / pilot_cost)[r]
    return mult


def _traffic_multipliers(
    plan: TrafficPlan,
    rel: Any,
    classes: tuple[ClassReliability, ...],
    traffic: TrialTraffic,
    events: bool,
    rows: np.ndarray,
    effects: tuple[bool, bool],
    mult: np.ndarray,
) -> None:
    """The load- (retries) and rise-dependent (cold starts) ``effects``, block of trials by
    block: from sums per group of buckets (`_GroupLoad`), and bucket by bucket for the trials
    where those do not hold (`_bucket_ratios`)."""
    by_load, by_rise = effects
    base, groups = (
        (plan.base, plan.groups) if events else (plan.base_no_events, plan.groups_no_events)
    )
    n_trials, n_buckets = mult.shape[0], base.shape[0]
    mean_load = _mean_load(plan)
    spikes = traffic.spikes
    block_rows = _block_rows(groups, spikes, n_trials, plan.bucket_s)
    for first in range(0, n_trials, block_rows):
        block = slice(first, min(first + block_rows, n_trials))
        segments = (
            spikes.segments(block, n_buckets, plan.bucket_s)
            if spikes is not None
            else SpikeSegments.empty()
        )
        load = _GroupLoad.of(groups, plan.spike_hit, traffic, segments, block, mean_load)
        r = rows[block]
        requests = load.moment(load.unit_powers())  # per trial and class: sum_b lam_b
        retry = cold = None
        redo = load.below_zero()
        if by_load:
            retry, capped = _retry_ratios(load, rel, classes, r, requests)
            redo |= capped
        if by_rise:
            cold, capped = _cold_ratios(load, rel, classes, r, requests, base)
            redo |= capped
        if redo.any():
            trials = np.flatnonzero(redo) + first
            exact = _bucket_ratios(plan, rel, classes, traffic, base, trials, rows, mean_load)
            if retry is not None:
                retry[redo] = exact[0]
            if cold is not None:
                cold[redo] = exact[1]
        if retry is not None:
            mult[block] *= retry / _per_row([cr.retry_norm for cr in classes], r)
        if cold is not None:
            mult[block] *= cold / _per_row([cr.cold_norm for cr in classes], r)


def _block_rows(groups: BucketGroups, spikes: Spikes | None, n_trials: int, bucket_s: float) -> int:
    """Trials per block, so that a block holds about `BLOCK_CELLS` values: one per trial and
    group, and per spike a few events and a piece per block of buckets it touches (about)."""
    per_trial = float(groups.n_groups)
    if spikes is not None and spikes.trial.size:
        blocks_per_bucket = (groups.block_start.size - 1) / groups.block.size
        spiked = float(np.sum(spikes.end - spikes.start)) / bucket_s  # spiked buckets, about
        values = _SPIKE_EVENTS * spikes.trial.size + spiked * blocks_per_bucket
        per_trial += values / max(n_trials, 1)
    return max(1, int(BLOCK_CELLS // per_trial))


def _per_row(values: list[np.ndarray | None], rows: np.ndarray) -> np.ndarray:
    """(trials x classes): each class's per-row ``values`` at the rows its trials use."""
    return np.column_stack([np.asarray(v)[rows[:, j]] for j, v in enumerate(values)])


def _retry_ratios(
    load: _GroupLoad,
    rel: Any,
    classes: tuple[ClassReliability, ...],
    rows: np.ndarray,
    requests: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Billed attempts per request averaged over each trial's buckets, weighted by the class's
    requests (trials x classes), and the trials where that average needs `_bucket_ratios`.

    A bucket's per-attempt failure probability is x = f (load / mean load)^e and a request
    bills 1 + x + ... + x^(m-1) attempts (of which 1 - x^m succeed), so the weighted sum over
    buckets is sum_k f^k M_k, with the load moments M_k = sum_b lam_b load_b^(k e): exact
    wherever x stays below its cap of 0.999, which holds where f at the trial's peak load does.
    The moments are taken relative to the peak of `_GroupLoad`, so that they stay at most 1.
    """
    e = rel.load_exponent
    f = _per_row([cr.f for cr in classes], rows)
    m = np.array([cr.max_attempts for cr in classes])
    billed = rel.billed_failures
    with np.errstate(over="ignore", invalid="ignore"):
        top = f * ((load.trial_scale * load.top) ** e)[:, None]  # x at the trial's top load
        reach = f * ((load.trial_scale * load.peak) ** e)[:, None]
    capped = ~(top <= 0.999) & ((m > 1) | (not billed))  # one billed attempt: no f at all
    reach = np.where(capped, 0.0, reach)
    needed = set(range(int(m.max()))) if billed else {0, *m.tolist()}
    total = np.zeros_like(f) if billed else requests.copy()
    reach_k = np.ones_like(f)
    first, powers = load.powers(e), load.unit_powers()
    for k in range(max(needed) + 1):
        if k in needed:
            moment = requests if k == 0 else load.moment(powers)
            if billed:
                total += np.where(k < m, reach_k * moment, 0.0)
            else:
                total -= np.where(k == m, reach_k * moment, 0.0)
        reach_k *= reach
        powers = powers.times(first)
    ratio = total / np.maximum(requests, 1e-300)
    return ratio, capped.any(axis=1) | ~np.isfinite(ratio).all(axis=1)


def _cold_ratios(
    load: _GroupLoad,
    rel: Any,
    classes: tuple[ClassReliability, ...],
    rows: np.ndarray,
    requests: np.ndarray,
    base: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Cost per request with cold starts, averaged over each trial's buckets, weighted by the
    class's requests (trials x classes), and the trials where that needs `_bucket_ratios`.

    A bucket's cold share is c_b = cold + s rise_b, capped at 1, and lam_b rise_b is the rise
    of the class's requests from the bucket before, max(lam_b - lam_(b-1), 0); so where
    cold + s <= 1 the cap cannot bind and sum_b lam_b c_b = cold sum_b lam_b + s (sum of rises).
    """
    cold = _per_row([cr.cold for cr in classes], rows)
    share = rel.spike_cold_share
    ratio = np.array([cr.cost_ratio for cr in classes])
    cold_requests = cold * requests + share * load.rises(base)
    cost = (requests + (ratio - 1.0) * cold_requests) / np.maximum(requests, 1e-300)
    return cost, (cold + share > 1.0).any(axis=1)


def _bucket_ratios(
    plan: TrafficPlan,
    rel: Any,
    classes: tuple[ClassReliability, ...],
    traffic: TrialTraffic,
    base: np.ndarray,
    trials: np.ndarray,
    rows: np.ndarray,
    mean_load: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The ratios of `_retry_ratios` and `_cold_ratios` for some ``trials``, bucket by bucket:
    where a failure probability reaches its cap, cold starts theirs, or a spike multiplier falls
    below 0 (overlapping dips), the sums over groups of buckets do not hold."""
    n_buckets = base.shape[0]
    retry = np.empty((trials.size, len(classes)))
    cold = np.empty((trials.size, len(classes)))
    spikes = traffic.spikes.of_trials(trials) if traffic.spikes is not None else None
    step = max(1, BLOCK_CELLS // n_buckets)
    for first in range(0, trials.size, step):
        part = slice(first, min(first + step, trials.size))
        t = trials[part]
        spike = (
            spikes.grid(part, n_buckets, plan.bucket_s)
            if spikes is not None
            else np.ones((t.size, n_buckets))
        )
        mix = traffic.mix_factor[t]
        loaded = mix @ base.T + (spike - 1.0) * ((mix * plan.spike_hit) @ base.T)
        load_k = (traffic.volume[t, None] * loaded / max(mean_load, 1e-300)) ** rel.load_exponent
        for j, cr in enumerate(classes):
            r = rows[t, j]
            lam = np.broadcast_to(base[:, j], spike.shape)
            if plan.spike_hit[j]:
                lam = lam * spike
            now = attempts(cr.f[r][:, None] * load_k, cr.max_attempts, rel.billed_failures)
            retry[part, j] = _weighted(lam, now)
            c_b = np.clip(cr.cold[r][:, None] + rel.spike_cold_share * _rise(lam), 0.0, 1.0)
            cold[part, j] = _weighted(lam, 1.0 + c_b * (cr.cost_ratio - 1.0))
    return retry, cold


def _rise(lam: np.ndarray) -> np.ndarray:
    """Share of each bucket's intensity that is new since the previous bucket (last axis)."""
    prev = np.concatenate([lam[..., :1], lam[..., :-1]], axis=-1)
    return np.asarray(np.clip(1.0 - prev / np.maximum(lam, 1e-300), 0.0, 1.0))


def _weighted(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-trial average of ``values`` over buckets with ``weights``."""
    total = np.einsum("ij,ij->i", weights, values)
    return np.asarray(total / np.maximum(weights.sum(axis=1), 1e-300))


@dataclass(frozen=True)
class _GroupLoad:
    """The load of a block of trials, per group of buckets (`costsim.simulate.traffic.BucketGroups`)
    and per spiked piece: a run of buckets of one block under one spike multiplier S.

    An unspiked bucket b of group g carries the load trial_scale_t scale_b group_load[t, g], a
    spiked one trial_scale_t scale_b (group_load + (S - 1) hit_load)[t, g] (its piece's
    ``piece_load``): requests over the mean load, spikes raising only the classes they hit.
    ``peak`` bounds both per trial (scale_b <= 1), so that powers of loads over it stay in
    [0, 1]; ``top`` bounds the loads themselves, a piece's with its block's largest scale_b.
    Sums over buckets then need the groups' sums and a correction per piece.
    """

    groups: BucketGroups
    hit: np.ndarray  # (classes,) the classes spikes hit
    trial_scale: np.ndarray  # (trials,): volume / mean load
    group_load: np.ndarray  # (trials, groups)
    peak: np.ndarray  # (trials,)
    top: np.ndarray  # (trials,): at least every bucket's load / trial_scale
    segments: SpikeSegments  # the block's, trials counted from the block's first
    piece_trial: np.ndarray
    piece_group: np.ndarray
    piece_start: np.ndarray  # first bucket
    piece_stop: np.ndarray  # one past the last
    piece_excess: np.ndarray  # S - 1
    piece_load: np.ndarray

    @classmethod
    def of(
        cls,
        groups: BucketGroups,
        hit: np.ndarray,
        traffic: TrialTraffic,
        seg: SpikeSegments,
        block: slice,
        mean_load: float,
    ) -> _GroupLoad:
        """The load of the trials in ``block`` (``seg``: their spikes')."""
        mix = traffic.mix_factor[block]
        group_load = mix @ groups.rows.T
        live = seg.excess != 0.0
        start, stop = seg.start[live], seg.stop[live]
        first, n = groups.block[start], groups.block[stop - 1] - groups.block[start] + 1
        which = np.repeat(np.arange(start.size), n)  # a segment's pieces: one per block
        blk = first[which] + np.arange(which.size) - np.repeat(np.cumsum(n) - n, n)
        p_start = np.maximum(start[which], groups.block_start[blk])
        p_stop = np.minimum(stop[which], groups.block_start[blk + 1])
        p_trial, p_group = seg.trial[live][which], groups.group[p_start]
        p_excess = seg.excess[live][which]
        hit_load = group_load if hit.all() else (mix * hit) @ groups.rows.T
        p_load = group_load[p_trial, p_group] + p_excess * hit_load[p_trial, p_group]
        peak = group_load.max(axis=1, initial=0.0)
        top = peak.copy()  # a group's largest bucket has scale 1
        np.maximum.at(peak, p_trial, p_load)
        np.maximum.at(top, p_trial, p_load * groups.block_scale[blk])
        return cls(
            groups, hit, traffic.volume[block] / max(mean_load, 1e-300), group_load,
            np.where(peak > 0.0, peak, 1.0), top, seg, p_trial, p_group, p_start, p_stop,
            p_excess, p_load,
        )  # fmt: skip

    def below_zero(self) -> np.ndarray:
        """The trials with a spike multiplier below 0 somewhere (overlapping dips)."""
        n_trials = self.group_load.shape[0]
        low = np.bincount(
            self.segments.trial, weights=self.segments.excess < -1.0, minlength=n_trials
        )
        return low > 0

    def powers(self, exponent: float) -> _LoadPowers:
        """The factor from one power k of `_LoadPowers` to the next: (load / peak)^exponent per
        trial and group, per piece and the piece's unspiked one, and scale_b^exponent."""
        group = (self.group_load / self.peak[:, None]) ** exponent
        with np.errstate(invalid="ignore"):  # a load below 0: its trial is done bucket by bucket
            piece = (self.piece_load / self.peak[self.piece_trial]) ** exponent
        unspiked = group[self.piece_trial, self.piece_group]
        return _LoadPowers(group, piece, unspiked, self.groups.scale**exponent)

    def unit_powers(self) -> _LoadPowers:
        """The powers k = 0 of `_LoadPowers`."""
        n_trials, n_groups = self.group_load.shape
        n_pieces = self.piece_trial.size
        return _LoadPowers(
            np.ones((n_trials, n_groups)), np.ones(n_pieces), np.ones(n_pieces), self.groups.scale
        )

    def moment(self, powers: _LoadPowers) -> np.ndarray:
        """sum_b lam_b (scale_b load_b / peak)^(k e) per trial and class (lam: the class's
        requests, per unit of trial volume and mix), from the k-th `_LoadPowers`: the groups'
        sums, and per spiked piece its difference from them."""
        group_k, piece_k, unspiked_k, weight = powers
        g = self.groups
        n_trials, n_groups = group_k.shape
        dense = group_k * g.group_sums(weight)
        cell = self.piece_trial * n_groups + self.piece_group
        in_piece = g.range_sums(g.block_prefix(weight), weight, self.piece_start, self.piece_stop)
        out = np.empty((n_trials, self.hit.size))
        for cols, spiked in ((self.hit, True), (~self.hit, False)):
            if cols.any():  # a piece's requests: S times theirs where spikes hit the class
                lam = (1.0 + self.piece_excess) * piece_k if spiked else piece_k
                extra = np.bincount(cell, (lam - unspiked_k) * in_piece, dense.size)
                out[:, cols] = (dense + extra.reshape(dense.shape)) @ g.rows[:, cols]
        return out

    def rises(self, base: np.ndarray) -> np.ndarray:
        """sum_b max(lam_b - lam_(b-1), 0) per trial and class (lam: the class's requests).

        Where the spike multiplier S is the same in b and b - 1, the rise is S times the base's
        (for S >= 0); so the sum is the base's, plus (S - 1) times the base's rises over each
        segment, plus at the first bucket of each segment the exact term less that estimate.
        """
        n_trials = self.group_load.shape[0]
        rise = np.zeros_like(base)
        rise[1:] = np.maximum(base[1:] - base[:-1], 0.0)
        out = np.tile(rise.sum(axis=0), (n_trials, 1))
        seg = self.segments
        hit = self.hit
        if not seg.trial.size or not hit.any():
            return out
        lam, rise = np.ascontiguousarray(base[:, hit]), np.ascontiguousarray(rise[:, hit])
        cum = np.vstack([np.zeros(lam.shape[1]), np.cumsum(rise, axis=0)])
        spiked = _per_trial(  # (S - 1) x the base's rises over each segment
            n_trials,
            np.repeat(seg.trial, 2),
            np.stack([seg.stop, seg.start], axis=1).ravel(),
            np.stack([seg.excess, -seg.excess], axis=1).ravel(),
            cum,
        )
        first = np.r_[True, seg.trial[1:] != seg.trial[:-1]]
        before = np.where(first, 0.0, np.r_[0.0, seg.excess[:-1]])
        at = seg.start >= 1
        trial, b = seg.trial[at], seg.start[at]
        s_now, s_before = 1.0 + seg.excess[at, None], 1.0 + before[at, None]
        step = max(1, _RISE_CELLS // lam.shape[1])
        for lo in range(0, b.size, step):  # a slice of change points at a time: in cache
            part = slice(lo, lo + step)
            exact = _rise_step(lam, rise, b[part], s_now[part], s_before[part])
            t = trial[part]
            first_t = int(t[0])
            rows = slice(first_t, int(t[-1]) + 1)
            spiked[rows] += _per_trial(
                rows.stop - first_t, t - first_t, np.arange(t.size), np.ones(t.size), exact
            )
        out[:, hit] += spiked
        return out


def _rise_step(
    lam: np.ndarray, rise: np.ndarray, b: np.ndarray, s_now: np.ndarray, s_before: np.ndarray
) -> np.ndarray:
    """At buckets ``b`` where the spike multiplier changes from ``s_before`` to ``s_now``: the
    rise of the requests, max(s_now lam_b - s_before lam_(b-1), 0), less s_now rise_b."""
    now, exact = np.take(lam, b, axis=0), np.take(lam, b - 1, axis=0)
    now *= s_now
    exact *= s_before
    np.subtract(now, exact, out=exact)
    np.maximum(exact, 0.0, out=exact)
    now = np.take(rise, b, axis=0)
    now *= s_now
    exact -= now
    return exact


class _LoadPowers(NamedTuple):
    """Powers of the relative loads of a `_GroupLoad`, (load / peak)^(k exponent): per trial
    and group, per spiked piece and the piece's unspiked one; and scale_b^(1 + k exponent) per
    bucket, its share of its group's requests times its share of the load to that power."""

    group: np.ndarray
    piece: np.ndarray
    unspiked: np.ndarray
    weight: np.ndarray

    def times(self, factor: _LoadPowers) -> _LoadPowers:
        """The next power k + 1 (``factor``: `_GroupLoad.powers`)."""
        return _LoadPowers(*(a * b for a, b in zip(self, factor, strict=True)))


def _per_trial(
    n_trials: int, trial: np.ndarray, row: np.ndarray, weight: np.ndarray, table: np.ndarray
) -> np.ndarray:
    """sum of weight x table[row] over the entries of each trial (``trial`` non-decreasing): a
    sparse product, its rows laid out directly."""
    indptr = np.r_[0, np.cumsum(np.bincount(trial, minlength=n_trials))]
    pick = sparse.csr_matrix((weight, row, indptr), shape=(n_trials, table.shape[0]))
    return np.asarray(pick @ table)
