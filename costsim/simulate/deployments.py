"""Deployment options: the pure numerical core (issue 10).

Arrays in, frozen dataclasses out; nothing here prints, reads a file or draws a random number.
Every function works on the per-bucket *expected* requests of a block of trials (design §4,
traffic layer: intensities, never individual requests) and is vectorised across trials:

- `autoscale` — the replicas an autoscaler keeps running, bucket by bucket;
- `provisioned` — what a pool of GPU replicas costs and what it cannot serve (overflow to
  another option, or throttled);
- `rate_limit` — what an API's requests-per-minute limit delays and how many extra attempts
  that makes;
- `batch_price_factor` — the price multiplier of a batch discount;
- `compare` — per-option cost statistics on common random numbers: quantiles, P(cheapest),
  regret;
- `flexibility_value` — the value of keeping the choice open until a review (least-squares
  Monte Carlo with cross-fitting).

Time model
----------
Traffic is a *fluid*: within a bucket, requests arrive at a constant rate (the bucket's expected
requests over its length). The autoscaler works on *fractional replicas* (a fluid too) unless
``whole=True`` rounds each bucket's target up to whole replicas. Because a delay need not be a
multiple of the bucket, replica levels change inside buckets; they are piecewise constant on at
most four sub-intervals per bucket (offsets 0, the fractional parts of the two delays, and of
their sum), and every figure is integrated exactly over those sub-intervals. Buckets and delays
are resolved to a millisecond. There is no Python loop over trials, buckets or requests: the
sequential parts are sliding-window extremes (`scipy.ndimage`, O(trials x buckets) whatever the
window) and a cumulative minimum (the rate-limit queue); the only loops run over the (at most
four) sub-intervals, the cross-fitting folds and the regression features. Memory is a few arrays
of trials x buckets x sub-intervals; callers pass blocks of trials to bound it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from ..errors import ForecastError, ScenarioError

__all__ = [
    "CompareStats",
    "Flexibility",
    "OptionStats",
    "ProvisionedResult",
    "RateLimited",
    "Replicas",
    "autoscale",
    "batch_price_factor",
    "compare",
    "flexibility_value",
    "provisioned",
    "rate_limit",
]

_TICK_S = 1e-3  # buckets and delays are resolved to a millisecond
_HOUR = 3600.0


# ---------------------------------------------------------------------------------------------
# Argument checks (the scenario's declaration validates first; these guard direct callers)
# ---------------------------------------------------------------------------------------------


def _finite_at_least(name: str, value: float, low: float) -> float:
    v = float(value)
    if not (math.isfinite(v) and v >= low):
        raise ScenarioError(f"{name}: expected a finite number >= {low:g}, got {value!r}")
    return v


def _array(name: str, a: ArrayLike, ndim: int) -> np.ndarray:
    arr = np.asarray(a, dtype=float)
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ScenarioError(f"{name}: expected finite values >= 0")
    return arr


# ---------------------------------------------------------------------------------------------
# Autoscaler
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replicas:
    """Replica paths of an autoscaled pool, (trials, buckets) each, time-averaged in a bucket.

    ``billed`` counts every replica that exists (paid from launch, model loading included);
    ``serving`` those that have finished starting; ``starts`` the replicas launched in the
    bucket (each starts cold).
    """

    billed: np.ndarray
    serving: np.ndarray
    starts: np.ndarray


@dataclass(frozen=True)
class _Pieces:
    """Replica levels on the sub-intervals of each bucket: ``share`` (p,) sums to 1;
    ``billed`` and ``serving`` are (trials, buckets, p); ``starts`` (trials, buckets)."""

    share: np.ndarray
    billed: np.ndarray
    serving: np.ndarray
    starts: np.ndarray


def _sliding(values: np.ndarray, n: int, initial: np.ndarray, op: str) -> np.ndarray:
    """Max or min along axis 1 over the window of ``n`` entries ending at each entry; entries
    before the first are ``initial`` (one per row). O(rows x columns) whatever ``n``."""
    rows, cols = values.shape
    n = min(n, cols + 1)  # a longer window sees all of the past and the initial level
    if n <= 1:
        return values.copy()
    pad = np.broadcast_to(initial[:, None], (rows, n - 1))
    padded = np.concatenate([pad, values], axis=1)
    extreme = ndimage.maximum_filter1d if op == "max" else ndimage.minimum_filter1d
    out = extreme(padded, size=n, axis=1, mode="nearest")
    # scipy centres the window: output j covers inputs [j - n//2, j - n//2 + n - 1]
    h = n // 2
    return np.asarray(out[:, h : h + cols])


def _ticks(seconds: float) -> int:
    """A duration in ticks of `_TICK_S` (integer arithmetic from here on)."""
    return round(seconds / _TICK_S)


def _scale_pieces(
    demand: np.ndarray,
    bucket_s: float,
    r_min: float,
    r_max: float,
    scale_up_delay_s: float,
    scale_down_after_s: float,
    whole: bool,
    initial: ArrayLike | None,
) -> _Pieces:
    """The autoscaler on the sub-intervals of each bucket (see `autoscale` for the model).

    Time is counted in integer ticks of `_TICK_S`; sub-interval midpoints in half ticks, so every
    window edge falls strictly inside a piece of the level it reads (exact integer maths).
    """
    n_trials, n_buckets = demand.shape
    if r_min >= r_max and initial is None:  # a fixed pool: nothing to scale, nothing starts
        level = np.full((n_trials, n_buckets, 1), float(r_min))
        return _Pieces(np.ones(1), level, level, np.zeros((n_trials, n_buckets)))
    target = np.ceil(demand - 1e-9) if whole else demand
    target = np.clip(target, r_min, r_max)
    if initial is None:
        init = target[:, 0].copy() if target.shape[1] else np.full(n_trials, r_min)
    else:
        init = np.clip(np.broadcast_to(np.asarray(initial, dtype=float), (n_trials,)), r_min, r_max)
    res = max(1, _ticks(bucket_s))  # ticks per bucket
    down = _ticks(scale_down_after_s)
    up = _ticks(scale_up_delay_s)
    f, g = down % res, up % res
    offs = sorted({0, f, g, (f + g) % res})  # where levels may change inside a bucket
    lengths = np.diff([*offs, res])
    mids = [2 * o + int(n) for o, n in zip(offs, lengths, strict=True)]  # half ticks
    w_offs = sorted({0, f})  # where the wanted level may change inside a bucket
    w_mids = [2 * o + int(n) for o, n in zip(w_offs, np.diff([*w_offs, res]), strict=True)]

    highest: dict[int, np.ndarray] = {}  # by window length: pieces often share one

    def wanted(mid2: int) -> np.ndarray:
        # highest target over (t - down, t]: buckets floor((t - down)/bucket) .. b
        n = 1 - ((mid2 - 2 * down) // (2 * res))
        if n not in highest:
            highest[n] = _sliding(target, n, init, "max")
        return highest[n]

    # the wanted level on its own pieces, flattened in time order: (trials, buckets x pw)
    pw = len(w_offs)
    w_seq = np.stack([wanted(m) for m in w_mids], axis=2).reshape(n_trials, -1)

    def serving(mid2: int) -> np.ndarray:
        # lowest wanted level over [t - up, t]: the replicas up for at least `up` (LIFO)
        start2 = mid2 - 2 * up
        bucket_back = start2 // (2 * res)  # <= 0
        within = (start2 - bucket_back * 2 * res) // 2
        p_start = int(np.searchsorted(w_offs, within, side="right")) - 1
        p_end = int(np.searchsorted(w_offs, mid2 // 2, side="right")) - 1
        n = pw * (-bucket_back) + p_end - p_start + 1
        if n not in lowest:
            lowest[n] = _sliding(w_seq, n, init, "min")
        return lowest[n][:, p_end::pw]

    lowest: dict[int, np.ndarray] = {}

    billed = np.stack([wanted(m) for m in mids], axis=2)
    served = np.stack([serving(m) for m in mids], axis=2)
    previous = np.concatenate([init[:, None], w_seq[:, :-1]], axis=1)
    starts = np.maximum(w_seq - previous, 0.0).reshape(n_trials, -1, pw).sum(axis=2)
    return _Pieces(lengths / res, billed, served, starts)


def _check_scaling(
    bucket_s: float, r_min: float, r_max: float, up_s: float, down_s: float
) -> tuple[float, float]:
    if not (math.isfinite(bucket_s) and bucket_s > 0):
        raise ScenarioError(f"bucket_s: expected a finite number > 0, got {bucket_s!r}")
    lo = _finite_at_least("replicas.min", r_min, 0.0)
    hi = float(r_max)
    if math.isnan(hi) or hi < lo:
        raise ScenarioError(
            f"replicas.max: expected a number >= replicas.min ({lo:g}), got {r_max!r}"
        )
    _finite_at_least("autoscale.scale_up_delay", up_s, 0.0)
    _finite_at_least("autoscale.scale_down_after", down_s, 0.0)
    return lo, hi


def autoscale(
    demand: ArrayLike,
    bucket_s: float,
    r_min: float,
    r_max: float,
    scale_up_delay_s: float,
    scale_down_after_s: float,
    *,
    whole: bool = False,
    initial: ArrayLike | None = None,
) -> Replicas:
    """Replicas an autoscaler runs, given the replicas wanted in each bucket.

    ``demand`` is (trials, buckets): the replicas the load asks for, i.e. load / (throughput x
    target utilisation). The model, in continuous time over piecewise-constant demand:

    - *wanted* w(t) = the highest demand over the last ``scale_down_after_s`` (the level drops
      only once demand has stayed lower that long — Kubernetes' scale-down stabilisation
      window), clipped to [``r_min``, ``r_max``]; rises are ordered at once;
    - *billed* = w(t): a replica is paid from launch;
    - *serving* s(t) = min of w over [t - ``scale_up_delay_s``, t]: a replica serves once it
      has been up for the delay (a cold start); scale-down removes the newest first, so the
      replicas still starting go first;
    - *starts* = the rises of w: every launched replica starts cold.

    Replicas are a fluid (fractional) unless ``whole`` rounds each bucket's demand up. Before
    the horizon the pool runs ``initial`` replicas (default: the first bucket's target, i.e. it
    starts warm). With zero delays and ``r_max = inf``, billed == serving == demand clipped at
    ``r_min``. Bucket figures are exact time averages over the bucket.
    """
    d = _array("demand", demand, 2)
    lo, hi = _check_scaling(bucket_s, r_min, r_max, scale_up_delay_s, scale_down_after_s)
    p = _scale_pieces(d, bucket_s, lo, hi, scale_up_delay_s, scale_down_after_s, whole, initial)
    return Replicas(p.billed @ p.share, p.serving @ p.share, p.starts)


# ---------------------------------------------------------------------------------------------
# Provisioned GPUs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProvisionedResult:
    """What a provisioned pool costs and does, per trial (one row per trial).

    ``cost`` in dollars: committed replicas x horizon x committed price + replica-hours above
    the commitment x on-demand price. ``replica_hours`` all billed replica-hours (committed ones
    included, whether used or not). ``utilisation`` = served load / serving capacity (replica
    time that had finished starting; 0 without capacity). ``unserved`` (trials, classes) are the
    requests above capacity, which are ``overflow`` (sent to the overflow option; the caller
    bills them there) or ``throttled`` (dropped); the other of the two is zero. ``*_share`` are
    those over the requests routed here, per class and in total (0 for a class with none).
    ``cold_starts`` counts replica launches. ``unserved_fraction`` (trials, buckets) is the share
    of each bucket's requests not served (the same for every class), for a caller that needs
    overflow per bucket (e.g. to rate-limit it at an API). ``replicas`` holds the paths.
    """

    cost: np.ndarray
    replica_hours: np.ndarray
    on_demand_hours: np.ndarray
    utilisation: np.ndarray
    overflow: np.ndarray
    throttled: np.ndarray
    overflow_share: np.ndarray
    overflow_share_total: np.ndarray
    throttled_share: np.ndarray
    throttled_share_total: np.ndarray
    cold_starts: np.ndarray
    unserved_fraction: np.ndarray
    replicas: Replicas


def provisioned(
    requests: ArrayLike,
    bucket_s: float,
    throughput: ArrayLike,
    *,
    gpu_hour_usd: float,
    r_min: float,
    r_max: float = math.inf,
    target_utilization: float = 1.0,
    scale_up_delay_s: float = 0.0,
    scale_down_after_s: float = 0.0,
    throttle: bool = False,
    commitment_replicas: float = 0.0,
    commitment_gpu_hour_usd: float = 0.0,
    whole: bool = False,
    initial: ArrayLike | None = None,
) -> ProvisionedResult:
    """Serve ``requests`` (trials, buckets, classes: expected requests per bucket routed here)
    on an autoscaled pool of replicas.

    ``throughput`` (classes,) is the requests/second one replica sustains for each class (at
    its latency target), so a class's load is requests / throughput replica-seconds: a class at
    2 req/s uses ten times the capacity of one at 20. The autoscaler (`autoscale`) aims at
    load / ``target_utilization`` replicas; a replica serves up to its full throughput, and
    the load above the serving capacity — integrated over each bucket's sub-intervals, arrivals
    uniform in a bucket — is unserved, shared between classes in proportion to their requests:
    ``overflow`` to another option, or dropped when ``throttle``.

    ``commitment_replicas`` are reserved for the whole horizon at ``commitment_gpu_hour_usd``
    and paid whether used or not; being paid for anyway they always run, so the pool's floor is
    raised to them (and its ceiling, if the commitment exceeds it). Replicas above the
    commitment cost ``gpu_hour_usd`` per replica-hour. The horizon is buckets x ``bucket_s``.
    """
    req = _array("requests", requests, 3)
    thr = np.asarray(throughput, dtype=float).reshape(-1)
    if thr.shape != (req.shape[2],):
        raise ValueError(
            f"throughput: expected one value per class ({req.shape[2]}), got shape {thr.shape}"
        )
    if not np.all(np.isfinite(thr) & (thr > 0)):
        raise ScenarioError(f"throughput: expected requests/second > 0, got {thr.tolist()}")
    price = _finite_at_least("gpu_hour_usd", gpu_hour_usd, 0.0)
    committed = _finite_at_least("commitment.replicas", commitment_replicas, 0.0)
    committed_price = _finite_at_least("commitment.gpu_hour_usd", commitment_gpu_hour_usd, 0.0)
    util = float(target_utilization)
    if not (0.0 < util <= 1.0):
        raise ScenarioError(
            f"autoscale.target_utilization: expected a number in (0, 1], got {target_utilization!r}"
        )
    lo, hi = _check_scaling(bucket_s, r_min, r_max, scale_up_delay_s, scale_down_after_s)
    lo = max(lo, committed)
    hi = max(hi, lo)

    n_trials, n_buckets, _ = req.shape
    work = req @ (1.0 / thr)  # (trials, buckets): replica-seconds at full throughput
    demand = work / (bucket_s * util)
    p = _scale_pieces(
        demand, bucket_s, lo, hi, scale_up_delay_s, scale_down_after_s, whole, initial
    )
    capacity = p.serving * bucket_s  # replica-seconds each sub-interval would give over a bucket
    short = np.maximum(work[:, :, None] - capacity, 0.0) @ p.share  # unserved replica-seconds
    with np.errstate(invalid="ignore", divide="ignore"):
        unserved_fraction = np.where(work > 0, short / work, 0.0)
    unserved_fraction = np.clip(unserved_fraction, 0.0, 1.0)
    unserved = np.einsum("tbc,tb->tc", req, unserved_fraction)
    served_work = (work * (1.0 - unserved_fraction)).sum(axis=1)
    serving_avg = p.serving @ p.share  # (trials, buckets): time-averaged over each bucket
    billed_avg = p.billed @ p.share
    serving_s = serving_avg.sum(axis=1) * bucket_s
    utilisation = np.where(serving_s > 0, served_work / np.where(serving_s > 0, serving_s, 1), 0.0)

    hours = bucket_s / _HOUR
    replica_hours = billed_avg.sum(axis=1) * hours
    above = billed_avg if committed == 0 else np.maximum(p.billed - committed, 0.0) @ p.share
    on_demand_hours = above.sum(axis=1) * hours
    horizon_h = n_buckets * hours
    cost = committed * horizon_h * committed_price + on_demand_hours * price

    per_class = req.sum(axis=1)
    total = per_class.sum(axis=1)
    share = _safe_ratio(unserved, per_class)
    share_total = _safe_ratio(unserved.sum(axis=1), total)
    zeros2, zeros1 = np.zeros_like(unserved), np.zeros(n_trials)
    return ProvisionedResult(
        cost=cost,
        replica_hours=replica_hours,
        on_demand_hours=on_demand_hours,
        utilisation=utilisation,
        overflow=zeros2 if throttle else unserved,
        throttled=unserved if throttle else zeros2,
        overflow_share=zeros2 if throttle else share,
        overflow_share_total=zeros1 if throttle else share_total,
        throttled_share=share if throttle else zeros2,
        throttled_share_total=share_total if throttle else zeros1,
        cold_starts=p.starts.sum(axis=1),
        unserved_fraction=unserved_fraction,
        replicas=Replicas(billed_avg, serving_avg, p.starts),
    )


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0."""
    return np.asarray(np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0))


