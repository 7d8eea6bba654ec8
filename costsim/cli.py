"""The command-line shell: parse options, call one library function, render, map errors.

Exit codes: 0 success; 2 bad input or usage (one line on stderr, never a traceback).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import __version__
from .check import (
    DEFAULT_COMPARE,
    STATS,
    CheckConfig,
    CheckResult,
    CheckSpec,
    Exceedance,
    Limit,
    check_baseline_compatible,
    evaluate,
    exit_code,
    load_baseline,
    merge_limits,
    parse_config,
    parse_exceed,
    parse_stat_amount,
    parse_tolerance,
    reproduce_baseline,
    trials_needed,
)
from .check_report import check_to_dict, check_to_junit, check_to_markdown, render_check
from .check_report import lines as check_lines
from .dashboard import fit_summary_to_dict, render_fit, summarize_fit
from .errors import CostsimError, CostsimWarning
from .fit import DRIFT_WINDOW_S, MIN_CLASS_ROWS, QUANTITIES, FitOptions, fit_model
from .forecast import CHUNK_TRIALS, run_forecast
from .logs import ColumnMap, read_pilot
from .modelfile import dumps, load_model, model_to_json, save_model, write_atomic
from .report import (
    forecast_to_dict,
    forecast_to_markdown,
    render_forecast,
    write_plot,
    write_samples,
)
from .scenario import init_scenario_text, json_schema, load_scenario, parse_duration, read_yaml

EXIT_BAD_INPUT = 2
DEFAULT_CONFIG = "costsim.yaml"
AUTO_TRIALS_CAP = 500_000

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


def parse_duration_option(text: str, option: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        _fail(f"{option}: {exc}")


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
        drift_window_s=parse_duration_option(drift_window, "--drift-window"),
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
            stderr.print(
                f"[yellow]dropped {d.count:,} rows: {escape(d.reason)} (rows {rows})[/]",
                soft_wrap=True,
            )
        model = fit_model(log, options)
    for w in caught:
        if issubclass(w.category, CostsimWarning):
            stderr.print(f"[yellow]warning:[/] {escape(str(w.message))}", soft_wrap=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    summary = summarize_fit(model)
    _write(lambda: save_model(model, out_path), out_path)
    if json_out is not None:
        _write(lambda: _emit_json(fit_summary_to_dict(summary), json_out), json_out)
    if not quiet and json_out != "-":
        console = _stdout()
        render_fit(summary, console)
        console.print(f"model written to [bold]{escape(str(out_path))}[/]", soft_wrap=True)


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
    model, text = _scenario_model(sc)
    return sc, model, text


def _scenario_model(sc: Any) -> tuple[Any, str]:
    """The scenario's model (loaded, or fitted from `pilot:`) and its text, for its hash."""
    if sc.model_path is not None:
        return load_model(sc.model_path), sc.model_path.read_text(encoding="utf-8")
    assert sc.pilot_path is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CostsimWarning)
        model = fit_model(read_pilot(sc.pilot_path))
    return model, model_to_json(model)


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
    if samples is not None and samples.suffix.lower() not in (".parquet", ".pq", ".csv"):
        _fail(f"--samples {samples}: expected a .parquet, .pq or .csv file")
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
            _write(lambda: write_plot(fc, plot, _plot_budget(sc)), plot)
    if not quiet and json_out != "-":
        render_forecast(fc, _stdout())


def _plot_budget(sc: Any) -> float | None:
    """The budget line of the plot: the scenario's P95 fail level, else its first limit's."""
    limits = sorted(sc.budget.limits, key=lambda lim: lim.stat != "p95")
    return float(limits[0].fail) if limits and limits[0].fail is not None else None


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
    stderr.print(
        escape(f"wrote {output}: edit volume and mix, then run `costsim forecast {output}`"),
        soft_wrap=True,
    )


CHECK_HELP = """Run scenarios as a CI budget-regression gate.

Checks budgets (quantiles or the mean, with warn levels), the probability of exceeding an
amount, and regressions against a stored baseline forecast (`costsim forecast --json`), with
Monte Carlo error taken into account so that CI never flakes on noise.

Exit codes: 0 all checks pass (warnings never fail); 1 a budget is broken; 3 a regression
beyond tolerance (budgets met); 2 bad input or usage.

Example: costsim check scenarios/launch_month.yaml --max p95=120000 --baseline base.json
"""


