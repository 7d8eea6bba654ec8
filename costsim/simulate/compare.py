"""Comparing ways to serve the traffic (issue 10; DESIGN sections 3 and 5): `costsim compare`.

`run_compare` evaluates every option of a scenario's ``deployments:`` serving *all* the
traffic — and, when the scenario has a ``route:``, the routed plan (each class served by its
routed option) as one more entry named ``routed`` — on the same random numbers: trial t of every
option sees the same volume, mix, spikes, unit-cost drift and tail draws (common random
numbers), so the differences between options are the options', not noise's.

- An **api** option's class totals come from the forecast's own engine (`prepare.prepare` and
  `chunks.simulate`) under the option's pricing (none = the pilot's billed cost): with neither
  a batch discount nor a rate limit, an api option *is* today's forecast, trial by trial. Batch
  classes cost (1 - discount) of that. A rate limit (`deployments.rate_limit`) runs on the
  requests the option receives per bucket; each delayed request makes one extra attempt, billed
  at the class's unit cost when the reliability block bills failures.
- A **provisioned** option serves the per-bucket expected requests of each trial (volume x mix
  factor x base intensity x spikes where they hit — the forecast's own traffic draws, rebuilt per
  bucket) with `deployments.provisioned`; its overflow is billed at the overflow option's unit
  cost per class (what that option charges for the trial's requests of the class), rate-limited
  there if it has a limit, or throttled.
- Traffic sent to an api option is billed per class in proportion to its expected requests: a
  class's unit cost in a trial is the option's class total over the class's expected requests.

The value of keeping the choice open (`deployments.flexibility_value`) splits each plan's cost at
the review bucket (``review_after_s``, default a third of the horizon): provisioned pools bucket
by bucket, api traffic by the requests of each period. What the review observes is each class's
first-period requests and the first-period unit cost at the first api option's prices.

Nothing here prints or reads a file; the model is passed in.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import ScenarioError
from ..model.fit import FittedModel
from ..parallel import SERIAL, Parallel
from ..progress import Progress
from ..scenario import (
    THROTTLE,
    ApiOption,
    Pricing,
    ProvisionedOption,
    Scenario,
    format_duration,
    validate_against_model,
)
from .chunks import CHUNK_TRIALS, chunk_traffic, expected_seconds, for_workers, simulate
from .deployments import (
    CompareStats,
    Flexibility,
    batch_price_factor,
    compare,
    flexibility_value,
    provisioned,
    rate_limit,
)
from .forecast import Forecast, _refuse_overflow, guard_memory, quantiles_of, scenario_hash
from .prepare import Prepared, prepare
from .traffic import ALL_DRIVERS, TrafficPlan, TrialTraffic

ROUTED = "routed"  # the name of the routed plan's entry
REVIEW_FRACTION = 1.0 / 3.0  # default review: a third of the horizon
# Trials per block of per-bucket arrays (trials x buckets x classes): small enough to stay in
# cache, which makes the autoscaler several times faster than on whole chunks. Results do not
# depend on it (every figure is per trial); the random numbers follow the forecast's chunks.
BLOCK_TRIALS = 250
_HOUR = 3600.0


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OptionResult:
    """One way to serve the traffic, per trial and summarised.

    ``cost`` and ``first`` (trials,): the plan's total cost and its cost before the review.
    Shares are over all requests of all trials: ``overflow_share`` (served by the overflow
    option), ``throttled_share`` (dropped), ``delayed_share`` (held back by a rate limit).
    ``utilisation``: served load over serving capacity of its pools, mean over trials, weighted
    by replica-hours; ``cold_starts``, ``replica_hours``: means per trial. The pool figures are
    None for a plan without pools. ``switch_cost`` and ``lead_time_s``: what leaving it costs.
    """

    name: str
    kind: str  # "api", "provisioned" or "routed"
    cost: np.ndarray
    first: np.ndarray
    utilisation: float | None
    overflow_share: float
    throttled_share: float
    delayed_share: float
    cold_starts: float | None
    replica_hours: float | None
    switch_cost: float
    lead_time_s: float


@dataclass(frozen=True)
class Comparison:
    """`run_compare`'s result: ``options`` in the scenario's order (then ``routed``), their
    statistics on common random numbers (`deployments.CompareStats`) and the value of keeping
    the choice open until ``review_after_s`` (`deployments.Flexibility`, one entry per option)."""

    scenario_name: str
    scenario_hash: str
    seed: int
    trials: int
    horizon_s: float
    resolution_s: float
    review_after_s: float
    classes: tuple[str, ...]
    options: tuple[OptionResult, ...]
    stats: CompareStats
    flexibility: Flexibility
    notes: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.options)

    def __getitem__(self, name: str) -> OptionResult:
        return self.options[self.names.index(name)]


# ---------------------------------------------------------------------------------------------
# The options, resolved against the model's classes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Api:
    name: str
    run: int  # which forecast run (one per distinct pricing) gives its class totals
    factor: np.ndarray  # (classes,) price multiplier: 1 - batch discount for batch classes
    rpm: float | None


@dataclass(frozen=True)
class _Pool:
    name: str
    option: ProvisionedOption
    throughput: np.ndarray  # (classes,) requests per second one replica serves
    overflow: str | None  # the api option its overflow goes to; None: throttled


@dataclass(frozen=True)
class _Plan:
    name: str
    kind: str
    serve: dict[str, np.ndarray]  # option -> (classes,) bool: the classes it serves first
    switch_cost: float
    lead_time_s: float


def _problem(scenario: Scenario, text: str) -> ScenarioError:
    where = f"{scenario.path.name}: " if scenario.path is not None else ""
    return ScenarioError(where + text)


def check_deployments(scenario: Scenario) -> None:
    """What compare needs beyond the scenario's own validation: a ``deployments:`` block,
    overflow to an api option (billed at its unit cost) or throttle, and the name ``routed``
    left to the routed plan. A `ScenarioError` naming the key path."""
    options = scenario.deployments
    if not options:
        raise _problem(
            scenario,
            "compare needs a `deployments:` block: name two or more ways to serve the traffic "
            "(kind: api or provisioned); see scenarios/deployments.yaml",
        )
    problems = []
    for name, option in options.items():
        if isinstance(option, ProvisionedOption) and option.overflow != THROTTLE:
            target = options.get(option.overflow)
            if isinstance(target, ProvisionedOption):
                apis = [n for n, o in options.items() if isinstance(o, ApiOption)]
                allowed = ", ".join([THROTTLE, *apis])
                problems.append(
                    f"deployments.{name}.overflow: '{option.overflow}' is a provisioned option; "
                    f"overflow goes to an api option (billed at its unit cost) or is throttled: "
                    f"expected one of {allowed}"
                )
    if scenario.route is not None and ROUTED in options:
        problems.append(
            f"deployments.{ROUTED}: the name is taken by the routed plan when route: is given; "
            "rename the option"
        )
    if problems:
        raise _problem(scenario, "; ".join(problems))


def _class_mask(names: tuple[str, ...] | None, classes: tuple[str, ...]) -> np.ndarray:
    if names is None:
        return np.ones(len(classes), dtype=bool)
    return np.array([c in names for c in classes], dtype=bool)


def _with_pricing(scenario: Scenario, pricing: Pricing | None) -> Scenario:
    """The scenario under another price sheet (validated again: a frozen declared format)."""
    changes: dict[str, Any] = {"pricing": pricing}  # the format's fields are not typed for mypy
    return dataclasses.replace(scenario, **changes)


def _options(
    scenario: Scenario, classes: tuple[str, ...]
) -> tuple[dict[str, _Api], dict[str, _Pool], list[Pricing | None]]:
    """The api options (with the distinct pricings their runs need) and the pools."""
    apis: dict[str, _Api] = {}
    pools: dict[str, _Pool] = {}
    pricings: list[Pricing | None] = []
    for name, option in scenario.deployments.items():
        if isinstance(option, ApiOption):
            if option.pricing not in pricings:
                pricings.append(option.pricing)
            factor = np.ones(len(classes))
            if option.batch is not None:
                mask = _class_mask(option.batch.classes, classes)
                factor[mask] = batch_price_factor(option.batch.discount)
            rpm = option.rate_limit.requests_per_minute if option.rate_limit is not None else None
            apis[name] = _Api(name, pricings.index(option.pricing), factor, rpm)
        else:
            tp = option.throughput
            thr = np.array([float(tp.classes.get(c, tp.default)) for c in classes])
            over = None if option.overflow == THROTTLE else option.overflow
            pools[name] = _Pool(name, option, thr, over)
    return apis, pools, pricings


def _switch(option: ApiOption | ProvisionedOption) -> tuple[float, float]:
    sw = option.switch
    return (0.0, 0.0) if sw is None else (float(sw.cost), float(sw.lead_time_s))


def _plans(scenario: Scenario, classes: tuple[str, ...]) -> list[_Plan]:
    everything = np.ones(len(classes), dtype=bool)
    plans = []
    for name, option in scenario.deployments.items():
        cost, lead = _switch(option)
        plans.append(_Plan(name, option.kind, {name: everything}, cost, lead))
    route = scenario.route
    if route is not None:
        default = scenario.default_route
        target = [route.classes.get(c, default) for c in classes]
        used = list(dict.fromkeys(t for t in target if t is not None))
        serve = {n: np.array([t == n for t in target]) for n in used}
        switches = [_switch(scenario.deployments[n]) for n in used]
        # leaving the routed plan is leaving every option it uses
        plans.append(
            _Plan(
                ROUTED,
                ROUTED,
                serve,
                sum(s[0] for s in switches),
                max((s[1] for s in switches), default=0.0),
            )
        )
    return plans


# ---------------------------------------------------------------------------------------------
# Traffic per bucket: the forecast's own draws
# ---------------------------------------------------------------------------------------------


def bucket_requests(plan: TrafficPlan, traffic: TrialTraffic, rows: slice) -> np.ndarray:
    """Expected requests (trials in ``rows``, buckets, classes) of a chunk's traffic:
    volume x mix factor x base intensity x the spike multiplier where spikes hit. Summed over
    buckets, the trial's intensity per class (`TrialTraffic.intensity`)."""
    n_buckets = plan.base.shape[0]
    scale = traffic.volume[rows, None] * traffic.mix_factor[rows]
    req = scale[:, None, :] * plan.base[None, :, :]
    if traffic.spikes is not None and plan.spike_hit.any():
        grid = traffic.spikes.grid(rows, n_buckets, plan.bucket_s)
        if plan.spike_hit.all():
            req *= grid[:, :, None]
        else:
            req[:, :, plan.spike_hit] *= grid[:, :, None]
    return req


