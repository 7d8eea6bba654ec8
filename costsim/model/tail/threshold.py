"""The threshold: candidate exceedance counts, all fitted at once, chosen by ForwardStop on
their Anderson-Darling p-values (`choose_threshold`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .goodness import _ad_pvalues
from .gpd import gpd_logsf
from .mle import _fit_sets, _make_sets, _Sets

K_MIN = 30  # fewest exceedances a tail is fitted from
K_MAX = 2000  # most exceedances used: beyond this the body is empirical anyway
# Lowest threshold tried: the 85% quantile. From the 70% quantile, ForwardStop accepted the lowest
# candidate in 53-78% of pilots whose tail starts at their 90% quantile (a biased shape).
K_FRACTION = 0.15
N_CANDIDATES = 10
FORWARD_STOP_ALPHA = 0.10


@dataclass(frozen=True)
class ThresholdCandidate:
    k: int
    threshold: float
    xi: float
    sigma: float
    ad: float
    p_value: float


def has_candidates(n: int) -> bool:
    """Whether ``n`` values are enough to try a threshold (`candidate_counts` is not empty)."""
    return min(K_MAX, int(K_FRACTION * n)) >= K_MIN


def candidate_counts(n: int) -> np.ndarray:
    """Exceedance counts to try, from the lowest threshold (most exceedances) upwards."""
    if not has_candidates(n):
        return np.zeros(0, dtype=int)
    k_hi = min(K_MAX, int(K_FRACTION * n))
    k_lo = min(max(K_MIN, int(0.005 * n)), k_hi)
    ks = np.unique(np.round(np.geomspace(k_hi, k_lo, N_CANDIDATES)).astype(int))[::-1]
    return np.asarray(ks, dtype=int)


def exceedances(top_sorted: np.ndarray, n: int, k: int) -> tuple[float, np.ndarray]:
    """Threshold and exceedances for ``k`` requested exceedances.

    ``top_sorted`` holds (at least) the ``k + 1`` largest values in ascending order. Ties at the
    threshold are kept in the body, so fewer than ``k`` exceedances may come back.
    """
    u = float(top_sorted[top_sorted.size - k - 1])
    above = top_sorted[top_sorted > u]
    return u, above - u


def forward_stop(p_values: np.ndarray, alpha: float = FORWARD_STOP_ALPHA) -> int:
    """Index of the first accepted candidate by ForwardStop (G'Sell et al. 2016).

    Candidates are ordered from the lowest threshold; the first ``k_hat`` are rejected, where
    ``k_hat = max{k : (1/k) * sum_{i<=k} -log(1 - p_i) <= alpha}`` (0 when none).
    """
    y = -np.log1p(-np.clip(p_values, 0.0, 1 - 1e-15))
    running = np.cumsum(y) / np.arange(1, y.size + 1)
    below = np.flatnonzero(running <= alpha)
    return int(below[-1] + 1) if below.size else 0


def choose_threshold(top_sorted: np.ndarray, n: int) -> tuple[int, tuple[ThresholdCandidate, ...]]:
    """Fit every candidate threshold; return the chosen candidate's index and all candidates.

    The candidates are fitted all at once (`_fit_sets`): their exceedances are suffixes of
    ``top_sorted``, laid end to end."""
    ks = candidate_counts(n)
    u = top_sorted[top_sorted.size - ks - 1]
    first = np.searchsorted(top_sorted, u, side="right")  # ties at u stay in the body
    enough = top_sorted.size - first >= K_MIN
    u, first = u[enough], first[enough]
    if u.size == 0:
        return -1, ()
    sets = _make_sets(*_suffixes(top_sorted, first, u))
    distinct = np.add.reduceat(np.concatenate([[1], np.diff(sets.r) != 0]), sets.starts)
    if not np.all(distinct >= 5):  # drop the candidates with too few distinct exceedances
        u, first = u[distinct >= 5], first[distinct >= 5]
        if u.size == 0:
            return -1, ()
        sets = _make_sets(*_suffixes(top_sorted, first, u))
    xi, sigma, _ = _fit_sets(sets)
    a2 = _anderson_darling_sets(sets, xi, sigma / sets.y_max)
    p = _ad_pvalues(a2, xi)
    cands = tuple(
        ThresholdCandidate(int(k), float(u_c), float(x), float(s), float(a), float(p_c))
        for k, u_c, x, s, a, p_c in zip(sets.k, u, xi, sigma, a2, p, strict=True)
    )
    idx = forward_stop(p)
    if idx >= len(cands):
        # nothing passed: take the best-fitting candidate, and say so (see fit_tail)
        idx = int(np.argmax(p))
    return idx, cands


def _suffixes(
    top_sorted: np.ndarray, first: np.ndarray, u: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exceedances ``top_sorted[first_j:] - u_j`` of every threshold end to end (each ascending,
    the values `exceedances` gives one threshold at a time), and their sizes."""
    sizes = top_sorted.size - first
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    seg = np.repeat(np.arange(first.size), sizes)
    pos = np.arange(int(sizes.sum())) - offsets[seg] + first[seg]
    return np.asarray(top_sorted[pos] - u[seg]), sizes


def _anderson_darling_sets(sets: _Sets, xi: np.ndarray, sigma_r: np.ndarray) -> np.ndarray:
    """`anderson_darling` of every set against its own GPD(xi, sigma) (on the r scale, where the
    statistic is the same): the i-th value of a set paired with its (k + 1 - i)-th."""
    start = sets.spread(sets.starts)
    i = np.arange(sets.r.size) - start  # 0-based rank within its set
    log_s = np.minimum(gpd_logsf(sets.r, sets.spread(xi), sets.spread(sigma_r)), -1e-300)
    log_f = np.maximum(np.log(-np.expm1(log_s)), -700.0)
    mirror = start + sets.spread(sets.counts) - 1 - i
    terms = (2 * i + 1) * (log_f + log_s[mirror])
    return np.asarray(-sets.k - np.add.reduceat(terms, sets.starts) / sets.k)
