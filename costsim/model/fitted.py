"""What a fit gives and takes: the fitted model (`FittedModel`: per class a `ClassFit`
of `QuantityFit`s, `Rates` and drift; the pilot's `Traffic`), the fit's options
(`FitOptions`) and its constants, and a measured quantity's values in a `PilotLog`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..logs import (
    DroppedRows,
    PilotLog,
)
from .drift import (
    DriftFit,
)
from .splice import SplicedDistribution
from .summaries import (
    LOG_FIELDS,
)

BOUNDED = {"cached_share": 1.0}  # quantities with a natural upper bound


def quantity_values(log: PilotLog, q: str) -> np.ndarray | None:
    """A measured quantity for every row, or None. ``cached_share`` is cached input tokens over
    input tokens (0 without input): it keeps a price sheet's cached discount inside [0, 1]."""
    if q == "cached_share":
        if log.cached_input_tokens is None or log.input_tokens is None:
            return None
        inp = log.input_tokens
        share = np.divide(log.cached_input_tokens, inp, out=np.zeros_like(inp), where=inp > 0)
        return np.asarray(np.clip(share, 0.0, 1.0))
    values = getattr(log, LOG_FIELDS[q])
    return None if values is None else np.asarray(values)


COPULA_ROWS = 1 << 16
#: a log of at least this many rows is read or summarised for about a second: the worker
#: processes that fit its classes (`fit_summary`) start meanwhile rather than after it
PROCESSES_EARLY_ROWS = 1 << 19
MIN_CLASS_ROWS = 10
DEFAULT_CAP_FACTOR = 10.0
DRIFT_WINDOW_S = 3600.0
RETRY_PMF_MAX = 10
ATOM_SHARE = 0.01  # a value repeated in at least this share of a class's rows is an atom
XI_BETWEEN_SD_MIN = 0.1  # least between-class sd of the tail shape a borrowed shape carries
BOUNDED_XI = -0.25  # below this (and an interval under 0) a tail is called bounded, not light


@dataclass(frozen=True)
class FitOptions:
    """Options of the fit. ``caps`` maps a quantity name to a physical upper bound."""

    seed: int = 0
    caps: Mapping[str, float] = field(default_factory=dict)
    default_cap_factor: float | None = DEFAULT_CAP_FACTOR
    min_class_rows: int = MIN_CLASS_ROWS
    drift_window_s: float = DRIFT_WINDOW_S


@dataclass(frozen=True)
class QuantityFit:
    """One measured quantity of one class: its distribution, uncertainty and diagnostics."""

    name: str
    n: int
    dist: SplicedDistribution
    xi_ci: tuple[float, float] | None
    xi_draws: np.ndarray | None
    sigma_draws: np.ndarray | None
    cap_source: str | None
    tail_source: str  # "fitted", "borrowed", "none"
    summary: dict[str, float]
    diagnostics: dict[str, Any]

    @property
    def verdict(self) -> str:
        return tail_verdict(self)


@dataclass(frozen=True)
class Rates:
    error_rate: float | None
    retry_pmf: tuple[float, ...] | None
    retry_mean: float | None
    retry_cost_share: float | None
    cold_start_rate: float | None
    cold_start_cost_ratio: float | None
    cold_start_latency_ms: float | None


@dataclass(frozen=True)
class ClassFit:
    name: str
    requests: int
    share: float
    cost_total: float | None
    quantities: dict[str, QuantityFit]
    dependence: tuple[tuple[str, ...], np.ndarray]
    rates: Rates
    drift: DriftFit
    hourly_profile: tuple[float, ...] | None
    drift_common: float = 0.0  # share of the drift common to all classes (a one-factor loading)


@dataclass(frozen=True)
class Traffic:
    requests: int
    start: float | None
    end: float | None
    duration_s: float | None
    rate_per_hour: float | None
    hourly_profile: tuple[float, ...] | None
    weekday_profile: tuple[float, ...] | None


@dataclass(frozen=True)
class FittedModel:
    source: str
    rows_read: int
    rows_dropped: int
    columns: dict[str, str]
    options: FitOptions
    classes: dict[str, ClassFit]
    traffic: Traffic
    concentration: dict[str, float] | None
    notes: tuple[str, ...]

    @property
    def seed(self) -> int:
        return self.options.seed


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFit:
    """A model fitted to a streamed log, and the rows dropped as invalid (``drop_invalid``)."""

    model: FittedModel
    dropped: tuple[DroppedRows, ...]


def tail_verdict(qf: QuantityFit) -> str:
    """Plain words for the tail shape xi.

    bounded (xi clearly negative: an upper end point), light (consistent with exponential),
    heavy (0 < xi < 0.5), very heavy (xi >= 0.5: infinite variance) or infinite mean (xi >= 1).
    """
    if qf.tail_source == "none" or qf.xi_ci is None:
        return "none"
    xi = qf.dist.xi
    if xi >= 1.0:
        return "infinite mean"
    if xi >= 0.5:
        return "very heavy"
    if qf.xi_ci[1] < 0.0 and xi < BOUNDED_XI:
        return "bounded"
    if qf.xi_ci[0] <= 0.0 or xi <= 0.0:
        return "light"
    return "heavy"
