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

Rooms: `page` (what both reports share: the page, its tables, deterministic inline SVG),
`fit` and `forecast` (one report each).
"""

from .fit import fit_html
from .forecast import forecast_html
from .page import FIT_FIGURES, class_slug

__all__ = ["FIT_FIGURES", "class_slug", "fit_html", "forecast_html"]
