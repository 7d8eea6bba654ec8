"""The command-line shell: parse options, call one library function, render, map errors.

Exit codes: 0 success; 1 a budget broken and 3 a regression (``check``); 2 bad input or usage
(one line on stderr, never a traceback); 70 a bug in costsim.

Outputs follow one policy (`costsim.outputs`): checked before any work, never an input, ``-``
for standard output, all written together or none.

This module is imported for every command, ``--help`` included, so it imports only typer, rich's
console and costsim's light modules (errors, outputs, defaults, the shared options); a command
imports the library it runs (numpy, scipy, pandas, pyarrow, the scenario's pydantic
declaration) when it runs. ``tests/test_startup.py`` keeps it so.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import sys
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
from typer.core import TyperGroup

from .cli_check import CHECK_HELP
from .cli_check import check as check_command
from .cli_compare import compare as compare_command
from .cli_options import (
    MarkdownOption,
    QuietOption,
    SchedulerOption,
    SeedOption,
    TrialsOption,
    WorkersOption,
)
from .defaults import BACKTEST_TRIALS, COLUMNS, DRIFT_WINDOW_S, MAX_SEED, MIN_CLASS_ROWS
from .errors import CostsimError, CostsimWarning
from .outputs import STDOUT, Output, check_outputs, write_outputs

if TYPE_CHECKING:
    from rich.progress import Progress

    from .forecast import Forecast
    from .logs import ColumnMap, PilotLog
    from .parallel import Parallel
    from .scenario import Scenario

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug, not bad input and not a broken budget
PROGRESS_AFTER_S = 2.0  # a progress bar appears once a run has taken this long


class _OneLineErrors(TyperGroup):
    """Usage errors (an unknown option, a value not among the choices) as one red line on
    stderr and exit 2, like every other bad input, instead of click's usage block."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        if not standalone_mode:
            return super().main(*args, **kwargs)
        try:
            rv = super().main(*args, **kwargs)
        except typer.Abort:
            stderr.print("aborted")
            sys.exit(1)
        except Exception as exc:
            code, message = getattr(exc, "exit_code", None), getattr(exc, "format_message", None)
            if not isinstance(code, int) or message is None:
                raise  # not a usage error: `main` reports it as a bug
            if type(exc).__name__ == "NoArgsIsHelpError":
                exc.show()  # type: ignore[attr-defined]  # `costsim` alone: the help
                sys.exit(code)
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} -h')" if ctx is not None else ""
            text = str(message()).replace("Value error, ", "")  # typer's coercion wording
            stderr.print(f"[bold red]error:[/] {escape(text)}{escape(hint)}", soft_wrap=True)
            sys.exit(code)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    name="costsim",
    cls=_OneLineErrors,
    help="Forecast what AI inference will cost in production from the logs of a pilot.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

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


def _version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"costsim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Forecast what AI inference will cost in production from the logs of a pilot."""
    if not os.environ.get("COSTSIM_DEBUG"):
        # Arithmetic trouble is caught where it matters (inputs bounded, results checked for
        # being finite); numpy's raw RuntimeWarnings would only confuse a user.
        warnings.filterwarnings("ignore", category=RuntimeWarning)


# ---------------------------------------------------------------------------------------------
# Shared option checks
# ---------------------------------------------------------------------------------------------


def parse_duration_option(text: str, option: str) -> float:
    from .scenario.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        _fail(f"{option}: {exc}")


def parse_caps(items: list[str], max_tokens: int | None) -> dict[str, float]:
    from .fit import QUANTITIES

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
    from .scenario.format import MAX_TRIALS, MIN_TRIALS

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


# ---------------------------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------------------------


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
        from .logs import ColumnMap

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


