"""Regenerate the command outputs shown in README.md, or check that they are current.

    .venv/bin/python tests/readme_outputs.py           # rewrite drifted blocks in place
    .venv/bin/python tests/readme_outputs.py --check   # exit 1 listing drifted blocks

Markers
-------
A shown output is a fenced ```text block directly preceded by one or more markers:

    <!-- output: costsim forecast scenarios/launch_month.yaml --trials 2000 -->
    <!-- output: costsim fit bad.csv (stderr, exit 2, prompt) -->

The optional flags in parentheses at the end: ``stderr`` shows what the command writes to
stderr instead of stdout; ``exit N`` is the exit code the command must return (default 0; any
other code stops the regeneration, since the README would then describe a run that did not
happen); ``prompt`` starts that command's part of the block with ``$ COMMAND``. Several markers
in a row before one block show their outputs one after another. ``<!-- run: COMMAND -->``
runs a command whose output is not shown, e.g. to make the baseline a shown `check` uses.

How commands run
----------------
Every marker's command runs once, in README order, in one temporary directory holding a copy
of ``scenarios/`` and the few bad input files of ``FIXTURES``: paths such as
``scenarios/pilot.parquet`` resolve as they do for a reader at the top of the repository, a
file written by one command (``-o pilot.model.json``, ``--json base.json``) is there for the
later ones, and nothing is written into the repository. A command that appears in several
markers runs once; each marker shows its own stream of that run.

Commands run in-process through ``typer.testing.CliRunner`` on ``costsim.cli.app``. A
subprocess per command would isolate them completely but pays ~1 s of imports (numpy, scipy,
pandas, pyarrow, pydantic) per command; in-process the imports are paid once and the test stays
fast. The state a process would not share is handled here: the console settings are forced
through the environment (``ENV``: ``COLUMNS=120``, the width at which the fit dashboard shows
every column, and a non-terminal console without colour, as in a CI log), escape codes a
console created at import time may still emit are stripped, the working directory is set and
restored around each command, and a Python warning escaping a command is an error, as it is in
the test suite. Trailing spaces (rich pads table lines) and trailing blank lines are dropped.

Numbers
-------
A block is current when its text equals the regenerated text except for numbers: tokens such
as ``$159,366``, ``-$8.1``, ``2.17`` or ``30.2%`` compare as numbers with a relative tolerance
of ``RTOL`` (1e-6). Forecasts are seeded, so a rerun prints the same digits; running under
other SIMD code paths and BLAS thread counts changed per-trial totals by 5e-16 (relative) and
no printed digit, so the tolerance only absorbs float noise in numbers printed with seven or
more digits, while any change of a printed digit of a figure (a real drift) fails. Blocks that
match within the tolerance are left untouched by a regeneration, so rerunning it on another
machine causes no churn.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import shlex
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

ENV: dict[str, str | None] = {
    "COLUMNS": "120",
    "LINES": None,
    "NO_COLOR": "1",
    "TTY_COMPATIBLE": "0",  # rich: not a terminal, whatever the streams are
    "TTY_INTERACTIVE": "0",
    "FORCE_COLOR": None,
    "JUPYTER_COLUMNS": None,
    "GITHUB_STEP_SUMMARY": None,  # `check` would append its Markdown there
    "COSTSIM_DEBUG": None,
}
RTOL = 1e-6

# Bad inputs that the README's error examples read (written next to the scenarios/ copy).
FIXTURES = {
    "bad.csv": "query_class,cost_usd\nlookup,0.01\nlookup,-1\nlookup,x\nlookup,0.02\n",
    "bad.yaml": (
        "model: scenarios/pilot.model.json\n"
        "horizon: 30d\n"
        "volume:\n"
        "  requests: -5\n"
        "mix_concentraton: 300\n"
    ),
    "huge.csv": "query_class,cost_usd\n" + "lookup,0.01\n" * 5 + "lookup,1e300\n",
    "vague.yaml": (
        "model: scenarios/pilot.model.json\n"
        "horizon: 30d\n"
        "start: 2027-02-30\n"
        "volume: {requests: 3000000, uncertainty: 20}\n"
    ),
}

MARKER = re.compile(r"<!-- (output|run): (.+?)(?: \(([^()]*)\))? -->")
FENCE_OPEN = "```text"
FENCE_CLOSE = "```"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# a number with optional sign, dollar sign, thousands separators, decimals and percent sign
NUMBER = re.compile(r"([-+]?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?%?)")


class ReadmeError(Exception):
    """A marker that cannot be parsed or a command that did not run as the README says."""


@dataclass(frozen=True)
class Shown:
    """One output marker: a command and which part of its run the block shows."""

    command: str
    stream: str = "stdout"
    exit_code: int = 0
    prompt: bool = False


@dataclass(frozen=True)
class Block:
    """A ```text block and the markers above it; ``start``/``end`` index its content lines."""

    line: int  # 1-based line of the first marker
    shown: tuple[Shown, ...]
    start: int
    end: int
    text: str

    @property
    def label(self) -> str:
        return "; ".join(s.command for s in self.shown)


@dataclass(frozen=True)
class Run:
    """A `<!-- run: ... -->` marker: a command run for its files, output not shown."""

    line: int
    command: str


@dataclass(frozen=True)
class Outcome:
    stdout: str
    stderr: str
    exit_code: int


def _shown(command: str, flags: str | None, where: str) -> Shown:
    """An output marker's command and flags: ``stdout``/``stderr``, ``exit N``, ``prompt``."""
    stream, exit_code, prompt = "stdout", 0, False
    for flag in (f.strip() for f in (flags or "").split(",")):
        if flag in ("stdout", "stderr"):
            stream = flag
        elif flag == "prompt":
            prompt = True
        elif re.fullmatch(r"exit \d+", flag):
            exit_code = int(flag.split()[1])
        elif flag:
            raise ReadmeError(f"{where}: unknown flag {flag!r} (stdout, stderr, exit N, prompt)")
    return Shown(command, stream, exit_code, prompt)


def parse(text: str) -> list[Block | Run]:
    """The README's markers in order: output blocks and run-only commands."""
    lines = text.split("\n")
    steps: list[Block | Run] = []
    pending: list[Shown] = []
    first = 0
    i = 0
    while i < len(lines):
        where = f"README.md:{i + 1}"
        stripped = lines[i].strip()
        match = MARKER.fullmatch(stripped)
        if match is None:
            if stripped.startswith(("<!-- output", "<!-- run")):
                raise ReadmeError(f"{where}: malformed marker {stripped!r}")
            if not pending:
                i += 1
                continue
            if stripped != FENCE_OPEN:
                raise ReadmeError(f"{where}: output markers must be followed by a {FENCE_OPEN}")
            end = i + 1
            while end < len(lines) and lines[end].strip() != FENCE_CLOSE:
                end += 1
            if end == len(lines):
                raise ReadmeError(f"{where}: unclosed {FENCE_OPEN} block")
            steps.append(Block(first, tuple(pending), i + 1, end, "\n".join(lines[i + 1 : end])))
            pending = []
            i = end + 1
            continue
        kind, command, flags = match.groups()
        if kind == "run":
            if pending or flags:
                raise ReadmeError(f"{where}: a run marker stands alone and takes no flags")
            steps.append(Run(i + 1, command))
        else:
            first = first if pending else i + 1
            pending.append(_shown(command, flags, where))
        i += 1
    if pending:
        raise ReadmeError(f"README.md:{first}: output markers at the end have no block")
    return steps


@contextmanager
def _working_dir(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _clean(text: str, tmp: Path) -> str:
    text = ANSI.sub("", text)
    for prefix in {str(tmp), os.path.realpath(tmp)}:
        text = text.replace(prefix + os.sep, "").replace(prefix, ".")
    return "\n".join(line.rstrip() for line in text.splitlines()).rstrip("\n")


def run_command(command: str, where: Path) -> Outcome:
    """Run one `costsim ...` command line in ``where``, as a reader's shell would."""
    from typer.testing import CliRunner

    from costsim.cli import app

    args = shlex.split(command)
    if not args or args[0] != "costsim":
        raise ReadmeError(f"`{command}`: only costsim commands can be run")
    with _working_dir(where), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(
            app, args[1:], env=ENV, prog_name="costsim", catch_exceptions=False
        )
    if caught:
        found = "; ".join(f"{w.category.__name__}: {w.message}" for w in caught)
        raise ReadmeError(f"`{command}` emitted Python warnings: {found}")
    return Outcome(_clean(result.stdout, where), _clean(result.stderr, where), result.exit_code)


def render(block: Block, outcomes: dict[str, Outcome]) -> str:
    """The block's regenerated content from its commands' outcomes."""
    parts: list[str] = []
    for shown in block.shown:
        outcome = outcomes[shown.command]
        text = outcome.stderr if shown.stream == "stderr" else outcome.stdout
        if outcome.exit_code != shown.exit_code:
            raise ReadmeError(
                f"README.md:{block.line}: `{shown.command}` exited {outcome.exit_code}, the "
                f"marker expects {shown.exit_code}; stderr:\n{outcome.stderr}"
            )
        if not text.strip():
            raise ReadmeError(
                f"README.md:{block.line}: `{shown.command}` wrote nothing to {shown.stream}"
            )
        parts += [f"$ {shown.command}"] if shown.prompt else []
        parts.append(text)
    return "\n".join(parts)


def regenerate(text: str) -> list[tuple[Block, str]]:
    """Run every marker's command in README order; each output block with its new content."""
    steps = parse(text)
    outcomes: dict[str, Outcome] = {}
    blocks: list[tuple[Block, str]] = []
    with tempfile.TemporaryDirectory(prefix="costsim-readme-") as name:
        tmp = Path(name)
        shutil.copytree(ROOT / "scenarios", tmp / "scenarios")
        for filename, content in FIXTURES.items():
            (tmp / filename).write_text(content, encoding="utf-8")
        for step in steps:
            commands = [step.command] if isinstance(step, Run) else [s.command for s in step.shown]
            for command in commands:
                if command not in outcomes:
                    outcomes[command] = run_command(command, tmp)
            if isinstance(step, Run):
                if outcomes[step.command].exit_code != 0:
                    raise ReadmeError(
                        f"README.md:{step.line}: `{step.command}` exited "
                        f"{outcomes[step.command].exit_code}:\n{outcomes[step.command].stderr}"
                    )
            else:
                blocks.append((step, render(step, outcomes)))
    return blocks


def _parse_number(token: str) -> float:
    return float(token.replace("$", "").replace(",", "").replace("%", ""))


def same(old: str, new: str, rtol: float = RTOL) -> bool:
    """Equal text, with numbers compared as numbers within a relative tolerance."""
    a, b = NUMBER.split(old), NUMBER.split(new)
    if len(a) != len(b):
        return False
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if i % 2 == 0:
            if x != y:
                return False
        elif not math.isclose(_parse_number(x), _parse_number(y), rel_tol=rtol):
            return False
    return True


def drifted(text: str) -> list[tuple[Block, str]]:
    """The output blocks whose content no longer matches what their commands print."""
    return [(block, new) for block, new in regenerate(text) if not same(block.text, new)]


def diff(block: Block, new: str) -> str:
    """A unified diff from the README's block to the regenerated one."""
    return "\n".join(
        difflib.unified_diff(
            block.text.splitlines(),
            new.splitlines(),
            f"README.md:{block.line} (shown)",
            f"{block.label} (regenerated)",
            lineterm="",
        )
    )


def apply(text: str, changes: list[tuple[Block, str]]) -> str:
    """The README with the given blocks' content replaced."""
    lines = text.split("\n")
    for block, new in sorted(changes, key=lambda c: c[0].start, reverse=True):
        lines[block.start : block.end] = new.split("\n")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 when a block drifted"
    )
    options = parser.parse_args(argv)
    # set before costsim.cli is imported: its stderr console reads them when it is created
    for key, value in ENV.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    text = README.read_text(encoding="utf-8")
    try:
        changes = drifted(text)
    except ReadmeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state = "drifted" if options.check else "regenerated"
    for block, _ in changes:
        print(f"README.md:{block.line}: {block.label}: {state}")
    if options.check:
        if changes:
            print(f"\n{diff(*changes[0])}")
        return 1 if changes else 0
    if changes:
        README.write_text(apply(text, changes), encoding="utf-8")
    print(f"README.md: {len(changes)} block(s) regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
