"""The fast traffic and engine kernels against frozen copies of the ones they replaced.

The reference functions below are the implementations as they were before the faster kernels
(issue 11, part 3), copied verbatim but for names and docstrings. On randomised inputs (fixed
seeds) the fast kernels give the same numbers: multipliers to 1e-10 relative (the sums over
groups of buckets and spike segments round differently from the sums over buckets), Poisson
counts, quantiles and trial intensities to the bit. (The strata and `aggregate` were redesigned
since, with other numbers: tests/test_strata.py.) ``benchmarks/bench_traffic.py`` times the
two against each other.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml
from scipy import special

from costsim.model.file import load_model
from costsim.model.fit import FittedModel
from costsim.model.splice import tail_exceedance
from costsim.scenario import Scenario, parse_scenario
from costsim.simulate import reliability
from costsim.simulate.inversion import poisson_inverse
from costsim.simulate.reliability import (
    ClassReliability,
    class_reliability,
    cold_changed,
    multipliers,
    retries_changed,
    with_norms,
)
from costsim.simulate.repricing import quantity_rows
from costsim.simulate.traffic import (
    GROUP_TOLERANCE,
    MAX_BLOCK,
    Drivers,
    Spikes,
    TrafficPlan,
    TrialTraffic,
    _draw_spikes,
    _edge_below,
    _interp_columns,
    _row_classes,
    bucket_groups,
    build_plan,
    draw_traffic,
    mix_factors,
)
from costsim.simulate.unitcost import UnitCost

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "launch_month.yaml"

# ---------------------------------------------------------------------------------------------
# Frozen reference: costsim.simulate.reliability and costsim.simulate.traffic as they were
# ---------------------------------------------------------------------------------------------

REF_BLOCK_CELLS = 2_000_000


def ref_attempts(f: np.ndarray, max_attempts: int, billed_failures: bool) -> np.ndarray:
    f = np.minimum(f, 0.999)
    f_m = np.array(f, dtype=float, copy=True)
    for _ in range(max_attempts - 1):
        f_m *= f
    succeeded = 1.0 - f_m
    return np.asarray(succeeded / (1.0 - f) if billed_failures else succeeded)


def ref_grid(spikes: Spikes, rows: slice, n_buckets: int, bucket_s: float) -> np.ndarray:
    first_row, stop = rows.start or 0, rows.stop
    n_rows, width = stop - first_row, n_buckets + 1
    keep = (spikes.trial >= first_row) & (spikes.trial < stop)
    t = spikes.trial[keep] - first_row
    start, end, amp = spikes.start[keep], spikes.end[keep], spikes.size[keep] - 1.0
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


def ref_with_norms(cr: ClassReliability, plan: TrafficPlan, rel: Any, j: int) -> ClassReliability:
    w0 = plan.base_no_events[:, j]
    w0_sum = max(float(w0.sum()), 1e-300)
    expected_load = plan.base_no_events.sum(axis=1)
    mean_load = float(np.sum(expected_load**2) / max(float(expected_load.sum()), 1e-300))
    expected = expected_load / max(mean_load, 1e-300)
    retry = cold = None
    if rel.load_exponent != 0:
        pilot_like = ref_attempts(
            cr.f_pilot[:, None] * expected[None, :] ** rel.load_exponent, cr.pilot_max, True
        )
        retry = pilot_like @ w0 / w0_sum
    if rel.spike_cold_share > 0:
        c0 = np.clip(cr.cold_pilot[:, None] + rel.spike_cold_share * ref_rise(w0), 0.0, 1.0)
        cold = (1.0 + c0 * (cr.cost_ratio_pilot - 1.0)) @ w0 / w0_sum
    return replace(cr, retry_norm=retry, cold_norm=cold)


def ref_multipliers(
    plan: TrafficPlan,
    rel: Any,
    classes: tuple[ClassReliability, ...],
    traffic: TrialTraffic,
    drivers: Drivers,
    rows: np.ndarray,
) -> np.ndarray:
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
        block_rows = max(1, REF_BLOCK_CELLS // base.shape[0])
        for first in range(0, n_trials, block_rows):
            block = slice(first, min(first + block_rows, n_trials))
            _ref_bucket_multipliers(
                plan, rel, classes, traffic, base, block, mean_load, rows, by_load, by_rise, mult
            )
    for j, cr in enumerate(classes):
        r = rows[:, j]
        if retries_on and not by_load:
            pilot = ref_attempts(cr.f_pilot, cr.pilot_max, True)
            now = ref_attempts(cr.f, cr.max_attempts, rel.billed_failures)
            mult[:, j] *= (now / pilot)[r]
        if cold_on and not by_rise:
            pilot_cost = 1.0 + cr.cold_pilot * (cr.cost_ratio_pilot - 1.0)
            now_cost = 1.0 + cr.cold * (cr.cost_ratio - 1.0)
            mult[:, j] *= (now_cost / pilot_cost)[r]
    return mult


def ref_rise(lam: np.ndarray) -> np.ndarray:
    prev = np.concatenate([lam[..., :1], lam[..., :-1]], axis=-1)
    return np.asarray(np.clip(1.0 - prev / np.maximum(lam, 1e-300), 0.0, 1.0))


def _ref_bucket_multipliers(
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
    spike = (
        ref_grid(traffic.spikes, block, base.shape[0], plan.bucket_s)
        if traffic.spikes is not None
        else np.ones((block.stop - block.start, base.shape[0]))
    )
    mix = traffic.mix_factor[block]
    loaded = mix @ base.T + (spike - 1.0) * ((mix * plan.spike_hit) @ base.T)
    load = traffic.volume[block, None] * loaded / max(mean_load, 1e-300)
    load_k = load**rel.load_exponent if by_load else None
    for j, cr in enumerate(classes):
        if (by_load and cr.retry_norm is None) or (by_rise and cr.cold_norm is None):
            cr = ref_with_norms(cr, plan, rel, j)
        r = rows[block, j]
        lam = np.broadcast_to(base[:, j], spike.shape)
        if plan.spike_hit[j]:
            lam = lam * spike
        if by_load and load_k is not None and cr.retry_norm is not None:
            now = ref_attempts(cr.f[r][:, None] * load_k, cr.max_attempts, rel.billed_failures)
            mult[block, j] *= _ref_weighted(lam, now) / cr.retry_norm[r]
        if by_rise and cr.cold_norm is not None:
            c_b = np.clip(cr.cold[r][:, None] + rel.spike_cold_share * ref_rise(lam), 0.0, 1.0)
            mult[block, j] *= (
                _ref_weighted(lam, 1.0 + c_b * (cr.cost_ratio - 1.0)) / cr.cold_norm[r]
            )


def _ref_weighted(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    total = np.einsum("ij,ij->i", weights, values)
    return np.asarray(total / np.maximum(weights.sum(axis=1), 1e-300))


def ref_draw_traffic(
    plan: TrafficPlan,
    scenario: Scenario,
    n_trials: int,
    drivers: Drivers,
    rng_volume: np.random.Generator,
    rng_spikes: np.random.Generator,
    gammas: np.ndarray,
) -> TrialTraffic:
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


# ---------------------------------------------------------------------------------------------
# Frozen reference: costsim.simulate.engine as it was
# ---------------------------------------------------------------------------------------------

_REF_POISSON_EXACT_BELOW = 40.0
_REF_POISSON_MAX_K = 160


def ref_poisson_inverse(mu: np.ndarray, u: np.ndarray) -> np.ndarray:
    mu = np.asarray(mu, dtype=float)
    u = np.broadcast_to(np.asarray(u, dtype=float), mu.shape)
    out = np.zeros(mu.shape)
    big = mu >= _REF_POISSON_EXACT_BELOW
    if big.any():
        m, z = mu[big], special.ndtri(np.clip(u[big], 1e-16, 1 - 1e-16))
        root = np.sqrt(m)
        x = m + z * root + (z * z - 1.0) / 6.0 + (z**3 - 7.0 * z) / (72.0 * root)
        out[big] = np.maximum(np.ceil(x - 0.5), 0.0)
    small = ~big & (mu > 0)
    if small.any():
        m, v = mu[small], u[small]
        pmf = np.exp(-m)
        cdf = pmf.copy()
        n = np.zeros(m.shape)
        for k in range(1, _REF_POISSON_MAX_K):
            below = cdf < v
            if not below.any():
                break
            n += below
            pmf = pmf * m / k
            cdf = cdf + pmf
        out[small] = n
    return out


def ref_ppf_rows(unit: UnitCost, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
    d = unit.dist
    q = np.asarray(q, dtype=float)
    rows = np.broadcast_to(np.asarray(rows), q.shape)
    zeta = unit.tail_prob[rows] if unit.tail_prob is not None else np.full(q.shape, d.tail_prob)
    body_mass = 1.0 - zeta
    with np.errstate(divide="ignore", invalid="ignore"):
        r_body = np.where(body_mass > 0, np.clip(q / body_mass, 0.0, 1.0), 1.0)
    if unit.body_cum is None:
        out = np.interp(r_body, d.body_probs, d.body_quantiles)
    else:
        out = _ref_interp_rows(r_body, rows, unit.body_cum, d.body_quantiles)
    if d.has_tail:
        in_tail = (q > body_mass) & (zeta > 0)
        if np.any(in_tail):
            r = np.clip((q[in_tail] - body_mass[in_tail]) / zeta[in_tail], 0.0, 1.0)
            rt = rows[in_tail]
            out[in_tail] = d.threshold + tail_exceedance(
                r, unit.xi[rt], unit.sigma[rt], d.cap_excess
            )
    if unit.row_scale is not None:
        out = out * unit.row_scale[rows]
    return np.asarray(out, dtype=float)


def _ref_interp_rows(
    x: np.ndarray, rows: np.ndarray, cum: np.ndarray, values: np.ndarray
) -> np.ndarray:
    n_rows, points = cum.shape
    shifted = (cum + 2.0 * np.arange(n_rows)[:, None]).ravel()
    pos = np.searchsorted(shifted, x + 2.0 * rows, side="right") - 1
    j = np.clip(pos - rows * points, 0, points - 2)
    lo = cum[rows, j]
    width = cum[rows, j + 1] - lo
    frac = np.where(width > 0, np.clip((x - lo) / np.where(width > 0, width, 1.0), 0.0, 1.0), 0.0)
    return np.asarray(values[j] + frac * (values[j + 1] - values[j]), dtype=float)


# ---------------------------------------------------------------------------------------------
# Randomised inputs
# ---------------------------------------------------------------------------------------------

HOUR = 3600.0


def _plan(
    rng: np.random.Generator,
    n_buckets: int,
    n_classes: int,
    bucket_s: float = HOUR,
    structured: bool = True,
    hit: str = "all",
) -> TrafficPlan:
    """A plan shaped like `build_plan`'s (an hour-of-day shape per class, growth, weekdays, an
    event on every class and one on some) or, unstructured, uniform noise with empty buckets."""
    hour = (np.arange(n_buckets) * bucket_s // HOUR).astype(int)
    if structured:
        hourly = rng.uniform(0.05, 2.0, (24, n_classes))
        day = hour // 24
        level = np.exp(np.linspace(0.0, 0.4, n_buckets)) * np.where(day % 7 == 5, 0.6, 1.0)
        base = level[:, None] * hourly[hour % 24] * rng.dirichlet(np.ones(n_classes)) * 50.0
    else:
        base = rng.uniform(0.0, 50.0, (n_buckets, n_classes))
        base[rng.random(n_buckets) < 0.1] = 0.0
    events = np.ones_like(base)
    cover = np.clip((np.arange(n_buckets) - n_buckets / 3 + 0.4), 0.0, 1.0)
    cover[n_buckets // 2 :] = 0.0
    events *= (1.0 + 2.0 * cover)[:, None]  # every class, partly covering its first bucket
    some = rng.random(n_classes) < 0.5
    events[n_buckets // 2 : n_buckets // 2 + 7, some] *= 1.5
    spike_hit = {
        "all": np.ones(n_classes, bool),
        "some": np.arange(n_classes) % 2 == 0,
        "none": np.zeros(n_classes, bool),
    }[hit]
    return TrafficPlan(
        classes=tuple(f"c{j}" for j in range(n_classes)),
        base=base * events,
        base_no_events=base,
        mix=base.sum(axis=0) / base.sum(),
        projected_requests=float(base.sum()),
        spike_hit=spike_hit,
        bucket_s=bucket_s,
    )


def _spikes(
    rng: np.random.Generator, n_trials: int, horizon: float, bucket_s: float, sd: float
) -> Spikes:
    """Spikes of every kind: overlapping, on bucket edges, shorter than a bucket, running past
    the horizon, dips (size < 1; with a large ``sd``, overlapping dips below 0)."""
    counts = rng.poisson(6.0, n_trials)
    total = int(counts.sum())
    start = rng.random(total) * horizon
    edge = rng.random(total) < 0.2
    start[edge] = np.floor(start[edge] / bucket_s) * bucket_s
    duration = np.exp(rng.uniform(np.log(0.2 * bucket_s), np.log(40 * bucket_s), total))
    size = np.exp(np.log(2.0) + sd * rng.standard_normal(total))
    end = np.minimum(start + duration, horizon)
    return Spikes(np.repeat(np.arange(n_trials), counts), start, end, size)


def _traffic(
    rng: np.random.Generator, plan: TrafficPlan, n_trials: int, spikes: bool, sd: float = 0.8
) -> TrialTraffic:
    n_buckets, n_classes = plan.base.shape
    volume = np.exp(0.4 * rng.standard_normal(n_trials))
    mix = rng.gamma(20.0, 1 / 20.0, (n_trials, n_classes))
    mix[rng.random((n_trials, n_classes)) < 0.05] = 0.0
    sp = _spikes(rng, n_trials, n_buckets * plan.bucket_s, plan.bucket_s, sd) if spikes else None
    intensity = volume[:, None] * mix * plan.base.sum(axis=0)
    return TrialTraffic(intensity, volume, mix, sp)


def _classes(
    rng: np.random.Generator, n_classes: int, n_rows: int, max_attempts: int, f_top: float,
    cold_top: float,
) -> tuple[ClassReliability, ...]:  # fmt: skip
    """Per class: the pilot's and the scenario's rates, one per parameter row."""
    out = []
    for j in range(n_classes):
        out.append(
            ClassReliability(
                f_pilot=rng.uniform(0.0, 0.2, n_rows),
                pilot_max=int(rng.integers(1, 6)),
                f=rng.uniform(0.0, f_top, n_rows),
                max_attempts=max(1, max_attempts - j % 3),
                cold_pilot=rng.uniform(0.0, 0.1, n_rows),
                cold=rng.uniform(0.0, cold_top, n_rows),
                cost_ratio_pilot=float(rng.uniform(1.0, 4.0)),
                cost_ratio=float(rng.uniform(0.5, 6.0)),
            )
        )
    return tuple(out)


def _reliability(load_exponent: float, max_attempts: int, billed: bool, cold_share: float) -> Any:
    return SimpleNamespace(
        error_rate=0.05,
        load_exponent=load_exponent,
        max_attempts=max_attempts,
        billed_failures=billed,
        cold_start_rate=None,
        cold_start_cost_ratio=2.0,
        spike_cold_share=cold_share,
    )


# (load exponent, max attempts, billed, spike cold share, top f, top cold rate, spikes hit,
#  resolution, structured base, spike size sd). Most trials take the per-group sums; those
# bucket by bucket: where f * load^e reaches its cap (a large f, exponent and spikes), where
# cold + share passes 1, and where overlapping dips push the multiplier below 0 (sd 1)
CASES = [
    (1.0, 3, True, 0.3, 0.02, 0.1, "all", HOUR, True, 0.4),
    (2.5, 10, True, 0.6, 0.004, 0.1, "some", HOUR, True, 0.4),  # some capped
    (0.0, 2, True, 0.3, 0.05, 0.1, "all", HOUR, True, 0.4),  # rises only
    (1.0, 1, True, 0.0, 0.05, 0.1, "all", HOUR, True, 1.0),  # below 0 in places
    (1.0, 4, False, 0.9, 0.3, 0.3, "some", HOUR, True, 0.4),  # capped, cold + share > 1
    (2.5, 7, False, 0.3, 0.002, 0.1, "none", HOUR, True, 0.4),
    (1.0, 5, True, 0.5, 0.02, 0.1, "all", HOUR / 6, True, 0.4),  # 10-minute buckets
    (1.0, 3, True, 0.3, 0.02, 0.1, "some", HOUR, False, 0.4),  # no structure: a group a bucket
    (1.0, 9, False, 0.7, 0.01, 0.2, "all", HOUR / 4, False, 1.0),
]


@pytest.mark.parametrize("exponent,m,billed,share,f_top,cold_top,hit,bucket_s,structured,sd", CASES)
@pytest.mark.parametrize("events", [True, False])
def test_multipliers_match_the_reference(
    exponent: float, m: int, billed: bool, share: float, f_top: float, cold_top: float,
    hit: str, bucket_s: float, structured: bool, sd: float, events: bool,
) -> None:  # fmt: skip
    rng = np.random.default_rng([7, m, int(10 * exponent), int(10 * share), int(events)])
    n_trials, n_rows = 150, 21
    n_buckets = int(6 * 86400 / bucket_s)
    plan = _plan(rng, n_buckets, 5, bucket_s, structured, hit)
    rel = _reliability(exponent, m, billed, share)
    classes = tuple(
        with_norms(cr, plan, rel, j)
        for j, cr in enumerate(_classes(rng, 5, n_rows, m, f_top, cold_top))
    )
    traffic = _traffic(rng, plan, n_trials, spikes=events, sd=sd)
    drivers = Drivers(spikes=events)
    rows = rng.integers(0, n_rows, (n_trials, 5))
    fast = multipliers(plan, rel, classes, traffic, drivers, rows)
    ref = ref_multipliers(plan, rel, classes, traffic, drivers, rows)
    np.testing.assert_allclose(fast, ref, rtol=1e-10, atol=0.0)
    again = multipliers(plan, rel, classes, traffic, drivers, rows)
    assert again.tobytes() == fast.tobytes()


def test_multipliers_are_the_same_block_by_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small blocks of trials (a few spikes' worth each), trials done bucket by bucket among
    them: the same multipliers as in one block."""
    rng = np.random.default_rng(29)
    plan = _plan(rng, 24 * 6, 4)
    rel = _reliability(2.5, 6, True, 0.6)
    classes = tuple(
        with_norms(cr, plan, rel, j) for j, cr in enumerate(_classes(rng, 4, 21, 6, 0.002, 0.1))
    )
    traffic = _traffic(rng, plan, 200, spikes=True, sd=0.4)
    rows = rng.integers(0, 21, (200, 4))
    whole = multipliers(plan, rel, classes, traffic, Drivers(), rows)
    monkeypatch.setattr(reliability, "BLOCK_CELLS", 1500)
    blocks = multipliers(plan, rel, classes, traffic, Drivers(), rows)
    np.testing.assert_allclose(blocks, whole, rtol=1e-13, atol=0.0)
    ref = ref_multipliers(plan, rel, classes, traffic, Drivers(), rows)
    np.testing.assert_allclose(blocks, ref, rtol=1e-10, atol=0.0)


