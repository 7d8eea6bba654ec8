"""One quantity of a class fitted: its spliced distribution (empirical body + GPD tail, the
threshold chosen, a small class's tail shape borrowed from the pooled classes, a cap where
the shape says the mean or variance is infinite), its KS distance, QQ points and verdict.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import special

from ..errors import FitError, HeavyTailWarning, SmallSampleWarning
from .fitted import (
    ATOM_SHARE,
    BOUNDED,
    MIN_CLASS_ROWS,
    XI_BETWEEN_SD_MIN,
    FitOptions,
    QuantityFit,
)
from .splice import BODY_POINTS, SplicedDistribution
from .summaries import VALUES, ClassSummary, limits
from .tail import (
    CI_LEVEL,
    K_FRACTION,
    N_DRAWS,
    TailFit,
    fit_tail,
    fit_tail_fixed_shape,
    has_candidates,
)

if TYPE_CHECKING:
    from .fit import _ClassPart


def fit_values(
    values: np.ndarray, rng: np.random.Generator, name: str = "cost_usd", cap: float | None = None
) -> QuantityFit:
    """Fit a spliced distribution to one array of values (e.g. costs re-priced from tokens).

    The same machinery as a class of the pilot: automatic threshold, GPD tail, profile draws.
    """
    x = np.asarray(values, dtype=float)
    if x.size < MIN_CLASS_ROWS:
        raise FitError(f"{name}: {x.size} values; at least {MIN_CLASS_ROWS} are needed to fit")
    rows = limits.SAMPLE_ROWS
    sample = x if x.size <= rows else rng.choice(x, rows, replace=False)
    n = x.size
    top_n = min(n, limits.TOP_ROWS)
    top = np.sort(np.partition(x, n - top_n)[n - top_n :]) if top_n < n else np.sort(x)
    sample_sorted = np.sort(sample)
    qs = np.quantile(x if n > rows else sample_sorted, _SUMMARY_PROBS)
    total = float(x.sum())
    at_max = int(np.count_nonzero(x == top[-1]))
    prep = _prepare(n, top, sample_sorted, total, qs, at_max, rng)
    options = FitOptions(caps={name: cap} if cap is not None else {}, default_cap_factor=None)
    if prep["small"]:
        prep["small"] = False  # no pooled shape here: an empirical distribution
    return _finish_quantity(name, name, prep, None, options)


_SUMMARY_PROBS = (0.5, 0.95, 0.99)


def _prepare_summarized(
    q: str, c: ClassSummary, sample: np.ndarray, rng: np.random.Generator
) -> dict[str, Any]:
    """`_prepare` from a class's summary: its exact top values and count at the largest, its
    exact total, and its sample (every row of a class that fits it)."""
    n = c.n
    top = c.sorted_top(q)
    sample_sorted = np.sort(sample)
    qs = _summary_quantiles(n, top, sample_sorted)
    largest, at_max = c.at_max[q]
    assert largest == top[-1]
    total = float(VALUES.value(c.sums[q])[()])
    return _prepare(n, top, sample_sorted, total, qs, at_max, rng)


def _summary_quantiles(n: int, top: np.ndarray, sample_sorted: np.ndarray) -> np.ndarray:
    """Quantiles of a class: of the sample when it holds every row; else exact from the top
    values where the quantile falls among them, else from the sample (its rank error)."""
    if sample_sorted.size >= n:
        return np.quantile(sample_sorted, _SUMMARY_PROBS)
    out = np.empty(len(_SUMMARY_PROBS))
    first = n - top.size  # the rank (0-based, ascending) of top[0]
    for i, p in enumerate(_SUMMARY_PROBS):
        pos = p * (n - 1)
        lo = math.floor(pos)
        if lo >= first:
            a = top[lo - first]
            b = top[min(lo + 1, n - 1) - first]
            out[i] = a + (pos - lo) * (b - a)
        else:
            out[i] = np.quantile(sample_sorted, p)
    return out


def _prepare(
    n: int,
    top: np.ndarray,
    sample_sorted: np.ndarray,
    total: float,
    qs: np.ndarray,
    at_max: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Summary statistics and (when the class is large enough) an own tail fit, from the top
    ``min(n, K_MAX + 1)`` values (ascending), the sorted sample, the total and the rows at the
    largest value."""
    summary = {
        "total": total,
        "mean": total / n,
        "p50": float(qs[0]),
        "p95": float(qs[1]),
        "p99": float(qs[2]),
        "max": float(top[-1]),
    }
    # An atom at the very top (many rows at the largest value, e.g. outputs cut at max_tokens)
    # is a hard limit, not a tail: nothing lies beyond it, and a GPD fitted through a point
    # mass would be wrong. The class is then empirical up to that value, the atom kept exact.
    capped = at_max < n and at_max >= max(ATOM_SHARE * n, 2.0)  # all rows equal: no limit
    small = not has_candidates(n) and not capped
    tail = None if small or capped else fit_tail(top, n, rng)
    return {
        "n": n,
        "top": top,
        "sample": sample_sorted,
        "summary": summary,
        "tail": tail,
        "small": small,
        "capped": at_max / n if capped else None,
        "rng": rng,
    }


