"""The forecast's renderers (DESIGN section 5): JSON, rich, Markdown, per-trial samples, a plot.

A `Forecast` is computed once by `forecast.run_forecast`; every function here only turns it into
text, a table or a picture. The only arithmetic is formatting and the ratio of a quantile to the
naive linear estimate. `forecast_to_dict` is the stable JSON contract for CI and other tools.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from ..errors import CostsimError
from ..model.file import _clean, dumps
from ..outputs import write_atomic
from ..simulate.forecast import QUANTILES, Forecast, forecast_version
from .dashboard import _num, _pct, _print_table, _usd

KIND = "costsim.forecast"
CURRENCY = "USD"
QUANTILE_KEYS = (*QUANTILES, "mean")
SAMPLE_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
_TIMES = "\N{MULTIPLICATION SIGN}"
MATPLOTLIB_EXTRA = "pip install 'costsim[plot]'"


# ---------------------------------------------------------------------------------------------
# Small shared pieces
# ---------------------------------------------------------------------------------------------


def _ratio(value: float, naive: float) -> float | None:
    """value / naive; None when there is no naive estimate to compare with."""
    return value / naive if naive > 0 and math.isfinite(naive) else None


def _times(r: float | None) -> str:
    return "—" if r is None else f"{r:.2f}{_TIMES}"


def _delta(v: float, scale: float = 0.0) -> str:
    """A signed amount: +$1,234 / -$56; floating-point dust relative to ``scale`` is $0."""
    if abs(v) <= 1e-9 * abs(scale):
        return "$0"
    return ("+" if v > 0 else "-") + _usd(abs(v))


def _unit_usd(v: float) -> str:
    """A per-request price: four significant digits, so that price times requests ≈ the total."""
    return f"${v:.4g}"


def _days(seconds: float) -> str:
    d = seconds / 86400
    return f"{d:,.0f}" if d == round(d) else f"{d:,.1f}"


def _label(key: str) -> str:
    return key.upper() if key in QUANTILES else key


def headline(fc: Forecast) -> str:
    """One sentence: the P95 against the naive linear estimate."""
    p95 = fc.quantiles["p95"]
    r = _ratio(p95, fc.naive_linear)
    if r is None:
        return f"P95 {_usd(p95)}; there is no naive estimate ({_usd(fc.naive_linear)})"
    return f"P95 {_usd(p95)} is {_times(r)} the naive estimate of {_usd(fc.naive_linear)}"


def _context(fc: Forecast) -> str:
    return (
        f"{_days(fc.horizon_s)} day{'' if fc.horizon_s == 86400 else 's'}, {fc.trials:,} "
        f"trials, seed {fc.seed}, "
        f"{_num(fc.projected_requests)} projected requests"
    )


def _naive_line(fc: Forecast) -> str:
    return (
        f"naive linear estimate: {_usd(fc.naive_linear)} = pilot mean "
        f"{_unit_usd(fc.pilot_mean_cost)}/req {_TIMES} {fc.projected_requests:,.0f} requests"
    )


def _concentration_parts(fc: Forecast) -> tuple[str, str] | None:
    top1, top5 = fc.concentration.get("top_1pct"), fc.concentration.get("top_5pct")
    if top1 is None and top5 is None:
        return None
    return _pct(top1), _pct(top5)


def _quantile_rows(fc: Forecast) -> list[list[str]]:
    return [
        [
            _label(k),
            _usd(fc.quantiles[k]),
            "unresolved" if k in fc.unresolved else "±" + _usd(fc.quantile_se[k]),
            _times(_ratio(fc.quantiles[k], fc.naive_linear)),
        ]
        for k in QUANTILE_KEYS
    ]


def _class_naive_line(fc: Forecast) -> str | None:
    """Why the classes' naive costs do not add up to the naive estimate, where they do not
    (within 1%): they take the production mix and the scenario's prices."""
    summed = sum(c.naive_cost for c in fc.per_class.values())
    if abs(summed - fc.naive_linear) <= 0.01 * max(abs(fc.naive_linear), 1e-300):
        return None
    return (
        f"naive cost: a class's pilot mean per request (re-priced where the scenario prices it) "
        f"{_TIMES} its projected requests, {_usd(summed)} in all; the naive estimate "
        f"({_usd(fc.naive_linear)}) keeps the pilot's mix and costs"
    )


_QUANTILE_COLUMNS = ["quantile", "forecast", "± MC s.e.", "vs naive"]
_BRIDGE_COLUMNS = ["driver", "Δ to P50", "Δ to P95", "running P50", "running P95"]
_CLASS_COLUMNS = [
    "class", "req %", "cost %", "unit p50", "unit p95", "mean cost", "naive cost", "at P95",
]  # fmt: skip
_QUANTILE_TITLE = "Cost over the horizon (Monte Carlo)"
_BRIDGE_TITLE = "Bridge from naive to forecast (drivers switched on in turn)"
_CLASS_TITLE = "Per class (unit cost per request; at P95: class cost in trials near the P95)"