def _gather_specs(
    scenarios: list[Path], config: Path | None, baseline: Path | None, tolerance: str | None,
    compare: str | None, max_: list[str], warn: list[str], exceed: list[str],
) -> tuple[list[CheckSpec], CheckConfig | None]:  # fmt: skip
    """The checks to run: from the config file and/or the scenarios on the command line."""
    cfg = None
    if config is None and not scenarios and Path(DEFAULT_CONFIG).is_file():
        config = Path(DEFAULT_CONFIG)
    if config is not None:
        cfg = parse_config(read_yaml(config, "check config"), config)
    if not scenarios and cfg is None:
        _fail(f"give one or more scenario files, or --config (none found at ./{DEFAULT_CONFIG})")
    if baseline is not None and len(scenarios) != 1:
        _fail("--baseline goes with exactly one scenario; list several in a config file instead")
    limits: dict[str, Limit] = {}
    for text in max_:
        stat, amount = parse_stat_amount(text, "--max")
        limits[stat] = Limit(stat, amount, limits.get(stat, Limit(stat, None)).warn)
    for text in warn:
        stat, amount = parse_stat_amount(text, "--warn")
        limits[stat] = Limit(stat, limits.get(stat, Limit(stat, None)).fail, amount)
    rules = tuple(parse_exceed(t) for t in exceed)
    tol = parse_tolerance(tolerance) if tolerance is not None else None
    stats: tuple[str, ...] = DEFAULT_COMPARE
    if compare is not None:
        stats = tuple(c.strip() for c in compare.split(",") if c.strip())
        bad = [c for c in stats if c not in STATS]
        if bad or not stats:
            _fail(
                f"--compare: expected a comma-separated list of {', '.join(STATS)}, got {compare!r}"
            )
    specs = list(cfg.checks) if cfg is not None else []
    specs = [
        replace(
            sp,
            limits=merge_limits(sp.limits, tuple(limits.values())),
            exceed=sp.exceed + rules,
            tolerance=tol or sp.tolerance,
            compare=stats if compare is not None else sp.compare,
        )
        for sp in specs
    ]
    specs += [CheckSpec(p, baseline, tol, stats, tuple(limits.values()), rules) for p in scenarios]
    return specs, cfg


def _run_check(
    spec: CheckSpec, trials: str | None, precision: float, seed: int | None,
    allow_model_change: bool,
) -> CheckResult:  # fmt: skip
    """One scenario: forecast it (with the baseline's seed and trials) and judge it."""
    sc = load_scenario(spec.scenario)
    if seed is not None:
        sc = replace(sc, seed=seed)
    model, text = _scenario_model(sc)
    baseline = None
    notes: list[str] = []
    if spec.baseline is not None:
        baseline = load_baseline(spec.baseline)
        if seed is None:
            sc = replace(sc, seed=int(baseline["seed"]))
        if trials is None:
            sc = replace(sc, trials=int(baseline["trials"]))
        notes.append(
            f"compared with {spec.baseline} (seed {sc.seed}, {sc.trials:,} trials: common "
            "random numbers)"
        )
    own = tuple(Limit(b.stat, b.fail, b.warn) for b in sc.budget.limits)
    limits = list(merge_limits(own, spec.limits))
    exceed = [*(Exceedance(a, p) for a, p in sc.budget.max_exceed_prob), *spec.exceed]
    if not limits and not exceed and baseline is None:
        _fail(
            f"{spec.scenario}: nothing to check; give a budget (the scenario's `budget:`, --max, "
            "--warn or --exceed) or a --baseline"
        )
    if trials == "auto":
        gated = tuple(
            dict.fromkeys([*(lim.stat for lim in limits), *(spec.compare if baseline else ())])
        )
        first = run_forecast(replace(sc, trials=CHUNK_TRIALS), model, model_text=text, bridge=False)
        needed = trials_needed(
            first.totals, gated or ("p95",), precision, CHUNK_TRIALS, AUTO_TRIALS_CAP
        )
        sc = replace(sc, trials=needed)
        notes.append(
            f"--trials auto: {needed:,} trials for 95% intervals within {100 * precision:g}% of "
            f"{', '.join(gated)}" + (" (capped)" if needed >= AUTO_TRIALS_CAP else "")
        )
    elif trials is not None:
        sc = replace(sc, trials=_positive_int(trials, "--trials"))
    fc = run_forecast(sc, model, model_text=text, bridge=False)
    baseline_totals = None
    if baseline is not None:
        check_baseline_compatible(baseline, fc, str(spec.baseline), allow_model_change)
        baseline_totals, how = reproduce_baseline(baseline, sc, model, text)
        notes.append(how)
    return evaluate(
        fc, limits, exceed, baseline, str(spec.baseline) if spec.baseline else None,
        spec.tolerance, spec.compare, tuple(notes), baseline_totals,
    )  # fmt: skip


