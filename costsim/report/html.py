"""One-file HTML reports (issue 12): the fit's diagnostics and the forecast, with pictures.

Renderers only: `fit_html` draws a `FitSummary` (the dashboard's numbers) and a
`FitDiagnostics` (`costsim.report.diagnostics`); `forecast_html` draws a `Forecast`, and optionally
a check's verdicts and a comparison of deployment options. Every number shown comes from those
objects; the only work here is binning a histogram and formatting.

The file stands alone: each picture is an inline SVG (its text set in the reader's own
sans-serif font: no font is embedded or fetched), the CSS is inline, there is no script and
no external address at all — it reads the same mailed, attached to a CI run or opened
offline. The same inputs give the same bytes: matplotlib's SVG carries no date, its ids come
from ``svg.hashsalt`` (the figure's id), and each figure's ids are prefixed with the figure's id
so that the inline pictures never share one.
The SVG is made plain XML that HTML reads as is: no XML declaration, DOCTYPE, metadata,
comments or namespace declarations, and ``xlink:href`` written as SVG 2's ``href``.

matplotlib is optional (the ``plot`` extra): without it both functions raise a `CostsimError`
naming what to install.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..errors import CostsimError
from ..simulate.forecast import Forecast
from .check import _cells as _verdict_cells
from .dashboard import FitSummary, _drift_text, _pct, _usd
from .diagnostics import (
    ClassDiagnostics,
    Contributions,
    FanData,
    FitDiagnostics,
    class_contributions,
    daily_fan,
)
from .forecast import (
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

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..check import CheckResult
    from ..simulate.compare import Comparison

__all__ = [
    "class_slug",
    "fit_html",
    "forecast_html",
]

FIT_FIGURES = ("distribution", "tail-qq", "threshold-stability", "drift")  # per class
_FIGSIZE = (7.2, 3.9)
_GREY, _BLUE, _RED, _GREEN, _ORANGE = "#7f7f7f", "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"
_Z90 = 1.6448536269514722
_TO, _TIMES = "\N{EN DASH}", "\N{MULTIPLICATION SIGN}"  # ranges (P5 to P95), products

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:0 auto;max-width:1020px;padding:1.2em 1.5em 3em;color:#1d1d1f;line-height:1.45}
h1{font-size:1.5em;margin:.2em 0 .1em}h2{font-size:1.2em;margin:1.8em 0 .4em;
border-bottom:1px solid #ddd;padding-bottom:.2em}h3{font-size:1.05em;margin:1.2em 0 .3em}
p.lead{font-size:1.05em;margin:.3em 0}p.meta{color:#555;margin:.2em 0}
figure{margin:1em 0 1.4em;padding:0}figure svg{max-width:100%;height:auto;display:block}
figcaption{color:#444;font-size:.92em;margin-top:.3em}
figure.missing figcaption{font-style:italic;padding:.8em;background:#f6f6f6}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0 1em;
font-variant-numeric:tabular-nums}th,td{padding:.2em .7em;border-bottom:1px solid #e4e4e4}
th{text-align:right;background:#fafafa}td{text-align:right}
th:first-child,td:first-child{text-align:left}td.text{text-align:left}
.PASS{color:#1a7f37;font-weight:600}.WARN{color:#9a6700;font-weight:600}
.FAIL,.REGRESSION{color:#cf222e;font-weight:700}.INFO{color:#666}
ul.notes{color:#555;font-size:.9em}nav a{margin-right:.8em}
footer{color:#888;font-size:.8em;margin-top:3em}
""".strip()


# ---------------------------------------------------------------------------------------------
# matplotlib: optional, and deterministic
# ---------------------------------------------------------------------------------------------