@app.command()
@column_options
def fit(
    pilot: Annotated[
        str,
        typer.Argument(
            help="Pilot log: Parquet or CSV file or dataset directory, or a tool's export; "
            "local, or at a pyarrow filesystem URI such as s3://bucket/pilot/.",
            show_default=False,
        ),
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            metavar="PATH",
            help="Model file to write ('-' = stdout) [default: <pilot stem>.model.json].",
        ),
    ] = None,
    json_out: Annotated[
        str | None,
        typer.Option(
            "--json", metavar="PATH", help="Also write the dashboard as JSON ('-' = stdout)."
        ),
    ] = None,
    html: Annotated[
        str | None,
        typer.Option(
            "--html",
            metavar="PATH",
            help="Diagnostics as one self-contained HTML file (needs costsim[plot]).",
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="Do not print the dashboard.")
    ] = False,
    drop_invalid: Annotated[
        bool,
        typer.Option(
            "--drop-invalid", help="Drop invalid rows (and say how many) instead of failing."
        ),
    ] = False,
    cap: Annotated[
        list[str] | None,
        typer.Option(
            "--cap",
            metavar="NAME=VALUE",
            help="Physical upper bound of a quantity, e.g. cost_usd=5.",
        ),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-tokens", metavar="N", help="Context window: caps input and output tokens."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", metavar="N", help="Seed of the fit's random streams.")
    ] = 0,
    min_class_rows: Annotated[
        int,
        typer.Option(
            "--min-class-rows", metavar="N", help="Fewest rows a class needs to be fitted."
        ),
    ] = MIN_CLASS_ROWS,
    drift_window: Annotated[
        str,
        typer.Option(
            "--drift-window",
            metavar="DURATION",
            help="Window over which unit-cost drift is measured, e.g. 1h.",
        ),
    ] = f"{DRIFT_WINDOW_S / 3600:g}h",
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--format",
            help="What the log is: costsim's table or a tool's export (auto: from its content).",
        ),
    ] = LogFormat.auto,
    class_from: Annotated[
        str | None,
        typer.Option(
            "--class-from",
            metavar="PATH",
            help="Exports: the query class from a field (metadata.route) or a tag (tag:route=).",
        ),
    ] = None,
    class_map: Annotated[
        Path | None,
        typer.Option(
            "--class-map",
            metavar="YAML",
            help="Exports: regular expressions mapped to class names (first match wins).",
        ),
    ] = None,
    unit: Annotated[
        Unit | None,
        typer.Option(
            "--unit",
            help="Exports: one query is a call, or a whole trace [default: trace where the "
            "export has trace ids].",
        ),
    ] = None,
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
    *,
    columns: ColumnMap,
) -> None:
    """Fit a per-class heavy-tail cost model to a pilot log and show the dashboard.

    The log is costsim's table (one row per request) or an export of Langfuse, LiteLLM,
    Helicone, OpenTelemetry GenAI spans, OpenAI Batch output or Bedrock invocation logs.

    Example: costsim fit scenarios/pilot.parquet -o pilot.model.json
    """
    import pyarrow as pa

    from .dashboard import fit_summary_to_dict, render_fit, summarize_fit
    from .fit import FitOptions, fit_export, fit_source
    from .logs import is_table_name, is_uri, read_export, read_pilot
    from .modelfile import checked_model_json, dumps
    from .sources import export_titles, read_source

    if min_class_rows < 2:
        _fail(f"--min-class-rows: expected an integer >= 2, got {min_class_rows}")
    _seed_option(seed)
    options = FitOptions(
        seed=seed,
        caps=parse_caps(cap or [], max_tokens),
        min_class_rows=min_class_rows,
        drift_window_s=parse_duration_option(drift_window, "--drift-window"),
    )
    with user_errors():
        outputs = check_outputs(
            [
                Output("--output", output or f"{_stem(Path(pilot))}.model.json", (".json",)),
                Output("--json", json_out) if json_out is not None else None,
                Output("--html", html, (".html", ".htm"), text=False) if html is not None else None,
            ],
            [*([] if is_uri(pilot) else [pilot]), *([class_map] if class_map is not None else [])],
        )
        if html is not None:
            from .report import require_matplotlib

            require_matplotlib()
        # built now, so that a bad --workers or --scheduler is refused before the log is read
        parallel = parallel_from(workers, scheduler)
        with warnings.catch_warnings(record=True) as caught, progress_bar() as bar:
            warnings.simplefilter("always", CostsimWarning)
            try:
                source = read_source(
                    pilot,
                    format=log_format.value,
                    class_from=class_from,
                    class_map=class_map,
                    unit=unit.value if unit is not None else None,
                )
            except (pa.ArrowException, UnicodeDecodeError) as exc:  # e.g. parts that disagree
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                _fail(f"{pilot}: cannot be read as one log: {first[:200]}")
            if source is None:
                if not is_uri(pilot) and Path(pilot).is_file() and not is_table_name(pilot):
                    _fail(
                        f"{pilot}: neither costsim's table (.parquet, .pq, .csv or a directory "
                        f"of them) nor an export costsim reads ({export_titles()})"
                    )
                if class_from is not None or class_map is not None or unit is not None:
                    _fail(
                        f"{pilot}: --class-from, --class-map and --unit read a tool's export; "
                        "this is costsim's table (name its columns with --class-col and the like)"
                    )
                # streamed: bounded memory whatever the log's size, the same model on any
                # number of workers
                fitted = fit_source(
                    pilot, columns, options,
                    drop_invalid=drop_invalid, progress=bar, parallel=parallel,
                )  # fmt: skip
            else:
                if not quiet:
                    stderr.print(escape(source.detected), soft_wrap=True)
                    for note in source.notes:
                        stderr.print(f"note: {escape(note)}", soft_wrap=True)
                fitted = fit_export(
                    source, pilot, options,
                    drop_invalid=drop_invalid, progress=bar, parallel=parallel,
                )  # fmt: skip
            model = fitted.model
            for d in fitted.dropped:
                more = ", ..." if d.count > len(d.first_rows) else ""
                rows = ", ".join(str(r) for r in d.first_rows) + more
                plural = "s" if d.count != 1 else ""
                stderr.print(
                    f"[yellow]dropped {d.count:,} row{plural}: {escape(d.reason)} "
                    f"(row{plural} {rows})[/]",
                    soft_wrap=True,
                )
            text = checked_model_json(model, str(outputs[0].target))  # it must load back
        for w in caught:
            if issubclass(w.category, CostsimWarning):
                stderr.print(f"[yellow]warning:[/] {escape(str(w.message))}", soft_wrap=True)
        summary = summarize_fit(model)
        contents: dict[str, Any] = {
            "--output": text,
            "--json": dumps(fit_summary_to_dict(summary)) + "\n",
        }
        if html is not None:
            from .diagnostics import fit_diagnostics
            from .html_report import fit_html

            # the pictures need the rows: the log read whole (a one-line error, exit 2, when it
            # would not fit in memory)
            log = (
                read_pilot(pilot, columns, drop_invalid=drop_invalid)
                if source is None
                else read_export(source, pilot, drop_invalid=drop_invalid)
            )
            contents["--html"] = fit_html(summary, fit_diagnostics(log, model))
        write_outputs(outputs, contents)
    if _show_report(outputs, quiet):
        console = _stdout()
        render_fit(summary, console)
        console.print(f"model written to [bold]{escape(str(outputs[0].target))}[/]", soft_wrap=True)