def test_norms_match_the_reference_and_are_computed_when_missing() -> None:
    rng = np.random.default_rng(11)
    plan = _plan(rng, 240, 4)
    for exponent, share, f_top in ((1.0, 0.3, 0.05), (2.5, 0.95, 0.9)):
        rel = _reliability(exponent, 4, True, share)
        classes = _classes(rng, 4, 31, 4, f_top, 0.2)
        for j, cr in enumerate(classes):
            bad = replace(cr, f_pilot=np.where(np.arange(31) % 3 == 0, 0.9, cr.f_pilot))
            for c in (cr, bad):  # bad: some rows' pilot failure rate reaches the cap
                fast, ref = with_norms(c, plan, rel, j), ref_with_norms(c, plan, rel, j)
                np.testing.assert_allclose(fast.retry_norm, ref.retry_norm, rtol=1e-12)
                np.testing.assert_allclose(fast.cold_norm, ref.cold_norm, rtol=1e-12)
        traffic = _traffic(rng, plan, 60, spikes=True)
        rows = rng.integers(0, 31, (60, 4))
        fast = multipliers(plan, rel, classes, traffic, Drivers(), rows)  # norms computed here
        ref = ref_multipliers(plan, rel, classes, traffic, Drivers(), rows)
        np.testing.assert_allclose(fast, ref, rtol=1e-10, atol=0.0)


