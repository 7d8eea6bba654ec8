"""The fit's kernels made faster for the 200-class pilot (issue 11), against their former selves.

The per-class fit now runs in worker processes (``tests/test_fit_speed_processes.py``); on the
way a few of its kernels lost repeated work, and must give the same numbers to the last bit
(the model file is byte-identical):

* `tail.profile_sigma`'s score curve reuses one buffer for 1 / (1 + tau y) and its square, and
  its Newton loop checks the floating-point state once a step instead of per expression;
* `tail.profile_draws` and `tail.sigma_draws_given_xi` compute the likelihood at each profile
  maximum and a step either side of it in one blocked evaluation (a row's value does not depend
  on the rows computed with it), instead of one unblocked and two blocked ones;
* `fit.average_ranks` replaces ``scipy.stats.rankdata`` in the copula (the same half-integer
  ranks, without its checks and with an unstable sort: equal values share their rank anyway);
* `tail.has_candidates` replaces building `tail.candidate_counts` only to test it for size;
* `summaries.LogSummary.finish` trims the top values and the smallest unit costs of a class
  to what `sorted_top` and `smallest_units` read, so that a class's summary reaches a worker
  final.

This file keeps a frozen copy of the former tail kernels (``ref_*``) and checks, over seeded
exceedances (several shapes, sizes across the block boundaries, ties) and random streams, that
the results and the generator's state afterwards are equal.

Two later changes are not to the bit, and the comparisons allow for them:

* the likelihood's log1p terms come from `tail.gpd.log1p` (NumPy's vectorised log, corrected
  for the rounding of 1 + x: within an ulp of ``np.log1p``, checked below), so a
  log-likelihood of k terms moves by up to about k ulps of its largest term;
* the Laplace variance of log sigma in the draws is 1 / the likelihood's exact curvature at the
  profile maximum (one pass without logs), no longer a central difference with h = 0.02 (two
  more passes of log1p). The frozen draws use that exact curvature too, written out plainly
  (``ref_curvature``); that it is the second derivative is checked against the frozen
  likelihood by Richardson-extrapolated differences. Where the old difference stepped outside
  the support (xi near -0.5, sigma near -xi max(y)) it fell back to 1 / k; the exact value is
  the likelihood's own there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from functools import partial

import numpy as np
import pytest
from scipy import stats

from costsim.model import tail
from costsim.model.fit import average_ranks
from costsim.model.summaries import ClassSummary, LogSummary, SummarySpec
from costsim.model.summaries.limits import LOW_ROWS, TOP_ROWS
from costsim.model.tail import N_DRAWS, XI_MAX, XI_MIN, TailFit, gpd
from costsim.model.tail.gpd import _BLOCK_VALUES, _SCORE_TABLE, _SIGMA_TOL, _XI_ZERO, _score_bracket
from costsim.model.tail.uncertainty import _crossing

SEED = 20261128
SHAPES = (-0.4, -0.1, 0.0, 0.2, 0.6, 1.3)
# around the block boundaries: 81 rows fit one block up to 202 values, 243 rows up to 67
SIZES = (8, 30, 67, 68, 120, 202, 203, 243, 800, 2000)

# ---------------------------------------------------------------------------------------------
# The reference: tail.py's profile likelihood before this change (frozen copy)
# ---------------------------------------------------------------------------------------------


def ref_profile_sigma(
    y: np.ndarray, xis: np.ndarray, sigma_hint: float | None = None, iters: int = 34
) -> tuple[np.ndarray, np.ndarray]:
    xis = np.asarray(xis, dtype=float)
    y_max = float(y.max())
    regular = (xis > -1.0) & (xis != 0.0)
    lo, hi = _score_bracket(xis, y.size, y_max / max(float(y.min()), 1e-300 * y_max))
    target = -np.log1p(np.where(regular, xis, 0.0))
    t = np.zeros_like(xis)
    if regular.any():
        t[regular] = ref_score_start(y, lo[regular], hi[regular], target[regular])
    rows = max(1, _BLOCK_VALUES // max(y.size, 1))
    curve = partial(ref_score_curve, y)
    for i in range(0, xis.size, rows):
        b = slice(i, i + rows)
        t[b] = ref_score_newton(curve, t[b], lo[b], hi[b], target[b], regular[b], iters)
    tau = np.expm1(t) / y_max
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.where(regular, xis / tau, np.where(xis == 0.0, float(y.mean()), 0.0))
    sigma = np.where(xis <= -1.0, -xis * y_max * np.exp(1e-12), sigma)
    return sigma, ref_loglik_rows(y, xis, np.log(sigma))


def ref_score_curve(y: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_max = float(y.max())
    tau = np.expm1(t) / y_max
    inv = 1.0 / (1.0 + tau[:, None] * y[None, :])
    c = tau * (inv @ y) / y.size
    dc = ((inv * inv) @ y) / y.size  # dC / dtau
    return np.log1p(-c), -dc / (1.0 - c) * np.exp(t) / y_max


def ref_score_start(
    y: np.ndarray, lo: np.ndarray, hi: np.ndarray, target: np.ndarray
) -> np.ndarray:
    grid = np.linspace(float(lo.min()), float(hi.max()), _SCORE_TABLE)
    d, slope = ref_score_curve(y, grid)
    d, grid, m = d[::-1], grid[::-1], 1.0 / slope[::-1]  # D decreases: increasing order
    j = np.clip(np.searchsorted(d, target) - 1, 0, d.size - 2)
    h = d[j + 1] - d[j]
    u = np.clip((target - d[j]) / h, 0.0, 1.0)
    t = (
        (2 * u**3 - 3 * u**2 + 1) * grid[j]
        + (u**3 - 2 * u**2 + u) * h * m[j]
        + (-2 * u**3 + 3 * u**2) * grid[j + 1]
        + (u**3 - u**2) * h * m[j + 1]
    )
    return np.asarray(np.clip(t, lo, hi))


def ref_score_newton(
    curve: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    t: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    target: np.ndarray,
    active: np.ndarray,
    iters: int,
) -> np.ndarray:
    done = ~active
    for _ in range(iters):
        if done.all():
            break
        d, slope = curve(t)
        r = d - target
        lo, hi = np.where(r > 0, t, lo), np.where(r > 0, hi, t)  # D decreases
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = t - r / slope
        accept = (newton >= lo) & (newton <= hi)
        step = np.where(done, 0.0, np.where(accept, newton, 0.5 * (lo + hi)) - t)
        t = t + step
        done = done | (np.abs(step) <= _SIGMA_TOL * np.abs(t)) | (hi - lo <= _SIGMA_TOL * np.abs(t))
    return t


def ref_loglik_rows(y: np.ndarray, xis: np.ndarray, log_sigma: np.ndarray) -> np.ndarray:
    small = np.abs(xis) < _XI_ZERO
    safe = np.where(small, 1.0, xis)
    sigma = np.exp(log_sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log1p((safe / sigma)[:, None] * y[None, :]).sum(axis=1)
        ll = -y.size * log_sigma - np.where(small, y.sum() / sigma, (1.0 + 1.0 / safe) * logs)
    outside = ~small & (safe * float(y.max()) / sigma <= -1.0)
    return np.asarray(np.where(outside | ~np.isfinite(ll), -np.inf, ll), dtype=float)


def ref_curvature(y: np.ndarray, xis: np.ndarray, log_sigma: np.ndarray) -> np.ndarray:
    """-d2l/d(log sigma)^2 = (1 + xi) / sigma * sum(y / (1 + xi y / sigma)^2), row by row."""
    sigma = np.exp(log_sigma)
    out = np.empty(xis.size)
    for i, (xi, s) in enumerate(zip(xis, sigma, strict=True)):
        with np.errstate(divide="ignore", invalid="ignore"):
            out[i] = (1.0 + xi) / s * np.sum(y / (1.0 + xi * y / s) ** 2)
    return out


def ref_variance(y: np.ndarray, xis: np.ndarray, log_sigma: np.ndarray) -> np.ndarray:
    curvature = ref_curvature(y, xis, log_sigma)
    return np.where(np.isfinite(curvature) & (curvature > 0), 1.0 / curvature, 1.0 / y.size)


def ref_profile_draws(
    y: np.ndarray,
    xi_hat: float,
    sigma_hat: float,
    rng: np.random.Generator,
    n_draws: int = N_DRAWS,
) -> tuple[tuple[float, float], np.ndarray, np.ndarray]:
    se = (1.0 + max(xi_hat, 0.0)) / np.sqrt(y.size)
    half = max(8.0 * se, 0.05)
    grid = np.linspace(max(XI_MIN, xi_hat - half), min(XI_MAX, xi_hat + half), 81)
    sigma, ll = ref_profile_sigma(y, grid, sigma_hat)
    ll_max = ll.max()
    dev = 2.0 * (ll_max - ll)
    i_max = int(np.argmax(ll))
    lo = _crossing(grid[: i_max + 1][::-1], dev[: i_max + 1][::-1])
    hi = _crossing(grid[i_max:], dev[i_max:])
    log_s = np.log(sigma)
    var = ref_variance(y, grid, log_s)
    w = np.exp(ll - ll_max) * np.sqrt(var)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (w[1:] + w[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]
    u = (np.arange(n_draws) + rng.random(n_draws)) / n_draws
    xi_draws = np.interp(u, cdf, grid)
    rng.shuffle(xi_draws)
    z = rng.standard_normal(n_draws)
    log_sigma = np.interp(xi_draws, grid, log_s) + z * np.sqrt(np.interp(xi_draws, grid, var))
    sigma_draws = np.exp(log_sigma)
    floor = np.where(xi_draws < 0, -xi_draws * float(y.max()) * (1.0 + 1e-9), 0.0)
    sigma_draws = np.maximum(sigma_draws, floor)
    return (lo, hi), xi_draws, sigma_draws


def ref_sigma_draws_given_xi(
    y: np.ndarray, xi_draws: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    sigma, _ = ref_profile_sigma(y, xi_draws)
    log_s = np.log(sigma)
    var = ref_variance(y, xi_draws, log_s)
    draws = np.exp(log_s + rng.standard_normal(xi_draws.size) * np.sqrt(var))
    floor = np.where(xi_draws < 0, -xi_draws * float(y.max()) * (1.0 + 1e-9), 0.0)
    return np.asarray(np.maximum(draws, floor), dtype=float)


# ---------------------------------------------------------------------------------------------
# Seeded inputs
# ---------------------------------------------------------------------------------------------


def exceedances(xi: float, k: int, seed: int, rounded: bool = False) -> np.ndarray:
    """``k`` sorted GPD(xi, 1) exceedances (rounded to 2 digits: ties), all positive."""
    rng = np.random.default_rng(np.random.SeedSequence([SEED, seed, k, int(100 * xi) + 100]))
    y = stats.genpareto.rvs(xi, scale=1.0, size=k, random_state=rng)
    if rounded:
        y = np.round(y, 2)
    return np.sort(np.maximum(y, 1e-3))


def cases() -> list[tuple[float, int, bool]]:
    return [(xi, k, k % 2 == 1) for xi in SHAPES for k in SIZES]


def same(a: object, b: object) -> bool:
    """Bitwise equality of nested tuples of arrays and floats."""
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(map(same, a, b))
    return np.asarray(a).tobytes() == np.asarray(b).tobytes()


# A sum of at most 2,000 log1p terms, each within an ulp (2.2e-16 relative) of np.log1p's, and
# results computed from such sums (interpolated draws, their interval): 1e-11 relative is 20x
# what the 2,000 ulps of the largest sums allow.
RTOL = 1e-11


def close(a: object, b: object) -> bool:
    """Equality to ``RTOL`` (relative, with as much absolute at 0) of nested tuples of arrays
    and floats, with infinities and NaN where the other has them."""
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(map(close, a, b))
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return x.shape == y.shape and bool(
        np.allclose(
            x,
            y,
            rtol=RTOL,
            atol=RTOL * max(float(np.abs(y[np.isfinite(y)]).max(initial=0.0)), 1e-300),
            equal_nan=True,
        )
    )


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("xi", "k", "rounded"), cases())
def test_profile_sigma_is_its_former_self(xi: float, k: int, rounded: bool) -> None:
    y = exceedances(xi, k, 1, rounded)
    xi_hat = tail.fit_gpd_mle(y)[0]
    for grid in (
        np.linspace(max(XI_MIN, xi_hat - 0.4), min(XI_MAX, xi_hat + 0.4), 81),
        np.array([-1.2, -1.0, -0.5, 0.0, 1e-12, 0.3, 2.0]),
    ):
        sigma, ll = tail.profile_sigma(y, grid)
        ref_sigma, ref_ll = ref_profile_sigma(y, grid)
        assert same(sigma, ref_sigma)  # the Newton steps are unchanged
        assert close(ll, ref_ll)


@pytest.mark.parametrize(("xi", "k", "rounded"), cases())
def test_profile_draws_are_their_former_selves(xi: float, k: int, rounded: bool) -> None:
    y = exceedances(xi, k, 2, rounded)
    xi_hat, sigma_hat, _ = tail.fit_gpd_mle(y)
    for n_draws in (N_DRAWS, 67):
        new_rng = np.random.default_rng([SEED, k, n_draws])
        old_rng = np.random.default_rng([SEED, k, n_draws])
        new = tail.profile_draws(y, xi_hat, sigma_hat, new_rng, n_draws)
        old = ref_profile_draws(y, xi_hat, sigma_hat, old_rng, n_draws)
        assert close(new, old)
        assert new_rng.bit_generator.state == old_rng.bit_generator.state


@pytest.mark.parametrize(("xi", "k", "rounded"), cases())
def test_sigma_draws_given_xi_are_their_former_selves(xi: float, k: int, rounded: bool) -> None:
    y = exceedances(xi, k, 3, rounded)
    xi_draws = np.random.default_rng([SEED, k]).normal(max(xi, XI_MIN + 0.1), 0.15, N_DRAWS)
    new_rng, old_rng = np.random.default_rng([SEED, 3]), np.random.default_rng([SEED, 3])
    new = tail.sigma_draws_given_xi(y, xi_draws, new_rng)
    assert close(new, ref_sigma_draws_given_xi(y, xi_draws, old_rng))
    assert new_rng.bit_generator.state == old_rng.bit_generator.state


@pytest.mark.parametrize("xi", SHAPES)
def test_fit_tail_is_its_former_self(xi: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole tail fit of a class (threshold, mixed draws over three thresholds), with the
    former kernels put back for the reference."""
    used: list[int] = []

    def reference(
        y: np.ndarray, xi_hat: float, sigma_hat: float, rng: np.random.Generator, n_draws: int
    ) -> tuple[tuple[float, float], np.ndarray, np.ndarray]:
        used.append(y.size)
        return ref_profile_draws(y, xi_hat, sigma_hat, rng, n_draws)

    for n in (250, 3000, 40_000):
        x = exceedances(xi, n, 4)
        top = np.sort(x)[-min(n, tail.K_MAX + 1) :]
        new = tail.fit_tail(top, n, np.random.default_rng([SEED, n]))
        used.clear()
        with monkeypatch.context() as m:  # where the draws look it up: `tail.uncertainty`
            m.setattr(tail.uncertainty, "profile_draws", reference)
            old = tail.fit_tail(top, n, np.random.default_rng([SEED, n]))
        assert used  # the former kernel made the reference's draws
        assert new is not None and old is not None
        for f in fields(TailFit):
            a, b = getattr(new, f.name), getattr(old, f.name)
            assert a == b if f.name in ("candidates", "method") else close(a, b), f.name


