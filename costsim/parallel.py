"""Where chunks of work run: this machine's cores, or a Dask cluster (DESIGN section 7).

The caller cuts its work into items whose result depends on the item alone (a chunk of trials
with its own `SeedSequence` child, a fragment of a dataset) and merges the results in item
order. So the answer is the same bytes for one worker, for every core, and on a cluster: only
where each item is computed changes.

Locally, items run on threads: numpy, pyarrow and BLAS release the GIL in their loops, and
threads share the prepared forecast without copying it. Work made of many small numpy calls
holds the GIL most of the time instead (the fit of a class): it asks for processes
(``map(..., processes=True)``), which receive ``shared`` and the items pickled, as a cluster
does. They are started only for work long enough to pay for their start-up, and items run
here while they start. BLAS is held to one thread inside the work, so that it neither competes
with the workers nor changes how a product is summed.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from itertools import islice
from typing import Any, TypeVar

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")

ENV_SCHEDULER = "COSTSIM_DASK_SCHEDULER"
CONNECT_TIMEOUT_S = 10.0
DASK_EXTRA = "pip install 'costsim[dask]'"


class ParallelError(ValueError):
    """A `--workers` or `--scheduler` that cannot be used (a one-line message for the user)."""


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system tells it)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


@dataclass(frozen=True)
class Parallel:
    """How many local threads, or which Dask scheduler, run the items of a `map`."""

    workers: int = 1
    scheduler: str | None = None

    @classmethod
    def from_options(cls, workers: int | None, scheduler: str | None) -> Parallel:
        """The user's `--workers` (None: every core) and `--scheduler` (None: the
        ``COSTSIM_DASK_SCHEDULER`` environment variable, if set). A scheduler is reached now,
        so that an address that does not answer is said before any work starts."""
        if workers is not None and workers < 1:
            raise ParallelError(f"--workers: expected 1 or more, got {workers}")
        address = scheduler if scheduler is not None else os.environ.get(ENV_SCHEDULER) or None
        if address is not None:
            _client(address)
        return cls(workers if workers is not None else available_cores(), address)

    def map(
        self,
        fn: Callable[[S, T], R],
        items: Iterable[T],
        shared: S,
        *,
        processes: bool = False,
    ) -> Iterator[R]:
        """``fn(shared, item)`` for every item, yielded in item order (as each is ready).

        ``fn`` must be a module-level function and ``shared`` and the items picklable when a
        scheduler is set: they travel to the cluster (``shared`` once per worker). With
        ``processes``, local workers are processes rather than threads (for work that holds
        the GIL), and the same holds for them (see `_process_map`); one worker still runs the
        items here.
        """
        work = list(items)
        if self.scheduler is not None:
            return _dask_map(_client(self.scheduler), fn, work, shared)
        if self.workers == 1 or len(work) <= 1:
            return _pinned(lambda: (fn(shared, item) for item in work))
        n = min(self.workers, len(work))
        if processes:
            return _process_map(fn, work, shared, n)
        return _pinned(lambda: _thread_map(fn, work, shared, n))

    def sweep(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``fn`` over the items of a sweep (the scenarios of a check), results in item order.
        On a cluster, up to ``SWEEP_AT_ONCE`` items run at once, each sending its own tasks:
        a scenario of a few chunks leaves room for others. Here, one after another: each item
        already runs on every core. An item's error is raised in item order, as if the items
        had run one after another, and the items not yet started are dropped."""
        if self.scheduler is None or len(items) <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(len(items), SWEEP_AT_ONCE)) as pool:
            futures = [pool.submit(fn, item) for item in items]
            try:
                return [future.result() for future in futures]
            finally:
                for future in futures:
                    future.cancel()

    def start_processes(self, module: str) -> None:
        """Start the fork server of a later ``map(..., processes=True)`` of a function of
        ``module`` now, without waiting for it (it imports the module: a second or so), for a
        caller that will certainly need it and has other work meanwhile. Nothing to do for one
        worker, on a cluster, or in a worker process."""
        if self.scheduler is None and self.workers > 1 and multiprocessing.parent_process() is None:
            _fork_server(module)
            multiprocessing.forkserver.ensure_running()


SERIAL = Parallel()
SWEEP_AT_ONCE = 8  # items of a sweep on a cluster at once


