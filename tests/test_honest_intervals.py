"""Honest intervals at production volume (issue 7): known-truth pilots, many seeded replications.

Each test fits pilots drawn from a known distribution, forecasts 100x-500x the pilot's volume and
counts how often the forecast's P5-P95 holds the truth. A nominal 90% interval is accepted when
its coverage over R replications is at least 85% less the one-sided 95% sampling allowance of R
replications, 1.645 sqrt(0.85 * 0.15 / R), and not needlessly wide: its median width is at most
1.5x the oracle's (the 90% interval of the pilot mean itself, from the true sd). Seeds are fixed;
nothing is retried. Parameter uncertainty is tested with drift switched off (the model says
"none"); drift has its own tests at the end.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats
from synth import SplicedTruth, make_log

from costsim.logs import PilotLog
from costsim.model.fit import FitOptions, FittedModel, fit_model
from costsim.model.tail import fit_gpd_mle, pwm_estimate
from costsim.scenario import parse_scenario
from costsim.simulate.forecast import run_forecast
from costsim.simulate.unitcost import tail_means

pytestmark = pytest.mark.slow
Z90 = 1.6448536269514722
REPS = 100
P_IN, P_OUT = 2.5, 10.0  # USD per million tokens: the synthetic pilots' billing prices


def _floor(reps: int, target: float = 0.85) -> float:
    return target - Z90 * math.sqrt(target * (1 - target) / reps)


def _no_drift(model: FittedModel) -> FittedModel:
    classes = {k: replace(c, drift=replace(c.drift, kind="none")) for k, c in model.classes.items()}
    return replace(model, classes=classes)


def _fit(log: PilotLog, options: FitOptions | None = None) -> FittedModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_model(log, options)


def _forecast(model: FittedModel, requests: float, seed: int, **extra: object) -> dict:
    doc = {
        "model": "unused.json",
        "horizon": "30d",
        "volume": {"requests": requests},
        "traffic": {"shape": "flat"},
        "trials": 2000,
        "seed": seed,
        **extra,
    }
    return run_forecast(parse_scenario(doc), model, bridge=False).quantiles


# ---------------------------------------------------------------------------------------------
# Known truths
# ---------------------------------------------------------------------------------------------

LOGNORMAL_S = 0.8


def _lognormal(n: int, rng: np.random.Generator, scale: float = 0.01) -> np.ndarray:
    return scale * np.exp(LOGNORMAL_S * rng.standard_normal(n))


def _lognormal_mean(scale: float = 0.01) -> float:
    return scale * math.exp(LOGNORMAL_S**2 / 2)


SPLICED = SplicedTruth(xi=0.3)  # lognormal body, GPD tail above its 90% quantile


def _sd_of_mean(sample: np.ndarray, n: int) -> float:
    """Oracle: the sd of the mean of n draws, from a large sample of the truth."""
    return float(np.std(sample) / math.sqrt(n))


def _token_pilot(kind: str, sizes: dict[str, int], rng: np.random.Generator) -> PilotLog:
    """Input tokens lognormal, output tokens lognormal or spliced; cost billed at P_IN/P_OUT.
    The last class is 3x the others' size of request (a different class, same family)."""
    ins, outs, idx = [], [], []
    for i, n in enumerate(sizes.values()):
        f = 1.0 if i == 0 else 3.0
        ins.append(f * 2000 * np.exp(0.6 * rng.standard_normal(n)))
        outs.append(f * (300 * np.exp(0.8 * rng.standard_normal(n)) if kind == "lognormal"
                         else 300 / 0.002 * SPLICED.sample(n, rng)))  # fmt: skip
        idx.append(np.full(n, i, dtype=np.int32))
    inp, out = np.concatenate(ins), np.concatenate(outs)
    cost = (inp * P_IN + out * P_OUT) / 1e6
    return PilotLog(
        source="synthetic", classes=tuple(sizes), class_index=np.concatenate(idx), cost=cost,
        input_tokens=inp, output_tokens=out, cached_input_tokens=None, timestamp=None,
        latency_ms=None, error=None, retries=None, cold_start=None, rows_read=int(cost.size),
    )  # fmt: skip


