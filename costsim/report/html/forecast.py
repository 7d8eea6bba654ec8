"""The forecast's HTML report (`forecast_html`): the distribution of the total against the
naive estimate, the bridge, the classes, the daily fan, and optionally a check's verdicts
and a comparison of deployment options.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ...errors import CostsimError
from ...simulate.forecast import Forecast
from ..check import _cells as _verdict_cells
from ..dashboard import _pct, _usd
from ..diagnostics import (
    Contributions,
    FanData,
    class_contributions,
    daily_fan,
)
from ..forecast import (
    _BRIDGE_COLUMNS,
    _QUANTILE_COLUMNS,
    _bridge_rows,
    _class_marks,
    _context,
    _days,
    _naive_line,
    _quantile_rows,
    headline,
    require_matplotlib,
    totals_histogram,
)
from .page import (
    _BLUE,
    _GREEN,
    _GREY,
    _RED,
    _TIMES,
    _TO,
    _axes,
    _e,
    _figure,
    _new_figure,
    _notes,
    _page,
    _pct_axis,
    _svg,
    _table,
    _usd_axis,
)

if TYPE_CHECKING:
    from ...check import CheckResult
    from ...simulate.compare import Comparison


def forecast_html(
    fc: Forecast,
    *,
    budget: float | None = None,
    check: CheckResult | Sequence[CheckResult] | None = None,
    comparison: Comparison | None = None,
) -> bytes:
    """The forecast's report: the distribution of totals, the bridge as a waterfall, each
    class's contribution, cost per day as a fan chart and, when given, the check's verdicts (at
    the top) and the deployment options side by side.

    Figure ids: ``forecast-distribution``, ``forecast-bridge``, ``forecast-classes``,
    ``forecast-daily``, ``compare-options`` (with ``comparison``); the verdicts table is
    ``check-verdicts`` (with ``check``).
    """
    require_matplotlib("--html")
    if budget is not None and not math.isfinite(budget):
        raise CostsimError(f"--budget: expected a finite amount in USD, got {budget!r}")
    body = [
        f"<h1>costsim forecast: {_e(fc.scenario_name)}</h1>",
        f'<p class="lead"><b>{_e(headline(fc))}.</b></p>',
        f'<p class="meta">{_e(_context(fc))}. {_e(_sentence(_naive_line(fc)))}.</p>',
    ]
    if check is not None:
        body.append(_check_section(check))
    body += ["<h2>Cost over the horizon</h2>", _distribution(fc, budget)]
    body += ["<h2>From the naive estimate to the forecast</h2>", _bridge(fc)]
    body += ["<h2>Per class</h2>", _classes(fc, class_contributions(fc))]
    body += ["<h2>Cost per day</h2>", _daily(fc, daily_fan(fc))]
    if comparison is not None:
        body += ["<h2>Deployment options</h2>", _compare(comparison)]
    if fc.notes:
        body += ["<h2>Notes</h2>", _notes(fc.notes)]
    return _page(f"costsim forecast: {fc.scenario_name}", body)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _check_section(check: CheckResult | Sequence[CheckResult]) -> str:
    results = [check] if not isinstance(check, Sequence) else list(check)
    rows = []
    for r in results:
        for v in r.verdicts:
            rows.append((v, [v.scenario, v.status, v.name, *_verdict_cells(v), v.detail]))
    head = "".join(
        f"<th>{_e(c)}</th>"
        for c in ("scenario", "status", "check", "value", "threshold", "± MC s.e.", "detail")
    )
    body = []
    for v, cells in rows:
        tds = []
        for i, cell in enumerate(cells):
            cls = ' class="text"' if i in (2, 6) else ""
            if i == 1:
                cls = f' class="text {_e(v.status)}"'
            tds.append(f"<td{cls}>{_e(cell)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    notes = [n for r in results for n in r.notes]
    return (
        '<section id="check-verdicts">\n<h2>Check: verdicts</h2>\n'
        f"<table><thead><tr>{head}</tr></thead><tbody>\n"
        + "\n".join(body)
        + "\n</tbody></table>\n"
        + _notes(notes)
        + "</section>"
    )


def _distribution(fc: Forecast, budget: float | None) -> str:
    fig_id = "forecast-distribution"
    fig = _new_figure()
    ax = _axes(fig)[0]
    totals_histogram(ax, fc, budget, colors=(_GREY, _BLUE, _RED), legend_size=9)
    _usd_axis(ax.xaxis)
    table = _table(_QUANTILE_COLUMNS, _quantile_rows(fc))
    over = "" if budget is None else f" The dotted line is the budget, {_e(_usd(budget))}."
    caption = (
        f"Total cost over the horizon in {fc.trials:,} simulated trials (seed {fc.seed}). The "
        f"dashed grey line is the naive estimate (pilot mean cost per request {_TIMES} projected "
        "requests); blue is the median forecast, red the P95 — the figure to budget against. "
        f"The gap between grey and red is what the naive method misses.{over}"
    )
    return _figure(fig_id, _svg(fig, fig_id), caption, table)


def _bridge(fc: Forecast) -> str:
    fig_id = "forecast-bridge"
    if not fc.bridge:
        return _figure(fig_id, None, "Bridge: not drawn — the forecast was run without one.")
    fig = _new_figure(1, 2, size=(9.0, 4.2), fit=True)
    labels = ["naive", *(s.driver for s in fc.bridge), "forecast"]
    for ax, key in zip(_axes(fig), ("p50", "p95"), strict=True):
        running = [fc.naive_linear]
        bottoms, heights, colors = [0.0], [fc.naive_linear], [_GREY]
        for s in fc.bridge:
            delta = s.delta_p50 if key == "p50" else s.delta_p95
            end = s.p50 if key == "p50" else s.p95
            bottoms.append(min(end, end - delta))
            heights.append(abs(delta))
            colors.append(_RED if delta > 0 else _GREEN)
            running.append(end)
        bottoms.append(0.0)
        heights.append(running[-1])
        colors.append(_BLUE)
        x = np.arange(len(labels), dtype=float)
        ax.bar(x, heights, bottom=bottoms, color=colors, width=0.7)
        for i in range(len(running) - 1):
            ax.plot([x[i] + 0.35, x[i + 1] - 0.35], [running[i], running[i]], color="black",
                    linewidth=0.6)  # fmt: skip
        ax.set_xticks(x, labels, rotation=35, ha="right", fontsize=9)
        _usd_axis(ax.yaxis)
        ax.set_title(f"to the forecast's {key.upper()}")
    table = _table(_BRIDGE_COLUMNS, _bridge_rows(fc))
    caption = (
        "The bridge from the naive estimate (grey) to the forecast (blue), switching the drivers "
        "on one at a time on the same random numbers: red steps add cost, green ones remove it. "
        "Left for the median, right for the P95 — a driver that barely moves the median but "
        "lifts the P95 (spikes, the unseen tail) is a risk, not a trend."
    )
    return _figure(fig_id, _svg(fig, fig_id), caption, table)


def _classes(fc: Forecast, contrib: Contributions) -> str:
    fig_id = "forecast-classes"
    n = len(contrib.classes)
    fig = _new_figure(size=(7.2, 0.6 * n + 1.4), fit=True)
    ax = _axes(fig)[0]
    y = np.arange(n, dtype=float)[::-1]
    h = 0.26
    ax.barh(y + h, contrib.naive, height=h, color=_GREY, label="naive")
    ax.barh(y, contrib.at_p50, height=h, color=_BLUE, label="at the forecast's P50")
    ax.barh(y - h, contrib.at_p95, height=h, color=_RED, label="at the forecast's P95")
    ax.set_yticks(y, list(contrib.classes))
    _usd_axis(ax.xaxis)
    ax.set_xlabel("class cost over the horizon (USD)")
    ax.legend(loc="lower right", frameon=False, fontsize=9)
    columns = ["class", "req %", "cost %", "unit p50", "unit p95", "naive cost", "mean cost",
               "at P50", "at P95"]  # fmt: skip
    rows = []
    for j, name in enumerate(contrib.classes):
        c = fc.per_class[name]
        rows.append([
            name + _class_marks(fc, name), _pct(c.request_share), _pct(c.cost_share),
            _usd(c.unit_cost_p50), _usd(c.unit_cost_p95), _usd(contrib.naive[j]),
            _usd(contrib.mean[j]), _usd(contrib.at_p50[j]), _usd(contrib.at_p95[j]),
        ])  # fmt: skip
    caption = (
        "Each class's cost: the naive estimate (grey), and what the class costs in the trials "
        "where the total lands at its median (blue) and at its P95 (red). The classes whose red "
        "bar stretches furthest beyond their blue one are those a bad month comes from."
    )
    return _figure(fig_id, _svg(fig, fig_id), caption, _table(columns, rows))


def _daily(fc: Forecast, fan: FanData | None) -> str:
    fig_id = "forecast-daily"
    if fan is None:
        return _figure(
            fig_id,
            None,
            "Cost per day: not drawn — this forecast carries no per-day costs "
            "(<code>Forecast.daily</code>); a costsim that records them draws the fan chart here.",
        )
    fig = _new_figure()
    ax = _axes(fig)[0]
    d = fan.day.astype(float)
    ax.fill_between(d, fan.at(0.05), fan.at(0.95), color=_BLUE, alpha=0.15, linewidth=0,
                    step="mid", label=f"P5{_TO}P95")  # fmt: skip
    ax.fill_between(d, fan.at(0.25), fan.at(0.75), color=_BLUE, alpha=0.25, linewidth=0,
                    step="mid", label=f"P25{_TO}P75")  # fmt: skip
    ax.step(d, fan.at(0.5), where="mid", color=_BLUE, linewidth=1.6, label="P50")
    ax.step(d, fan.naive, where="mid", color=_GREY, linestyle="--", linewidth=1.4, label="naive")
    ax.set_xlim(0.5, d[-1] + 0.5)
    ax.set_ylim(bottom=0)
    _usd_axis(ax.yaxis)
    ax.set_xlabel("day of the horizon")
    ax.set_ylabel("cost per day (USD)")
    ax.legend(loc="upper left", frameon=False, fontsize=9)
    rows = [
        [f"{int(day)}", _usd(float(fan.at(0.05)[i])), _usd(float(fan.at(0.5)[i])),
         _usd(float(fan.at(0.95)[i])), _usd(float(fan.naive[i]))]
        for i, day in enumerate(fan.day)
    ]  # fmt: skip
    table = _table(["day", "P5", "P50", "P95", "naive"], rows)
    caption = (
        "Cost per day over the horizon: the median (blue line), the middle half of the "
        f"trials (dark band) and P5{_TO}P95 (light band), against the naive estimate per "
        "day (dashed). The band widens with the horizon as drift accumulates; launches and "
        "spikes show as bumps. Each day's band is that day's own range: a month is not the "
        "sum of its worst days."
    )
    return _figure(fig_id, _svg(fig, fig_id), caption, _details(table, "per-day figures"))


def _details(inner: str, summary: str) -> str:
    return f"<details><summary>{_e(summary)}</summary>\n{inner}</details>\n"


def _compare(cmp: Comparison) -> str:
    fig_id = "compare-options"
    stats = cmp.stats
    n = len(stats.options)
    fig = _new_figure(1, 2, size=(9.0, 0.7 * n + 1.6), fit=True)
    ax, ax2 = _axes(fig)
    y = np.arange(n, dtype=float)[::-1]
    for yi, o in zip(y, stats.options, strict=True):
        ax.plot([o.p5, o.p95], [yi, yi], color=_BLUE, linewidth=6, alpha=0.35,
                solid_capstyle="butt")  # fmt: skip
        ax.plot([o.p50], [yi], "|", color=_BLUE, markersize=16, markeredgewidth=2.5)
        ax.plot([o.mean], [yi], "o", color="black", markersize=4)
    ax.plot([], [], color=_BLUE, linewidth=6, alpha=0.35, label=f"P5{_TO}P95")
    ax.plot([], [], "|", color=_BLUE, markersize=12, markeredgewidth=2.5, label="P50")
    ax.plot([], [], "o", color="black", markersize=4, label="mean")
    ax.set_yticks(y, [o.name for o in stats.options])
    ax.set_ylim(-0.6, n - 0.4)
    _usd_axis(ax.xaxis)
    ax.set_xlabel(f"total cost over {_days(cmp.horizon_s)} days (USD)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False, fontsize=8)
    ax2.barh(y, [o.p_cheapest for o in stats.options], color=_GREEN, height=0.5)
    for yi, o in zip(y, stats.options, strict=True):
        ax2.annotate(f"{_pct(o.p_cheapest, 0)}, regret {_usd(o.expected_regret)}", (0.0, yi),
                     xytext=(4, 9), textcoords="offset points", fontsize=8)  # fmt: skip
    ax2.set_xlim(0, 1)
    ax2.set_ylim(-0.6, n - 0.4)
    ax2.set_yticks(y, [""] * n)
    _pct_axis(ax2.xaxis)
    ax2.set_xlabel("P(cheapest)")
    flex = cmp.flexibility
    rows = []
    for i, o in enumerate(stats.options):
        opt = cmp.options[i] if i < len(cmp.options) else None
        rows.append([
            o.name, opt.kind if opt is not None else "", _usd(o.p5), _usd(o.p50), _usd(o.p95),
            _usd(o.mean), f"{_pct(o.p_cheapest)} ±{_pct(o.p_cheapest_se)}",
            _usd(o.expected_regret), _usd(o.regret_p95),
            _usd(float(flex.value[i])) if i < len(flex.value) else "—",
        ])  # fmt: skip
    columns = ["option", "kind", "P5", "P50", "P95", "mean", "P(cheapest)", "mean regret",
               "regret P95", "value of waiting"]  # fmt: skip
    caption = (
        f"The deployment options on the same {cmp.trials:,} trials (common random "
        f"numbers): left, each option's total cost (P5{_TO}P95 bar, P50 tick, mean dot); "
        "right, how often each is the cheapest, with its expected regret: what choosing it "
        "costs on average over the cheapest choice in hindsight. Prefer a low regret over a "
        "high P(cheapest) when the two disagree; the value of waiting is what keeping the "
        "choice open until the review saves."
    )
    return _figure(fig_id, _svg(fig, fig_id), caption, _table(columns, rows, text_cols=2)) + (
        _notes(cmp.notes)
    )
