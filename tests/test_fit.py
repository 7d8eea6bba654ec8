"""Recovery and identity tests of the fit on synthetic logs with known truth."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from synth import SplicedTruth, drifting_costs, make_log

from costsim.errors import FitError, HeavyTailWarning, SmallSampleWarning
from costsim.model.drift import fit_drift
from costsim.model.file import load_model, model_to_json, save_model
from costsim.model.fit import FitOptions, fit_model

N = 20_000
NO_CAP = FitOptions(default_cap_factor=None)


def _fit_cost(x: np.ndarray, options: FitOptions = NO_CAP):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HeavyTailWarning)
        model = fit_model(make_log({"c": x}), options)
    return model.classes["c"].quantities["cost_usd"]


@pytest.mark.parametrize("xi", [0.1, 0.3, 0.6])
def test_tail_shape_interval_covers_truth(xi: float) -> None:
    truth = SplicedTruth(xi)
    x = truth.sample(N, np.random.default_rng(np.random.SeedSequence([2026, int(xi * 10)])))
    qf = _fit_cost(x)
    assert qf.tail_source == "fitted"
    lo, hi = qf.xi_ci
    assert lo <= xi <= hi, (qf.dist.xi, qf.xi_ci)
    # the interval is informative: about 2 * 1.645 * (1 + xi) / sqrt(k) wide, not arbitrary
    k = qf.diagnostics["exceedances"]
    assert hi - lo < 4 * 1.645 * (1 + xi) / np.sqrt(k)


@pytest.mark.parametrize("xi", [0.1, 0.3, 0.6])
def test_fitted_mean_within_sampling_error(xi: float) -> None:
    truth = SplicedTruth(xi)
    x = truth.sample(N, np.random.default_rng(np.random.SeedSequence([7, int(xi * 10)])))
    qf = _fit_cost(x)
    d = qf.dist
    # Tolerance from the sample size: the body mean's standard error, the binomial error of the
    # tail fraction, and the spread of the tail mean over the fit's own parameter draws.
    body = x[x <= d.threshold]
    se_body = (1 - d.tail_prob) * body.std() / np.sqrt(body.size)
    tail_mean = d.threshold + d.sigma / (1 - d.xi)
    se_zeta = np.sqrt(d.tail_prob * (1 - d.tail_prob) / N) * abs(tail_mean - body.mean())
    pairs = zip(qf.xi_draws, qf.sigma_draws, strict=True)
    draws = [d.with_tail(a, b).mean() for a, b in pairs if a < 0.95]
    se_tail = float(np.std(draws))
    tol = 3 * np.sqrt(se_body**2 + se_zeta**2 + se_tail**2)
    assert abs(d.mean() - truth.mean()) <= tol, (d.mean(), truth.mean(), tol)
    assert tol < 0.25 * truth.mean()  # and the tolerance is not vacuous


def test_exponential_tail_is_light() -> None:
    x = stats.expon.rvs(scale=0.01, size=N, random_state=np.random.default_rng(11))
    qf = _fit_cost(x)
    # xi = 0 within three standard errors of the estimate, (1 + xi) / sqrt(k) at xi = 0
    assert abs(qf.dist.xi) <= 3.0 / np.sqrt(qf.diagnostics["exceedances"])
    assert qf.verdict == "light"


def test_gamma_is_light() -> None:
    x = stats.gamma.rvs(2.0, scale=0.005, size=N, random_state=np.random.default_rng(12))
    assert _fit_cost(x).verdict == "light"


def test_heavy_tail_is_named_and_warned() -> None:
    x = SplicedTruth(0.8).sample(N, np.random.default_rng(3))
    with pytest.warns(HeavyTailWarning) as caught:
        model = fit_model(make_log({"agent": x}))
    qf = model.classes["agent"].quantities["cost_usd"]
    assert qf.xi_ci is not None  # the point estimate and its interval, as the dashboard has them
    said = f"xi = {qf.dist.xi:.2f} (90% CI {qf.xi_ci[0]:.2f} to {qf.xi_ci[1]:.2f}) >= 0.5"
    assert any(f"{said} (infinite variance)" in str(w.message) for w in caught)
    assert qf.verdict == "very heavy"
    assert qf.dist.cap is not None and qf.dist.cap >= x.max()
    assert np.isfinite(qf.dist.mean())


def test_cdf_ppf_identity_and_continuity_at_threshold() -> None:
    qf = _fit_cost(SplicedTruth(0.3).sample(N, np.random.default_rng(5)))
    d = qf.dist
    q = np.linspace(0.001, 0.999, 999)
    np.testing.assert_allclose(d.cdf(d.ppf(q)), q, atol=1e-9)
    u = d.threshold
    below, above = d.cdf(u * (1 - 1e-9)), d.cdf(u * (1 + 1e-9))
    assert abs(above - below) < 1e-6
    assert abs(d.cdf(u) - (1 - d.tail_prob)) < 1e-9


def test_drift_recovers_random_walk_step() -> None:
    hours, per_hour, step = 240, 1000, 0.05
    ts, cost = drifting_costs(hours, per_hour, step, np.random.default_rng(21))
    drift = fit_drift(ts, cost)
    assert drift.estimated and drift.kind == "random_walk" and drift.windows == hours
    # the innovation sd of a random walk observed over T windows: relative se ~ 1/sqrt(2T),
    # widened for the sampling noise of each window mean (0.8^2 / 1000 against 0.05^2)
    assert abs(drift.state_sd / step - 1) <= 3 * np.sqrt(1 / (2 * hours)) * 1.5


def test_no_drift_when_stationary() -> None:
    hours, per_hour = 240, 1000
    ts, cost = drifting_costs(hours, per_hour, 0.0, np.random.default_rng(22))
    assert fit_drift(ts, cost).kind == "none"


def test_short_pilot_falls_back_to_stated_default() -> None:
    rng = np.random.default_rng(4)
    ts = 1.7e9 + rng.random(500) * 1800  # half an hour
    model = fit_model(make_log({"a": rng.lognormal(size=500)}, timestamps={"a": ts}))
    drift = model.classes["a"].drift
    assert not drift.estimated and "too short" in (drift.note or "")
    assert model.traffic.hourly_profile is None
    assert any("shorter than a day" in n for n in model.notes)


def test_small_class_borrows_pooled_shape() -> None:
    rng = np.random.default_rng(8)
    big = SplicedTruth(0.3).sample(N, rng)
    small = SplicedTruth(0.3).sample(40, rng)
    with pytest.warns(SmallSampleWarning, match="class 'small'.*borrowed"):
        model = fit_model(make_log({"big": big, "small": small}), NO_CAP)
    s = model.classes["small"].quantities["cost_usd"]
    b = model.classes["big"].quantities["cost_usd"]
    assert s.tail_source == "borrowed" and b.tail_source == "fitted"
    assert s.dist.xi == pytest.approx(b.dist.xi)
    assert any("borrow" in n for n in model.notes)


def test_single_row_class_is_refused() -> None:
    log = make_log({"a": np.ones(50) + np.arange(50), "lonely": np.array([1.0])})
    with pytest.raises(FitError, match=r"class 'lonely' has 1 row; at least 10"):
        fit_model(log)


def test_model_file_is_deterministic_and_round_trips(tmp_path) -> None:
    rng = np.random.default_rng(9)
    data = {"a": SplicedTruth(0.2).sample(5000, rng), "b": rng.gamma(2.0, 0.01, 3000)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HeavyTailWarning)
        first = model_to_json(fit_model(make_log(data), FitOptions(seed=3)))
        second = model_to_json(fit_model(make_log(data), FitOptions(seed=3)))
    assert first == second
    path = tmp_path / "m.model.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HeavyTailWarning)
        save_model(fit_model(make_log(data), FitOptions(seed=3)), path)
    assert path.read_text() == first
    assert model_to_json(load_model(path)) == first


def test_atoms_keep_their_exact_mass() -> None:
    """Price tiers (three values) were mis-weighted by the body grid's 1/256 steps (-5.9%)."""
    rng = np.random.default_rng(31)
    tiers, probs = np.array([0.01, 0.10, 1.00]), np.array([0.7, 0.25, 0.05])
    x = rng.choice(tiers, size=3000, p=probs)
    x[:40] = 0.5  # and a few requests in between
    d = fit_model(make_log({"c": x})).classes["c"].quantities["cost_usd"].dist
    assert d.mean() == pytest.approx(x.mean(), rel=1e-9)
    for tier in tiers:  # each atom's mass, exactly
        mass = float(d.cdf(tier) - d.cdf(tier * (1 - 1e-9)))
        assert mass == pytest.approx(np.mean(x == tier), abs=1e-12)


