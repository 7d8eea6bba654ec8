"""Where chunks of work run: this machine's cores, or a Dask cluster (DESIGN section 7).

The caller cuts its work into items whose result depends on the item alone (a chunk of trials
with its own `SeedSequence` child, a fragment of a dataset) and merges the results in item
order. So the answer is the same bytes for one worker, for every core, and on a cluster: only
where each item is computed changes.

Locally, items run on threads, or on worker processes. Threads share the prepared work
without copying it, and numpy, pyarrow and BLAS release the GIL in their loops; but what holds
the GIL between them is paid once per process: the fit of a class (many small numpy calls) is
mostly that, a chunk of a forecast about a quarter, which kept two threads to about 1.4x. Such
work asks for processes (``map(..., processes=True)``), which receive ``shared`` and the items
pickled, as a cluster does: about 1.8x on a forecast of 200,000 trials on two cores, where
threads gave 1.3x. The worker processes are started only for work long enough to pay for their
start-up (items run here meanwhile), then kept for the process's later maps. BLAS is held to
one thread inside the work, so that it neither competes with the workers nor changes how a
product is summed.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
import os
import pickle
import sys
import tempfile
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import cache
from itertools import count, islice
from typing import Any, Literal, TypeVar

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
        meanwhile: Literal["here", "threads"] = "here",
    ) -> Iterator[R]:
        """``fn(shared, item)`` for every item, yielded in item order (as each is ready).

        ``fn`` must be a module-level function and ``shared`` and the items picklable when a
        scheduler is set: they travel to the cluster (``shared`` once per worker). With
        ``processes``, local workers are processes rather than threads, and the same holds for
        them (see `_process_map`); until they are up, items run here one after another, or on
        threads with ``meanwhile="threads"`` (work that mostly releases the GIL). One worker
        runs the items here.
        """
        work = list(items)
        if self.scheduler is not None:
            return _dask_map(_client(self.scheduler), fn, work, shared)
        if self.workers == 1 or len(work) <= 1:
            return _pinned(lambda: (fn(shared, item) for item in work))
        if processes:
            return _process_map(fn, work, shared, self.workers, meanwhile)
        return _pinned(lambda: _thread_map(fn, iter(work), shared, min(self.workers, len(work))))

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

    def start_processes(self, module: str, *, wait: bool = False, workers: bool = False) -> None:
        """Start the fork server of a later ``map(..., processes=True)`` of a function of
        ``module`` now, without waiting for it (it imports the module: a second or so), for a
        caller that will certainly need it and has other work meanwhile. With ``workers``, the
        worker processes are started too, on a thread of their own, as soon as the server is
        ready: a map that comes a second or more later runs on them from its first item. With
        ``wait``, they are started and waited for until each has answered (a program that will
        run many forecasts). Nothing to do for one worker, on a cluster, or in a worker
        process."""
        if (
            self.scheduler is None
            and self.workers > 1
            and multiprocessing.parent_process() is None
            and _processes_possible()
        ):
            _fork_server(module)
            multiprocessing.forkserver.ensure_running()
            if wait:
                _answered(self.workers, module)
            elif workers:
                with _pool_lock:
                    since = _generation  # a shutdown after this call cancels the start
                threading.Thread(
                    target=_answered, args=(self.workers, module, since), daemon=True,
                    name="costsim-start-workers",
                ).start()  # fmt: skip

    def start_processes_for(self, module: str, seconds: float) -> None:
        """`start_processes` for work expected to take ``seconds`` on one core, where its maps
        would start worker processes anyway (longer than `PROCESSES_FOR_S`): the fork server
        imports ``module`` while the caller gets the work ready."""
        if seconds > PROCESSES_FOR_S:
            self.start_processes(module)


SERIAL = Parallel()
SWEEP_AT_ONCE = 8  # items of a sweep on a cluster at once


def _pinned(results: Callable[[], Iterator[R]]) -> Iterator[R]:
    """Results with BLAS held to one thread while they are computed."""
    with one_blas_thread():
        yield from results()


_blas: tuple[int, Any] | None = None  # (modules imported when it was made, the controller)


def one_blas_thread() -> Any:
    """``threadpool_limits(limits=1, user_api="blas")``, without finding the loaded BLAS
    libraries again each time (about 2 ms, for every map and every task on a cluster): they are
    found again once modules were imported since, as a library comes with the module that
    loads it."""
    global _blas
    from threadpoolctl import ThreadpoolController

    loaded = len(sys.modules)
    if _blas is None or _blas[0] != loaded:
        _blas = (loaded, ThreadpoolController())
    return _blas[1].limit(limits=1, user_api="blas")


def _thread_map(
    fn: Callable[[S, T], R],
    rest: Iterator[T],
    shared: S,
    n: int,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[R]:
    """At most ``2 n`` items under way or waiting to be taken: memory stays bounded however
    many items there are. With ``stop``, see `_in_order`."""
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="costsim") as pool:
        yield from _in_order(lambda item: pool.submit(fn, shared, item), rest, n, stop)


def _in_order(
    submit: Callable[[T], Future[R]],
    rest: Iterator[T],
    n: int,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[R]:
    """The results of ``submit`` over the items of ``rest``, in order, with at most ``2 n``
    submitted and not yet taken. Once ``stop()`` is true after a result is taken, no more items
    are submitted: those under way are given, and the rest is left in ``rest``."""
    ahead = deque(submit(item) for item in islice(rest, 2 * n))
    try:
        while ahead:
            result = ahead.popleft().result()
            if not stop():
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

_pool: tuple[int, ProcessPoolExecutor] | None = None  # this process's workers, kept for reuse
_up: set[int] = set()  # id() of the kept pool once its workers have answered
_generation = 0  # shutdowns and dropped pools so far: a start asked for before one is void
_pool_lock = threading.Lock()
_maps = count()  # the maps of this process that sent a shared value to its workers
_worker_shared: tuple[str | bytes, Any] | None = None  # in a worker: the last map's shared


def _processes_possible() -> bool:
    """Whether this system starts processes from a fork server (not on Windows: there, the
    items run on threads or here)."""
    return START_METHOD in multiprocessing.get_all_start_methods()


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


def _answered(n: int, module: str, since: int | None = None) -> None:
    """This process's ``n`` workers started (`_start_pool`), once each has run an item.

    On a thread of its own (``since``: the `_generation` when the start was asked for) nothing
    is started if the workers were shut or dropped since, and a failure is left to the map that
    uses them (it starts its own, or runs its items here)."""
    pool = None
    try:
        pool = _start_pool(n, module) if since is None else _start_pool_since(n, module, since)
        if pool is None:
            return
        for future in [pool.submit(_nothing) for _ in range(n)]:
            future.result()
    except Exception:
        if since is None:
            raise
        if pool is not None:
            with contextlib.suppress(Exception):  # shut meanwhile, perhaps
                _drop_pool(pool)
    else:
        _mark_up(pool)


def _process_map(
    fn: Callable[[S, T], R], work: Sequence[T], shared: S, n: int, meanwhile: str
) -> Iterator[R]:
    """The items in order on ``n`` worker processes, which this process keeps for later maps
    (their start is paid once; ``shared`` is sent to each worker once per map, see
    `_PoolMap`).

    Until they are up, items run here: one after another, or on ``n`` threads with
    ``meanwhile="threads"`` (work that mostly releases the GIL). They are started once the
    items left look longer than `PROCESSES_FOR_S` at the pace of those done, and taken as soon
    as they answer (`_ServerProbe`). Which items run where depends on the clock, what they give
    does not; where no process can be started, they all run here. A worker's warnings are
    issued here with its result, as if it had run here."""
    rest = iter(work)
    if _live_pool(n) is None:
        probe: _ServerProbe | None = None
        start, done = time.monotonic(), 0
        lanes = n if meanwhile == "threads" else 1
        possible = _processes_possible()

        def workers_up() -> bool:
            nonlocal probe, done
            if _live_pool(n) is not None:  # started in the background meanwhile
                return True
            done += 1
            left = (time.monotonic() - start) / done * (len(work) - done) / lanes
            if probe is None and possible and not _ServerProbe.failed and left > PROCESSES_FOR_S:
                probe = _ServerProbe(_fork_server(fn.__module__))
            return probe is not None and probe.ready()

        if lanes > 1:
            yield from _pinned(lambda: _thread_map(fn, rest, shared, n, workers_up))
        else:
            yield from _pinned(lambda: _here(fn, rest, shared, workers_up))
        if _live_pool(n) is None and (probe is None or not probe.ready()):
            return  # all done here
    yield from _PoolMap(_start_pool(n, fn.__module__), fn, shared).results(rest, n)


def _here(
    fn: Callable[[S, T], R], rest: Iterator[T], shared: S, stop: Callable[[], bool]
) -> Iterator[R]:
    """The items of ``rest`` one after another, until ``stop()`` after one of them."""
    for item in rest:
        yield fn(shared, item)
        if stop():
            return


def _live_pool(n: int) -> ProcessPoolExecutor | None:
    """The kept pool of ``n`` workers, once they have answered (a pool still starting is not:
    a map runs its first items here meanwhile)."""
    with _pool_lock:
        up = _pool is not None and _pool[0] == n and id(_pool[1]) in _up
        return _pool[1] if up and _pool is not None else None


def _mark_up(pool: ProcessPoolExecutor) -> None:
    with _pool_lock:
        if _pool is not None and _pool[1] is pool:
            _up.add(id(pool))


def _start_pool(n: int, module: str) -> ProcessPoolExecutor:
    """This process's ``n`` workers, started now if none are (those of another size shut)."""
    with _pool_lock:
        return _kept_pool(n, module)


