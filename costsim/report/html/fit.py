"""The fit's HTML report (`fit_html`): the class table, and per class its distribution, tail
QQ, threshold stability and drift; the classes' shares and the cost's concentration.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..dashboard import FitSummary, _drift_text, _pct, _usd
from ..diagnostics import (
    ClassDiagnostics,
    FitDiagnostics,
)
from ..forecast import (
    require_matplotlib,
)
from .page import (
    _BLUE,
    _GREY,
    _ORANGE,
    _RED,
    _Z90,
    _axes,
    _e,
    _figure,
    _log_pct_axis,
    _new_figure,
    _notes,
    _page,
    _pct_axis,
    _slugs,
    _svg,
    _table,
    _usd_axis,
)

if TYPE_CHECKING:
    pass


def fit_html(summary: FitSummary, diag: FitDiagnostics) -> bytes:
    """The fit's report: the dashboard's tables and, per class, the distribution with its fit,
    the tail QQ plot, threshold stability and drift; for the pilot, shares and concentration.

    Figure ids: ``fit-distribution-<class>``, ``fit-tail-qq-<class>``,
    ``fit-threshold-stability-<class>``, ``fit-drift-<class>`` (see `class_slug`),
    ``fit-shares``, ``fit-concentration``.
    """
    require_matplotlib("--html")
    rows = {r.name: r for r in summary.classes}
    slugs = _slugs(c.name for c in diag.classes)
    span = f" over {summary.duration_s / 86400:.1f} days" if summary.duration_s else ""
    dropped = f", {summary.rows_dropped:,} invalid rows dropped" if summary.rows_dropped else ""
    body = [
        f"<h1>costsim fit: {_e(summary.source)}</h1>",
        f'<p class="lead">{summary.requests:,} requests{_e(span)}, '
        f"{_e(_usd(summary.cost_total))} total{_e(dropped)}.</p>",
        "<nav>"
        + '<a href="#pilot">pilot</a>'
        + "".join(f'<a href="#class-{_e(slugs[c.name])}">{_e(c.name)}</a>' for c in diag.classes)
        + "</nav>",
        '<h2 id="pilot">The pilot: who carries the cost</h2>',
        _shares_figure(summary, diag),
        _concentration_figure(summary, diag),
        "<h3>Per class</h3>",
        _fit_table(summary),
    ]
    for c in diag.classes:
        row = rows.get(c.name)
        body.append(f'<h2 id="class-{_e(slugs[c.name])}">{_e(c.name)}</h2>')
        if row is not None:
            ci = f" [{row.tail_xi_ci[0]:.2f}, {row.tail_xi_ci[1]:.2f}]" if row.tail_xi_ci else ""
            xi = "none" if row.tail_xi is None else f"ξ = {row.tail_xi:.2f}{ci} (90%)"
            body.append(
                f'<p class="meta">{row.requests:,} requests ({_pct(row.request_share)}), '
                f"{_e(_usd(row.cost_total))} ({_e(_pct(row.cost_share))} of cost); "
                f"{_e(row.tail_quantity)} tail {_e(xi)}, {_e(row.tail_verdict)} "
                f"({_e(row.tail_source)}); drift {_e(_drift_text(row))}.</p>"
            )
        slug = slugs[c.name]
        body.append(_distribution_figure(c, slug))
        body.append(_qq_figure(c, slug))
        body.append(_stability_figure(c, slug))
        body.append(_drift_figure(c, slug))
    notes = (*summary.notes, *diag.notes)
    if notes:
        body += ["<h2>Notes</h2>", _notes(notes)]
    return _page(f"costsim fit: {summary.source}", body)


def _fit_table(summary: FitSummary) -> str:
    columns = ["class", "requests", "req %", "cost", "cost %", "mean", "p50", "p95", "p99",
               "max", "ξ [90% CI]", "verdict", "drift"]  # fmt: skip
    rows = []
    for r in summary.classes:
        ci = f" [{r.tail_xi_ci[0]:.2f}, {r.tail_xi_ci[1]:.2f}]" if r.tail_xi_ci else ""
        rows.append([
            r.name, f"{r.requests:,}", _pct(r.request_share), _usd(r.cost_total),
            _pct(r.cost_share), _usd(r.unit_mean), _usd(r.unit_p50), _usd(r.unit_p95),
            _usd(r.unit_p99), _usd(r.unit_max),
            "—" if r.tail_xi is None else f"{r.tail_xi:.2f}{ci}", r.tail_verdict, _drift_text(r),
        ])  # fmt: skip
    return _table(columns, rows)


def _quantity_label(q: str) -> tuple[str, bool]:
    """Axis label of a quantity, and whether it is in USD."""
    if q == "cost_usd":
        return "cost per request (USD)", True
    return q.replace("_", " "), False


def _distribution_figure(c: ClassDiagnostics, slug: str) -> str:
    fig_id = f"fit-distribution-{slug}"
    s = c.survival
    if s is None:
        why = c.missing.get("distribution", "nothing to draw")
        return _figure(fig_id, None, f"Distribution of {_e(c.name)}: not drawn — {_e(why)}.")
    label, usd = _quantity_label(c.quantity)
    fig = _new_figure()
    ax = _axes(fig)[0]
    emp = np.where(s.empirical > 0, s.empirical, np.nan)
    ax.step(s.x, emp, where="post", color=_GREY, linewidth=2.2, alpha=0.7, label="pilot")
    fitted = np.where(s.fitted > 0, s.fitted, np.nan)
    if s.threshold is not None:
        body = s.x <= s.threshold
        ax.plot(s.x[body], fitted[body], color=_BLUE, linewidth=1.5, label="fit: body")
        ax.plot(s.x[~body], fitted[~body], color=_RED, linewidth=1.5, label="fit: GPD tail")
        where = f"threshold {_fmt(s.threshold, usd)} (top {_pct(s.tail_prob)})"
        ax.axvline(s.threshold, color="black", linestyle="--", linewidth=1, label=where)
    else:
        ax.plot(s.x, fitted, color=_BLUE, linewidth=1.5, label="fit: empirical (no tail)")
    if s.cap is not None and s.cap <= s.x[-1] * 1.0001:
        ax.axvline(s.cap, color=_RED, linestyle=":", linewidth=1,
                   label=f"cap {_fmt(s.cap, usd)}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(0.5 / max(s.n, 1), 1.5)
    if usd:
        _usd_axis(ax.xaxis)
    ax.set_xlabel(label)
    ax.set_ylabel("share of requests above x")
    ax.set_title(f"{c.name}: {s.n:,} requests")
    ax.legend(loc="lower left", frameon=False, fontsize=9)
    zero = (
        f" {_pct(s.zero_share)} of the rows are at 0 and sit off the log scale."
        if s.zero_share > 0
        else ""
    )
    caption = (
        f"<b>{_e(c.name)}</b>: share of requests whose {_e(label)} exceeds x, on log-log "
        "axes. Grey steps: the pilot; blue: the fitted body; red: the GPD tail above the "
        "dashed threshold, drawn past the largest value seen. The fit is good where the lines "
        f"follow the steps down to the last few requests.{_e(zero)}"
    )
    return _figure(fig_id, _svg(fig, fig_id), caption)


def _fmt(v: float, usd: bool) -> str:
    return _usd(v) if usd else f"{v:,.4g}"


def _qq_figure(c: ClassDiagnostics, slug: str) -> str:
    fig_id = f"fit-tail-qq-{slug}"
    q = c.tail_qq
    if q is None:
        why = c.missing.get("tail-qq", "nothing to draw")
        return _figure(fig_id, None, f"Tail QQ plot of {_e(c.name)}: not drawn — {_e(why)}.")
    label, usd = _quantity_label(c.quantity)
    fig = _new_figure()
    ax = _axes(fig)[0]
    order = np.argsort(q.fitted, kind="stable")
    ax.fill_between(q.fitted[order], q.lower[order], q.upper[order], color=_RED, alpha=0.15,
                    linewidth=0, label=f"{q.level:.0%} band (parameter draws)")  # fmt: skip
    lo = float(min(q.fitted.min(), q.empirical.min(), q.lower.min()))
    hi = float(max(q.fitted.max(), q.empirical.max(), q.upper.max()))
    ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8, linestyle="--", label="y = x")
    ax.plot(q.fitted, q.empirical, "o", color=_BLUE, markersize=4.5, label="pilot's quantiles")
    ax.set_xscale("log")
    ax.set_yscale("log")
    if usd:
        _usd_axis(ax.xaxis)
        _usd_axis(ax.yaxis)
    ax.set_xlabel(f"fitted quantile ({label})")
    ax.set_ylabel(f"pilot's quantile ({label})")
    ax.set_title(f"{c.name}: tail above {_fmt(q.threshold, usd)} ({q.exceedances:,} requests)")
    ax.legend(loc="upper left", frameon=False, fontsize=9)
    caption = (
        f"<b>{_e(c.name)}</b>: tail QQ plot. Each dot is one of the pilot's largest values "
        "against the fitted tail's quantile at the same rank; the shaded band is where "
        f"{q.level:.0%} of the fit's parameter draws put that quantile. Dots inside the band "
        "along the diagonal: the tail fits. Dots above it at the right: the pilot's extremes are "
        "heavier than the fit; below: lighter."
    )
    return _figure(fig_id, _svg(fig, fig_id), caption)


def _stability_figure(c: ClassDiagnostics, slug: str) -> str:
    fig_id = f"fit-threshold-stability-{slug}"
    s = c.stability
    if s is None:
        why = c.missing.get("threshold-stability", "nothing to draw")
        return _figure(fig_id, None, f"Threshold stability of {_e(c.name)}: not drawn — {_e(why)}.")
    _, usd = _quantity_label(c.quantity)
    fig = _new_figure()
    ax = _axes(fig)[0]
    if s.xi_ci is not None:
        band = f"model ξ {s.model_xi:.2f} [{s.xi_ci[0]:.2f}, {s.xi_ci[1]:.2f}]"
        ax.axhspan(s.xi_ci[0], s.xi_ci[1], color=_RED, alpha=0.12, linewidth=0, label=band)
    ax.errorbar(
        s.threshold, s.xi, yerr=[s.xi - s.xi_lower, s.xi_upper - s.xi], fmt="o", color=_BLUE,
        ecolor=_BLUE, elinewidth=1.2, capsize=3, markersize=4.5,
        label=f"ξ at each candidate ({s.level:.0%} profile interval)",
    )  # fmt: skip
    ax.axvline(s.chosen, color="black", linestyle="--", linewidth=1,
               label=f"chosen threshold {_fmt(s.chosen, usd)}")  # fmt: skip
    top = float(np.nanmax(s.xi_upper))
    for level, text in ((0.5, "ξ = 0.5: infinite variance"), (1.0, "ξ = 1: infinite mean")):
        if top >= level - 0.1:
            ax.axhline(level, color=_ORANGE, linestyle=":", linewidth=1)
            ax.annotate(text, (0.01, level), xycoords=("axes fraction", "data"),
                        fontsize=8, color=_ORANGE, va="bottom")  # fmt: skip
    ax.axhline(0.0, color=_GREY, linewidth=0.6)
    ax.set_xscale("log")
    if usd:
        _usd_axis(ax.xaxis)
    ax.set_xlabel("threshold (tail starts above)")
    ax.set_ylabel("tail shape ξ")
    ax.set_title(f"{c.name}: threshold stability")
    ax.legend(loc="best", frameon=False, fontsize=9)
    k = ", ".join(f"{int(v):,}" for v in s.exceedances)
    method = f" Chosen by {_e(s.method)}." if s.method else ""
    caption = (
        f"<b>{_e(c.name)}</b>: the tail shape ξ fitted above each candidate threshold "
        f"(exceedances: {_e(k)}), with its {s.level:.0%} profile-likelihood interval. A "
        "threshold is trustworthy where ξ stops drifting as the threshold rises (the dots level "
        "off within each other's intervals); the shaded band is the model's own interval, which "
        f"also carries the threshold's uncertainty.{method}"
    )
    return _figure(fig_id, _svg(fig, fig_id), caption)


def _drift_figure(c: ClassDiagnostics, slug: str) -> str:
    fig_id = f"fit-drift-{slug}"
    d = c.drift
    if d is None:
        why = c.missing.get("drift", "nothing to draw")
        return _figure(fig_id, None, f"Drift of {_e(c.name)}: not drawn — {_e(why)}.")
    fig = _new_figure()
    ax = _axes(fig)[0]
    t0 = float(d.start[0]) if d.start.size else 0.0
    mid = (d.start - t0 + d.window_s / 2.0) / 86400.0
    obs = np.isfinite(d.mean)
    usd = d.measure == "cost_usd"
    ax.fill_between(mid, np.exp(d.level - _Z90 * d.level_sd), np.exp(d.level + _Z90 * d.level_sd),
                    color=_RED, alpha=0.15, linewidth=0)  # fmt: skip
    kind = {"none": "no drift", "ar1": "AR(1)", "random_walk": "random walk"}.get(d.kind, d.kind)
    what = "filtered level" if d.estimated and d.kind != "none" else "fitted level"
    default = "" if d.estimated else ", default"
    ax.plot(mid, np.exp(d.level), color=_RED, linewidth=1.5,
            label=f"{what} ({kind}{default}), 90% band")  # fmt: skip
    m, s = d.mean[obs], d.sd[obs]
    xs, lows, highs = mid[obs], np.exp(m - _Z90 * s), np.exp(m + _Z90 * s)
    ax.plot(*_segments(xs, lows, highs), color=_BLUE, alpha=0.6, linewidth=0.8)
    ax.plot(xs, np.exp(m), "o", color=_BLUE, alpha=0.8, markersize=3,
            label="window's geometric mean, 90% sampling interval")  # fmt: skip
    ax.axhline(math.exp(d.reference), color=_GREY, linestyle="--", linewidth=1,
               label="pilot's overall level")  # fmt: skip
    ax.set_yscale("log")
    if usd:
        _usd_axis(ax.yaxis)
    ax.set_xlabel("days since the pilot's start")
    ax.set_ylabel("geometric mean " + ("cost per request" if usd else "tokens per request"))
    hours = d.window_s / 3600.0
    ax.set_title(f"{c.name}: {hours:g} h windows")
    ax.legend(loc="upper left", frameon=False, fontsize=9)
    note = f" {_e(d.note)}." if d.note else ""
    caption = (
        f"<b>{_e(c.name)}</b>: the unit cost window by window ({hours:g} h windows; the "
        "geometric mean, i.e. the mean of log cost). Error bars show what sampling alone "
        "explains; when the dots wander further than their bars, the level moves and the "
        f"forecast carries that drift ({_e(kind)}). The red line is the fitted model's level "
        f"seen up to each window; the forecast starts from where it ends.{note}"
    )
    return _figure(fig_id, _svg(fig, fig_id), caption)


def _segments(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertical bars from ``lo`` to ``hi`` at ``x`` as one polyline broken by NaN (one SVG
    path, not one per bar)."""
    nan = np.full(x.size, np.nan)
    return np.column_stack([x, x, nan]).ravel(), np.column_stack([lo, hi, nan]).ravel()