# ---------------------------------------------------------------------------------------------
# forecast, schema, init
# ---------------------------------------------------------------------------------------------


def _scenario_inputs(sc: Scenario) -> list[Path]:
    """The files a scenario reads: itself and its model (or pilot log)."""
    return [p for p in (sc.path, sc.model_path, sc.pilot_path) if p is not None]


def _scenario_model(sc: Scenario) -> tuple[Any, str]:
    """The scenario's model (loaded, or fitted from `pilot:`) and its text, for its hash."""
    from .fit import fit_source
    from .modelfile import load_model, model_to_json

    if sc.model_path is not None:
        return load_model(sc.model_path), sc.model_path.read_text(encoding="utf-8")
    assert sc.pilot_path is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CostsimWarning)
        model = fit_source(sc.pilot_path).model
    return model, model_to_json(model)


def _announce_reference(sc: Scenario) -> None:
    from .forecast import reference_seconds

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


@app.command()
def forecast(
    scenario: Annotated[Path, typer.Argument(help="Scenario file (YAML).")],
    json_out: Annotated[
        str | None,
        typer.Option("--json", metavar="PATH", help="Write the forecast as JSON ('-' = stdout)."),
    ] = None,
    markdown: MarkdownOption = None,
    samples: Annotated[
        str | None,
        typer.Option(
            "--samples",
            metavar="PATH",
            help="Per-trial totals, .parquet, .pq or .csv ('-' = CSV on stdout).",
        ),
    ] = None,
    plot: Annotated[
        str | None,
        typer.Option(
            "--plot", metavar="PATH", help="Histogram, .png, .svg or .pdf (needs costsim[plot])."
        ),
    ] = None,
    html: Annotated[
        str | None,
        typer.Option(
            "--html",
            metavar="PATH",
            help="One self-contained HTML report with its figures (needs costsim[plot]).",
        ),
    ] = None,
    engine: Annotated[
        Engine,
        typer.Option(
            "--engine",
            help="strata (fast) or reference (every request drawn; slow, for verification).",
        ),
    ] = Engine.strata,
    trials: TrialsOption = None,
    seed: SeedOption = None,
    no_bridge: Annotated[
        bool, typer.Option("--no-bridge", help="Skip the naive-to-forecast bridge (faster).")
    ] = False,
    quiet: QuietOption = False,
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
) -> None:
    """Forecast the cost of a scenario by Monte Carlo, against the naive linear estimate.

    Example: costsim forecast scenarios/launch_month.yaml --json forecast.json
    """
    from .forecast import run_forecast
    from .report import PLOT_FORMATS, SAMPLE_SUFFIXES, require_matplotlib

    with user_errors():
        sc = scenario_with(scenario, trials, seed)
        outputs = check_outputs(
            [
                Output("--json", json_out) if json_out is not None else None,
                Output("--markdown", markdown) if markdown is not None else None,
                Output("--samples", samples, tuple(SAMPLE_SUFFIXES))
                if samples is not None
                else None,
                Output("--plot", plot, tuple(PLOT_FORMATS), text=False)
                if plot is not None
                else None,
                Output("--html", html, (".html", ".htm"), text=False) if html is not None else None,
            ],
            _scenario_inputs(sc),
        )
        if plot is not None or html is not None:
            require_matplotlib()
        parallel = parallel_from(workers, scheduler)
        model, text = _scenario_model(sc)
        if engine is Engine.reference:
            _announce_reference(sc)
        with progress_bar() as bar:
            fc = run_forecast(
                sc,
                model,
                model_text=text,
                engine=engine,
                bridge=not no_bridge,
                daily=html is not None,
                progress=bar,
                parallel=parallel,
            )
            comparison = None
            if sc.deployments:  # the totals are the routed plan's (or the first option's)
                from .compare import plan_name, run_compare, served_as

                comparison = run_compare(sc, model, progress=bar, parallel=parallel)
                fc = served_as(fc, comparison, plan_name(sc))
        write_outputs(outputs, _forecast_contents(fc, sc, outputs, comparison))
    if _show_report(outputs, quiet):
        from .report import render_forecast

        render_forecast(fc, _stdout())


