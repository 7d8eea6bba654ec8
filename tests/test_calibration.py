"""Calibration: fit the first part of a drifting log, forecast the rest, check coverage.

The unit cost of the synthetic log drifts as a stationary AR(1) between hours (known truth):
independent resampling of requests would be overconfident, carrying the fitted drift should
not be. The forecast is given the actual request count of the held-out part.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
from synth import make_log

from costsim.errors import CostsimWarning
from costsim.model.fit import fit_model
from costsim.scenario import parse_scenario
from costsim.simulate.forecast import run_forecast

PILOT_H, HELD_OUT_H, PER_HOUR = 7 * 24, 48, 300
PHI, TAU, NOISE_SD = 0.95, 0.15, 0.8  # hourly AR(1) of the log unit cost; per-request noise
SEEDS = range(20)


def _drifting_log(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence([2027, seed]))
    hours = PILOT_H + HELD_OUT_H
    level = np.empty(hours)
    level[0] = TAU * rng.standard_normal()
    shocks = TAU * np.sqrt(1 - PHI**2) * rng.standard_normal(hours)
    for h in range(1, hours):  # the truth's own recursion, over 216 hours
        level[h] = PHI * level[h - 1] + shocks[h]
    n = rng.poisson(PER_HOUR, hours)
    hour = np.repeat(np.arange(hours), n)
    ts = 1.8e9 + 3600.0 * (hour + rng.random(hour.size))
    cost = 0.01 * np.exp(level[hour] + NOISE_SD * rng.standard_normal(hour.size))
    return ts, cost


def _interval(seed: int, with_drift: bool) -> tuple[float, float, float]:
    ts, cost = _drifting_log(seed)
    split = 1.8e9 + 3600.0 * PILOT_H
    pilot = ts < split
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CostsimWarning)
        model = fit_model(make_log({"c": cost[pilot]}, timestamps={"c": ts[pilot]}))
    if not with_drift:
        c = model.classes["c"]
        model = replace(model, classes={"c": replace(c, drift=replace(c.drift, kind="none"))})
    scenario = parse_scenario(
        {
            "model": "unused.model.json",
            "horizon": f"{HELD_OUT_H}h",
            "resolution": "1h",
            "volume": {"requests": int((~pilot).sum())},
            "traffic": {"shape": "flat"},
            "trials": 2000,
            "seed": seed,
        }
    )
    fc = run_forecast(scenario, model, bridge=False)
    return fc.quantiles["p5"], fc.quantiles["p95"], float(cost[~pilot].sum())


def _var_mean_level(hours: int) -> float:
    lags = np.arange(hours)
    weights = (hours - lags) * np.where(lags == 0, 1, 2)
    return float(TAU**2 * np.sum(weights * PHI**lags) / hours**2)


def test_forecast_interval_covers_held_out_cost_of_a_drifting_log() -> None:
    hits, widths, hits_iid = 0, [], 0
    for seed in SEEDS:
        lo, hi, actual = _interval(seed, with_drift=True)
        hits += lo <= actual <= hi
        widths.append((hi - lo) / actual)
        lo0, hi0, _ = _interval(seed, with_drift=False)
        hits_iid += lo0 <= actual <= hi0
    coverage, coverage_iid = hits / len(SEEDS), hits_iid / len(SEEDS)
    # The honest 90% width from the truth: the held-out mean level averages the AR(1) over 48
    # hours, and the pilot's mean level (the forecast's centre) averages it over 168.
    ideal_width = 2 * 1.645 * np.sqrt(_var_mean_level(HELD_OUT_H) + _var_mean_level(PILOT_H))
    report = (
        f"coverage of P5-P95: {coverage:.0%} with drift (mean width {np.mean(widths):.2f} of the "
        f"actual; ideal {ideal_width:.2f}), {coverage_iid:.0%} resampling requests independently"
    )
    print(report)
    assert coverage >= 0.8, report
    assert np.mean(widths) <= 1.6 * ideal_width, report  # not needlessly wide
    assert coverage_iid < coverage, report  # the drift is what makes it honest