def _bridge_rows(fc: Forecast) -> list[list[str]]:
    naive = _usd(fc.naive_linear)
    rows = [["naive", "", "", naive, naive]]
    rows += [
        [s.driver, _delta(s.delta_p50, s.p50), _delta(s.delta_p95, s.p95), _usd(s.p50), _usd(s.p95)]
        for s in fc.bridge
    ]
    return rows


def _class_marks(fc: Forecast, name: str) -> str:
    c = fc.per_class[name]
    marks = []
    if c.borrowed_from is not None:
        marks.append(f"like {c.borrowed_from}")
    if c.repriced:
        marks.append("re-priced")
    return f" ({', '.join(marks)})" if marks else ""


def _class_numbers(fc: Forecast, name: str) -> list[str]:
    c = fc.per_class[name]
    return [
        _pct(c.request_share), _pct(c.cost_share), _usd(c.unit_cost_p50), _usd(c.unit_cost_p95),
        _usd(c.mean_cost), _usd(c.naive_cost), _usd(c.p95_contribution),
    ]  # fmt: skip


def _cost_heavy(fc: Forecast, name: str) -> bool:
    c = fc.per_class[name]
    return c.cost_share > c.request_share


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------


def forecast_to_dict(fc: Forecast) -> dict[str, Any]:
    """The stable JSON contract (keys in a fixed order; floats to 10 significant digits)."""
    version = forecast_version()
    per_class = {}
    for name in fc.classes:
        row = asdict(fc.per_class[name])
        del row["name"]
        per_class[name] = row
    out = {
        "kind": KIND,
        "schema_version": version["schema_version"],
        "costsim_version": version["costsim_version"],
        "scenario": {
            "name": fc.scenario_name,
            "hash": fc.scenario_hash,
            "document": fc.scenario_document,
        },
        "model_hash": fc.model_hash,
        "seed": fc.seed,
        "trials": fc.trials,
        "engine": fc.engine,
        "horizon_s": fc.horizon_s,
        "resolution_s": fc.resolution_s,
        "projected_requests": fc.projected_requests,
        "deployment": fc.deployment,  # the option whose cost the totals are (None: no deployments)
        "currency": CURRENCY,
        "quantiles": {k: fc.quantiles[k] for k in QUANTILE_KEYS},
        "quantile_se": {k: fc.quantile_se[k] for k in QUANTILE_KEYS},
        "quantile_ci95": {k: list(fc.quantile_ci[k]) for k in QUANTILE_KEYS},
        "percentiles": list(fc.percentiles),
        "naive_linear": fc.naive_linear,
        "ratio_to_naive": {k: _ratio(fc.quantiles[k], fc.naive_linear) for k in QUANTILE_KEYS},
        "pilot_mean_cost": fc.pilot_mean_cost,
        "per_class": per_class,
        "bridge": [asdict(step) for step in fc.bridge],
        "concentration": {
            "top_1pct": fc.concentration.get("top_1pct"),
            "top_5pct": fc.concentration.get("top_5pct"),
        },
        "cap_sensitivity": None
        if fc.cap_sensitivity is None
        else {
            "classes": list(fc.cap_sensitivity.classes),
            **{
                f"cap_x{f:g}": {"mean": m, "p95": p}
                for f, m, p in zip(
                    fc.cap_sensitivity.factors,
                    fc.cap_sensitivity.mean,
                    fc.cap_sensitivity.p95,
                    strict=True,
                )
            },
        },
        "notes": list(fc.notes),
    }
    return dict(_clean(out))


def forecast_to_json(fc: Forecast) -> str:
    return dumps(forecast_to_dict(fc)) + "\n"


# ---------------------------------------------------------------------------------------------
# Rich
# ---------------------------------------------------------------------------------------------


def _rich_rows(rows: list[list[str]]) -> list[list[str | Text]]:
    return [list[str | Text](row) for row in rows]