def _start_pool_since(n: int, module: str, since: int) -> ProcessPoolExecutor | None:
    """`_start_pool`, unless the workers were shut or dropped after `_generation` ``since``."""
    with _pool_lock:
        return _kept_pool(n, module) if _generation == since else None


def _kept_pool(n: int, module: str) -> ProcessPoolExecutor:
    """`_start_pool` with ``_pool_lock`` held."""
    global _pool
    from .memory import malloc_tuned

    if _pool is not None and _pool[0] == n:
        return _pool[1]
    if _pool is not None:
        _up.discard(id(_pool[1]))
        _pool[1].shutdown(wait=False, cancel_futures=True)
    pool = ProcessPoolExecutor(
        n, mp_context=_fork_server(module), initializer=_start_worker,
        initargs=(malloc_tuned(),),
    )  # fmt: skip
    _pool = (n, pool)
    return pool


def shutdown_workers() -> None:
    """Stop the worker processes this process keeps (they also stop when it exits): a program
    that is done with costsim's parallel work may free their memory."""
    global _pool, _generation
    with _pool_lock:
        pool, _pool = (_pool[1] if _pool is not None else None), None
        _up.clear()
        _generation += 1
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def _drop_pool(pool: ProcessPoolExecutor) -> None:
    """Forget a pool whose worker died: the next map starts new workers."""
    global _pool, _generation
    with _pool_lock:
        if _pool is not None and _pool[1] is pool:
            _pool = None
        _up.discard(id(pool))
        _generation += 1
    pool.shutdown(wait=False, cancel_futures=True)