def _scenario_plan(**changes: Any) -> tuple[Scenario, FittedModel, TrafficPlan]:
    """The bundled launch scenario (with ``changes``), its model and its traffic plan."""
    doc = yaml.safe_load(SCENARIO.read_text())
    doc.update(changes)
    sc = parse_scenario(doc, SCENARIO, SCENARIO.parent)
    model = load_model(SCENARIO.parent / "pilot.model.json")
    names = tuple(model.classes)
    plan = build_plan(
        sc, names, np.array([model.classes[n].share for n in names]),
        {n: model.classes[n].hourly_profile for n in names},
        model.traffic.hourly_profile, model.traffic.weekday_profile,
    )  # fmt: skip
    return sc, model, plan


def test_a_scenarios_plan_has_a_group_per_hour_of_day() -> None:
    """At 20-minute resolution with growth, weekdays and an event on every class, a week's
    buckets fall into the 24 directions of the hour-of-day shape, plus the event's edges."""
    sc, model, plan = _scenario_plan(horizon="7d", resolution="20m", trials=100)
    names = plan.classes
    groups = plan.groups
    assert groups.n_groups <= 30
    approx = groups.scale[:, None] * groups.rows[groups.group]
    np.testing.assert_allclose(approx, plan.base, rtol=GROUP_TOLERANCE, atol=0.0)
    assert np.all(groups.scale <= 1.0)
    rng = np.random.default_rng(3)
    rel = sc.reliability
    seeds = np.random.SeedSequence(4).spawn(len(names))
    classes = tuple(
        with_norms(class_reliability(model.classes[n], rel, 11, seeds[j]), plan, rel, j)
        for j, n in enumerate(names)
    )
    traffic = _traffic(rng, plan, 80, spikes=True)
    rows = rng.integers(0, 11, (80, len(names)))
    fast = multipliers(plan, rel, classes, traffic, Drivers(), rows)
    ref = ref_multipliers(plan, rel, classes, traffic, Drivers(), rows)
    np.testing.assert_allclose(fast, ref, rtol=1e-10, atol=0.0)


