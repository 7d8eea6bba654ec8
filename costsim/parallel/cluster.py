"""Items as tasks on a Dask distributed cluster (the `dask` extra): `--scheduler ADDRESS`.

The scheduler is asked who it is on a connection of its own before a client is made
(`ask_scheduler`), so that a wrong address is one line, not a hang or a traceback. ``shared`` is
sent once to every worker; the results come back in item order, as they do locally, so a
cluster gives the same bytes as this machine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from typing import Any, TypeVar

from . import ParallelError
from .threads import one_blas_thread

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")

CONNECT_TIMEOUT_S = 10.0
DASK_EXTRA = "pip install 'costsim[dask]'"


@cache
def client(address: str) -> Any:
    """One client per scheduler address for the life of the process, made once the address
    has answered as a Dask scheduler (`ask_scheduler`)."""
    try:
        from distributed import Client
    except ImportError:
        raise ParallelError(
            f"{address}: running on a Dask cluster needs the dask extra ({DASK_EXTRA})"
        ) from None
    ask_scheduler(address)
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise _no_scheduler(address, exc) from None


def ask_scheduler(address: str) -> None:
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
            port = parse_host_port(where)[1]
            if not 0 < port < 65536:  # the system would say so only when connecting, later
                raise ValueError(f"port {port} is not between 1 and 65535")
    except ValueError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ParallelError(
            f"{address}: not a scheduler's address ({reason}); expected one like "
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
            f"{address}: "
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
        f"{address}: no Dask scheduler answered ({reason}); start one with "
        "`dask scheduler` and workers with `dask worker ADDRESS`"
    )


def _on_worker(fn: Callable[[S, T], R], shared: S, item: T) -> R:
    with one_blas_thread():
        return fn(shared, item)


def dask_map(client: Any, fn: Callable[[S, T], R], work: Sequence[T], shared: S) -> Iterator[R]:
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
