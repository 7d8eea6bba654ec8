"""Many models at once: the diffuse likelihood and the filter's end for many (phi, q) without
a loop over windows (the state's precision is tridiagonal: one LAPACK factorisation serves
every candidate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
from scipy.linalg import lapack

from ...errors import FitError
from .kalman import _Data, _filter_end, _FilterEnd

_BATCH_VALUES = 8192  # candidates x windows per LAPACK call: the temporaries stay in the cache


@dataclass(frozen=True)
class _Batch:
    """:func:`_filter` for many models at once, one entry per candidate: the log-likelihood,
    the location's estimate and variance, the state (x, a, P) at the last observation, and the
    model (phi, q) that carries it on to the grid's end."""

    loglik: np.ndarray
    mu: np.ndarray
    mu_var: np.ndarray
    x: np.ndarray
    a: np.ndarray
    p: np.ndarray
    phi: np.ndarray
    q: np.ndarray

    def end(self, i: int, tail: int) -> _FilterEnd:
        state = (float(self.x[i]), float(self.a[i]), float(self.p[i]))
        return _filter_end(
            float(self.loglik[i]),
            float(self.mu[i]),
            float(self.mu_var[i]),
            state,
            float(self.phi[i]),
            float(self.q[i]),
            tail,
        )

    @classmethod
    def concat(cls, parts: Sequence[_Batch]) -> _Batch:
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))


def _chain(
    data: _Data, phi: np.ndarray, q: np.ndarray, walk: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The state at the observed windows as a Markov chain, per candidate (rows):
        x_t = c_t x_{t-1} + w_t,  c_t = phi^g_t,  w_t ~ N(0, W_t),  W_t = q sum_{j<g_t} phi^(2j),
    g_t the windows since the previous observation; the first, x_1 ~ N(0, W_1), W_1 the state's
    variance there: q / (1 - phi^2) for an ar1 (stationary), q g_1 for a walk (L_0 = mu). A
    slot with W_t = 0 holds no random state (a walk observed at window 0; no drift at all,
    q = 0): it becomes a unit-variance dummy, cut from the data and from its neighbours (c = 0).
    Returns c, W and the weights h_t / v_t of the observations on the state (h = 0: a dummy),
    one row for all candidates when there is no dummy."""
    powers = np.where(walk, 1.0, phi)[:, None] ** data.lags  # phi^j, j = 0 .. longest gap
    c = powers[:, data.gaps]
    squares = powers * powers
    w = q[:, None] * (np.cumsum(squares, axis=1) - squares)[:, data.gaps]  # sum_{j<g} phi^(2j)
    ar1 = np.where(walk, 0.0, phi)
    w[:, 0] = q * np.where(walk, data.gaps[0], 1.0 / ((1.0 - ar1) * (1.0 + ar1)))
    first = w[:, 0] <= 0.0  # the only slots that can be dummies: the first, or all (q = 0)
    if not first.any():
        return c, w, data.iv
    none = q <= 0.0
    weight = np.tile(data.iv, (len(q), 1))
    weight[first, 0] = weight[none] = 0.0
    w[first, 0] = w[none] = 1.0
    c[first, :2] = c[none] = 0.0
    return c, w, weight


def _batch_block(data: _Data, phi: np.ndarray, q: np.ndarray, walk: np.ndarray) -> _Batch:
    """:func:`_batch` for candidates whose windows fit one LAPACK call.

    With the chain of :func:`_chain` the window means are m = mu 1 + H x + e, e ~ N(0, V),
    V = diag(v), H = diag(h), and the precision Lambda of x is tridiagonal:
        x' Lambda x = sum_t (x_t - c_t x_{t-1})^2 / W_t,   log det Lambda = -sum_t log W_t.
    Sigma = V + H Lambda^-1 H is then inverted through T = Lambda + H V^-1 H (Woodbury),
    tridiagonal too: one LDL' factorisation (LAPACK dptsv) serves every candidate, the
    candidates' systems laid along one diagonal. With r_b = H V^-1 b and y_b = T^-1 r_b for
    b = m, 1 (the data and the location's regressor),
        b' Sigma^-1 b~ = b' V^-1 b~ - r_b' y_b~,
        log det Sigma = sum_t log v_t + sum_t log D_t + sum_t log W_t   (D the pivots of T),
    which give :func:`_kalman`'s S_vv, S_uv, S_uu and log-likelihood (to about 1e-10 of it:
    the subtraction loses what the state explains of b' V^-1 b). At the last observation the
    filtered state is the smoothed one: x = y_m, a = y_1, P = (T^-1)_nn = 1 / D_n (0 without
    drift).
    """
    c, w, hv = _chain(data, phi, q, walk)
    k, n = c.shape
    iw = 1.0 / w
    off = np.zeros((k, n))  # -c_{t+1} / W_{t+1}, the coupling of x_t and x_{t+1}; 0 at the end
    np.multiply(c[:, 1:], iw[:, 1:], out=off[:, :-1])
    diag = iw + hv
    diag[:, :-1] += c[:, 1:] * off[:, :-1]
    np.negative(off, out=off)
    rhs = np.empty((2, k, n))  # H V^-1 b, overwritten by y_b
    np.multiply(data.regressors[:, None, :], hv, out=rhs)
    pivots, _, y, info = lapack.dptsv(
        diag.ravel(),
        off.ravel()[:-1],
        rhs.reshape(2, -1).T,
        overwrite_d=1,
        overwrite_e=1,
        overwrite_b=1,
    )
    if info != 0:  # T is positive definite by construction (q >= 0, v > 0)
        raise FitError(f"drift: the state's precision is not positive definite (dptsv: {info})")
    y = y.T.reshape(2, k, n)
    pivots = pivots.reshape(k, n)
    r_y = (y * hv) @ data.regressors.T  # [a, candidate, b]: r_b' y_a
    q_ = data.quadratic
    svv, suv, suu = q_[0, 0] - r_y[0, :, 0], q_[0, 1] - r_y[0, :, 1], q_[1, 1] - r_y[1, :, 1]
    logdet = np.log(pivots * w).sum(axis=1) + np.log(suu)  # log det T/Lambda and of S_uu
    loglik = -0.5 * (data.constant + logdet + svv - suv * suv / suu)
    p_end = (q > 0.0) / pivots[:, -1]  # no drift: no state
    return _Batch(
        loglik, suv / suu, 1.0 / suu, y[0, :, -1], y[1, :, -1], p_end, np.where(walk, 1.0, phi), q
    )


def _batch(data: _Data, phi: np.ndarray, q: np.ndarray, walk: np.ndarray) -> _Batch:
    """:func:`_filter` for many (phi, q) at once (``walk``: phi = 1; phi = q = 0: none), without a
    loop over windows, in blocks of candidates."""
    rows = max(1, _BATCH_VALUES // data.m.size)
    parts = [
        _batch_block(data, phi[i : i + rows], q[i : i + rows], walk[i : i + rows])
        for i in range(0, phi.size, rows)
    ]
    return parts[0] if len(parts) == 1 else _Batch.concat(parts)
