"""The numerical core of deployment options: autoscaler, provisioned pools, rate limits,
comparison statistics and the value of keeping the choice open."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costsim.errors import ScenarioError
from costsim.simulate.deployments import (
    autoscale,
    batch_price_factor,
    compare,
    flexibility_value,
    provisioned,
    rate_limit,
)

HOUR = 3600.0


def _one_class(per_bucket: list[float]) -> np.ndarray:
    """(1 trial, buckets, 1 class) requests."""
    return np.asarray(per_bucket, dtype=float)[None, :, None]


# ---------------------------------------------------------------------------------------------
# A brute-force reference autoscaler: a fine time grid, delays whole numbers of fine steps
# ---------------------------------------------------------------------------------------------


def _reference(
    demand: np.ndarray, steps: int, lo: float, hi: float, up: int, down: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Billed, serving (bucket means) and starts per bucket, step by step in plain Python.

    Each bucket is ``steps`` fine steps; delays are ``up`` and ``down`` fine steps. The wanted
    level on a step is the highest target over the last ``down`` steps and this one; the serving
    level the lowest wanted level over the last ``up`` steps and this one; before the horizon
    everything is at the first bucket's target.
    """
    n_trials, n_buckets = demand.shape
    billed = np.zeros((n_trials, n_buckets))
    serving = np.zeros((n_trials, n_buckets))
    starts = np.zeros((n_trials, n_buckets))
    for t in range(n_trials):
        target = [min(max(float(v), lo), hi) for v in demand[t]]
        fine = [target[i // steps] for i in range(n_buckets * steps)]
        before = target[0]
        wanted = [
            max([before] * (down - i) + fine[max(0, i - down) : i + 1]) for i in range(len(fine))
        ]
        served = [
            min([before] * (up - i) + wanted[max(0, i - up) : i + 1]) for i in range(len(fine))
        ]
        for i in range(len(fine)):
            b = i // steps
            billed[t, b] += wanted[i] / steps
            serving[t, b] += served[i] / steps
            starts[t, b] += max(0.0, wanted[i] - (wanted[i - 1] if i else before))
    return billed, serving, starts


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(0, 30),
    st.integers(0, 30),
    st.floats(0.0, 3.0),
    st.floats(0.0, 6.0),
)
def test_autoscale_matches_a_fine_grid_reference(seed, up, down, lo, span) -> None:
    steps = 12  # a bucket of an hour in steps of 5 minutes
    rng = np.random.default_rng(seed)
    demand = np.round(rng.gamma(1.5, 2.0, size=(3, 7)) * 4) / 4
    hi = lo + span
    got = autoscale(demand, HOUR, lo, hi, up * HOUR / steps, down * HOUR / steps)
    billed, serving, starts = _reference(demand, steps, lo, hi, up, down)
    np.testing.assert_allclose(got.billed, billed, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.serving, serving, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.starts, starts, rtol=1e-12, atol=1e-12)


def test_autoscale_with_no_delays_follows_demand_exactly() -> None:
    demand = np.random.default_rng(3).gamma(2.0, 3.0, size=(50, 48))
    r = autoscale(demand, HOUR, 0.0, math.inf, 0.0, 0.0)
    np.testing.assert_array_equal(r.billed, demand)
    np.testing.assert_array_equal(r.serving, demand)
    whole = autoscale(demand, HOUR, 0.0, math.inf, 0.0, 0.0, whole=True)
    np.testing.assert_array_equal(whole.billed, np.ceil(demand))


def test_a_cold_pool_starts_every_replica_cold() -> None:
    # from no replicas: 2 launched at t = 0, serving after 15 minutes of the first hour
    r = autoscale(np.array([[2.0, 2.0]]), HOUR, 0.0, math.inf, 900.0, 0.0, initial=0.0)
    np.testing.assert_allclose(r.serving, [[1.5, 2.0]])
    np.testing.assert_allclose(r.billed, [[2.0, 2.0]])
    np.testing.assert_allclose(r.starts, [[2.0, 0.0]])
    warm = autoscale(np.array([[2.0, 2.0]]), HOUR, 0.0, math.inf, 900.0, 0.0)
    np.testing.assert_allclose(warm.serving, [[2.0, 2.0]])


def test_scale_down_waits_for_scale_down_after() -> None:
    demand = np.array([[4.0, 1.0, 1.0, 1.0, 1.0]])
    # demand falls at the start of bucket 1; 1.5 buckets later the pool follows
    r = autoscale(demand, HOUR, 0.0, math.inf, 0.0, 1.5 * HOUR)
    np.testing.assert_allclose(r.billed, [[4.0, 4.0, 2.5, 1.0, 1.0]], rtol=1e-12)
    immediate = autoscale(demand, HOUR, 0.0, math.inf, 0.0, 0.0)
    np.testing.assert_allclose(immediate.billed, demand)
    # a dip shorter than the window is ridden out: no scale-down, no cold starts after it
    dip = np.array([[4.0, 1.0, 4.0]])
    held = autoscale(dip, HOUR, 0.0, math.inf, 0.0, HOUR + 1.0)
    np.testing.assert_allclose(held.billed, [[4.0, 4.0, 4.0]])
    assert held.starts.sum() == 0.0
    assert autoscale(dip, HOUR, 0.0, math.inf, 0.0, 0.0).starts.sum() == 3.0


# ---------------------------------------------------------------------------------------------
# Provisioned pools
# ---------------------------------------------------------------------------------------------


def test_fixed_replicas_cost_replicas_times_hours_times_price() -> None:
    rng = np.random.default_rng(11)
    n_trials, n_buckets = 200, 24
    requests = rng.gamma(2.0, 1000.0, size=(n_trials, n_buckets, 3))
    thr = np.array([50.0, 20.0, 100.0])  # ample: under 1 replica of load, 3 running
    res = provisioned(requests, HOUR, thr, gpu_hour_usd=4.0, r_min=3, r_max=3)
    np.testing.assert_allclose(res.cost, 3 * n_buckets * 4.0, rtol=1e-12)
    np.testing.assert_allclose(res.replica_hours, 3 * n_buckets, rtol=1e-12)
    assert np.all(res.overflow == 0) and np.all(res.cold_starts == 0)
    # the committed replicas at the committed price, the others on demand
    com = provisioned(
        requests, HOUR, thr, gpu_hour_usd=4.0, r_min=3, r_max=3,
        commitment_replicas=2, commitment_gpu_hour_usd=2.5,
    )  # fmt: skip
    np.testing.assert_allclose(com.cost, (2 * 2.5 + 1 * 4.0) * n_buckets, rtol=1e-12)
    np.testing.assert_allclose(com.on_demand_hours, n_buckets, rtol=1e-12)


def test_commitment_is_paid_whether_used_or_not() -> None:
    idle = np.zeros((4, 10, 1))
    res = provisioned(
        idle, HOUR, [10.0], gpu_hour_usd=4.0, r_min=0, r_max=8,
        commitment_replicas=2, commitment_gpu_hour_usd=2.5,
    )  # fmt: skip
    np.testing.assert_allclose(res.cost, 2 * 10 * 2.5, rtol=1e-12)
    np.testing.assert_array_equal(res.utilisation, 0.0)
    # a commitment above the ceiling runs anyway (paid for), and nothing is on demand
    big = provisioned(
        idle, HOUR, [10.0], gpu_hour_usd=4.0, r_min=0, r_max=1,
        commitment_replicas=6, commitment_gpu_hour_usd=2.5,
    )  # fmt: skip
    np.testing.assert_allclose(big.cost, 6 * 10 * 2.5, rtol=1e-12)
    np.testing.assert_array_equal(big.on_demand_hours, 0.0)


def test_autoscaler_without_delay_costs_the_replica_hours_of_the_load() -> None:
    rng = np.random.default_rng(5)
    requests = rng.gamma(1.5, 20_000.0, size=(100, 48, 2))
    thr = np.array([20.0, 2.0])
    util = 0.7
    res = provisioned(requests, HOUR, thr, gpu_hour_usd=4.0, r_min=0, target_utilization=util)
    load_hours = (requests / thr).sum(axis=(1, 2)) / HOUR  # replica-hours at full throughput
    np.testing.assert_allclose(res.replica_hours, load_hours / util, rtol=1e-12)
    np.testing.assert_allclose(res.cost, 4.0 * load_hours / util, rtol=1e-12)
    assert np.all(res.overflow == 0)
    np.testing.assert_allclose(res.utilisation, util, rtol=1e-12)


def test_scale_up_delay_overflows_after_each_rise_by_hand() -> None:
    # 1 request/s per replica, 100 % target: buckets want 2, 4, 4, 1, 3 replicas.
    # Replicas take 15 min to start. Rises at the start of buckets 1 (2 -> 4) and 4 (1 -> 3):
    # for 900 s, 2 replicas short, i.e. 2 x 900 = 1800 requests overflow each time.
    # Billed: launched replicas are paid while starting, 2 + 4 + 4 + 1 + 3 = 14 replica-hours.
    # Serving capacity: 2 + (0.25 x 2 + 0.75 x 4) + 4 + 1 + (0.25 x 1 + 0.75 x 3) = 13 r-h,
    # all of it busy: 14 h of load - 1 h overflowed = 13 h served.
    requests = _one_class([2 * HOUR, 4 * HOUR, 4 * HOUR, 1 * HOUR, 3 * HOUR])
    res = provisioned(requests, HOUR, [1.0], gpu_hour_usd=4.0, r_min=0, scale_up_delay_s=900)
    np.testing.assert_allclose(
        res.unserved_fraction, [[0, 1800 / (4 * HOUR), 0, 0, 1800 / (3 * HOUR)]]
    )
    np.testing.assert_allclose(res.overflow, [[3600.0]])
    np.testing.assert_allclose(res.overflow_share_total, [3600 / (14 * HOUR)])
    np.testing.assert_allclose(res.replica_hours, [14.0])
    np.testing.assert_allclose(res.cost, [56.0])
    np.testing.assert_allclose(res.cold_starts, [4.0])
    np.testing.assert_allclose(res.utilisation, [1.0])
    np.testing.assert_allclose(res.replicas.serving, [[2, 3.5, 4, 1, 2.5]])
    # and with no delay, none of it
    assert provisioned(requests, HOUR, [1.0], gpu_hour_usd=4.0, r_min=0).overflow.sum() == 0


def test_throughput_weights_classes_and_throttle_drops_the_excess() -> None:
    # one replica: class a at 20 req/s, class b at 2 req/s (each request of b uses 10x the
    # capacity). 10 req/s of a + 1 req/s of b fill it exactly; 2 req/s of b need 1.5 replicas,
    # so a third of every class's requests is unserved.
    fits = np.array([[[10 * HOUR, 1 * HOUR]]])
    over = np.array([[[10 * HOUR, 2 * HOUR]]])
    kw: dict[str, Any] = {"gpu_hour_usd": 4.0, "r_min": 1, "r_max": 1}
    assert provisioned(fits, HOUR, [20.0, 2.0], **kw).overflow.sum() == 0
    spill = provisioned(over, HOUR, [20.0, 2.0], **kw)
    np.testing.assert_allclose(spill.overflow, [[10 * HOUR / 3, 2 * HOUR / 3]])
    np.testing.assert_allclose(spill.overflow_share, [[1 / 3, 1 / 3]])
    np.testing.assert_allclose(spill.overflow_share_total, [1 / 3])
    np.testing.assert_array_equal(spill.throttled, 0.0)
    drop = provisioned(over, HOUR, [20.0, 2.0], throttle=True, **kw)
    np.testing.assert_allclose(drop.throttled, spill.overflow)
    np.testing.assert_allclose(drop.throttled_share_total, [1 / 3])
    np.testing.assert_array_equal(drop.overflow, 0.0)
    np.testing.assert_array_equal(drop.overflow_share_total, 0.0)

    # two more requests/s of the fast class overflow a tenth of the capacity that two more of
    # the slow class do: 0.1 replica-hour against 1
    def unserved_hours(extra_a: float, extra_b: float) -> float:
        req = np.array([[[(10 + extra_a) * HOUR, (1 + extra_b) * HOUR]]])
        res = provisioned(req, HOUR, [20.0, 2.0], **kw)
        return float((res.overflow / [20.0, 2.0]).sum() / HOUR)

    assert unserved_hours(2, 0) == pytest.approx(0.1, rel=1e-12)
    assert unserved_hours(0, 2) == pytest.approx(1.0, rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.1, 20.0), st.floats(1.0, 10.0))