def test_bucket_groups_are_exact_and_blocks_short() -> None:
    rng = np.random.default_rng(5)
    for structured in (True, False):
        plan = _plan(rng, 24 * 9 * 4, 6, HOUR / 4, structured)
        g = bucket_groups(plan.base)
        np.testing.assert_allclose(
            g.scale[:, None] * g.rows[g.group], plan.base, rtol=GROUP_TOLERANCE, atol=0.0
        )
        lengths = np.diff(g.block_start)
        assert lengths.min() >= 1 and lengths.max() <= MAX_BLOCK
        assert np.all(g.group[g.block_start[g.block]] == g.group)  # a block is one group
        if structured:
            assert g.n_groups < 24 * 4 + 20
        values = rng.random(plan.base.shape[0])
        prefix = g.block_prefix(values)
        lo, hi = g.block_start[:-1], g.block_start[1:]
        sums = g.range_sums(prefix, values, lo, hi)
        np.testing.assert_allclose(sums, np.add.reduceat(values, lo), rtol=1e-13)


@pytest.mark.parametrize("columns", [1, 2, 6, 40])
def test_row_classes_number_the_rows_as_unique_does(columns: int) -> None:
    """The grouping's classes of rows are `np.unique(axis=0)`'s, numbered alike: rows that
    differ in one column only, -0.0 beside 0.0, and a matrix of one row or none."""
    rng = np.random.default_rng(columns)
    distinct = rng.integers(0, 3, (12, columns)).astype(float) * 2.0**31
    rows = distinct[rng.integers(0, 12, 5_000)]
    rows[rng.integers(0, 5_000, 50), rng.integers(0, columns, 50)] += 1.0  # a few strays
    rows[rows == 0.0] *= np.where(rng.random(int((rows == 0.0).sum())) < 0.5, -1.0, 1.0)
    for a in (rows, rows[:1], rows[:0]):
        expected = np.unique(a, axis=0, return_inverse=True)[1].reshape(-1)
        np.testing.assert_array_equal(_row_classes(a), expected)


