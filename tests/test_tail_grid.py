"""The vectorised threshold search (issue 11) against the Nelder-Mead search it replaced.

`tail.choose_threshold` now fits all candidate thresholds of a quantity at once, along Grimshaw's
profile curve (a grid, then Newton), and `tail.profile_sigma` solves its score equation by a
safeguarded Newton method instead of bisection. This file keeps a frozen copy of the previous
code -- Nelder-Mead per candidate from probability-weighted moments, the scalar p-value lookup,
profile sigma by bisection -- as the reference, and checks over seeded samples (GPD of several
shapes, lognormal, Pareto above a body, classes near ``K_MIN``, integer and rounded values,
an atom at the top) that

* the candidates and the chosen threshold are the same;
* xi and sigma agree to the reference optimiser's own precision (its ``xatol`` is 1e-6 on
  (xi, log sigma)); where the reference stalled against the ``XI_MIN`` barrier, the new fit
  sits on that edge with a likelihood at least as high;
* the new likelihood is never lower: the differences are the reference's imprecision;
* `fit_tail` draws the same random numbers in the same order, so seeded models move only by
  these optimiser-sized differences.

``benchmarks/bench_fit_classes.py`` imports the reference from here to time the old search.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import optimize, stats
from synth import SplicedTruth

from costsim.model import tail
from costsim.model.tail import K_MAX, ThresholdCandidate

SEED = 20261127
SIZES = (200, 240, 1000, 5000, 15000)  # 200-260 rows: the fewest a class fits its own tail from
REPLICATIONS = 2
XI_TOL = 2e-6  # largest |d xi| seen over 588 samples x 10 candidates: 8e-7
SIGMA_RTOL = 2e-6  # largest relative d sigma seen: 8e-7


# ---------------------------------------------------------------------------------------------
# The reference: tail.py's threshold search before the vectorised grid (frozen copy)
# ---------------------------------------------------------------------------------------------


def ref_loglik(y: np.ndarray, xi: float, sigma: float) -> float:
    if sigma <= 0:
        return -np.inf
    z = y / sigma
    if abs(xi) < 1e-9:
        return float(-y.size * np.log(sigma) - z.sum())
    t = xi * z
    if t.min() <= -1.0:
        return -np.inf
    return float(-y.size * np.log(sigma) - (1.0 + 1.0 / xi) * np.log1p(t).sum())


def ref_pwm(y_sorted: np.ndarray) -> tuple[float, float]:
    k = y_sorted.size
    a0 = float(y_sorted.mean())
    p = (np.arange(1, k + 1) - 0.35) / k
    a1 = float(np.mean(y_sorted * (1.0 - p)))
    denom = a0 - 2.0 * a1
    if denom <= 0:
        return 0.0, a0
    xi = float(np.clip(2.0 - a0 / denom, tail.XI_MIN + 0.01, tail.XI_MAX - 0.01))
    return xi, max(2.0 * a0 * a1 / denom, 1e-12 * max(a0, 1e-300))


def ref_fit_gpd_mle(y_sorted: np.ndarray) -> tuple[float, float, float]:
    """Nelder-Mead on (xi, log sigma) at unit scale, from the PWM estimate."""
    scale = float(y_sorted.mean())
    ys = y_sorted / scale
    xi0, s0 = ref_pwm(ys)
    y_max = float(ys[-1])

    def nll(theta: np.ndarray) -> float:
        xi, log_s = float(theta[0]), float(theta[1])
        if xi < tail.XI_MIN or xi > tail.XI_MAX:
            return 1e300
        sigma = np.exp(log_s)
        if xi < 0 and sigma + xi * y_max <= 0:
            return 1e300
        return -ref_loglik(ys, xi, sigma)

    if xi0 < 0 and s0 + xi0 * y_max <= 0:
        s0 = -xi0 * y_max * 1.5
    best = None
    for start in ((xi0, np.log(s0)), (0.0, 0.0)):
        res = optimize.minimize(
            nll,
            np.array(start),
            method="Nelder-Mead",
            options={"xatol": 1e-6, "fatol": 1e-8, "maxiter": 1000},
        )
        if best is None or res.fun < best.fun:
            best = res
        if best.fun < 1e299:
            break
    assert best is not None
    xi, sigma = float(best.x[0]), float(np.exp(best.x[1]))
    return xi, sigma * scale, -float(best.fun) - ys.size * np.log(scale)


def ref_pvalue(a2: float, xi: float) -> float:
    xis, levels, quantiles = tail.goodness._ad_table()
    x = float(np.clip(xi, xis[0], xis[-1]))
    j = int(np.clip(np.searchsorted(xis, x) - 1, 0, xis.size - 2))
    w = (x - xis[j]) / (xis[j + 1] - xis[j])
    q = (1 - w) * quantiles[j] + w * quantiles[j + 1]
    if a2 <= q[0]:
        return float(1.0 - levels[0] * a2 / q[0]) if q[0] > 0 else 1.0
    if a2 >= q[-1]:
        slope = (q[-1] - q[-2]) / np.log((1 - levels[-2]) / (1 - levels[-1]))
        return float((1 - levels[-1]) * np.exp(-(a2 - q[-1]) / slope))
    return float(1.0 - np.interp(a2, q, levels))


def ref_choose_threshold(
    top_sorted: np.ndarray, n: int
) -> tuple[int, tuple[ThresholdCandidate, ...]]:
    """One Nelder-Mead fit per candidate, then ForwardStop."""
    cands: list[ThresholdCandidate] = []
    for k in tail.candidate_counts(n):
        u, y = tail.exceedances(top_sorted, n, int(k))
        if y.size < tail.K_MIN or np.unique(y).size < 5:
            continue
        xi, sigma, _ = ref_fit_gpd_mle(y)
        a2 = tail.anderson_darling(y, xi, sigma)
        cands.append(ThresholdCandidate(int(y.size), u, xi, sigma, a2, ref_pvalue(a2, xi)))
    if not cands:
        return -1, ()
    idx = tail.forward_stop(np.array([c.p_value for c in cands]))
    if idx >= len(cands):
        idx = int(np.argmax([c.p_value for c in cands]))
    return idx, tuple(cands)


def ref_profile_sigma(
    y: np.ndarray, xis: np.ndarray, sigma_hint: float | None = None, iters: int = 34
) -> tuple[np.ndarray, np.ndarray]:
    """Profile sigma by 34 bisection steps on log(sigma)."""
    xis = np.asarray(xis, dtype=float)
    y_max = float(y.max())
    yy = y[None, :]
    col_xi = xis[:, None]

    def score(log_sigma: np.ndarray) -> np.ndarray:
        sig = np.exp(log_sigma)[:, None]
        return np.asarray((1.0 + xis) * np.mean(yy / (sig + col_xi * yy), axis=1) - 1.0)

    floor = np.log(float(y.mean())) - 30.0
    lo = np.where(xis < 0, np.log(np.maximum(-xis * y_max, 1e-300)) + 1e-12, floor)
    hi = np.full_like(xis, np.log(2.0 * (1.0 + np.abs(xis)) * y_max) + 1.0)
    if sigma_hint is not None:
        near_lo = np.maximum(lo, np.log(sigma_hint) - 4.0)
        near_hi = np.minimum(hi, np.log(sigma_hint) + 4.0)
        ok = (score(near_lo) > 0) & (score(near_hi) <= 0)
        lo, hi = np.where(ok, near_lo, lo), np.where(ok, near_hi, hi)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        h = score(mid)
        lo = np.where(h > 0, mid, lo)
        hi = np.where(h > 0, hi, mid)
    sigma = np.exp(0.5 * (lo + hi))
    z = yy / sigma[:, None]
    small = np.abs(col_xi) < 1e-9
    safe = np.where(small, 1.0, col_xi)
    terms = np.where(small, z, (1.0 + 1.0 / safe) * np.log1p(np.maximum(safe * z, -1 + 1e-15)))
    return sigma, -y.size * np.log(sigma) - terms.sum(axis=1)


# ---------------------------------------------------------------------------------------------
# Seeded samples
# ---------------------------------------------------------------------------------------------


def _gpd(xi: float) -> Callable[[np.random.Generator, int], np.ndarray]:
    return lambda rng, n: stats.genpareto.rvs(c=xi, size=n, random_state=rng)


def _pareto_body(rng: np.random.Generator, n: int) -> np.ndarray:
    """A lognormal body and, for 10% of rows, a Pareto (xi = 0.5) tail above its top."""
    body = rng.lognormal(0.0, 0.5, n)
    return np.where(rng.random(n) < 0.9, body, np.exp(0.64) * (1 - rng.random(n)) ** -0.5)


KINDS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    **{f"gpd xi={xi:g}": _gpd(xi) for xi in (-0.3, 0.0, 0.2, 0.5, 1.0, 2.0)},
    "lognormal": lambda rng, n: rng.lognormal(0.0, 1.2, n),
    "spliced xi=0.4": lambda rng, n: SplicedTruth(0.4).sample(n, rng),
    "pareto with body": _pareto_body,
    "integer tokens (ties)": lambda rng, n: np.rint(rng.lognormal(5.0, 1.0, n) + 1.0),
    "discrete gpd (ties)": lambda rng, n: np.floor(
        1.0 + stats.genpareto.rvs(c=0.3, scale=3.0, size=n, random_state=rng)
    ),
    "atom at the top": lambda rng, n: np.where(
        rng.random(n) < 0.005, 50.0, rng.lognormal(0.0, 1.0, n)
    ),
}


def _top(x: np.ndarray) -> tuple[np.ndarray, int]:
    """What fit.py hands to the tail: the K_MAX + 1 largest values, ascending."""
    n = x.size
    m = min(n, K_MAX + 1)
    return np.sort(np.partition(x, n - m)[n - m :]), n


def samples(kind: str) -> list[tuple[str, np.ndarray, int]]:
    """``REPLICATIONS`` seeded samples of every size in ``SIZES``, as (label, top, n)."""
    index = list(KINDS).index(kind)
    stream = np.random.SeedSequence([SEED, index]).spawn(len(SIZES) * REPLICATIONS)
    out = []
    for i, ss in enumerate(stream):
        n = SIZES[i // REPLICATIONS]
        out.append(
            (f"{kind} n={n} #{i % REPLICATIONS}", *_top(KINDS[kind](np.random.default_rng(ss), n)))
        )
    return out


# ---------------------------------------------------------------------------------------------
# Agreement
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_same_threshold_and_parameters_as_nelder_mead(kind: str) -> None:
    for label, top, n in samples(kind):
        i_ref, ref = ref_choose_threshold(top, n)
        i_new, new = tail.choose_threshold(top, n)
        assert i_new == i_ref, label
        assert [(c.k, c.threshold) for c in new] == [(c.k, c.threshold) for c in ref], label
        for r, c in zip(ref, new, strict=True):
            y = np.sort(top[top > c.threshold] - c.threshold)
            ll_ref, ll_new = ref_loglik(y, r.xi, r.sigma), ref_loglik(y, c.xi, c.sigma)
            assert ll_new >= ll_ref - 1e-9 * max(1.0, abs(ll_ref)), (label, c.k)
            if r.xi < tail.XI_MIN + 1e-6:  # Nelder-Mead against the barrier: imprecise
                assert c.xi == tail.XI_MIN, (label, c.k)
                continue
            assert c.xi == pytest.approx(r.xi, abs=XI_TOL), (label, c.k)
            assert c.sigma == pytest.approx(r.sigma, rel=SIGMA_RTOL), (label, c.k)
            assert c.ad == pytest.approx(r.ad, rel=1e-4, abs=1e-6), (label, c.k)
            assert c.p_value == pytest.approx(r.p_value, rel=1e-4, abs=1e-6), (label, c.k)


def test_fit_is_a_stationary_point_of_the_likelihood() -> None:
    """Interior fits solve the likelihood equations (score ~ 0 in xi and log sigma), to far
    better than Nelder-Mead's xatol: a Nelder-Mead polish from there cannot improve it."""
    rng = np.random.default_rng(SEED)
    for xi in (-0.3, 0.0, 0.2, 0.5, 1.0, 2.0):
        y = np.sort(stats.genpareto.rvs(c=xi, size=400, random_state=rng))
        xi_hat, sigma_hat, ll = tail.fit_gpd_mle(y)
        h = 1e-5
        for d_xi, d_ls in ((h, 0.0), (0.0, h)):
            up = ref_loglik(y, xi_hat + d_xi, sigma_hat * np.exp(d_ls))
            down = ref_loglik(y, xi_hat - d_xi, sigma_hat * np.exp(-d_ls))
            assert abs(up - down) / (2 * h) < 1e-4 * y.size, (xi, d_xi, d_ls)
        assert ll == pytest.approx(ref_loglik(y, xi_hat, sigma_hat), rel=1e-12)


