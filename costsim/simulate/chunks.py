"""The Monte Carlo in chunks of trials (DESIGN section 4). A chunk of `CHUNK_TRIALS` trials has
random streams of its own (`SeedSequence` children of the scenario's seed): it draws the
trials' traffic, mix and parameter rows, turns them into per-class totals with the stratified
engine (or the per-request reference) and multiplies them by the retries, cold starts and drift.
Several runs of one prepared scenario (the forecast and the bridge's steps) share a chunk's
draws. The chunks run on any worker (`costsim.parallel`) and are written back in a fixed
order, so the numbers are the same on any number of workers or on a cluster (`simulate_runs`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..errors import ScenarioError
from ..model.fit import FittedModel
from ..parallel import SERIAL, Parallel
from ..progress import Progress
from ..scenario import Scenario
from .engine import Strata, aggregate_classes, reference_sum
from .prepare import Prepared
from .reliability import BLOCK_CELLS, multipliers
from .traffic import ALL_DRIVERS, Drivers, TrafficPlan, TrialTraffic, draw_traffic, traffic_key

CHUNK_TRIALS = 2500  # part of reproducibility: results depend on it, so it is fixed
ENGINES = ("strata", "reference")


def _multipliers(
    prep: Prepared, traffic: TrialTraffic, drivers: Drivers, z_drift: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """Per-trial, per-class cost multipliers: retries x cold starts (`costsim.simulate.reliability`,
    on the trial's parameter rows) x drift."""
    mult = multipliers(
        prep.plan, prep.scenario.reliability, prep.reliability, traffic, drivers, rows
    )
    if drivers.uncertainty:  # each class's drift: the same arithmetic, all classes at once
        shift, v = np.array(prep.drift_shifts, dtype=float).reshape(-1, 2).T
        mult *= np.exp(shift + np.sqrt(v) * z_drift)
    return mult


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


def _jobs(sizes: Sequence[int], kinds: Sequence[Hashable]) -> list[_Job]:
    """One job per chunk of trials and kind of run (`_sums_key`), shared by the runs of that
    kind that have that chunk with the same number of trials: they share its per-class sums
    (the bridge's spike, retry and cold-start steps, on the forecast's first chunks). Runs of
    other kinds are other jobs, so that the bridge's chunks spread over the workers rather than
    make one long job. The kinds holding the most trials of runs come first, chunk by chunk:
    the small jobs come last, so that the workers finish together (results are written back
    in place, whatever the order)."""
    work: dict[Hashable, int] = {}
    for n_total, kind in zip(sizes, kinds, strict=True):
        work[kind] = work.get(kind, 0) + n_total
    order = {kind: k for k, kind in enumerate(sorted(work, key=lambda kind: -work[kind]))}
    runs: dict[tuple[int, int, int, int], list[int]] = {}
    for i, (n_total, kind) in enumerate(zip(sizes, kinds, strict=True)):
        for chunk, start in enumerate(range(0, n_total, CHUNK_TRIALS)):
            n = min(CHUNK_TRIALS, n_total - start)
            runs.setdefault((order[kind], chunk, start, n), []).append(i)
    return [_Job(chunk, start, n, tuple(r)) for (_, chunk, start, n), r in sorted(runs.items())]


def _sums_key(drivers: Drivers) -> Hashable:
    """Runs whose keys agree draw the same traffic and parameter rows, and so share their
    per-class sums (the parameter rows follow uncertainty)."""
    return traffic_key(drivers), drivers.uncertainty


def for_workers(
    prep: Prepared, runs: Sequence[Run] = (), engine: str = "strata"
) -> tuple[Prepared, tuple[Run, ...]]:
    """The prepared scenario and runs as the chunks of trials need them, to be sent to every
    worker: the strata engine's units without the bodies their exact draws never reach
    (`Strata.for_exact_draws`; on 200 classes, 84 of the 97 MB). The same numbers: a stratum
    the runs' variants share with the forecast stays one object."""
    if engine != "strata":
        return prep, tuple(runs)
    slim: dict[int, Strata] = {}

    def of(st: Strata, j: int) -> Strata:
        if id(st) not in slim:
            slim[id(st)] = st.for_exact_draws(prep.reference_intensity[j])
        return slim[id(st)]

    strata = tuple(of(st, j) for j, st in enumerate(prep.strata))
    classes = tuple(
        pc if st.unit is pc.unit else replace(pc, unit=st.unit)
        for pc, st in zip(prep.classes, strata, strict=True)
    )
    sent = tuple(
        replace(r, variants=tuple(tuple(of(st, j) for j, st in enumerate(v)) for v in r.variants))
        for r in runs
    )
    return replace(prep, classes=classes, strata=strata), sent


def simulate_runs(
    prep: Prepared,
    runs: Sequence[Run],
    engine: str = "strata",
    progress: Progress | None = None,
    parallel: Parallel = SERIAL,
) -> list[RunResult]:
    """Several simulations of the same prepared scenario, chunk by chunk (bounded memory).

    Every chunk of trials is a job for each kind of run that has it (`_jobs`), its result
    depending on the job alone (the chunk's own streams): jobs run on every worker and are
    written back in a fixed order, so the numbers are the same for any number of workers, or
    on a cluster.
    """
    if engine not in ENGINES:
        raise ScenarioError(f"--engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "reference" and any(pc.unit.body_dropped for pc in prep.classes):
        raise ValueError("the reference engine draws from the units' bodies: prepare(bodies=True)")
    sizes = [r.trials or prep.scenario.trials for r in runs]
    jobs = _jobs(sizes, [_sums_key(r.drivers) for r in runs])
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
    shared = (*for_workers(prep, runs, engine), engine)
    for job, results in zip(
        jobs,
        parallel.map(_run_chunk, jobs, shared, processes=True, meanwhile="threads"),
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
    """One chunk of trials of the runs of one kind that have it (`_jobs`): their traffic,
    multipliers and per-class totals.

    The runs share the chunk's draws, its traffic and parameter rows, and so their per-class
    sums (the bridge's spike, retry and cold-start steps: `_sums_key`); only their multipliers
    differ. Each sum starts from a copy of its class's stream, so it is the same number
    whichever runs share the job, or whichever job computes it.
    """
    prep, runs, engine = shared
    n = job.n
    draws = _ChunkDraws.draw(prep, job.chunk, n)
    z_drift = draws.z_drift
    if prep.drift_common.any():  # drift shared across classes: one common factor
        rho = prep.drift_common
        z_common = _common_stream(prep.scenario.seed, job.chunk).standard_normal(n)
        z_drift = np.sqrt(rho) * z_common[:, None] + np.sqrt(1.0 - rho) * z_drift
    kind = runs[job.runs[0]].drivers  # the traffic and rows of every run of the job
    traffic = draws.traffic(prep, kind)
    rows = _param_rows(prep, draws.rows_u, kind)
    sums, requests = _class_sums(prep, draws, traffic, rows, kind, engine)
    out = []
    for i in job.runs:
        run = runs[i]
        drivers = run.drivers
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