@pytest.mark.parametrize("spikes_hit", ["all", "some"])
def test_trial_traffic_is_the_same(spikes_hit: str) -> None:
    sc, _, plan = _scenario_plan(resolution="20m")
    sc = replace(sc, traffic=replace(sc.traffic, spikes=replace(sc.traffic.spikes, rate=3.0)))
    if spikes_hit != "all":
        plan = replace(plan, spike_hit=np.arange(len(plan.classes)) % 2 == 0)
    gammas = np.random.default_rng(1).gamma(2.0, size=(300, len(plan.classes)))
    for drivers in (Drivers(), Drivers(spikes=False)):
        fast = draw_traffic(
            plan, sc, 300, drivers, np.random.default_rng(2), np.random.default_rng(3), gammas
        )
        ref = ref_draw_traffic(
            plan, sc, 300, drivers, np.random.default_rng(2), np.random.default_rng(3), gammas
        )
        np.testing.assert_array_equal(fast.intensity, ref.intensity)


def test_columns_interpolate_as_numpy_does() -> None:
    """On the bucket edges, on either side of them and at both ends of the horizon."""
    rng = np.random.default_rng(31)
    for n_buckets, bucket_s in ((720, HOUR), (43_200, 60.0), (7, 86400.0), (1000, 0.1)):
        edges = np.arange(n_buckets + 1) * bucket_s
        fp = np.vstack([np.zeros(3), np.cumsum(rng.random((n_buckets, 3)), axis=0)])
        on = rng.integers(0, n_buckets + 1, 3000) * bucket_s
        x = np.concatenate(
            [rng.random(3000) * edges[-1], on, np.nextafter(on, -1.0), np.nextafter(on, np.inf)]
        )
        x = np.clip(x, 0.0, edges[-1])
        at = _edge_below(x, edges)
        np.testing.assert_array_equal(at, np.searchsorted(edges, x, side="right") - 1)
        ref = np.column_stack([np.interp(x, edges, fp[:, k]) for k in range(3)])
        np.testing.assert_array_equal(_interp_columns(x, at, edges, fp), ref)