def test_cost_scales_with_price_and_more_replicas_never_overflow_more(seed, price, k) -> None:
    rng = np.random.default_rng(seed)
    requests = rng.gamma(0.8, 3000.0, size=(4, 12, 2))
    thr = np.array([1.0, 3.0])
    kw: dict[str, Any] = {"r_max": 6.0, "scale_up_delay_s": 1500.0, "scale_down_after_s": 600.0}
    a = provisioned(requests, HOUR, thr, gpu_hour_usd=price, r_min=0, **kw)
    b = provisioned(requests, HOUR, thr, gpu_hour_usd=k * price, r_min=0, **kw)
    np.testing.assert_allclose(b.cost, k * a.cost, rtol=1e-12)
    assert np.all(b.cost >= a.cost)
    more_min = provisioned(requests, HOUR, thr, gpu_hour_usd=price, r_min=2, **kw)
    more_max = provisioned(requests, HOUR, thr, gpu_hour_usd=price, r_min=0, **{**kw, "r_max": 9.0})
    slower = provisioned(
        requests, HOUR, thr, gpu_hour_usd=price, r_min=0, **{**kw, "scale_up_delay_s": 4000.0}
    )
    tol = 1e-9 * requests.sum()
    assert np.all(more_min.overflow.sum(axis=1) <= a.overflow.sum(axis=1) + tol)
    assert np.all(more_max.overflow.sum(axis=1) <= a.overflow.sum(axis=1) + tol)
    assert np.all(slower.overflow.sum(axis=1) >= a.overflow.sum(axis=1) - tol)


