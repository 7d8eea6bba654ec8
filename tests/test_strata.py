"""The stratified engine's strata, random-number columns and stacked classes (issue 11).

- A stratum's moments are exact for the body (piecewise linear quantiles) and Gauss-Legendre for
  the tail: checked against a dense numerical integration of each row's quantile function.
- Strata built for a reference intensity are the fine strata with the leading ones (those that
  would each hold at least ``BULK_EXPECTED`` requests) combined into one, up to the exact cut;
  merged, the engine still matches the per-request reference.
- Each stratum draws its counts from a fixed column of its class's stream: `aggregate`'s
  numbers do not depend on which other columns a call needs.
- `aggregate_classes` gives each class the numbers `aggregate` gives it alone.
- `GammaQuantiles` is `gammaincinv` to 1e-7 relative, monotone.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import special, stats
from synth import fitted_unit

from costsim.model.file import load_model
from costsim.simulate import engine
from costsim.simulate.engine import (
    BULK_EXPECTED,
    _Columns,
    aggregate,
    aggregate_classes,
    build_strata,
    exact_cut,
    reference_sum,
    strata_count,
)
from costsim.simulate.forecast import quantile_with_error
from costsim.simulate.inversion import GammaQuantiles
from costsim.simulate.repricing import quantity_rows
from costsim.simulate.unitcost import UnitCost

MODEL = load_model(Path(__file__).resolve().parents[1] / "scenarios" / "pilot.model.json")


def _units() -> list[UnitCost]:
    """The bundled model's classes; the third with re-priced rows and a scale."""
    units = []
    for j, cf in enumerate(MODEL.classes.values()):
        unit = quantity_rows(cf, "cost_usd", np.random.default_rng(j))
        if j == 2:
            rng = np.random.default_rng(9)
            unit = replace(unit, row_scale=rng.uniform(0.5, 2.0, unit.n_params), scale=3.0)
        units.append(unit)
    return units


def _dense_moments(unit: UnitCost, top: float, bottom: float, rows: list[int]) -> np.ndarray:
    """E[X] and E[X^2] of rows between survival probabilities ``top`` > ``bottom``, by an
    80,000-point midpoint rule in log(s) on the row's quantile function."""
    nodes = 80_000
    a, b = np.log(bottom), np.log(top)
    t = a + (np.arange(nodes) + 0.5) / nodes * (b - a)
    s = np.exp(t)
    w = s * (b - a) / nodes / (top - bottom)
    out = []
    for r in rows:
        x = unit.ppf_rows(1.0 - s, np.full(s.size, r)) * unit.scale
        out.append((np.sum(w * x), np.sum(w * x * x)))
    return np.array(out)


def test_stratum_moments_are_those_of_the_quantile_function() -> None:
    # the quantile function is exact to ~1e-16 in q: strata above s = 1e-7 only, where that
    # moves no moment by more than ~1e-9
    rows = [0, 1, 77, 200]
    for unit in _units():
        strata = build_strata(unit)
        for k in [*range(0, 14), 18, 22]:
            assert strata.edges[k + 1] >= 1e-7
            dense = _dense_moments(unit, strata.edges[k], strata.edges[k + 1], rows)
            mean = strata.mean[rows, k]
            np.testing.assert_allclose(mean, dense[:, 0], rtol=1e-8)
            sd = np.sqrt(np.maximum(dense[:, 1] - dense[:, 0] ** 2, 0.0))
            assert np.all(np.abs(np.sqrt(strata.var[rows, k]) - sd) <= 1e-7 * mean)
        # all strata together: each row's mean (the region below S_MIN holds ~1e-13 of it)
        whole = (strata.mean * strata.probs).sum(axis=1)
        np.testing.assert_allclose(whole, unit.row_means() * unit.scale, rtol=1e-9)


