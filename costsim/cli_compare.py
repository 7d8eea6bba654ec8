"""`costsim compare`: the deployment options of a scenario on the same random numbers.

A command of the `costsim.cli` app (registered at the end of that module), with its
conventions: the scenario and its model loaded as `forecast` loads them, every output checked
before any work and written all together (`costsim.outputs`), bad input as one red line and
exit 2, a bug as exit 70 (`cli.main`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer


def compare(
    scenario: Annotated[Path, typer.Argument(help="Scenario file (YAML) with deployments.")],
    json_out: Annotated[
        str | None,
        typer.Option("--json", metavar="PATH", help="Write the comparison as JSON ('-' = stdout)."),
    ] = None,
    markdown: Annotated[
        str | None,
        typer.Option(
            "--markdown", metavar="PATH", help="Write the report as Markdown ('-' = stdout)."
        ),
    ] = None,
    review_after: Annotated[
        str | None,
        typer.Option(
            "--review-after",
            metavar="DURATION",
            help="When the choice can be revisited, e.g. 10d (default: a third of the horizon).",
        ),
    ] = None,
    trials: Annotated[
        str | None,
        typer.Option("--trials", metavar="N", help="Override the scenario's trials."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", metavar="N", help="Override the scenario's seed.")
    ] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Do not print the report.")] = False,
) -> None:
    """Compare the scenario's deployment options: cost, P(cheapest), regret, flexibility.

    Every option in `deployments:` serves all the traffic (and the routed plan, when `route:`
    is given), on the same random numbers.

    Example: costsim compare scenarios/deployments.yaml --json compare.json
    """
    # imported here: `costsim.cli` imports this module at its end
    from .cli import (
        _scenario_inputs,
        _scenario_model,
        _seed_option,
        _show_report,
        _stdout,
        _trials_option,
        parse_duration_option,
        progress_bar,
        user_errors,
    )
    from .compare import check_deployments, run_compare
    from .compare_report import compare_to_dict, compare_to_markdown, render_compare
    from .modelfile import dumps
    from .outputs import Output, check_outputs, write_outputs
    from .scenario import load_scenario

    n_trials = _trials_option(trials) if trials is not None else None
    _seed_option(seed)
    review_s = (
        parse_duration_option(review_after, "--review-after") if review_after is not None else None
    )
    with user_errors():
        sc = load_scenario(scenario)
        changes: dict[str, Any] = {}
        if n_trials is not None:
            changes["trials"] = n_trials
        if seed is not None:
            changes["seed"] = seed
        if changes:
            sc = dataclasses.replace(sc, **changes)
        check_deployments(sc)
        outputs = check_outputs(
            [
                Output("--json", json_out) if json_out is not None else None,
                Output("--markdown", markdown) if markdown is not None else None,
            ],
            _scenario_inputs(sc),
        )
        model, _ = _scenario_model(sc)
        with progress_bar() as bar:
            result = run_compare(sc, model, review_after_s=review_s, progress=bar)
        contents: dict[str, str] = {}
        for out in outputs:
            if out.option == "--json":
                contents[out.option] = dumps(compare_to_dict(result)) + "\n"
            else:
                contents[out.option] = compare_to_markdown(result)
        write_outputs(outputs, contents)
    if _show_report(outputs, quiet):
        render_compare(result, _stdout())
