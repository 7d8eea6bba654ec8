"""Drift of the unit cost between time windows: a state-space model fitted to the pilot.

A pilot's mean cost per request moves from window to window more than sampling explains. Per
window t the pilot gives the mean m_t of y = log(unit cost) over its n_t requests; with the
pooled within-window variance s2 its sampling variance is known, s2 / n_t. The window means are
modelled as a noisy view of a latent log level L_t:

    m_t = L_t + e_t,               e_t ~ N(0, s2 / n_t)        (windows with few requests: missing)
    none:         L_t = mu
    ar1:          L_t - mu = phi (L_{t-1} - mu) + eta_t,        eta_t ~ N(0, q), 0 < phi < 1,
                  started from its stationary law N(mu, q / (1 - phi^2))
    random_walk:  L_t = L_{t-1} + eta_t,                         L_0 = mu

The location mu enters the three kinds in the same way (m_t = mu + x_t + e_t with x a zero-mean
process), so each kind's likelihood is computed with mu integrated out under a flat prior (the
diffuse, or restricted, likelihood of a Kalman filter augmented with the regressor "1"): the
three log-likelihoods are comparable and the kind is chosen by AIC (an AR(1) only when the pilot
rejects a unit root, see :func:`fit_state_space`). The variance q and the
correlation phi are found by maximum likelihood on log q and logit phi: a grid, then Newton's
method from its best points. Both evaluate many (phi, q) at once without a loop over windows
(:func:`_batch`: the state's precision is tridiagonal, one LAPACK factorisation serves every
candidate); :func:`_kalman`, the scalar filter, is the definition they are tested against and
gives the filtered level window by window (:func:`filtered_levels`, for the report).

The forecast side (:func:`horizon_shift`) starts from the filtered level at the pilot's *last*
window, so a pilot whose level moved is followed, and its spread grows with the horizon (a
random walk without bound, an AR(1) up to its stationary spread and the uncertainty of mu).
Drift shared between classes (:func:`common_loadings`) is a one-factor model on the classes'
state innovations, from pairwise bivariate likelihoods.

Pure functions on arrays: nothing here prints, reads files or draws random numbers.

The package's rooms, in the order a fit goes through them: `series` (the kinds, `DriftSeries`,
`DriftFit`), `windows` (a class's rows to window means), `kalman` (the scalar filter: the
definition), `batch` (many models at once), `fitting`, `horizon` (the forecast side) and
`shared` (drift common to classes).
"""

from .fitting import default_drift, fit_drift, fit_state_space
from .horizon import horizon_shift
from .kalman import filtered_levels, log_likelihood
from .series import (
    DEFAULT_LEVEL_SD,
    DEFAULT_PHI,
    KINDS,
    MIN_MEDIAN_COUNT,
    MIN_PER_WINDOW,
    MIN_WINDOWS,
    UNIT_ROOT_LR,
    WINDOW_LADDER_S,
    WINDOW_S,
    DriftFit,
    DriftKind,
    DriftSeries,
)
from .shared import common_loadings
from .windows import choose_window, drift_windows, window_dispersion

__all__ = [
    "DEFAULT_LEVEL_SD",
    "DEFAULT_PHI",
    "KINDS",
    "MIN_MEDIAN_COUNT",
    "MIN_PER_WINDOW",
    "MIN_WINDOWS",
    "UNIT_ROOT_LR",
    "WINDOW_LADDER_S",
    "WINDOW_S",
    "DriftFit",
    "DriftKind",
    "DriftSeries",
    "choose_window",
    "common_loadings",
    "default_drift",
    "drift_windows",
    "filtered_levels",
    "fit_drift",
    "fit_state_space",
    "horizon_shift",
    "log_likelihood",
    "window_dispersion",
]