# ---------------------------------------------------------------------------------------------
# Evaluating a plan on a block of trials
# ---------------------------------------------------------------------------------------------


@dataclass
class _Totals:
    """Per-trial accumulators of one plan."""

    cost: np.ndarray
    first: np.ndarray
    requests: np.ndarray
    overflow: np.ndarray
    throttled: np.ndarray
    delayed: np.ndarray
    cold_starts: np.ndarray
    replica_hours: np.ndarray
    busy_hours: np.ndarray  # utilisation x replica-hours

    @classmethod
    def zeros(cls, n: int) -> _Totals:
        return cls(*(np.zeros(n) for _ in range(9)))

    def write(self, rows: slice, part: _Totals) -> None:
        """A chunk's totals into its rows."""
        for f in dataclasses.fields(self):
            getattr(self, f.name)[rows] = getattr(part, f.name)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.asarray(np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0))


def _over_buckets(weight: np.ndarray, req: np.ndarray) -> np.ndarray:
    """sum_b weight[t, b] x req[t, b, c] -> (trials, classes), as a batched product."""
    return np.asarray(np.matmul(weight[:, None, :], req)[:, 0, :])


@dataclass(frozen=True)
class _Block:
    """One block of trials: its requests per bucket and the sums every plan needs."""

    req: np.ndarray  # (trials, buckets, classes)
    review: int
    ones: np.ndarray  # (buckets,) of 1
    first_ones: np.ndarray  # (buckets,): 1 before the review
    class_req: np.ndarray  # (trials, classes)
    first_req: np.ndarray  # (trials, classes) before the review

    @classmethod
    def of(cls, req: np.ndarray, review: int) -> _Block:
        ones = np.ones(req.shape[1])
        first = np.where(np.arange(req.shape[1]) < review, 1.0, 0.0)
        return cls(req, review, ones, first, ones @ req, first @ req)