def render_forecast(fc: Forecast, console: Console) -> None:
    """Print the forecast: headline, quantiles, naive estimate, bridge, classes, concentration."""
    console.print(Text(headline(fc), style="bold"))
    console.print(f"[bold]{escape(fc.scenario_name)}[/]: {_context(fc)}")
    _print_table(console, _QUANTILE_TITLE, _QUANTILE_COLUMNS, _rich_rows(_quantile_rows(fc)))
    console.print(_naive_line(fc))
    if fc.bridge:
        _print_table(console, _BRIDGE_TITLE, _BRIDGE_COLUMNS, _rich_rows(_bridge_rows(fc)))
    rows: list[list[str | Text]] = []
    for name in fc.classes:
        style = "bold" if _cost_heavy(fc, name) else ""
        label = Text(name, style=style)
        label.append(_class_marks(fc, name), style="dim")
        numbers: list[str | Text] = [*_class_numbers(fc, name)]
        numbers[1] = Text(str(numbers[1]), style=style)
        rows.append([label, *numbers])
    _print_table(console, _CLASS_TITLE, _CLASS_COLUMNS, rows, drop=("naive cost", "unit p50"))
    explained = _class_naive_line(fc)
    if explained is not None:
        console.print(Text(explained, style="dim"))
    conc = _concentration_parts(fc)
    if conc is not None:
        console.print(
            f"Concentration: the costliest 1% of requests carry [bold]{conc[0]}[/] of the cost, "
            f"5% carry [bold]{conc[1]}[/]."
        )
    for note in fc.notes:
        console.print(Text(f"note: {note}", style="dim"))


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


def _md(text: str) -> str:
    """Escape what GitHub would misread: `|` splits table cells, two `$` make inline maths."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("$", "\\$")


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _md_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    """A table: first column left-aligned, numbers right-aligned; every cell escaped."""
    align = ["---"] + ["---:"] * (len(columns) - 1)
    body = [_md_row([_md(c) for c in row]) for row in rows]
    return [_md_row([_md(c) for c in columns]), _md_row(align), *body]


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def forecast_to_markdown(fc: Forecast) -> str:
    """GitHub-flavoured Markdown with the same content as the rich report."""
    out = [
        f"### costsim forecast: {_md(fc.scenario_name)}",
        "",
        f"**{_md(headline(fc))}.**",
        "",
        _md(_context(fc)) + ".",
        "",
        f"**{_QUANTILE_TITLE}**",
        "",
        *_md_table(_QUANTILE_COLUMNS, _quantile_rows(fc)),
        "",
        _md(_sentence(_naive_line(fc))) + ".",
    ]
    if fc.bridge:
        out += ["", f"**{_md(_BRIDGE_TITLE)}**", "", *_md_table(_BRIDGE_COLUMNS, _bridge_rows(fc))]
    rows = [[name + _class_marks(fc, name), *_class_numbers(fc, name)] for name in fc.classes]
    out += ["", f"**{_md(_CLASS_TITLE)}**", "", *_md_table(_CLASS_COLUMNS, rows)]
    explained = _class_naive_line(fc)
    if explained is not None:
        out += ["", _md(explained)]
    conc = _concentration_parts(fc)
    if conc is not None:
        out += [
            "",
            f"Concentration: the costliest 1% of requests carry **{_md(conc[0])}** of the cost, "
            f"5% carry **{_md(conc[1])}**.",
        ]
    if fc.notes:
        out += ["", "Notes:", "", *(f"- {_md(note)}" for note in fc.notes)]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Files: per-trial samples and the plot
# ---------------------------------------------------------------------------------------------


def _sample_columns(fc: Forecast) -> dict[str, np.ndarray]:
    taken = {"trial", "total_usd"} & set(fc.classes)
    if taken:
        raise CostsimError(
            f"samples: class name {sorted(taken)[0]!r} collides with a fixed column "
            "('trial', 'total_usd'); rename the class in the scenario"
        )
    columns = {
        "trial": np.arange(fc.trials, dtype=np.int64),
        "total_usd": np.asarray(fc.totals, dtype=float),
    }
    for j, name in enumerate(fc.classes):
        columns[name] = np.asarray(fc.class_totals[:, j], dtype=float)
    return columns


def samples_bytes(fc: Forecast, fmt: str) -> bytes:
    """Per-trial totals (trial, total_usd, one column per class) as a Parquet or CSV file.

    Trials are numbered from 0 in simulation order. The Parquet file also carries the scenario
    hash, seed and engine in its schema metadata.
    """
    columns = _sample_columns(fc)
    if fmt == "csv":
        import pandas as pd

        return str(pd.DataFrame(columns).to_csv(index=False, lineterminator="\n")).encode()
    meta = {
        "costsim.kind": "costsim.forecast.samples",
        "costsim.scenario_hash": fc.scenario_hash,
        "costsim.model_hash": fc.model_hash,
        "costsim.seed": str(fc.seed),
        "costsim.engine": fc.engine,
        "costsim.currency": CURRENCY,
    }
    table = pa.table(columns).replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def sample_format(path: str | Path) -> str:
    """``parquet`` or ``csv``, from the suffix of ``path``."""
    fmt = SAMPLE_SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        allowed = ", ".join(SAMPLE_SUFFIXES)
        raise CostsimError(
            f"samples file {str(path)!r}: unknown suffix {Path(path).suffix!r}; expected one of "
            f"{allowed}"
        )
    return fmt


def write_samples(fc: Forecast, path: str | Path) -> None:
    """`samples_bytes` written atomically to ``path``, in the format its suffix names."""
    write_atomic(path, samples_bytes(fc, sample_format(path)))


PLOT_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def require_matplotlib(option: str = "--plot") -> None:
    """Say what to install (a `CostsimError` naming ``option``, what the user asked for that
    draws: ``--plot``, ``--html``) when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        raise CostsimError(f"{option} needs matplotlib: {MATPLOTLIB_EXTRA}") from None