@pytest.mark.parametrize("reference", [3.0, 5e3, 3e4, 2e6, 1e9])
def test_strata_for_a_reference_intensity_merge_the_leading_fine_strata(reference: float) -> None:
    for unit in _units()[:3]:
        fine = build_strata(unit)
        part = build_strata(unit, reference)
        cut = exact_cut(fine, reference)
        counts = reference * fine.probs[:cut]
        merged = int(np.sum(counts >= BULK_EXPECTED))  # the leading fine strata that are one
        assert np.all(counts[:merged] >= BULK_EXPECTED)  # they lead
        if merged > 1:
            np.testing.assert_array_equal(part.edges, np.r_[1.0, fine.edges[merged:]])
            np.testing.assert_array_equal(part.columns, np.r_[0, np.arange(merged, strata_count())])
            p = fine.probs[:merged]
            m1 = fine.mean[:, :merged] @ p / p.sum()
            m2 = (fine.var[:, :merged] + fine.mean[:, :merged] ** 2) @ p / p.sum()
            np.testing.assert_allclose(part.mean[:, 0], m1, rtol=1e-12)
            np.testing.assert_allclose(part.var[:, 0], m2 - m1 * m1, rtol=1e-9)
            np.testing.assert_array_equal(part.lo[:, 0], fine.lo[:, 0])
            np.testing.assert_array_equal(part.hi[:, 0], fine.hi[:, merged - 1])
            first = 1
        else:
            np.testing.assert_array_equal(part.edges, fine.edges)
            first = merged = 0
        assert part.mean.shape == (unit.n_params, cut - max(merged - 1, 0))
        assert exact_cut(part, reference) == part.mean.shape[1]
        for name in ("mean", "var", "lo", "hi"):  # the fine strata after the merged ones
            np.testing.assert_allclose(
                getattr(part, name)[:, first:], getattr(fine, name)[:, merged:cut], rtol=1e-12
            )


def test_strata_built_for_a_lower_intensity_are_refused() -> None:
    strata = build_strata(_units()[0], 1e3)
    lam = np.full(10, 1e6)
    with pytest.raises(ValueError, match="build them for this reference intensity"):
        aggregate(strata, lam, np.zeros(10, np.int64), np.random.default_rng(0), 1e6)


def test_each_column_is_its_own_stretch_of_the_stream() -> None:
    n = 37
    whole = np.random.default_rng(5).random(n * (strata_count() + 80))
    columns = _Columns(np.random.default_rng(5), n)
    wanted = np.array([0, 3, 4, 5, 9, strata_count()])
    out = np.empty((wanted.size, n))
    columns.fill(out, wanted)
    for i, c in enumerate(wanted):
        np.testing.assert_array_equal(out[i], whole[c * n : (c + 1) * n])
    np.testing.assert_array_equal(columns.block(2, 3).ravel(), whole[2 * n : 5 * n])


