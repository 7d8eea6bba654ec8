"""The backtest's renderers (DESIGN section 8): JSON, rich and Markdown.

`backtest.run_backtest` computes every figure once; the functions here only turn a `Backtest`
into a dictionary, a table or text. `backtest_to_dict` is the stable JSON contract
(``kind: costsim.backtest``, ``schema_version: 1``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from .. import __version__
from ..backtest import QUANTILES, Backtest, BacktestOrigin, duration_text, iso
from ..model.file import _clean
from .dashboard import _pct, _print_table, _usd
from .forecast import _md, _md_table

KIND = "costsim.backtest"
SCHEMA_VERSION = 1
DASH = "—"

_TITLE = "Actual cost of each window against its forecast"
_COLUMNS = [
    "origin", "actual", "P5", "P25", "P50", "P75", "P95", "PIT", "in P5-P95", "in P25-P75",
    "interval score", "width", "P50 error", "naive error",
]  # fmt: skip
_DROP = ("P25", "P75", "P50 error", "width", "interval score", "in P25-P75")


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------


def _origin_to_dict(o: BacktestOrigin) -> dict[str, Any]:
    return {
        "split": iso(o.split),
        "horizon_s": o.horizon_s,
        "actual": o.actual,
        "quantiles": {k: o.quantiles[k] for k in QUANTILES},
        "naive_linear": o.naive_linear,
        "pit": o.pit,
        "in_p5_p95": o.in_p5_p95,
        "in_p25_p75": o.in_p25_p75,
        "interval_score": o.interval_score,
        "width": o.width,
        "p50_error": o.p50_error,
        "naive_error": o.naive_error,
        "requests": o.requests,
        "forecast_requests": o.forecast_requests,
        "fit_requests": o.fit_requests,
        "excluded": {
            "classes": list(o.excluded),
            "requests": o.excluded_requests,
            "cost": o.excluded_cost,
        },
    }


def backtest_to_dict(bt: Backtest) -> dict[str, Any]:
    """The stable JSON contract (keys in a fixed order; floats to 10 significant digits)."""
    out = {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        "costsim_version": __version__,
        "source": bt.source,
        "log": {"start": iso(bt.log_start), "end": iso(bt.log_end), "rows": bt.rows},
        "seed": bt.seed,
        "trials": bt.trials,
        "volume": "as_planned" if bt.volume_as_planned else "actual",
        "rolling": bt.rolling,
        "split": iso(bt.split),
        "horizon_s": bt.horizon_s,
        "currency": "USD",
        "origins": [_origin_to_dict(o) for o in bt.origins],
        "coverage": {"p5_p95": bt.coverage_p5_p95, "p25_p75": bt.coverage_p25_p75},
        "mean_interval_score": bt.mean_interval_score,
        "mean_pit": bt.mean_pit,
        "mean_abs_p50_error": bt.mean_abs_p50_error,
        "mean_abs_naive_error": bt.mean_abs_naive_error,
        "notes": list(bt.notes),
    }
    return dict(_clean(out))


# ---------------------------------------------------------------------------------------------
# Text shared by rich and Markdown
# ---------------------------------------------------------------------------------------------


def _when(t: float) -> str:
    """An origin, compact: 2026-10-11 23:58 (UTC)."""
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _signed_pct(v: float | None) -> str:
    return DASH if v is None else f"{100 * v:+.1f}%"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _cells(o: BacktestOrigin) -> list[str]:
    q = o.quantiles
    return [
        _when(o.split), _usd(o.actual), _usd(q["p5"]), _usd(q["p25"]), _usd(q["p50"]),
        _usd(q["p75"]), _usd(q["p95"]), f"{o.pit:.3f}", _yes(o.in_p5_p95), _yes(o.in_p25_p75),
        _usd(o.interval_score), _pct(o.width), _signed_pct(o.p50_error),
        _signed_pct(o.naive_error),
    ]  # fmt: skip


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' if n != 1 else ''}"


def _context(bt: Backtest) -> tuple[str, str]:
    """The log, then the origins and how they were forecast."""
    n = len(bt.origins)
    origins = (
        f"split at {iso(bt.split)}"
        if n == 1
        else f"{n} origins from {iso(bt.origins[0].split)} to the split at {iso(bt.split)}"
    )
    volume = (
        "volume planned from the past's request rate and mix"
        if bt.volume_as_planned
        else "each window's actual requests and class mix given"
    )
    return (
        f"{bt.source}: {bt.rows:,} requests from {iso(bt.log_start)} to {iso(bt.log_end)}",
        f"{origins}, forecasting {duration_text(bt.horizon_s)} after {'each' if n > 1 else 'it'}"
        f" ({volume}; {bt.trials:,} trials, seed {bt.seed})",
    )


def _coverage_line(bt: Backtest) -> str:
    n = len(bt.origins)
    wide = sum(o.in_p5_p95 for o in bt.origins)
    mid = sum(o.in_p25_p75 for o in bt.origins)
    return (
        f"coverage: P5-P95 held the actual cost at {wide} of {_plural(n, 'origin')} "
        f"({_pct(bt.coverage_p5_p95, 0)}; nominal 90%), P25-P75 at {mid} of {n} "
        f"({_pct(bt.coverage_p25_p75, 0)}; nominal 50%)"
    )


def _score_line(bt: Backtest) -> str:
    return (
        f"mean PIT {bt.mean_pit:.3f} (0.5 when calibrated; lower: forecasts ran high, higher: "
        f"they ran low); mean interval score {_usd(bt.mean_interval_score)} (lower is better)"
    )


def _error_line(bt: Backtest) -> str | None:
    if bt.mean_abs_p50_error is None or bt.mean_abs_naive_error is None:
        return None
    return (
        f"mean absolute error: forecast P50 {_pct(bt.mean_abs_p50_error)}, naive linear "
        f"estimate {_pct(bt.mean_abs_naive_error)}"
    )


def _summary_lines(bt: Backtest) -> list[str]:
    lines = [_coverage_line(bt), _score_line(bt)]
    error = _error_line(bt)
    return lines + ([error] if error is not None else [])


# ---------------------------------------------------------------------------------------------
# Rich
# ---------------------------------------------------------------------------------------------


def render_backtest(bt: Backtest, console: Console) -> None:
    """Print the backtest: context, one row per origin, coverage and scores, notes."""
    log, origins = _context(bt)
    console.print(f"[bold]{escape(log)}[/]", soft_wrap=True)
    console.print(escape(origins))
    rows: list[list[str | Text]] = []
    for o in bt.origins:
        cells: list[str | Text] = [*_cells(o)]
        for i, flag in ((8, o.in_p5_p95), (9, o.in_p25_p75)):
            cells[i] = Text(str(cells[i]), style="green" if flag else "red")
        rows.append(cells)
    _print_table(console, _TITLE, _COLUMNS, rows, drop=_DROP)
    for line in _summary_lines(bt):
        console.print(Text(line[:1].upper() + line[1:] + "."))
    for note in bt.notes:
        console.print(Text(f"note: {note}", style="dim"))


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


def backtest_to_markdown(bt: Backtest) -> str:
    """GitHub-flavoured Markdown with the same content as the rich report."""
    out = [
        f"### costsim backtest: {_md(bt.source)}",
        "",
        _md(_context(bt)[0]) + ";",
        _md(_context(bt)[1]) + ".",
        "",
        f"**{_TITLE}**",
        "",
        *_md_table(_COLUMNS, [_cells(o) for o in bt.origins]),
        "",
        *(f"- {_md(line[:1].upper() + line[1:])}." for line in _summary_lines(bt)),
    ]
    if bt.notes:
        out += ["", "Notes:", "", *(f"- {_md(note)}" for note in bt.notes)]
    return "\n".join(out) + "\n"