def _forecast_contents(
    fc: Forecast, sc: Scenario, outputs: list[Output], comparison: Any = None
) -> dict[str, Any]:
    """Every requested output of a forecast, rendered before anything is written."""
    from .modelfile import dumps
    from .report import (
        forecast_to_dict,
        forecast_to_markdown,
        plot_bytes,
        plot_format,
        sample_format,
        samples_bytes,
    )

    contents: dict[str, Any] = {}
    for out in outputs:
        if out.option == "--html":
            from .html_report import forecast_html

            contents[out.option] = forecast_html(fc, budget=_plot_budget(sc), comparison=comparison)
        if out.option == "--json":
            contents[out.option] = dumps(forecast_to_dict(fc)) + "\n"
        elif out.option == "--markdown":
            contents[out.option] = forecast_to_markdown(fc)
        elif out.option == "--samples":
            fmt = "csv" if out.to_stdout else sample_format(out.path)
            contents[out.option] = samples_bytes(fc, fmt)
        elif out.option == "--plot":
            contents[out.option] = plot_bytes(fc, plot_format(out.path), _plot_budget(sc))
    return contents


def _plot_budget(sc: Scenario) -> float | None:
    """The budget line of the plot: the scenario's P95 fail level, else its first limit's."""
    limits = sorted(sc.budget.limits, key=lambda lim: lim.stat != "p95")
    return float(limits[0].fail) if limits and limits[0].fail is not None else None