def test_bad_arguments_name_what_is_allowed() -> None:
    req = np.ones((1, 2, 1))
    with pytest.raises(ScenarioError, match=r"replicas\.max"):
        provisioned(req, HOUR, [1.0], gpu_hour_usd=1.0, r_min=3, r_max=2)
    with pytest.raises(ScenarioError, match="throughput"):
        provisioned(req, HOUR, [0.0], gpu_hour_usd=1.0, r_min=0)
    with pytest.raises(ScenarioError, match="target_utilization"):
        provisioned(req, HOUR, [1.0], gpu_hour_usd=1.0, r_min=0, target_utilization=0)
    with pytest.raises(ScenarioError, match="requests_per_minute"):
        rate_limit(np.ones((1, 2)), 60.0, 0)
    with pytest.raises(ScenarioError, match=r"batch\.discount"):
        batch_price_factor(1.5)


# ---------------------------------------------------------------------------------------------
# API options
# ---------------------------------------------------------------------------------------------


def test_rate_limit_below_the_limit_delays_nothing() -> None:
    r = np.random.default_rng(2).uniform(0, 6000 * 60, size=(20, 30))  # <= 6000 rpm per hour
    out = rate_limit(r, HOUR, 6000)
    np.testing.assert_array_equal(out.delayed_share, 0.0)
    np.testing.assert_array_equal(out.attempts_factor, 1.0)
    np.testing.assert_array_equal(out.backlog_end, 0.0)