def _shares_figure(summary: FitSummary, diag: FitDiagnostics) -> str:
    fig_id = "fit-shares"
    sh = diag.shares
    fig = _new_figure(size=(7.2, 0.45 * len(sh.classes) + 1.4), fit=True)
    ax = _axes(fig)[0]
    cost = sh.cost_share if sh.cost_share is not None else np.zeros(len(sh.classes))
    order = sorted(range(len(sh.classes)), key=lambda i: (cost[i], sh.classes[i]))
    y = np.arange(len(order), dtype=float)
    names = [sh.classes[i] for i in order]
    ax.barh(y + 0.2, [sh.request_share[i] for i in order], height=0.38, color=_GREY,
            label="share of requests")  # fmt: skip
    if sh.cost_share is not None:
        ax.barh(y - 0.2, [cost[i] for i in order], height=0.38, color=_RED,
                label="share of cost")  # fmt: skip
    ax.set_yticks(y, names)
    _pct_axis(ax.xaxis)
    ax.set_xlabel("share of the pilot")
    ax.legend(loc="lower right", frameon=False, fontsize=9)
    heavy = ", ".join(summary.cost_heavy_classes) or "none"
    rows = [
        [r.name, _pct(r.request_share), _pct(r.cost_share), _usd(r.cost_total)]
        for r in summary.classes
    ]
    table = _table(["class", "share of requests", "share of cost", "cost"], rows)
    caption = (
        "Share of requests (grey) against share of cost (red) per class. A class whose red bar "
        "is longer than its grey one costs more per request than the average; those classes "
        f"(here: <b>{_e(heavy)}</b>) decide the bill when the production mix shifts."
    )
    return _figure(fig_id, _svg(fig, fig_id), caption, table)