def plot_format(path: str | Path) -> str:
    """``png``, ``svg`` or ``pdf``, from the suffix of ``path``."""
    fmt = PLOT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise CostsimError(
            f"plot file {str(path)!r}: unknown suffix {Path(path).suffix!r}; expected one of "
            f"{', '.join(PLOT_FORMATS)}"
        )
    return fmt


def write_plot(fc: Forecast, path: str | Path, budget: float | None = None) -> None:
    """`plot_bytes` written atomically to ``path``, in the format its suffix names."""
    write_atomic(path, plot_bytes(fc, plot_format(path), budget))


def totals_histogram(
    ax: Any,
    fc: Forecast,
    budget: float | None,
    colors: tuple[str, str, str] = ("grey", "tab:blue", "tab:red"),
    legend_size: float | None = None,
) -> None:
    """Draw the per-trial totals on ``ax`` with the naive estimate, P50, P95 and the budget
    (``colors``: naive, P50, P95). A long right tail is cut at 1.5 P99 (or the budget, if
    further out); the trials beyond are counted in the legend."""
    totals = np.asarray(fc.totals, dtype=float)
    marks = [
        ("naive", fc.naive_linear, colors[0], "--"),
        ("P50", fc.quantiles["p50"], colors[1], "-"),
        ("P95", fc.quantiles["p95"], colors[2], "-"),
    ]
    if budget is not None:
        marks.append(("budget", budget, "black", ":"))
    lo = min(float(totals.min()), *(m[1] for m in marks))
    hi = max(min(float(totals.max()), 1.5 * fc.quantiles["p99"]), *(m[1] for m in marks))
    if hi <= lo:
        hi = lo + max(abs(lo), 1.0) * 0.01
    pad = 0.02 * (hi - lo)
    beyond = int(np.count_nonzero(totals > hi))
    ax.hist(totals, bins=60, range=(lo, hi), color=colors[0], alpha=0.45, label="trials")
    for label, value, color, style in marks:
        ax.axvline(
            value, color=color, linestyle=style, linewidth=1.6, label=f"{label} {_usd(value)}"
        )
    if beyond:
        ax.plot([], [], " ", label=f"{beyond:,} trials above {_usd(hi)} not shown")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_xlabel(f"total cost over {_days(fc.horizon_s)} days (USD)")
    ax.set_ylabel("trials")
    ax.legend(loc="upper right", frameon=False, fontsize=legend_size)


def plot_bytes(fc: Forecast, fmt: str = "png", budget: float | None = None) -> bytes:
    """A histogram of per-trial totals with the naive estimate, P50, P95 and the budget, as a
    PNG, SVG or PDF file; the same forecast gives the same bytes (no dates in the metadata).

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend switch). A long right
    tail is cut at 1.5 P99 (or the budget, if further out); the trials beyond are counted in
    the legend.
    """
    require_matplotlib()
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    if budget is not None and not math.isfinite(budget):
        raise CostsimError(f"--budget: expected a finite amount in USD, got {budget!r}")
    fig = Figure(figsize=(9, 5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    totals_histogram(ax, fc, budget)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: _usd(x)))
    ax.set_title(f"{fc.scenario_name}: {fc.trials:,} trials, seed {fc.seed}")
    software = f"costsim {forecast_version()['costsim_version']}"
    comment = f"scenario {fc.scenario_hash}, seed {fc.seed}, engine {fc.engine}"
    metadata: dict[str, dict[str, Any]] = {
        "png": {"Software": software, "Comment": comment},
        "svg": {"Creator": software, "Description": comment, "Date": None},
        "pdf": {"Creator": software, "Subject": comment, "CreationDate": None},
    }
    info = metadata[fmt]
    buffer = io.BytesIO()
    with rc_context({"svg.hashsalt": fc.scenario_hash or "costsim"}):
        fig.savefig(buffer, format=fmt, metadata=info)
    return buffer.getvalue()
