"""This machine's worker processes: started once, kept, and given the items of a map in order.

The fit of a class (many small numpy calls) mostly holds the GIL between numpy's loops, a chunk
of a forecast about a quarter of its time, which kept two threads to about 1.4x. Such work runs
on processes, which receive ``shared`` and the items pickled, as a cluster does: about 1.8x on a
forecast of 200,000 trials on two cores, where threads gave 1.3x. The worker processes are
started only for work long enough to pay for their start-up (items run here meanwhile), or
ahead of work a caller knows will come (`start`), then kept for the process's later maps.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
import os
import pickle
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import count
from typing import Any, TypeVar

from .threads import in_order, pinned, thread_map

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")

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


def processes_possible() -> bool:
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


def start(n: int, module: str, *, wait: bool, background: bool) -> None:
    """Start the fork server of ``n`` workers for a later `process_map` of a function of
    ``module`` (it imports the module: a second or so), without waiting for it. With
    ``background``, the ``n`` workers too, on a thread of their own, as soon as the server is
    ready; with ``wait``, they are started and waited for until each has answered. Nothing to
    do in a worker process, or where no process can be started."""
    if multiprocessing.parent_process() is not None or not processes_possible():
        return
    _fork_server(module)
    multiprocessing.forkserver.ensure_running()
    if wait:
        _answered(n, module)
    elif background:
        with _pool_lock:
            since = _generation  # a shutdown after this call cancels the start
        threading.Thread(
            target=_answered, args=(n, module, since), daemon=True, name="costsim-start-workers"
        ).start()


def process_map(
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
        possible = processes_possible()

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
            yield from pinned(lambda: thread_map(fn, rest, shared, n, workers_up))
        else:
            yield from pinned(lambda: _here(fn, rest, shared, workers_up))
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
    from ..memory import malloc_tuned

    if _pool is not None and _pool[0] == n:
        return _pool[1]
    if _pool is not None:
        _up.discard(id(_pool[1]))
        _pool[1].shutdown(wait=False, cancel_futures=True)
    pool = ProcessPoolExecutor(
        n, mp_context=_fork_server(module), initializer=_start_worker,
        initargs=(malloc_tuned(), os.getpid()),
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
            for result, caught in in_order(self._submit, rest, n):
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


#: how often a worker looks whether the process it works for is still there
PARENT_CHECK_S = 1.0


def _start_worker(tune_malloc: bool, parent: int) -> None:
    from threadpoolctl import threadpool_limits

    # Ctrl-C is left to end a worker: ignoring it, a worker could keep its parent waiting at
    # exit (an interrupted pool's shutdown waits for its workers, which no message may reach)
    threading.Thread(
        target=_exit_with, args=(parent,), daemon=True, name="costsim-parent-watch"
    ).start()
    if tune_malloc:
        from ..memory import tune_as_asked

        tune_as_asked()
    threadpool_limits(limits=1, user_api="blas")  # for the life of the worker (found once)


def _exit_with(parent: int) -> None:
    """End this worker once the process it works for is gone, however it ended: a parent killed
    by SIGTERM or SIGKILL (a supervisor, the OOM killer) never shuts its pool, and its workers,
    waiting for work that will never come, kept themselves and the fork server alive for good."""
    while not _gone(parent):
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended: no such process, or (where /proc tells) a zombie, dead
    but not yet reaped. Its own parent may wait for the workers' end of its output pipe before
    reaping it: a zombie must count as gone, or the two wait for each other."""
    if os.path.isdir("/proc/self"):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                return f.read().rsplit(b") ", 1)[-1][:1] in (b"Z", b"X")
        except FileNotFoundError:
            return True
        except OSError:
            pass
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # PermissionError: another's process now
        return True
    return False


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