def _token_mean(kind: str, f: float) -> float:
    e_in = f * 2000 * math.exp(0.18)
    e_out = f * (300 * math.exp(0.32) if kind == "lognormal" else 300 / 0.002 * SPLICED.mean())
    return (P_IN * e_in + P_OUT * e_out) / 1e6


# ---------------------------------------------------------------------------------------------
# Parameter uncertainty at production volume
# ---------------------------------------------------------------------------------------------


def _coverage(cases: list[tuple[float, dict]]) -> tuple[float, float]:
    """(coverage of the truth by P5-P95, median width relative to the truth)."""
    hits = [q["p5"] <= truth <= q["p95"] for truth, q in cases]
    widths = [(q["p95"] - q["p5"]) / truth for truth, q in cases]
    return float(np.mean(hits)), float(np.median(widths))


@pytest.mark.parametrize("kind", ["lognormal", "spliced"])
def test_a_5k_row_class_at_100x_its_volume(kind: str) -> None:
    n, factor = 5000, 100
    truth_sample = (
        _lognormal(2_000_000, np.random.default_rng(0))
        if kind == "lognormal"
        else SPLICED.sample(2_000_000, np.random.default_rng(0))
    )
    mean = _lognormal_mean() if kind == "lognormal" else SPLICED.mean()
    cases = []
    for rep in range(REPS):
        rng = np.random.default_rng([7001, rep])
        x = _lognormal(n, rng) if kind == "lognormal" else SPLICED.sample(n, rng)
        model = _no_drift(_fit(make_log({"c": x})))
        cases.append((mean * n * factor, _forecast(model, n * factor, rep)))
    coverage, width = _coverage(cases)
    oracle = 2 * Z90 * _sd_of_mean(truth_sample, n) / mean
    report = f"{kind}: coverage {coverage:.0%}, median width {width:.4f}, oracle {oracle:.4f}"
    print(report)
    assert coverage >= _floor(REPS), report
    assert width <= 1.5 * oracle, report


@pytest.mark.parametrize("kind", ["lognormal", "spliced"])
def test_a_60_row_class_borrowing_its_shape_at_100x(kind: str) -> None:
    n, factor = 60, 100
    draw = (lambda m, rng: _lognormal(m, rng)) if kind == "lognormal" else SPLICED.sample
    mean = 3 * (_lognormal_mean() if kind == "lognormal" else SPLICED.mean())
    cases = []
    for rep in range(REPS):
        rng = np.random.default_rng([7002, rep])
        log = make_log({"big": draw(5000, rng), "small": 3 * draw(n, rng)})
        model = _no_drift(_fit(log))
        assert model.classes["small"].quantities["cost_usd"].tail_source == "borrowed"
        q = _forecast(model, n * factor, rep, mix={"small": 1.0})
        cases.append((mean * n * factor, q))
    coverage, width = _coverage(cases)
    oracle = 2 * Z90 * 3 * _sd_of_mean(draw(2_000_000, np.random.default_rng(0)), n) / mean
    report = f"{kind}: coverage {coverage:.0%}, median width {width:.4f}, oracle {oracle:.4f}"
    print(report)
    assert coverage >= _floor(REPS), report
    assert width <= 1.5 * oracle, report


@pytest.mark.parametrize(("kind", "small"), [("lognormal", False), ("spliced", False),
                                             ("lognormal", True), ("spliced", True)])  # fmt: skip
def test_repriced_from_tokens_at_the_billing_prices(kind: str, small: bool) -> None:
    n, factor = (60, 100) if small else (5000, 100)
    sizes = {"big": 5000, "small": n} if small else {"c": n}
    target, f = ("small", 3.0) if small else ("c", 1.0)
    cases = []
    for rep in range(REPS):
        rng = np.random.default_rng([7003, rep])
        model = _no_drift(_fit(_token_pilot(kind, sizes, rng)))
        q = _forecast(
            model, n * factor, rep, mix={target: 1.0},
            pricing={"default": {"input_per_mtok": P_IN, "output_per_mtok": P_OUT}},
        )  # fmt: skip
        cases.append((_token_mean(kind, f) * n * factor, q))
    coverage, width = _coverage(cases)
    oracle_rng = np.random.default_rng(0)
    sample = _token_pilot(kind, {"x": 1_000_000} if not small else {"y": 10, "x": 1_000_000},
                          oracle_rng).cost  # fmt: skip
    sample = sample[-1_000_000:]
    oracle = 2 * Z90 * _sd_of_mean(sample, n) / _token_mean(kind, f)
    report = f"{kind} small={small}: coverage {coverage:.0%}, median width {width:.4f}, " + (
        f"oracle {oracle:.4f}"
    )
    print(report)
    assert coverage >= _floor(REPS), report
    assert width <= 1.5 * oracle, report


