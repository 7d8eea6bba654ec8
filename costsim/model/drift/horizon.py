"""The forecast side: the law of a class's log level over a horizon, from the filtered level at
the pilot's last window (`horizon_shift`).
"""

from __future__ import annotations

import math

import numpy as np

from .kalman import _geometric
from .series import DriftFit


def horizon_shift(fit: DriftFit, weights: np.ndarray, gap_windows: int = 0) -> tuple[float, float]:
    """Log-normal law of the horizon's unit-cost level relative to the pilot: (mean, var).

    ``weights`` (w_k >= 0, normalised to sum 1) are the forecast's traffic weights on the drift
    window grid, window k of the horizon being h_k = gap_windows + 1 + k windows after the
    pilot's last one. With a = sum_k w_k phi^h_k (1 for a walk), the traffic-weighted mean log
    level Lbar = sum_k w_k L_{h_k} is normal with
        E[Lbar]   = mu + a (L_end - mu)                               (a walk: L_end)
        Var[Lbar] = (1-a)^2 Var(mu) + a^2 Var(L_end) + 2 a (1-a) Cov(L_end, mu)
                    + q (sum_k c_k^2 + c_0^2 sum_{j=1}^{gap} phi^(2j)),
    c_k = w_k + phi c_{k+1} being the weight of the innovation of horizon window k in Lbar (a
    backward linear filter, O(H), no H x H matrix). The returned ``mean`` is
        E[Lbar] - reference + (D_horizon - D_pilot) / 2,
    where the D are the expected weighted spreads of the true level within the horizon and
    within the pilot (Jensen terms), so that exp(N(mean, var)) is the law of
        (horizon's traffic-weighted mean unit cost) / (pilot's mean unit cost),
    the factor by which to multiply costs drawn from the pilot's fitted distribution. The
    median factor is exp(mean), its mean exp(mean + var / 2). ``none`` gives (0, 0): the
    pilot's distribution is the future's (its own sampling error is the fit's business).
    """
    w = np.asarray(weights, dtype=float).ravel()
    if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights: expected finite traffic weights >= 0 with a positive sum")
    if gap_windows < 0:
        raise ValueError(f"gap_windows: expected >= 0, got {gap_windows}")
    if fit.kind == "none":
        return 0.0, 0.0
    w = w / w.sum()
    phi = 1.0 if fit.kind == "random_walk" else fit.phi
    q = fit.state_sd**2
    h = gap_windows + 1.0 + np.arange(w.size)
    if phi >= 1.0:
        ph = np.ones_like(h)
    elif phi > 0.0:
        ph = np.exp(h * math.log(phi))
    else:
        ph = np.zeros_like(h)
    a = float(w @ ph)
    gap_w = fit.level_end - fit.mu
    centre = fit.mu + a * gap_w
    vm, vl, c = fit.mu_var, fit.level_end_var, fit.level_mu_cov
    param = (1.0 - a) ** 2 * vm + a * a * vl + 2.0 * a * (1.0 - a) * c
    cw = discounted_tail_sums(w, phi)
    lead = float(_geometric(phi, gap_windows + 1)) - 1.0  # sum_{j=1}^{gap} phi^(2j)
    var = param + q * (float(cw @ cw) + float(cw[0]) ** 2 * lead)
    # Jensen: E[sum_k w_k (L_k - Lbar)^2] = sum_k w_k Var(L_k) - Var(Lbar) + spread of E[L_k]
    if phi >= 1.0:
        geo = h
    elif phi > 0.0:
        lp = 2.0 * math.log(phi)
        geo = np.expm1(h * lp) / math.expm1(lp)
    else:
        geo = np.ones_like(h)
    var_k = (1.0 - ph) ** 2 * vm + ph * ph * vl + 2.0 * ph * (1.0 - ph) * c + q * geo
    mean_k = fit.mu + ph * gap_w
    spread = max(float(w @ var_k) - var + float(w @ (mean_k - centre) ** 2), 0.0)
    return centre - fit.reference + 0.5 * (spread - fit.dispersion), max(var, 0.0)


_SCALE_RANGE = 1e100  # how far a block of `discounted_tail_sums` may scale its terms


def discounted_tail_sums(w: np.ndarray, phi: float) -> np.ndarray:
    """c_k = sum_{j >= k} phi^(j - k) w_j, that is c_k = w_k + phi c_(k+1), for weights
    w >= 0 (no cancellation): within blocks of windows over which phi^(-i) stays below
    `_SCALE_RANGE`, a cumulative sum of the terms scaled by phi^(-i); block to block, the
    carry. ``scipy.signal.lfilter([1], [1, -phi], w[::-1])[::-1]`` to 1e-13 relative (the
    scaling's rounding), without importing scipy.signal: 0.7 s that every forecast paid, and
    every worker process again when it prepared classes."""
    w = np.asarray(w, dtype=float)
    if phi >= 1.0:
        return np.cumsum(w[::-1])[::-1]
    if phi <= 0.0:
        return w.copy()
    block = max(1, int(math.log(_SCALE_RANGE) / -math.log(phi)))
    out = np.empty_like(w)
    carry = 0.0  # c at the first window after the block
    for stop in range(w.size, 0, -block):  # blocks from the last window back
        start = max(stop - block, 0)
        i = np.arange(stop - start)  # from the block's first window
        scaled = np.cumsum((w[start:stop] * np.exp(i * math.log(phi)))[::-1])[::-1]
        out[start:stop] = scaled * np.exp(-i * math.log(phi)) + carry * np.exp(
            (stop - start - i) * math.log(phi)
        )
        carry = float(out[start])
    return out