class _PoolMap:
    """One map's items on the kept workers. ``shared`` is pickled once per map, to a file of
    its own (removed when the map ends); each task carries the file's name, and a worker reads
    it once, at its first item of the map, keeping only the last map's value. Where no file
    can be written, every task carries the value itself."""

    def __init__(self, pool: ProcessPoolExecutor, fn: Callable[[Any, Any], Any], shared: Any):
        self.pool, self.fn = pool, fn
        self.where = _shared_file(pickle.dumps(shared, protocol=pickle.HIGHEST_PROTOCOL))

    def _submit(self, item: Any) -> Future[tuple[Any, list[Warning | str]]]:
        return self.pool.submit(_run_in_worker, self.fn, self.where, item)

    def results(self, rest: Iterator[Any], n: int) -> Iterator[Any]:
        try:
            for result, caught in _in_order(self._submit, rest, n):
                _mark_up(self.pool)
                for message in caught:
                    warnings.warn(message, stacklevel=2)
                yield result
        except BrokenProcessPool:
            _drop_pool(self.pool)
            raise
        finally:
            if isinstance(self.where, str):
                os.unlink(self.where)


def _shared_file(blob: bytes) -> str | bytes:
    """The name of a new file holding ``blob``, or the blob itself where none can be written."""
    try:
        prefix = f"costsim-shared-{os.getpid()}-{next(_maps)}-"  # never a name a worker holds
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".pickle")
    except OSError:
        return blob
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
    except OSError:
        os.unlink(name)
        return blob
    return name


def _start_worker(tune_malloc: bool) -> None:
    from threadpoolctl import threadpool_limits

    if tune_malloc:
        from .memory import tune_as_asked

        tune_as_asked()
    threadpool_limits(limits=1, user_api="blas")  # for the life of the worker (found once)