def test_a_changed_retry_policy_carries_the_pilots_uncertain_failure_rate() -> None:
    """A 400-row pilot whose requests make at most 2 attempts, each failing with probability
    0.3, every attempt billed; production allows 6. The forecast's multiplier
    attempts(f, 6) / attempts(f, 2) rests on the pilot's estimate of f, about as uncertain as
    the unit cost itself here (measured: 88% with the rate's own parameter rows, 84% without)."""
    n, factor, f, s = 400, 100, 0.3, 0.3
    truth = 0.01 * math.exp(s**2 / 2) * (1 - f**6) / (1 - f) * n * factor
    cases = []
    for rep in range(REPS):
        rng = np.random.default_rng([7006, rep])
        retries = (rng.random(n) < f).astype(np.int64)  # the second attempt, when the first failed
        cost = 0.01 * np.exp(s * rng.standard_normal(n)) * (1 + retries)
        log = replace(make_log({"c": cost}), retries=retries)
        model = _no_drift(_fit(log))
        q = _forecast(model, n * factor, rep, reliability={"max_attempts": 6})
        cases.append((truth, q))
    coverage, width = _coverage(cases)
    report = f"retries: coverage {coverage:.0%}, median width {width:.4f}"
    print(report)
    assert coverage >= _floor(REPS), report


def test_tail_shape_interval_covers_when_the_tail_starts_at_the_90pct_quantile() -> None:
    hits, reps = 0, 0
    for xi in (0.1, 0.3, 0.5):
        truth = SplicedTruth(xi=xi)
        for rep in range(REPS):
            x = truth.sample(5000, np.random.default_rng([7004, rep]))
            qf = _fit(make_log({"c": x})).classes["c"].quantities["cost_usd"]
            assert qf.xi_ci is not None
            hits += qf.xi_ci[0] <= xi <= qf.xi_ci[1]
            reps += 1
    assert hits / reps >= _floor(reps), f"xi's 90% interval covered {hits}/{reps}"


def test_no_upward_drift_of_the_centre_for_a_very_heavy_tail() -> None:
    """A ~1,000-row class with a xi = 0.6 tail and a hard cap far above the pilot."""
    truth = SplicedTruth(xi=0.6)
    cap = truth.u * 1e4
    tail = float(tail_means(np.array([0.6]), np.array([truth.sigma]), cap - truth.u)[0])
    body = float(truth.body.expect(lambda v: v, ub=truth.u))
    mean = body + (1 - truth.body_mass) * (truth.u + tail)
    offsets = []
    for rep in range(20):
        rng = np.random.default_rng([7005, rep])
        x = truth.sample(1000, rng)
        while (x > cap).any():  # the hard cap: such requests cannot happen
            x[x > cap] = truth.sample(int((x > cap).sum()), rng)
        model = _no_drift(_fit(make_log({"c": x}), FitOptions(caps={"cost_usd": cap})))
        offsets.append(_forecast(model, 100_000, rep)["p50"] / (mean * 100_000) - 1)
    assert abs(np.mean(offsets)) <= 0.03, f"P50 off the truth by {np.mean(offsets):+.1%}"


def test_gpd_mle_never_returns_an_infeasible_start() -> None:
    rng = np.random.default_rng(7006)
    for _ in range(500):
        xi = rng.uniform(-0.45, 1.0)
        y = np.sort(stats.genpareto.rvs(xi, size=int(rng.integers(30, 400)), random_state=rng))
        xi_hat, _, loglik = fit_gpd_mle(y)
        assert math.isfinite(loglik)
        assert xi_hat != pwm_estimate(y / y.mean())[0]  # the optimiser moved from its start


# ---------------------------------------------------------------------------------------------
# Drift: the forecast follows where the pilot ends, and widens with the horizon
# ---------------------------------------------------------------------------------------------

