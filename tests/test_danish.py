"""Fit costsim's GPD to the Danish fire losses at u = 10 and compare with evir's published fit.

Data: ``tests/data/danish.csv``. These are the 2,167 Danish fire losses from 1980 to 1990, in
millions of DKK at 1985 prices. McNeil (1997, ASTIN Bulletin 27(1), 117-137) used them, and
``tests/data/README.md`` gives where they come from.

Reference numbers, and where each one comes from:

* ``PUBLISHED_RISK``: the "Example output" of evir's ``riskmeasures`` help page, for
  ``out <- gpd(danish, 10); riskmeasures(out, c(0.999, 0.9999))``
  (https://rdrr.io/cran/evir/man/riskmeasures.html):

      p       quantile    sfall
      0.9990   94.28956  191.3697
      0.9999  304.62448  609.3696

  evir is the R port of McNeil's own S-Plus library (EVIS). ``gpd(danish, 10)`` is the
  maximum-likelihood GPD fit to the 109 excesses over 10, the model of McNeil (1997).
* ``XI_EVIR`` and ``SIGMA_EVIR``: the (xi, beta) of that same fit. I found no page that prints
  ``par.ests`` itself. The values below are the only (xi, beta) that give both published
  quantiles through the formula below. They then reproduce both published shortfalls to 7
  digits; ``test_reference_constants_reproduce_the_published_output`` checks this. They agree to
  4 digits with the values often quoted for this fit, xi 0.4968 and beta 6.975. I found no
  source I could reach that prints those quoted values, so they are not asserted.

The tail formulas of the peaks-over-threshold model (as in evir's ``riskmeasures``), with
n = 2167 and N_u = 109:

    q_p  = u + sigma / xi * (((n / N_u) * (1 - p)) ** -xi - 1)
    ES_p = (q_p + sigma - xi * u) / (1 - xi)

costsim fits the same estimator to the same data, so the tolerances are about optimiser
precision (1% relative), not about sampling error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from costsim.model import tail
from costsim.model.splice import BODY_POINTS, SplicedDistribution

DATA = Path(__file__).parent / "data" / "danish.csv"
U = 10.0
N_TOTAL = 2167
N_EXCEED = 109

# evir riskmeasures(gpd(danish, 10), c(0.999, 0.9999)): p -> (quantile, expected shortfall)
PUBLISHED_RISK = {0.999: (94.28956, 191.3697), 0.9999: (304.62448, 609.3696)}
# (xi, beta) implied by the two published quantiles (see the module docstring)
XI_EVIR = 0.4968062
SIGMA_EVIR = 6.9745525

REL = 1e-2  # optimiser precision, not statistical error


def _losses() -> np.ndarray:
    return np.loadtxt(DATA, skiprows=1)


def _excesses(x: np.ndarray, u: float = U) -> np.ndarray:
    return np.sort(x[x > u] - u)


def _quantile(p: float, xi: float, sigma: float) -> float:
    return U + sigma / xi * (((N_TOTAL / N_EXCEED) * (1.0 - p)) ** -xi - 1.0)


def _shortfall(p: float, xi: float, sigma: float) -> float:
    return (_quantile(p, xi, sigma) + sigma - xi * U) / (1.0 - xi)


@pytest.fixture(scope="module")
def losses() -> np.ndarray:
    return _losses()


@pytest.fixture(scope="module")
def fit(losses: np.ndarray) -> tuple[float, float, float]:
    return tail.fit_gpd_mle(_excesses(losses))


def test_data_is_the_published_sample(losses: np.ndarray) -> None:
    assert losses.size == N_TOTAL
    assert losses.min() == pytest.approx(1.0)
    assert losses.max() == pytest.approx(263.250366032211, rel=1e-12)
    assert int(np.sum(losses > U)) == N_EXCEED
    assert int(np.sum(losses > 20.0)) == 36


def test_reference_constants_reproduce_the_published_output() -> None:
    """The implied (xi, beta) are not made up: they give all four published numbers."""
    for p, (q_pub, es_pub) in PUBLISHED_RISK.items():
        assert _quantile(p, XI_EVIR, SIGMA_EVIR) == pytest.approx(q_pub, rel=1e-6)
        assert _shortfall(p, XI_EVIR, SIGMA_EVIR) == pytest.approx(es_pub, rel=1e-6)


def test_mle_reproduces_the_published_fit(losses: np.ndarray, fit) -> None:
    y = _excesses(losses)
    xi, sigma, loglik = fit
    assert y.size == N_EXCEED
    assert xi == pytest.approx(XI_EVIR, rel=REL)
    assert sigma == pytest.approx(SIGMA_EVIR, rel=REL)
    # a maximum: evir's optimum is no better than costsim's
    assert loglik >= tail.gpd_loglik(y, XI_EVIR, SIGMA_EVIR) - 1e-6


def test_xi_interval_covers_the_published_value_with_the_expected_width(
    losses: np.ndarray, fit
) -> None:
    """costsim's profile-likelihood interval for xi (CI_LEVEL, 90%) at the fixed threshold u = 10.

    Its half-width should be close to the Wald half-width z * se(xi). Here se(xi) comes from the
    observed information at costsim's optimum (numerical Hessian of ``gpd_loglik``), the quantity
    evir reports as ``par.ses``.
    """
    y = _excesses(losses)
    xi, sigma, _ = fit
    (lo, hi), _, _ = tail.profile_draws(y, xi, sigma, np.random.default_rng(0))
    assert lo < XI_EVIR < hi

    theta = np.array([xi, sigma])
    h = np.array([1e-4, 1e-3])
    hess = np.empty((2, 2))
    for i in range(2):
        for j in range(2):
            ei, ej = np.eye(2)[i] * h[i], np.eye(2)[j] * h[j]
            f = [
                tail.gpd_loglik(y, *(theta + si * ei + sj * ej))
                for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1))
            ]
            hess[i, j] = (f[0] - f[1] - f[2] + f[3]) / (4.0 * h[i] * h[j])
    se_xi = float(np.sqrt(np.linalg.inv(-hess)[0, 0]))
    z = float(stats.norm.ppf(0.5 + tail.CI_LEVEL / 2.0))
    half = (hi - lo) / 2.0
    assert 1.0 / 1.5 < half / (z * se_xi) < 1.5, (lo, hi, se_xi)


def test_tail_quantiles_and_shortfalls_match_the_published_risk_measures(
    losses: np.ndarray, fit
) -> None:
    """The quantiles come from costsim's own spliced distribution: an empirical body up to u, and
    the fitted GPD above u with mass N_u / n. The shortfalls use the standard GPD formula."""
    xi, sigma, _ = fit
    body = np.quantile(losses[losses <= U], np.linspace(0.0, 1.0, BODY_POINTS))
    body[-1] = U  # the body ends at the threshold, as in McNeil's model
    dist = SplicedDistribution(body, N_EXCEED / N_TOTAL, xi, sigma)
    ps = np.array(sorted(PUBLISHED_RISK))
    q = dist.ppf(ps)
    for p, q_costsim in zip(ps, q, strict=True):
        q_pub, es_pub = PUBLISHED_RISK[float(p)]
        assert q_costsim == pytest.approx(_quantile(float(p), xi, sigma), rel=1e-9)
        assert q_costsim == pytest.approx(q_pub, rel=REL)
        assert _shortfall(float(p), xi, sigma) == pytest.approx(es_pub, rel=REL)
