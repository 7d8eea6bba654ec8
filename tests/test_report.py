"""The forecast's renderers on a hand-built `Forecast` (the engine is not run here)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from rich.measure import Measurement
from rich.text import Text

from costsim import __version__
from costsim.errors import CostsimError
from costsim.report import dashboard
from costsim.report.forecast import (
    forecast_to_dict,
    forecast_to_json,
    forecast_to_markdown,
    headline,
    render_forecast,
    write_plot,
    write_samples,
)
from costsim.simulate.bridge import BridgeStep
from costsim.simulate.forecast import (
    FORECAST_SCHEMA_VERSION,
    QUANTILES,
    ClassForecast,
    Forecast,
    quantile_with_error,
)

CONTRACT_KEYS = [
    "kind", "schema_version", "costsim_version", "scenario", "model_hash", "seed", "trials",
    "engine", "horizon_s", "resolution_s", "projected_requests", "deployment", "currency",
    "quantiles", "quantile_se", "quantile_ci95", "percentiles", "naive_linear", "ratio_to_naive",
    "pilot_mean_cost", "per_class", "bridge", "concentration", "cap_sensitivity", "notes",
]  # fmt: skip
QUANTILE_KEYS = ["p5", "p50", "p90", "p95", "p99", "mean"]
CLASSES = ("chat", "long_context", "agent_loop")
HAS_MPL = importlib.util.find_spec("matplotlib") is not None


def make_forecast(trials: int = 400, seed: int = 20240611) -> Forecast:
    """A small, internally consistent forecast: lognormal class totals from a fixed seed."""
    rng = np.random.default_rng(seed)
    requests = np.column_stack([
        rng.poisson(lam, trials).astype(float) for lam in (600_000, 60_000, 15_000)
    ])  # fmt: skip
    unit = np.column_stack([
        rng.lognormal(np.log(m), s, trials) for m, s in ((0.004, 0.05), (0.05, 0.2), (0.4, 0.6))
    ])  # fmt: skip
    class_totals = requests * unit
    totals = class_totals.sum(axis=1)
    quantiles, se, ci = {}, {}, {}
    for key, q in QUANTILES.items():
        est, err, lo, hi = quantile_with_error(totals, q)
        quantiles[key], se[key], ci[key] = est, err, (lo, hi)
    sd = float(totals.std(ddof=1) / np.sqrt(trials))
    quantiles["mean"], se["mean"] = float(totals.mean()), sd
    ci["mean"] = (quantiles["mean"] - 1.96 * sd, quantiles["mean"] + 1.96 * sd)
    pilot_unit = (0.0039, 0.048, 0.31)
    projected = 675_000.0
    naive_share = (0.9, 0.08, 0.02)
    pilot_mean = float(np.dot(naive_share, pilot_unit))
    naive = pilot_mean * projected
    mean_total = totals.mean()
    req_total = requests.sum(axis=1)
    per_class = {
        name: ClassForecast(
            name=name,
            request_share=float(np.mean(requests[:, j] / req_total)),
            cost_share=float(class_totals[:, j].mean() / mean_total),
            mean_cost=float(class_totals[:, j].mean()),
            naive_cost=pilot_unit[j] * requests[:, j].mean(),
            unit_cost_mean=float(unit[:, j].mean()),
            unit_cost_p5=float(np.quantile(unit[:, j], 0.05)),
            unit_cost_p50=float(np.quantile(unit[:, j], 0.5)),
            unit_cost_p95=float(np.quantile(unit[:, j], 0.95)),
            p95_contribution=float(class_totals[totals >= quantiles["p90"], j].mean()),
            repriced=name == "long_context",
            borrowed_from="long_context" if name == "agent_loop" else None,
        )
        for j, name in enumerate(CLASSES)
    }
    mix = sum(c.naive_cost for c in per_class.values())
    levels = [
        ("mix shift & pricing", mix, mix),
        ("unseen tail", mix * 1.03, mix * 1.12),
        ("uncertainty", quantiles["p50"], quantiles["p95"]),
    ]
    bridge, prev = [], (naive, naive)
    for driver, p50, p95 in levels:
        bridge.append(BridgeStep(driver, p50, p95, p50 - prev[0], p95 - prev[1]))
        prev = (p50, p95)
    return Forecast(
        scenario_name="launch.yaml",
        scenario_hash="0123456789abcdef",
        model_hash="fedcba9876543210",
        seed=seed,
        trials=trials,
        engine="strata",
        horizon_s=30 * 86400.0,
        resolution_s=3600.0,
        classes=CLASSES,
        totals=totals,
        class_totals=class_totals,
        class_requests=requests,
        projected_requests=projected,
        naive_linear=naive,
        pilot_mean_cost=pilot_mean,
        quantiles=quantiles,
        quantile_se=se,
        quantile_ci=ci,
        per_class=per_class,
        bridge=tuple(bridge),
        concentration={"top_1pct": 0.183, "top_5pct": 0.412},
        notes=("the pilot covered 6 days; weekly seasonality is assumed flat",),
        percentiles=np.quantile(totals, np.linspace(0, 1, 101)),
    )


@pytest.fixture(scope="module")
def fc() -> Forecast:
    return make_forecast()


def _close(a: float | str, b: float) -> bool:
    if a in ("inf", "-inf"):  # how the JSON writes an infinite figure (an unresolved quantile)
        return float(a) == b
    return a == pytest.approx(b, rel=1e-9, abs=0.0)


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------


def test_json_contract_keys_in_order(fc: Forecast) -> None:
    d = json.loads(json.dumps(forecast_to_dict(fc), allow_nan=False))
    assert list(d) == CONTRACT_KEYS
    for key in ("quantiles", "quantile_se", "quantile_ci95", "ratio_to_naive"):
        assert list(d[key]) == QUANTILE_KEYS, key
    assert list(d["scenario"]) == ["name", "hash", "document"]
    assert list(d["concentration"]) == ["top_1pct", "top_5pct"]
    assert list(d["per_class"]) == list(CLASSES)
    fields = list(ClassForecast.__dataclass_fields__)[1:]
    assert all(list(row) == fields for row in d["per_class"].values())
    assert all(list(s) == ["driver", "p50", "p95", "delta_p50", "delta_p95"] for s in d["bridge"])


def test_json_values_equal_the_forecast(fc: Forecast) -> None:
    d = json.loads(forecast_to_json(fc))
    assert d["kind"] == "costsim.forecast"
    assert d["schema_version"] == FORECAST_SCHEMA_VERSION
    assert d["costsim_version"] == __version__
    assert d["scenario"] == {
        "name": fc.scenario_name,
        "hash": fc.scenario_hash,
        "document": fc.scenario_document,
    }
    assert (d["model_hash"], d["seed"], d["trials"], d["engine"]) == (
        fc.model_hash, fc.seed, fc.trials, fc.engine,
    )  # fmt: skip
    assert d["currency"] == "USD"
    assert _close(d["horizon_s"], fc.horizon_s) and _close(d["resolution_s"], fc.resolution_s)
    assert _close(d["projected_requests"], fc.projected_requests)
    assert _close(d["naive_linear"], fc.naive_linear)
    assert _close(d["pilot_mean_cost"], fc.pilot_mean_cost)
    for k in QUANTILE_KEYS:
        assert _close(d["quantiles"][k], fc.quantiles[k])
        assert _close(d["quantile_se"][k], fc.quantile_se[k])
        assert all(map(_close, d["quantile_ci95"][k], fc.quantile_ci[k]))
        assert _close(d["ratio_to_naive"][k], fc.quantiles[k] / fc.naive_linear)
    for name, row in d["per_class"].items():
        c = fc.per_class[name]
        for field, value in row.items():
            expected = getattr(c, field)
            assert value == expected if not isinstance(value, float) else _close(value, expected)
    assert [s["driver"] for s in d["bridge"]] == [s.driver for s in fc.bridge]
    for got, step in zip(d["bridge"], fc.bridge, strict=True):
        assert all(
            _close(got[k], getattr(step, k)) for k in ("p50", "p95", "delta_p50", "delta_p95")
        )
    assert d["concentration"] == fc.concentration
    assert d["notes"] == list(fc.notes)


def test_json_without_naive_estimate_has_null_ratios(fc: Forecast) -> None:
    from dataclasses import replace

    d = forecast_to_dict(replace(fc, naive_linear=0.0, pilot_mean_cost=0.0))
    assert set(d["ratio_to_naive"].values()) == {None}
    assert "no naive estimate" in headline(replace(fc, naive_linear=0.0))


# ---------------------------------------------------------------------------------------------
# Markdown and rich
# ---------------------------------------------------------------------------------------------

_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def _tables(md: str) -> list[list[list[str]]]:
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*md.splitlines(), ""]:
        if line.startswith("|"):
            current.append([c.strip() for c in _CELL_SPLIT.split(line)[1:-1]])
        elif current:
            tables.append(current)
            current = []
    return tables


def test_markdown_tables_are_well_formed(fc: Forecast) -> None:
    md = forecast_to_markdown(fc)
    tables = _tables(md)
    assert len(tables) == 3  # quantiles, bridge, per class
    for table in tables:
        header, align, *rows = table
        assert all(re.fullmatch(r"-{3,}:?", cell) for cell in align)
        assert rows and all(len(row) == len(header) for row in (align, *rows))
    quantile_labels = [row[0] for row in tables[0][2:]]
    assert quantile_labels == ["P5", "P50", "P90", "P95", "P99", "mean"]
    assert [row[0] for row in tables[1][2:]] == ["naive", *(s.driver for s in fc.bridge)]
    class_cells = " ".join(row[0] for row in tables[2][2:])
    assert all(name in class_cells for name in CLASSES)
    assert "re-priced" in class_cells and "like long_context" in class_cells


def test_markdown_has_headline_and_concentration(fc: Forecast) -> None:
    md = forecast_to_markdown(fc)
    assert headline(fc).replace("$", "\\$") in md
    assert "18.3%" in md and "41.2%" in md
    # every amount is escaped, so GitHub never reads two of them as inline maths
    assert re.search(r"(?<!\\)\$", md) is None


def test_rich_render_contains_headline_and_classes(fc: Forecast) -> None:
    console = Console(record=True, width=160)
    render_forecast(fc, console)
    text = console.export_text()
    assert text.splitlines()[0] == headline(fc)
    pattern = r"P95 \$[\d,]+ is \d+\.\d\d\N{MULTIPLICATION SIGN} the naive estimate of \$[\d,]+"
    assert re.fullmatch(pattern, headline(fc))
    for name in CLASSES:
        assert name in text
    for label in ("P5", "P50", "P90", "P95", "P99", "mean", "naive linear estimate"):
        assert label in text
    assert "costliest 1% of requests carry 18.3%" in text
    assert f"note: {fc.notes[0]}" in text


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".pq", ".csv"])
def test_samples_round_trip(fc: Forecast, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"samples{suffix}"
    write_samples(fc, path)
    df = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    assert list(df.columns) == ["trial", "total_usd", *CLASSES]
    assert df["trial"].dtype.kind == "i"
    np.testing.assert_array_equal(df["trial"].to_numpy(), np.arange(fc.trials))
    np.testing.assert_array_equal(df["total_usd"].to_numpy(), fc.totals)
    np.testing.assert_array_equal(df[list(CLASSES)].to_numpy(), fc.class_totals)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_samples_overwrite_in_place(fc: Forecast, tmp_path: Path) -> None:
    path = tmp_path / "samples.parquet"
    path.write_bytes(b"old")
    write_samples(fc, path)
    assert len(pd.read_parquet(path)) == fc.trials


@pytest.mark.parametrize("name", ["samples.json", "samples", "samples.xlsx"])
def test_samples_bad_suffix(fc: Forecast, tmp_path: Path, name: str) -> None:
    with pytest.raises(CostsimError, match=r"\.parquet, \.pq, \.csv"):
        write_samples(fc, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not HAS_MPL, reason="matplotlib not installed")
@pytest.mark.parametrize("budget", [None, 31_000.0])
def test_plot_writes_png(fc: Forecast, tmp_path: Path, budget: float | None) -> None:
    path = tmp_path / "forecast.png"
    write_plot(fc, path, budget=budget)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_plot_without_matplotlib_says_how_to_install(
    fc: Forecast, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("matplotlib", "matplotlib.backends.backend_agg", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, module, None)  # `import` now raises ImportError
    with pytest.raises(CostsimError) as info:
        write_plot(fc, tmp_path / "forecast.png")
    assert str(info.value) == "--plot needs matplotlib: pip install 'costsim[plot]'"
    assert list(tmp_path.iterdir()) == []


def test_a_table_is_measured_as_wide_from_its_widest_rows_as_from_all() -> None:
    """The dashboard measures its tables from the rows holding some column's widest cell
    (`dashboard._widest`): as wide as from every row, at any set of columns."""
    rng = np.random.default_rng(3)
    words = ["$0.17", "12.3%", "—", "1.2k / 45k", "walk ±3.1% per 1h", "$12,345", "0.0%", "n/a"]
    columns = ["class", "a", "b", "c", "d"]
    console = Console(width=80, color_system=None)
    for _ in range(30):
        rows: list[list[str | Text]] = [
            [Text("c" * int(rng.integers(1, 40)), style="bold")]
            + [str(rng.choice(words)) + "9" * int(rng.integers(0, 4)) for _ in columns[1:]]
            for _ in range(int(rng.integers(1, 60)))
        ]
        idx = sorted(rng.choice(len(columns), int(rng.integers(2, 6)), replace=False).tolist())
        if 0 not in idx:
            idx = [0, *idx]

        def width(table_rows: list[list[str | Text]], idx: list[int] = idx) -> int:
            table = dashboard._build_table(
                "t", [columns[i] for i in idx], [[r[i] for i in idx] for r in table_rows]
            )
            options = console.options.update(max_width=10_000)
            return Measurement.get(console, options, table).maximum

        widest = dashboard._widest(rows, idx)
        assert len(widest) <= len(idx)
        assert width(widest) == width(rows)