def _new_figure(
    rows: int = 1, cols: int = 1, size: tuple[float, float] = _FIGSIZE, fit: bool = False
) -> Figure:
    """A figure on matplotlib's Agg canvas (no pyplot, no global backend). Fixed margins, or
    with ``fit`` a constrained layout (for long tick labels such as class names; slower)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=72, layout="constrained" if fit else None)
    FigureCanvasAgg(fig)
    fig.subplots(rows, cols, squeeze=False)
    if not fit:
        fig.subplots_adjust(left=0.13, right=0.97, bottom=0.14, top=0.91, wspace=0.25)
    return fig


_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(href="#|url\(#)([^")]+)')


def _svg(fig: Figure, fig_id: str) -> str:
    """The figure as inline SVG: plain, dated nowhere, its ids prefixed with ``fig_id``."""
    from matplotlib import rc_context

    buffer = io.BytesIO()
    meta = {"Creator": None, "Date": None, "Format": None, "Type": None}
    with rc_context({"svg.hashsalt": fig_id, "svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", metadata=meta)
    text = buffer.getvalue().decode("utf-8")
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = re.sub(r"<!--.*?-->\s*", "", text, flags=re.S)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    text = text.replace("xlink:href=", "href=")
    prefix = fig_id + "-"
    text = _ID.sub(lambda m: f'id="{prefix}{m.group(1)}"', text)
    text = _REF.sub(lambda m: f"{m.group(1)}{prefix}{m.group(2)}", text)
    label = html.escape(fig_id, quote=True)
    return text.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1).strip()


def _axes(fig: Figure) -> list[Axes]:
    return list(fig.axes)


def _usd_axis(axis: Any) -> None:
    """Dollar tick labels; on a log axis spanning little more than a decade, labels at 1, 2 and
    5 (or every digit) of each decade, so that a narrow range is not left without one."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    if axis.get_scale() == "log":
        lo, hi = sorted(axis.get_view_interval())
        if lo > 0 and hi / lo < 4.0:
            axis.set_major_locator(LogLocator(subs=tuple(range(1, 10))))
        elif lo > 0 and hi / lo < 40.0:
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    else:
        axis.set_major_locator(MaxNLocator(nbins=6, min_n_ticks=3))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: _usd(v)))
    axis.set_minor_formatter(NullFormatter())


def _pct_axis(axis: Any, digits: int = 0) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{100 * v:.{digits}f}%"))
    axis.set_minor_formatter(NullFormatter())


def _log_pct_axis(axis: Any) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{100 * v:g}%"))
    axis.set_minor_formatter(NullFormatter())


# ---------------------------------------------------------------------------------------------
# HTML pieces
# ---------------------------------------------------------------------------------------------


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def class_slug(name: str) -> str:
    """A class name as it appears in figure ids: letters, digits, ``_`` and ``-`` kept, anything
    else ``-`` (so ``fit-distribution-rag_multi_hop``)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name) or "-"


def _slugs(names: Iterable[str]) -> dict[str, str]:
    """Unique slugs: a second class with the same slug gets ``-2``, and so on."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        base = class_slug(name)
        slug, k = base, 2
        while slug in used:
            slug, k = f"{base}-{k}", k + 1
        used.add(slug)
        out[name] = slug
    return out


def _figure(fig_id: str, svg: str | None, caption: str, extra: str = "") -> str:
    """A ``<figure>`` with its picture (or none, when ``svg`` is None) and caption; ``extra``
    (a table) follows the caption inside the figure."""
    cls = "" if svg is not None else ' class="missing"'
    body = svg + "\n" if svg is not None else ""
    return (
        f'<figure id="{_e(fig_id)}"{cls}>\n{body}<figcaption>{caption}</figcaption>\n'
        f"{extra}</figure>"
    )


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]], text_cols: int = 1) -> str:
    """An HTML table; the first ``text_cols`` columns left-aligned, the rest numbers."""
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            attr = ' class="text"' if 0 < i < text_cols else ""
            cells.append(f"<td{attr}>{_e(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f"<table><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>\n"
    )


def _page(title: str, body: list[str]) -> bytes:
    doc = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head>",
        "<body>",
        *body,
        f"<footer>costsim {_e(__version__)}</footer>",
        "</body>",
        "</html>",
    ]
    return ("\n".join(doc) + "\n").encode("utf-8")


def _notes(notes: Iterable[str]) -> str:
    items = "".join(f"<li>{_e(n)}</li>" for n in notes)
    return f'<ul class="notes">{items}</ul>' if items else ""


# ---------------------------------------------------------------------------------------------
# The fit
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# The forecast
# ---------------------------------------------------------------------------------------------


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