def test_log1p_is_numpy_s_within_two_ulps() -> None:
    rng = np.random.default_rng(SEED)
    x = np.concatenate(
        [
            np.logspace(-320, 300, 20_000),
            -np.logspace(-320, 0, 20_000)[:-1],  # down to -1 + 1e-16
            rng.uniform(-1.0, 10.0, 20_000),
            rng.lognormal(0.0, 5.0, 20_000),
            [0.0, -0.0, 5e-324, 1e-17, -1e-17, 2.0**53, 1.7e308],
        ]
    )
    expected = np.log1p(x)
    got = gpd.log1p(x)
    # within an ulp here; 2 allows for another machine's log (NumPy's AVX-512 one, say)
    assert np.all(np.abs(got - expected) <= 2 * np.spacing(np.abs(expected)))
    edges = np.array([-1.0, -1.5, np.inf, -np.inf, np.nan])
    with np.errstate(divide="ignore", invalid="ignore"):
        assert np.array_equal(gpd.log1p(edges), np.log1p(edges), equal_nan=True)
    inplace = x.copy()
    assert gpd.log1p(inplace, out=inplace) is inplace and np.array_equal(inplace, got)
    with np.errstate(divide="ignore", invalid="ignore"):
        into = np.empty(edges.size)
        assert gpd.log1p(edges, out=into) is into
        assert np.array_equal(into, np.log1p(edges), equal_nan=True)
        for one in (-1.0, 0.5, np.float64(3.0), np.array(-2.0)):  # scalars and 0-d arrays too
            assert np.array_equal(gpd.log1p(one), np.log1p(one), equal_nan=True)


