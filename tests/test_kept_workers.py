"""Worker processes kept for a process's later maps (issue 11: every core, same answer).

A forecast's chunk holds the interpreter's lock for about a quarter of its time, so two threads
gave about 1.4x; `Parallel.map(..., processes=True, meanwhile="threads")` runs the chunks on
worker processes instead, kept once started, each map's shared value sent to each worker once
(through a file of the map's own). These tests check that the workers are kept and reused, that
each map's items see that map's value, that the files are removed, that a dead worker is an
error and the next map starts new workers, and that a forecast on them is the same bytes.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from cli_helpers import run

from costsim import parallel
from costsim.memory import malloc_tuned, tune_as_asked
from costsim.model.file import load_model
from costsim.parallel import Parallel, processes, threads
from costsim.report.forecast import forecast_to_json
from costsim.scenario import parse_scenario
from costsim.simulate.forecast import run_forecast

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
PAUSE_S = 0.05


@pytest.fixture(scope="module", autouse=True)
def server_up(fork_server: Callable[[str], None]) -> None:
    fork_server("costsim.simulate.forecast")


pytestmark = pytest.mark.usefixtures("fresh_workers")


# module-level: the workers import this module to find them


def _where(shared: int, x: int) -> tuple[int, int, int]:
    time.sleep(PAUSE_S)
    return shared, x, os.getpid()


def _dies(shared: int, x: int) -> int:
    if x == 2:
        os._exit(3)
    time.sleep(PAUSE_S)
    return x


def _tuned(shared: None, x: int) -> bool:
    time.sleep(PAUSE_S)
    return malloc_tuned()


def _shared_files() -> set[str]:
    """This process's shared-value files (other test processes write theirs meanwhile)."""
    return {p.name for p in Path(tempfile.gettempdir()).glob(f"costsim-shared-{os.getpid()}-*")}


def test_workers_are_kept_and_each_map_s_items_see_its_own_shared_value() -> None:
    before = _shared_files()
    first = list(Parallel(2).map(_where, range(8), 1, processes=True, meanwhile="threads"))
    assert [(s, x) for s, x, _ in first] == [(1, x) for x in range(8)]
    kept = {pid for *_, pid in first} - {os.getpid()}
    assert kept  # the workers took some items once up

    second = list(Parallel(2).map(_where, range(6), 2, processes=True))
    assert [(s, x) for s, x, _ in second] == [(2, x) for x in range(6)]
    assert {pid for *_, pid in second} <= kept  # all on the kept workers, from the first item
    third = list(Parallel(2).map(_where, range(4), 3, processes=True))
    assert [s for s, *_ in third] == [3] * 4  # not the value a worker kept from before
    assert _shared_files() == before  # each map's file removed


def test_a_map_left_early_removes_its_file_and_leaves_the_workers_usable() -> None:
    before = _shared_files()
    list(Parallel(2).map(_where, range(4), 0, processes=True))  # workers up
    results = Parallel(2).map(_where, range(20), 5, processes=True)
    assert next(results)[:2] == (5, 0)
    results.close()  # type: ignore[attr-defined]
    assert _shared_files() == before
    again = list(Parallel(2).map(_where, range(4), 6, processes=True))
    assert [(s, x) for s, x, _ in again] == [(6, x) for x in range(4)]


