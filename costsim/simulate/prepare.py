"""A forecast's preparation (DESIGN section 4): each production class's per-request cost as
parameter rows (re-priced from tokens where the scenario has a price sheet, scaled for a class
borrowed from another), its strata, retry and cold-start rows and the drift of its level over
the horizon, and the deterministic traffic plan. What every chunk of trials shares, computed
once per forecast (`prepare`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import ScenarioError
from ..model.drift import horizon_shift
from ..model.fit import ClassFit, FittedModel
from ..parallel import SERIAL, Parallel
from ..progress import Progress
from ..scenario import Scenario, validate_against_model
from .engine import Strata, build_strata
from .inversion import GammaQuantiles
from .reliability import ClassReliability, class_reliability, with_norms
from .repricing import effective_price, quantity_rows, reprice, unpriced_tokens
from .traffic import TrafficPlan, build_plan, start_epoch, window_weights
from .unitcost import UnitCost, cap_moves_mean


@dataclass(frozen=True)
class ProductionClass:
    name: str
    source: ClassFit
    unit: UnitCost
    pilot_mean: float  # empirical mean cost per request (re-priced, scaled)
    repriced: bool
    borrowed_from: str | None
    unpriced: tuple[str, ...] = ()  # token quantities its price charges that its model lacks
    cap_sensitive: bool = False  # its mean depends on its tail's cap (`cap_moves_mean`)


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
    bodies: bool = False,
) -> Prepared:
    """Production classes, their unit costs and the deterministic traffic plan (the classes
    prepared on as many local worker processes as ``parallel`` has workers, each from its own
    streams). A unit keeps its rows' bodies (most of its bytes) where they are used after the
    moments: with ``bodies`` (the reference engine draws every request from them), or where
    some exact draw can fall in a body or its tail's cap moves its mean (`cap_sensitive`)."""
    notes: list[str] = []
    sources, mix = production_mix(scenario, model)
    names = list(sources)
    pilot_share = np.array([model.classes[n].share if n in model.classes else 0.0 for n in names])
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
    # a class's preparation is quick: this machine's worker processes (threads until they are
    # up), whatever runs the trials; a few classes an item, so that no worker waits for the next
    local = Parallel(parallel.workers)
    shared = (scenario, model, plan, bodies)
    per_item = max(1, min(CLASSES_PER_ITEM, len(jobs) // (4 * local.workers)))
    items = [tuple(jobs[a : a + per_item]) for a in range(0, len(jobs), per_item)]
    prepared: list[_ClassPrepared] = []
    for part in local.map(_prepare_classes, items, shared, processes=True, meanwhile="threads"):
        prepared.extend(part)
        if progress is not None:
            progress("preparing classes", len(prepared), len(jobs))
    classes = [one[0] for one in prepared]
    if all(c.cost_total is not None for c in model.classes.values()):
        pilot_mean = (
            sum(c.cost_total or 0.0 for c in model.classes.values()) / model.traffic.requests
        )
    else:
        pilot_mean = float(np.dot(pilot_share, [c.pilot_mean for c in classes]))
        notes.append("the pilot log had no cost column: the naive estimate uses re-priced tokens")
    for q in ("input_tokens", "output_tokens"):
        lacking = [pc.name for pc in classes if q in pc.unpriced]
        if lacking:
            which = "any class" if len(lacking) == len(classes) else ", ".join(lacking)
            notes.append(
                f"pricing: the model has no {q} for {which}, so the {q.split('_')[0]} price "
                f"is not charged (fit with `--{q.replace('_', '-')}-col` to charge it)"
            )
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


def production_mix(
    scenario: Scenario, model: FittedModel
) -> tuple[dict[str, tuple[ClassFit, float, str | None]], np.ndarray]:
    """The production classes, each with the pilot class it is fitted on, its cost scale and
    the class it borrows from (a new class), and their shares of the scenario's requests. The
    scenario's class names are checked against the model's first (`validate_against_model`):
    everything that reads the mix (the memory estimate before a forecast, too) goes through
    here."""
    validate_against_model(scenario, tuple(model.classes))
    sources: dict[str, tuple[ClassFit, float, str | None]] = {
        n: (cf, 1.0, None) for n, cf in model.classes.items()
    }
    for new, spec in scenario.mix.new_classes.items():
        sources[new] = (model.classes[spec.like], spec.cost_scale, spec.like)
    names = list(sources)
    shares = scenario.mix.shares
    if shares is None:
        mix = np.array([model.classes[n].share if n in model.classes else 0.0 for n in names])
    elif scenario.mix.relative:  # weights on the pilot shares (a new class: on its `like`'s)
        base = np.array([model.classes[sources[n][2] or n].share for n in names])
        weights = np.array([shares.get(n, 1.0) for n in names])
        mix = base * weights / np.sum(base * weights)
    else:
        mix = np.array([shares.get(n, 0.0) for n in names])
        mix = mix / mix.sum()
    return sources, mix


@dataclass(frozen=True)
class _ClassJob:
    j: int
    name: str
    source: ClassFit
    scale: float
    like: str | None
    price_date: float | None


CLASSES_PER_ITEM = 8  # classes prepared in one item of `prepare`'s map, at most

_ClassPrepared = tuple[
    ProductionClass, Strata, ClassReliability, tuple[float, float], GammaQuantiles | None
]


def _prepare_classes(
    shared: tuple[Scenario, FittedModel, TrafficPlan, bool], jobs: tuple[_ClassJob, ...]
) -> list[_ClassPrepared]:
    return [_prepare_class(shared, job) for job in jobs]


def _prepare_class(
    shared: tuple[Scenario, FittedModel, TrafficPlan, bool], job: _ClassJob
) -> _ClassPrepared:
    """One production class: its unit cost (re-priced from tokens where the scenario prices
    them), strata, reliability rows, drift over the horizon and the Gamma quantiles of its
    uncertain mix share, from the class's own streams."""
    scenario, model, plan, bodies = shared
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
    unpriced = unpriced_tokens(cf, price) if price is not None else ()
    pc = ProductionClass(
        job.name, cf, unit, mean, price is not None, job.like, unpriced, cap_moves_mean(unit)
    )
    rel = scenario.reliability
    policy = with_norms(class_reliability(cf, rel, unit.n_params, rel_ss), plan, rel, job.j)
    shift = drift_shift(cf, plan, job.j, scenario, model)
    alpha = plan.mix[job.j] * (scenario.mix.concentration or 0.0)
    gammas = GammaQuantiles.of(alpha) if alpha > 1e-12 else None
    reference = reference_intensity(plan, job.j)
    strata = build_strata(unit, reference)
    if not bodies and not pc.cap_sensitive:  # the bridge's cap variants use its bodies
        strata = strata.for_exact_draws(reference)
        pc = replace(pc, unit=strata.unit)
    return pc, strata, policy, shift, gammas


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
