"""The stratified engine against the per-request reference and against closed-form truths."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from synth import fitted_unit

from costsim.model.splice import SplicedDistribution
from costsim.simulate.engine import aggregate, build_strata, reference_sum
from costsim.simulate.forecast import quantile_with_error
from costsim.simulate.unitcost import UnitCost

TRIALS = 2000
LAMBDA = 1e5


def _within_mc_error(a: np.ndarray, b: np.ndarray, q: float) -> None:
    qa, sa, _, _ = quantile_with_error(a, q)
    qb, sb, _, _ = quantile_with_error(b, q)
    assert abs(qa - qb) <= 3 * np.hypot(sa, sb), (q, qa, qb, sa, sb)


@pytest.mark.parametrize("xi", [0.1, 0.6])
def test_engine_matches_per_request_reference(xi: float) -> None:
    unit = fitted_unit(xi)
    rows = 1 + np.random.default_rng(5).integers(0, unit.n_params - 1, TRIALS)  # parameter draws
    lam = np.full(TRIALS, LAMBDA)
    fast, n_fast = aggregate(build_strata(unit), lam, rows, np.random.default_rng(2))
    counts = np.random.default_rng(3).poisson(lam)[:, None]
    ref = reference_sum(unit, counts, np.ones((TRIALS, 1)), rows, np.random.default_rng(4))
    assert stats.ks_2samp(fast, ref).pvalue >= 0.01
    for q in (0.5, 0.95, 0.99):
        _within_mc_error(fast, ref, q)
    # request counts are Poisson(Lambda) in both
    assert abs(n_fast.mean() - LAMBDA) <= 4 * np.sqrt(LAMBDA / TRIALS)


def _exponential(mean: float) -> UnitCost:
    dist = SplicedDistribution(np.array([0.0, 0.0]), 1.0, 0.0, mean, None)
    return UnitCost.from_fit(dist, None, None)


def _compound_poisson_exponential_cdf(s: np.ndarray, lam: float, mean: float) -> np.ndarray:
    """P(sum of Poisson(lam) exponential(mean) costs <= s): a Poisson mixture of gammas."""
    n = np.arange(max(1, int(lam - 12 * np.sqrt(lam))), int(lam + 12 * np.sqrt(lam)))
    w = stats.poisson.pmf(n, lam)
    return np.array([np.sum(w * stats.gamma.cdf(v, n, scale=mean)) for v in np.atleast_1d(s)])


def test_exponential_costs_with_poisson_counts_match_closed_form() -> None:
    lam, mean = 20_000.0, 0.01
    totals, _ = aggregate(
        build_strata(_exponential(mean)),
        np.full(TRIALS, lam),
        np.zeros(TRIALS, int),
        np.random.default_rng(9),
    )
    for q in (0.05, 0.5, 0.95, 0.99):
        est, se, _, _ = quantile_with_error(totals, q)
        lo, hi = est - 4 * se, est + 4 * se
        cdf = _compound_poisson_exponential_cdf(np.array([lo, hi]), lam, mean)
        assert cdf[0] <= q <= cdf[1], (q, est, se, cdf)


def test_mix_of_two_classes_has_the_compound_poisson_moments() -> None:
    lam, (m1, m2), w = 50_000.0, (0.002, 0.05), 0.3  # 30% of requests in the costly class
    rng = np.random.default_rng(10)
    a, _ = aggregate(
        build_strata(_exponential(m1)), np.full(TRIALS, lam * (1 - w)), np.zeros(TRIALS, int), rng
    )
    b, _ = aggregate(
        build_strata(_exponential(m2)), np.full(TRIALS, lam * w), np.zeros(TRIALS, int), rng
    )
    total = a + b
    mean = lam * ((1 - w) * m1 + w * m2)
    var = lam * ((1 - w) * 2 * m1**2 + w * 2 * m2**2)  # E[X^2] = 2 mean^2 for the exponential
    assert abs(total.mean() - mean) <= 4 * np.sqrt(var / TRIALS)
    # sample variance of a near-normal sum: relative standard error sqrt(2 / (T - 1))
    assert abs(total.var(ddof=1) / var - 1) <= 4 * np.sqrt(2 / (TRIALS - 1))


def test_cost_does_not_depend_on_the_number_of_requests() -> None:
    unit = fitted_unit(0.3)
    strata = build_strata(unit)
    rows = np.zeros(200, int)
    for lam in (1e5, 1e7, 1e9):
        totals, n = aggregate(strata, np.full(200, lam), rows, np.random.default_rng(1))
        # the law of large numbers at any volume: the mean per request approaches the unit mean
        rel = abs(totals.sum() / n.sum() / unit.dist.mean() - 1)
        assert rel < 0.02, (lam, rel)


def test_common_random_numbers_scale_exactly() -> None:
    unit = fitted_unit(0.3)
    doubled = UnitCost(unit.dist, unit.xi, unit.sigma, scale=2.0)
    lam, rows = np.full(500, 3e5), np.zeros(500, int)
    a, _ = aggregate(build_strata(unit), lam, rows, np.random.default_rng(4))
    b, _ = aggregate(build_strata(doubled), lam, rows, np.random.default_rng(4))
    np.testing.assert_allclose(b, 2 * a, rtol=1e-12)


@pytest.mark.parametrize("xi", [-0.49, -0.2, 0.0, 1e-6, 0.1, 0.5, 1.0, 2.9])
@pytest.mark.parametrize("sigma", [1e-3, 1.0, 1e4])
def test_gpd_cdf_and_survival_match_scipy(xi: float, sigma: float) -> None:
    """The GPD's G and S written out (`splice.gpd_cdf`, `tail.gpd_logsf`) are scipy's, also
    beyond the end of a bounded tail and where G is tiny."""
    from costsim.model.splice import gpd_cdf
    from costsim.model.tail import gpd_logsf

    rng = np.random.default_rng([7, int(1000 * xi) + 1000, int(np.log10(sigma)) + 5])
    y = np.concatenate([rng.exponential(3 * sigma, 2000), [0.0, 1e-12 * sigma, 1e-6 * sigma]])
    if xi < 0:  # at and beyond the end, -sigma / xi
        y = np.concatenate([y, [-sigma / xi, -1.5 * sigma / xi]])
    g, s = stats.genpareto.cdf(y, xi, scale=sigma), stats.genpareto.sf(y, xi, scale=sigma)
    np.testing.assert_allclose(gpd_cdf(y, xi, sigma), g, rtol=1e-12, atol=0)
    np.testing.assert_allclose(np.exp(gpd_logsf(y, xi, sigma)), s, rtol=1e-12, atol=1e-300)


def test_tail_exceedance_from_tables_gives_the_same_numbers() -> None:
    # per-entry tables (xi = 0, xi < 0, a cap, no cap), taken by index, against per-element
    # parameters: the same bytes, with or without caps
    from costsim.model.splice import tail_exceedance, tail_exceedance_of

    xi = np.array([0.0, -0.3, 0.4, 1.2, 1e-12])
    sigma = np.array([2.0, 0.5, 3.0, 1e-3, 7.0])
    cap = np.array([5.0, np.nan, 40.0, np.nan, 1e3])
    rng = np.random.default_rng(3)
    at = rng.integers(0, xi.size, 5000)
    r = np.concatenate([rng.random(at.size - 3), [0.0, 1.0 - 2.0**-53, 0.5]])
    np.testing.assert_array_equal(
        tail_exceedance_of(r, at, xi, sigma, cap), tail_exceedance(r, xi[at], sigma[at], cap[at])
    )
    np.testing.assert_array_equal(
        tail_exceedance_of(r, at, xi, sigma), tail_exceedance(r, xi[at], sigma[at])
    )


def test_gpd_ppf_matches_scipy() -> None:
    from costsim.model.splice import tail_exceedance

    r = np.linspace(0, 0.999999, 201)
    for xi in (-0.3, 0.0, 0.4, 1.2):
        np.testing.assert_allclose(
            tail_exceedance(r, xi, 2.0), stats.genpareto.ppf(r, xi, scale=2.0), rtol=1e-10
        )
        g = stats.genpareto.cdf(5.0, xi, scale=2.0)
        np.testing.assert_allclose(
            tail_exceedance(r, xi, 2.0, 5.0), stats.genpareto.ppf(r * g, xi, scale=2.0), rtol=1e-10
        )
