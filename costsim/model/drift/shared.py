"""Drift shared between classes: a one-factor model on the classes' state innovations, from
pairwise bivariate likelihoods (`common_loadings`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize

from .series import _R_GRID, _RIDGE, DriftFit, DriftSeries

_PAIR_BLOCK = 4096  # pairs x correlations per pass over the windows: they stay in the cache


def _pair_loglik(
    m: np.ndarray,
    v: np.ndarray,
    phi: np.ndarray,
    q: np.ndarray,
    walk: np.ndarray,
    pairs: np.ndarray,
    r: np.ndarray,
) -> np.ndarray:
    """:func:`_pair_block` over blocks of pairs: a few thousand at a time, every array of the
    filter stays in the cache."""
    return np.concatenate(
        [
            _pair_block(m, v, phi, q, walk, pairs[i : i + _PAIR_BLOCK], r[i : i + _PAIR_BLOCK])
            for i in range(0, r.size, _PAIR_BLOCK)
        ]
    )


def _pair_block(
    m: np.ndarray,
    v: np.ndarray,
    phi: np.ndarray,
    q: np.ndarray,
    walk: np.ndarray,
    pairs: np.ndarray,
    r: np.ndarray,
) -> np.ndarray:
    """Diffuse log-likelihood of pairs of classes whose state innovations correlate by r.

    m, v: (C, T) centred window means (0 where missing) and sampling variances (inf where
    missing); phi, q, walk: (C,) each class's fitted dynamics; pairs: (G, 2) class indices;
    r: (G,) innovation correlations. Bivariate state x = (x_1, x_2) with transition
    diag(phi_1, phi_2) and innovation covariance [[q1, r s1 s2], [r s1 s2, q2]]; each class's
    observation is processed in turn (their sampling errors are independent), missing ones are
    skipped, and both locations are integrated out as in :func:`_filter`:
        loglik = -1/2 [sum log F + log det S_uu + S_vv - S_uv' S_uu^-1 S_uv] (+ constant).
    """
    i, j = pairs[:, 0], pairs[:, 1]
    f1, f2 = np.where(walk[i], 1.0, phi[i]), np.where(walk[j], 1.0, phi[j])
    q1, q2 = q[i], q[j]
    q12 = r * np.sqrt(q1 * q2)
    both_ar = ~walk[i] & ~walk[j]
    p11 = np.where(walk[i], 0.0, q1 / np.where(walk[i], 1.0, 1.0 - f1 * f1))
    p22 = np.where(walk[j], 0.0, q2 / np.where(walk[j], 1.0, 1.0 - f2 * f2))
    p12 = np.where(both_ar, q12 / np.where(both_ar, 1.0 - f1 * f2, 1.0), 0.0)
    zeros = np.zeros(r.size)
    x1, x2, a11, a12, a21, a22 = (zeros.copy() for _ in range(6))
    slogf, svv, s1, s2, s11, s12, s22 = (zeros.copy() for _ in range(7))
    for t in range(m.shape[1]):
        if t:
            x1, x2 = f1 * x1, f2 * x2
            a11, a12, a21, a22 = f1 * a11, f1 * a12, f2 * a21, f2 * a22
            p11, p12, p22 = f1 * f1 * p11 + q1, f1 * f2 * p12 + q12, f2 * f2 * p22 + q2
        for first in (True, False):
            cls = i if first else j
            obs = np.isfinite(v[cls, t])
            pc, pd = (p11, p12) if first else (p12, p22)  # P h: the column of the observed state
            if obs.all():
                f = (pc if first else pd) + v[cls, t]
                wo = 1.0 / f
                logf = np.log(f)
            elif obs.any():  # missing observations weigh nothing
                f = np.where(obs, (pc if first else pd) + np.where(obs, v[cls, t], 1.0), 1.0)
                wo = obs / f
                logf = np.where(obs, np.log(f), 0.0)
            else:
                continue
            k1, k2 = pc * wo, pd * wo
            e = m[cls, t] - (x1 if first else x2)
            u1 = (1.0 - a11) if first else -a21
            u2 = -a12 if first else (1.0 - a22)
            x1, x2 = x1 + k1 * e, x2 + k2 * e
            a11, a12 = a11 + k1 * u1, a12 + k1 * u2
            a21, a22 = a21 + k2 * u1, a22 + k2 * u2
            # P - K h'P, h'P = (pc, pd)
            p11, p12, p22 = p11 - k1 * pc, p12 - k1 * pd, p22 - k2 * pd
            slogf += logf
            we, wu1 = wo * e, wo * u1
            svv += we * e
            s1 += we * u1
            s2 += we * u2
            s11 += wu1 * u1
            s12 += wu1 * u2
            s22 += wo * u2 * u2
    det = s11 * s22 - s12 * s12
    quad = (s22 * s1 * s1 - 2.0 * s12 * s1 * s2 + s11 * s2 * s2) / det
    return np.asarray(-0.5 * (slogf + np.log(det) + svv - quad))


def common_loadings(fits: Sequence[DriftFit], series: Sequence[DriftSeries]) -> np.ndarray:
    """Share rho_j in [0, 1] of each class's drift that is common to all classes.

    One-factor model of the classes' state innovations: eta_j = sd_j (l_j c + sqrt(1 - l_j^2)
    u_j), so the innovations of classes j and k correlate by r_jk = l_j l_k. Each pair's r_jk
    is the posterior mean of its bivariate diffuse likelihood (:func:`_pair_loglik`, the fitted
    phi and q of both classes held fixed) under a flat prior on (-1, 1): with few windows the
    likelihood is flat and the estimate shrinks towards 0. The loadings l_j in [0, 1] minimise
        sum_{j<k} (r_jk - l_j l_k)^2 / s_jk^2 + sum_j l_j^2,
    s_jk being the posterior sd of r_jk (two classes: l = sqrt(max(r, 0))); the small ridge
    splits a product evenly (one correlated pair gives both classes sqrt(r), not 1 and r) and
    shrinks a little more towards 0. rho_j = l_j^2, so
    that drawing z_j = sqrt(rho_j) z_common + sqrt(1 - rho_j) z_own gives corr(z_j, z_k) =
    l_j l_k. The pairs are evaluated in one vectorized pass (a loop over windows only): 20
    classes and 336 windows take a fraction of a second.
    Classes without drift (``none``) or with the default drift get 0.

    ``series`` must share the grid (``start``, ``window_s``) the ``fits`` were fitted on;
    shorter series are padded with missing windows.
    """
    if len(fits) != len(series):
        raise ValueError(f"fits and series: lengths differ ({len(fits)} vs {len(series)})")
    c = len(fits)
    rho = np.zeros(c)
    if c < 2:
        return rho
    w0, s0 = series[0].window_s, series[0].start
    for k, (f, s) in enumerate(zip(fits, series, strict=True)):
        if s.window_s != w0 or abs(s.start - s0) > 1e-6 * w0:
            raise ValueError(
                f"series[{k}]: not on the common grid (window {s.window_s} s from {s.start}; "
                f"expected {w0} s from {s0}); rebuild it with drift_windows(..., window_s={w0}, "
                "adapt=False, start=...) and refit"
            )
        if f.estimated and f.window_s != s.window_s:
            raise ValueError(f"fits[{k}]: fitted on {f.window_s} s windows, series on {w0} s")
    active = [k for k, f in enumerate(fits) if f.estimated and f.kind != "none"]
    if len(active) < 2:
        return rho
    t_len = max(s.windows for s in series)
    m = np.zeros((c, t_len))
    v = np.full((c, t_len), np.inf)
    for k in active:
        s = series[k]
        obs = s.observed
        m[k, : s.windows] = np.where(obs, s.mean - s.reference, 0.0)
        v[k, : s.windows] = s.variance
    phi = np.array([f.phi for f in fits])
    q = np.array([f.state_sd**2 for f in fits])
    walk = np.array([f.kind == "random_walk" for f in fits])
    pair_list = [(a, b) for n, a in enumerate(active) for b in active[n + 1 :]]
    pairs = np.repeat(np.array(pair_list), _R_GRID.size, axis=0)
    r = np.tile(_R_GRID, len(pair_list))
    ll = _pair_loglik(m, v, phi, q, walk, pairs, r).reshape(len(pair_list), _R_GRID.size)
    ll = np.where(np.isfinite(ll), ll, -np.inf)
    post = np.exp(ll - ll.max(axis=1, keepdims=True))
    post /= post.sum(axis=1, keepdims=True)
    r_hat = post @ _R_GRID
    # posterior precision of each pair's r (floored: a likelihood piled on the grid's edge)
    prec = 1.0 / np.maximum(post @ _R_GRID**2 - r_hat**2, 1e-4)
    pos = {k: n for n, k in enumerate(active)}
    a_idx = np.array([pos[a] for a, _ in pair_list])
    b_idx = np.array([pos[b] for _, b in pair_list])
    if len(active) == 2:
        load = np.full(2, math.sqrt(max(float(r_hat[0]), 0.0)))
    else:

        def loss(lv: np.ndarray) -> tuple[float, np.ndarray]:
            res = r_hat - lv[a_idx] * lv[b_idx]
            g = np.zeros(lv.size)
            np.add.at(g, a_idx, -2.0 * prec * res * lv[b_idx])
            np.add.at(g, b_idx, -2.0 * prec * res * lv[a_idx])
            return float(np.sum(prec * res**2) + _RIDGE * lv @ lv), g + 2.0 * _RIDGE * lv

        pooled = float(prec @ r_hat / prec.sum())
        start = np.full(len(active), math.sqrt(min(max(pooled, 0.01), 0.99)))
        res = optimize.minimize(
            loss, start, jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * len(active)
        )
        load = np.clip(res.x, 0.0, 1.0)
    rho[active] = load**2
    return rho
