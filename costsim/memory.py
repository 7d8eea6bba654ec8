"""How the process's C allocator hands out the large arrays of a forecast.

A forecast's chunk of trials makes arrays of a few MB (trials x buckets x classes) hundreds of
times. glibc's malloc serves blocks that large with fresh pages from the kernel and gives them
back when they are freed (``mmap`` / trimming the heap), so every array is paid again in page
faults. Measured on the 2-core development machine (a virtual machine, where a page fault is
dear): `costsim compare` of the bundled deployments 2.7 -> 1.8 s and a forecast of 10,000
trials 0.43 -> 0.35 s once blocks up to ``MMAP_THRESHOLD`` come from the heap and up to
``TRIM_THRESHOLD`` of free heap is kept for reuse, with the same peak memory. The fit, made of
many small arrays, does not change.

`tune_malloc` sets that, for this process only. The command line calls it when it starts (its
process is costsim's own); a program that imports costsim may call it, or not. It does nothing
off Linux's glibc (no ``mallopt``), when the user tuned malloc through its own environment
variables (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``), or with
``COSTSIM_MALLOC=default``. Numbers never depend on it: only where memory comes from.
"""

from __future__ import annotations

import ctypes
import os
import sys

MMAP_THRESHOLD = 64 << 20  # bytes: larger blocks still get pages of their own
TRIM_THRESHOLD = 256 << 20  # bytes of free heap kept before any is given back
ENV_SWITCH = "COSTSIM_MALLOC"  # "default": leave malloc as it is
USER_TUNING = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
_M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3


_tuned = False  # tune_malloc did it in this process


def malloc_tuned() -> bool:
    """Whether `tune_malloc` tuned this process (its worker processes are tuned the same)."""
    return _tuned


def tune_malloc() -> bool:
    """Keep large blocks on the heap and free heap for reuse (see the module), unless the
    user said otherwise; whether it was done."""
    if sys.platform != "linux" or os.environ.get(ENV_SWITCH, "").lower() == "default":
        return False
    if any(name in os.environ for name in USER_TUNING):
        return False
    return tune_as_asked()


def tune_as_asked() -> bool:
    """`tune_malloc` without looking at the environment: a worker process tuned as the process
    that started it was (whose environment may have changed since its fork server started)."""
    global _tuned
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _tuned = bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    return _tuned