def test_rate_limit_by_hand() -> None:
    # 60 requests/minute, one-minute buckets: 60 served per bucket, the backlog first.
    # bucket: arrivals, queue after, new requests not served in their bucket
    #   0:  30 ->  0, 0
    #   1: 100 -> 40, 40
    #   2:  50 -> 40 + 50 - 60 = 30, 30 (the backlog of 40 goes first)
    #   3:  80 -> 30 + 80 - 60 = 50, 50
    #   4:   0 ->  0, 0
    out = rate_limit(np.array([[30.0, 100.0, 50.0, 80.0, 0.0]]), 60.0, 60.0)
    np.testing.assert_allclose(out.delayed_share, [[0, 0.4, 0.6, 50 / 80, 0]])
    np.testing.assert_allclose(out.delayed, [120.0])
    np.testing.assert_allclose(out.attempts_factor, [1 + 120 / 260])
    np.testing.assert_allclose(out.backlog_end, [0.0])
    stuck = rate_limit(np.array([[100.0, 100.0]]), 60.0, 60.0)
    np.testing.assert_allclose(stuck.backlog_end, [80.0])


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(10.0, 1000.0), st.floats(1.0, 3.0))
def test_a_higher_rate_limit_never_delays_more(seed, rpm, k) -> None:
    r = np.random.default_rng(seed).gamma(0.7, 200.0, size=(5, 40))
    low, high = rate_limit(r, 60.0, rpm), rate_limit(r, 60.0, k * rpm)
    assert np.all(high.delayed <= low.delayed + 1e-9 * r.sum())
    assert np.all(low.delayed_share >= 0) and np.all(low.delayed_share <= 1)


def test_batch_price_factor() -> None:
    assert batch_price_factor(0.5) == 0.5
    assert batch_price_factor(0.0) == 1.0


# ---------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------


def test_regret_and_p_cheapest() -> None:
    rng = np.random.default_rng(8)
    n = 1000
    costs = {
        "api": rng.lognormal(0.0, 0.4, n),
        "gpus": rng.lognormal(0.1, 0.1, n),
        "mixed": np.round(rng.lognormal(0.0, 0.3, n), 1),
    }
    costs["twin"] = costs["mixed"].copy()  # exact ties: the win is split
    s = compare(costs)
    assert np.all(s.regret >= 0)
    c = np.stack([costs[k] for k in s.names], axis=1)
    np.testing.assert_array_equal(s.regret[np.arange(n), c.argmin(axis=1)], 0.0)
    assert math.isclose(sum(o.p_cheapest for o in s.options), 1.0, rel_tol=1e-12)
    assert s["mixed"].p_cheapest == s["twin"].p_cheapest
    assert s["api"].expected_regret == pytest.approx(s.regret[:, 0].mean())
    assert s["gpus"].p5 <= s["gpus"].p50 <= s["gpus"].p95
    one = compare({"only": costs["api"]})
    assert one["only"].p_cheapest == 1.0 and one["only"].expected_regret == 0.0


