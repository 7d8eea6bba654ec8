"""What the command-line commands share: the error line and exit codes, the console, the
option checks, the progress bar, the log's column options and reading a scenario.

Imported for every command, ``--help`` included: like `costsim.cli`, it imports only typer,
rich's console and costsim's light modules; the library a helper needs is imported when it runs.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from .defaults import COLUMNS, MAX_SEED
from .errors import CostsimError, CostsimWarning
from .outputs import Output

if TYPE_CHECKING:
    from rich.progress import Progress

    from .logs import PilotLog
    from .parallel import Parallel
    from .scenario import Scenario

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug, not bad input and not a broken budget
PROGRESS_AFTER_S = 2.0  # a progress bar appears once a run has taken this long

stderr = Console(stderr=True, highlight=False)
WIDE = 160  # width of tables written to a pipe or a CI log, where no terminal sets one


class Engine(StrEnum):
    """--engine: the stratified engine, or the per-request reference."""

    strata = "strata"
    reference = "reference"


class LogFormat(StrEnum):
    """--format of `fit`'s pilot log."""

    auto = "auto"
    table = "table"
    langfuse = "langfuse"
    litellm = "litellm"
    helicone = "helicone"
    otel = "otel"
    openai_batch = "openai-batch"
    bedrock = "bedrock"


class Unit(StrEnum):
    """--unit of an export: a query is one call or a whole trace."""

    call = "call"
    trace = "trace"


def _stdout() -> Console:
    """A console on the current stdout; wide when it is not a terminal."""
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=WIDE)
    return console


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    stderr.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors into one red line on stderr and exit code 2."""
    try:
        yield
    except CostsimError as exc:
        _fail(str(exc))


# ---------------------------------------------------------------------------------------------
# Shared option checks
# ---------------------------------------------------------------------------------------------


def parse_duration_option(text: str, option: str) -> float:
    from .durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        _fail(f"{option}: {exc}")


def parse_caps(items: list[str], max_tokens: int | None) -> dict[str, float]:
    from .model.fit import QUANTITIES

    caps: dict[str, float] = {}
    if max_tokens is not None:
        if max_tokens <= 0:
            _fail(f"--max-tokens: expected a positive number of tokens, got {max_tokens}")
        caps.update(input_tokens=float(max_tokens), output_tokens=float(max_tokens))
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in QUANTITIES:
            _fail(
                f"--cap: expected NAME=VALUE with NAME one of {', '.join(QUANTITIES)}, got {item!r}"
            )
        try:
            cap = float(value)
        except ValueError:
            _fail(f"--cap {name}: expected a positive number, got {value!r}")
        if not (cap > 0 and math.isfinite(cap)):
            _fail(f"--cap {name}: expected a positive number, got {value!r}")
        caps[name] = cap
    return caps


def _trials_option(value: int | str, option: str = "--trials", auto: bool = False) -> int:
    """A trial count within the same bounds as the scenario's `trials:`."""
    from .scenario.common import MAX_TRIALS, MIN_TRIALS

    allowed = f"{'auto or ' if auto else ''}an integer in [{MIN_TRIALS:,}, {MAX_TRIALS:,}]"
    try:
        n = int(str(value).replace("_", "").replace(",", ""))
    except ValueError:
        _fail(f"{option}: expected {allowed}, got {value!r}")
    if not MIN_TRIALS <= n <= MAX_TRIALS:
        _fail(f"{option}: expected {allowed}, got {value!r}")
    return n


def _seed_option(value: int | None) -> int | None:
    if value is not None and not 0 <= value <= MAX_SEED:
        _fail(f"--seed: expected an integer in [0, {MAX_SEED}], got {value}")
    return value