# ---------------------------------------------------------------------------------------------
# API options: rate limits and batch discounts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateLimited:
    """An API rate limit applied to a block of trials.

    ``delayed_share`` (trials, buckets): share of each bucket's requests not served in their
    own bucket. ``delayed`` (trials,): requests delayed. ``attempts_factor`` (trials,):
    attempts per request, (requests + delayed) / requests — each delayed request makes one
    extra, rejected attempt (the caller bills it or not per the reliability block).
    ``backlog_end`` (trials,): requests still waiting when the horizon ends.
    """

    delayed_share: np.ndarray
    delayed: np.ndarray
    attempts_factor: np.ndarray
    backlog_end: np.ndarray


def rate_limit(
    requests_total: ArrayLike, bucket_s: float, requests_per_minute: float
) -> RateLimited:
    """Requests above ``requests_per_minute`` wait and are served later, as spare rate allows.

    ``requests_total`` is (trials, buckets): all requests sent to the API per bucket. A fluid
    queue at bucket resolution: each bucket serves at most rpm x bucket/60 requests, the backlog
    first, so the queue after bucket b is the Lindley recursion q_b = max(0, q_(b-1) + R_b - cap),
    solved without a loop as q_b = S_b - min(0, min_(k≤b) S_k), S the cumulative excess. The
    requests of bucket b not served in it are min(R_b, q_b). The limit applies to each bucket's
    average rate: bursts shorter than a bucket are not seen (use buckets of a minute or so when
    the limit binds only at peaks).
    """
    r = _array("requests_total", requests_total, 2)
    if not (math.isfinite(bucket_s) and bucket_s > 0):
        raise ScenarioError(f"bucket_s: expected a finite number > 0, got {bucket_s!r}")
    rpm = float(requests_per_minute)
    if math.isnan(rpm) or rpm <= 0:
        raise ScenarioError(
            f"rate_limit.requests_per_minute: expected a number > 0, got {requests_per_minute!r}"
        )
    cap = rpm * bucket_s / 60.0
    s = np.cumsum(r - cap, axis=1)
    queue = s - np.minimum(np.minimum.accumulate(s, axis=1), 0.0)
    queue = np.maximum(queue, 0.0)  # rounding
    delayed_b = np.minimum(r, queue)
    total = r.sum(axis=1)
    delayed = delayed_b.sum(axis=1)
    return RateLimited(
        delayed_share=_safe_ratio(delayed_b, r),
        delayed=delayed,
        attempts_factor=1.0 + _safe_ratio(delayed, total),
        backlog_end=queue[:, -1] if r.shape[1] else np.zeros(r.shape[0]),
    )


