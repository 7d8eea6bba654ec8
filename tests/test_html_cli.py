"""`--html` on `fit`, `forecast` and `check`: the report is written where asked, with its figures,
and the same run gives the same bytes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import one_error, run

pytest.importorskip("matplotlib")
ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "launch_month.yaml"


def _ids(html: bytes) -> set[str]:
    return set(re.findall(r'<figure id="([^"]+)"', html.decode()))


def test_fit_html_has_the_diagnostics_of_every_class(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 3000
    pilot = tmp_path / "pilot.csv"
    pd.DataFrame({
        "query_class": rng.choice(["a", "b"], n),
        "cost_usd": np.exp(rng.normal(-5, 1, n)),
        "timestamp": 1.7e9 + np.sort(rng.uniform(0, 3 * 86400, n)),
    }).to_csv(pilot, index=False)  # fmt: skip
    out = tmp_path / "fit.html"
    result = run("fit", pilot, "-o", tmp_path / "m.json", "--html", out, "-q")
    assert result.exit_code == 0, result.stderr
    ids = _ids(out.read_bytes())
    for cls in ("a", "b"):
        for fig in ("distribution", "tail-qq", "threshold-stability", "drift"):
            assert f"fit-{fig}-{cls}" in ids
    assert {"fit-shares", "fit-concentration"} <= ids


def test_forecast_and_check_html(tmp_path: Path) -> None:
    a, b = tmp_path / "a.html", tmp_path / "b.html"
    for path in (a, b):
        result = run("forecast", SCENARIO, "--trials", 300, "--no-bridge", "--html", path, "-q")
        assert result.exit_code == 0, result.stderr
    assert a.read_bytes() == b.read_bytes()
    assert {"forecast-distribution", "forecast-classes", "forecast-daily"} <= _ids(a.read_bytes())
    c = tmp_path / "c.html"
    checked = run("check", SCENARIO, "--max", "p95=1e9", "--trials", 300, "--html", c)
    assert checked.exit_code == 0, checked.stderr
    assert 'id="check-verdicts"' in c.read_text()
    two = run("check", SCENARIO, SCENARIO, "--max", "p95=1e9", "--html", tmp_path / "d.html")
    one_error(two, "--html", "one scenario")
    assert not (tmp_path / "d.html").exists()
    wrong = run("forecast", SCENARIO, "--html", tmp_path / "e.png")
    one_error(wrong, "--html")