def _run_in_worker(
    fn: Callable[[Any, Any], Any], where: str | bytes, item: Any
) -> tuple[Any, list[Warning | str]]:
    """``fn`` on the item and the map's shared value (read from ``where`` at the worker's first
    item of the map), with the warnings it issued."""
    global _worker_shared
    if _worker_shared is None or _worker_shared[0] != where:
        _worker_shared = None  # the last map's value freed before this one is read
        if isinstance(where, bytes):
            _worker_shared = (where, pickle.loads(where))
        else:
            with open(where, "rb") as f:
                _worker_shared = (where, pickle.load(f))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(_worker_shared[1], item)
    return result, [w.message for w in caught]


# ---------------------------------------------------------------------------------------------
# Dask
# ---------------------------------------------------------------------------------------------


@cache
def _client(address: str) -> Any:
    """One client per scheduler address for the life of the process, made once the address
    has answered as a Dask scheduler (`_ask_scheduler`)."""
    try:
        from distributed import Client
    except ImportError:
        raise ParallelError(
            f"--scheduler {address}: running on a Dask cluster needs the dask extra ({DASK_EXTRA})"
        ) from None
    _ask_scheduler(address)
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise _no_scheduler(address, exc) from None


def _ask_scheduler(address: str) -> None:
    """That a Dask scheduler answers at ``address`` within `CONNECT_TIMEOUT_S`, asked for its
    identity on a connection of its own, before any client is made: a client made for an
    address that is not a scheduler's can wait forever for a reply (a web server that keeps
    the connection open), read a stranger's bytes as a frame of exabytes (a MemoryError), and
    print a traceback when it is collected. Any failure is one `ParallelError`."""
    import asyncio

    from distributed.comm import connect
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import get_backend
    from distributed.security import Security

    security = Security().get_connection_args("client")

    try:  # what `connect` would refuse before connecting
        scheme, where = parse_address(address)
        get_backend(scheme)
        if scheme in ("tcp", "tls"):
            parse_host_port(where)
    except ValueError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ParallelError(
            f"--scheduler {address}: not a scheduler's address ({reason}); expected one like "
            "tcp://HOST:8786, as `dask scheduler` prints it"
        ) from None

    async def identity() -> Any:
        # the comms' handshake too; with the security (TLS) the dask config gives a client
        comm = await connect(address, timeout=CONNECT_TIMEOUT_S, **security)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    async def asked() -> Any:
        try:
            return await asyncio.wait_for(identity(), CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError):
            raise
        except (MemoryError, ValueError, TypeError, KeyError) as exc:  # a stranger's bytes
            # read as a frame (of exabytes: MemoryError; more dimensions than numpy allows)
            raise _Stranger("it answered in another protocol") from exc

    answer: list[Any] = []

    def ask() -> None:  # a thread of its own: the caller may be inside an event loop
        try:
            answer.append(asyncio.run(asked()))
        except Exception as exc:
            answer.append(exc)

    thread = threading.Thread(target=ask, daemon=True, name="costsim-probe")
    thread.start()
    thread.join(CONNECT_TIMEOUT_S + 1.0)
    got = answer[0] if answer else TimeoutError(f"no answer in {CONNECT_TIMEOUT_S:g} s")
    if isinstance(got, BaseException):
        raise _no_scheduler(address, got)
    if not (isinstance(got, dict) and got.get("type") == "Scheduler"):
        kind = got.get("type") if isinstance(got, dict) else None
        raise ParallelError(
            f"--scheduler {address}: "
            + (f"a Dask {kind}, not the scheduler, answered" if kind else "not a Dask scheduler")
            + "; give the scheduler's address (`dask scheduler` prints it)"
        )


class _Stranger(Exception):
    """Something other than Dask answered."""


def _no_scheduler(address: str, exc: BaseException) -> ParallelError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, TimeoutError):  # asyncio's too, from Python 3.11
        reason = f"no answer in {CONNECT_TIMEOUT_S:g} s"
    return ParallelError(
        f"--scheduler {address}: no Dask scheduler answered ({reason}); start one with "
        "`dask scheduler` and workers with `dask worker ADDRESS`"
    )


def _on_worker(fn: Callable[[S, T], R], shared: S, item: T) -> R:
    with one_blas_thread():
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
