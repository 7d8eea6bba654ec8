"""Properties of the spliced distribution and the engine, over generated parameters."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from costsim.model.splice import SplicedDistribution
from costsim.simulate.engine import aggregate, build_strata
from costsim.simulate.unitcost import UnitCost

xis = st.floats(-0.4, 1.4).filter(lambda x: abs(x) > 1e-6 or x == 0.0)
sigmas = st.floats(0.01, 100.0)
zetas = st.floats(0.01, 0.5)
caps = st.one_of(st.none(), st.floats(1.5, 1e6))


def _dist(xi: float, sigma: float, zeta: float, cap: float | None) -> SplicedDistribution:
    body = np.sort(np.random.default_rng(0).lognormal(0.0, 1.0, 257))
    body = body / body[-1]  # threshold at 1
    return SplicedDistribution(body, zeta, xi, sigma, None if cap is None else cap)


@settings(max_examples=60, deadline=None)
@given(xis, sigmas, zetas, caps)
def test_quantiles_are_monotone_and_cdf_inverts_them(xi, sigma, zeta, cap) -> None:
    d = _dist(xi, sigma, zeta, cap)
    q = np.linspace(0.0005, 0.9995, 400)
    x = d.ppf(q)
    assert np.all(np.diff(x) >= -1e-12 * np.maximum(1.0, np.abs(x[1:])))
    inside = q > 1 - zeta  # continuous part (the body grid has no atoms here)
    np.testing.assert_allclose(d.cdf(x[inside]), q[inside], atol=1e-7)
    if cap is not None:
        assert x.max() <= cap * (1 + 1e-9)


@settings(max_examples=25, deadline=None)
@given(xis.filter(lambda x: x < 0.9), sigmas, zetas, st.floats(1.0, 50.0))
def test_costs_scale_with_prices_and_means_with_volume(xi, sigma, zeta, k) -> None:
    d = _dist(xi, sigma, zeta, 1e6)
    unit = UnitCost.from_fit(d, None, None)
    scaled = UnitCost(d, unit.xi, unit.sigma, scale=k)
    lam, rows = np.full(400, 2e5), np.zeros(400, dtype=int)
    a, _ = aggregate(build_strata(unit), lam, rows, np.random.default_rng(1))
    b, _ = aggregate(build_strata(scaled), lam, rows, np.random.default_rng(1))
    np.testing.assert_allclose(b, k * a, rtol=1e-9)  # common random numbers: exactly k times
    double, _ = aggregate(build_strata(unit), 2 * lam, rows, np.random.default_rng(2))
    # doubling the volume doubles the expected cost (within Monte Carlo error of the means)
    se = np.hypot(double.std(), 2 * a.std()) / np.sqrt(a.size)
    assert abs(double.mean() - 2 * a.mean()) <= 5 * se + 1e-9 * a.mean()
    assert abs(a.mean() / (lam[0] * d.mean()) - 1) < 0.05
