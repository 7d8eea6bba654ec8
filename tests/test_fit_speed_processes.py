"""The classes of a fit fitted in worker processes (issue 11): the same model, to the byte.

The fit of a class is many small numpy calls that hold the interpreter's lock, so threads did
not speed it up; `Parallel.map(..., processes=True)` runs such items on worker processes
(forked from a fork server) once the items left look longer than `parallel.PROCESSES_FOR_S`,
and here meanwhile. These tests set that to 0 (the workers start after the first item, with the
fork server already up) and check that the results, their order, the warnings and the errors
are those of one worker.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from synth import SplicedTruth, drifting_costs, make_log

from costsim.errors import FitError
from costsim.logs import PilotLog
from costsim.model.file import model_to_json
from costsim.model.fit import FitOptions, fit_model
from costsim.parallel import Parallel

PAUSE_S = 0.05  # each item of the map tests: longer than a worker's start from a warm server


@pytest.fixture(scope="module", autouse=True)
def server_up(fork_server: Callable[[str], None]) -> None:
    fork_server("costsim.model.fit")


pytestmark = pytest.mark.usefixtures("fresh_workers")


# module-level: the workers import this module to find them


def _where(pause: float, x: int) -> tuple[int, int]:
    time.sleep(pause)
    return x, os.getpid()


def _warned(pause: float, x: int) -> int:
    time.sleep(pause)
    warnings.warn(f"item {x}", UserWarning, stacklevel=1)
    return x


def _third_fails(pause: float, x: int) -> int:
    time.sleep(pause)
    if x == 3:
        raise ValueError(f"item {x} failed")
    return x


def test_processes_give_the_results_in_order() -> None:
    got = list(Parallel(2).map(_where, range(12), PAUSE_S, processes=True))
    assert [x for x, _ in got] == list(range(12))
    here = os.getpid()
    assert got[0][1] == here  # the first item runs here, the workers start
    assert any(pid != here for _, pid in got)  # and take the rest once up


def test_a_worker_s_warnings_are_issued_here() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert list(Parallel(2).map(_warned, range(6), PAUSE_S, processes=True)) == list(range(6))
    assert [(w.category, str(w.message)) for w in caught] == [
        (UserWarning, f"item {x}") for x in range(6)
    ]


def test_a_worker_s_error_is_raised_here() -> None:
    with pytest.raises(ValueError, match="item 3 failed"):
        list(Parallel(2).map(_third_fails, range(8), PAUSE_S, processes=True))


def _log() -> PilotLog:
    """Classes with their own tails, one heavy (a warning), one small (a borrowed shape and
    its warning), two drifting (the common drift), over three days."""
    rng = np.random.default_rng(20261128)
    classes, stamps = {}, {}
    for i, xi in enumerate((0.1, 0.3, 0.7, 0.2, 0.4)):
        n = 1500 + 700 * i
        classes[f"c{i}"] = SplicedTruth(xi).sample(n, rng)
        stamps[f"c{i}"] = 1.7e9 + np.sort(rng.random(n)) * 3 * 86400.0
    for name in ("d0", "d1"):
        stamps[name], classes[name] = drifting_costs(72, 40, 0.05, rng)
    classes["small"] = SplicedTruth(0.3).sample(60, rng)
    stamps["small"] = 1.7e9 + np.sort(rng.random(60)) * 3 * 86400.0
    return make_log(classes, timestamps=stamps)


def test_classes_fitted_on_workers_give_the_same_model_and_warnings() -> None:
    log = _log()
    options = FitOptions(seed=5)
    fits = []
    for workers in (1, 2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = fit_model(log, options, parallel=Parallel(workers))
        fits.append((model_to_json(model), [(w.category, str(w.message)) for w in caught]))
    (one, one_warned), (two, two_warned) = fits
    assert two == one
    assert two_warned == one_warned
    assert any("borrowed" in m for _, m in one_warned) and any("xi" in m for _, m in one_warned)


def test_a_class_s_error_on_a_worker_is_the_fit_s_error() -> None:
    log = _log()
    cap = 0.19  # below the largest cost of 'd1' only, the seventh class of eight
    message = r"--cap cost_usd=0.19 is below the largest cost_usd observed in class 'd1'"
    for workers in (1, 2):
        with pytest.raises(FitError, match=message):
            fit_model(log, FitOptions(caps={"cost_usd": cap}), parallel=Parallel(workers))