@pytest.mark.parametrize(("xi", "k", "rounded"), cases())
def test_curvature_is_the_likelihood_s_second_derivative_in_log_sigma(
    xi: float, k: int, rounded: bool
) -> None:
    """`_loglik_curvature_rows` against Richardson-extrapolated central differences of the
    frozen likelihood, at points of the profile grid and off it, inside the support. The
    extrapolated difference's truncation error is O(h^4) (h = 1e-2, 5e-3: about 1e-8 relative)
    and its rounding error about eps |l| / h^2 (1e-8 of |l| here); 1e-5 covers both."""
    y = exceedances(xi, k, 5, rounded)
    xi_hat = tail.fit_gpd_mle(y)[0]
    xis = np.linspace(max(XI_MIN, xi_hat - 0.3), min(XI_MAX, xi_hat + 0.3), 13)
    sigma, _ = tail.profile_sigma(y, xis)
    # off the maximum too, but away from the support bound sigma = -xi max(y)
    log_s = np.log(np.concatenate([sigma, sigma * 1.3]))
    xis = np.tile(xis, 2)
    ll, curvature = gpd._loglik_curvature_rows(y, xis, log_s)

    def second(h: float) -> np.ndarray:
        up, down = ref_loglik_rows(y, xis, log_s + h), ref_loglik_rows(y, xis, log_s - h)
        return np.asarray(-(up - 2.0 * ref_loglik_rows(y, xis, log_s) + down) / (h * h))

    with np.errstate(invalid="ignore"):  # -inf - -inf where a step leaves the support
        richardson = (4.0 * second(5e-3) - second(1e-2)) / 3.0
        scale = np.abs(ref_loglik_rows(y, xis, log_s)) + np.abs(richardson)
    # Where xi < 0 and sigma nears the support bound, the differences' terms 1 / (1 + xi y /
    # sigma)^n blow up (their steps may even leave the support): compared where the largest
    # value keeps 1 + xi y / sigma >= 1/2 at every step (for xi < 0 the profile maximum lies close
    # to the bound: there the exact curvature is what the old difference missed).
    room = 1.0 + np.minimum(xis, 0.0) * float(y.max()) / np.exp(log_s - 1e-2)
    inside = room >= 0.5
    assert inside.sum() >= 4
    assert np.all(np.abs(curvature - richardson)[inside] <= 1e-5 * scale[inside])
    assert close(ll, ref_loglik_rows(y, xis, log_s))
    assert close(curvature, ref_curvature(y, xis, log_s))