@app.command()
def prices(
    model: Annotated[
        str,
        typer.Argument(
            help="A catalog model: provider:model (openai:gpt-4o) or a name as logs spell it."
        ),
    ],
    at: Annotated[
        str | None,
        typer.Option(
            "--at", metavar="DATE", help="The prices in force on this date (YYYY-MM-DD) [now]."
        ),
    ] = None,
) -> None:
    """Show the prices costsim would use for a model, from the bundled catalog (genai-prices;
    never a network call).

    Example: costsim prices openai:gpt-4o
    """
    from datetime import UTC, datetime

    from .prices import describe

    when = None
    if at is not None:
        try:
            when = datetime.fromisoformat(at).replace(tzinfo=UTC)
        except ValueError:
            _fail(f"--at: expected a date such as 2025-06-30, got {at!r}")
    with user_errors():
        rows = describe(model, when)
    console = _stdout()
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        console.print(f"{label:<{width}}  {escape(value)}", soft_wrap=True, highlight=False)


@app.command()
def schema(
    output: Annotated[
        str | None,
        typer.Option(
            "-o", "--output", metavar="PATH", help="Write the schema here ('-' = stdout, default)."
        ),
    ] = None,
) -> None:
    """Print the JSON Schema of scenario files, for editors to validate and complete them.

    Example: costsim schema -o costsim-scenario.schema.json
    """
    import json

    from .scenario import json_schema

    with user_errors():
        outputs = check_outputs([Output("--output", output or STDOUT)], [])
        write_outputs(outputs, {"--output": json.dumps(json_schema(), indent=2) + "\n"})


@app.command()
def init(
    model: Annotated[Path, typer.Argument(help="Fitted model file (from costsim fit).")],
    output: Annotated[
        str,
        typer.Option(
            "-o", "--output", metavar="PATH", help="Scenario file to write ('-' = stdout)."
        ),
    ] = "scenario.yaml",
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing scenario file.")
    ] = False,
) -> None:
    """Write a commented starting scenario for a fitted model.

    A scenario is edited by hand, so an existing one is kept unless --force is given.

    Example: costsim init pilot.model.json -o scenario.yaml
    """
    from .modelfile import load_model
    from .scenario import init_scenario_text

    with user_errors():
        outputs = check_outputs([Output("--output", output)], [model])
        fitted = load_model(model)
        target = outputs[0]
        if not target.to_stdout and target.path.exists() and not force:
            _fail(f"{output} exists; pass --force to replace it")
        where = Path.cwd() if target.to_stdout else target.path.resolve().parent
        rel = os.path.relpath(model.resolve(), where)
        write_outputs(outputs, {"--output": init_scenario_text(fitted, rel)})
    if not target.to_stdout:
        stderr.print(
            escape(f"wrote {output}: edit volume and mix, then run `costsim forecast {output}`"),
            soft_wrap=True,
        )


# ---------------------------------------------------------------------------------------------
# backtest
# ---------------------------------------------------------------------------------------------


def _print_dropped(log: PilotLog) -> None:
    for d in log.dropped:
        plural = "s" if d.count != 1 else ""
        stderr.print(
            f"[yellow]dropped {d.count:,} row{plural}: {escape(d.reason)}[/]", soft_wrap=True
        )