def test_the_shared_value_travels_with_each_item_where_no_file_can_be_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refused(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(28, "No space left on device")

    list(Parallel(2).map(_where, range(4), 0, processes=True))  # workers up
    monkeypatch.setattr(processes.tempfile, "mkstemp", refused)
    got = list(Parallel(2).map(_where, range(6), 7, processes=True))
    assert [(s, x) for s, x, _ in got] == [(7, x) for x in range(6)]
    assert all(pid != os.getpid() for *_, pid in got)


def test_where_no_fork_server_can_start_the_items_run_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Windows has no fork server: threads, or this process, and the same results
    monkeypatch.setattr(processes.multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    Parallel(2).start_processes("costsim.simulate.forecast", wait=True)  # nothing to start
    assert processes._live_pool(2) is None
    for meanwhile in ("here", "threads"):
        got = list(Parallel(2).map(_where, range(6), 4, processes=True, meanwhile=meanwhile))  # type: ignore[arg-type]
        assert [(s, x, pid) for s, x, pid in got] == [(4, x, os.getpid()) for x in range(6)]
    assert processes._live_pool(2) is None


def test_a_worker_that_dies_is_an_error_and_the_next_map_starts_new_workers() -> None:
    list(Parallel(2).map(_where, range(4), 0, processes=True))  # workers up
    with pytest.raises(processes.BrokenProcessPool):
        list(Parallel(2).map(_dies, range(6), 0, processes=True))
    got = list(Parallel(2).map(_where, range(6), 8, processes=True))
    assert [(s, x) for s, x, _ in got] == [(8, x) for x in range(6)]


def test_workers_tune_malloc_as_this_process_did() -> None:
    """Even where the fork server's environment said otherwise when it started (another test
    may have set ``COSTSIM_MALLOC=default`` then): the workers follow this process."""
    if not tune_as_asked():
        pytest.skip("no glibc mallopt here")
    list(Parallel(2).map(_where, range(4), 0, processes=True))  # workers up
    assert list(Parallel(2).map(_tuned, range(4), None, processes=True)) == [True] * 4


ORPHANED = """
import os, sys, time
from costsim.parallel import Parallel

def pid(shared, x):
    time.sleep(0.2)
    return os.getpid()

if __name__ == "__main__":
    Parallel(2).start_processes(__name__, wait=True)
    pids = set(Parallel(2).map(pid, range(8), None, processes=True)) - {os.getpid()}
    print(" ".join(map(str, sorted(pids))), flush=True)
    os._exit(0)  # as a SIGKILL would end it: no pool shut, nothing cleaned up
"""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"  # not a zombie
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_workers_end_when_the_process_they_work_for_is_gone(tmp_path: Path) -> None:
    """A parent killed without shutting its pool (SIGTERM, SIGKILL, the OOM killer) left its
    workers and their fork server running for good; each worker now ends within a few of its
    checks (`PARENT_CHECK_S`) once the parent is gone."""
    script = tmp_path / "orphaned.py"
    script.write_text(ORPHANED)
    import subprocess

    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    workers = [int(p) for p in done.stdout.split()]
    assert workers  # the items ran on worker processes
    deadline = time.monotonic() + 10 * processes.PARENT_CHECK_S + 5.0
    while any(map(_running, workers)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(map(_running, workers))


def test_a_comparison_on_kept_workers_is_the_same_json_as_on_one_core() -> None:
    """In one process, as the command line runs it: the workers are found started."""
    common = [str(SCENARIOS / "deployments.yaml"), "--trials", "6000", "--json", "-"]
    one = run("compare", *common, "--workers", "1")
    list(Parallel(2).map(_where, range(4), 0, processes=True))  # workers up: chunks go there
    two = run("compare", *common, "--workers", "2")
    assert one.exit_code == two.exit_code == 0, two.stderr
    assert two.stdout == one.stdout


def _wait_until_up(n: int) -> None:
    deadline = time.monotonic() + 60
    while processes._live_pool(n) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert processes._live_pool(n) is not None


def test_workers_started_in_the_background_take_a_later_map_from_its_first_item() -> None:
    """`start_processes(..., workers=True)` returns at once; the workers come up on a thread of
    their own, and a map once they have answered runs every item on them (none here)."""
    assert processes._live_pool(2) is None
    Parallel(2).start_processes(__name__, workers=True)
    _wait_until_up(2)
    where = list(Parallel(2).map(_where, range(6), 7, processes=True))
    assert [w[:2] for w in where] == [(7, x) for x in range(6)]
    assert os.getpid() not in {w[2] for w in where}


def test_a_map_running_its_items_here_moves_to_workers_that_came_up_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A map that began before the background start finished (its first look found no live
    pool) takes the workers after its next item, however short its work looks."""
    monkeypatch.setattr(processes, "PROCESSES_FOR_S", 1e9)  # it would never start its own
    Parallel(2).start_processes(__name__, workers=True)
    _wait_until_up(2)
    real, looks = processes._live_pool, []

    def first_look_finds_none(n: int) -> processes.ProcessPoolExecutor | None:
        looks.append(n)
        return None if len(looks) == 1 else real(n)

    monkeypatch.setattr(processes, "_live_pool", first_look_finds_none)
    where = list(Parallel(2).map(_where, range(6), 7, processes=True))
    assert [w[:2] for w in where] == [(7, x) for x in range(6)]
    assert where[0][2] == os.getpid()  # the first item here, the rest on the workers
    assert os.getpid() not in {w[2] for w in where[1:]}


def test_a_background_start_asked_before_a_shutdown_starts_nothing() -> None:
    since = processes._generation
    parallel.shutdown_workers()
    processes._answered(2, __name__, since)
    assert processes._pool is None and processes._live_pool(2) is None


def test_a_failed_background_start_leaves_the_map_to_run_its_items(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refused(n: int, module: str, since: int | None = None) -> processes.ProcessPoolExecutor:
        raise OSError("no processes here")

    monkeypatch.setattr(processes, "_start_pool", refused)
    monkeypatch.setattr(processes, "_start_pool_since", refused)
    with pytest.raises(OSError):
        processes._answered(2, __name__)  # waited for: the failure is the caller's
    processes._answered(2, __name__, processes._generation)  # in the background: the map's
    assert processes._live_pool(2) is None


def test_a_forecast_on_kept_workers_is_the_same_bytes_as_on_one_core() -> None:
    path = SCENARIOS / "launch_month.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["trials"] = 6000  # three chunks, the last one short
    scenario = parse_scenario(doc, path, SCENARIOS)
    model = load_model(SCENARIOS / "pilot.model.json")
    one = forecast_to_json(run_forecast(scenario, model, parallel=Parallel(1)))
    list(Parallel(2).map(_where, range(4), 0, processes=True))  # workers up: chunks go there
    assert processes._live_pool(2) is not None
    two = forecast_to_json(run_forecast(scenario, model, parallel=Parallel(2)))
    assert two == one


def test_a_forecast_expected_to_be_long_starts_the_fork_server_before_it_prepares(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server imports costsim.simulate.forecast (a second or so) while the classes are prepared
    and
    the first chunks run on threads; a short forecast does not start it."""
    from costsim.simulate import chunks, forecast

    path = SCENARIOS / "launch_month.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["trials"] = 2000
    scenario = parse_scenario(doc, path, SCENARIOS)
    model = load_model(SCENARIOS / "pilot.model.json")
    monkeypatch.setattr(processes, "PROCESSES_FOR_S", 3.0)  # as outside the tests
    events: list[str] = []
    real_prepare = forecast.prepare
    monkeypatch.setattr(
        Parallel, "start_processes", lambda self, module, **_: events.append(f"start {module}")
    )
    monkeypatch.setattr(
        forecast, "prepare", lambda *a, **k: events.append("prepare") or real_prepare(*a, **k)
    )
    expected = chunks.expected_seconds(scenario, model)
    assert 0 < expected < processes.PROCESSES_FOR_S  # 2,000 trials: well under a second
    run_forecast(scenario, model, parallel=Parallel(2), bridge=False)
    assert events == ["prepare"]
    # the same forecast with a pace that makes it long: the server first
    pace = chunks.STRATA_S_PER_TRIAL_CLASS_HOUR * 2 * processes.PROCESSES_FOR_S / expected
    monkeypatch.setattr(chunks, "STRATA_S_PER_TRIAL_CLASS_HOUR", pace)
    assert chunks.expected_seconds(scenario, model) == pytest.approx(2 * processes.PROCESSES_FOR_S)
    events.clear()
    run_forecast(scenario, model, parallel=Parallel(2), bridge=False)
    assert events == ["start costsim.simulate.forecast", "prepare"]
    reference = chunks.expected_seconds(scenario, model, engine="reference")
    assert reference == chunks.reference_seconds(scenario)


def test_blas_is_held_to_one_thread_and_its_libraries_found_again_after_imports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import types

    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    assert before  # numpy's BLAS at least
    with parallel.one_blas_thread():
        assert blas_threads() == [1] * len(before)
        first = threads._blas
    assert blas_threads() == before  # restored
    with parallel.one_blas_thread():
        assert threads._blas is first  # nothing imported since: not searched again
    monkeypatch.setitem(sys.modules, "costsim_test_new_module", types.ModuleType("m"))
    with parallel.one_blas_thread():
        assert blas_threads() == [1] * len(before)
        assert threads._blas is not first  # searched again
    assert blas_threads() == before
