"""The check's renderers (DESIGN section 6): CI log lines, rich, Markdown, JUnit XML and JSON.

`check.evaluate` computes every `CheckResult` once; every function here only turns results into
text. The only work is formatting, counting verdicts by status and picking the three largest
class changes to name (`check.exit_code` decides the exit code).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict
from pathlib import PurePath
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from ..check import FAIL, INFO, PASS, REGRESSION, WARN, CheckResult, ClassChange, Verdict, usd
from ..check import exit_code as _exit_code
from ..model.file import _clean
from .dashboard import _pct, _print_table

KIND = "costsim.check"
SCHEMA_VERSION = 1
TOP_CLASSES = 3
DASH = "—"

_STYLE = {PASS: "green", WARN: "yellow", FAIL: "bold red", REGRESSION: "bold red", INFO: "dim"}
_OK, _X, _VS16 = "\N{WHITE HEAVY CHECK MARK}", "\N{CROSS MARK}", "\N{VARIATION SELECTOR-16}"
_EMOJI = {
    PASS: _OK,
    WARN: "\N{WARNING SIGN}" + _VS16,
    FAIL: _X,
    REGRESSION: _X,
    INFO: "\N{INFORMATION SOURCE}" + _VS16,
}
_FAILURE_TYPE = {FAIL: "budget", REGRESSION: "regression"}
_COLUMNS = ["status", "check", "value", "threshold", "± MC s.e."]
_CLASS_COLUMNS = ["class", "baseline mean", "current mean", "change"]


# ---------------------------------------------------------------------------------------------
# Small shared pieces
# ---------------------------------------------------------------------------------------------


def _signed(v: float) -> str:
    """A signed amount: +$9,800 / -$300; an amount that rounds to nothing is $0."""
    text = usd(abs(v))
    if text in ("$0.00", "$0"):
        return "$0"
    return ("+" if v > 0 else "-") + text


def _plain(v: float) -> str:
    return f"{v:.3f}"


def _prob_pct(x: float) -> str:
    return _pct(x, 2)


def _limit_pct(x: float) -> str:
    return f"{100 * x:g}%"


def _formatters(v: Verdict) -> tuple[Callable[[float], str], ...]:
    """How to show this verdict's value, threshold and standard error."""
    if v.kind == "exceedance":
        return _prob_pct, _limit_pct, _prob_pct
    if v.kind == "regression":
        return _signed, usd, usd
    if v.kind == "budget" or (v.kind == "distribution" and v.name.startswith("Wasserstein")):
        return usd, usd, usd
    return _plain, _plain, _plain


def _cells(v: Verdict) -> list[str]:
    """value, threshold and ± standard error, formatted for the verdict's kind."""
    value, bound, se = _formatters(v)
    return [
        value(v.value),
        DASH if v.threshold is None else bound(v.threshold),
        DASH if v.se is None else "±" + se(v.se),
    ]


def _top_changes(result: CheckResult) -> list[ClassChange]:
    """The classes that moved most (ties keep the result's order); unchanged ones are left out."""
    moved = [c for c in result.class_changes if _signed(c.delta) != "$0"]
    return sorted(moved, key=lambda c: -abs(c.delta))[:TOP_CLASSES]


def _changes_text(result: CheckResult) -> str:
    top = _top_changes(result)
    if not top:
        return "no class changed its mean cost"
    parts = ", ".join(f"{c.name} {_signed(c.delta)}" for c in top)
    return f"classes driving the change: {parts}"


def _counts(results: list[CheckResult]) -> dict[str, int]:
    counts = dict.fromkeys((PASS, WARN, FAIL, REGRESSION, INFO), 0)
    for r in results:
        for v in r.verdicts:
            counts[v.status] = counts.get(v.status, 0) + 1
    return counts


def summary_line(results: list[CheckResult]) -> str:
    """``costsim check: 3 passed, 1 warned, 0 failed, 1 regressed — exit 3``."""
    n = _counts(results)
    return (
        f"costsim check: {n[PASS]} passed, {n[WARN]} warned, {n[FAIL]} failed, "
        f"{n[REGRESSION]} regressed {DASH} exit {_exit_code(results)}"
    )


def _overall(results: list[CheckResult]) -> str:
    n = _counts(results)
    if n[FAIL] or n[REGRESSION]:
        return FAIL
    return WARN if n[WARN] else PASS


def _context(result: CheckResult) -> str:
    base = f", baseline {result.baseline}" if result.baseline else ""
    return f"{result.trials:,} trials, seed {result.seed}{base}"


# ---------------------------------------------------------------------------------------------
# CI log lines
# ---------------------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    """A log line stays one line whatever a scenario or class is called."""
    return " ".join(text.splitlines())


def verdict_line(v: Verdict) -> str:
    """``PASS launch_month.yaml p95 $98,412 <= $120,000``: status, scenario, check, detail."""
    return _one_line(f"{v.status} {v.scenario} {v.name} {v.detail}")


def _changes_line(result: CheckResult) -> str:
    return _one_line(f"{INFO} {result.scenario} {_changes_text(result)}")


def lines(results: list[CheckResult]) -> list[str]:
    """One line per verdict, one per result with class changes, one per note (how the figures
    were compared), then the summary line."""
    out = []
    for r in results:
        out += [verdict_line(v) for v in r.verdicts]
        if r.class_changes:
            out.append(_changes_line(r))
        out += [_one_line(f"{INFO} {r.scenario} note: {note}") for note in r.notes]
    out.append(summary_line(results))
    return out


# ---------------------------------------------------------------------------------------------
# Rich
# ---------------------------------------------------------------------------------------------