def test_outside_the_support_there_is_no_likelihood_and_no_curvature() -> None:
    """With xi = -1/2 the support ends at 2 sigma: sigma = 1.5 leaves y = 4 outside."""
    y = np.array([1.0, 2.0, 4.0])
    ll, curvature = gpd._loglik_curvature_rows(y, np.array([-0.5, -0.5]), np.log([1.5, 3.0]))
    assert ll[0] == -np.inf and np.isnan(curvature[0])  # the draws' variance falls back to 1/k
    assert np.isfinite(ll[1]) and curvature[1] > 0


def test_has_candidates_says_whether_there_are_candidate_counts() -> None:
    for n in range(0, 30_000, 7):
        assert tail.has_candidates(n) == (tail.candidate_counts(n).size > 0)


@pytest.mark.parametrize("seed", range(6))
def test_average_ranks_are_scipy_s_rankdata_to_the_bit(seed: int) -> None:
    rng = np.random.default_rng([SEED, seed])
    n = int(rng.integers(1, 5000))
    samples = [
        rng.lognormal(0.0, 2.0, n),  # no ties
        rng.integers(0, 7, n).astype(float),  # many ties
        np.round(rng.random(n), 2),  # some ties
        rng.choice([0.0, -0.0, 1.0], n),  # signed zeros tie
        np.where(rng.random(n) < 0.01, np.nan, rng.random(n)),  # NaN: all NaN
    ]
    for x in samples:
        assert average_ranks(x).tobytes() == stats.rankdata(x).tobytes()
    assert average_ranks(np.zeros(0)).size == 0


