"""The same bytes on a Dask cluster as on one core (DESIGN section 7): a `LocalCluster` of two
worker processes runs the forecast's chunks of trials and the fit's parts of a pilot, and the
forecast JSON and the model file are compared byte for byte."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from cli_helpers import run

from costsim.model.file import load_model, model_to_json
from costsim.model.fit import fit_source
from costsim.parallel import SERIAL, Parallel, ParallelError
from costsim.report.forecast import forecast_to_json
from costsim.scenario import load_scenario
from costsim.simulate.forecast import run_forecast

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        yield cluster.scheduler_address
        from costsim.parallel.cluster import client

        client(cluster.scheduler_address).close()  # before its cluster goes: no reconnecting
        client.cache_clear()


def _forecast(parallel: Parallel) -> str:
    sc = load_scenario(ROOT / "scenarios" / "launch_month.yaml")
    assert sc.model_path is not None
    sc = replace(sc, trials=5000)  # three chunks of trials, so that both workers get some
    return forecast_to_json(run_forecast(sc, load_model(sc.model_path), parallel=parallel))


def test_a_forecast_on_a_local_cluster_is_the_same_bytes_as_on_one_core(scheduler: str) -> None:
    on_cluster = Parallel.from_options(None, scheduler)
    assert on_cluster.scheduler == scheduler
    assert _forecast(on_cluster) == _forecast(SERIAL)


@pytest.mark.filterwarnings("ignore::costsim.errors.HeavyTailWarning")  # the bundled pilot's
def test_a_fit_on_a_local_cluster_is_the_same_model_file_as_on_one_core(
    scheduler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = pq.read_table(ROOT / "scenarios" / "pilot.parquet")
    (tmp_path / "pilot").mkdir()
    for i, first in enumerate(range(0, table.num_rows, 20_000)):  # three files of the same log
        pq.write_table(table.slice(first, 20_000), tmp_path / "pilot" / f"part-{i}.parquet")
    monkeypatch.chdir(tmp_path)  # a path relative to here, not to the workers' directory
    parts = Path("pilot")
    on_cluster = fit_source(parts, parallel=Parallel.from_options(None, scheduler)).model
    on_one_core = fit_source(parts).model
    assert model_to_json(on_cluster) == model_to_json(on_one_core)


def test_the_scheduler_comes_from_the_environment(
    scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSTSIM_DASK_SCHEDULER", scheduler)
    assert Parallel.from_options(2, None) == Parallel(2, scheduler)
    monkeypatch.setenv("COSTSIM_DASK_SCHEDULER", "")
    assert Parallel.from_options(2, None) == Parallel(2, None)


def test_a_scheduler_that_does_not_answer_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("costsim.parallel.cluster.CONNECT_TIMEOUT_S", 0.5)
    with pytest.raises(ParallelError, match=r"--scheduler tcp://127\.0\.0\.1:9: no Dask scheduler"):
        Parallel.from_options(None, "tcp://127.0.0.1:9")


def test_a_scheduler_from_the_environment_is_named_so_and_can_be_left_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The error names the environment variable the address came from (the user typed no
    --scheduler), and --scheduler '' runs here whatever it says."""
    monkeypatch.setattr("costsim.parallel.cluster.CONNECT_TIMEOUT_S", 0.5)
    monkeypatch.setenv("COSTSIM_DASK_SCHEDULER", "tcp://127.0.0.1:9")
    said = r"^COSTSIM_DASK_SCHEDULER=tcp://127\.0\.0\.1:9: no Dask scheduler answered"
    with pytest.raises(ParallelError, match=said):
        Parallel.from_options(None, None)
    assert Parallel.from_options(2, "") == Parallel(2, None)
    result = run("forecast", str(ROOT / "scenarios" / "launch_month.yaml"), "-q", "--trials",
                 "2000", "--json", "-", "--scheduler", "", "--workers", "1")  # fmt: skip
    assert result.exit_code == 0, result.stderr