def test_a_stratum_draws_the_same_numbers_whatever_else_is_drawn() -> None:
    # one class, two reference intensities: the exact region's count and the strata both
    # runs have are the same numbers, so the totals differ only by the strata that differ
    unit = _units()[1]
    lam = np.full(300, 4e3)
    rows = np.arange(300) % unit.n_params
    low, high = build_strata(unit, 1e4), build_strata(unit, 1e4 * 1.001)
    assert np.array_equal(low.columns, high.columns)  # the same strata: the same numbers
    a = aggregate(low, lam, rows, np.random.default_rng(3), 1e4)
    b = aggregate(high, lam, rows, np.random.default_rng(3), 1e4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_stacked_classes_get_the_numbers_each_gets_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    units = _units()
    refs = [3e4, 1e6, 10.0, 0.0, 500.0, 3e4]  # 0: a class with no strata (every draw exact)
    strata = [build_strata(u, r) for u, r in zip(units, refs, strict=True)]
    rng = np.random.default_rng(1)
    n = 400
    lam = rng.uniform(0.3, 0.6, (n, len(units))) * np.array(refs)
    rows = rng.integers(0, units[0].n_params, (n, len(units)))
    alone = [
        aggregate(strata[j], lam[:, j], rows[:, j], np.random.default_rng(10 + j), refs[j])
        for j in range(len(units))
    ]
    for stacked in (engine.STACKED, 1):  # one group; then one class a group
        monkeypatch.setattr(engine, "STACKED", stacked)
        rngs = [np.random.default_rng(10 + j) for j in range(len(units))]
        totals, requests = aggregate_classes(strata, lam, rows, rngs, refs)
        for j, (t, r) in enumerate(alone):
            np.testing.assert_array_equal(totals[:, j], t)
            np.testing.assert_array_equal(requests[:, j], r)


def test_strata_without_the_bodies_their_exact_draws_never_reach_give_the_same_sums() -> None:
    # what every worker is sent (`Strata.for_exact_draws`): where the exact region lies above
    # every row's body the unit goes without its bodies and the sums are the same to the bit;
    # where it reaches a body (a low intensity: every request exact), the strata stay whole
    units = _units()
    refs = [3e4, 1e6, 10.0, 0.0, 500.0, 3e4]
    strata = [build_strata(u, r) for u, r in zip(units, refs, strict=True)]
    sent = [st.for_exact_draws(r) for st, r in zip(strata, refs, strict=True)]
    slim = [st.unit is not whole.unit for st, whole in zip(sent, strata, strict=True)]
    assert slim == [True, True, False, False, True, True]
    for st, whole, dropped in zip(sent, strata, slim, strict=True):
        assert st.unit.body_dropped == dropped
        assert (st.unit.body_cum is None) == dropped
        if dropped:  # nothing of the moments changes
            np.testing.assert_array_equal(st.mean, whole.mean)
    rng = np.random.default_rng(3)
    n = 400
    lam = rng.uniform(0.3, 0.6, (n, len(units))) * np.array(refs)
    rows = rng.integers(0, units[0].n_params, (n, len(units)))
    got, want = (
        aggregate_classes(s, lam, rows, [np.random.default_rng(20 + j) for j in range(6)], refs)
        for s in (sent, strata)
    )
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_a_unit_without_its_bodies_refuses_to_use_one() -> None:
    # never a silent fall-back to the fitted body in place of a row's own
    unit = _units()[0].without_body()
    q = np.array([0.2, 0.5])
    with pytest.raises(RuntimeError, match="without its bodies"):
        unit.ppf_rows(q, np.array([1, 2]))
    with pytest.raises(RuntimeError, match="without its bodies"):
        unit.row_means()
    with pytest.raises(RuntimeError, match="without its bodies"):
        build_strata(unit)
    top = 1.0 - 0.5 * float(np.min(unit.tail_prob))  # in every row's tail: no body needed
    assert np.all(np.isfinite(unit.ppf_rows(np.array([top]), np.array([7]))))


def test_only_the_units_whose_draws_need_their_bodies_travel_with_them() -> None:
    # the prepared forecast as the workers get it: the bodies (most of its bytes) only where
    # the bridge's cap variants or a body-reaching exact draw use them, in the main process too;
    # the reference engine keeps every one
    import pickle

    from costsim.scenario import load_scenario
    from costsim.simulate.bridge import cap_sensitive, cap_variants
    from costsim.simulate.chunks import Run, for_workers, simulate_runs
    from costsim.simulate.prepare import prepare

    scenario = load_scenario(
        Path(__file__).resolve().parents[1] / "scenarios" / "launch_month.yaml"
    )
    prep = prepare(scenario, MODEL)
    sensitive = cap_sensitive(prep)
    assert sensitive  # the bundled pilot has a tail whose mean depends on its cap
    for j, pc in enumerate(prep.classes):
        assert pc.unit.body_dropped == (j not in sensitive)
        assert prep.strata[j].unit is pc.unit
    variants = cap_variants(prep, sensitive)
    sent, (run,) = for_workers(prep, [Run(variants=variants, variant_trials=10)])
    assert not any(pc.unit.body_cum is not None for pc in sent.classes)
    for variant in run.variants:  # the classes the variants share stay one object each
        shared = [j for j in range(len(variant)) if j not in sensitive]
        assert all(variant[j] is sent.strata[j] for j in shared)
    dropped = sum(prep.classes[j].unit.cum_rows().nbytes for j in sensitive)
    assert len(pickle.dumps(prep)) - len(pickle.dumps(sent)) >= 0.9 * dropped
    whole = prepare(scenario, MODEL, bodies=True)
    assert all(pc.unit.body_cum is not None for pc in whole.classes)
    assert for_workers(whole, engine="reference")[0] is whole
    with pytest.raises(ValueError, match="bodies=True"):  # never a slim unit drawn per request
        simulate_runs(prep, [Run(trials=10)], engine="reference")


@pytest.mark.parametrize("xi", [0.3, 0.8])
def test_merged_strata_match_the_per_request_reference(xi: float) -> None:
    trials, lam0 = 4000, 5e3  # the forecast's reference: twice the expected requests
    unit = fitted_unit(xi)
    strata = build_strata(unit, 2 * lam0)
    assert strata.edges.size < build_strata(unit).edges.size  # some strata are merged
    rows = 1 + np.random.default_rng(5).integers(0, unit.n_params - 1, trials)
    lam = np.full(trials, lam0)
    fast, n_fast = aggregate(strata, lam, rows, np.random.default_rng(2), 2 * lam0)
    counts = np.random.default_rng(3).poisson(lam)[:, None]
    ref = reference_sum(unit, counts, np.ones((trials, 1)), rows, np.random.default_rng(4))
    assert stats.ks_2samp(fast, ref).pvalue >= 0.01
    for q in (0.05, 0.5, 0.95, 0.99):
        qa, sa, _, _ = quantile_with_error(fast, q)
        qb, sb, _, _ = quantile_with_error(ref, q)
        assert abs(qa - qb) <= 3 * np.hypot(sa, sb), (q, qa, qb)
    assert abs(n_fast.mean() - lam0) <= 4 * np.sqrt(lam0 / trials)


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.3, 2.0, 67.0, 400.0, 5000.0, 1e5])
def test_gamma_quantiles_are_gammaincinv(alpha: float) -> None:
    tiny = np.geomspace(2.0**-53, 0.5, 400)  # every scale a uniform double can reach
    u = np.concatenate([np.random.default_rng(0).random(50_000), tiny, 1.0 - tiny, [0.5]])
    exact = np.where(u < 0.5, special.gammaincinv(alpha, u), special.gammainccinv(alpha, 1 - u))
    got = GammaQuantiles.of(alpha)(u)
    normal = exact > 1e-300  # below, both are zero or subnormal
    np.testing.assert_allclose(got[normal], exact[normal], rtol=1e-7)
    assert np.all(got[~normal] < 1e-290)
    assert GammaQuantiles.of(alpha)(np.array([0.0]))[0] == 0.0
    dense = np.sort(np.concatenate([u, np.linspace(0.0, 1.0 - 2.0**-53, 200_001)]))
    assert np.all(np.diff(GammaQuantiles.of(alpha)(dense)) >= 0.0)  # monotone


