"""The check's renderers: CI lines, rich, Markdown, JUnit XML and JSON from hand-made results."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

from costsim.check import (
    EXIT_BUDGET,
    EXIT_PASS,
    EXIT_REGRESSION,
    FAIL,
    INFO,
    PASS,
    REGRESSION,
    WARN,
    CheckResult,
    ClassChange,
    Verdict,
)
from costsim.report.check import (
    check_to_dict,
    check_to_junit,
    check_to_markdown,
    lines,
    render_check,
    verdict_line,
)

STATUSES = (PASS, WARN, FAIL, REGRESSION, INFO)


def _passing() -> CheckResult:
    s = "launch_month.yaml"
    return CheckResult(
        scenario=s,
        trials=20_000,
        seed=7,
        verdicts=(
            Verdict(s, "budget", "p95", PASS, 98_412.3, 120_000.0, 950.0, "$98,412 <= $120,000"),
            Verdict(
                s, "exceedance", "P(total > $150,000)", PASS, 0.012, 0.05, 0.0008, "1.20% <= 5%"
            ),
        ),
        baseline=None,
        class_changes=(),
        notes=(),
    )


def _mixed() -> CheckResult:
    s = "odd|name $x [x] <&>.yaml"
    verdicts = (
        Verdict(s, "budget", "p50", PASS, 60_000.0, 80_000.0, 400.0, "$60,000 <= $80,000"),
        Verdict(s, "budget", "p99 [x]", WARN, 141_000.0, 140_000.0, 2_000.0,
                "$141,000 > warn level $140,000"),
        Verdict(s, "exceedance", "P(total > $150,000)", FAIL, 0.071, 0.05, 0.0018,
                "7.10% > 5%"),
        Verdict(s, "regression", "p95 vs baseline", REGRESSION, 11_000.0, 6_000.0, 918.0,
                "$131,000 vs baseline $120,000: +$11,000 (+9.2%), tolerance 5% ± MC error $1,800"),
        Verdict(s, "regression", "mean | <&> vs baseline", WARN, 3_500.0, 3_000.0, 900.0,
                "$63,500 vs baseline $60,000: +$3,500 (+5.8%), tolerance 5% ± MC error $1,764 "
                "(above tolerance but within Monte Carlo error)"),
        Verdict(s, "distribution", "Wasserstein distance", INFO, 7_400.0, None, None,
                "$7,400 average shift of the cost distribution"),
        Verdict(s, "distribution", "KS statistic", INFO, 0.12, None, None,
                "0.120 largest gap between the two distribution functions"),
    )  # fmt: skip
    return CheckResult(
        scenario=s,
        trials=50_000,
        seed=42,
        verdicts=verdicts,
        baseline="baselines/launch | $1.json",
        class_changes=(
            ClassChange("lookup", 1_000.0, 1_020.0),
            ClassChange("agent <&>", 40_000.0, 49_800.0),
            ClassChange("rag|$", 9_000.0, 8_700.0),
            ClassChange("chat [x]", 500.0, 505.0),
            ClassChange("idle", 10.0, 10.0),
        ),
        notes=("trials raised to 50,000 for precision | $ <&>",),
    )


def _all() -> list[CheckResult]:
    return [_passing(), _mixed()]


def _verdicts(results: list[CheckResult]) -> list[Verdict]:
    return [v for r in results for v in r.verdicts]


# ---------------------------------------------------------------------------------------------
# CI log lines
# ---------------------------------------------------------------------------------------------


def test_verdict_line_is_status_scenario_name_detail() -> None:
    v = _passing().verdicts[0]
    assert verdict_line(v) == "PASS launch_month.yaml p95 $98,412 <= $120,000"
    fail = _mixed().verdicts[2]
    assert verdict_line(fail) == f"FAIL {fail.scenario} P(total > $150,000) 7.10% > 5%"


def test_each_verdict_gives_exactly_one_line_starting_with_its_status() -> None:
    results = _all()
    out = lines(results)
    for v in _verdicts(results):
        line = verdict_line(v)
        assert "\n" not in line
        assert line.startswith(v.status + " ")
        assert out.count(line) == 1
    assert all(line.split(" ", 1)[0] in STATUSES for line in out[:-1])


def test_lines_order_class_changes_and_summary() -> None:
    results = _all()
    out = lines(results)
    n_verdicts = len(_verdicts(results))
    notes = [f"INFO {r.scenario} note: {n}" for r in results for n in r.notes]
    # one class-change line (only _mixed has changes), one line per note, the summary
    assert len(out) == n_verdicts + 1 + len(notes) + 1
    assert out[-1 - len(notes) : -1] == notes
    changes = out[-2 - len(notes)]
    assert changes == (
        f"INFO {_mixed().scenario} classes driving the change: "
        "agent <&> +$9,800, rag|$ -$300, lookup +$20.00"
    )
    assert out[-1] == "costsim check: 3 passed, 2 warned, 1 failed, 1 regressed — exit 1"


def test_summary_counts_and_exit_code() -> None:
    assert lines([_passing()])[-1] == (
        "costsim check: 2 passed, 0 warned, 0 failed, 0 regressed — exit 0"
    )
    regressed = _mixed()
    only_regression = CheckResult(
        regressed.scenario, regressed.trials, regressed.seed,
        tuple(v for v in regressed.verdicts if v.status != FAIL),
        regressed.baseline, regressed.class_changes, regressed.notes,
    )  # fmt: skip
    assert lines([only_regression])[-1].endswith(f"1 regressed — exit {EXIT_REGRESSION}")
    assert lines(_all())[-1].endswith(f"— exit {EXIT_BUDGET}")
    assert (
        lines([])[-1]
        == f"costsim check: 0 passed, 0 warned, 0 failed, 0 regressed — exit {EXIT_PASS}"
    )


def test_unchanged_classes_say_so() -> None:
    r = _passing()
    r = CheckResult(r.scenario, r.trials, r.seed, r.verdicts, "b.json",
                    (ClassChange("chat", 5.0, 5.0),), ())  # fmt: skip
    assert lines([r])[-2] == "INFO launch_month.yaml no class changed its mean cost"


def test_newlines_in_names_stay_on_one_line() -> None:
    v = Verdict("a\nb.yaml", "budget", "p95", PASS, 1.0, 2.0, 0.1, "$1.00 <= $2.00")
    assert verdict_line(v) == "PASS a b.yaml p95 $1.00 <= $2.00"


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    return re.sub(r"([\\|$<>&*_`\[\]~])", r"\\\1", text)


def _cells(row: str) -> list[str]:
    """Split a table row on the `|` that are not backslash-escaped."""
    assert row.startswith("|") and row.endswith("|")
    return re.split(r"(?<!\\)\|", row[1:-1])


def _tables(md: str) -> list[list[str]]:
    tables: list[list[str]] = []
    current: list[str] = []
    for line in md.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def test_markdown_tables_are_well_formed_and_hold_every_verdict() -> None:
    results = _all()
    md = check_to_markdown(results)
    tables = _tables(md)
    assert len(tables) == 3  # a verdict table per scenario, then one class-change table
    for table in tables:
        width = len(_cells(table[0]))
        assert all(len(_cells(row)) == width for row in table), table
        assert all(re.fullmatch(r"-{3,}:?", c.strip()) for c in _cells(table[1]))
    verdict_rows = [row for table in tables[:2] for row in table[2:]]
    assert len(verdict_rows) == len(_verdicts(results))
    for v in _verdicts(results):
        assert _md_escape(v.name) in md
        assert _md_escape(v.detail) in md
    assert "\\|" in md and "\\$" in md and "\\[x\\]" in md and "\\<\\&\\>" in md
    assert re.search(r"(?<!\\)\$", md) is None  # no bare $ left to start inline maths


def test_markdown_title_status_and_summary() -> None:
    assert check_to_markdown([_passing()]).startswith("### ✅ costsim check: all checks passed")
    warn_only = _mixed()
    warn_only = CheckResult(
        warn_only.scenario, warn_only.trials, warn_only.seed,
        tuple(v for v in warn_only.verdicts if v.status not in (FAIL, REGRESSION)),
        warn_only.baseline, (), (),
    )  # fmt: skip
    assert check_to_markdown([warn_only]).startswith("### ⚠️ costsim check: passed with warnings")
    md = check_to_markdown(_all())
    assert md.startswith("### ❌ costsim check: budget exceeded and regression")
    assert "agent \\<\\&\\> +\\$9,800" in md
    assert md.rstrip().endswith(
        "**costsim check: 3 passed, 2 warned, 1 failed, 1 regressed — exit 1**"
    )


# ---------------------------------------------------------------------------------------------
# JUnit XML
# ---------------------------------------------------------------------------------------------


def test_junit_parses_and_counts_are_right() -> None:
    results = _all()
    xml = check_to_junit(results)
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(xml)
    assert root.tag == "testsuites"
    assert root.get("name") == "costsim check"
    assert root.get("tests") == str(len(_verdicts(results)))
    assert root.get("failures") == "2"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [r.scenario for r in results]
    for suite, r in zip(suites, results, strict=True):
        cases = suite.findall("testcase")
        assert len(cases) == len(r.verdicts) == int(suite.get("tests", "-1"))
        assert [c.get("name") for c in cases] == [v.name for v in r.verdicts]
        failed = [c for c in cases if c.find("failure") is not None]
        assert int(suite.get("failures", "-1")) == len(failed)
        for case, v in zip(cases, r.verdicts, strict=True):
            failure = case.find("failure")
            out = case.find("system-out")
            if v.status == FAIL:
                assert failure is not None and failure.get("type") == "budget"
                assert failure.get("message") == v.detail
            elif v.status == REGRESSION:
                assert failure is not None and failure.get("type") == "regression"
            else:
                assert failure is None
            if v.status in (WARN, INFO):
                assert out is not None and out.text == verdict_line(v)
                assert out.text.startswith(v.status)
    mixed = suites[1]
    assert {c.get("classname") for c in mixed.findall("testcase")} == {
        "costsim.odd|name $x [x] <&>"
    }
    assert "&lt;&amp;&gt;" in xml and "<&>" not in xml.replace("<?xml", "")


def test_junit_passing_suite_and_control_characters() -> None:
    root = ET.fromstring(check_to_junit([_passing()]))
    assert root.get("failures") == "0"
    assert root.find("testsuite/testcase") is not None
    v = Verdict("bad\x00\x1b.yaml", "budget", "p95", FAIL, 2.0, 1.0, 0.1, "$2.00 > $1.00")
    r = CheckResult("bad\x00\x1b.yaml", 100, 1, (v,), None, (), ())
    root = ET.fromstring(check_to_junit([r]))
    assert root.get("failures") == "1"


# ---------------------------------------------------------------------------------------------
# Rich
# ---------------------------------------------------------------------------------------------


def test_rich_render_shows_every_verdict() -> None:
    results = _all()
    console = Console(record=True, width=160)
    render_check(results, console)
    text = console.export_text()
    for r in results:
        assert r.scenario in text
    for v in _verdicts(results):
        assert v.name in text
    for cell in ("$98,412", "7.10%", "5%", "+$11,000", "±$918", "0.120", "—"):
        assert cell in text
    assert "classes driving the change: agent <&> +$9,800" in text
    assert "costsim check: 3 passed, 2 warned, 1 failed, 1 regressed — exit 1" in text


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------


def test_json_round_trips() -> None:
    results = _all()
    d = check_to_dict(results)
    assert json.loads(json.dumps(d)) == d
    assert d["kind"] == "costsim.check"
    assert d["schema_version"] == 1
    assert d["exit_code"] == EXIT_BUDGET
    mixed = d["results"][1]
    assert mixed["scenario"] == _mixed().scenario
    assert mixed["baseline"] == "baselines/launch | $1.json"
    assert [v["status"] for v in mixed["verdicts"]] == [v.status for v in _mixed().verdicts]
    assert mixed["verdicts"][-1]["threshold"] is None
    assert mixed["class_changes"][1] == {
        "name": "agent <&>", "baseline": 40_000.0, "current": 49_800.0, "delta": 9_800.0,
    }  # fmt: skip
    assert mixed["notes"] == list(_mixed().notes)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_json_non_finite_values_stay_valid_json(value: float) -> None:
    v = Verdict("s.yaml", "budget", "p95", PASS, value, 1.0, None, "—")
    d = check_to_dict([CheckResult("s.yaml", 10, 1, (v,), None, (), ())])
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text) == d
