"""The progress protocol of long-running library functions.

A function that may run for a while takes ``progress: Progress | None`` and calls
``progress(phase, done, total)`` as it advances (``total`` None when unknown). The library never
draws anything: the CLI turns the calls into a progress bar on a terminal.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, "int | None"], None]
