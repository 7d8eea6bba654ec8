"""The forecast (DESIGN sections 4 and 5): a scenario and a fitted model in, a `Forecast` out.

`run_forecast` prepares each production class (its per-request cost distribution, re-priced from
tokens when the scenario has a price sheet; its rates and drift), draws the traffic of each chunk
of trials, turns it into per-class totals with the stratified engine (or the per-request
reference), and summarises: quantiles with their Monte Carlo error, the naive linear estimate,
the per-class view, tail concentration and the bridge from naive to forecast. Pure: no printing,
no files (the model is passed in).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from .. import __version__
from ..errors import ForecastError, ScenarioError
from ..model.drift import horizon_shift
from ..model.fit import ClassFit, FittedModel
from ..model.splice import BODY_POINTS
from ..parallel import SERIAL, Parallel, available_cores
from ..progress import Progress
from ..scenario import Scenario, validate_against_model
from .engine import (
    PARAM_ROWS,
    STACKED,
    STACKED_ARRAYS,
    Strata,
    UnitCost,
    aggregate_classes,
    build_strata,
    reference_sum,
    strata_count,
)
from .inversion import GammaQuantiles
from .reliability import (
    BLOCK_CELLS,
    ClassReliability,
    class_reliability,
    cold_changed,
    multipliers,
    retries_changed,
    with_norms,
)
from .repricing import effective_price, quantity_rows, reprice
from .traffic import (
    ALL_DRIVERS,
    Drivers,
    TrafficPlan,
    TrialTraffic,
    build_plan,
    draw_traffic,
    start_epoch,
    traffic_key,
    window_weights,
)

FORECAST_SCHEMA_VERSION = 1
CHUNK_TRIALS = 2500  # part of reproducibility: results depend on it, so it is fixed
BRIDGE_TRIALS = 4000  # trials of the bridge's intermediate steps
QUANTILES = {"p5": 0.05, "p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}
CONCENTRATION_SAMPLE = 1 << 17
ENGINES = ("strata", "reference")
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
class BridgeStep:
    driver: str
    p50: float
    p95: float
    delta_p50: float
    delta_p95: float


@dataclass(frozen=True)
class CapSensitivity:
    """The forecast's mean and P95 had the caps of the classes whose mean depends on them been
    10x and 100x higher (on the bridge's trials, with the forecast's random numbers)."""

    classes: tuple[str, ...]
    factors: tuple[float, ...]  # 10, 100
    mean: tuple[float, ...]
    p95: tuple[float, ...]


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


# ---------------------------------------------------------------------------------------------
# Preparation: production classes and their unit costs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductionClass:
    name: str
    source: ClassFit
    unit: UnitCost
    pilot_mean: float  # empirical mean cost per request (re-priced, scaled)
    repriced: bool
    borrowed_from: str | None


@dataclass(frozen=True)
class Prepared:
    scenario: Scenario
    model: FittedModel
    classes: tuple[ProductionClass, ...]
    plan: TrafficPlan
    pilot_mean_cost: float
    notes: tuple[str, ...]
    strata: tuple[Strata, ...]
    reliability: tuple[ClassReliability, ...]  # per class: retry and cold-start rows
    reference_intensity: tuple[float, ...]  # per class: where its exact draws begin
    drift_shifts: tuple[tuple[float, float], ...]  # per class: (mean, var) of its log level
    drift_common: np.ndarray  # per class: share of its drift common to all classes
    mix_gammas: tuple[GammaQuantiles | None, ...]  # per class: Gamma(share * concentration)


def prepare(
    scenario: Scenario,
    model: FittedModel,
    progress: Progress | None = None,
    parallel: Parallel = SERIAL,
) -> Prepared:
    """Production classes, their unit costs and the deterministic traffic plan (the classes
    prepared on ``parallel``'s local threads, each from its own streams)."""
    validate_against_model(scenario, tuple(model.classes))
    notes: list[str] = []
    names = list(model.classes)
    sources: dict[str, tuple[ClassFit, float, str | None]] = {
        n: (model.classes[n], 1.0, None) for n in names
    }
    for new, spec in scenario.mix.new_classes.items():
        sources[new] = (model.classes[spec.like], spec.cost_scale, spec.like)
        names.append(new)
    pilot_share = np.array([model.classes[n].share if n in model.classes else 0.0 for n in names])
    if scenario.mix.shares is None:
        mix = pilot_share
    elif scenario.mix.relative:  # weights on the pilot shares (a new class: on its `like`'s)
        base = np.array([model.classes[sources[n][2] or n].share for n in names])
        weights = np.array([scenario.mix.shares.get(n, 1.0) for n in names])
        mix = base * weights / np.sum(base * weights)
    else:
        mix = np.array([scenario.mix.shares.get(n, 0.0) for n in names])
        mix = mix / mix.sum()
    # catalog prices in force when the horizon starts (else when the pilot ended): a forecast
    # does not change with the day it is run
    price_date = start_epoch(scenario)
    if price_date is None:
        price_date = model.traffic.end
    plan = build_plan(
        scenario,
        tuple(names),
        mix,
        {n: sources[n][0].hourly_profile for n in names},
        model.traffic.hourly_profile,
        model.traffic.weekday_profile,
    )
    jobs = [
        _ClassJob(j, name, *sources[name], price_date) for j, name in enumerate(names)
    ]  # fmt: skip
    local = Parallel(parallel.workers)  # a class's preparation is quick: this machine's threads
    prepared = []
    for done, one in enumerate(local.map(_prepare_class, jobs, (scenario, model, plan)), 1):
        prepared.append(one)
        if progress is not None:
            progress("preparing classes", done, len(jobs))
    classes = [one[0] for one in prepared]
    if all(c.cost_total is not None for c in model.classes.values()):
        pilot_mean = (
            sum(c.cost_total or 0.0 for c in model.classes.values()) / model.traffic.requests
        )
    else:
        pilot_mean = float(np.dot(pilot_share, [c.pilot_mean for c in classes]))
        notes.append("the pilot log had no cost column: the naive estimate uses re-priced tokens")
    strata = tuple(one[1] for one in prepared)
    policies = tuple(one[2] for one in prepared)
    shifts = tuple(one[3] for one in prepared)
    reference = tuple(reference_intensity(plan, j) for j in range(len(classes)))
    common = np.array([pc.source.drift_common for pc in classes])
    gammas = tuple(one[4] for one in prepared)
    return Prepared(
        scenario, model, tuple(classes), plan, pilot_mean, tuple(notes), strata, policies,
        reference, shifts, common, gammas,
    )  # fmt: skip


@dataclass(frozen=True)
class _ClassJob:
    j: int
    name: str
    source: ClassFit
    scale: float
    like: str | None
    price_date: float | None


def _prepare_class(
    shared: tuple[Scenario, FittedModel, TrafficPlan], job: _ClassJob
) -> tuple[ProductionClass, Strata, ClassReliability, tuple[float, float], GammaQuantiles | None]:
    """One production class: its unit cost (re-priced from tokens where the scenario prices
    them), strata, reliability rows, drift over the horizon and the Gamma quantiles of its
    uncertain mix share, from the class's own streams."""
    scenario, model, plan = shared
    cf, scale = job.source, job.scale
    # the j-th children of the preparation's and the reliability's streams
    class_ss = np.random.SeedSequence(scenario.seed, spawn_key=(2**31, job.j))
    rel_ss = np.random.SeedSequence(scenario.seed, spawn_key=(2**31 + 5, job.j))
    price = effective_price(scenario, job.name, job.price_date)
    if price is not None:
        unit, mean = reprice(cf, price, np.random.default_rng(class_ss))
        unit = replace(unit, scale=scale)
        mean *= scale
    else:
        if "cost_usd" not in cf.quantities:
            raise ScenarioError(
                f"pricing: the model has no cost column for class '{cf.name}'; give a price "
                "sheet (pricing.default or pricing.classes) to price its tokens"
            )
        unit = replace(quantity_rows(cf, "cost_usd", np.random.default_rng(class_ss)), scale=scale)
        mean = cf.quantities["cost_usd"].summary["mean"] * scale
    pc = ProductionClass(job.name, cf, unit, mean, price is not None, job.like)
    rel = scenario.reliability
    policy = with_norms(class_reliability(cf, rel, unit.n_params, rel_ss), plan, rel, job.j)
    shift = drift_shift(cf, plan, job.j, scenario, model)
    alpha = plan.mix[job.j] * (scenario.mix.concentration or 0.0)
    gammas = GammaQuantiles.of(alpha) if alpha > 1e-12 else None
    return pc, build_strata(unit, reference_intensity(plan, job.j)), policy, shift, gammas


def reference_intensity(plan: TrafficPlan, j: int) -> float:
    """Where a class's exact draws begin: twice the expected requests of a trial, fixed per
    class so that every run of the forecast shares its draws."""
    return 2.0 * float(plan.base[:, j].sum())


# ---------------------------------------------------------------------------------------------
# Drift: the unit-cost level over the horizon
# ---------------------------------------------------------------------------------------------


def drift_shift(
    cf: ClassFit, plan: TrafficPlan, j: int, scenario: Scenario, model: FittedModel
) -> tuple[float, float]:
    """Log-normal law (mean, var) of a class's unit-cost level over the horizon relative to the
    pilot's (`costsim.model.drift.horizon_shift`): from where the pilot ends, the horizon
    starting at the scenario's `start` (right after the pilot when it gives none), weighted by
    its traffic."""
    d = cf.drift
    base = plan.base_no_events[:, j]
    if base.sum() <= 0:
        return 0.0, 0.0
    weights = window_weights(base / base.sum(), scenario.resolution_s, d.window_s)
    start, end = start_epoch(scenario), model.traffic.end
    gap = 0 if start is None or end is None else max(0, int((start - end) // d.window_s))
    return horizon_shift(d, weights, gap)


def _multipliers(
    prep: Prepared, traffic: TrialTraffic, drivers: Drivers, z_drift: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """Per-trial, per-class cost multipliers: retries x cold starts (`costsim.simulate.reliability`,
    on the trial's parameter rows) x drift."""
    mult = multipliers(
        prep.plan, prep.scenario.reliability, prep.reliability, traffic, drivers, rows
    )
    if drivers.uncertainty:
        for j in range(len(prep.classes)):
            shift, v = prep.drift_shifts[j]
            mult[:, j] *= np.exp(shift + np.sqrt(v) * z_drift[:, j])
    return mult


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


def _common_stream(seed: int, chunk: int) -> np.random.Generator:
    """The chunk's stream of the drift factor shared by all classes (its own spawn key, so that
    the per-class streams are the same whether or not classes share drift)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(chunk, 2**31 + 3)))


def _chunk_streams(seed: int, chunk: int, n_classes: int) -> list[np.random.Generator]:
    """Independent streams of one chunk: volume, spikes, then one per class (its mix draw,
    drift, tail-parameter draw and requests), so adding a class leaves the others' alone."""
    ss = np.random.SeedSequence(seed, spawn_key=(chunk,))
    return [np.random.default_rng(s) for s in ss.spawn(2 + n_classes)]


def _copy(rng: np.random.Generator) -> np.random.Generator:
    """A generator at the same point of the same stream (three times quicker than deepcopy)."""
    bit_generator = type(rng.bit_generator)(0)
    bit_generator.state = rng.bit_generator.state
    return np.random.Generator(bit_generator)


@dataclass
class _ChunkDraws:
    """A chunk's streams after the draws every run of it shares: per class, the mix uniform
    (its first draw), the drift normal and the parameter-row uniform. ``volume``, ``spikes``
    and ``classes`` are left where those draws end: a run uses copies."""

    volume: np.random.Generator
    spikes: np.random.Generator
    classes: list[np.random.Generator]
    u_mix: np.ndarray  # (trials, classes)
    z_drift: np.ndarray  # (trials, classes)
    rows_u: np.ndarray  # (trials, classes)
    gammas: np.ndarray | None = None  # the mix's Gamma draws, once a run needs them

    @classmethod
    def draw(cls, prep: Prepared, chunk: int, n: int) -> _ChunkDraws:
        rngs = _chunk_streams(prep.scenario.seed, chunk, len(prep.classes))
        shape = (n, len(prep.classes))
        u_mix, z_drift, rows_u = np.empty(shape), np.empty(shape), np.empty(shape)
        for j, rng in enumerate(rngs[2:]):  # per class, always drawn: common random numbers
            u_mix[:, j] = rng.random(n)
            z_drift[:, j] = rng.standard_normal(n)
            rows_u[:, j] = rng.random(n)
        return cls(rngs[0], rngs[1], rngs[2:], u_mix, z_drift, rows_u)

    def mix_gammas(self, prep: Prepared) -> np.ndarray:
        """Gamma(alpha_j) of each class by inversion of its mix uniform (whatever alpha)."""
        if self.gammas is None:
            self.gammas = np.zeros(self.u_mix.shape)
            for j, quantiles in enumerate(prep.mix_gammas):
                if quantiles is not None:
                    self.gammas[:, j] = quantiles(self.u_mix[:, j])
        return self.gammas

    def traffic(self, prep: Prepared, drivers: Drivers) -> TrialTraffic:
        """The chunk's traffic with ``drivers`` (from copies of the streams)."""
        uncertain_mix = drivers.uncertainty and prep.scenario.mix.concentration is not None
        gammas = self.mix_gammas(prep) if uncertain_mix else np.zeros(self.u_mix.shape)
        return draw_traffic(
            prep.plan, prep.scenario, self.u_mix.shape[0], drivers,
            _copy(self.volume), _copy(self.spikes), gammas,
        )  # fmt: skip


def chunk_traffic(
    prep: Prepared, chunk: int, n: int, drivers: Drivers = ALL_DRIVERS
) -> TrialTraffic:
    """The traffic of one chunk of ``n`` trials. Every run of the same scenario and seed draws
    the same traffic for the same chunk, whatever else it computes: common random numbers."""
    return _ChunkDraws.draw(prep, chunk, n).traffic(prep, drivers)


DAY_S = 86400.0


@dataclass(frozen=True)
class Run:
    """One simulation: the first ``trials`` trials (default: the scenario's) with ``drivers``
    switched on. ``variants`` are other strata (one per class) priced on the same random
    numbers over the first ``variant_trials`` trials: only the classes whose strata differ are
    drawn again. ``daily``: also spread each trial's cost over its days."""

    drivers: Drivers = ALL_DRIVERS
    trials: int | None = None
    variants: tuple[tuple[Strata, ...], ...] = ()
    variant_trials: int = 0
    daily: bool = False


@dataclass(frozen=True)
class RunResult:
    totals: np.ndarray  # (trials, classes)
    requests: np.ndarray  # (trials, classes)
    variant_totals: tuple[np.ndarray, ...]  # per variant: (variant_trials, classes)
    daily: np.ndarray | None  # (trials, days) when the run asked for it


@dataclass(frozen=True)
class _Job:
    chunk: int
    start: int
    n: int
    runs: tuple[int, ...]  # the runs this chunk of trials belongs to


@dataclass(frozen=True)
class _ChunkResult:
    totals: np.ndarray
    requests: np.ndarray
    variant_totals: tuple[np.ndarray, ...]
    daily: np.ndarray | None


def _jobs(sizes: Sequence[int]) -> list[_Job]:
    """One job per chunk of trials, shared by every run that has that chunk with the same
    number of trials (the bridge's steps run on the forecast's first chunks)."""
    runs: dict[tuple[int, int, int], list[int]] = {}
    for i, n_total in enumerate(sizes):
        for chunk, start in enumerate(range(0, n_total, CHUNK_TRIALS)):
            runs.setdefault((chunk, start, min(CHUNK_TRIALS, n_total - start)), []).append(i)
    return [_Job(*key, tuple(r)) for key, r in sorted(runs.items())]


def simulate_runs(
    prep: Prepared,
    runs: Sequence[Run],
    engine: str = "strata",
    progress: Progress | None = None,
    parallel: Parallel = SERIAL,
) -> list[RunResult]:
    """Several simulations of the same prepared scenario, chunk by chunk (bounded memory).

    Every chunk of trials is one job, for every run that has it, its result depending on the
    job alone (the chunk's own streams): jobs run on every worker and are written back in a
    fixed order, so the numbers are the same for any number of workers, or on a cluster.
    """
    if engine not in ENGINES:
        raise ScenarioError(f"--engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    sizes = [r.trials or prep.scenario.trials for r in runs]
    jobs = _jobs(sizes)
    n_classes = len(prep.classes)
    n_days = _day_index(prep.plan)[1]
    out = [
        RunResult(
            np.empty((n, n_classes)),
            np.empty((n, n_classes)),
            tuple(np.empty((min(r.variant_trials, n), n_classes)) for _ in r.variants),
            np.empty((n, n_days)) if r.daily else None,
        )
        for r, n in zip(runs, sizes, strict=True)
    ]
    done, all_trials = 0, sum(sizes)
    for job, results in zip(
        jobs,
        parallel.map(
            _run_chunk, jobs, (prep, tuple(runs), engine), processes=True, meanwhile="threads"
        ),
        strict=True,
    ):
        rows = slice(job.start, job.start + job.n)
        for i, res in zip(job.runs, results, strict=True):
            dest = out[i]
            dest.totals[rows] = res.totals
            dest.requests[rows] = res.requests
            for v, vt in zip(dest.variant_totals, res.variant_totals, strict=True):
                vt_rows = slice(job.start, min(job.start + job.n, v.shape[0]))
                v[vt_rows] = vt
            if dest.daily is not None and res.daily is not None:
                dest.daily[rows] = res.daily
        done += job.n * len(job.runs)
        if progress is not None:
            progress("simulating trials", done, all_trials)
    return out


def simulate(
    prep: Prepared,
    drivers: Drivers = ALL_DRIVERS,
    engine: str = "strata",
    trials: int | None = None,
    progress: Progress | None = None,
    parallel: Parallel = SERIAL,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-trial class totals and request counts of one run (`simulate_runs`)."""
    [res] = simulate_runs(prep, [Run(drivers, trials)], engine, progress, parallel)
    return res.totals, res.requests


def _run_chunk(
    shared: tuple[Prepared, tuple[Run, ...], str], job: _Job
) -> tuple[_ChunkResult, ...]:
    """One chunk of trials of every run that has it: their traffic, multipliers and per-class
    totals.

    The runs share the chunk's draws. Runs whose traffic and parameter rows are the same (the
    bridge's spike, retry and cold-start steps: `traffic_key`) share their per-class sums too;
    only their multipliers differ. Each sum starts from a copy of its class's stream, so it is
    the same number whichever runs share the job.
    """
    prep, runs, engine = shared
    n = job.n
    draws = _ChunkDraws.draw(prep, job.chunk, n)
    z_drift = draws.z_drift
    if prep.drift_common.any():  # drift shared across classes: one common factor
        rho = prep.drift_common
        z_common = _common_stream(prep.scenario.seed, job.chunk).standard_normal(n)
        z_drift = np.sqrt(rho) * z_common[:, None] + np.sqrt(1.0 - rho) * z_drift
    shared_sums: dict[Hashable, tuple[TrialTraffic, np.ndarray, np.ndarray, np.ndarray]] = {}
    out = []
    for i in job.runs:
        run = runs[i]
        drivers = run.drivers
        key = (traffic_key(drivers), drivers.uncertainty)  # the rows follow uncertainty
        if key not in shared_sums:
            traffic = draws.traffic(prep, drivers)
            rows = _param_rows(prep, draws.rows_u, drivers)
            shared_sums[key] = (
                traffic,
                rows,
                *_class_sums(prep, draws, traffic, rows, drivers, engine),
            )
        traffic, rows, sums, requests = shared_sums[key]
        mult = _multipliers(prep, traffic, drivers, z_drift, rows)
        totals = sums * mult
        m_var = max(0, min(n, run.variant_trials - job.start))
        variant_totals = []
        for variant in run.variants:
            vt = totals[:m_var].copy()
            changed = [j for j, st in enumerate(variant) if st is not prep.strata[j]]
            if changed and m_var:  # those classes again, on the same random numbers
                alt, _ = aggregate_classes(
                    [variant[j] for j in changed], traffic.intensity[:, changed],
                    rows[:, changed], [_copy(draws.classes[j]) for j in changed],
                    [prep.reference_intensity[j] for j in changed],
                )  # fmt: skip
                vt[:, changed] = (alt * mult[:, changed])[:m_var]
            variant_totals.append(vt)
        daily = _daily_chunk(prep, traffic, totals) if run.daily else None
        out.append(_ChunkResult(totals, requests, tuple(variant_totals), daily))
    return tuple(out)


def _param_rows(prep: Prepared, rows_u: np.ndarray, drivers: Drivers) -> np.ndarray:
    """Each trial's parameter row per class: the point estimate (0) without uncertainty."""
    rows = np.zeros(rows_u.shape, dtype=np.int64)
    if drivers.uncertainty:
        for j, pc in enumerate(prep.classes):
            n_draws = pc.unit.n_params - 1
            if n_draws > 0:
                rows[:, j] = 1 + (rows_u[:, j] * n_draws).astype(np.int64)
    return rows


def _class_sums(
    prep: Prepared,
    draws: _ChunkDraws,
    traffic: TrialTraffic,
    rows: np.ndarray,
    drivers: Drivers,
    engine: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Per trial and class, the sum of the requests' unit costs and their count."""
    rngs = [_copy(rng) for rng in draws.classes]
    if engine == "strata":
        return aggregate_classes(
            prep.strata, traffic.intensity, rows, rngs, prep.reference_intensity
        )
    sums = np.empty(rows.shape)
    requests = np.empty(rows.shape)
    for j in range(len(prep.classes)):
        sums[:, j], requests[:, j] = _reference_class(
            prep, traffic, j, rows[:, j], drivers, rngs[j]
        )
    return sums, requests


def _day_index(plan: TrafficPlan) -> tuple[np.ndarray, int]:
    """First bucket of each day of the horizon, and the number of days."""
    n_buckets = plan.base.shape[0]
    day_of = (np.arange(n_buckets) * plan.bucket_s // DAY_S).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, day_of[1:] != day_of[:-1]])
    return starts, int(day_of[-1]) + 1


def _daily_chunk(prep: Prepared, traffic: TrialTraffic, class_totals: np.ndarray) -> np.ndarray:
    """Cost per day of each trial of a chunk (trials x days).

    A trial's class total is spread over the days in proportion to that class's intensity in
    the trial (its traffic shape, spikes and events; volume, mix and drift scale a trial's class
    uniformly): the fan of daily costs, not a per-request simulation of each day.
    """
    plan = prep.plan
    n_buckets = plan.base.shape[0]
    starts, n_days = _day_index(plan)
    n, n_classes = class_totals.shape
    daily = np.zeros((n, n_days))
    rows = max(1, BLOCK_CELLS // n_buckets)
    for b0 in range(0, n, rows):
        block = slice(b0, min(b0 + rows, n))
        m = block.stop - block.start
        spike = (
            traffic.spikes.grid(block, n_buckets, plan.bucket_s)
            if traffic.spikes is not None
            else None
        )
        for j in range(n_classes):
            lam = np.broadcast_to(plan.base[:, j], (m, n_buckets))
            if spike is not None and plan.spike_hit[j]:
                lam = lam * spike
            per_day = np.add.reduceat(lam, starts, axis=1)
            share = per_day / np.maximum(per_day.sum(axis=1, keepdims=True), 1e-300)
            daily[block] += share * class_totals[block, j, None]
    return daily


def naive_daily(prep: Prepared) -> np.ndarray:
    """The naive linear estimate's cost per day (days,)."""
    plan = prep.plan
    starts, _ = _day_index(plan)
    base = np.add.reduceat(plan.base_no_events.sum(axis=1), starts)
    return prep.pilot_mean_cost * plan.projected_requests * base / max(float(base.sum()), 1e-300)


def _reference_class(
    prep: Prepared,
    traffic: TrialTraffic,
    j: int,
    rows: np.ndarray,
    drivers: Drivers,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-request reference for one class: Poisson counts per bucket, every request drawn."""
    plan = prep.plan
    base = plan.base if drivers.spikes else plan.base_no_events
    lam = traffic.volume[:, None] * traffic.mix_factor[:, j : j + 1] * base[None, :, j]
    if traffic.spikes is not None and plan.spike_hit[j]:
        lam = lam * traffic.spikes.grid(slice(0, lam.shape[0]), base.shape[0], plan.bucket_s)
    counts = rng.poisson(lam)
    tot = reference_sum(prep.classes[j].unit, counts, np.ones(counts.shape), rows, rng)
    return tot, counts.sum(axis=1).astype(float)


REFERENCE_S_PER_REQUEST = 150e-9  # measured on the 2-core development machine
#: the strata engine's seconds per trial, class and hour of the horizon on one core: 3-7 ns on
#: the 2-core development machine (bench_scale.py), more where retries are many; a resolution
#: finer than an hour costs little more (its buckets within an hour are not recomputed)
STRATA_S_PER_TRIAL_CLASS_HOUR = 4e-9


def expected_seconds(scenario: Scenario, model: FittedModel, engine: str = "strata") -> float:
    """Roughly how long a forecast's trials take on one core, before anything is prepared:
    for starting worker processes early (`run_forecast`), never for a result."""
    if engine == "reference":
        return reference_seconds(scenario)
    n_classes = len(model.classes) + len(scenario.mix.new_classes)
    buckets = scenario.horizon_s / max(scenario.resolution_s, 3600.0)  # at most hourly
    return STRATA_S_PER_TRIAL_CLASS_HOUR * scenario.trials * n_classes * buckets


def reference_seconds(scenario: Scenario) -> float:
    """Roughly how long ``--engine reference`` takes: it draws every request of every trial."""
    return REFERENCE_S_PER_REQUEST * scenario.volume.requests * scenario.trials


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


CAP_FACTORS = (10.0, 100.0)
CAP_SENSITIVE = 0.01  # a class whose mean moves by more than this at 100x its cap


def _cap_variants(prep: Prepared) -> tuple[tuple[int, ...], tuple[tuple[Strata, ...], ...]]:
    """The classes whose capped tail's mean depends on its cap (xi near or above 1), and the
    strata of every class with those caps 10x and 100x higher (`CAP_FACTORS`)."""
    sensitive = []
    for j, pc in enumerate(prep.classes):
        d = pc.unit.dist
        if not d.has_tail or d.cap is None:
            continue
        now = float(pc.unit.row_means()[0])
        far = replace(pc.unit, dist=replace(d, cap=CAP_FACTORS[-1] * d.cap))
        if now > 0 and float(far.row_means()[0]) / now - 1.0 > CAP_SENSITIVE:
            sensitive.append(j)
    variants = []
    for factor in CAP_FACTORS if sensitive else ():
        strata = list(prep.strata)
        for j in sensitive:
            unit = prep.classes[j].unit
            d = unit.dist
            assert d.cap is not None
            strata[j] = build_strata(
                replace(unit, dist=replace(d, cap=factor * d.cap)), prep.reference_intensity[j]
            )
        variants.append(tuple(strata))
    return tuple(sensitive), tuple(variants)


def _cap_sensitivity(
    prep: Prepared, sensitive: tuple[int, ...], totals: np.ndarray, variants: tuple[np.ndarray, ...]
) -> CapSensitivity | None:
    """The forecast's mean and P95 on the bridge's trials (its first ones: the same random
    numbers), as they are and with the sensitive classes' caps 10x and 100x higher."""
    if not sensitive:
        return None
    n = min(BRIDGE_TRIALS, totals.size)
    means, p95s = [float(totals[:n].mean())], [float(np.quantile(totals[:n], 0.95))]
    for t in variants:
        tot = t.sum(axis=1)
        means.append(float(tot.mean()))
        p95s.append(float(np.quantile(tot, 0.95)))
    names = tuple(prep.classes[j].name for j in sensitive)
    return CapSensitivity(names, (1.0, *CAP_FACTORS), tuple(means), tuple(p95s))


def _cap_note(cs: CapSensitivity | None) -> tuple[str, ...]:
    if cs is None:
        return ()
    figures = "; ".join(
        f"{'with the model' + chr(39) + 's caps' if f == 1 else f'caps {f:g}x higher'}: "
        f"mean ${m:,.0f}, P95 ${p:,.0f}"
        for f, m, p in zip(cs.factors, cs.mean, cs.p95, strict=True)
    )
    return (
        f"the mean depends on the cap of {', '.join(cs.classes)} (a tail too heavy for its "
        f"mean to settle); on {BRIDGE_TRIALS:,} trials at most: {figures}. Set a physical cap "
        "(`costsim fit --cap`, `--max-tokens`) if the default one is not",
    )


def _unresolved_note(se: dict[str, float], trials: int) -> tuple[str, ...]:
    keys = [k.upper() for k, v in se.items() if not math.isfinite(v)]
    if not keys:
        return ()
    return (
        f"{', '.join(keys)} unresolved: {trials:,} trials cannot bound "
        f"{'it' if len(keys) == 1 else 'them'} (their order-statistic interval runs past the "
        "sample); run more trials",
    )


def _bridge_steps(prep: Prepared) -> list[tuple[str, Drivers | None]]:
    """The bridge's steps, each switching one more driver on (None: a step computed from the
    plan alone, or one the scenario leaves unchanged)."""
    sc = prep.scenario
    rel = sc.reliability
    has_spikes = sc.traffic.spikes.rate_per_day > 0 or bool(sc.traffic.events)
    return [
        ("mix shift & pricing" if sc.pricing is not None else "mix shift", None),
        ("unseen tail", Drivers(True, False, False, False, False)),
        ("spikes & events", Drivers(True, True, False, False, False) if has_spikes else None),
        ("retries", Drivers(True, True, True, False, False) if retries_changed(rel) else None),
        ("cold starts", Drivers(True, True, True, True, False) if cold_changed(rel) else None),
        ("uncertainty", ALL_DRIVERS),
    ]


def _bridge(
    prep: Prepared, full: np.ndarray, step_totals: dict[str, np.ndarray]
) -> tuple[BridgeStep, ...]:
    """Naive -> forecast, switching each driver on in turn (common random numbers).

    The intermediate steps (``step_totals``) ran on the first ``BRIDGE_TRIALS`` trials (the
    same random numbers as the forecast's); the last step ends at the forecast's own quantiles,
    so the bridge adds up to the headline figures.
    """
    naive = prep.pilot_mean_cost * prep.plan.projected_requests
    mix_value = float(
        sum(
            pc.pilot_mean * prep.plan.base_no_events[:, j].sum()
            for j, pc in enumerate(prep.classes)
        )
    )
    out = []
    prev50 = prev95 = naive
    cur50 = cur95 = naive
    for name, drivers in _bridge_steps(prep):
        if name.startswith("mix"):
            cur50 = cur95 = mix_value
        elif drivers is ALL_DRIVERS:
            cur50, cur95 = float(np.quantile(full, 0.5)), float(np.quantile(full, 0.95))
        elif drivers is not None:
            tot = step_totals[name].sum(axis=1)
            cur50, cur95 = float(np.quantile(tot, 0.5)), float(np.quantile(tot, 0.95))
        out.append(BridgeStep(name, cur50, cur95, cur50 - prev50, cur95 - prev95))
        prev50, prev95 = cur50, cur95
    return tuple(out)


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


def memory_needed(
    scenario: Scenario, model: FittedModel, parallel: Parallel | None = None
) -> dict[str, float]:
    """Bytes a forecast will hold, estimated before anything is allocated: every class's unit
    cost (parameter rows x its body's points, and four numbers a row) and strata (parameter
    rows x strata x 4 moments), the per-trial class totals and request counts the result
    keeps, and on each local worker (``parallel``'s; None: this machine's cores) the
    temporaries of one chunk of trials and the engine's stacked arrays. Where chunks may run
    on worker processes, each holds its own copy of the unit costs and strata, and this
    process their pickled form while it sends them."""
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
    if parallel is None:
        lanes = available_cores()
    else:
        lanes = 1 if parallel.scheduler is not None else parallel.workers
    units = 8.0 * n_classes * rows * (points + 4)
    strata = 4 * 8.0 * n_classes * rows * strata_count()
    return {
        "units": units,
        "strata": strata,
        "results": 2 * 8.0 * scenario.trials * n_classes,
        "chunk": _CHUNK_ARRAYS * 8.0 * min(CHUNK_TRIALS, scenario.trials) * n_classes * lanes,
        "engine": STACKED_ARRAYS * 8.0 * STACKED * lanes,
        "workers": (units + strata) * (lanes + 1) if lanes > 1 else 0.0,
    }


def guard_memory(scenario: Scenario, model: FittedModel, parallel: Parallel | None = None) -> None:
    """Refuse, before allocating, a forecast that would hold more than `RUN_MEMORY`."""
    parts = memory_needed(scenario, model, parallel)
    total = sum(parts.values())
    if total > RUN_MEMORY:
        n_classes = len(model.classes) + len(scenario.mix.new_classes)
        copies = (
            f", and {parts['workers'] / GIB:.1f} GiB of their copies for the worker processes"
            if parts["workers"]
            else ""
        )
        raise ForecastError(
            f"this forecast would hold about {total / GIB:.1f} GiB ({n_classes:,} classes: "
            f"{(parts['units'] + parts['strata']) / GIB:.1f} GiB of unit costs and strata"
            f"{copies}; {scenario.trials:,} trials: "
            f"{parts['results'] / GIB:.1f} GiB of per-class totals), more than the "
            f"{RUN_MEMORY / GIB:.0f} GiB costsim allows itself: lower --trials (or `trials:`), "
            + ("use fewer --workers, " if parts["workers"] else "")
            + "or merge small classes into one before fitting"
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
    guard_memory(scenario, model, parallel)
    # a long forecast's worker processes: their fork server imports this module meanwhile
    parallel.start_processes_for(__name__, expected_seconds(scenario, model, engine))
    prep = prepare(scenario, model, progress, parallel)
    n_bridge = min(BRIDGE_TRIALS, scenario.trials)
    sensitive, variants = _cap_variants(prep) if bridge else ((), ())
    steps = [
        (name, d)
        for name, d in (_bridge_steps(prep) if bridge else [])
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
    bridge_steps = (
        _bridge(
            prep, totals, {name: r.totals for (name, _), r in zip(steps, step_runs, strict=True)}
        )
        if bridge
        else ()
    )
    sensitivity = _cap_sensitivity(prep, sensitive, totals, main.variant_totals)
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
        bridge=bridge_steps,
        concentration=_concentration(prep, conc_rng),
        notes=prep.notes + _unresolved_note(se, int(totals.size)) + _cap_note(sensitivity),
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
        raise ForecastError(
            f"the forecast is $0 (P50 ${fc.quantiles['p50']:g}, mean ${fc.quantiles['mean']:g}) "
            f"for {fc.projected_requests:,.0f} projected requests at ${fc.pilot_mean_cost:.4g} "
            "each: check the scenario's volume and its uncertainty"
        )
    return fc


def forecast_version() -> dict[str, Any]:
    return {"schema_version": FORECAST_SCHEMA_VERSION, "costsim_version": __version__}