@dataclass(frozen=True)
class _Flow:
    """Traffic sent to an api option: ``weight[t, b]`` (None = 1) x the block's requests of the
    classes in ``mask``."""

    weight: np.ndarray | None
    mask: np.ndarray


def _pool_block(pool: _Pool, blk: _Block, mask: np.ndarray, bucket_s: float, out: _Totals,
                rows: slice) -> np.ndarray:  # fmt: skip
    """Serve the classes in ``mask`` on a pool; its cost and figures into ``out[rows]``; the
    share of each bucket's requests it leaves unserved (trials, buckets) returned."""
    opt = pool.option
    scale = opt.autoscale
    c = opt.commitment
    committed = float(c.replicas) if c is not None else 0.0
    committed_price = float(c.gpu_hour_usd) if c is not None else 0.0
    res = provisioned(
        blk.req if mask.all() else blk.req * mask,
        bucket_s,
        pool.throughput,
        gpu_hour_usd=float(opt.gpu_hour_usd),
        r_min=float(opt.replicas.min),
        r_max=float(opt.replicas.max) if opt.replicas.max is not None else math.inf,
        target_utilization=float(scale.target_utilization),
        scale_up_delay_s=float(scale.scale_up_delay_s),
        scale_down_after_s=float(scale.scale_down_after_s),
        throttle=pool.overflow is None,
        commitment_replicas=committed,
        commitment_gpu_hour_usd=committed_price,
    )
    hours = bucket_s / _HOUR
    # every bucket is billed committed x committed price + (billed - committed) on demand: the
    # pool never runs fewer than its commitment, so the on-demand part is never negative
    on_demand_first = (res.replicas.billed[:, : blk.review] - committed).sum(axis=1) * hours
    out.cost[rows] += res.cost
    out.first[rows] += committed * blk.review * hours * committed_price + on_demand_first * float(
        opt.gpu_hour_usd
    )
    lost = (res.overflow if pool.overflow is not None else res.throttled).sum(axis=1)
    if pool.overflow is None:
        out.throttled[rows] += lost
    else:
        out.overflow[rows] += lost
    out.cold_starts[rows] += res.cold_starts
    out.replica_hours[rows] += res.replica_hours
    out.busy_hours[rows] += res.utilisation * res.replica_hours
    return res.unserved_fraction