def test_a_finished_class_keeps_what_the_fit_reads_of_its_buffers() -> None:
    """`LogSummary.finish` trims the top values and smallest unit costs; `sorted_top` and
    `smallest_units` give after it what they gave before."""
    rng = np.random.default_rng(SEED)
    c = ClassSummary()
    for _ in range(2):  # buffers trimmed lazily: up to twice TOP_ROWS and LOW_ROWS values
        c.add_top("cost_usd", rng.lognormal(0.0, 1.0, TOP_ROWS - 1))
        c.add_low(rng.lognormal(0.0, 1.0, LOW_ROWS - 1), rng.integers(0, 50, LOW_ROWS - 1))
    assert c.top["cost_usd"].size > TOP_ROWS and c.low.size > LOW_ROWS
    top = c.sorted_top("cost_usd")
    low, windows, more = c.smallest_units()
    summary = LogSummary(SummarySpec.of(["cost"], 0, 3600.0), {"a": c})
    summary.finish()
    assert c.top["cost_usd"].size == TOP_ROWS and c.low.size == LOW_ROWS
    assert np.array_equal(c.sorted_top("cost_usd"), top)
    again = c.smallest_units()
    assert np.array_equal(again[0], low) and np.array_equal(again[1], windows)
    assert again[2] == more