def test_break_even_is_a_coin_flip() -> None:
    # a fixed GPU pool (3 replicas x 24 h x $4 = $288) against an API billed per request, with
    # volume symmetric around the break-even volume 288 / price: P(api cheapest) = 1/2.
    n = 20_000
    gpu = provisioned(np.zeros((n, 24, 1)), HOUR, [1.0], gpu_hour_usd=4.0, r_min=3, r_max=3)
    price = 0.002
    volume = 288.0 / price * (1.0 + 0.2 * np.random.default_rng(21).standard_normal(n))
    s = compare({"api": volume * price, "gpus": gpu.cost})
    tol = 4.0 * math.sqrt(0.25 / n)  # 4 binomial standard errors
    assert abs(s["api"].p_cheapest - 0.5) < tol
    assert s["api"].p_cheapest_se == pytest.approx(math.sqrt(0.25 / n), rel=0.01)


# ---------------------------------------------------------------------------------------------
# The value of keeping the choice open
# ---------------------------------------------------------------------------------------------


def _api_vs_gpu(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two options: an API whose cost follows volume, a GPU pool at a fixed price. The volume
    level shows in the first period (the feature) and persists into the rest."""
    rng = np.random.default_rng(seed)
    level = rng.lognormal(0.0, 0.5, n)
    api_first = 100.0 * level * rng.lognormal(0.0, 0.05, n)
    api_rest = 200.0 * level * rng.lognormal(0.0, 0.2, n)
    first = np.stack([api_first, np.full(n, 115.0)], axis=1)
    rest = np.stack([api_rest, np.full(n, 230.0)], axis=1)
    return first, rest, api_first[:, None]


def test_flexibility_is_worth_something_when_the_first_period_predicts_the_rest() -> None:
    n = 4000
    first, rest, features = _api_vs_gpu(n, 4)
    fx = flexibility_value(first, rest, features, switch_cost=[10.0, 10.0], lead_fraction=0.1)
    assert np.all(fx.value > 5 * fx.value_se)  # clearly positive for both starts
    assert np.all(fx.value < fx.clairvoyant)
    assert np.all((fx.switch_share > 0) & (fx.switch_share < 1))
    np.testing.assert_allclose(fx.switch_to.sum(axis=1), fx.switch_share)
    np.testing.assert_allclose(fx.commit, (first + rest).mean(axis=0))


def test_flexibility_is_zero_when_options_never_differ() -> None:
    rng = np.random.default_rng(6)
    a = rng.lognormal(0, 1, (500, 1))
    first, rest = np.repeat(a, 3, axis=1), np.repeat(2 * a, 3, axis=1)
    fx = flexibility_value(first, rest, a, switch_cost=0.0, lead_fraction=0.0)
    np.testing.assert_array_equal(fx.value, 0.0)
    np.testing.assert_array_equal(fx.clairvoyant, 0.0)


def test_cross_fitting_does_not_find_value_in_noise() -> None:
    # rests independent of what the review sees: switching is a coin toss, worth nothing in
    # expectation; a clairvoyant review would pick the cheaper rest every time.
    n = 4000
    rng = np.random.default_rng(9)
    rest = 100.0 + 10.0 * rng.standard_normal((n, 2))
    features = rng.standard_normal((n, 6))
    fx = flexibility_value(np.zeros((n, 2)), rest, features, switch_cost=0.0, lead_fraction=0.0)
    assert np.all(fx.value <= 3 * fx.value_se)
    assert np.all(fx.clairvoyant > 5.0)  # E[max of the gap] = 10 / sqrt(pi) ~ 5.6


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 50.0), st.floats(0.0, 1.0))
def test_flexibility_lies_between_zero_and_clairvoyance(seed, switch, lead) -> None:
    first, rest, features = _api_vs_gpu(200, seed)
    fx = flexibility_value(first, rest, features, switch_cost=switch, lead_fraction=lead)
    assert np.all(fx.value >= 0)
    assert np.all(fx.value <= fx.clairvoyant + 1e-9)
