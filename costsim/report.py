"""The forecast's renderers (DESIGN section 5): JSON, rich, Markdown, per-trial samples, a plot.

A `Forecast` is computed once by `forecast.run_forecast`; every function here only turns it into
text, a table or a picture. The only arithmetic is formatting and the ratio of a quantile to the
naive linear estimate. `forecast_to_dict` is the stable JSON contract for CI and other tools.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from .dashboard import _num, _pct, _print_table, _usd
from .errors import CostsimError
from .forecast import QUANTILES, Forecast, forecast_version
from .modelfile import _clean, _umask, dumps, write_atomic

KIND = "costsim.forecast"
CURRENCY = "USD"
QUANTILE_KEYS = (*QUANTILES, "mean")
SAMPLE_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
_TIMES = "\N{MULTIPLICATION SIGN}"
PLOT_MISSING = "--plot needs matplotlib: pip install 'costsim[plot]'"


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
        f"{_days(fc.horizon_s)} days, {fc.trials:,} trials, seed {fc.seed}, "
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
            "±" + _usd(fc.quantile_se[k]),
            _times(_ratio(fc.quantiles[k], fc.naive_linear)),
        ]
        for k in QUANTILE_KEYS
    ]


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


def _replace_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Let ``write`` fill a temporary file in the same folder, then rename it onto ``path``."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


def write_samples(fc: Forecast, path: str | Path) -> None:
    """Per-trial totals (trial, total_usd, one column per class), Parquet or CSV by suffix.

    Trials are numbered from 0 in simulation order. The Parquet file also carries the scenario
    hash, seed and engine in its schema metadata.
    """
    path = Path(path)
    fmt = SAMPLE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        allowed = ", ".join(SAMPLE_SUFFIXES)
        raise CostsimError(
            f"samples file {str(path)!r}: unknown suffix {path.suffix!r}; expected one of {allowed}"
        )
    columns = _sample_columns(fc)
    if fmt == "csv":
        import pandas as pd

        write_atomic(path, pd.DataFrame(columns).to_csv(index=False, lineterminator="\n"))
        return
    meta = {
        "costsim.kind": "costsim.forecast.samples",
        "costsim.scenario_hash": fc.scenario_hash,
        "costsim.model_hash": fc.model_hash,
        "costsim.seed": str(fc.seed),
        "costsim.engine": fc.engine,
        "costsim.currency": CURRENCY,
    }
    table = pa.table(columns).replace_schema_metadata(meta)
    _replace_atomic(path, lambda tmp: pq.write_table(table, tmp))


def write_plot(fc: Forecast, path: str | Path, budget: float | None = None) -> None:
    """A PNG histogram of per-trial totals with the naive estimate, P50, P95 and the budget.

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend switch). A long right
    tail is cut at 1.5 P99 (or the budget, if further out); the trials beyond are counted in
    the legend.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        raise CostsimError(PLOT_MISSING) from None
    if budget is not None and not math.isfinite(budget):
        raise CostsimError(f"--budget: expected a finite amount in USD, got {budget!r}")
    path = Path(path)
    totals = np.asarray(fc.totals, dtype=float)
    marks = [
        ("naive", fc.naive_linear, "grey", "--"),
        ("P50", fc.quantiles["p50"], "tab:blue", "-"),
        ("P95", fc.quantiles["p95"], "tab:red", "-"),
    ]
    if budget is not None:
        marks.append(("budget", budget, "black", ":"))
    lo = min(float(totals.min()), *(m[1] for m in marks))
    hi = max(min(float(totals.max()), 1.5 * fc.quantiles["p99"]), *(m[1] for m in marks))
    if hi <= lo:
        hi = lo + max(abs(lo), 1.0) * 0.01
    pad = 0.02 * (hi - lo)
    beyond = int(np.count_nonzero(totals > hi))

    fig = Figure(figsize=(9, 5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.hist(totals, bins=60, range=(lo, hi), color="tab:gray", alpha=0.45, label="trials")
    for label, value, color, style in marks:
        ax.axvline(
            value, color=color, linestyle=style, linewidth=1.6, label=f"{label} {_usd(value)}"
        )
    if beyond:
        ax.plot([], [], " ", label=f"{beyond:,} trials above {_usd(hi)} not shown")
    ax.set_xlim(lo - pad, hi + pad)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: _usd(x)))
    ax.set_xlabel(f"total cost over {_days(fc.horizon_s)} days (USD)")
    ax.set_ylabel("trials")
    ax.set_title(f"{fc.scenario_name}: {fc.trials:,} trials, seed {fc.seed}")
    ax.legend(loc="upper right", frameon=False)
    info = {
        "Software": f"costsim {forecast_version()['costsim_version']}",
        "Comment": f"scenario {fc.scenario_hash}, seed {fc.seed}, engine {fc.engine}",
    }
    _replace_atomic(path, lambda tmp: fig.savefig(tmp, format="png", metadata=info))
