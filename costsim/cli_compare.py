"""`costsim compare`: the deployment options of a scenario on the same random numbers.

A command of the `costsim.cli` app (registered there), with its
conventions: the scenario and its model loaded as `forecast` loads them, every output checked
before any work and written all together (`costsim.outputs`), bad input as one red line and
exit 2, a bug as exit 70 (`cli.main`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .cli_options import (
    MarkdownOption,
    QuietOption,
    SchedulerOption,
    SeedOption,
    TrialsOption,
    WorkersOption,
)
from .cli_shared import (
    _scenario_inputs,
    _scenario_model,
    _show_report,
    _stdout,
    parallel_from,
    parse_duration_option,
    progress_bar,
    scenario_with,
    user_errors,
)


def compare(
    scenario: Annotated[
        Path, typer.Argument(metavar="SCENARIO", help="Scenario file (YAML) with deployments.")
    ],
    json_out: Annotated[
        str | None,
        typer.Option("--json", metavar="PATH", help="Write the comparison as JSON ('-' = stdout)."),
    ] = None,
    markdown: MarkdownOption = None,
    review_after: Annotated[
        str | None,
        typer.Option(
            "--review-after",
            metavar="DURATION",
            help="When the choice can be revisited, e.g. 10d (default: a third of the horizon).",
        ),
    ] = None,
    trials: TrialsOption = None,
    seed: SeedOption = None,
    quiet: QuietOption = False,
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
) -> None:
    """Compare the scenario's deployment options: cost, P(cheapest), regret, flexibility.

    Every option in `deployments:` serves all the traffic (and the routed plan, when `route:`
    is given), on the same random numbers.

    Example: costsim compare scenarios/deployments.yaml --json compare.json
    """
    review_s = (
        parse_duration_option(review_after, "--review-after") if review_after is not None else None
    )
    with user_errors():
        sc = scenario_with(scenario, trials, seed)  # a bad scenario is told before the imports
        from .model.file import dumps
        from .outputs import Output, check_outputs, write_outputs
        from .report.compare import compare_to_dict, compare_to_markdown, render_compare
        from .simulate.compare import check_deployments, run_compare

        check_deployments(sc)
        outputs = check_outputs(
            [
                Output("--json", json_out) if json_out is not None else None,
                Output("--markdown", markdown) if markdown is not None else None,
            ],
            _scenario_inputs(sc),
        )
        parallel = parallel_from(workers, scheduler)
        model, _ = _scenario_model(sc)
        with progress_bar() as bar:
            result = run_compare(
                sc, model, review_after_s=review_s, progress=bar, parallel=parallel
            )
        contents: dict[str, str] = {}
        for out in outputs:
            if out.option == "--json":
                contents[out.option] = dumps(compare_to_dict(result)) + "\n"
            else:
                contents[out.option] = compare_to_markdown(result)
        write_outputs(outputs, contents)
    if _show_report(outputs, quiet):
        render_compare(result, _stdout())
