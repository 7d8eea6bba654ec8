"""Budget and regression checks for CI (DESIGN section 6): verdicts from a forecast.

Pure: a `Forecast`, the budgets and an optional baseline (a stored ``forecast --json``) in, a
`CheckResult` of verdicts out. Exit codes follow from the verdicts: 0 all pass, 1 a budget
broken, 3 a regression beyond tolerance (budgets met); warnings never fail.

Noise: the check reruns the scenario with the baseline's seed and trials (common random
numbers), and a difference counts as a regression only when the lower end of its 95% interval
(the two quantiles' Monte Carlo standard errors combined, ignoring the positive correlation
common random numbers give, which only makes the test conservative) clears the tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .baseline import BaselineError, load_baseline  # noqa: F401 (load_baseline re-exported)
from .defaults import FORECAST_QUANTILES as QUANTILES
from .errors import CostsimError
from .parallel import SERIAL, Parallel
from .scenario import Scenario, parse_scenario

if TYPE_CHECKING:  # the simulation is imported where it runs: a bad input is told first
    from .model.fit import FittedModel
    from .simulate.forecast import Forecast

STATS = (*QUANTILES, "mean")
PASS, WARN, FAIL, REGRESSION, INFO = "PASS", "WARN", "FAIL", "REGRESSION", "INFO"
EXIT_PASS, EXIT_BUDGET, EXIT_BAD_INPUT, EXIT_REGRESSION = 0, 1, 2, 3
Z95 = 1.959963984540054
DEFAULT_COMPARE = ("p50", "p95", "p99", "mean")


@dataclass(frozen=True)
class Limit:
    """``stat`` (p5 ... p99, mean) must stay <= ``fail`` USD; above ``warn`` it warns."""

    stat: str
    fail: float | None
    warn: float | None = None


def merge_limits(base: tuple[Limit, ...], override: tuple[Limit, ...]) -> tuple[Limit, ...]:
    """Limits per statistic, ``override``'s fail and warn levels replacing ``base``'s one by one
    (a `--warn` on the command line keeps the scenario's fail level)."""
    merged = {lim.stat: lim for lim in base}
    for lim in override:
        old = merged.get(lim.stat, Limit(lim.stat, None))
        fail = lim.fail if lim.fail is not None else old.fail
        warn = lim.warn if lim.warn is not None else old.warn
        if lim.warn is None and warn is not None and fail is not None and warn >= fail:
            warn = None  # a new fail level at or below the inherited warn level replaces both
        merged[lim.stat] = Limit(lim.stat, fail, warn)
    return tuple(merged.values())


def validate_limits(limits: list[Limit] | tuple[Limit, ...], where: str) -> None:
    """A warn level must sit below its fail level (else it could never warn)."""
    for lim in limits:
        if lim.fail is not None and lim.warn is not None and not lim.warn < lim.fail:
            raise CostsimError(
                f"{where}: {lim.stat}: the warn level {usd(lim.warn)} must be below the fail "
                f"level {usd(lim.fail)}"
            )


@dataclass(frozen=True)
class Exceedance:
    """P(total > ``amount``) must stay <= ``max_prob``."""

    amount: float
    max_prob: float


@dataclass(frozen=True)
class Tolerance:
    """Allowed rise against the baseline: relative (0.05 = 5%) or absolute USD."""

    value: float
    relative: bool

    def allowed(self, base: float) -> float:
        return self.value * abs(base) if self.relative else self.value

    def __str__(self) -> str:
        return f"{100 * self.value:g}%" if self.relative else usd(self.value)


@dataclass(frozen=True)
class Verdict:
    """One checked figure. ``status`` is PASS, WARN, FAIL, REGRESSION or INFO."""

    scenario: str
    kind: str  # budget | exceedance | regression | distribution
    name: str  # e.g. "p95", "P(total > $150,000)", "p95 vs baseline"
    status: str
    value: float
    threshold: float | None
    se: float | None  # Monte Carlo standard error of ``value``
    detail: str  # the comparison in words, e.g. "$98,412 <= $120,000"


@dataclass(frozen=True)
class ClassChange:
    name: str
    baseline: float
    current: float

    @property
    def delta(self) -> float:
        return self.current - self.baseline


@dataclass(frozen=True)
class CheckResult:
    scenario: str
    trials: int
    seed: int
    verdicts: tuple[Verdict, ...]
    baseline: str | None  # path of the baseline, when one was compared
    class_changes: tuple[ClassChange, ...]  # largest absolute change first
    notes: tuple[str, ...]

    @property
    def exit_code(self) -> int:
        return exit_code([self])


def exit_code(results: list[CheckResult]) -> int:
    statuses = {v.status for r in results for v in r.verdicts}
    if FAIL in statuses:
        return EXIT_BUDGET
    if REGRESSION in statuses:
        return EXIT_REGRESSION
    return EXIT_PASS


def usd(v: float) -> str:
    return f"${v:,.0f}" if abs(v) >= 100 else f"${v:,.2f}"


# ---------------------------------------------------------------------------------------------
# Parsing of command-line budgets and tolerances
# ---------------------------------------------------------------------------------------------


def parse_stat_amount(text: str, option: str) -> tuple[str, float]:
    """``p95=120000`` -> ("p95", 120000.0)."""
    stat, sep, value = text.partition("=")
    stat = stat.strip().lower()
    if not sep or stat not in STATS:
        raise CostsimError(
            f"{option}: expected STAT=USD with STAT one of {', '.join(STATS)}, got {text!r}"
        )
    amount = _positive(value, f"{option} {stat}")
    return stat, amount


def parse_exceed(text: str) -> Exceedance:
    """``150000:0.05`` -> P(total > 150000) <= 5%."""
    amount, sep, prob = text.partition(":")
    if not sep:
        raise CostsimError(f"--exceed: expected USD:PROBABILITY such as 150000:0.05, got {text!r}")
    p = _positive(prob.rstrip("%"), "--exceed probability") / (100.0 if prob.endswith("%") else 1.0)
    if not 0 < p < 1:
        raise CostsimError(f"--exceed: expected a probability in (0, 1), got {prob!r}")
    return Exceedance(_positive(amount, "--exceed amount"), p)


def parse_tolerance(text: str) -> Tolerance:
    """``5%`` (relative) or ``2500`` (USD)."""
    t = text.strip()
    if t.endswith("%"):
        return Tolerance(_non_negative(t[:-1], "--tolerance") / 100.0, True)
    return Tolerance(_non_negative(t, "--tolerance"), False)


def _positive(text: str, what: str) -> float:
    value = _number(text, what)
    if not value > 0:
        raise CostsimError(f"{what}: expected a number > 0, got {text!r}")
    return value


def _non_negative(text: str, what: str) -> float:
    value = _number(text, what)
    if value < 0:
        raise CostsimError(f"{what}: expected a number >= 0, got {text!r}")
    return value


def _number(text: str, what: str) -> float:
    try:
        value = float(str(text).replace(",", "").replace("_", "").lstrip("$"))
    except ValueError:
        raise CostsimError(f"{what}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise CostsimError(f"{what}: expected a finite number, got {text!r}")
    return value


# ---------------------------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------------------------


def reproduce_baseline(
    baseline: dict[str, Any],
    scenario: Scenario,
    model: FittedModel,
    model_text: str,
    *,
    parallel: Parallel = SERIAL,
) -> tuple[np.ndarray | None, str]:
    """The baseline's per-trial totals, rerun from the scenario document it stores, with its
    seed and trials and the current model — or None and why, when that is not possible or does
    not reproduce its figures exactly (then errors are combined unpaired, conservatively)."""
    from .simulate.forecast import model_hash, run_forecast

    unpaired = "Monte Carlo errors combined as if independent (conservative)"
    doc = (
        baseline.get("scenario", {}).get("document")
        if isinstance(baseline.get("scenario"), dict)
        else None
    )
    if not isinstance(doc, dict) or not doc:
        return None, f"the baseline stores no scenario: {unpaired}"
    if baseline["model_hash"] != model_hash(model_text):
        return None, f"the baseline was made with another model: {unpaired}"
    if baseline["seed"] != scenario.seed or baseline["trials"] != scenario.trials:
        return None, f"not run with the baseline's seed and trials: {unpaired}"
    document = {k: v for k, v in doc.items() if k not in ("model", "pilot")}
    document["model"] = "current.model.json"  # the model is passed in, not read
    try:
        again = parse_scenario(document)
    except CostsimError:
        return None, f"the baseline's scenario no longer validates: {unpaired}"
    again = replace(again, seed=scenario.seed, trials=scenario.trials)
    fb = run_forecast(again, model, model_text=model_text, bridge=False, parallel=parallel)
    stored = baseline["quantiles"]
    if not all(
        math.isclose(fb.quantiles[k], float(stored[k]), rel_tol=1e-7, abs_tol=1e-6) for k in STATS
    ):
        return None, f"this costsim does not reproduce the baseline exactly: {unpaired}"
    return (
        fb.totals,
        "baseline reproduced from its scenario with the same random numbers: paired Monte "
        "Carlo errors",
    )


def check_baseline_compatible(
    baseline: dict[str, Any], fc: Forecast, path: str, allow_model_change: bool
) -> None:
    """Refuse to compare a baseline of another horizon or (unless allowed) another model."""
    if not math.isclose(float(baseline["horizon_s"]), fc.horizon_s, rel_tol=1e-9):
        raise BaselineError(
            f"baseline {path} covers {float(baseline['horizon_s']) / 86400:g} days, the scenario "
            f"{fc.horizon_s / 86400:g} days: refusing to compare different horizons"
        )
    if baseline["model_hash"] != fc.model_hash and not allow_model_change:
        raise BaselineError(
            f"baseline {path} was made with another model (model hash {baseline['model_hash']} vs "
            f"{fc.model_hash}): refresh the baseline, or pass --allow-model-change to gate the "
            "model change itself"
        )


# ---------------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------------


def _stat_value(fc: Forecast, stat: str) -> tuple[float, float]:
    return fc.quantiles[stat], fc.quantile_se[stat]


def trials_to_resolve(q: float) -> int:
    """The fewest trials whose order-statistic 95% interval of the q-quantile stays inside the
    sample (`forecast.quantile_with_error`)."""
    n = 2
    while True:
        half = Z95 * math.sqrt(n * q * (1 - q))
        if math.floor(n * q - half) >= 0 and math.ceil(n * q + half) <= n - 1:
            return n
        n = math.ceil(n * 1.05) + 1


def _refuse_unresolved(fc: Forecast, stats: list[str] | tuple[str, ...]) -> None:
    """A gated quantile the trials cannot bound is never judged (it could hide anything)."""
    unresolved = [s for s in stats if s in fc.unresolved]
    if unresolved:
        need = max(trials_to_resolve(QUANTILES[s]) for s in unresolved)
        raise CostsimError(
            f"{fc.scenario_name}: {', '.join(unresolved)} cannot be judged with {fc.trials:,} "
            f"trials ({'their' if len(unresolved) > 1 else 'its'} Monte Carlo interval runs past "
            f"the sample); use --trials {need:,} or "
            "more, or --trials auto"
        )


def _refuse_free(fc: Forecast) -> None:
    """A forecast of $0 for traffic that is projected is never judged against a budget: it
    passes any. (`ensure_trustworthy` refuses one whose pilot had costs; here the pilot's
    costs were all $0 and the scenario prices nothing.)"""
    if fc.projected_requests > 0 and fc.quantiles["mean"] == 0 and fc.naive_linear == 0:
        raise CostsimError(
            f"{fc.scenario_name}: the forecast is $0 for {fc.projected_requests:,.0f} projected "
            "requests (the pilot's costs are all $0 and the scenario prices nothing), which "
            "passes any budget: price the tokens (pricing:) or fit the right cost column"
        )


def budget_verdicts(fc: Forecast, limits: list[Limit]) -> list[Verdict]:
    if limits:
        _refuse_free(fc)
    _refuse_unresolved(fc, [lim.stat for lim in limits])
    out = []
    for lim in limits:
        value, se = _stat_value(fc, lim.stat)
        threshold: float | None
        if lim.fail is not None and value > lim.fail:
            status, threshold, op = FAIL, lim.fail, ">"
        elif lim.warn is not None and value > lim.warn:
            status, threshold, op = WARN, lim.warn, "> warn level"
        else:
            threshold = lim.fail if lim.fail is not None else lim.warn
            status, op = PASS, "<="
        detail = f"{usd(value)} {op} {usd(threshold or 0.0)}"
        if threshold is not None and abs(value - threshold) <= Z95 * se:
            detail += f" (within Monte Carlo error ±{usd(Z95 * se)}: more trials would settle it)"
        out.append(
            Verdict(fc.scenario_name, "budget", lim.stat, status, value, threshold, se, detail)
        )
    return out


def exceedance_verdicts(fc: Forecast, rules: list[Exceedance]) -> list[Verdict]:
    if rules:
        _refuse_free(fc)
    out = []
    n = fc.totals.size
    for rule in rules:
        p = float(np.mean(fc.totals > rule.amount))
        se = math.sqrt(max(p * (1 - p), 1.0 / n) / n)
        status = FAIL if p > rule.max_prob else PASS
        op = ">" if status == FAIL else "<="
        out.append(
            Verdict(
                fc.scenario_name, "exceedance", f"P(total > {usd(rule.amount)})", status, p,
                rule.max_prob, se, f"{100 * p:.2f}% {op} {100 * rule.max_prob:g}%",
            )
        )  # fmt: skip
    return out


PAIRED_BOOTSTRAP = 200


def paired_errors(
    current: np.ndarray, baseline: np.ndarray, stats: tuple[str, ...], seed: int
) -> dict[str, float]:
    """Monte Carlo standard error of (figure now - figure in the baseline) when both runs share
    their random numbers trial by trial: a bootstrap that resamples trials jointly."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2**31 + 2,)))
    idx = rng.integers(0, current.size, size=(PAIRED_BOOTSTRAP, current.size))
    a, b = current[idx], baseline[idx]
    out = {}
    for stat in stats:
        if stat == "mean":
            diff = a.mean(axis=1) - b.mean(axis=1)
        else:
            q = QUANTILES[stat]
            diff = np.quantile(a, q, axis=1) - np.quantile(b, q, axis=1)
        out[stat] = float(diff.std(ddof=1))
    return out


def regression_verdicts(
    fc: Forecast,
    baseline: dict[str, Any],
    tolerance: Tolerance,
    stats: tuple[str, ...],
    baseline_totals: np.ndarray | None = None,
) -> list[Verdict]:
    """Regression of each figure against the baseline, noise-aware.

    With ``baseline_totals`` (the baseline reproduced trial by trial with the same random
    numbers) the Monte Carlo error of the difference is the paired one, which common random
    numbers make small; without, the two figures' errors are combined as if independent, which
    is conservative (a rise just above the tolerance may only warn).
    """
    _refuse_unresolved(fc, stats)
    paired = (
        paired_errors(fc.totals, baseline_totals, stats, fc.seed)
        if baseline_totals is not None and baseline_totals.shape == fc.totals.shape
        else None
    )
    out = []
    for stat in stats:
        cur, se_c = _stat_value(fc, stat)
        base = float(baseline["quantiles"][stat])
        se_b = float(baseline["quantile_se"][stat])
        delta = cur - base
        allowed = tolerance.allowed(base)
        se = paired[stat] if paired is not None else math.hypot(se_c, se_b)
        if abs(delta) < 0.005 * max(1.0, 1e-6 * abs(base)):  # rounding of the stored baseline
            change = "unchanged"
        else:
            rel = f" ({100 * delta / base:+.1f}%)" if base else ""
            change = f"{'+' if delta > 0 else '-'}{usd(abs(delta))}{rel}"
        error = f"± MC error {usd(Z95 * se)}" if math.isfinite(se) else "MC error unbounded"
        detail = f"{usd(cur)} vs baseline {usd(base)}: {change}, tolerance {tolerance} {error}"
        if delta - allowed > Z95 * se:
            status = REGRESSION
        elif delta > allowed:
            status = WARN
            detail += " (above tolerance but within Monte Carlo error)"
        else:
            status = PASS
        out.append(
            Verdict(
                fc.scenario_name,
                "regression",
                f"{stat} vs baseline",
                status,
                delta,
                allowed,
                se,
                detail,
            )
        )
    return out


def distribution_shift(fc: Forecast, baseline: dict[str, Any]) -> list[Verdict]:
    """How the whole distribution moved: Wasserstein-1 distance and KS statistic (INFO)."""
    if "percentiles" not in baseline:
        return []
    qb = np.asarray(baseline["percentiles"], dtype=float)
    qc = np.asarray(fc.percentiles, dtype=float)
    probs = np.linspace(0.0, 1.0, qb.size)
    # W1 = integral over p of |Q_now(p) - Q_baseline(p)|, on the stored percentile grids
    on_grid = np.interp(probs, np.linspace(0.0, 1.0, qc.size), qc)
    w1 = float(np.trapezoid(np.abs(on_grid - qb), probs))
    grid = np.union1d(qb, qc)
    fb = np.interp(grid, qb, probs, left=0.0, right=1.0)
    fcur = np.interp(grid, qc, np.linspace(0, 1, qc.size), left=0.0, right=1.0)
    ks = float(np.max(np.abs(fb - fcur)))
    name = fc.scenario_name
    return [
        Verdict(name, "distribution", "Wasserstein distance", INFO, w1, None, None,
                f"{usd(w1)} average shift of the cost distribution"),
        Verdict(name, "distribution", "KS statistic", INFO, ks, None, None,
                f"{ks:.3f} largest gap between the two distribution functions"),
    ]  # fmt: skip


def class_changes(fc: Forecast, baseline: dict[str, Any]) -> tuple[ClassChange, ...]:
    """Mean cost per class, baseline vs now, largest absolute change first."""
    base = baseline.get("per_class", {})
    names = list(dict.fromkeys([*fc.per_class, *base]))
    changes = [
        ClassChange(
            n,
            float(base.get(n, {}).get("mean_cost", 0.0)),
            fc.per_class[n].mean_cost if n in fc.per_class else 0.0,
        )
        for n in names
    ]
    return tuple(sorted(changes, key=lambda c: -abs(c.delta)))


def evaluate(
    fc: Forecast,
    limits: list[Limit],
    exceed: list[Exceedance],
    baseline: dict[str, Any] | None = None,
    baseline_path: str | None = None,
    tolerance: Tolerance | None = None,
    compare: tuple[str, ...] = DEFAULT_COMPARE,
    notes: tuple[str, ...] = (),
    baseline_totals: np.ndarray | None = None,
    regression_fc: Forecast | None = None,
) -> CheckResult:
    """Verdicts on ``fc`` (budgets, exceedance) and, against a baseline, on ``regression_fc``
    (the rerun with the baseline's seed and trials; ``fc`` when omitted)."""
    verdicts = budget_verdicts(fc, limits) + exceedance_verdicts(fc, exceed)
    changes: tuple[ClassChange, ...] = ()
    if baseline is not None:
        rfc = regression_fc if regression_fc is not None else fc
        tol = tolerance or Tolerance(0.05, True)
        verdicts += regression_verdicts(rfc, baseline, tol, compare, baseline_totals)
        verdicts += distribution_shift(rfc, baseline)
        changes = class_changes(rfc, baseline)
    return CheckResult(
        fc.scenario_name, fc.trials, fc.seed, tuple(verdicts), baseline_path, changes, notes
    )


# ---------------------------------------------------------------------------------------------
# --trials auto
# ---------------------------------------------------------------------------------------------


def trials_needed(
    totals: np.ndarray, stats: tuple[str, ...], precision: float, step: int, cap: int
) -> int:
    """Trials for every gated figure's 95% interval half-width to be <= precision x its value.

    Half-widths shrink as 1 / sqrt(trials): from a first run of ``totals.size`` trials with
    half-width h, ``n * (h / (precision * value))^2`` trials are needed (order-statistic
    intervals for quantiles; the standard error for the mean). Rounded up to whole chunks.
    """
    from .simulate.forecast import quantile_with_error

    n = totals.size
    need = n
    for stat in stats:
        if stat == "mean":
            value = float(totals.mean())
            half = Z95 * float(totals.std(ddof=1)) / math.sqrt(n)
        else:
            value, _, lo, hi = quantile_with_error(totals, QUANTILES[stat])
            half = (hi - lo) / 2
        if not math.isfinite(half):
            need = max(need, trials_to_resolve(QUANTILES[stat]))
        elif value > 0 and half > 0:
            need = max(need, math.ceil(n * (half / (precision * value)) ** 2))
    return int(min(cap, step * math.ceil(need / step)))


# ---------------------------------------------------------------------------------------------
# Several scenarios at once: costsim.yaml
# ---------------------------------------------------------------------------------------------

CONFIG_KEYS = ("checks", "trials", "precision", "tolerance")
CHECK_KEYS = ("scenario", "baseline", "tolerance", "compare", "max", "warn", "exceed")


@dataclass(frozen=True)
class CheckSpec:
    """One scenario to check: its budgets, and the baseline to compare it with."""

    scenario: Path
    baseline: Path | None = None
    tolerance: Tolerance | None = None
    compare: tuple[str, ...] = DEFAULT_COMPARE
    limits: tuple[Limit, ...] = ()
    exceed: tuple[Exceedance, ...] = ()


@dataclass(frozen=True)
class CheckConfig:
    checks: tuple[CheckSpec, ...]
    trials: str | int | None = None  # "auto", a number, or None (the scenario's)
    precision: float | None = None
    tolerance: Tolerance | None = None


def parse_config(data: Any, path: Path) -> CheckConfig:
    """Validate a ``costsim.yaml``; paths in it are relative to its folder. Every problem is
    reported by key path in one `CostsimError`."""
    problems: list[str] = []
    base = path.parent

    def unknown(mapping: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
        for key in mapping:
            if key not in allowed:
                problems.append(f"{where}{key}: unknown key; allowed: {', '.join(allowed)}")

    def guarded(where: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except CostsimError as exc:
            problems.append(f"{where}: {str(exc).split(': ', 1)[-1]}")
            return None

    if not isinstance(data, dict):
        raise CostsimError(f"{path}: expected a mapping with a `checks:` list")
    unknown(data, CONFIG_KEYS, "")
    checks_raw = data.get("checks")
    if not isinstance(checks_raw, list) or not checks_raw:
        problems.append("checks: expected a non-empty list of {scenario: PATH, ...}")
        checks_raw = []
    trials = data.get("trials")
    if trials is not None and trials != "auto" and not (isinstance(trials, int) and trials > 0):
        problems.append(f"trials: expected 'auto' or a positive integer, got {trials!r}")
    precision = None
    if data.get("precision") is not None:
        tol = guarded("precision", parse_tolerance, str(data["precision"]))
        precision = tol.value if tol is not None and tol.relative else None
        if tol is not None and (not tol.relative or not 0 < tol.value < 1):
            problems.append(
                f"precision: expected a percentage such as 1%, got {data['precision']!r}"
            )
    default_tol = (
        guarded("tolerance", parse_tolerance, str(data["tolerance"]))
        if "tolerance" in data
        else None
    )
    specs = []
    for i, item in enumerate(checks_raw):
        w = f"checks[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("scenario"), str):
            problems.append(f"{w}: expected a mapping with scenario: PATH")
            continue
        unknown(item, CHECK_KEYS, f"{w}.")
        limits: dict[str, Limit] = {}
        for level in ("max", "warn"):
            block = item.get(level) or {}
            if not isinstance(block, dict):
                problems.append(f"{w}.{level}: expected a mapping such as {{p95: 120000}}")
                continue
            for stat, amount in block.items():
                parsed = guarded(f"{w}.{level}.{stat}", parse_stat_amount, f"{stat}={amount}", "")
                if parsed is not None:
                    old = limits.get(parsed[0], Limit(parsed[0], None))
                    limits[parsed[0]] = (
                        Limit(old.stat, parsed[1], old.warn)
                        if level == "max"
                        else Limit(old.stat, old.fail, parsed[1])
                    )
        exceed = []
        for j, rule in enumerate(item.get("exceed") or []):
            if not isinstance(rule, dict) or set(rule) != {"amount", "max_prob"}:
                problems.append(f"{w}.exceed[{j}]: expected {{amount: USD, max_prob: P}}")
                continue
            parsed_rule = guarded(
                f"{w}.exceed[{j}]", parse_exceed, f"{rule['amount']}:{rule['max_prob']}"
            )
            if parsed_rule is not None:
                exceed.append(parsed_rule)
        compare = item.get("compare", list(DEFAULT_COMPARE))
        if not isinstance(compare, list) or any(c not in STATS for c in compare):
            problems.append(f"{w}.compare: expected a list of {', '.join(STATS)}, got {compare!r}")
            compare = list(DEFAULT_COMPARE)
        baseline = item.get("baseline")
        if baseline is not None and not isinstance(baseline, str):
            problems.append(f"{w}.baseline: expected a path, got {baseline!r}")
            baseline = None
        tol = (
            guarded(f"{w}.tolerance", parse_tolerance, str(item["tolerance"]))
            if "tolerance" in item
            else None
        )
        specs.append(
            CheckSpec(
                scenario=base / item["scenario"],
                baseline=base / baseline if baseline else None,
                tolerance=tol or default_tol,
                compare=tuple(compare),
                limits=tuple(limits.values()),
                exceed=tuple(exceed),
            )
        )
    if problems:
        raise CostsimError(f"{path}: " + "; ".join(problems))
    return CheckConfig(tuple(specs), trials, precision, default_tol)
