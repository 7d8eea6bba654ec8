"""The command-line shell: parse options, call one library function, render, map errors.

Exit codes: 0 success; 1 a budget broken and 3 a regression (``check``); 2 bad input or usage
(one line on stderr, never a traceback); 70 a bug in costsim.

Outputs follow one policy (`costsim.outputs`): checked before any work, never an input, ``-``
for standard output, all written together or none.

This module is imported for every command, ``--help`` included, so it imports only typer, rich's
console and costsim's light modules (errors, outputs, defaults, the shared options); a command
imports the library it runs (numpy, scipy, pandas, pyarrow, the scenario's pydantic
declaration) when it runs. ``tests/test_startup.py`` keeps it so.

Here: the application, ``forecast``, ``prices``, ``schema``, ``init`` and the entry point. The
longer commands have modules of their own (``cli_fit``, ``cli_backtest``, ``cli_check``,
``cli_compare``), registered here in the order ``--help`` lists them; what they share (the error
line, option checks, progress bar, column options, reading a scenario) is in ``cli_shared``.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from .cli_backtest import backtest as backtest_command
from .cli_check import CHECK_HELP
from .cli_check import check as check_command
from .cli_compare import compare as compare_command
from .cli_fit import fit as fit_command
from .cli_options import (
    MarkdownOption,
    QuietOption,
    SchedulerOption,
    SeedOption,
    TrialsOption,
    WorkersOption,
)
from .cli_shared import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    Engine,
    _announce_reference,
    _fail,
    _plot_budget,
    _scenario_inputs,
    _scenario_model,
    _show_report,
    _stdout,
    parallel_from,
    progress_bar,
    scenario_with,
    stderr,
    user_errors,
)
from .outputs import STDOUT, Output, check_outputs, write_outputs

if TYPE_CHECKING:
    from .scenario import Scenario
    from .simulate.forecast import Forecast


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


app.command()(fit_command)


# ---------------------------------------------------------------------------------------------
# forecast, schema, init
# ---------------------------------------------------------------------------------------------


@app.command()
def forecast(
    scenario: Annotated[Path, typer.Argument(metavar="SCENARIO", help="Scenario file (YAML).")],
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
    with user_errors():
        sc = scenario_with(scenario, trials, seed)  # a bad scenario is told before the imports
        from .report.forecast import PLOT_FORMATS, SAMPLE_SUFFIXES, require_matplotlib
        from .simulate.forecast import run_forecast

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
            require_matplotlib("--plot" if plot is not None else "--html")
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
                from .simulate.compare import plan_name, run_compare, served_as

                comparison = run_compare(sc, model, progress=bar, parallel=parallel)
                fc = served_as(fc, comparison, plan_name(sc))
        write_outputs(outputs, _forecast_contents(fc, sc, outputs, comparison))
    if _show_report(outputs, quiet):
        from .report.forecast import render_forecast

        render_forecast(fc, _stdout())


def _forecast_contents(
    fc: Forecast, sc: Scenario, outputs: list[Output], comparison: Any = None
) -> dict[str, Any]:
    """Every requested output of a forecast, rendered before anything is written."""
    from .model.file import dumps
    from .report.forecast import (
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
            from .report.html import forecast_html

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


@app.command()
def prices(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL",
            help="A catalog model: provider:model (openai:gpt-4o) or a name as logs spell it.",
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

    from .simulate.prices import describe

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
    model: Annotated[
        Path, typer.Argument(metavar="MODEL", help="Fitted model file (from costsim fit).")
    ],
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
    from .model.file import load_model
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


app.command()(backtest_command)
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
