"""Where chunks of work run: this machine's cores, or a Dask cluster (DESIGN section 7).

The caller cuts its work into items whose result depends on the item alone (a chunk of trials
with its own `SeedSequence` child, a fragment of a dataset) and merges the results in item
order. So the answer is the same bytes for one worker, for every core, and on a cluster: only
where each item is computed changes.

Locally, items run on threads: numpy, pyarrow and BLAS release the GIL in their loops, and
threads share the prepared forecast without copying it. BLAS is held to one thread inside the
work, so that it neither competes with the workers nor changes how a product is summed.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
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

    def map(self, fn: Callable[[S, T], R], items: Iterable[T], shared: S) -> Iterator[R]:
        """``fn(shared, item)`` for every item, yielded in item order (as each is ready).

        ``fn`` must be a module-level function and ``shared`` and the items picklable when a
        scheduler is set: they travel to the cluster (``shared`` once per worker).
        """
        work = list(items)
        if self.scheduler is not None:
            return _dask_map(_client(self.scheduler), fn, work, shared)
        if self.workers == 1 or len(work) <= 1:
            return _pinned(lambda: (fn(shared, item) for item in work))
        return _pinned(lambda: _thread_map(fn, work, shared, min(self.workers, len(work))))


SERIAL = Parallel()


def _pinned(results: Callable[[], Iterator[R]]) -> Iterator[R]:
    """Results with BLAS held to one thread while they are computed."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield from results()


def _thread_map(fn: Callable[[S, T], R], work: Sequence[T], shared: S, n: int) -> Iterator[R]:
    """At most ``2 n`` items under way or waiting to be taken: memory stays bounded however
    many items there are."""
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="costsim") as pool:
        rest = iter(work)
        ahead = deque(pool.submit(fn, shared, item) for item in islice(rest, 2 * n))
        try:
            while ahead:
                result = ahead.popleft().result()
                ahead.extend(pool.submit(fn, shared, item) for item in islice(rest, 1))
                yield result
        finally:
            for future in ahead:
                future.cancel()


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
