"""`costsim check`: scenarios as a CI budget-regression gate.

A command of the `costsim.cli` app (registered there), with its conventions: every output
checked before any work and written all together (`costsim.outputs`), bad input as one red
line and exit 2, a bug as exit 70 (`cli.main`); the verdicts' own exit codes are in
``CHECK_HELP``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .cli_options import SchedulerOption, WorkersOption
from .cli_shared import (
    _fail,
    _plot_budget,
    _scenario_inputs,
    _scenario_model,
    _seed_option,
    _stdout,
    _trials_option,
    parallel_from,
    stderr,
    user_errors,
)
from .errors import CostsimError
from .outputs import Output, check_outputs, write_outputs

if TYPE_CHECKING:
    from .check import CheckResult, CheckSpec
    from .parallel import Parallel
    from .scenario import Scenario
    from .simulate.forecast import Forecast

DEFAULT_CONFIG = "costsim.yaml"
AUTO_TRIALS_CAP = 500_000


class CheckFormat(StrEnum):
    """--format of `check`'s standard output."""

    auto = "auto"
    table = "table"
    lines = "lines"


CHECK_HELP = """Run scenarios as a CI budget-regression gate.

Checks budgets (quantiles or the mean, with warn levels), the probability of exceeding an
amount, and regressions against a stored baseline forecast (`costsim forecast --json`), with
Monte Carlo error taken into account so that CI never flakes on noise. A regression is always
judged on the baseline's own seed and trials (common random numbers); --trials only sizes the
run that judges budgets.

Exit codes: 0 all checks pass (warnings never fail); 1 a budget is broken; 3 a regression
beyond tolerance (budgets met); 2 bad input or usage, or a forecast that is not finite.

Example: costsim check scenarios/launch_month.yaml --max p95=120000 --baseline base.json
"""


def _gather_specs(
    scenarios: list[Path],
    config: Path | None,
    baseline: Path | None,
    tolerance: str | None,
    compare: str | None,
    max_: list[str],
    warn: list[str],
    exceed: list[str],
) -> tuple[list[CheckSpec], Any]:
    """The checks to run: from the config file and/or the scenarios on the command line."""
    from .check import (
        DEFAULT_COMPARE,
        STATS,
        CheckSpec,
        Limit,
        merge_limits,
        parse_config,
        parse_exceed,
        parse_stat_amount,
        parse_tolerance,
    )
    from .scenario import read_yaml

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
    spec: CheckSpec,
    sc: Scenario,
    trials: str | None,
    precision: float,
    seed: int | None,
    allow_model_change: bool,
    daily: bool = False,
    deployment: str | None = None,
    *,
    parallel: Parallel,
    loaded: tuple[Any, str],
) -> tuple[CheckResult, Forecast]:
    """One scenario: budgets judged on a run of the requested trials; regressions always on a
    rerun with the baseline's seed and trials (common random numbers, paired errors), with
    the scenario's model and its text (``loaded``: `_scenario_model`). Returns the verdicts and the
    forecast they judged (``daily``: with its cost per day)."""
    from .check import (
        Exceedance,
        Limit,
        check_baseline_compatible,
        evaluate,
        load_baseline,
        merge_limits,
        reproduce_baseline,
        trials_needed,
        validate_limits,
    )
    from .simulate.chunks import CHUNK_TRIALS
    from .simulate.forecast import run_forecast

    if seed is not None:
        sc = replace(sc, seed=seed)
    model, text = loaded
    baseline = load_baseline(spec.baseline) if spec.baseline is not None else None
    own = tuple(Limit(b.stat, b.fail, b.warn) for b in sc.budget.limits)
    limits = list(merge_limits(own, spec.limits))
    validate_limits(limits, str(spec.scenario))
    exceed = [*(Exceedance(a, p) for a, p in sc.budget.max_exceed_prob), *spec.exceed]
    if not limits and not exceed and baseline is None:
        raise CostsimError(
            f"{spec.scenario}: nothing to check; give a budget (the scenario's `budget:`, --max, "
            "--warn or --exceed) or a --baseline"
        )
    notes: list[str] = []
    if deployment is not None and not sc.deployments:
        raise CostsimError(f"--deployment: {spec.scenario} has no `deployments:`")
    if sc.deployments:
        from .simulate.compare import plan_name

        plan_name(sc, deployment)  # an unknown option is refused before any work
    if sc.deployments and baseline is not None:
        raise CostsimError(
            f"{spec.scenario}: --baseline on a scenario with deployments is not supported yet; "
            "gate its budgets, or compare the forecast JSON of a scenario without deployments"
        )
    regression_sc = None
    as_written = sc
    if baseline is not None:
        regression_sc = replace(sc, seed=int(baseline["seed"]), trials=int(baseline["trials"]))
        if seed is None:
            sc = replace(sc, seed=regression_sc.seed)
        if trials is None:
            sc = replace(sc, trials=regression_sc.trials)
    budgeted = bool(limits or exceed)
    if trials == "auto" and budgeted:
        gated = tuple(dict.fromkeys(lim.stat for lim in limits)) or ("p95",)
        first = run_forecast(
            replace(sc, trials=CHUNK_TRIALS),
            model,
            model_text=text,
            bridge=False,
            parallel=parallel,
        )
        needed = trials_needed(first.totals, gated, precision, CHUNK_TRIALS, AUTO_TRIALS_CAP)
        sc = replace(sc, trials=needed)
        notes.append(
            f"budgets: --trials auto chose {needed:,} trials for 95% intervals within "
            f"{100 * precision:g}% of {', '.join(gated)}"
            + (" (capped)" if needed >= AUTO_TRIALS_CAP else "")
        )
    elif trials is not None and trials != "auto":
        sc = replace(sc, trials=_trials_option(trials))
    fc = (
        run_forecast(sc, model, model_text=text, bridge=False, daily=daily, parallel=parallel)
        if budgeted
        else None
    )
    if fc is not None and sc.deployments:
        from .simulate.compare import plan_name, run_compare, served_as

        fc = served_as(fc, run_compare(sc, model, parallel=parallel), plan_name(sc, deployment))
    regression_fc, baseline_totals = None, None
    if baseline is not None and regression_sc is not None:
        same = fc is not None and (sc.seed, sc.trials) == (regression_sc.seed, regression_sc.trials)
        regression_fc = (
            fc
            if same and fc is not None
            else run_forecast(
                regression_sc,
                model,
                model_text=text,
                bridge=False,
                daily=daily,
                parallel=parallel,
            )
        )
        check_baseline_compatible(baseline, regression_fc, str(spec.baseline), allow_model_change)
        baseline_totals, how = reproduce_baseline(
            baseline, regression_sc, model, text, parallel=parallel
        )
        notes.append(
            f"regressions: compared with {spec.baseline} at its seed {regression_sc.seed} and "
            f"{regression_sc.trials:,} trials; {how}"
        )
        if budgeted and not same:
            notes.append(f"budgets: judged on their own run (seed {sc.seed}, {sc.trials:,} trials)")
        elif budgeted and (as_written.seed, as_written.trials) != (sc.seed, sc.trials):
            notes.append(
                "budgets: judged on the same run, the baseline's seed and trials (the scenario "
                f"says seed {as_written.seed}, {as_written.trials:,} trials; --trials gives "
                "budgets a run of their own)"
            )
    judged = fc if fc is not None else regression_fc
    assert judged is not None  # a budget or a baseline is always given (checked above)
    result = evaluate(
        judged,
        limits,
        exceed,
        baseline,
        str(spec.baseline) if spec.baseline else None,
        spec.tolerance,
        spec.compare,
        tuple(notes),
        baseline_totals,
        regression_fc,
    )
    return result, judged