def test_an_atom_at_the_top_is_a_hard_limit_not_a_tail() -> None:
    """Outputs cut at max_tokens: many rows sit exactly at the largest value. Fitting a GPD
    through that point mass would invent values beyond it; the fit keeps it as an atom."""
    from costsim.model.fit import fit_values

    rng = np.random.default_rng(7)
    mu, s, cap, n = 6.5, 0.9, 4096.0, 20_000
    x = np.minimum(rng.lognormal(mu, s, n), cap)
    qf = fit_values(x, np.random.default_rng(1), name="output_tokens")
    d = qf.dist
    assert not d.has_tail and d.upper_bound == cap
    # the atom keeps its exact mass: P(X = cap) in the fit equals the sample's share
    share = float(np.mean(x == cap))
    assert 1.0 - float(d.cdf(np.nextafter(cap, 0))) == pytest.approx(share, abs=1e-9)
    # E[min(X, c)] of a lognormal, in closed form: the fit's mean is within sampling error
    z = (np.log(cap) - mu) / s
    truth = np.exp(mu + s**2 / 2) * stats.norm.cdf(z - s) + cap * stats.norm.sf(z)
    assert abs(d.mean() - truth) < 4 * x.std() / np.sqrt(n)
    assert any("hard limit" in note for note in qf.diagnostics["notes"])
