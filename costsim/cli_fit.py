"""`costsim fit`: fit a pilot log, or a tool's export, into a model file (registered by
`costsim.cli`, whose error and output policy it follows)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from .cli_options import (
    SchedulerOption,
    WorkersOption,
)
from .cli_shared import (
    LogFormat,
    Unit,
    _fail,
    _seed_option,
    _show_report,
    _stdout,
    _stem,
    column_options,
    parallel_from,
    parse_caps,
    parse_duration_option,
    progress_bar,
    stderr,
    user_errors,
)
from .defaults import DRIFT_WINDOW_S, MIN_CLASS_ROWS
from .errors import CostsimWarning
from .outputs import Output, check_outputs, write_outputs

if TYPE_CHECKING:
    from .logs import ColumnMap


@column_options
def fit(
    pilot: Annotated[
        str,
        typer.Argument(
            metavar="PILOT",
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
    from .inputs import is_uri, on_this_machine

    if not is_uri(pilot) and not Path(pilot).exists():
        _fail(f"pilot log not found: {pilot}")  # as reading it says, without its imports first
    _start_workers_early(pilot, workers, scheduler)

    import pyarrow as pa

    from .logs import is_table_name, read_export, read_pilot
    from .model.file import checked_model_json, dumps
    from .model.fit import FitOptions, fit_export, fit_source
    from .report.dashboard import fit_summary_to_dict, render_fit, summarize_fit
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
                Output(
                    "--output",
                    output or f"{_stem(Path(pilot))}.model.json",
                    (".json",),
                    implied=output is None,
                ),
                Output("--json", json_out) if json_out is not None else None,
                Output("--html", html, (".html", ".htm"), text=False) if html is not None else None,
            ],
            [*on_this_machine(pilot), *([class_map] if class_map is not None else [])],
        )
        if html is not None:
            from .report.forecast import require_matplotlib

            require_matplotlib("--html")
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
            from .report.diagnostics import fit_diagnostics
            from .report.html import fit_html

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


#: a local Parquet log at least this large likely has the rows (`PROCESSES_EARLY_ROWS`, 512k) for
#: which the fit starts its worker processes (about 9 MB; CSV and exports hold far fewer rows a
#: byte, and are left to the fit to decide)
EARLY_BYTES = 8 << 20


def _start_workers_early(pilot: str, workers: int | None, scheduler: str | None) -> None:
    """For a large local Parquet log (a file, or a directory of them) fitted on several local
    workers, the workers' fork server is started before this process imports what reads and
    fits the log: both import at once (a second or so each), on two cores. Only the time
    changes."""
    from .inputs import local_bytes
    from .parallel import ENV_SCHEDULER, Parallel, available_cores

    n = workers if workers is not None else available_cores()
    on_cluster = scheduler.strip() if scheduler is not None else os.environ.get(ENV_SCHEDULER)
    if on_cluster or n < 2:
        return
    if local_bytes(pilot, EARLY_BYTES) >= EARLY_BYTES:
        Parallel(n).start_processes("costsim.model.fit")
