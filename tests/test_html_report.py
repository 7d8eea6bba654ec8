"""The one-file HTML reports (issue 12): every figure present, every image decodable, nothing
fetched from the network, the same bytes twice, and (where a headless browser exists) a page
that renders."""

from __future__ import annotations

import base64
import dataclasses
import importlib.util
import re
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from synth import SplicedTruth, drifting_costs, make_log

from costsim.check import Exceedance, Limit, evaluate
from costsim.errors import CostsimError
from costsim.model.file import load_model
from costsim.model.fit import fit_model
from costsim.report.dashboard import summarize_fit
from costsim.report.diagnostics import class_contributions, daily_fan, fit_diagnostics
from costsim.scenario import load_scenario
from costsim.simulate.forecast import Forecast, run_forecast

HAS_MPL = importlib.util.find_spec("matplotlib") is not None
needs_mpl = pytest.mark.skipif(not HAS_MPL, reason="matplotlib not installed")
ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
CHROMIUM = Path("/usr/bin/chromium")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CLASSES = {"chat": "chat", "agent loop": "agent-loop", "rare": "rare"}  # name -> id slug
FIT_KINDS = ("distribution", "tail-qq", "threshold-stability", "drift")
FORECAST_IDS = ("forecast-distribution", "forecast-bridge", "forecast-classes", "forecast-daily")


# ---------------------------------------------------------------------------------------------
# Parsing a report
# ---------------------------------------------------------------------------------------------


