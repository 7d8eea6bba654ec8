"""Items on threads of this process, in order, with BLAS held to one thread inside the work.

Threads share the prepared work without copying it, and numpy, pyarrow and BLAS release the GIL
in their loops: the way for work that is mostly such loops (reading and summarising a log's
batches). `in_order` is also how the worker processes (`processes`) take their items.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import Any, TypeVar

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")


def pinned(results: Callable[[], Iterator[R]]) -> Iterator[R]:
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


def thread_map(
    fn: Callable[[S, T], R],
    rest: Iterator[T],
    shared: S,
    n: int,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[R]:
    """``fn(shared, item)`` over the items on ``n`` threads, in order. At most ``2 n`` items
    under way or waiting to be taken: memory stays bounded however many items there are. With
    ``stop``, see `in_order`."""
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="costsim") as pool:
        yield from in_order(lambda item: pool.submit(fn, shared, item), rest, n, stop)


def in_order(
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
