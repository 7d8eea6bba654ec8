"""A baseline: a stored ``costsim forecast --json`` output that `costsim check` compares with.

The forecast JSON is declared here as a baseline reader needs it (`report.forecast_to_dict` is
the writer). Unknown keys are allowed at every level: a newer writer may add some, and the
reader ignores them.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from .defaults import FORECAST_QUANTILES as QUANTILES
from .defaults import FORECAST_SCHEMA_VERSION
from .errors import CostsimError
from .formats import Choice, Num, Nums, Open, integer, raise_problems, read_json, validated

KIND = "costsim.forecast"
PERCENTILES = 101  # P0, P1, ..., P100 of the totals


class BaselineError(CostsimError):
    """A baseline forecast cannot be compared with this run."""


def _stats(ordered: bool) -> AfterValidator:
    """Every statistic present; with ``ordered``, the quantiles non-decreasing (p5 ... p99)."""

    def check(stats: dict[str, float]) -> dict[str, float]:
        missing = [(key, "required") for key in (*QUANTILES, "mean") if key not in stats]
        raise_problems(missing)
        if ordered:
            values = [(key, stats[key]) for key in QUANTILES]
            for (lo, a), (hi, b) in pairwise(values):
                if b < a:
                    raise_problems([(hi, f"must be >= {lo} ({a:g}), got {b:g}")])
        return stats

    return AfterValidator(check)


Usd = Annotated[float, Num(0.0)]
UsdOrInf = Annotated[float, Num(0.0, finite=False)]


class ClassFigures(Open):
    mean_cost: Usd


class ScenarioRecord(Open):
    document: dict[str, Any] = Field(default_factory=dict)  # to rerun the baseline's scenario


class BaselineDoc(Open):
    """What `costsim check` reads from a baseline."""

    kind: Annotated[str, Choice((KIND,))]
    schema_version: Annotated[int, integer(FORECAST_SCHEMA_VERSION, FORECAST_SCHEMA_VERSION)]
    scenario: ScenarioRecord = Field(default_factory=ScenarioRecord)
    model_hash: str
    seed: Annotated[int, integer(0)]
    trials: Annotated[int, integer(1)]
    horizon_s: Annotated[float, Num(0.0, lo_open=True)]
    quantiles: Annotated[dict[str, Usd], _stats(ordered=True)]
    # an unresolved quantile (too few trials to bound it) has an infinite error, written "inf"
    quantile_se: Annotated[dict[str, UsdOrInf], _stats(ordered=False)]
    percentiles: Annotated[
        tuple[float, ...], Nums(Num(0.0), length=PERCENTILES, non_decreasing=True)
    ] = ()
    per_class: dict[str, ClassFigures]


def load_baseline(path: str | Path) -> dict[str, Any]:
    """Read a stored ``costsim forecast --json`` output, every value the check uses checked;
    anything else is a `BaselineError` naming the key path of each bad value. Returns the JSON
    document as read."""
    data = read_json(path, "baseline", BaselineError)
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise BaselineError(
            f"baseline {path}: not a costsim forecast (write one with `costsim forecast "
            f"SCENARIO --json {path}`)"
        )
    version = data.get("schema_version")
    if version != FORECAST_SCHEMA_VERSION or isinstance(version, bool):
        raise BaselineError(
            f"baseline {path}: forecast schema_version {version!r}, this costsim reads "
            f"{FORECAST_SCHEMA_VERSION}; refresh the baseline with `costsim forecast SCENARIO "
            f"--json {path}`"
        )
    validated(BaselineDoc, data, BaselineError, f"baseline {path}")
    return data
