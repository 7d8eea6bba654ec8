"""The forecast (DESIGN sections 4 and 5): a scenario and a fitted model in, a `Forecast` out.

`run_forecast` prepares each production class (`costsim.simulate.prepare`: its per-request cost
distribution, re-priced from tokens when the scenario has a price sheet; its rates and drift),
runs the trials chunk by chunk (`costsim.simulate.chunks`: traffic, per-class totals with the
stratified engine or the per-request reference, multipliers), and summarises: quantiles with
their Monte Carlo error, the naive linear estimate, the per-class view, tail concentration and
the bridge from naive to forecast (`costsim.simulate.bridge`). Pure: no printing, no files (the
model is passed in).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .. import __version__, defaults
from ..errors import ForecastError
from ..model.fit import FittedModel
from ..model.splice import BODY_POINTS
from ..parallel import SERIAL, Parallel, available_cores
from ..progress import Progress
from ..scenario import Scenario
from .bridge import (
    BRIDGE_TRIALS,
    BridgeStep,
    CapSensitivity,
    bridge_steps,
    cap_note,
    cap_sensitive,
    cap_sensitivity,
    cap_variants,
    summarise_bridge,
)
from .chunks import CHUNK_TRIALS, Run, expected_seconds, naive_daily, simulate_runs
from .engine import STACKED, STACKED_ARRAYS, strata_columns
from .prepare import Prepared, prepare, production_mix
from .traffic import ALL_DRIVERS
from .unitcost import PARAM_ROWS

FORECAST_SCHEMA_VERSION = defaults.FORECAST_SCHEMA_VERSION
QUANTILES = defaults.FORECAST_QUANTILES
CONCENTRATION_SAMPLE = 1 << 17
_Z95 = 1.959963984540054


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassForecast:
    name: str
    request_share: float
    cost_share: float
    mean_cost: float
    naive_cost: float
    unit_cost_mean: float
    unit_cost_p5: float
    unit_cost_p50: float
    unit_cost_p95: float
    p95_contribution: float
    repriced: bool
    borrowed_from: str | None


@dataclass(frozen=True)
class Forecast:
    scenario_name: str
    scenario_hash: str
    model_hash: str
    seed: int
    trials: int
    engine: str
    horizon_s: float
    resolution_s: float
    classes: tuple[str, ...]
    totals: np.ndarray  # (trials,)
    class_totals: np.ndarray  # (trials, classes)
    class_requests: np.ndarray  # (trials, classes)
    projected_requests: float
    naive_linear: float
    pilot_mean_cost: float
    quantiles: dict[str, float]
    quantile_se: dict[str, float]
    quantile_ci: dict[str, tuple[float, float]]
    per_class: dict[str, ClassForecast]
    bridge: tuple[BridgeStep, ...]
    concentration: dict[str, float]
    notes: tuple[str, ...]
    percentiles: np.ndarray  # P0, P1, ..., P100 of the totals: the distribution, for baselines
    scenario_document: dict[str, Any] = field(default_factory=dict)  # to reproduce a baseline
    cap_sensitivity: CapSensitivity | None = None  # where the mean depends on a tail's cap
    daily: np.ndarray | None = None  # (trials, days): cost per day, when asked for (`daily=True`)
    daily_naive: np.ndarray | None = None  # (days,): the naive linear estimate per day
    deployment: str | None = None  # the deployment option whose cost the totals are, if any

    @property
    def unresolved(self) -> tuple[str, ...]:
        """Quantiles the trials cannot bound (infinite Monte Carlo error): more trials needed."""
        return tuple(k for k, se in self.quantile_se.items() if not math.isfinite(se))


def quantile_with_error(
    x: np.ndarray, q: float, *, ordered: bool = False
) -> tuple[float, float, float, float]:
    """Sample quantile with a distribution-free 95% interval from order statistics
    (``ordered``: ``x`` is sorted already).

    The number of draws below the true quantile is Binomial(T, q), so the order statistics at
    ranks T*q -+ 1.96 * sqrt(T*q*(1-q)) bound it with about 95% confidence; the standard error
    is the interval's half-width / 1.96. When a rank falls outside the sample (P99 of 200
    trials), the sample cannot bound the quantile on that side: the interval is open there
    (+-inf) and the error infinite — the quantile is *unresolved*, not given a too-narrow error.
    """
    xs = x if ordered else np.sort(x)
    n = xs.size
    est = float(np.quantile(xs, q))
    half = _Z95 * np.sqrt(n * q * (1 - q))
    i_lo, i_hi = int(np.floor(n * q - half)), int(np.ceil(n * q + half))
    lo = float(xs[i_lo]) if i_lo >= 0 else -math.inf
    hi = float(xs[i_hi]) if i_hi <= n - 1 else math.inf
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return est, math.inf, lo, hi
    return est, float((hi - lo) / (2 * _Z95)), lo, hi


def scenario_hash(scenario: Scenario) -> str:
    text = json.dumps(scenario.raw, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def model_hash(model_text: str) -> str:
    return hashlib.sha256(model_text.encode()).hexdigest()[:16]


def quantiles_of(
    totals: np.ndarray, ordered: np.ndarray | None = None
) -> tuple[dict[str, float], dict[str, float], dict[str, tuple[float, float]]]:
    """The report's quantiles and mean, their errors and 95% intervals (``ordered``: the
    totals sorted, where the caller has them; sorted once here otherwise)."""
    qs: dict[str, float] = {}
    se: dict[str, float] = {}
    ci: dict[str, tuple[float, float]] = {}
    xs = np.sort(totals) if ordered is None else ordered
    for key, q in QUANTILES.items():
        est, err, lo, hi = quantile_with_error(xs, q, ordered=True)
        qs[key], se[key], ci[key] = est, err, (lo, hi)
    mean = float(totals.mean())
    sd_mean = float(totals.std(ddof=1) / np.sqrt(totals.size)) if totals.size > 1 else 0.0
    qs["mean"], se["mean"], ci["mean"] = (
        mean,
        sd_mean,
        (mean - _Z95 * sd_mean, mean + _Z95 * sd_mean),
    )
    return qs, se, ci


def _unresolved_note(se: dict[str, float], trials: int) -> tuple[str, ...]:
    keys = [k.upper() for k, v in se.items() if not math.isfinite(v)]
    if not keys:
        return ()
    return (
        f"{', '.join(keys)} unresolved: {trials:,} trials cannot bound "
        f"{'it' if len(keys) == 1 else 'them'} (their order-statistic interval runs past the "
        "sample); run more trials",
    )


def _concentration(prep: Prepared, rng: np.random.Generator) -> dict[str, float]:
    """Share of cost from the costliest 1% / 5% of requests, over the production mix."""
    mix = prep.plan.mix
    counts = np.floor(mix * CONCENTRATION_SAMPLE).astype(int)
    values = []
    for j, pc in enumerate(prep.classes):
        if counts[j] == 0:
            continue
        q = (np.arange(counts[j]) + rng.random(counts[j])) / counts[j]
        values.append(pc.unit.dist.ppf(q) * pc.unit.scale)
    x = np.sort(np.concatenate(values))
    total = x.sum()
    out = {}
    for key, frac in (("top_1pct", 0.01), ("top_5pct", 0.05)):
        k = max(1, round(frac * x.size))
        out[key] = float(x[-k:].sum() / total) if total > 0 else 0.0
    return out


GIB = float(1 << 30)
RUN_MEMORY = 8 * GIB  # strata, per-trial results and chunk temporaries of one forecast
_CHUNK_ARRAYS = 8  # (chunk trials x classes) float arrays alive at once in `simulate`


def lanes_of(parallel: Parallel | None) -> int:
    """The chunks of trials held at once on this machine: one per local worker (None: this
    machine's cores); one on a cluster, whose workers hold theirs."""
    if parallel is None:
        return available_cores()
    return 1 if parallel.scheduler is not None else parallel.workers


def memory_needed(
    scenario: Scenario, model: FittedModel, parallel: Parallel | None = None, engine: str = "strata"
) -> dict[str, float]:
    """Bytes a forecast will hold, estimated before anything is allocated: every class's unit
    cost (four numbers a parameter row, and parameter rows x its body's points where the body
    is kept: `prepare`) and strata (parameter rows x strata x 4 moments), the per-trial class
    totals and request counts the result keeps, and on each local worker (``parallel``'s;
    None: this machine's cores) the temporaries of one chunk of trials and the engine's
    stacked arrays. Where chunks may run on worker processes, each holds its own copy of the
    unit costs and strata, and this process their pickled form while it sends them."""
    n_classes = len(model.classes) + len(scenario.mix.new_classes)
    rows = PARAM_ROWS
    points = max(
        [BODY_POINTS]
        + [
            q.dist.body_quantiles.size
            for c in model.classes.values()
            for q in c.quantities.values()
        ]
    )
    lanes = lanes_of(parallel)
    # the bodies kept: every class's for the reference engine, else (about) those whose tail is
    # heavy enough for its cap to set its mean (`cap_moves_mean`)
    heavy = {
        name
        for name, c in model.classes.items()
        if any(q.dist.has_tail and q.dist.xi >= HEAVY_XI for q in c.quantities.values())
    }
    bodies = (
        n_classes
        if engine == "reference"
        else len(heavy) + sum(spec.like in heavy for spec in scenario.mix.new_classes.values())
    )
    units = 8.0 * rows * (4 * n_classes + points * bodies)
    # a class's strata at its expected requests per trial (half its reference intensity: a
    # little more than it gets), rounded to a power of 2 (the same columns; fewer to count)
    _, mix = production_mix(scenario, model)
    expected = np.exp2(np.floor(np.log2(np.maximum(scenario.volume.requests * mix, 1e-300))))
    intensities, count = np.unique(expected, return_counts=True)
    columns = sum(n * strata_columns(x) for x, n in zip(intensities, count, strict=True))
    strata = 4 * 8.0 * rows * float(columns)
    return {
        "units": units,
        "strata": strata,
        "results": 2 * 8.0 * scenario.trials * n_classes,
        "chunk": _CHUNK_ARRAYS * 8.0 * min(CHUNK_TRIALS, scenario.trials) * n_classes * lanes,
        "engine": STACKED_ARRAYS * 8.0 * STACKED * lanes,
        "workers": (units + strata) * (lanes + 1) if lanes > 1 else 0.0,
    }


HEAVY_XI = 0.5  # `memory_needed`: a tail from which on a class's body is counted as kept


def guard_memory(
    scenario: Scenario, model: FittedModel, parallel: Parallel | None = None, engine: str = "strata"
) -> None:
    """Refuse, before allocating, a forecast that would hold more than `RUN_MEMORY`."""
    parts = memory_needed(scenario, model, parallel, engine)
    total = sum(parts.values())
    if total > RUN_MEMORY:
        n_classes = len(model.classes) + len(scenario.mix.new_classes)
        copies = (
            f", and {parts['workers'] / GIB:.1f} GiB of their copies for the worker processes"
            if parts["workers"]
            else ""
        )
        lanes = lanes_of(parallel)
        working = parts["chunk"] + parts["engine"]
        each = f" ({working / lanes / GIB:.2f} GiB each)" if lanes > 1 else ""
        cores = available_cores()
        fewer = f"use fewer --workers (this machine has {cores} cores), " if lanes > 1 else ""
        raise ForecastError(
            f"this forecast would hold about {total / GIB:.1f} GiB ({n_classes:,} classes: "
            f"{(parts['units'] + parts['strata']) / GIB:.1f} GiB of unit costs and strata"
            f"{copies}; {scenario.trials:,} trials: "
            f"{parts['results'] / GIB:.1f} GiB of per-class totals; {lanes:,} "
            f"worker{'s' if lanes > 1 else ''}: {working / GIB:.1f} GiB of working arrays{each}), "
            f"more than the {RUN_MEMORY / GIB:.0f} GiB costsim allows itself: lower --trials (or "
            f"`trials:`), {fewer}or merge small classes into one before fitting"
        )


def run_forecast(
    scenario: Scenario,
    model: FittedModel,
    *,
    model_text: str = "",
    engine: str = "strata",
    bridge: bool = True,
    daily: bool = False,
    progress: Progress | None = None,
    parallel: Parallel = SERIAL,
) -> Forecast:
    """The whole forecast of a scenario (``daily``: also the cost of each day, for the fan
    chart of the HTML report). ``parallel``: where its chunks of trials run; the same numbers
    wherever they do."""
    guard_memory(scenario, model, parallel, engine)
    # a long forecast's worker processes: their fork server imports this module meanwhile
    parallel.start_processes_for(__name__, expected_seconds(scenario, model, engine))
    prep = prepare(scenario, model, progress, parallel, bodies=engine == "reference")
    n_bridge = min(BRIDGE_TRIALS, scenario.trials)
    sensitive = cap_sensitive(prep)
    variants = cap_variants(prep, sensitive) if bridge else ()
    steps = [
        (name, d)
        for name, d in (bridge_steps(prep) if bridge else [])
        if d is not None and d is not ALL_DRIVERS
    ]
    runs = [
        Run(ALL_DRIVERS, variants=variants, variant_trials=n_bridge, daily=daily),
        *(Run(d, n_bridge) for _, d in steps),
    ]
    main, *step_runs = simulate_runs(prep, runs, engine, progress, parallel)
    class_totals, class_requests = main.totals, main.requests
    _refuse_overflow(class_totals, tuple(pc.name for pc in prep.classes))
    totals = class_totals.sum(axis=1)
    ordered = np.sort(totals)  # once, for every quantile (a million trials: 60 ms a sort)
    qs, se, ci = quantiles_of(totals, ordered)
    naive = prep.pilot_mean_cost * prep.plan.projected_requests
    lo95, hi95 = ci["p95"]
    window = (totals >= lo95) & (totals <= hi95)
    mean_total = float(totals.mean())
    req_total = class_requests.sum(axis=1)
    per_class = {}
    for j, pc in enumerate(prep.classes):
        with np.errstate(invalid="ignore", divide="ignore"):
            unit = class_totals[:, j] / class_requests[:, j]
        unit = unit[np.isfinite(unit)]
        u = np.quantile(unit, [0.05, 0.5, 0.95]) if unit.size else np.zeros(3)
        per_class[pc.name] = ClassForecast(
            name=pc.name,
            request_share=float(np.mean(class_requests[:, j] / np.maximum(req_total, 1.0))),
            cost_share=float(class_totals[:, j].mean() / mean_total) if mean_total > 0 else 0.0,
            mean_cost=float(class_totals[:, j].mean()),
            naive_cost=float(pc.pilot_mean * prep.plan.base_no_events[:, j].sum()),
            unit_cost_mean=float(unit.mean()) if unit.size else 0.0,
            unit_cost_p5=float(u[0]),
            unit_cost_p50=float(u[1]),
            unit_cost_p95=float(u[2]),
            p95_contribution=float(class_totals[window, j].mean()) if window.any() else 0.0,
            repriced=pc.repriced,
            borrowed_from=pc.borrowed_from,
        )
    bridge_table = (
        summarise_bridge(
            prep, totals, {name: r.totals for (name, _), r in zip(steps, step_runs, strict=True)}
        )
        if bridge
        else ()
    )
    sensitivity = cap_sensitivity(prep, sensitive if bridge else (), totals, main.variant_totals)
    capped = cap_note(sensitivity, tuple(prep.classes[j].name for j in sensitive))
    conc_rng = np.random.default_rng(np.random.SeedSequence(scenario.seed, spawn_key=(2**31 + 1,)))
    fc = Forecast(
        scenario_name=scenario.path.name if scenario.path is not None else "<scenario>",
        scenario_hash=scenario_hash(scenario),
        model_hash=model_hash(model_text) if model_text else "",
        seed=scenario.seed,
        trials=int(totals.size),
        engine=engine,
        horizon_s=scenario.horizon_s,
        resolution_s=scenario.resolution_s,
        classes=tuple(pc.name for pc in prep.classes),
        totals=totals,
        class_totals=class_totals,
        class_requests=class_requests,
        projected_requests=prep.plan.projected_requests,
        naive_linear=naive,
        pilot_mean_cost=prep.pilot_mean_cost,
        quantiles=qs,
        quantile_se=se,
        quantile_ci=ci,
        per_class=per_class,
        bridge=bridge_table,
        concentration=_concentration(prep, conc_rng),
        notes=prep.notes + _unresolved_note(se, int(totals.size)) + capped,
        percentiles=np.quantile(ordered, np.linspace(0.0, 1.0, 101)),
        scenario_document=dict(scenario.raw),
        cap_sensitivity=sensitivity,
        daily=main.daily,
        daily_naive=naive_daily(prep) if daily else None,
    )
    return ensure_trustworthy(fc)


ZERO_CHECK_REQUESTS = 1000.0  # above this many projected requests, P50 = $0 cannot be chance


def _refuse_overflow(class_totals: np.ndarray, classes: tuple[str, ...]) -> None:
    bad = ~np.isfinite(class_totals)
    if bad.any():
        trials = int(np.count_nonzero(bad.any(axis=1)))
        cls = classes[int(np.argmax(bad.any(axis=0)))]
        raise ForecastError(
            f"the forecast is not finite: {trials:,} of {class_totals.shape[0]:,} trials "
            f"overflow (first in class '{cls}'); the model's tail or the scenario's volume and "
            "prices are too large for the arithmetic: cap the tail (`costsim fit --cap "
            "cost_usd=...`) or check them"
        )


def ensure_trustworthy(fc: Forecast) -> Forecast:
    """``fc`` itself, or a `ForecastError` when a figure is not finite, or the forecast is $0
    although priced requests are projected: such a forecast is never a result (and so can
    never pass a budget check)."""
    _refuse_overflow(fc.class_totals, fc.classes)
    figures: dict[str, float] = {
        "naive linear estimate": fc.naive_linear,
        "pilot mean cost": fc.pilot_mean_cost,
        **{k.upper() if k != "mean" else "mean": v for k, v in fc.quantiles.items()},
        **{
            f"Monte Carlo error of {k}": v
            for k, v in fc.quantile_se.items()
            if k not in fc.unresolved
        },
        **{f"concentration {k}": v for k, v in fc.concentration.items()},
    }
    for name, row in fc.per_class.items():
        for key, value in asdict(row).items():
            if isinstance(value, float):
                figures[f"class '{name}' {key}"] = value
    for step in fc.bridge:
        figures[f"bridge step '{step.driver}'"] = step.p95
    for what, value in figures.items():
        if not np.isfinite(value):
            raise ForecastError(f"the forecast is not finite: {what} is {value}")
    priced = fc.naive_linear > 0
    if priced and (
        fc.quantiles["mean"] <= 0
        or (fc.quantiles["p50"] <= 0 and fc.projected_requests >= ZERO_CHECK_REQUESTS)
    ):
        doc = fc.scenario_document
        repriced = bool(doc.get("pricing") or doc.get("deployments"))
        raise ForecastError(
            f"{fc.scenario_name}: the forecast is $0 (P50 ${fc.quantiles['p50']:g}, mean "
            f"${fc.quantiles['mean']:g}) for {fc.projected_requests:,.0f} projected requests, "
            f"which cost ${fc.pilot_mean_cost:.4g} each in the pilot: "
            + (
                "check the scenario's prices (pricing: or its deployments; a price of 0 makes "
                "every request free), its volume and its uncertainty"
                if repriced
                else "check the scenario's volume and its uncertainty"
            )
        )
    return fc


def forecast_version() -> dict[str, Any]:
    return {"schema_version": FORECAST_SCHEMA_VERSION, "costsim_version": __version__}
