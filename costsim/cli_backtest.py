"""`costsim backtest`: the forecast checked on a log's own history (registered by
`costsim.cli`, whose error and output policy it follows)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from .cli_options import (
    SchedulerOption,
    WorkersOption,
)
from .cli_shared import (
    _print_dropped,
    _seed_option,
    _show_report,
    _stdout,
    _trials_option,
    column_options,
    parallel_from,
    parse_duration_option,
    progress_bar,
    stderr,
    user_errors,
)
from .defaults import BACKTEST_TRIALS
from .errors import CostsimWarning
from .outputs import Output, check_outputs, write_outputs

if TYPE_CHECKING:
    from .logs import ColumnMap


@column_options
def backtest(
    log: Annotated[
        str,
        typer.Argument(
            metavar="LOG",
            help="Log with timestamps and costs: Parquet file or dataset directory, or CSV; "
            "local, or at a pyarrow filesystem URI such as s3://bucket/log/.",
            show_default=False,
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
    from .inputs import on_this_machine
    from .logs import read_pilot
    from .model.file import dumps
    from .report.backtest import backtest_to_dict, backtest_to_markdown, render_backtest

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
            on_this_machine(log),
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