def _pooled_shape(
    q: str, parts: Sequence[_ClassPart], rng: np.random.Generator, notes: list[str]
) -> dict[str, Any] | None:
    """Inverse-variance pooled tail shape of the classes that fitted their own tail."""
    fits = [tail for p in parts if (tail := p.tails[q]) is not None]
    needs = [p.name for p in parts if q in p.small]
    if not needs:
        return None
    if fits:
        xis = np.array([f.xi for f in fits])
        var = np.array([max(float(np.var(f.xi_draws)), 1e-6) for f in fits])
        w = 1.0 / var
        xi = float(np.sum(w * xis) / w.sum())
        # a small class's own shape is the pooled one plus a random effect: the spread between
        # classes, at least XI_BETWEEN_SD_MIN (one or two donor classes cannot measure it)
        between = max(float(np.var(xis, ddof=1)) if xis.size > 2 else 0.0, XI_BETWEEN_SD_MIN**2)
        se = float(np.sqrt(1.0 / w.sum() + between))
        source = f"pooled from {len(fits)} class{'es' if len(fits) > 1 else ''}"
    else:
        xi, se = 0.0, 0.2
        source = "set by default, as no class has enough rows for its own tail"
    z = special.ndtri(0.5 + CI_LEVEL / 2)  # scipy.stats.norm.ppf
    draws = xi + se * rng.standard_normal(N_DRAWS)
    notes.append(f"{q}: classes {', '.join(needs)} are small and borrow the tail shape {source}")
    return {"xi": xi, "ci": (xi - z * se, xi + z * se), "draws": draws, "source": source}


def _finish_quantity(
    cls: str, q: str, prep: dict[str, Any], pooled: dict[str, Any] | None, options: FitOptions
) -> QuantityFit:
    n, top, sample = prep["n"], prep["top"], prep["sample"]
    tail: TailFit | None = prep["tail"]
    notes: list[str] = []
    tail_source = "fitted" if tail is not None else "none"
    if prep["small"] and pooled is not None:
        k = max(3, int(K_FRACTION * n))  # the donors' shapes were fitted above this quantile
        tail = fit_tail_fixed_shape(
            top, n, pooled["xi"], pooled["ci"], pooled["draws"], k, prep["rng"]
        )
        if tail is not None:
            tail_source = "borrowed"
            notes.append(f"{n} rows: tail shape borrowed ({pooled['source']})")
            warnings.warn(
                f"class '{cls}' {q}: only {n} rows; tail shape borrowed ({pooled['source']})",
                SmallSampleWarning,
                stacklevel=3,
            )
    elif prep["capped"] is not None:
        notes.append(
            f"{prep['capped']:.1%} of rows sit at the largest value {_human(float(top[-1]))}, "
            "a hard limit (such as max_tokens): no tail beyond it (empirical distribution)"
        )
    elif tail is None:
        notes.append("no tail fitted: too few distinct large values (empirical distribution)")

    # Body: the conditional distribution below the threshold, on a fixed probability grid.
    u = tail.threshold if tail is not None else float(top[-1])
    body = sample[: np.searchsorted(sample, u, side="right")]
    if body.size == 0:
        body = np.array([u])
    body_p, body_q = body_grid(body, BODY_POINTS, ATOM_SHARE * sample.size)
    body_q[-1] = u
    body_q = np.maximum.accumulate(body_q)

    cap, cap_source = _cap(cls, q, prep["summary"]["max"], u, options)
    if tail is None:
        dist = SplicedDistribution(body_q, 0.0, 0.0, 1.0, None, body_p)
        cap, cap_source = None, None
    else:
        dist = SplicedDistribution(body_q, tail.k / n, tail.xi, tail.sigma, cap, body_p)

    diagnostics: dict[str, Any] = {"notes": notes}
    if tail is not None:
        diagnostics.update(
            {
                "threshold": tail.threshold,
                "threshold_quantile": 1.0 - tail.k / n,
                "exceedances": tail.k,
                "threshold_method": tail.method,
                "anderson_darling": tail.ad,
                "ad_p_value": tail.p_value,
                "candidates": [
                    {
                        "k": c.k,
                        "threshold": c.threshold,
                        "xi": c.xi,
                        "sigma": c.sigma,
                        "ad": c.ad,
                        "p_value": c.p_value,
                    }
                    for c in tail.candidates
                ],
                "tail_qq": _tail_qq(top, tail, dist),
            }
        )
    if tail is not None and tail.method.startswith("no candidate"):
        notes.append(
            f"no threshold passed the Anderson-Darling test (best p = {tail.p_value:.3f}): "
            "its GPD tail is a poor fit"
        )
    diagnostics["ks"] = _ks_distance(sample, dist)
    return QuantityFit(
        name=q,
        n=n,
        dist=dist,
        xi_ci=None if tail is None else tail.xi_ci,
        xi_draws=None if tail is None else tail.xi_draws,
        sigma_draws=None if tail is None else tail.sigma_draws,
        cap_source=cap_source,
        tail_source=tail_source,
        summary=prep["summary"],
        diagnostics=diagnostics,
    )