@contextmanager
def stranger(reply: bytes | None) -> Iterator[str]:
    """A TCP server that is not Dask: it accepts, then sends ``reply`` (None: nothing) and
    keeps the connection open, as a web server waiting for its request does."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            if reply is not None:
                conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        for conn in held:
            conn.close()


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (None, "no answer in 0.5 s"),  # a web server: it waits for a request
        (b"\xff" * 64, "it answered in another protocol"),  # read as a frame of exabytes
        (b"HTTP/1.0 400 Bad Request\r\n\r\n", "no Dask scheduler answered"),
    ],
)
def test_an_address_that_is_not_a_dask_scheduler_is_one_clear_error_soon(
    monkeypatch: pytest.MonkeyPatch, reply: bytes | None, reason: str
) -> None:
    monkeypatch.setattr("costsim.parallel.cluster.CONNECT_TIMEOUT_S", 0.5)
    with stranger(reply) as address:
        start = time.monotonic()
        with pytest.raises(ParallelError, match=rf"--scheduler {address}: .*{reason}"):
            Parallel.from_options(None, address)
        assert time.monotonic() - start < 3.0


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("nonsense", "missing port number"),
        ("foo://x:1", "unknown address scheme 'foo'"),
        ("tcp://127.0.0.1:99999", "port 99999 is not between 1 and 65535"),
    ],
)
def test_what_is_no_address_is_said_before_connecting(address: str, reason: str) -> None:
    said = rf"--scheduler {address}: not a scheduler's address \(.*{reason}"
    with pytest.raises(ParallelError, match=said):
        Parallel.from_options(None, address)


def test_a_worker_s_address_is_not_taken_for_the_scheduler_s(scheduler: str) -> None:
    client = distributed.Client(scheduler, set_as_default=False)
    try:
        worker = next(iter(client.scheduler_info()["workers"]))
    finally:
        client.close()
    with pytest.raises(ParallelError, match="a Dask Worker, not the scheduler, answered"):
        Parallel.from_options(None, worker)


def test_the_command_line_says_so_in_one_line_and_nothing_after(tmp_path: Path) -> None:
    # in a process of its own: a half-made Dask client printed a traceback when it was collected
    # at exit, after the error line
    with stranger(b"\xff" * 64) as address:
        done = subprocess.run(
            [sys.executable, "-c", "from costsim.cli import main; main()", "forecast",
             str(ROOT / "scenarios" / "launch_month.yaml"), "-q", "--scheduler", address],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: --scheduler {address}: no Dask scheduler answered (it answered in another "
        "protocol); start one with `dask scheduler` and workers with `dask worker ADDRESS`"
    ]
    assert done.stdout == ""


def test_a_check_of_several_scenarios_on_a_cluster_is_the_same_json(
    scheduler: str, tmp_path: Path
) -> None:
    # the scenarios of a check run at once on a cluster (`Parallel.sweep`): the same verdicts
    scenarios = [ROOT / "scenarios" / n for n in ("launch_month.yaml", "price_change.yaml")]
    common = ["--max", "p95=1000000000", "--trials", "3000", "--json", "-"]
    local = run("check", *scenarios, *common, "--workers", "1")
    on_cluster = run("check", *scenarios, *common, "--scheduler", scheduler)
    assert local.exit_code == on_cluster.exit_code == 0, local.stderr + on_cluster.stderr
    assert on_cluster.stdout == local.stdout


def test_a_comparison_of_deployments_on_a_cluster_is_the_same_json(scheduler: str) -> None:
    # the pricings' forecasts and then every option's chunks of trials run on the cluster
    scenario = ROOT / "scenarios" / "deployments.yaml"
    common = ["--trials", "6000", "--json", "-"]  # three chunks of trials
    local = run("compare", scenario, *common, "--workers", "1")
    two = run("compare", scenario, *common, "--workers", "2")
    on_cluster = run("compare", scenario, *common, "--scheduler", scheduler)
    assert local.exit_code == two.exit_code == on_cluster.exit_code == 0, on_cluster.stderr
    assert on_cluster.stdout == two.stdout == local.stdout


def test_a_sweep_gives_its_results_and_its_first_error_in_item_order() -> None:
    def slow_first(i: int) -> int:  # the earlier items finish last
        time.sleep(0.05 * (3 - i))
        return i * i

    sweep = Parallel(2, "tcp://unused:1")  # sweep only runs items on client threads
    assert sweep.sweep(slow_first, [0, 1, 2]) == [0, 1, 4]

    def fails(i: int) -> int:
        time.sleep(0.05 * (3 - i))
        if i:
            raise ValueError(f"item {i}")
        return i

    with pytest.raises(ValueError, match="item 1"):
        sweep.sweep(fails, [0, 1, 2])
    assert SERIAL.sweep(slow_first, [2, 0]) == [4, 0]  # locally: one after another
