"""The command-line shell: parse options, call one library function, render, map errors.

Exit codes: 0 success; 2 bad input or usage (one line on stderr, never a traceback).
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from . import __version__
from .errors import CostsimError, CostsimWarning
from .fit import DRIFT_WINDOW_S, MIN_CLASS_ROWS, QUANTITIES, FitOptions, fit_model
from .logs import ColumnMap, read_pilot
from .modelfile import dumps, save_model, write_atomic
from .report import fit_summary_to_dict, render_fit, summarize_fit

EXIT_BAD_INPUT = 2

app = typer.Typer(
    name="costsim",
    help="Forecast what AI inference will cost in production from the logs of a pilot.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

stderr = Console(stderr=True, highlight=False)
WIDE = 160  # width of tables written to a pipe or a CI log, where no terminal sets one


def _stdout() -> Console:
    """A console on the current stdout; wide when it is not a terminal."""
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=WIDE)
    return console


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    stderr.print(f"[bold red]error:[/] {message}", soft_wrap=True)
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


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)?\s*$")
_UNIT_S = {None: 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, option: str) -> float:
    m = _DURATION.match(text)
    if not m or float(m.group(1)) <= 0:
        _fail(f"{option}: expected a positive duration such as 1h, 30m or 3600s, got {text!r}")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def parse_caps(items: list[str], max_tokens: int | None) -> dict[str, float]:
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
        if not cap > 0:
            _fail(f"--cap {name}: expected a positive number, got {value!r}")
        caps[name] = cap
    return caps


def _emit_json(payload: dict[str, Any], target: str) -> None:
    text = dumps(payload) + "\n"
    if target == "-":
        sys.stdout.write(text)
    else:
        write_atomic(target, text)


@app.command()
def fit(
    pilot: Annotated[
        Path, typer.Argument(help="Pilot log: Parquet file or dataset directory, or CSV.")
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="Model file to write [default: <pilot stem>.model.json]."
        ),
    ] = None,
    json_out: Annotated[
        str | None,
        typer.Option(
            "--json", metavar="PATH", help="Also write the dashboard as JSON ('-' = stdout)."
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
        typer.Option("--max-tokens", help="Context window: caps input and output tokens."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fit's random streams.")] = 0,
    min_class_rows: Annotated[
        int, typer.Option("--min-class-rows", help="Fewest rows a class needs to be fitted.")
    ] = MIN_CLASS_ROWS,
    drift_window: Annotated[
        str, typer.Option("--drift-window", help="Window over which unit-cost drift is measured.")
    ] = f"{DRIFT_WINDOW_S / 3600:g}h",
    class_col: Annotated[
        str, typer.Option("--class-col", help="Query-class column.")
    ] = "query_class",
    cost_col: Annotated[
        str, typer.Option("--cost-col", help="Billed cost (USD) column.")
    ] = "cost_usd",
    input_tokens_col: Annotated[str, typer.Option("--input-tokens-col")] = "input_tokens",
    output_tokens_col: Annotated[str, typer.Option("--output-tokens-col")] = "output_tokens",
    cached_tokens_col: Annotated[str, typer.Option("--cached-tokens-col")] = "cached_input_tokens",
    timestamp_col: Annotated[str, typer.Option("--timestamp-col")] = "timestamp",
    latency_col: Annotated[str, typer.Option("--latency-col")] = "latency_ms",
    status_col: Annotated[str, typer.Option("--status-col")] = "status",
    error_col: Annotated[str, typer.Option("--error-col")] = "error",
    retries_col: Annotated[str, typer.Option("--retries-col")] = "retries",
    cold_start_col: Annotated[str, typer.Option("--cold-start-col")] = "cold_start",
) -> None:
    """Fit a per-class heavy-tail cost model to a pilot log and show the dashboard.

    Example: costsim fit scenarios/pilot.parquet -o pilot.model.json
    """
    if min_class_rows < 2:
        _fail(f"--min-class-rows: expected an integer >= 2, got {min_class_rows}")
    options = FitOptions(
        seed=seed,
        caps=parse_caps(cap or [], max_tokens),
        min_class_rows=min_class_rows,
        drift_window_s=parse_duration(drift_window, "--drift-window"),
    )
    columns = ColumnMap(
        query_class=class_col,
        cost=cost_col,
        input_tokens=input_tokens_col,
        output_tokens=output_tokens_col,
        cached_input_tokens=cached_tokens_col,
        timestamp=timestamp_col,
        latency=latency_col,
        status=status_col,
        error=error_col,
        retries=retries_col,
        cold_start=cold_start_col,
    )
    out_path = output or Path(f"{_stem(pilot)}.model.json")
    with user_errors(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CostsimWarning)
        log = read_pilot(pilot, columns, drop_invalid=drop_invalid)
        for d in log.dropped:
            more = ", ..." if d.count > len(d.first_rows) else ""
            rows = ", ".join(str(r) for r in d.first_rows) + more
            stderr.print(f"[yellow]dropped {d.count:,} rows: {d.reason} (rows {rows})[/]")
        model = fit_model(log, options)
    for w in caught:
        if issubclass(w.category, CostsimWarning):
            stderr.print(f"[yellow]warning:[/] {w.message}", soft_wrap=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    summary = summarize_fit(model)
    _write(lambda: save_model(model, out_path), out_path)
    if json_out is not None:
        _write(lambda: _emit_json(fit_summary_to_dict(summary), json_out), json_out)
    if not quiet and json_out != "-":
        console = _stdout()
        render_fit(summary, console)
        console.print(f"model written to [bold]{out_path}[/]")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".csv.gz", ".parquet", ".pq", ".csv"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name or "pilot"


def _write(action: Any, target: Any) -> None:
    try:
        action()
    except OSError as exc:
        _fail(f"cannot write {target}: {exc.strerror or exc}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