@pytest.mark.parametrize("bucket_s", [HOUR, 60.0])
def test_spike_segments_are_the_grid(bucket_s: float) -> None:
    rng = np.random.default_rng(int(bucket_s))
    n_buckets = int(2 * 86400 / bucket_s)
    spikes = _spikes(rng, 40, n_buckets * bucket_s, bucket_s, sd=1.0)
    rows = slice(5, 37)
    grid = ref_grid(spikes, rows, n_buckets, bucket_s)
    seg = spikes.segments(rows, n_buckets, bucket_s)
    dense = np.ones_like(grid)
    for t, lo, hi, excess in zip(seg.trial, seg.start, seg.stop, seg.excess, strict=True):
        dense[t, lo:hi] = 1.0 + excess
    np.testing.assert_allclose(dense, grid, rtol=0.0, atol=1e-12)
    first = np.r_[True, seg.trial[1:] != seg.trial[:-1]]
    assert np.all(seg.start[1:][~first[1:]] == seg.stop[:-1][~first[1:]])  # runs are contiguous
    assert np.all(seg.stop[np.r_[first[1:], True]] == n_buckets)  # to the end of the horizon
    np.testing.assert_array_equal(spikes.grid(rows, n_buckets, bucket_s), grid)


# ---------------------------------------------------------------------------------------------
# The unit-cost engine
# ---------------------------------------------------------------------------------------------