def batch_price_factor(discount: float) -> float:
    """Price multiplier of a batch class: 1 - ``discount`` (``discount`` in [0, 1])."""
    d = float(discount)
    if not (0.0 <= d <= 1.0):
        raise ScenarioError(f"batch.discount: expected a number in [0, 1], got {discount!r}")
    return 1.0 - d


# ---------------------------------------------------------------------------------------------
# Comparing options on common random numbers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OptionStats:
    """One option's per-trial cost summarised. ``p_cheapest`` splits ties evenly;
    ``p_cheapest_se`` is its binomial standard error; regret is cost - the trial's cheapest."""

    name: str
    p5: float
    p50: float
    p95: float
    mean: float
    p_cheapest: float
    p_cheapest_se: float
    expected_regret: float
    regret_p95: float


@dataclass(frozen=True)
class CompareStats:
    """`compare`'s result: ``options`` in the order given; ``regret`` and ``win`` are
    (trials, options): the regret of each option in each trial, and its share of the trial's
    win (1 / number tied for cheapest, else 0)."""

    names: tuple[str, ...]
    options: tuple[OptionStats, ...]
    regret: np.ndarray
    win: np.ndarray

    def __getitem__(self, name: str) -> OptionStats:
        return self.options[self.names.index(name)]


def compare(costs: Mapping[str, ArrayLike]) -> CompareStats:
    """Statistics of per-trial option costs simulated on common random numbers (trial t of
    every option saw the same traffic), so differences are the options', not noise's.

    Quantiles are numpy's default (linear) sample quantiles.
    """
    if not costs:
        raise ValueError("costs: expected at least one option")
    names = tuple(costs)
    cols = [np.asarray(costs[n], dtype=float).reshape(-1) for n in names]
    n = cols[0].size
    if n == 0 or any(c.size != n for c in cols):
        sizes = {k: c.size for k, c in zip(names, cols, strict=True)}
        raise ValueError(
            f"costs: expected the same number (>= 1) of trials per option, got {sizes}"
        )
    c = np.stack(cols, axis=1)
    if not np.all(np.isfinite(c)):
        bad = [k for k, col in zip(names, cols, strict=True) if not np.all(np.isfinite(col))]
        raise ForecastError(f"costs of {', '.join(bad)}: not finite in some trials")
    best = c.min(axis=1, keepdims=True)
    regret = c - best
    is_min = c == best
    win = is_min / is_min.sum(axis=1, keepdims=True)
    q = np.quantile(c, [0.05, 0.5, 0.95], axis=0)
    rq = np.quantile(regret, 0.95, axis=0)
    p = win.mean(axis=0)
    options = tuple(
        OptionStats(
            name=k,
            p5=float(q[0, i]),
            p50=float(q[1, i]),
            p95=float(q[2, i]),
            mean=float(c[:, i].mean()),
            p_cheapest=float(p[i]),
            p_cheapest_se=float(np.sqrt(p[i] * (1.0 - p[i]) / n)),
            expected_regret=float(regret[:, i].mean()),
            regret_p95=float(rq[i]),
        )
        for i, k in enumerate(names)
    )
    return CompareStats(names, options, regret, win)