PILOT_H, PER_HOUR = 7 * 24, 200
DRIFT_REPS = 40


def _level(kind: str, hours: int, rng: np.random.Generator) -> np.ndarray:
    """The log unit-cost level hour by hour (known truth)."""
    if kind in ("walk", "shared"):
        return np.concatenate([[0.0], np.cumsum(0.02 * rng.standard_normal(hours - 1))])
    if kind == "ar1":  # phi 0.99, stationary sd 0.2
        level = np.empty(hours)
        level[0] = 0.2 * rng.standard_normal()
        shocks = 0.2 * math.sqrt(1 - 0.99**2) * rng.standard_normal(hours)
        for h in range(1, hours):  # the truth's own recursion
            level[h] = 0.99 * level[h - 1] + shocks[h]
        return level
    if kind == "shift":  # +0.3 halfway through the pilot, for good
        return np.where(np.arange(hours) >= PILOT_H // 2, 0.3, 0.0)
    return np.zeros(hours)


def _drifting_pilot(
    kind: str, future_h: int, rng: np.random.Generator, classes: int = 1
) -> tuple[PilotLog, float, int]:
    """A pilot of PILOT_H hours and the actual cost and requests of the next ``future_h``."""
    hours = PILOT_H + future_h
    level = _level(kind, hours, rng)
    names, costs, stamps = [], [], []
    for c in range(classes):
        n = rng.poisson(PER_HOUR / classes, hours)
        hour = np.repeat(np.arange(hours), n)
        stamps.append(1.8e9 + 3600.0 * (hour + rng.random(hour.size)))
        costs.append(0.01 * np.exp(level[hour] + LOGNORMAL_S * rng.standard_normal(hour.size)))
        names.append(f"c{c}")
    split = 1.8e9 + 3600.0 * PILOT_H
    pilot = {n: x[t < split] for n, x, t in zip(names, costs, stamps, strict=True)}
    times = {n: t[t < split] for n, t in zip(names, stamps, strict=True)}
    actual = float(sum(x[t >= split].sum() for x, t in zip(costs, stamps, strict=True)))
    requests = int(sum((t >= split).sum() for t in stamps))
    return make_log(pilot, timestamps=times), actual, requests


def _drift_interval(model: FittedModel, future_h: int, requests: int, seed: int) -> dict:
    """The forecast of the ``future_h`` hours after the pilot (no `start`: right after it)."""
    doc = {
        "model": "unused.json",
        "horizon": f"{future_h}h",
        "volume": {"requests": requests},
        "traffic": {"shape": "flat"},
        "trials": 1000,
        "seed": seed,
    }
    return run_forecast(parse_scenario(doc), model, bridge=False).quantiles


@pytest.mark.parametrize("kind", ["walk", "ar1", "shift", "shared"])
def test_drift_coverage_at_2x_and_4x_the_pilot_length(kind: str) -> None:
    for future_h in (2 * PILOT_H, 4 * PILOT_H):
        hits = 0
        for rep in range(DRIFT_REPS):
            rng = np.random.default_rng([7100, rep, future_h])
            log, actual, requests = _drifting_pilot(
                kind, future_h, rng, classes=4 if kind == "shared" else 1
            )
            q = _drift_interval(_fit(log), future_h, requests, rep)
            hits += q["p5"] <= actual <= q["p95"]
        coverage = hits / DRIFT_REPS
        report = f"{kind}, {future_h // PILOT_H}x the pilot: coverage {coverage:.0%}"
        print(report)
        assert coverage >= _floor(DRIFT_REPS, 0.80), report


def test_no_drift_is_not_widened() -> None:
    ratios = []
    for rep in range(DRIFT_REPS):
        rng = np.random.default_rng([7101, rep])
        log, _, requests = _drifting_pilot("none", 2 * PILOT_H, rng)
        model = _fit(log)
        q = _drift_interval(model, 2 * PILOT_H, requests, rep)
        oracle = _drift_interval(_no_drift(model), 2 * PILOT_H, requests, rep)
        ratios.append((q["p95"] - q["p5"]) / (oracle["p95"] - oracle["p5"]))
    assert np.median(ratios) <= 1.3, f"median width {np.median(ratios):.2f}x the oracle's"