def test_poisson_counts_are_the_same() -> None:
    rng = np.random.default_rng(17)
    n = 40_000
    mu = np.concatenate(
        [
            rng.uniform(0.0, 45.0, n),
            rng.exponential(0.5, n),
            np.array([0.0, 1e-300, 1e-12, 39.999999, 40.0, 40.000001, 1e6]),
        ]
    )
    u = rng.random(mu.size)
    u[:50] = rng.choice([0.0, 1e-17, 1.0 - 1e-16, 0.5], 50)
    np.testing.assert_array_equal(poisson_inverse(mu, u), ref_poisson_inverse(mu, u))
    grid = mu.reshape(-1, 1)[:4000] * np.array([1.0, 0.3, 1e-3])
    ug = rng.random(grid.shape)
    np.testing.assert_array_equal(poisson_inverse(grid, ug), ref_poisson_inverse(grid, ug))


def test_quantiles_are_the_same() -> None:
    model = load_model(SCENARIO.parent / "pilot.model.json")
    rng = np.random.default_rng(23)
    for j, cf in enumerate(list(model.classes.values())[:3]):
        unit = quantity_rows(cf, "cost_usd", np.random.default_rng(j))
        if j == 2:  # re-priced rows scale each row's costs
            unit = replace(unit, row_scale=rng.uniform(0.5, 2.0, unit.n_params), scale=3.0)
        q = np.concatenate([rng.random(20_000), [0.0, 1.0 - 1e-16], rng.random(100) * 1e-9])
        rows = rng.integers(0, unit.n_params, q.size)
        np.testing.assert_array_equal(unit.ppf_rows(q, rows), ref_ppf_rows(unit, q, rows))


