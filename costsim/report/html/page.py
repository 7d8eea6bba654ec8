"""What the HTML reports share: the page (inline CSS, tables, notes, figures), and
matplotlib figures made deterministic and inlined as plain SVG.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ... import __version__
from ..dashboard import _usd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


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
