"""Output files: checked before any work, written all together or not at all.

One policy for every command:

- every output path is checked before the command does any work: it is not an input of the
  command (links and hard links resolved; not inside an input directory either), not another
  output of the same command, its folder exists and is writable, it is not a directory, and its
  suffix is one the output can be written as;
- ``-`` means standard output for every text output; at most one output may go there, and the
  human-readable report is then left out so the stream stays parseable;
- once the work is done, every file is first written to a temporary file beside its target and
  only then are they all renamed into place: a failure leaves no output written, and a reader
  never sees half a file. An existing output file is replaced (keeping its permissions); an
  input never is.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import OutputError

STDOUT = "-"


@dataclass(frozen=True)
class Output:
    """One output of a command: the option that names it and the path it was given.

    ``suffixes`` lists the suffixes the output can be written as (lower case, with the dot);
    empty accepts any. ``text`` outputs may go to standard output with ``-``. An ``implied``
    target is the command's default, and is named as such in a refusal.
    """

    option: str
    target: str | Path
    suffixes: tuple[str, ...] = ()
    text: bool = True
    implied: bool = False  # the target is the command's default, not one the user gave

    @property
    def to_stdout(self) -> bool:
        return str(self.target) == STDOUT

    @property
    def path(self) -> Path:
        return Path(self.target)


def _identity(path: Path) -> Path:
    """The path with every link resolved (the file a write would really replace)."""
    return path.resolve()


def _same_file(a: Path, b: Path) -> bool:
    if _identity(a) == _identity(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    try:
        _identity(path).relative_to(_identity(folder))
    except ValueError:
        return False
    return True


def check_outputs(outputs: Iterable[Output | None], inputs: Iterable[str | Path]) -> list[Output]:
    """The outputs that were given (None: an option left out), after checking each against the
    inputs and the others; every problem is reported at once in one `OutputError`."""
    chosen = [o for o in outputs if o is not None]
    sources = [Path(p) for p in inputs]
    problems: list[str] = []
    to_stdout = [o.option for o in chosen if o.to_stdout]
    if len(to_stdout) > 1:
        problems.append(
            f"{', '.join(to_stdout[:-1])} and {to_stdout[-1]} "
            f"{'both' if len(to_stdout) == 2 else 'all'} write to standard output ('-'); send "
            "all but one to a file"
        )
    seen: list[Output] = []
    for out in chosen:
        if not str(out.target).strip():
            problems.append(f"{out.option}: expected a file name or '-', got an empty string")
            continue
        if out.to_stdout:
            if not out.text:
                problems.append(f"{out.option}: cannot write this output to standard output")
            continue
        problems.extend(_problems(out, sources, seen))
        seen.append(out)
    if problems:
        raise OutputError("; ".join(problems))
    return chosen


def _problems(out: Output, inputs: Sequence[Path], earlier: Sequence[Output]) -> list[str]:
    path = out.path
    name = (
        f"{out.target} (the default {out.option})" if out.implied else f"{out.option} {out.target}"
    )
    for source in inputs:
        if _same_file(path, source):
            return [f"{name}: is an input of this command ({source}); refusing to overwrite it"]
        if source.is_dir() and _inside(path, source):
            return [f"{name}: is inside the input directory {source}; write it elsewhere"]
    for other in earlier:
        if _same_file(path, other.path):
            return [f"{name}: {other.option} writes the same file; give each output its own"]
    if out.suffixes and not any(path.name.lower().endswith(s) for s in out.suffixes):
        return [f"{name}: expected a file ending in {', '.join(out.suffixes)}"]
    if path.is_dir():
        return [f"{name}: is a directory; give a file name"]
    folder = path.parent
    if not folder.is_dir():
        return [f"{name}: the folder {folder} does not exist"]
    if not os.access(folder, os.W_OK | os.X_OK):
        return [f"{name}: the folder {folder} is not writable"]
    if path.exists() and not os.access(path, os.W_OK):
        return [f"{name}: the file exists and is read-only"]
    return []


def write_outputs(outputs: Sequence[Output], contents: Mapping[str, str | bytes]) -> None:
    """Write every checked output: files first to temporaries, then all renamed into place; the
    one standard-output stream last. ``contents`` is keyed by option; an output without content
    is skipped."""
    staged: list[tuple[str, Path]] = []
    try:
        for out in outputs:
            data = contents.get(out.option)
            if data is None or out.to_stdout:
                continue
            staged.append((_stage(out.path, data), out.path))
        for tmp, path in staged:
            os.replace(tmp, path)
        staged = []
    except OSError as exc:
        raise OutputError(f"cannot write {exc.filename or ''}: {exc.strerror or exc}") from None
    finally:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
    for out in outputs:
        data = contents.get(out.option)
        if data is not None and out.to_stdout:
            if isinstance(data, bytes):
                sys.stdout.buffer.write(data)
            else:
                sys.stdout.write(data)
            sys.stdout.flush()


def _stage(path: Path, data: str | bytes) -> str:
    """``data`` in a temporary file beside ``path``, with the permissions ``path`` will have."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """One file, atomically: a temporary file in the same folder, then renamed over ``path``."""
    target = Path(path)
    tmp = _stage(target, data)
    try:
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