def test_p_values_match_the_scalar_table_lookup() -> None:
    """The vectorised p-value is the scalar lookup, below, inside and beyond the table."""
    a2 = np.concatenate([np.linspace(0.0, 3.0, 61), [5.0, 10.0]])
    for xi in (-0.7, -0.4, 0.05, 0.45, 1.2, 2.5):
        got = tail.goodness._ad_pvalues(a2, np.full(a2.size, xi))
        want = [ref_pvalue(float(a), xi) for a in a2]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_profile_sigma_solves_the_score_equation_inside_the_support() -> None:
    """Newton's sigma is the profile maximum at every xi of a draw grid, and never below the
    support's bound -xi * max(y). The bisection it replaced could fall below the bound when the
    hint was far from it (here xi < 0 on the grid of a heavy tail); elsewhere they agree."""
    rng = np.random.default_rng(SEED + 1)
    y = np.sort(stats.genpareto.rvs(c=1.0, size=200, random_state=rng))
    _, sigma_hat, _ = tail.fit_gpd_mle(y)
    xis = np.linspace(-0.5, 2.5, 81)
    sigma, ll = tail.profile_sigma(y, xis, sigma_hat)
    score = (1.0 + xis) * np.mean(y / (sigma[:, None] + xis[:, None] * y), axis=1) - 1.0
    assert np.all(np.abs(score) < 1e-10)
    assert np.all(sigma + xis * y.max() > 0)
    ref_sigma, ref_ll = ref_profile_sigma(y, xis, sigma_hat)
    inside = ref_sigma + xis * y.max() > 0
    assert not inside.all()  # the case the bisection got wrong
    np.testing.assert_allclose(sigma[inside], ref_sigma[inside], rtol=1e-7)
    assert np.all(ll >= ref_ll - 1e-7)


def test_fit_tail_draws_the_same_random_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same rng calls in the same order: with the reference search swapped back in (where
    `fit_tail` looks it up: its room, `tail.fitting`), the draws differ only by the optimisers'
    differences. (The draws profile sigma with `gpd._profile_sigma` either way.)"""
    used: list[int] = []

    def reference(top: np.ndarray, n: int) -> tuple[int, tuple[ThresholdCandidate, ...]]:
        used.append(n)
        return ref_choose_threshold(top, n)

    for kind in ("lognormal", "gpd xi=0.5", "pareto with body"):
        _, top, n = samples(kind)[-1]
        new = tail.fit_tail(top, n, np.random.default_rng(SEED))
        used.clear()
        with monkeypatch.context() as m:
            m.setattr(tail.fitting, "choose_threshold", reference)
            ref = tail.fit_tail(top, n, np.random.default_rng(SEED))
        assert used == [n]  # the reference was the one used
        assert new is not None and ref is not None
        assert (new.threshold, new.k) == (ref.threshold, ref.k)
        np.testing.assert_allclose(new.xi_draws, ref.xi_draws, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(new.sigma_draws, ref.sigma_draws, rtol=1e-5)
