"""Where chunks of work run: this machine's cores, or a Dask cluster (DESIGN section 7).

The caller cuts its work into items whose result depends on the item alone (a chunk of trials
with its own `SeedSequence` child, a fragment of a dataset) and merges the results in item
order. So the answer is the same bytes for one worker, for every core, and on a cluster: only
where each item is computed changes.

`Parallel` is the one door. Behind it, items run here, on threads (`threads`: work that
mostly releases the GIL, sharing the prepared work without copying it), on worker processes
this process starts once and keeps (`processes`: work that holds the GIL between numpy's
loops, such as the fit of a class or a chunk of a forecast), or as tasks on a Dask cluster
(`cluster`, imported only when a scheduler is given). BLAS is held to one thread inside the
work, so that it neither competes with the workers nor changes how a product is summed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, TypeVar

from . import processes as _processes  # `map` has an argument of that name
from .processes import shutdown_workers
from .threads import one_blas_thread, pinned, thread_map

__all__ = [
    "ENV_SCHEDULER",
    "SERIAL",
    "Parallel",
    "ParallelError",
    "available_cores",
    "one_blas_thread",
    "shutdown_workers",
]

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")

ENV_SCHEDULER = "COSTSIM_DASK_SCHEDULER"
SWEEP_AT_ONCE = 8  # items of a sweep on a cluster at once


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
    """How many local workers, or which Dask scheduler, run the items of a `map`."""

    workers: int = 1
    scheduler: str | None = None

    @classmethod
    def from_options(cls, workers: int | None, scheduler: str | None) -> Parallel:
        """The user's `--workers` (None: every core) and `--scheduler` (None: the
        ``COSTSIM_DASK_SCHEDULER`` environment variable, if set; ``""``: none, whatever the
        environment says). A scheduler is reached now, so that an address that does not answer
        is said before any work starts, named as the user gave it."""
        if workers is not None and workers < 1:
            raise ParallelError(f"--workers: expected 1 or more, got {workers}")
        if scheduler is not None:
            address, named = scheduler.strip() or None, "--scheduler "
        else:
            address, named = os.environ.get(ENV_SCHEDULER, "").strip() or None, f"{ENV_SCHEDULER}="
        if address is not None:
            from .cluster import client

            try:
                client(address)
            except ParallelError as exc:
                raise ParallelError(f"{named}{exc}") from None
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
        them (see `processes.process_map`); until they are up, items run here one after
        another, or on threads with ``meanwhile="threads"`` (work that mostly releases the
        GIL). One worker runs the items here.
        """
        work = list(items)
        if self.scheduler is not None:
            from .cluster import client, dask_map

            return dask_map(client(self.scheduler), fn, work, shared)
        if self.workers == 1 or len(work) <= 1:
            return pinned(lambda: (fn(shared, item) for item in work))
        if processes:
            return _processes.process_map(fn, work, shared, self.workers, meanwhile)
        return pinned(lambda: thread_map(fn, iter(work), shared, min(self.workers, len(work))))

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
        process (`processes.start`)."""
        if self.scheduler is None and self.workers > 1:
            _processes.start(self.workers, module, wait=wait, background=workers)

    def start_processes_for(self, module: str, seconds: float) -> None:
        """`start_processes` for work expected to take ``seconds`` on one core, where its maps
        would start worker processes anyway (longer than `processes.PROCESSES_FOR_S`): the fork
        server imports ``module`` while the caller gets the work ready."""
        if seconds > _processes.PROCESSES_FOR_S:
            self.start_processes(module)


SERIAL = Parallel()