def render_check(results: list[CheckResult], console: Console) -> None:
    """A table per scenario (status coloured), its class changes and notes, then the summary."""
    for r in results:
        rows: list[list[str | Text]] = [
            [Text(v.status, style=_STYLE.get(v.status, "")), Text(v.name), *_cells(v)]
            for v in r.verdicts
        ]
        title = f"[bold]{escape(r.scenario)}[/]: {escape(_context(r))}"
        _print_table(console, title, _COLUMNS, rows)
        if r.class_changes:
            console.print(Text(_changes_text(r)))
        for note in r.notes:
            console.print(Text(f"note: {note}", style="dim"))
    console.print(Text(summary_line(results), style=_STYLE[_overall(results)]))


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------

# Backslash-escape what GitHub would misread: `|` splits cells, two `$` make maths, `<` starts
# HTML, `&` an entity, and `*_`[]~` emphasis, code, links and strike-through.
_MD_SPECIAL = re.compile(r"([\\|$<>&*_`\[\]~])")


def _md(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(_md(c) for c in cells) + " |"


def _md_table(columns: list[str], align: list[str], rows: list[list[str]]) -> list[str]:
    return [_md_row(columns), "| " + " | ".join(align) + " |", *(_md_row(r) for r in rows)]


def _title(results: list[CheckResult]) -> str:
    n = _counts(results)
    if n[FAIL] and n[REGRESSION]:
        return "budget exceeded and regression beyond tolerance"
    if n[FAIL]:
        return "budget exceeded"
    if n[REGRESSION]:
        return "regression beyond tolerance"
    return "passed with warnings" if n[WARN] else "all checks passed"


def check_to_markdown(results: list[CheckResult]) -> str:
    """GitHub-flavoured Markdown for a pull-request comment or ``$GITHUB_STEP_SUMMARY``."""
    overall = _overall(results)
    out = [f"### {_EMOJI[overall]} costsim check: {_title(results)}"]
    columns = [*_COLUMNS, "detail"]
    align = ["---", "---", "---:", "---:", "---:", "---"]
    for r in results:
        rows = [
            [f"{_EMOJI.get(v.status, '')} {v.status}", v.name, *_cells(v), v.detail]
            for v in r.verdicts
        ]
        out += ["", f"**{_md(r.scenario)}**: {_md(_context(r))}", ""]
        out += _md_table(columns, align, rows) if rows else ["No checks."]
        if r.class_changes:
            class_rows = [
                [c.name, usd(c.baseline), usd(c.current), _signed(c.delta)] for c in r.class_changes
            ]
            out += ["", _md(_changes_text(r)[:1].upper() + _changes_text(r)[1:]) + "."]
            out += ["", *_md_table(_CLASS_COLUMNS, ["---", "---:", "---:", "---:"], class_rows)]
        if r.notes:
            out += ["", *(f"- {_md(note)}" for note in r.notes)]
    out += ["", f"**{_md(summary_line(results))}**"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# JUnit XML
# ---------------------------------------------------------------------------------------------

# Characters XML 1.0 cannot carry at all (even escaped); shown as U+FFFD instead.
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text: object) -> str:
    return _XML_INVALID.sub("\ufffd", str(text))


def _failures(result: CheckResult) -> int:
    return sum(v.status in _FAILURE_TYPE for v in result.verdicts)


def _suite_attrs(name: str, tests: int, failures: int) -> dict[str, str]:
    return {
        "name": _x(name),
        "tests": str(tests),
        "failures": str(failures),
        "errors": "0",
        "skipped": "0",
    }


def check_to_junit(results: list[CheckResult]) -> str:
    """JUnit XML: a test suite per scenario, a test case per verdict; FAIL and REGRESSION fail."""
    root = ET.Element(
        "testsuites",
        _suite_attrs(
            "costsim check",
            sum(len(r.verdicts) for r in results),
            sum(_failures(r) for r in results),
        ),
    )
    for r in results:
        suite = ET.SubElement(
            root, "testsuite", _suite_attrs(r.scenario, len(r.verdicts), _failures(r))
        )
        props = ET.SubElement(suite, "properties")
        for key, value in (("trials", r.trials), ("seed", r.seed), ("baseline", r.baseline)):
            if value is not None:
                ET.SubElement(props, "property", {"name": key, "value": _x(value)})
        classname = f"costsim.{PurePath(r.scenario).stem or r.scenario}"
        for v in r.verdicts:
            case = ET.SubElement(
                suite, "testcase", {"classname": _x(classname), "name": _x(v.name)}
            )
            if v.status in _FAILURE_TYPE:
                failure = ET.SubElement(
                    case, "failure", {"message": _x(v.detail), "type": _FAILURE_TYPE[v.status]}
                )
                failure.text = _x(verdict_line(v))
            elif v.status != PASS:
                ET.SubElement(case, "system-out").text = _x(verdict_line(v))
        extra = ([_changes_line(r)] if r.class_changes else []) + [f"note: {n}" for n in r.notes]
        if extra:
            ET.SubElement(suite, "system-out").text = _x("\n".join(extra))
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------


def check_to_dict(results: list[CheckResult]) -> dict[str, Any]:
    """The JSON contract (keys in a fixed order; floats to 10 significant digits)."""
    out = {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        "exit_code": _exit_code(results),
        "results": [
            {
                "scenario": r.scenario,
                "trials": r.trials,
                "seed": r.seed,
                "baseline": r.baseline,
                "verdicts": [asdict(v) for v in r.verdicts],
                "class_changes": [
                    {"name": c.name, "baseline": c.baseline, "current": c.current, "delta": c.delta}
                    for c in r.class_changes
                ],
                "notes": list(r.notes),
            }
            for r in results
        ],
    }
    return dict(_clean(out))
