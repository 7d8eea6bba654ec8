"""Reliability on intensities (DESIGN sections 3 and 4): retries and cold starts as cost
multipliers, per trial and class, computed from the traffic of each bucket, never per request.

The pilot's own cost already contains its retries and cold starts, so a scenario that leaves
reliability alone gets a multiplier of exactly 1. Otherwise the multiplier is the scenario's
billed attempts (or cold-start cost) over the pilot's. The pilot's rates are estimates: like the
unit cost, they come in *parameter rows* (row 0 the point estimate, the others Bayesian-bootstrap
draws of the pilot's counts), and a trial uses the row its class drew for its unit cost, so a
small pilot's uncertain retry rate widens a forecast that changes the retry policy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .fit import ClassFit
from .traffic import Drivers, TrafficPlan, TrialTraffic

BLOCK_CELLS = 2_000_000  # trials x buckets held at once by the load-dependent effects
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
    expected_load = plan.base_no_events.sum(axis=1)
    mean_load = float(np.sum(expected_load**2) / max(float(expected_load.sum()), 1e-300))
    expected = expected_load / max(mean_load, 1e-300)
    retry = cold = None
    if rel.load_exponent != 0:
        pilot_like = attempts(
            cr.f_pilot[:, None] * expected[None, :] ** rel.load_exponent, cr.pilot_max, True
        )
        retry = pilot_like @ w0 / w0_sum
    if rel.spike_cold_share > 0:
        c0 = np.clip(cr.cold_pilot[:, None] + rel.spike_cold_share * _rise(w0), 0.0, 1.0)
        cold = (1.0 + c0 * (cr.cost_ratio_pilot - 1.0)) @ w0 / w0_sum
    return replace(cr, retry_norm=retry, cold_norm=cold)


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
    events cost more.
    """
    n_trials, n_classes = traffic.intensity.shape
    mult = np.ones((n_trials, n_classes))
    base = plan.base if drivers.spikes else plan.base_no_events
    retries_on = drivers.retries and retries_changed(rel)
    cold_on = drivers.cold_starts and cold_changed(rel)
    by_load = retries_on and rel.load_exponent != 0
    by_rise = cold_on and rel.spike_cold_share > 0
    if by_load or by_rise:
        expected_load = plan.base_no_events.sum(axis=1)
        mean_load = float(np.sum(expected_load**2) / max(float(expected_load.sum()), 1e-300))
        block_rows = max(1, BLOCK_CELLS // base.shape[0])
        for first in range(0, n_trials, block_rows):
            block = slice(first, min(first + block_rows, n_trials))
            _bucket_multipliers(
                plan, rel, classes, traffic, base, block, mean_load, rows, by_load, by_rise, mult
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


def _rise(lam: np.ndarray) -> np.ndarray:
    """Share of each bucket's intensity that is new since the previous bucket (last axis)."""
    prev = np.concatenate([lam[..., :1], lam[..., :-1]], axis=-1)
    return np.asarray(np.clip(1.0 - prev / np.maximum(lam, 1e-300), 0.0, 1.0))


def _bucket_multipliers(
    plan: TrafficPlan,
    rel: Any,
    classes: tuple[ClassReliability, ...],
    traffic: TrialTraffic,
    base: np.ndarray,
    block: slice,
    mean_load: float,
    rows: np.ndarray,
    by_load: bool,
    by_rise: bool,
    mult: np.ndarray,
) -> None:
    """Load- and rise-dependent multipliers for a block of trials, bucket by bucket."""
    spike = (
        traffic.spikes.grid(block, base.shape[0], plan.bucket_s)
        if traffic.spikes is not None
        else np.ones((block.stop - block.start, base.shape[0]))
    )
    mix = traffic.mix_factor[block]
    loaded = mix @ base.T + (spike - 1.0) * ((mix * plan.spike_hit) @ base.T)
    load = traffic.volume[block, None] * loaded / max(mean_load, 1e-300)
    load_k = load**rel.load_exponent if by_load else None
    for j, cr in enumerate(classes):
        if (by_load and cr.retry_norm is None) or (by_rise and cr.cold_norm is None):
            cr = with_norms(cr, plan, rel, j)  # prepared forecasts have them already
        r = rows[block, j]
        lam = np.broadcast_to(base[:, j], spike.shape)
        if plan.spike_hit[j]:
            lam = lam * spike
        if by_load and load_k is not None and cr.retry_norm is not None:
            now = attempts(cr.f[r][:, None] * load_k, cr.max_attempts, rel.billed_failures)
            mult[block, j] *= _weighted(lam, now) / cr.retry_norm[r]
        if by_rise and cr.cold_norm is not None:
            c_b = np.clip(cr.cold[r][:, None] + rel.spike_cold_share * _rise(lam), 0.0, 1.0)
            mult[block, j] *= _weighted(lam, 1.0 + c_b * (cr.cost_ratio - 1.0)) / cr.cold_norm[r]


def _weighted(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-trial average of ``values`` over buckets with ``weights``."""
    total = np.einsum("ij,ij->i", weights, values)
    return np.asarray(total / np.maximum(weights.sum(axis=1), 1e-300))