# ---------------------------------------------------------------------------------------------
# Edge cases the fuzz found
# ---------------------------------------------------------------------------------------------


def test_trials_without_a_spike_have_no_segments() -> None:
    # a rate so small that no trial draws a spike: nothing to spread, not an IndexError
    spikes = Spikes(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0))
    seg = spikes.segments(slice(0, 50), 168, 3600.0)
    assert seg.trial.size == seg.start.size == seg.stop.size == seg.excess.size == 0
    assert np.array_equal(spikes.grid(slice(0, 50), 168, 3600.0), np.ones((50, 168)))


def test_a_class_without_traffic_costs_nothing_under_load_dependent_reliability() -> None:
    from costsim.simulate.chunks import simulate
    from costsim.simulate.prepare import prepare

    root = Path(__file__).resolve().parents[1] / "scenarios"
    doc = {
        "model": "pilot.model.json",
        "horizon": "7d",
        "resolution": "1h",
        "volume": {"requests": 200000},
        "mix": {"lookup": 0.7, "agent_tool_use": 0.3},  # the other four classes get nothing
        "traffic": {"spikes": {"rate": 1e-42, "magnitude": {"median": 2}, "duration": "2h"}},
        "reliability": {"load_exponent": 1, "max_attempts": 3, "spike_cold_share": 0.2},
        "trials": 200,
    }
    sc = parse_scenario(doc, root / "s.yaml", root)
    assert sc.model_path is not None
    prep = prepare(sc, load_model(sc.model_path))
    totals, requests = simulate(prep)
    assert np.isfinite(totals).all()
    idle = [j for j, pc in enumerate(prep.classes) if pc.name not in doc["mix"]]  # type: ignore[operator]
    assert len(idle) == 4
    assert np.all(totals[:, idle] == 0) and np.all(requests[:, idle] == 0)
    assert np.all(totals[:, [j for j in range(6) if j not in idle]] > 0)
