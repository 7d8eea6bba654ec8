"""The drift's terms: its kinds, the windows' constants, the series of window means a fit
reads (`DriftSeries`) and what it gives (`DriftFit`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

DriftKind = Literal["none", "ar1", "random_walk"]
KINDS: tuple[DriftKind, ...] = ("none", "ar1", "random_walk")
#: free parameters beyond the (integrated) location mu, for AIC
_PARAMS: Mapping[DriftKind, int] = {"none": 0, "ar1": 2, "random_walk": 1}

WINDOW_S = 3600.0
#: window lengths tried, in order, when a class is too sparse for the requested window
WINDOW_LADDER_S: tuple[float, ...] = tuple(
    3600.0 * h for h in (1, 2, 3, 4, 6, 8, 12, 24, 48, 96, 168)
)
MIN_MEDIAN_COUNT = 20  # a typical window should hold this many requests ...
MIN_WINDOWS = 8  # ... and the pilot at least this many observed windows
MIN_PER_WINDOW = 5  # a window with fewer requests is a missing observation
#: the default when the pilot cannot tell (too short, no timestamps): an AR(1) per window with
#: this stationary level sd and correlation, and a long-run level as uncertain as that spread
DEFAULT_LEVEL_SD = 0.10
DEFAULT_PHI = 0.9
_FLOOR_FRACTION = 1e-3  # unit costs below this fraction of the median are floored (log of 0)
#: an ar1 is chosen over a random walk only when 2 (loglik_ar1 - loglik_walk) reaches this
UNIT_ROOT_LR = 6.0
_LOG_2PI = math.log(2.0 * math.pi)
_LOGIT_PHI_BOUNDS = (-6.0, 9.2)  # phi in (0.0025, 0.9999)
_PHI_GRID = (0.3, 0.6, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
_Q_GRID_POINTS = 20
_RIDGE = 1.0  # ridge on the loadings (against the posterior precisions of the pairs' r)
_R_GRID = np.linspace(-0.99, 0.99, 45)  # correlation grid of the pairwise likelihoods


@dataclass(frozen=True, eq=False)
class DriftSeries:
    """Per-window summaries of log unit cost on a regular grid of ``window_s`` from ``start``.

    ``mean[t]`` is the mean of y = log(unit cost) over window t's ``count[t]`` requests, NaN
    when the window holds fewer than ``min_count`` (a missing observation, kept on the time
    axis); ``within_var`` is the pooled within-window variance s2, so an observed window mean
    has sampling variance s2 / count[t]. ``reference`` is the pilot's overall mean log level
    (the count-weighted mean of the window means, all requests included); ``dispersion`` the
    count-weighted variance of the true window levels about it, estimated as the weighted
    variance of the observed means minus its sampling part (floored at 0).
    """

    window_s: float
    start: float
    mean: np.ndarray
    count: np.ndarray
    within_var: float
    reference: float
    dispersion: float
    min_count: int = MIN_PER_WINDOW
    note: str | None = None

    @property
    def windows(self) -> int:
        return int(self.mean.size)

    @property
    def observed(self) -> np.ndarray:
        """Boolean mask of the windows that count as observations."""
        return np.asarray(self.count >= self.min_count)

    @property
    def variance(self) -> np.ndarray:
        """Sampling variance s2 / n_t of each window mean (inf where not observed)."""
        n = self.count.astype(float)
        return np.where(self.observed, self.within_var / np.maximum(n, 1.0), np.inf)


@dataclass(frozen=True)
class DriftFit:
    """The fitted drift of one class (see the module docstring for the model).

    ``mu`` is the long-run level (ar1, none) or the level at window 0 (random_walk), log scale,
    with posterior variance ``mu_var`` (mu integrated out under a flat prior); ``phi`` the
    window-to-window correlation (1 for a random walk, 0 for none); ``state_sd`` the innovation
    sd sqrt(q) per window; ``level_end`` / ``level_end_var`` the filtered level at the pilot's
    last window and its variance (mu's uncertainty included), ``level_mu_cov`` their covariance.
    ``reference`` is the pilot's overall mean log level, the level the fitted cost distribution
    corresponds to; ``dispersion`` the request-weighted variance of the pilot's window levels
    about it (a Jensen term: the pilot's mean cost is exp(reference + dispersion / 2) times the
    per-request factor). ``loglik`` holds the diffuse log-likelihood of each kind, ``aic`` the
    criterion the kind was chosen by. ``estimated`` is False for the documented default
    (:func:`default_drift`), whose ``note`` says why; a note also explains a lengthened window.
    """

    kind: DriftKind
    estimated: bool
    window_s: float
    windows: int
    observed: int
    mu: float
    mu_var: float
    phi: float
    state_sd: float
    level_end: float
    level_end_var: float
    level_mu_cov: float
    reference: float
    dispersion: float
    within_var: float
    loglik: Mapping[str, float] = field(default_factory=dict)
    aic: Mapping[str, float] = field(default_factory=dict)
    note: str | None = None

    @property
    def stationary_sd(self) -> float:
        """Sd of the level about mu for an AR(1), sqrt(q / (1 - phi^2)); inf for a walk."""
        if self.kind == "none":
            return 0.0
        if self.kind == "random_walk":
            return math.inf
        return self.state_sd / math.sqrt(-math.expm1(2.0 * math.log(self.phi)))
