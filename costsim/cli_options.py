"""Command-line options shared by several commands, declared once (`Annotated` aliases).

Imported with `costsim.cli` for every command, `--help` included: typer and the standard
library only.
"""

from __future__ import annotations

from typing import Annotated

import typer

TrialsOption = Annotated[
    str | None, typer.Option("--trials", metavar="N", help="Override the scenario's trials.")
]
SeedOption = Annotated[
    int | None, typer.Option("--seed", metavar="N", help="Override the scenario's seed.")
]
QuietOption = Annotated[bool, typer.Option("-q", "--quiet", help="Do not print the report.")]
MarkdownOption = Annotated[
    str | None,
    typer.Option("--markdown", metavar="PATH", help="Write the report as Markdown ('-' = stdout)."),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers",
        metavar="N",
        help="Local workers (threads, or processes for long work) to run on; results are "
        "identical for any N [default: all cores]. On a cluster, its workers run the work.",
    ),
]
SchedulerOption = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler address (needs the `dask` extra); results identical to a local run "
        "[default: $COSTSIM_DASK_SCHEDULER if set; '' runs here].",
    ),
]
