"""Forecast semantics: sub-bucket spikes and events, reliability defaults, retry policy, CRN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from costsim.model.file import load_model
from costsim.scenario import parse_scenario
from costsim.simulate.chunks import simulate
from costsim.simulate.forecast import run_forecast
from costsim.simulate.prepare import prepare
from costsim.simulate.reliability import attempts

MODEL_PATH = Path(__file__).resolve().parents[1] / "scenarios" / "pilot.model.json"


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL_PATH)


def _scenario(**extra):
    d = {
        "model": str(MODEL_PATH),
        "horizon": "10d",
        "resolution": "1h",
        "volume": {"requests": 1_000_000},
        "traffic": {"shape": "flat"},
        "trials": 2000,
        "seed": 3,
    }
    d.update(extra)
    return parse_scenario(d)


def _p50(model, **extra) -> float:
    return run_forecast(_scenario(**extra), model, bridge=False).quantiles["p50"]


def test_spikes_shorter_than_a_bucket_count_for_their_duration(model) -> None:
    spikes = {
        "shape": "flat",
        "spikes": {"rate": 1, "magnitude": {"median": 3, "sd": 0}, "duration": "1h"},
    }
    hourly = _p50(model, traffic=spikes)
    daily = _p50(model, traffic=spikes, resolution="1d")
    none = _p50(model)
    # ten one-hour x3 spikes add about 10 * 2 / 240 = 8% of the traffic, at any resolution
    assert 1.05 < hourly / none < 1.12
    assert abs(daily / hourly - 1) < 0.01


def test_events_count_for_the_share_of_the_buckets_they_cover(model) -> None:
    event = {
        "shape": "flat",
        "events": [{"name": "e", "at": "36h", "duration": "2h", "multiplier": 10}],
    }
    hourly = _p50(model, traffic=event)
    daily = _p50(model, traffic=event, resolution="1d")
    assert abs(daily / hourly - 1) < 0.005


def test_reliability_left_out_or_load_only_bills_like_the_pilot(model) -> None:
    plain = run_forecast(_scenario(), model, bridge=False).totals
    load_only = run_forecast(
        _scenario(reliability={"load_exponent": 1}), model, bridge=False
    ).totals
    # flat traffic, no spikes: the load is what it is expected to be, so nothing changes
    np.testing.assert_allclose(load_only, plain, rtol=1e-9)


def test_retry_policy_reproduces_the_pilot_and_responds_to_its_settings(model) -> None:
    prep = prepare(_scenario(), model)
    j = next(i for i, pc in enumerate(prep.classes) if pc.name == "agent_tool_use")
    agent, pol = prep.classes[j], prep.reliability[j]
    retry_mean = agent.source.rates.retry_mean
    assert pol.max_attempts == pol.pilot_max > 1 and np.array_equal(pol.f, pol.f_pilot)
    # row 0 is the pilot's own rate; the other rows are its Bayesian-bootstrap draws
    pilot_attempts = attempts(pol.f_pilot, pol.pilot_max, True)
    assert pilot_attempts[0] == pytest.approx(1 + retry_mean, rel=1e-9)
    pmf = np.asarray(agent.source.rates.retry_pmf)
    k = np.arange(pmf.size)
    sd_mean = np.sqrt((pmf @ k**2 - (pmf @ k) ** 2) / agent.source.requests)
    draws = pilot_attempts[1:] - 1
    assert abs(draws.mean() - retry_mean) < 4 * sd_mean / np.sqrt(draws.size)
    assert draws.std() == pytest.approx(sd_mean, rel=4 / np.sqrt(2 * draws.size))
    base = run_forecast(_scenario(), model, bridge=False)
    no_retries = run_forecast(_scenario(reliability={"max_attempts": 1}), model, bridge=False)
    never_fails = run_forecast(_scenario(reliability={"error_rate": 0}), model, bridge=False)
    # the same random numbers: each trial's ratio is 1 / the pilot's attempts in its row
    allowed = 1 / pilot_attempts[1:]
    for other in (no_retries, never_fails):
        ratio = other.class_totals[:, j] / base.class_totals[:, j]
        nearest = np.min(np.abs(ratio[:, None] / allowed[None, :] - 1), axis=1)
        assert nearest.max() < 1e-9
        assert ratio.mean() == pytest.approx(
            1 / (1 + retry_mean), abs=4 * allowed.std() / np.sqrt(ratio.size) + 1e-3
        )


def test_adding_a_class_keeps_the_others_random_numbers(model) -> None:
    a = simulate(prepare(_scenario(mix_relative=True, mix={"lookup": 1}), model))[0]
    b_scenario = _scenario(
        mix_relative=True,
        mix={"lookup": 1, "lookup_v2": 0.001},
        new_classes={"lookup_v2": {"like": "lookup"}},
    )
    b = simulate(prepare(b_scenario, model))[0]
    for j in range(a.shape[1]):
        assert np.corrcoef(a[:, j], b[:, j])[0, 1] > 0.99


def test_daily_costs_add_up_to_each_trial_and_follow_its_spikes(model) -> None:
    event = {"name": "launch", "at": "3d", "duration": "1d", "multiplier": 4.0}
    fc = run_forecast(_scenario(traffic={"shape": "flat", "events": [event]}), model,
                      bridge=False, daily=True)  # fmt: skip
    assert fc.daily is not None and fc.daily_naive is not None
    assert fc.daily.shape == (fc.trials, 10)
    np.testing.assert_allclose(fc.daily.sum(axis=1), fc.totals, rtol=1e-12)
    assert fc.daily_naive.sum() == pytest.approx(fc.naive_linear, rel=1e-12)
    # flat traffic: every day the same share, but the launch day costs about 4x the others
    ratio = fc.daily[:, 3] / fc.daily[:, 2]
    np.testing.assert_allclose(ratio, 4.0, rtol=1e-9)
    np.testing.assert_allclose(fc.daily[:, 1], fc.daily[:, 0], rtol=1e-9)
    assert run_forecast(_scenario(), model, bridge=False).daily is None