@app.command()
@column_options
def backtest(
    log: Annotated[
        Path,
        typer.Argument(
            help="Log with timestamps and costs: Parquet file or dataset directory, or CSV."
        ),
    ],
    split: Annotated[
        str,
        typer.Option(
            "--split",
            metavar="TIME|FRACTION",
            help="The (last) origin: a fraction of the log's time span (0.5 fits the first half) "
            "or an ISO date-time inside the log.",
        ),
    ] = "0.5",
    rolling: Annotated[
        int,
        typer.Option(
            "--rolling",
            metavar="K",
            help="Origins, dividing the log's start to the split evenly, the last at the split.",
        ),
    ] = 1,
    horizon: Annotated[
        str | None,
        typer.Option(
            "--horizon",
            metavar="DURATION",
            help="Window forecast after each origin, e.g. 7d [default: to the log's end].",
        ),
    ] = None,
    volume_as_planned: Annotated[
        bool,
        typer.Option(
            "--volume-as-planned",
            help="Forecast the past's request rate and mix, not each window's actual ones.",
        ),
    ] = False,
    trials: Annotated[
        str, typer.Option("--trials", metavar="N", help="Trials of each forecast.")
    ] = str(BACKTEST_TRIALS),
    seed: Annotated[
        int, typer.Option("--seed", metavar="N", help="Seed of the fits and forecasts.")
    ] = 0,
    json_out: Annotated[
        str | None,
        typer.Option("--json", metavar="PATH", help="Write the backtest as JSON ('-' = stdout)."),
    ] = None,
    markdown: Annotated[
        str | None,
        typer.Option(
            "--markdown", metavar="PATH", help="Write the report as Markdown ('-' = stdout)."
        ),
    ] = None,
    drop_invalid: Annotated[
        bool,
        typer.Option(
            "--drop-invalid", help="Drop invalid rows (and say how many) instead of failing."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Do not print the report.")] = False,
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
    *,
    columns: ColumnMap,
) -> None:
    """Check the forecast on your own history: fit the past of a log, forecast its future.

    At each origin, fits the rows before it and forecasts the window after it with that
    window's actual requests and class mix (--volume-as-planned: the past's rate and mix), then
    reports where the actual cost fell: its PIT, P5-P95 and P25-P75 coverage, the interval
    score. Exits 0 whatever the scores (a report, not a gate); 2 on bad input.

    Example: costsim backtest scenarios/pilot.parquet --split 0.5 --rolling 3
    """
    from .backtest import parse_split, run_backtest
    from .backtest_report import backtest_to_dict, backtest_to_markdown, render_backtest
    from .logs import read_pilot
    from .modelfile import dumps

    n_trials = _trials_option(trials)
    _seed_option(seed)
    with user_errors():
        origin = parse_split(split)
        horizon_s = parse_duration_option(horizon, "--horizon") if horizon is not None else None
        outputs = check_outputs(
            [
                Output("--json", json_out) if json_out is not None else None,
                Output("--markdown", markdown) if markdown is not None else None,
            ],
            [log],
        )
        parallel = parallel_from(workers, scheduler)
        with warnings.catch_warnings(record=True) as caught, progress_bar() as bar:
            warnings.simplefilter("always", CostsimWarning)
            source = read_pilot(log, columns, drop_invalid=drop_invalid, progress=bar)
            _print_dropped(source)
            result = run_backtest(
                source,
                origin,
                rolling=rolling,
                horizon_s=horizon_s,
                volume_as_planned=volume_as_planned,
                trials=n_trials,
                seed=seed,
                progress=bar,
                parallel=parallel,
            )
        for message in dict.fromkeys(str(w.message) for w in caught):
            stderr.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)
        write_outputs(
            outputs,
            {
                "--json": dumps(backtest_to_dict(result)) + "\n",
                "--markdown": backtest_to_markdown(result),
            },
        )
    if _show_report(outputs, quiet):
        render_backtest(result, _stdout())


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".csv.gz", ".parquet", ".pq", ".csv"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name or "pilot"


app.command("check", help=CHECK_HELP)(check_command)
app.command("compare")(compare_command)


def main() -> None:
    """Console-script entry point. A bug exits 70 with one line (a traceback when
    COSTSIM_DEBUG is set), so that CI never mistakes it for a broken budget (1)."""
    from .memory import tune_malloc

    tune_malloc()  # this process is costsim's own: large arrays reused, not re-mapped
    try:
        app()
    except MemoryError:
        stderr.print(
            "[bold red]error:[/] out of memory: this run needs more memory than the machine has; "
            "lower --trials, the number of classes, or the horizon / resolution",
            soft_wrap=True,
        )
        sys.exit(EXIT_BAD_INPUT)
    except Exception as exc:  # only what the commands did not map to an exit code
        if os.environ.get("COSTSIM_DEBUG"):
            raise
        stderr.print(
            f"[bold red]internal error:[/] {escape(type(exc).__name__)}: {escape(str(exc))} "
            "(a bug in costsim: please report it; set COSTSIM_DEBUG=1 for the traceback)",
            soft_wrap=True,
        )
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":
    main()