def _api_block(
    api: _Api,
    flows: list[_Flow],
    blk: _Block,
    base_cost: np.ndarray,
    bucket_s: float,
    billed_failures: bool,
    out: _Totals,
    rows: slice,
) -> None:
    """Bill the traffic an api option receives: each class at the option's unit cost in the
    trial (its class total over the class's expected requests)."""
    unit_total = base_cost * api.factor  # what the option charges for all of a class's requests
    got = np.zeros_like(blk.class_req)
    got_first = np.zeros_like(blk.class_req)
    for f in flows:
        if f.weight is None:
            got += blk.class_req * f.mask
            got_first += blk.first_req * f.mask
        else:
            got += _over_buckets(f.weight, blk.req) * f.mask
            got_first += _over_buckets(f.weight * blk.first_ones, blk.req) * f.mask
    if len(flows) == 1 and flows[0].weight is None and flows[0].mask.all():
        got, got_first = blk.class_req, blk.first_req  # all the traffic: exactly today's totals
    out.cost[rows] += (unit_total * _ratio(got, blk.class_req)).sum(axis=1)
    out.first[rows] += (unit_total * _ratio(got_first, blk.class_req)).sum(axis=1)
    if api.rpm is None:
        return
    per_bucket = sum(
        (blk.req @ f.mask.astype(float)) * (1.0 if f.weight is None else f.weight) for f in flows
    )
    limited = rate_limit(np.asarray(per_bucket), bucket_s, api.rpm)
    share = limited.delayed_share
    delayed = np.zeros_like(blk.class_req)
    delayed_first = np.zeros_like(blk.class_req)
    for f in flows:
        w = share if f.weight is None else share * f.weight
        delayed += _over_buckets(w, blk.req) * f.mask
        delayed_first += _over_buckets(w * blk.first_ones, blk.req) * f.mask
    out.delayed[rows] += delayed.sum(axis=1)
    if billed_failures:  # each delayed request made one extra (rejected) attempt
        out.cost[rows] += (unit_total * _ratio(delayed, blk.class_req)).sum(axis=1)
        out.first[rows] += (unit_total * _ratio(delayed_first, blk.class_req)).sum(axis=1)