# ---------------------------------------------------------------------------------------------
# The value of keeping the choice open
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flexibility:
    """`flexibility_value`'s result, one entry per option (the option started in).

    ``value``: dollars a flexible start in the option saves over committing to it now,
    max(0, commit - flexible). ``value_se``: standard error of the (unclipped) mean saving.
    ``clairvoyant``: the same with the review seeing the future — an upper bound, never
    reachable. ``commit`` and ``flexible``: mean costs. ``switch_share``: share of trials that
    switch at the review; ``switch_to`` (options, options): share going from i to j.
    """

    value: np.ndarray
    value_se: np.ndarray
    clairvoyant: np.ndarray
    commit: np.ndarray
    flexible: np.ndarray
    switch_share: np.ndarray
    switch_to: np.ndarray


def _n_basis(n_features: int, degree: int) -> int:
    return (
        1
        + (n_features if degree >= 1 else 0)
        + (n_features * (n_features + 1) // 2 if degree >= 2 else 0)
    )


def _basis(z: np.ndarray, degree: int) -> np.ndarray:
    """1, z_i and (degree 2) z_i z_j for i ≤ j: a small polynomial basis."""
    cols = [np.ones(z.shape[0])]
    f = z.shape[1]
    if degree >= 1:
        cols += [z[:, i] for i in range(f)]
    if degree >= 2:
        cols += [z[:, i] * z[:, j] for i in range(f) for j in range(i, f)]
    return np.stack(cols, axis=1)


def _cross_fitted(features: np.ndarray, target: np.ndarray, degree: int, folds: int) -> np.ndarray:
    """Predictions of every column of ``target`` from ``features``, each trial's from a fit on
    the other folds (fold = trial index mod ``folds``)."""
    n = features.shape[0]
    fold = np.arange(n) % folds
    pred = np.empty_like(target)
    for k in range(folds):
        train, test = fold != k, fold == k
        x = features[train]
        mu, sd = x.mean(axis=0), x.std(axis=0)
        keep = sd > 1e-12 * np.maximum(1.0, np.abs(mu))  # constant features carry nothing
        deg = degree
        while deg > 0 and _n_basis(int(keep.sum()), deg) * 10 > int(train.sum()):
            deg -= 1  # at least ten training trials per coefficient
        z_train = (x[:, keep] - mu[keep]) / sd[keep]
        z_test = (features[test][:, keep] - mu[keep]) / sd[keep]
        coef, *_ = np.linalg.lstsq(_basis(z_train, deg), target[train], rcond=None)
        pred[test] = _basis(z_test, deg) @ coef
    return pred


def _outcomes(
    first: np.ndarray, rest: np.ndarray, switch_cost: np.ndarray, lead: np.ndarray
) -> np.ndarray:
    """(trials, i, j): total cost starting in i and being in j after the review."""
    out = (
        first[:, :, None]
        + switch_cost[None, :, None]
        + lead[None, :, None] * rest[:, :, None]
        + (1.0 - lead)[None, :, None] * rest[:, None, :]
    )
    k = first.shape[1]
    diag = np.arange(k)
    out[:, diag, diag] = first + rest
    return out


def _choose(predicted: np.ndarray) -> np.ndarray:
    """(trials, i): the j with the lowest predicted cost from i; staying unless strictly worse."""
    k = predicted.shape[1]
    diag = np.arange(k)
    best = predicted.argmin(axis=2)
    stay_cost = predicted[:, diag, diag]
    best_cost = np.take_along_axis(predicted, best[:, :, None], axis=2)[:, :, 0]
    return np.where(best_cost < stay_cost, best, diag[None, :])


def flexibility_value(
    first: ArrayLike,
    rest: ArrayLike,
    features: ArrayLike,
    switch_cost: ArrayLike,
    lead_fraction: ArrayLike,
    *,
    degree: int = 2,
    folds: int = 2,
) -> Flexibility:
    """The value of keeping the deployment choice open until a review, per option.

    ``first[t, k]``, ``rest[t, k]``: option k's cost in trial t before and after the review
    (common random numbers across options). ``features[t, f]``: what the review observes in
    trial t (e.g. first-period requests per class, unit cost). Leaving option i at the review
    costs ``switch_cost[i]``, and for ``lead_fraction[i]`` of the rest period i is still paid:
    first_i + lead_i·rest_i + (1 - lead_i)·rest_j + switch_i.

    Committing to i costs first_i + rest_i. The flexible policy started in i chooses, at the
    review, the j with the lowest *predicted* remaining cost, the predictions of each rest_k
    coming from least-squares Monte Carlo (Longstaff-Schwartz): a regression of the realised
    rest_k on a polynomial of the standardised features (degree ``degree``, lowered until
    there are ten training trials per coefficient). The regressions are cross-fitted: trials
    are split into ``folds`` by index (trial mod folds; trials are exchangeable, so no random
    split is needed) and each trial's decision uses a fit on the other folds, so its own future
    does not leak into it — a clairvoyant decision overstates the value, and is returned as an
    upper bound. The realised cost of the decision is then averaged.

    The policy is a feasible, not necessarily optimal, rule, so its saving is a lower bound in
    expectation; staying is always allowed, so a negative estimate (the rule's switches did not
    pay) is reported as 0.
    """
    a = np.asarray(first, dtype=float)
    b = np.asarray(rest, dtype=float)
    x = np.asarray(features, dtype=float)
    if a.ndim != 2 or b.shape != a.shape:
        raise ValueError(
            f"first, rest: expected two (trials, options) arrays, got {a.shape}, {b.shape}"
        )
    n, k = a.shape
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] != n:
        raise ValueError(f"features: expected ({n}, features), got shape {x.shape}")
    sw = np.broadcast_to(np.asarray(switch_cost, dtype=float), (k,))
    lead = np.broadcast_to(np.asarray(lead_fraction, dtype=float), (k,))
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and np.all(np.isfinite(x))):
        raise ForecastError("first, rest, features: not finite in some trials")
    if np.any(~np.isfinite(sw) | (sw < 0)):
        raise ScenarioError(f"switch.cost: expected numbers >= 0, got {sw.tolist()}")
    if np.any(~np.isfinite(lead) | (lead < 0) | (lead > 1)):
        raise ScenarioError(
            f"switch.lead_time: expected fractions of the rest in [0, 1], got {lead.tolist()}"
        )
    if folds < 2 or n < 2 * folds:
        raise ValueError(f"folds: expected 2 <= folds <= trials / 2, got {folds} for {n} trials")
    if degree < 0:
        raise ValueError(f"degree: expected >= 0, got {degree}")

    outcome = _outcomes(a, b, sw, lead)
    predicted_rest = _cross_fitted(x, b, degree, folds)
    # the predicted total differs from the predicted remaining cost only by first_i, the same
    # for every j, so choosing on it is choosing on the predicted remaining cost
    choice = _choose(_outcomes(a, predicted_rest, sw, lead))
    oracle = _choose(outcome)
    flex = np.take_along_axis(outcome, choice[:, :, None], axis=2)[:, :, 0]
    clair = np.take_along_axis(outcome, oracle[:, :, None], axis=2)[:, :, 0]
    commit = a + b
    saving = commit - flex
    moves = (choice[:, :, None] == np.arange(k)[None, None, :]).mean(axis=0)
    diag = np.arange(k)
    switch_to = moves.copy()
    switch_to[diag, diag] = 0.0
    return Flexibility(
        value=np.maximum(saving.mean(axis=0), 0.0),
        value_se=saving.std(axis=0, ddof=1) / np.sqrt(n),
        clairvoyant=(commit - clair).mean(axis=0),
        commit=commit.mean(axis=0),
        flexible=flex.mean(axis=0),
        switch_share=(choice != diag[None, :]).mean(axis=0),
        switch_to=switch_to,
    )
