"""Defaults the command line shows in ``--help``, declared where importing them costs nothing.

`costsim.cli` is imported for every command, ``--help`` included, so it cannot import the
modules that own these values (they import numpy, scipy, pandas or pyarrow). The values live
here, plain Python; the modules that use them import them from here, and
``tests/test_startup.py`` checks that they agree.
"""

from __future__ import annotations

# costsim.model.fit: the fewest rows a class needs to be fitted on its own
MIN_CLASS_ROWS = 10
# costsim.model.fit: the window over which unit-cost drift is measured (seconds)
DRIFT_WINDOW_S = 3600.0
# costsim.scenario.format: the largest seed (a signed 64-bit integer: every report format and
# reader keeps it exact)
MAX_SEED = 2**63 - 1
# costsim.backtest: trials of each backtest forecast
BACKTEST_TRIALS = 2000
# costsim.logs.ColumnMap: the pilot log's column names, field -> column
COLUMNS: dict[str, str] = {
    "query_class": "query_class",
    "cost": "cost_usd",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cached_input_tokens": "cached_input_tokens",
    "timestamp": "timestamp",
    "latency": "latency_ms",
    "status": "status",
    "error": "error",
    "retries": "retries",
    "cold_start": "cold_start",
    "calls": "calls",
}
# costsim.simulate.forecast: the quantiles every forecast reports, and its JSON's version (a
# baseline and `costsim check` read them without importing the simulation)
FORECAST_QUANTILES = {"p5": 0.05, "p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}
FORECAST_SCHEMA_VERSION = 1