def _cap(
    cls: str, q: str, observed_max: float, u: float, options: FitOptions
) -> tuple[float | None, str | None]:
    if q in options.caps:
        cap = float(options.caps[q])
        if cap < observed_max:
            given = " (--cap, or --max-tokens)" if q in ("input_tokens", "output_tokens") else ""
            raise FitError(
                f"--cap {q}={cap:g}{given} is below the largest {q} observed in class '{cls}' "
                f"({observed_max:g}); a cap must bound the data"
            )
        return cap, "user"
    if q in BOUNDED:
        return BOUNDED[q], "a share: at most 1"
    if options.default_cap_factor is None:
        return None, None
    return max(observed_max, u) * options.default_cap_factor, (
        f"default: {options.default_cap_factor:g}x the largest value in the pilot"
    )


def body_grid(
    sorted_values: np.ndarray, points: int, atom_rows: float
) -> tuple[np.ndarray | None, np.ndarray]:
    """The body's quantile function: on ``points`` equally spaced probabilities, plus the exact
    probability edges of every atom (a value repeated at least ``atom_rows`` times, e.g. a price
    tier or a maximum output length), so that an atom keeps its exact mass instead of one
    quantised to the grid's step. Returns (probabilities or None when equally spaced, values)."""
    m = sorted_values.size
    values, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    atoms = counts >= max(atom_rows, 2.0)
    grid = np.linspace(0.0, 1.0, points)
    if not atoms.any() or m < 2:
        return None, _quantile_grid(sorted_values, points)
    lo, hi = first[atoms] / m, (first[atoms] + counts[atoms]) / m
    # the grid's points off the atoms, then both edges of every atom at the atom's value: where
    # one atom ends exactly where the next begins, the probability appears twice (a jump)
    off = ~((grid[:, None] >= lo[None, :]) & (grid[:, None] <= hi[None, :])).any(axis=1)
    probs = np.concatenate([grid[off], lo, hi])
    vals = np.concatenate(
        [np.interp(grid[off] * (m - 1), np.arange(m), sorted_values), values[atoms], values[atoms]]
    )
    order = np.lexsort((vals, probs))
    return probs[order], np.maximum.accumulate(vals[order])


def _quantile_grid(sorted_values: np.ndarray, points: int) -> np.ndarray:
    """Linear-interpolation quantiles of an ascending array at ``points`` equally spaced probs."""
    pos = np.linspace(0.0, sorted_values.size - 1, points)
    return np.interp(pos, np.arange(sorted_values.size), sorted_values)


def _ks_distance(sorted_sample: np.ndarray, dist: SplicedDistribution) -> float:
    m = sorted_sample.size
    f = dist.cdf(sorted_sample)
    ecdf_hi = np.arange(1, m + 1) / m
    ecdf_lo = np.arange(0, m) / m
    return float(max(np.max(ecdf_hi - f), np.max(f - ecdf_lo), 0.0))


def _tail_qq(
    top: np.ndarray, tail: TailFit, dist: SplicedDistribution, points: int = 20
) -> list[list[float]]:
    """(probability, empirical, model) triples over the exceedances, for a tail QQ plot."""
    exc = top[top > tail.threshold]
    n_total = tail.k / dist.tail_prob
    idx = np.unique(np.round(np.geomspace(1, exc.size, min(points, exc.size))).astype(int)) - 1
    ranks = exc.size - idx  # 1 = the largest
    probs = 1.0 - (ranks - 0.5) / n_total
    model = dist.ppf(probs)
    return [[float(p), float(e), float(m)] for p, e, m in zip(probs, exc[idx], model, strict=False)]


def _human(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def _warn_heavy(cls: str, qf: QuantityFit) -> None:
    verdict = qf.verdict
    if verdict not in ("very heavy", "infinite mean"):
        return
    what = "infinite mean" if verdict == "infinite mean" else "infinite variance"
    bound = (
        f"bounded by a cap of {_human(qf.dist.cap)} ({qf.cap_source})"
        if qf.dist.cap is not None
        else "unbounded: set --cap to bound it"
    )
    ci = ""  # a point estimate above the line may well lie below it: its interval too
    if qf.xi_ci is not None:
        ci = f" ({CI_LEVEL:.0%} CI {qf.xi_ci[0]:.2f} to {qf.xi_ci[1]:.2f})"
    warnings.warn(
        f"class '{cls}' {qf.name}: tail shape xi = {qf.dist.xi:.2f}{ci} >= "
        f"{'1' if what == 'infinite mean' else '0.5'} ({what}); {bound}",
        HeavyTailWarning,
        stacklevel=3,
    )