def _concentration_figure(summary: FitSummary, diag: FitDiagnostics) -> str:
    fig_id = "fit-concentration"
    c = diag.concentration
    if c is None:
        return _figure(fig_id, None, "Concentration of cost: not drawn — the log has no cost.")
    fig = _new_figure()
    ax = _axes(fig)[0]
    ax.plot(c.top, c.top, color=_GREY, linestyle="--", linewidth=1, label="every request equal")
    ax.plot(c.top, c.cost_share, color=_RED, linewidth=2, label="pilot")
    for share, x in ((summary.top_1pct_cost_share, 0.01), (summary.top_5pct_cost_share, 0.05)):
        if share is not None:
            ax.plot([x], [share], "o", color="black", markersize=5)
            ax.annotate(f"top {x:.0%}: {_pct(share)} of cost", (x, share), xytext=(6, -12),
                        textcoords="offset points", fontsize=9)  # fmt: skip
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    _log_pct_axis(ax.xaxis)
    _pct_axis(ax.yaxis)
    ax.set_xlabel("costliest share of requests")
    ax.set_ylabel("share of the pilot's cost")
    ax.legend(loc="upper left", frameon=False, fontsize=9)
    sub = f" (from {c.sampled:,} of {c.n:,} requests)" if c.sampled is not None else ""
    caption = (
        "Concentration of cost: the share of the pilot's cost carried by its costliest x% of "
        f"requests{_e(sub)}. The further the red curve sits above the dashed diagonal, the more "
        "a few expensive requests set the bill — and the more the forecast depends on the tail "
        f"the pilot saw only rarely. Costliest 1%: {_e(_pct(summary.top_1pct_cost_share))} of "
        f"cost; costliest 5%: {_e(_pct(summary.top_5pct_cost_share))}."
    )
    return _figure(fig_id, _svg(fig, fig_id), caption)