def _positive_int(text: str, option: str) -> int:
    try:
        value = int(text)
    except ValueError:
        _fail(f"{option}: expected 'auto' or a positive integer, got {text!r}")
    if value < 1:
        _fail(f"{option}: expected 'auto' or a positive integer, got {text!r}")
    return value


Opt = typer.Option  # the check command has many options


@app.command(help=CHECK_HELP)
def check(
    scenarios: Annotated[list[Path] | None, typer.Argument(help="Scenario files.")] = None,
    config: Annotated[
        Path | None, Opt("--config", help=f"Checks to run [default: ./{DEFAULT_CONFIG}].")
    ] = None,
    max_: Annotated[
        list[str] | None, Opt("--max", metavar="STAT=USD", help="Fail above, e.g. p95=120000.")
    ] = None,
    warn: Annotated[list[str] | None, Opt("--warn", metavar="STAT=USD", help="Warn above.")] = None,
    exceed: Annotated[
        list[str] | None, Opt("--exceed", metavar="USD:P", help="Fail when P(total > USD) > P.")
    ] = None,
    baseline: Annotated[
        Path | None, Opt("--baseline", help="A stored `costsim forecast --json`.")
    ] = None,
    tolerance: Annotated[
        str | None, Opt("--tolerance", help="Allowed rise: 5% or 2500 (USD) [default: 5%].")
    ] = None,
    compare: Annotated[
        str | None, Opt("--compare", help="Compared figures [default: p50,p95,p99,mean].")
    ] = None,
    allow_model_change: Annotated[
        bool, Opt("--allow-model-change", help="Accept a baseline of another model.")
    ] = False,
    trials: Annotated[
        str | None, Opt("--trials", help="N, or auto [default: the baseline's or scenario's].")
    ] = None,
    precision: Annotated[
        str | None, Opt("--precision", help="--trials auto: CI half-width [default: 1%].")
    ] = None,
    seed: Annotated[int | None, Opt("--seed", help="Override the seed.")] = None,
    output_format: Annotated[
        str, Opt("--format", help="auto (table on a terminal, else lines), table or lines.")
    ] = "auto",
    markdown: Annotated[Path | None, Opt("--markdown", metavar="PATH", help="Markdown.")] = None,
    junit: Annotated[Path | None, Opt("--junit", metavar="PATH", help="JUnit XML.")] = None,
    json_out: Annotated[
        str | None, Opt("--json", metavar="PATH", help="JSON ('-' = stdout).")
    ] = None,
) -> None:
    if output_format not in ("auto", "table", "lines"):
        _fail(f"--format: expected auto, table or lines, got {output_format!r}")
    if trials is not None and trials != "auto":
        _positive_int(trials, "--trials")
    with user_errors():
        specs, cfg = _gather_specs(
            scenarios or [], config, baseline, tolerance, compare,
            max_ or [], warn or [], exceed or [],
        )  # fmt: skip
        if trials is None and cfg is not None and cfg.trials is not None:
            trials = str(cfg.trials)
        prec_value = cfg.precision if cfg is not None and cfg.precision else 0.01
        if precision is not None:
            prec = parse_tolerance(precision)
            if not prec.relative or not 0 < prec.value < 1:
                _fail(f"--precision: expected a percentage such as 1%, got {precision!r}")
            prec_value = prec.value
        results = [_run_check(sp, trials, prec_value, seed, allow_model_change) for sp in specs]
        md = check_to_markdown(results)
        if markdown is not None:
            _write(lambda: write_atomic(markdown, md), markdown)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            _write(lambda: _append(summary, md), summary)
        if junit is not None:
            _write(lambda: write_atomic(junit, check_to_junit(results)), junit)
        if json_out is not None:
            _write(lambda: _emit_json(check_to_dict(results), json_out), json_out)
    console = _stdout()
    if json_out != "-":
        if output_format == "table" or (output_format == "auto" and console.is_terminal):
            render_check(results, console)
        else:
            for line in check_lines(results):
                sys.stdout.write(line + "\n")
    raise typer.Exit(exit_code(results))


def _append(path: str, text: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")


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


EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug, not bad input and not a broken budget


def main() -> None:
    """Console-script entry point. A bug exits 70 with one line (a traceback when
    COSTSIM_DEBUG is set), so that CI never mistakes it for a broken budget (1)."""
    try:
        app()
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