Opt = typer.Option  # the check command has many options


def check(
    scenarios: Annotated[
        list[Path] | None, typer.Argument(metavar="SCENARIOS", help="Scenario files.")
    ] = None,
    config: Annotated[
        Path | None,
        Opt("--config", metavar="PATH", help=f"Checks to run [default: ./{DEFAULT_CONFIG}]."),
    ] = None,
    max_: Annotated[
        list[str] | None, Opt("--max", metavar="STAT=USD", help="Fail above, e.g. p95=120000.")
    ] = None,
    warn: Annotated[
        list[str] | None, Opt("--warn", metavar="STAT=USD", help="Warn above, e.g. p95=100000.")
    ] = None,
    exceed: Annotated[
        list[str] | None,
        Opt("--exceed", metavar="USD:P", help="Fail when P(total > USD) > P, e.g. 150000:0.05."),
    ] = None,
    baseline: Annotated[
        Path | None,
        Opt("--baseline", metavar="PATH", help="A stored `costsim forecast --json` to compare."),
    ] = None,
    tolerance: Annotated[
        str | None,
        Opt("--tolerance", metavar="PCT|USD", help="Allowed rise: 5% or 2500 (USD) [default: 5%]."),
    ] = None,
    compare: Annotated[
        str | None,
        Opt("--compare", metavar="STATS", help="Compared figures [default: p50,p95,p99,mean]."),
    ] = None,
    allow_model_change: Annotated[
        bool, Opt("--allow-model-change", help="Accept a baseline made with another model.")
    ] = False,
    trials: Annotated[
        str | None,
        Opt(
            "--trials",
            metavar="N|auto",
            help="Trials of the budget run [default: the baseline's or the scenario's].",
        ),
    ] = None,
    precision: Annotated[
        str | None,
        Opt("--precision", metavar="PCT", help="--trials auto: CI half-width [default: 1%]."),
    ] = None,
    seed: Annotated[int | None, Opt("--seed", metavar="N", help="Override the seed.")] = None,
    output_format: Annotated[
        CheckFormat,
        Opt("--format", help="auto (table on a terminal, else lines), table or lines."),
    ] = CheckFormat.auto,
    markdown: Annotated[
        str | None, Opt("--markdown", metavar="PATH", help="Markdown ('-' = stdout).")
    ] = None,
    junit: Annotated[
        str | None, Opt("--junit", metavar="PATH", help="JUnit XML ('-' = stdout).")
    ] = None,
    json_out: Annotated[
        str | None, Opt("--json", metavar="PATH", help="JSON ('-' = stdout).")
    ] = None,
    html: Annotated[
        str | None,
        Opt(
            "--html",
            metavar="PATH",
            help="One scenario: its forecast report with the verdicts on top (costsim[plot]).",
        ),
    ] = None,
    deployment: Annotated[
        str | None,
        Opt(
            "--deployment",
            metavar="NAME",
            help="Scenarios with deployments: the option whose cost is judged [the route's].",
        ),
    ] = None,
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
) -> None:
    """See ``CHECK_HELP`` (the command's help)."""
    from .check import exit_code, parse_tolerance
    from .scenario import load_scenario

    if trials is not None and trials != "auto":
        _trials_option(trials, auto=True)
    _seed_option(seed)
    with user_errors():
        specs, cfg = _gather_specs(
            scenarios or [],
            config,
            baseline,
            tolerance,
            compare,
            max_ or [],
            warn or [],
            exceed or [],
        )
        if trials is None and cfg is not None and cfg.trials is not None:
            trials = str(cfg.trials)
        # an option that changes nothing is said, not ignored in silence
        if tolerance is not None and not any(sp.baseline for sp in specs):
            _unused("--tolerance", "it applies to a comparison with a baseline (--baseline)")
        prec_value = cfg.precision if cfg is not None and cfg.precision else 0.01
        if precision is not None:
            prec = parse_tolerance(precision)
            if not prec.relative or not 0.001 <= prec.value <= 0.5:
                _fail(
                    f"--precision: expected a percentage in [0.1%, 50%] such as 1%, got "
                    f"{precision!r}"
                )
            prec_value = prec.value
            if trials != "auto":
                _unused("--precision", "it sets how many trials --trials auto runs")
        loaded = [load_scenario(sp.scenario) for sp in specs]  # told before the imports
        from .model.file import dumps
        from .report.check import check_to_dict, check_to_junit, check_to_markdown, render_check
        from .report.check import lines as check_lines
        from .report.forecast import require_matplotlib

        inputs: list[Path] = [p for p in (config,) if p is not None]
        for sp, sc in zip(specs, loaded, strict=True):
            inputs += _scenario_inputs(sc) + ([sp.baseline] if sp.baseline else [])
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        outputs = check_outputs(
            [
                Output("--markdown", markdown) if markdown is not None else None,
                Output("--junit", junit) if junit is not None else None,
                Output("--json", json_out) if json_out is not None else None,
                Output("$GITHUB_STEP_SUMMARY", summary, text=False) if summary else None,
                Output("--html", html, (".html", ".htm"), text=False) if html is not None else None,
            ],
            inputs,
        )
        if html is not None:
            if len(specs) != 1:
                _fail(f"--html: reports one scenario; this check runs {len(specs)}")
            require_matplotlib("--html")
        parallel = parallel_from(workers, scheduler)
        models = [_scenario_model(sc) for sc in loaded]  # here: a fit's warnings stay in order
        runs = parallel.sweep(
            lambda item: _run_check(
                item[0], item[1], trials, prec_value, seed, allow_model_change,
                html is not None, deployment, parallel=parallel, loaded=item[2],
            ),
            list(zip(specs, loaded, models, strict=True)),
        )  # fmt: skip
        results = [r for r, _ in runs]
        md = check_to_markdown(results)
        contents: dict[str, Any] = {
            "--markdown": md,
            "--junit": check_to_junit(results),
            "--json": dumps(check_to_dict(results)) + "\n",
        }
        if html is not None:
            from .report.html import forecast_html

            contents["--html"] = forecast_html(
                runs[0][1], budget=_plot_budget(loaded[0]), check=results
            )
        write_outputs([o for o in outputs if o.option != "$GITHUB_STEP_SUMMARY"], contents)
        if summary:
            _append(summary, md)
    console = _stdout()
    if not any(o.to_stdout for o in outputs):
        table = output_format is CheckFormat.table
        if table or (output_format is CheckFormat.auto and console.is_terminal):
            render_check(results, console)
        else:
            for line in check_lines(results):
                sys.stdout.write(line + "\n")
    raise typer.Exit(exit_code(results))


def _unused(option: str, why: str) -> None:
    stderr.print(f"[yellow]warning:[/] {option} changes nothing here: {why}", soft_wrap=True)


def _append(path: str, text: str) -> None:
    """Append to a file others write too (the CI job summary): no rename, one write."""

    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
    except OSError as exc:
        _fail(f"cannot append to $GITHUB_STEP_SUMMARY {path}: {exc.strerror or exc}")
