"""Test configuration: property-based tests are reproducible (fixed examples, no deadline);
the worker-process tests share how they start their workers."""

from collections.abc import Callable

import pytest
from hypothesis import settings

from costsim import parallel
from costsim.parallel import processes

settings.register_profile("costsim", derandomize=True, deadline=None, database=None)
settings.load_profile("costsim")


@pytest.fixture(scope="module")
def fork_server() -> Callable[[str], None]:
    """Start the fork server for a module's work and wait until a process starts from it, as
    the fit and the forecast start it ahead of their maps."""

    def start(module: str) -> None:
        parallel.Parallel(2).start_processes(module)
        probe = processes._ServerProbe(processes._fork_server(module))
        assert probe.done.wait(60) and probe.works

    return start


@pytest.fixture
def fresh_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """No kept workers from an earlier test, and workers started from a map's first item."""
    parallel.shutdown_workers()
    monkeypatch.setattr(processes, "PROCESSES_FOR_S", 0.0)