def _plan_block(
    plan: _Plan,
    blk: _Block,
    apis: dict[str, _Api],
    pools: dict[str, _Pool],
    base_costs: list[np.ndarray],
    bucket_s: float,
    billed_failures: bool,
    out: _Totals,
    rows: slice,
) -> None:
    out.requests[rows] += blk.class_req.sum(axis=1)
    received: dict[str, list[_Flow]] = {}
    for name, mask in plan.serve.items():
        if name in pools:
            pool = pools[name]
            unserved = _pool_block(pool, blk, mask, bucket_s, out, rows)
            if pool.overflow is not None:
                received.setdefault(pool.overflow, []).append(_Flow(unserved, mask))
        else:
            received.setdefault(name, []).append(_Flow(None, mask))
    for name, flows in received.items():
        api = apis[name]
        _api_block(api, flows, blk, base_costs[api.run][rows], bucket_s, billed_failures, out, rows)


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


def review_bucket(scenario: Scenario, review_after_s: float | None) -> int:
    """The review's bucket: ``review_after_s`` (default a third of the horizon) rounded to a
    bucket, strictly inside the horizon. A `ScenarioError` when it is not."""
    horizon, res = scenario.horizon_s, scenario.resolution_s
    if scenario.buckets < 2:
        raise ScenarioError(
            f"--review-after: the horizon ({format_duration(horizon)}) has one bucket; a review "
            "needs at least two (set a finer resolution)"
        )
    seconds = horizon * REVIEW_FRACTION if review_after_s is None else float(review_after_s)
    if not (math.isfinite(seconds) and 0 < seconds < horizon):
        raise ScenarioError(
            f"--review-after: expected a duration inside the horizon ({format_duration(horizon)})"
            f", got {format_duration(seconds) if math.isfinite(seconds) else seconds}"
        )
    return min(max(round(seconds / res), 1), scenario.buckets - 1)


@dataclass(frozen=True)
class _OptionsJob:
    """What every chunk of `run_compare`'s options shares (sent once to each worker)."""

    prep: Prepared  # the traffic plan and draws (any pricing's: traffic does not depend on it)
    plans: tuple[_Plan, ...]
    apis: dict[str, _Api]
    pools: dict[str, _Pool]
    base_costs: tuple[np.ndarray, ...]  # per pricing: every trial's class totals
    review: int
    billed: bool


@dataclass(frozen=True)
class _OptionsPart:
    """One chunk's rows of every plan's totals, of the first-period requests and unit cost."""

    totals: tuple[_Totals, ...]  # in the order of the plans
    first_requests: np.ndarray
    unit_first: np.ndarray


