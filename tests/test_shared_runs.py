"""Work a forecast shares between its runs gives the numbers each run gives alone.

A chunk of trials is one job for every kind of run that has it (runs with the same traffic and
parameter rows: the bridge's spike, retry and cold-start steps), and those runs share the
job's per-class sums; the forecast and the other steps are jobs of their own, on the same
chunk's draws. Neither may change a number. (Strata built for a class's reference intensity:
tests/test_strata.py.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from costsim.model.file import load_model
from costsim.parallel import Parallel
from costsim.scenario import parse_scenario
from costsim.simulate.chunks import CHUNK_TRIALS, Run, _jobs, _sums_key, simulate_runs
from costsim.simulate.engine import aggregate, build_strata
from costsim.simulate.prepare import Prepared, prepare
from costsim.simulate.repricing import quantity_rows
from costsim.simulate.traffic import Drivers

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
MODEL = load_model(SCENARIOS / "pilot.model.json")
# the bridge's drivers: no spikes; spikes; + retries; + cold starts; everything
STEPS = (
    Drivers(True, False, False, False, False),
    Drivers(True, True, False, False, False),
    Drivers(True, True, True, False, False),
    Drivers(True, True, True, True, False),
    Drivers(),
)


def _prepared(trials: int) -> Prepared:
    path = SCENARIOS / "launch_month.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["reliability"] = {**doc["reliability"], "error_rate": 0.02, "max_attempts": 3}
    doc["trials"] = trials
    return prepare(parse_scenario(doc, path, SCENARIOS), MODEL)


@pytest.mark.parametrize("workers", [1, 2])
def test_runs_simulated_together_are_the_runs_simulated_alone(workers: int) -> None:
    trials = 2 * CHUNK_TRIALS + 300  # a short last chunk, and bridge runs of other lengths
    prep = _prepared(trials)
    lengths = (CHUNK_TRIALS, trials, CHUNK_TRIALS + 7, 300)
    runs = [Run(STEPS[-1], daily=True)] + [
        Run(d, n) for d, n in zip(STEPS[:-1], lengths, strict=True)
    ]
    together = simulate_runs(prep, runs, parallel=Parallel(workers))
    for run, got in zip(runs, together, strict=True):
        [alone] = simulate_runs(prep, [run])
        np.testing.assert_array_equal(got.totals, alone.totals)
        np.testing.assert_array_equal(got.requests, alone.requests)
        assert (got.daily is None) == (alone.daily is None)
        if got.daily is not None and alone.daily is not None:
            np.testing.assert_array_equal(got.daily, alone.daily)
    # the retry and cold-start steps share the spike step's sums but not its multipliers
    first = slice(0, CHUNK_TRIALS)  # the chunk the spike and retry steps both have
    np.testing.assert_array_equal(together[2].requests[first], together[3].requests[first])
    assert not np.array_equal(together[2].totals[first], together[3].totals[first])


def test_jobs_share_a_chunk_between_runs_of_one_kind_the_largest_kind_first() -> None:
    sizes = [3 * CHUNK_TRIALS, CHUNK_TRIALS + 7, CHUNK_TRIALS + 7, CHUNK_TRIALS + 7, 300]
    drivers = [STEPS[-1], STEPS[1], STEPS[2], STEPS[3], STEPS[0]]
    jobs = _jobs(sizes, [_sums_key(d) for d in drivers])
    # every chunk of every run in exactly one job, with the chunk's trials
    seen = sorted((i, job.chunk, job.start, job.n) for job in jobs for i in job.runs)
    expected = sorted(
        (i, chunk, start, min(CHUNK_TRIALS, n - start))
        for i, n in enumerate(sizes)
        for chunk, start in enumerate(range(0, n, CHUNK_TRIALS))
    )
    assert seen == expected
    # the spike, retry and cold-start steps share their jobs; no job mixes kinds
    assert [job.runs for job in jobs] == [(1, 2, 3), (1, 2, 3), (0,), (0,), (0,), (4,)]
    for job in jobs:
        assert len({_sums_key(drivers[i]) for i in job.runs}) == 1


def test_strata_built_for_a_lower_intensity_are_refused() -> None:
    unit = quantity_rows(next(iter(MODEL.classes.values())), "cost_usd", np.random.default_rng(0))
    strata = build_strata(unit, 1e3)
    lam = np.full(10, 1e6)
    with pytest.raises(ValueError, match="build them for this reference intensity"):
        aggregate(strata, lam, np.zeros(10, np.int64), np.random.default_rng(0), 1e6)