def _pinned(results: Callable[[], Iterator[R]]) -> Iterator[R]:
    """Results with BLAS held to one thread while they are computed."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield from results()


def _thread_map(fn: Callable[[S, T], R], work: Sequence[T], shared: S, n: int) -> Iterator[R]:
    """At most ``2 n`` items under way or waiting to be taken: memory stays bounded however
    many items there are."""
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="costsim") as pool:
        yield from _in_order(lambda item: pool.submit(fn, shared, item), work, n)


def _in_order(submit: Callable[[T], Future[R]], work: Sequence[T], n: int) -> Iterator[R]:
    """The results of ``submit`` over the items, in order, with at most ``2 n`` submitted and
    not yet taken."""
    rest = iter(work)
    ahead = deque(submit(item) for item in islice(rest, 2 * n))
    try:
        while ahead:
            result = ahead.popleft().result()
            ahead.extend(submit(item) for item in islice(rest, 1))
            yield result
    finally:
        for future in ahead:
            future.cancel()


# ---------------------------------------------------------------------------------------------
# Local processes
# ---------------------------------------------------------------------------------------------

#: Worker processes are forked from a fork server: a fresh interpreter started once per
#: process that imports the work's module once, so a worker starts without importing anything
#: (unlike ``spawn``) and without copying this process's threads in whatever state they are
#: (pyarrow's and BLAS's pools, a progress bar's refresh: the hazard of ``fork``). As with any
#: start method but ``fork``, a script that calls the library with several workers must guard
#: its entry point (``if __name__ == "__main__":``): the workers import the main module.
START_METHOD = "forkserver"
#: worker processes are started once the items left would take longer than this here (at the
#: pace of those done): a few times their start-up (a fork server importing the work's module,
#: about a second), during which items run here and which slows this process down
PROCESSES_FOR_S = 3.0

_job: tuple[Callable[[Any, Any], Any], Any] | None = None  # a worker process's fn and shared


def _fork_server(module: str) -> Any:
    """The context of worker processes, its fork server to import ``module`` when it starts
    (a server already running does not: its workers then import it themselves)."""
    context = multiprocessing.get_context(START_METHOD)
    context.set_forkserver_preload([module])
    return context


class _ServerProbe:
    """Whether worker processes start: a thread starts one that does nothing and waits for it
    (the fork server may still be importing the work's module, a second or so).

    Where none can (the system refuses a process, or the first one failed: a script without
    the guard of its entry point), the items run here, and no other map of this process tries
    again. A worker that is itself importing such a script raises multiprocessing's error
    about it (``error``), rather than doing that script's work once more."""

    failed = False  # a probe of this process failed

    def __init__(self, context: Any) -> None:
        self.done = threading.Event()
        self.works = False
        self.error: BaseException | None = None
        threading.Thread(target=self._probe, args=(context,), daemon=True).start()

    def _probe(self, context: Any) -> None:
        try:
            process = context.Process(target=_nothing)
            process.start()
            process.join()
            self.works = process.exitcode == 0
        except OSError:
            pass
        except BaseException as exc:  # raised where the items run
            self.error = exc
        finally:
            _ServerProbe.failed = _ServerProbe.failed or not self.works
            self.done.set()

    def ready(self) -> bool:
        """Whether the workers are up (the error of a failed start raised)."""
        if not self.done.is_set():
            return False
        if self.error is not None:
            raise self.error
        return self.works


def _nothing() -> None:
    return None


def _process_map(fn: Callable[[S, T], R], work: Sequence[T], shared: S, n: int) -> Iterator[R]:
    """The items in order: here until the items left look longer than `PROCESSES_FOR_S`, and on
    while the worker processes start (`_ServerProbe`), then on ``n`` of them, ``fn`` and
    ``shared`` sent once to each (at most ``2 n`` items under way). Which items run where
    depends on the clock, what they give does not; where no process can be started, they all
    run here. A worker's warnings are issued here with its result, as if it had run here."""
    from threadpoolctl import threadpool_limits

    context = _fork_server(fn.__module__)
    first, probe = 0, None
    start = time.monotonic()
    with threadpool_limits(limits=1, user_api="blas"):
        while first < len(work) and not (probe is not None and probe.ready()):
            result = fn(shared, work[first])
            first += 1
            left = (time.monotonic() - start) / first * (len(work) - first)
            if probe is None and not _ServerProbe.failed and left > PROCESSES_FOR_S:
                probe = _ServerProbe(context)
            yield result
    rest = work[first:]
    if not rest:
        return
    with ProcessPoolExecutor(
        min(n, len(rest)), mp_context=context, initializer=_start_worker, initargs=(fn, shared)
    ) as pool:
        for result, caught in _in_order(lambda item: pool.submit(_run_in_worker, item), rest, n):
            for message in caught:
                warnings.warn(message, stacklevel=2)
            yield result


def _start_worker(fn: Callable[[S, T], R], shared: S) -> None:
    from threadpoolctl import threadpool_limits

    global _job
    _job = (fn, shared)
    threadpool_limits(limits=1, user_api="blas")  # for the life of the worker


def _run_in_worker(item: Any) -> tuple[Any, list[Warning | str]]:
    assert _job is not None
    fn, shared = _job
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(shared, item)
    return result, [w.message for w in caught]


# ---------------------------------------------------------------------------------------------
# Dask
# ---------------------------------------------------------------------------------------------


@cache
def _client(address: str) -> Any:
    """One client per scheduler address for the life of the process."""
    try:
        from distributed import Client
    except ImportError:
        raise ParallelError(
            f"--scheduler {address}: running on a Dask cluster needs the dask extra ({DASK_EXTRA})"
        ) from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ParallelError(
            f"--scheduler {address}: no Dask scheduler answered ({reason}); start one with "
            "`dask scheduler` and workers with `dask worker ADDRESS`"
        ) from None


def _on_worker(fn: Callable[[S, T], R], shared: S, item: T) -> R:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return fn(shared, item)


def _dask_map(client: Any, fn: Callable[[S, T], R], work: Sequence[T], shared: S) -> Iterator[R]:
    """The items as tasks on the cluster, ``shared`` sent once to every worker."""
    if not work:
        return
    [shared_future] = client.scatter([shared], broadcast=True, hash=False)
    futures: list[Any] = client.map(
        _on_worker, [fn] * len(work), [shared_future] * len(work), work, pure=False
    )
    try:
        for i, future in enumerate(futures):
            result = future.result()
            futures[i] = None  # taken: the cluster may forget it
            yield result
    finally:
        client.cancel([f for f in futures if f is not None] + [shared_future])