def _options_chunk(job: _OptionsJob, item: tuple[int, int, int]) -> _OptionsPart:
    """Every plan on one chunk of trials (its own traffic draws), block by block of
    ``BLOCK_TRIALS``; the result depends on the chunk alone."""
    chunk, start, n = item
    plan, bucket_s = job.prep.plan, job.prep.plan.bucket_s
    traffic = chunk_traffic(job.prep, chunk, n)
    base = [b[start : start + n] for b in job.base_costs]
    totals = tuple(_Totals.zeros(n) for _ in job.plans)
    first_requests = np.empty((n, len(job.prep.classes)))
    unit_first = np.zeros(n)
    for lo in range(0, n, BLOCK_TRIALS):
        rows = slice(lo, min(lo + BLOCK_TRIALS, n))
        blk = _Block.of(bucket_requests(plan, traffic, rows), job.review)
        for p, out in zip(job.plans, totals, strict=True):
            _plan_block(p, blk, job.apis, job.pools, base, bucket_s, job.billed, out, rows)
        first_requests[rows] = blk.first_req
        if base:
            share = _ratio(blk.first_req, blk.class_req)
            spent = (base[0][rows] * share).sum(axis=1)
            unit_first[rows] = _ratio(spent, first_requests[rows].sum(axis=1))
    return _OptionsPart(totals, first_requests, unit_first)


def run_compare(
    scenario: Scenario,
    model: FittedModel,
    review_after_s: float | None = None,
    progress: Progress | None = None,
    parallel: Parallel = SERIAL,
) -> Comparison:
    """Every deployment option (and the routed plan) on common random numbers; see the module.

    ``parallel``: where the chunks of trials run (`costsim.parallel`), the pricings' forecasts
    and then the options on them: on every core, or on a Dask cluster. The same numbers for
    any of them."""
    check_deployments(scenario)
    guard_memory(scenario, model, parallel)
    review = review_bucket(scenario, review_after_s)
    validate_against_model(scenario, tuple(model.classes))
    classes = (*model.classes, *scenario.mix.new_classes)  # as `prepare.prepare` orders them
    apis, pools, pricings = _options(scenario, classes)
    # the pricings' forecasts, then the options' chunks: a long comparison's worker processes
    # start now (their fork server imports this module, and with it the forecast's)
    parallel.start_processes_for(__name__, expected_seconds(scenario, model) * (len(pricings) + 1))
    runs: list[Prepared] = []
    base_costs: list[np.ndarray] = []
    for pricing in pricings:
        prep = prepare(_with_pricing(scenario, pricing), model, progress, parallel)
        totals, _ = simulate(prep, ALL_DRIVERS, "strata", progress=progress, parallel=parallel)
        _refuse_overflow(totals, classes)
        runs.append(prep)
        base_costs.append(totals)
    # the traffic plan does not depend on prices: any run's, or the scenario's own
    prep0 = runs[0] if runs else prepare(scenario, model, progress, parallel)
    plans = _plans(scenario, classes)
    n_total = scenario.trials
    acc = {p.name: _Totals.zeros(n_total) for p in plans}
    first_requests = np.empty((n_total, len(classes)))
    unit_first = np.zeros(n_total)
    bucket_s = prep0.plan.bucket_s
    billed = bool(scenario.reliability.billed_failures)
    shipped, _ = for_workers(prep0)  # its traffic plan: the units' bodies stay here
    job = _OptionsJob(shipped, tuple(plans), apis, pools, tuple(base_costs), review, billed)
    items = [
        (chunk, start, min(CHUNK_TRIALS, n_total - start))
        for chunk, start in enumerate(range(0, n_total, CHUNK_TRIALS))
    ]
    # chunks of trials on every core or a cluster, written back in order: the same numbers
    parts = parallel.map(_options_chunk, items, job, processes=True, meanwhile="threads")
    for (_, start, n), part in zip(items, parts, strict=True):
        rows = slice(start, start + n)
        for p, chunk_totals in zip(plans, part.totals, strict=True):
            acc[p.name].write(rows, chunk_totals)
        first_requests[rows] = part.first_requests
        unit_first[rows] = part.unit_first
        if progress is not None:
            progress("comparing options", start + n, n_total)
    options = tuple(_result(p, acc[p.name], pools) for p in plans)
    stats = compare({o.name: o.cost for o in options})
    features = first_requests if not base_costs else np.column_stack([first_requests, unit_first])
    rest_s = scenario.horizon_s - review * bucket_s
    flex = flexibility_value(
        np.column_stack([o.first for o in options]),
        np.column_stack([o.cost - o.first for o in options]),
        features,
        [o.switch_cost for o in options],
        [min(o.lead_time_s / rest_s, 1.0) for o in options],
    )
    return Comparison(
        scenario_name=scenario.path.name if scenario.path is not None else "<scenario>",
        scenario_hash=scenario_hash(scenario),
        seed=scenario.seed,
        trials=n_total,
        horizon_s=scenario.horizon_s,
        resolution_s=bucket_s,
        review_after_s=review * bucket_s,
        classes=classes,
        options=options,
        stats=stats,
        flexibility=flex,
        notes=_notes(options, review * bucket_s),
    )