class _Report(HTMLParser):
    """Figures (id -> caption text, number of pictures), every attribute value, the tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.figures: dict[str, dict[str, Any]] = {}
        self.ids: list[str] = []
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str, str]] = []
        self._figure: str | None = None
        self._caption = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        a = {k: v or "" for k, v in attrs}
        for k, v in a.items():
            self.attributes.append((tag, k, v))
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "figure":
            self._figure = a["id"]
            self.figures[a["id"]] = {"caption": "", "images": 0}
        elif tag == "figcaption":
            self._caption = True
        elif self._figure is not None and (
            tag == "svg" or (tag == "img" and a.get("src", "").startswith("data:"))
        ):
            self.figures[self._figure]["images"] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self._figure = None
        elif tag == "figcaption":
            self._caption = False

    def handle_data(self, data: str) -> None:
        if self._caption and self._figure is not None:
            self.figures[self._figure]["caption"] += data


def parse(report: bytes) -> _Report:
    parser = _Report()
    parser.feed(report.decode("utf-8"))
    parser.close()
    return parser


def decode_images(text: str) -> int:
    """Parse every inline SVG as XML and decode every data URI; return how many there were."""
    count = 0
    for svg in re.findall(r"<svg\b.*?</svg>", text, flags=re.S):
        root = ET.fromstring(svg)
        assert root.tag == "svg"
        assert len(root) > 0
        count += 1
    for mime, data in re.findall(r'src="data:([^;"]+);base64,([^"]+)"', text):
        raw = base64.b64decode(data, validate=True)
        if mime == "image/png":
            assert raw.startswith(PNG_SIGNATURE)
        else:
            assert mime == "image/svg+xml"
            ET.fromstring(raw)
        count += 1
    return count


def assert_self_contained(report: bytes, parsed: _Report) -> None:
    text = report.decode("utf-8")
    assert "http://" not in text and "https://" not in text
    assert not {"script", "link", "iframe", "object", "embed"} & parsed.tags
    for tag, name, value in parsed.attributes:
        if name in ("href", "src", "xlink:href", "action", "poster", "srcset"):
            assert value.startswith(("#", "data:")), f"<{tag} {name}={value!r}> leaves the file"
        assert not name.startswith("on"), f"<{tag} {name}>: no scripts"
    for ref in re.findall(r"url\(([^)]*)\)", text):
        assert ref.strip("'\"").startswith("#"), f"url({ref}) leaves the file"
    assert "@import" not in text and "@font-face" not in text
    duplicated = {i for i in parsed.ids if parsed.ids.count(i) > 1}
    assert not duplicated, f"ids used twice: {sorted(duplicated)[:5]}"


# ---------------------------------------------------------------------------------------------
# Fixtures: a small fitted pilot, a small forecast of the bundled scenario
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pilot() -> Any:
    rng = np.random.default_rng(20260412)
    ts_chat, chat = drifting_costs(72, 60, 0.05, rng)
    agent = SplicedTruth(xi=0.3, median=0.05).sample(3000, rng)
    rare = SplicedTruth(xi=0.2).sample(40, rng)
    span = (float(ts_chat.min()), float(ts_chat.max()))
    log = make_log(
        {"chat": chat, "agent loop": agent, "rare": rare},
        timestamps={
            "chat": ts_chat,
            "agent loop": np.sort(rng.uniform(*span, agent.size)),
            "rare": np.sort(rng.uniform(*span, rare.size)),
        },
        source="pilot.parquet",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small class borrows its shape, and says so
        model = fit_model(log)
    return log, model


@pytest.fixture(scope="module")
def fit_reports(pilot: Any) -> tuple[bytes, bytes]:
    pytest.importorskip("matplotlib")
    from costsim.report.html import fit_html

    log, model = pilot
    first = fit_html(summarize_fit(model), fit_diagnostics(log, model))
    second = fit_html(summarize_fit(model), fit_diagnostics(log, model))
    return first, second


def _with_daily(fc: Forecast) -> Forecast:
    """The forecast with per-day costs: its own when it has them; otherwise (until `Forecast`
    records them) days of the totals spread over the horizon, to draw the fan chart from."""
    if getattr(fc, "daily", None) is not None:
        return fc
    days = round(fc.horizon_s / 86400)
    rng = np.random.default_rng(3)
    share = rng.dirichlet(np.full(days, 50.0), size=fc.trials)
    copy = dataclasses.replace(fc)
    object.__setattr__(copy, "daily", fc.totals[:, None] * share)
    object.__setattr__(copy, "daily_naive", np.full(days, fc.naive_linear / days))
    return copy


@pytest.fixture(scope="module")
def forecast() -> Forecast:
    scenario = load_scenario(SCENARIOS / "launch_month.yaml")
    assert scenario.model_path is not None
    return run_forecast(dataclasses.replace(scenario, trials=500), load_model(scenario.model_path))


@pytest.fixture(scope="module")
def comparison() -> Any:
    from costsim.simulate.compare import run_compare

    scenario = load_scenario(SCENARIOS / "deployments.yaml")
    assert scenario.model_path is not None
    return run_compare(dataclasses.replace(scenario, trials=300), load_model(scenario.model_path))


@pytest.fixture(scope="module")
def forecast_reports(forecast: Forecast, comparison: Any) -> tuple[bytes, bytes]:
    pytest.importorskip("matplotlib")
    from costsim.report.html import forecast_html

    fc = _with_daily(forecast)
    check = evaluate(fc, [Limit("p95", 180_000.0, 150_000.0)], [Exceedance(200_000.0, 0.05)])

    def render() -> bytes:
        return forecast_html(fc, budget=180_000.0, check=check, comparison=comparison)

    return render(), render()


# ---------------------------------------------------------------------------------------------
# The fit report
# ---------------------------------------------------------------------------------------------


@needs_mpl
def test_fit_report_has_every_figure_with_a_caption(fit_reports: tuple[bytes, bytes]) -> None:
    parsed = parse(fit_reports[0])
    expected = {f"fit-{kind}-{slug}" for slug in CLASSES.values() for kind in FIT_KINDS}
    expected |= {"fit-shares", "fit-concentration"}
    assert expected <= set(parsed.figures)
    for fig_id, fig in parsed.figures.items():
        assert fig["caption"].strip(), f"{fig_id}: no caption"
    drawn = {k for k, f in parsed.figures.items() if f["images"] == 1}
    # the small class borrows its tail shape: no stability plot of its own, and the caption
    # says why; everything else is drawn
    assert expected - drawn == {"fit-threshold-stability-rare"}
    assert "borrowed" in parsed.figures["fit-threshold-stability-rare"]["caption"]


@needs_mpl
def test_fit_report_images_decode_and_nothing_is_fetched(fit_reports: tuple[bytes, bytes]) -> None:
    report = fit_reports[0]
    parsed = parse(report)
    assert decode_images(report.decode("utf-8")) == sum(
        f["images"] for f in parsed.figures.values()
    )
    assert_self_contained(report, parsed)


@needs_mpl
def test_fit_report_is_byte_identical(fit_reports: tuple[bytes, bytes]) -> None:
    assert fit_reports[0] == fit_reports[1]


def test_fit_diagnostics_follow_the_model(pilot: Any) -> None:
    log, model = pilot
    diag = fit_diagnostics(log, model)
    assert [c.name for c in diag.classes] == list(model.classes)
    summary = summarize_fit(model)
    for c, row in zip(diag.classes, summary.classes, strict=True):
        assert c.survival is not None
        s = c.survival
        assert np.all(np.diff(s.x) > 0) and np.all(np.diff(s.empirical) <= 0)
        assert s.empirical[0] <= 1.0 and s.empirical[-1] == 0.0
        # the drift's filtered level ends where the fit's does
        assert c.drift is not None
        fit = model.classes[c.name].drift
        if fit.estimated and fit.kind != "none":
            assert c.drift.level[-1] == pytest.approx(fit.level_end, abs=1e-9)
        if c.tail_qq is not None:
            q = c.tail_qq
            assert np.all(q.lower <= q.fitted + 1e-12) and np.all(q.fitted <= q.upper + 1e-12)
        if c.stability is not None:
            st = c.stability
            assert np.all(st.xi_lower <= st.xi) and np.all(st.xi <= st.xi_upper)
            assert st.chosen in st.threshold
        assert row.name == c.name
    # the shares are the dashboard's
    assert diag.shares.cost_share is not None
    for i, row in enumerate(summary.classes):
        assert diag.shares.request_share[i] == pytest.approx(row.request_share)
        assert diag.shares.cost_share[i] == pytest.approx(row.cost_share)
    # the concentration curve meets the model's top 1% and 5% figures, and rises to 1
    conc = diag.concentration
    assert conc is not None and model.concentration is not None
    for key, x in (("top_1pct", 0.01), ("top_5pct", 0.05)):
        assert conc.cost_share[list(conc.top).index(x)] == pytest.approx(model.concentration[key])
    assert np.all(np.diff(conc.cost_share) >= 0) and conc.cost_share[-1] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# The forecast report
# ---------------------------------------------------------------------------------------------


@needs_mpl
def test_forecast_report_has_every_figure(forecast_reports: tuple[bytes, bytes]) -> None:
    parsed = parse(forecast_reports[0])
    expected = {*FORECAST_IDS, "compare-options"}
    assert expected <= set(parsed.figures)
    for fig_id in expected:
        assert parsed.figures[fig_id]["images"] == 1, fig_id
        assert parsed.figures[fig_id]["caption"].strip(), fig_id
    text = forecast_reports[0].decode("utf-8")
    # the verdicts come first
    assert "check-verdicts" in parsed.ids
    assert text.index('id="check-verdicts"') < text.index('id="forecast-distribution"')


@needs_mpl
def test_forecast_report_images_decode_and_nothing_is_fetched(
    forecast_reports: tuple[bytes, bytes],
) -> None:
    report = forecast_reports[0]
    parsed = parse(report)
    assert decode_images(report.decode("utf-8")) == sum(
        f["images"] for f in parsed.figures.values()
    )
    assert_self_contained(report, parsed)


@needs_mpl
def test_forecast_report_is_byte_identical(forecast_reports: tuple[bytes, bytes]) -> None:
    assert forecast_reports[0] == forecast_reports[1]


@needs_mpl
def test_forecast_report_tables_show_the_forecast_numbers(
    forecast: Forecast, forecast_reports: tuple[bytes, bytes]
) -> None:
    from costsim.report.dashboard import _usd

    text = forecast_reports[0].decode("utf-8")
    for key in ("p50", "p95"):
        assert _usd(forecast.quantiles[key]) in text
    for step in forecast.bridge:
        assert _usd(step.p95) in text
    for name in forecast.classes:
        assert _usd(forecast.per_class[name].p95_contribution) in text


@needs_mpl
def test_daily_figure_is_omitted_with_a_reason_without_daily_costs(forecast: Forecast) -> None:
    from costsim.report.html import forecast_html

    bare = dataclasses.replace(forecast)
    for name in ("daily", "daily_naive"):
        if hasattr(bare, name):
            object.__setattr__(bare, name, None)
    assert daily_fan(bare) is None
    parsed = parse(forecast_html(bare))
    fig = parsed.figures["forecast-daily"]
    assert fig["images"] == 0 and "no per-day costs" in fig["caption"]
    assert {"forecast-distribution", "forecast-bridge", "forecast-classes"} <= {
        k for k, f in parsed.figures.items() if f["images"] == 1
    }


def test_daily_fan_and_contributions(forecast: Forecast) -> None:
    rng = np.random.default_rng(1)
    daily = rng.lognormal(np.log(1000.0), 0.3, size=(400, 30))
    fan = daily_fan(SimpleNamespace(daily=daily, daily_naive=np.full(30, 900.0)))  # type: ignore[arg-type]
    assert fan is not None and fan.day.tolist() == list(range(1, 31))
    assert np.all(fan.at(0.05) <= fan.at(0.5)) and np.all(fan.at(0.5) <= fan.at(0.95))
    assert fan.at(0.5) == pytest.approx(np.quantile(daily, 0.5, axis=0))
    contrib = class_contributions(forecast)
    assert contrib.classes == forecast.classes
    for j, name in enumerate(forecast.classes):
        c = forecast.per_class[name]
        assert contrib.at_p95[j] == c.p95_contribution
        assert contrib.naive[j] == c.naive_cost
    # at the P50 the classes add up to about the forecast's P50
    assert contrib.at_p50.sum() == pytest.approx(forecast.quantiles["p50"], rel=0.05)


# ---------------------------------------------------------------------------------------------
# Without matplotlib; in a browser
# ---------------------------------------------------------------------------------------------


def test_html_without_matplotlib_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, pilot: Any, forecast: Forecast
) -> None:
    from costsim.report.html import fit_html, forecast_html

    for module in ("matplotlib", "matplotlib.backends.backend_agg", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, module, None)
    log, model = pilot
    message = "--html needs matplotlib: pip install 'costsim[plot]'"
    with pytest.raises(CostsimError) as info:
        fit_html(summarize_fit(model), fit_diagnostics(log, model))
    assert str(info.value) == message
    with pytest.raises(CostsimError) as info:
        forecast_html(forecast)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (
            [
                "fit",
                str(SCENARIOS / "pilot.parquet"),
                "-o",
                "{tmp}/m.json",
                "--html",
                "{tmp}/r.html",
            ],
            "--html",
        ),
        (["forecast", str(SCENARIOS / "launch_month.yaml"), "--html", "{tmp}/r.html"], "--html"),
        (["forecast", str(SCENARIOS / "launch_month.yaml"), "--plot", "{tmp}/r.png"], "--plot"),
        (["check", str(SCENARIOS / "launch_month.yaml"), "--html", "{tmp}/r.html"], "--html"),
    ],
    ids=["fit --html", "forecast --html", "forecast --plot", "check --html"],
)
def test_cli_without_matplotlib_names_the_option_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: list[str], option: str
) -> None:
    from typer.testing import CliRunner

    from costsim.cli import app

    for module in ("matplotlib", "matplotlib.backends.backend_agg", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, module, None)
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.strip().splitlines() == [
        f"error: {option} needs matplotlib: pip install 'costsim[plot]'"
    ]
    assert not list(tmp_path.iterdir())  # refused before any work: nothing written


def _colours(png: Path) -> int:
    from matplotlib.image import imread

    pixels = imread(png)
    flat = pixels.reshape(-1, pixels.shape[-1]) if pixels.ndim == 3 else pixels.reshape(-1, 1)
    return int(np.unique(flat, axis=0).shape[0])


@needs_mpl
@pytest.mark.parametrize("which", ["fit", "forecast"])
def test_report_renders_in_a_headless_browser(
    which: str,
    tmp_path: Path,
    fit_reports: tuple[bytes, bytes],
    forecast_reports: tuple[bytes, bytes],
) -> None:
    browser = str(CHROMIUM) if CHROMIUM.exists() else None
    if browser is None:
        pytest.skip(f"no headless browser: {CHROMIUM} not found")
    page = tmp_path / f"{which}.html"
    page.write_bytes(fit_reports[0] if which == "fit" else forecast_reports[0])
    shot = tmp_path / f"{which}.png"
    cmd = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
        "--window-size=1100,1600", f"--screenshot={shot}", page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, timeout=120, check=False, cwd=tmp_path)
    assert shot.exists(), f"no screenshot (exit {done.returncode}): {done.stderr[-500:]!r}"
    assert shot.read_bytes().startswith(PNG_SIGNATURE)
    assert _colours(shot) > 1, "the page rendered blank"