class _LazyProgress:
    """Progress bars on stderr that appear only on a terminal, and only once the work has taken
    longer than ``PROGRESS_AFTER_S`` (quick runs and CI logs stay clean). Called with the
    `costsim.progress` protocol: one bar line per phase."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.bar: Progress | None = None
        self.tasks: dict[str, Any] = {}
        self.enabled = stderr.is_terminal

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if time.monotonic() - self.start < PROGRESS_AFTER_S:
                return
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=stderr,
                transient=True,
            )
            self.bar.start()
        if phase not in self.tasks:
            self.tasks[phase] = self.bar.add_task(phase, total=total)
        self.bar.update(self.tasks[phase], completed=done, total=total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@contextmanager
def progress_bar() -> Iterator[_LazyProgress]:
    bar = _LazyProgress()
    try:
        yield bar
    finally:
        bar.close()


def parallel_from(workers: int | None, scheduler: str | None) -> Parallel:
    """Where the work runs, from --workers and --scheduler (a scheduler is reached now, before
    the work starts); an unusable one is bad input."""
    from .parallel import Parallel, ParallelError

    try:
        return Parallel.from_options(workers, scheduler)
    except ParallelError as exc:
        _fail(str(exc))


def _show_report(outputs: list[Output], quiet: bool) -> bool:
    """The human report goes to stdout unless asked not to, or stdout carries an output."""
    return not quiet and not any(o.to_stdout for o in outputs)


# The log's column options, declared once for every command that reads a log:
# ColumnMap field -> (option, help).
COLUMN_OPTIONS: dict[str, tuple[str, str]] = {
    "query_class": ("--class-col", "Query-class column."),
    "cost": ("--cost-col", "Billed cost (USD) column."),
    "input_tokens": ("--input-tokens-col", "Input tokens column."),
    "output_tokens": ("--output-tokens-col", "Output tokens column."),
    "cached_input_tokens": ("--cached-tokens-col", "Cached input tokens column."),
    "timestamp": ("--timestamp-col", "Arrival time column."),
    "latency": ("--latency-col", "Latency (ms) column."),
    "status": ("--status-col", "Status (ok/error) column."),
    "error": ("--error-col", "Error flag column (if no status)."),
    "retries": ("--retries-col", "Retries column."),
    "cold_start": ("--cold-start-col", "Cold-start flag column."),
    "calls": ("--calls-col", "Calls-per-query column (LLM calls of one query)."),
}


def column_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command the log's column options (`COLUMN_OPTIONS`, listed after its own); it
    receives them as one keyword parameter ``columns: ColumnMap``. An empty name leaves an
    optional column out; the query class is always needed."""
    # `columns` is given by the wrapper below, never by typer: its type (in the heavy
    # `costsim.logs`) is not needed to read the other parameters' options.
    signature = inspect.signature(command, eval_str=True, locals={"ColumnMap": object})
    added = [
        inspect.Parameter(
            f"{field}_col",
            inspect.Parameter.KEYWORD_ONLY,
            default=COLUMNS[field],
            annotation=Annotated[str, typer.Option(option, metavar="COLUMN", help=help_text)],
        )
        for field, (option, help_text) in COLUMN_OPTIONS.items()
    ]

    @functools.wraps(command)
    def with_columns(*args: Any, **kwargs: Any) -> None:
        from .inputs import ColumnMap

        names = {field: kwargs.pop(f"{field}_col") for field in COLUMN_OPTIONS}
        for field, name in names.items():
            option = COLUMN_OPTIONS[field][0]
            if field == "query_class" and not name.strip():
                _fail(f"{option}: expected a column name, got an empty string")
            if name and not name.strip():  # "" leaves an optional column out; blanks are a slip
                _fail(f"{option}: expected a column name (or '' to leave it out), got {name!r}")
        command(*args, columns=ColumnMap(**names), **kwargs)

    own = [p for p in signature.parameters.values() if p.name != "columns"]
    new = signature.replace(parameters=[*own, *added])
    with_columns.__signature__ = new  # type: ignore[attr-defined]  # what typer reads
    with_columns.__annotations__ = {p.name: p.annotation for p in new.parameters.values()}
    return with_columns


def _scenario_inputs(sc: Scenario) -> list[Path]:
    """The files a scenario reads: itself and its model (or pilot log)."""
    return [p for p in (sc.path, sc.model_path, sc.pilot_path) if p is not None]


def _scenario_model(sc: Scenario) -> tuple[Any, str]:
    """The scenario's model (loaded, or fitted from `pilot:`) and its text, for its hash. A
    model fitted on the fly is read back from its text, as from the file `costsim fit` writes
    (numbers rounded to 10 digits): the hash names the numbers the forecast uses, and `pilot:`
    gives the same forecast as `model:` on that file."""
    from .model.file import load_model, model_from_dict, model_to_json
    from .model.fit import fit_source

    if sc.model_path is not None:
        return load_model(sc.model_path), sc.model_path.read_text(encoding="utf-8")
    assert sc.pilot_path is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CostsimWarning)
        text = model_to_json(fit_source(sc.pilot_path).model)
    return model_from_dict(json.loads(text), str(sc.pilot_path)), text


def _announce_reference(sc: Scenario) -> None:
    from .simulate.chunks import reference_seconds

    seconds = reference_seconds(sc)
    stderr.print(
        escape(
            f"reference engine: every request is drawn; {sc.volume.requests:,.0f} requests a "
            f"trial x {sc.trials:,} trials, expected to take about {_duration_text(seconds)}"
        ),
        soft_wrap=True,
    )


def _duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def scenario_with(path: Path, trials: str | None, seed: int | None) -> Scenario:
    """A scenario file with the command line's --trials and --seed over its own."""
    from .scenario import load_scenario

    n_trials = _trials_option(trials) if trials is not None else None
    _seed_option(seed)
    sc = load_scenario(path)
    return replace(
        sc,
        trials=n_trials if n_trials is not None else sc.trials,
        seed=seed if seed is not None else sc.seed,
    )


def _plot_budget(sc: Scenario) -> float | None:
    """The budget line of the plot: the scenario's P95 fail level, else its first limit's."""
    limits = sorted(sc.budget.limits, key=lambda lim: lim.stat != "p95")
    return float(limits[0].fail) if limits and limits[0].fail is not None else None


def _print_dropped(log: PilotLog) -> None:
    for d in log.dropped:
        plural = "s" if d.count != 1 else ""
        stderr.print(
            f"[yellow]dropped {d.count:,} row{plural}: {escape(d.reason)}[/]", soft_wrap=True
        )


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".csv.gz", ".parquet", ".pq", ".csv"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name or "pilot"