def test_exact_draws_of_all_classes_at_once_are_each_class_s_quantiles() -> None:
    # the stacked tails (caps per class, one class without, re-priced rows) and the draws that
    # fall in a row's body (a cut above the tail: survival 1, every request exact) give
    # ppf_rows' numbers
    units = _units()
    units[3] = replace(units[3], dist=replace(units[3].dist, cap=None))
    rng = np.random.default_rng(8)
    n = 300
    rows = rng.integers(0, units[0].n_params, (n, len(units)))
    s_cut = np.array([1.0, 1e-3, 0.05, 2e-6, 0.3, 1e-2])
    draws = []
    for _ in units:
        m = rng.poisson(6.0, n)
        trial = np.repeat(np.arange(n), m)
        draws.append((trial, rng.random(trial.size)))
    got = engine._exact_sums(units, draws, rows, s_cut)
    for j, (unit, (trial, u)) in enumerate(zip(units, draws, strict=True)):
        values = unit.ppf_rows(1.0 - s_cut[j] * u, rows[trial, j])
        want = np.bincount(trial, weights=values, minlength=n) * unit.scale
        np.testing.assert_array_equal(got[j], want)


def test_the_memory_estimate_covers_the_prepared_unit_costs_and_strata() -> None:
    # what `guard_memory` counts before allocating, against the arrays `prepare` then holds
    from costsim.scenario import load_scenario
    from costsim.simulate.forecast import memory_needed
    from costsim.simulate.prepare import prepare

    scenario = load_scenario(
        Path(__file__).resolve().parents[1] / "scenarios" / "launch_month.yaml"
    )
    prep = prepare(scenario, MODEL)
    held = 0
    for pc, strata in zip(prep.classes, prep.strata, strict=True):
        unit = pc.unit
        for a in (unit.body_cum, unit.xi, unit.sigma, unit.tail_prob, unit.row_scale):
            held += 0 if a is None else a.nbytes
        held += sum(getattr(strata, k).nbytes for k in ("mean", "var", "lo", "hi"))
    needed = memory_needed(scenario, MODEL)
    assert held <= needed["units"] + needed["strata"] <= 3 * held