def _result(plan: _Plan, t: _Totals, pools: dict[str, _Pool]) -> OptionResult:
    requests = float(t.requests.sum())
    has_pool = any(name in pools for name in plan.serve)
    hours = float(t.replica_hours.sum())
    return OptionResult(
        name=plan.name,
        kind=plan.kind,
        cost=t.cost,
        first=t.first,
        utilisation=(float(t.busy_hours.sum()) / hours if hours > 0 else 0.0) if has_pool else None,
        overflow_share=float(t.overflow.sum()) / requests if requests > 0 else 0.0,
        throttled_share=float(t.throttled.sum()) / requests if requests > 0 else 0.0,
        delayed_share=float(t.delayed.sum()) / requests if requests > 0 else 0.0,
        cold_starts=float(t.cold_starts.mean()) if has_pool else None,
        replica_hours=float(t.replica_hours.mean()) if has_pool else None,
        switch_cost=plan.switch_cost,
        lead_time_s=plan.lead_time_s,
    )


def _notes(options: tuple[OptionResult, ...], review_s: float) -> tuple[str, ...]:
    notes = [
        f"flexibility: the choice reviewed after {format_duration(review_s)} on what is known "
        "then (each class's requests and the unit cost so far; least-squares Monte Carlo, "
        "cross-fitted), paying the switch cost and lead time of the option left",
    ]
    for o in options:
        if o.throttled_share > 0.001:
            notes.append(
                f"{o.name}: {100 * o.throttled_share:.1f}% of requests throttled (dropped): its "
                "cost is for the requests it served"
            )
    return tuple(notes)


def plan_name(scenario: Scenario, name: str | None = None) -> str:
    """The option a forecast or a check reports as served: ``name``, else the routed plan
    (with ``route:``), else the first deployment."""
    names = [*scenario.deployments, *([ROUTED] if scenario.route is not None else [])]
    if name is None:
        return ROUTED if scenario.route is not None else names[0]
    if name not in names:
        raise ScenarioError(
            f"--deployment: no option {name!r} in {scenario.path or 'the scenario'}; "
            f"expected one of {', '.join(names)}"
        )
    return name


def served_as(fc: Forecast, comparison: Comparison, name: str) -> Forecast:
    """The forecast with the cost of option ``name`` as its totals (quantiles, errors and
    percentiles recomputed on the same trials); per-class figures and the bridge stay the
    engine's, at the scenario's prices, and a note says so."""
    cost = comparison[name].cost
    qs, se, ci = quantiles_of(cost)
    note = (
        f"deployments: totals are the cost of serving the traffic as {name!r} (autoscaled pools, "
        "overflow, commitments); the per-class figures are at the scenario's token prices; "
        "`costsim compare` shows every option"
    )
    return replace(
        fc,
        totals=cost,
        quantiles=qs,
        quantile_se=se,
        quantile_ci=ci,
        percentiles=np.quantile(cost, np.linspace(0.0, 1.0, 101)),
        notes=(*fc.notes, note),
        deployment=name,
    )
