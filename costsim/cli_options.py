"""Command-line options shared by several commands, declared once (`Annotated` aliases)."""

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
