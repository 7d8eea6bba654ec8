"""The command-line shell: parse options, call one library function, render, map errors.

Exit codes: 0 success; 2 bad input or usage (one line on stderr, never a traceback).
"""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import __version__
from .dashboard import fit_summary_to_dict, render_fit, summarize_fit
from .errors import CostsimError, CostsimWarning
from .fit import DRIFT_WINDOW_S, MIN_CLASS_ROWS, QUANTITIES, FitOptions, fit_model
from .forecast import run_forecast
from .logs import ColumnMap, read_pilot
from .modelfile import dumps, load_model, model_to_json, save_model, write_atomic
from .report import (
    forecast_to_dict,
    forecast_to_markdown,
    render_forecast,
    write_plot,
    write_samples,
)
from .scenario import init_scenario_text, json_schema, load_scenario

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


def _load_inputs(scenario_path: Path, trials: int | None, seed: int | None) -> tuple[Any, Any, str]:
    """Scenario, model (loaded, or fitted from `pilot:`) and the model's text (for its hash)."""
    sc = load_scenario(scenario_path)
    if trials is not None:
        if trials < 1:
            _fail(f"--trials: expected a positive integer, got {trials}")
        sc = replace(sc, trials=trials)
    if seed is not None:
        if seed < 0:
            _fail(f"--seed: expected an integer >= 0, got {seed}")
        sc = replace(sc, seed=seed)
    if sc.model_path is not None:
        model = load_model(sc.model_path)
        text = sc.model_path.read_text(encoding="utf-8")
    else:
        assert sc.pilot_path is not None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CostsimWarning)
            model = fit_model(read_pilot(sc.pilot_path))
        text = model_to_json(model)
    return sc, model, text


def _progress_run(sc: Any, fn: Any) -> Any:
    """Run ``fn(progress)`` with a progress bar on stderr when it is a terminal and the run long."""
    if not stderr.is_terminal or sc.trials < 20_000:
        return fn(None)
    with Progress(
        TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=stderr, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("trials", total=sc.trials)
        return fn(lambda n: bar.advance(task, n))


@app.command()
def forecast(
    scenario: Annotated[Path, typer.Argument(help="Scenario file (YAML).")],
    json_out: Annotated[
        str | None,
        typer.Option("--json", metavar="PATH", help="Write the forecast as JSON ('-' = stdout)."),
    ] = None,
    markdown: Annotated[
        Path | None,
        typer.Option("--markdown", metavar="PATH", help="Write the report as Markdown."),
    ] = None,
    samples: Annotated[
        Path | None,
        typer.Option("--samples", metavar="PATH", help="Per-trial totals, .parquet or .csv."),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", metavar="PATH", help="Histogram PNG (needs costsim[plot])."),
    ] = None,
    engine: Annotated[
        str, typer.Option("--engine", help="strata (fast) or reference (per request, slow).")
    ] = "strata",
    trials: Annotated[
        int | None, typer.Option("--trials", help="Override the scenario's trials.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Override the scenario's seed.")
    ] = None,
    no_bridge: Annotated[
        bool, typer.Option("--no-bridge", help="Skip the naive-to-forecast bridge (faster).")
    ] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Do not print the report.")] = False,
) -> None:
    """Forecast the cost of a scenario by Monte Carlo, against the naive linear estimate.

    Example: costsim forecast scenarios/launch_month.yaml --json forecast.json
    """
    with user_errors():
        sc, model, text = _load_inputs(scenario, trials, seed)
        fc = _progress_run(
            sc,
            lambda progress: run_forecast(
                sc, model, model_text=text, engine=engine, bridge=not no_bridge, progress=progress
            ),
        )
        if json_out is not None:
            _write(lambda: _emit_json(forecast_to_dict(fc), json_out), json_out)
        if markdown is not None:
            _write(lambda: write_atomic(markdown, forecast_to_markdown(fc)), markdown)
        if samples is not None:
            _write(lambda: write_samples(fc, samples), samples)
        if plot is not None:
            _write(lambda: write_plot(fc, plot), plot)
    if not quiet and json_out != "-":
        render_forecast(fc, _stdout())


@app.command()
def schema(
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the schema here instead of stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of scenario files, for editors to validate and complete them.

    Example: costsim schema -o costsim-scenario.schema.json
    """
    text = json.dumps(json_schema(), indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        _write(lambda: write_atomic(output, text), output)


@app.command()
def init(
    model: Annotated[Path, typer.Argument(help="Fitted model file (from costsim fit).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Scenario file to write.")] = Path(
        "scenario.yaml"
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starting scenario for a fitted model.

    Example: costsim init pilot.model.json -o scenario.yaml
    """
    with user_errors():
        fitted = load_model(model)
        if output.exists() and not force:
            _fail(f"{output} exists; pass --force to overwrite it")
        rel = os.path.relpath(model.resolve(), output.resolve().parent)
        _write(lambda: write_atomic(output, init_scenario_text(fitted, rel)), output)
    stderr.print(f"wrote {output}: edit volume and mix, then run `costsim forecast {output}`")


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
