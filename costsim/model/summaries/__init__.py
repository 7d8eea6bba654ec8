"""Mergeable per-class summaries of a pilot log: everything the fit needs, in bounded memory.

A log is summarised a chunk of rows at a time (a record batch of a streamed Parquet dataset, or
a slice of a log in memory); the summaries of parts merge into the summary of the whole. Every
part of a summary merges exactly and in any grouping, so the summary, and the model fitted
from it, depend on the rows and their order only: not on files, row groups, batches, workers or
a Dask cluster. What is kept, per class:

* **counts** (rows, errors, retries by count, cold starts, rows per hour of day and, for the
  whole log, per day of week) are integers;
* **sums** (the total of every quantity, of retries, of the cost of retried attempts and of
  cold starts, per drift window the sums of log unit cost and of its square) are exact: each
  value is cut into 32-bit digits on a fixed binary grid (`Grid`), the digits are summed as
  integers and the float is made once, at the end (digits below the grid's last one, 2^-78 for
  quantities, are dropped: far below a cent or a token);
* the **tail** of each quantity is its exact top ``K_MAX + 1`` values (the tail fit never looks
  further), with the count of rows at the largest value;
* the **body**, the copula and medians come from a **sample**: the rows with the smallest
  priority, a hash of the fit's seed and the row's position in the log (the bottom k of a union
  is the bottom k of the parts' bottom k). Every row while a class has at most ``sample_rows``
  of them (2^18, fewer with many classes: `sample_rows_for`), so a pilot of that size is
  summarised exactly; above, a simple random sample of that many rows: its empirical CDF is
  within sqrt(ln(2/d) / 2m) of the class's with probability 1 - d (DKW: 0.0038 at m = 2^18,
  d = 0.001), a quantile's rank has sd sqrt(p(1-p)/m) (0.1% at the median);
* the **drift** windows: per window of ``base_s`` seconds (aligned on the epoch), the rows, the
  rows with a positive unit cost and the exact sums of log unit cost and of its square over
  them; and the ``LOW_ROWS`` smallest positive unit costs with their windows, so that costs
  below the drift's floor (a thousandth of the median) are floored exactly (a class with more
  of them than that is read a second time: `floors_to_sum`);
* for the whole log: the first and last arrival, and the cost **concentration**: the exact top
  ``CONCENTRATION_TOP`` costs, and a histogram of costs in bins of 1/128 of an octave (a share
  of cost from it, each request at its bin's centre, is within 0.3% of its value).

Memory: a summary holds per class at most ``2 (K_MAX + 1)`` values per quantity, its sample,
``2 LOW_ROWS`` unit costs and its windows with requests; the samples of all classes together
at most ``SAMPLE_BUDGET`` rows. A work item returns its part's summary, trimmed, and starts from
the `Bounds` of what was merged before it, so that it returns little once the sample is full.

The rooms, in the order the data flows: `limits` (how much a summary holds: read there when
the code runs, so that changing a limit changes it everywhere), `exact` (the exact sums),
`spec` (what a summary keeps, and the rows' sampling priorities), `classes` (one class's
summary), `log` (the log's, and `summarize`, which adds rows to it), `floors` (the drift's
floor) and `items` (the work items `costsim.parallel` runs). The work items read their part of
a log through `costsim.logs`; the rest is pure. `costsim.model.fit` turns a `LogSummary` into a
model.
"""

from . import limits
from .classes import ClassSummary, Windows
from .exact import LOGS, SQUARES, VALUES, Grid, normalise
from .floors import (
    add_below_floor,
    drift_floor,
    floors_to_sum,
    merge_below_floor,
)
from .items import (
    FloorJob,
    ItemResult,
    MemoryJob,
    StreamJob,
    chunk_rows,
    floor_item,
    floor_range,
    memory_items,
    present_fields,
    role_fields,
    summarize_item,
    summarize_range,
)
from .log import Bounds, LogSummary, Rows, bin_centres, cost_bins, summarize, too_many_classes
from .spec import (
    LOG_FIELDS,
    QUANTITIES,
    SummarySpec,
    drift_base,
    priorities,
    quantity_arrays,
    sample_key,
    sample_rows_for,
    unit_measure,
)

__all__ = [
    "LOGS", "LOG_FIELDS", "QUANTITIES", "SQUARES", "VALUES", "Bounds", "ClassSummary",
    "FloorJob", "Grid", "ItemResult", "LogSummary", "MemoryJob", "Rows", "StreamJob",
    "SummarySpec", "Windows", "add_below_floor", "bin_centres", "chunk_rows", "cost_bins",
    "drift_base", "drift_floor", "floor_item", "floor_range", "floors_to_sum", "limits",
    "memory_items", "merge_below_floor", "normalise", "present_fields", "priorities",
    "quantity_arrays", "role_fields", "sample_key", "sample_rows_for", "summarize",
    "summarize_item", "summarize_range", "too_many_classes", "unit_measure",
]  # fmt: skip
