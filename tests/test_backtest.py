"""`costsim backtest`: fit the past of a log, forecast its future, score the forecast.

Forecast numbers are never hard-coded (the model and engine change under these tests): the
tests check the contract (keys, types, order of quantiles, ranges), the actual cost against an
independent pandas computation, determinism, refusals, and calibration on a log with a known,
stationary truth.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from synth import make_log
from typer.testing import CliRunner

from costsim.backtest import BacktestError, interval_score, parse_split, run_backtest
from costsim.cli import app
from costsim.report.backtest import backtest_to_dict, backtest_to_markdown

ROOT = Path(__file__).resolve().parents[1]
PILOT = ROOT / "scenarios" / "pilot.parquet"
QUANTILE_KEYS = ["p5", "p25", "p50", "p75", "p95"]
runner = CliRunner()


def _run(*args: str) -> Any:
    return runner.invoke(app, ["backtest", *args])


def _json(*args: str) -> dict[str, Any]:
    result = _run(*args, "--json", "-")
    assert result.exit_code == 0, result.stderr
    return dict(json.loads(result.stdout))


@pytest.fixture(scope="module")
def split_half() -> dict[str, Any]:
    return _json(str(PILOT), "--split", "0.5")


@pytest.fixture(scope="module")
def rolling_three() -> dict[str, Any]:
    return _json(str(PILOT), "--split", "0.5", "--rolling", "3")


@pytest.fixture(scope="module")
def pilot_frame() -> pd.DataFrame:
    return pd.read_parquet(PILOT, columns=["timestamp", "cost_usd"])


def _actual(frame: pd.DataFrame, split: str, horizon_s: float) -> float:
    """The window's cost, computed independently: [split, split + horizon), and a window that
    reaches the log's last request includes it."""
    t = frame["timestamp"]
    start = pd.Timestamp(split)
    stop = start + pd.Timedelta(seconds=horizon_s)
    inside = (t >= start) & ((t < stop) | (stop >= t.max()))
    return float(frame.loc[inside, "cost_usd"].sum())


def _check_contract(doc: dict[str, Any], origins: int, frame: pd.DataFrame) -> None:
    assert doc["kind"] == "costsim.backtest"
    assert doc["schema_version"] == 1
    assert isinstance(doc["seed"], int) and isinstance(doc["trials"], int)
    assert isinstance(doc["notes"], list) and all(isinstance(n, str) for n in doc["notes"])
    assert len(doc["origins"]) == origins
    for o in doc["origins"]:
        assert isinstance(o["split"], str)
        datetime.fromisoformat(o["split"].replace("Z", "+00:00"))
        assert isinstance(o["horizon_s"], float) and o["horizon_s"] > 0
        for key in ("actual", "naive_linear", "pit", "interval_score"):
            assert isinstance(o[key], float), key
        assert list(o["quantiles"]) == QUANTILE_KEYS
        values = [o["quantiles"][k] for k in QUANTILE_KEYS]
        assert values == sorted(values) and values[0] > 0
        assert 0.0 <= o["pit"] <= 1.0
        assert o["in_p5_p95"] == (values[0] <= o["actual"] <= values[-1])
        assert o["in_p25_p75"] == (values[1] <= o["actual"] <= values[3])
        assert o["interval_score"] >= (values[-1] - values[0]) * (1 - 1e-9)  # JSON: 10 digits
        assert o["excluded"]["classes"] == []
        assert o["actual"] == pytest.approx(_actual(frame, o["split"], o["horizon_s"]), rel=1e-8)
    splits = [o["split"] for o in doc["origins"]]
    assert splits == sorted(splits) and splits[-1] == doc["split"]
    for key in ("p5_p95", "p25_p75"):
        assert 0.0 <= doc["coverage"][key] <= 1.0
    covered = sum(o["in_p5_p95"] for o in doc["origins"])
    assert doc["coverage"]["p5_p95"] == pytest.approx(covered / origins)
    assert 0.0 <= doc["mean_pit"] <= 1.0


# ---------------------------------------------------------------------------------------------
# The bundled pilot
# ---------------------------------------------------------------------------------------------


def test_split_half_of_the_bundled_pilot(split_half: dict[str, Any], pilot_frame: Any) -> None:
    _check_contract(split_half, 1, pilot_frame)
    (origin,) = split_half["origins"]
    # a fraction splits the time span: the origin lies halfway between the first and last row
    t = pilot_frame["timestamp"]
    middle = t.min() + (t.max() - t.min()) / 2
    assert abs(pd.Timestamp(origin["split"]) - middle) <= pd.Timedelta(seconds=1)
    # the default horizon is the rest of the log: the window holds every row after the split
    assert origin["requests"] == int((t >= pd.Timestamp(origin["split"])).sum())
    assert origin["forecast_requests"] == pytest.approx(origin["requests"])


def test_rolling_origins_of_the_bundled_pilot(
    rolling_three: dict[str, Any], split_half: dict[str, Any], pilot_frame: Any
) -> None:
    _check_contract(rolling_three, 3, pilot_frame)
    origins = rolling_three["origins"]
    assert len({o["horizon_s"] for o in origins}) == 1  # the same horizon at every origin
    starts = [pd.Timestamp(o["split"]) for o in origins]
    steps = {round((b - a).total_seconds()) for a, b in pairwise(starts)}
    assert max(steps) - min(steps) <= 1  # evenly spaced (whole seconds)
    assert rolling_three["split"] == split_half["split"]
    assert origins[-1]["actual"] == split_half["origins"][0]["actual"]
    fitted = [o["fit_requests"] for o in origins]
    assert fitted == sorted(fitted)  # later origins fit on more of the past


def test_human_report_and_markdown(tmp_path: Path) -> None:
    md = tmp_path / "backtest.md"
    result = _run(str(PILOT), "--split", "0.5", "--markdown", str(md), "--trials", "500")
    assert result.exit_code == 0, result.stderr
    assert "Actual cost of each window against its forecast" in result.stdout
    assert "Coverage: P5-P95 held the actual cost at" in result.stdout
    text = md.read_text()
    assert text.startswith("### costsim backtest:")
    assert "| origin | actual | P5 |" in text
    quiet = _run(str(PILOT), "--split", "0.5", "--trials", "500", "-q")
    assert quiet.exit_code == 0 and quiet.stdout == ""


def test_volume_as_planned_changes_the_forecast_not_the_actual(
    split_half: dict[str, Any],
) -> None:
    planned = _json(str(PILOT), "--split", "0.5", "--volume-as-planned")
    assert planned["volume"] == "as_planned" and split_half["volume"] == "actual"
    (a,), (p,) = split_half["origins"], planned["origins"]
    assert p["actual"] == a["actual"]
    assert p["requests"] == a["requests"]
    assert p["forecast_requests"] != pytest.approx(a["forecast_requests"], rel=1e-6)
    assert p["quantiles"] != a["quantiles"]


def test_same_command_twice_gives_identical_json(tmp_path: Path) -> None:
    digests = []
    for name in ("a.json", "b.json"):
        out = tmp_path / name
        result = _run(str(PILOT), "--split", "0.5", "--trials", "500", "--json", str(out), "-q")
        assert result.exit_code == 0, result.stderr
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_any_number_of_workers_gives_identical_json(tmp_path: Path) -> None:
    digests = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}.json"
        args = ["--split", "0.6", "--rolling", "2", "--trials", "2500", "--workers", workers]
        result = _run(str(PILOT), *args, "--json", str(out), "-q")
        assert result.exit_code == 0, result.stderr
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


# ---------------------------------------------------------------------------------------------
# Refusals: exit 2, one line, nothing written
# ---------------------------------------------------------------------------------------------


def _csv(path: Path, times: np.ndarray, with_time: bool = True) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "query_class": np.where(np.arange(times.size) % 2 == 0, "a", "b"),
            "cost_usd": rng.lognormal(np.log(0.01), 0.5, times.size),
        }
    )
    if with_time:
        frame.insert(0, "timestamp", times)
    frame.to_csv(path, index=False)
    return path


def _two_days(tmp_path: Path) -> Path:
    """400 requests over two days from 2026-01-01 00:00 UTC."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    return _csv(tmp_path / "log.csv", t0 + np.linspace(0, 2 * 86400, 400))


def _gap(tmp_path: Path) -> Path:
    """400 requests over the first day, then one ten days later."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    times = np.append(t0 + np.linspace(0, 86400, 400), t0 + 10 * 86400)
    return _csv(tmp_path / "gap.csv", times)


def _assert_refused(result: Any, *needles: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == ""
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--split", "1.5"], ["--split", "strictly between 0 and 1", "'1.5'"]),
        (["--split", "0"], ["--split", "strictly between 0 and 1"]),
        (["--split", "soon"], ["--split", "ISO date-time"]),
        (["--split", "2025-12-01"], ["not after the log's first request"]),
        (["--split", "2026-03-01T00:00:00Z"], ["not before the log's last request"]),
        (["--rolling", "0"], ["--rolling", "got 0"]),
        (["--horizon", "30d"], ["--horizon 30d", "after the log's last request", "at most 1d"]),
        (["--horizon", "often"], ["--horizon"]),
        (["--trials", "5"], ["--trials"]),
    ],
)
def test_bad_options_are_refused(tmp_path: Path, args: list[str], needles: list[str]) -> None:
    _assert_refused(_run(str(_two_days(tmp_path)), *args), *needles)


def test_an_empty_window_is_refused(tmp_path: Path) -> None:
    result = _run(str(_gap(tmp_path)), "--split", "2026-01-03T00:00:00Z", "--horizon", "2d")
    _assert_refused(result, "no request in the window 2026-01-03T00:00:00Z + 2d")


def test_nothing_before_the_first_origin_is_refused(tmp_path: Path) -> None:
    # origins fall on whole seconds: 200 of them over the 100 s before the split put the first
    # at the log's very first request, with nothing before it to fit
    t0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    log = _csv(tmp_path / "late.csv", np.append(t0, t0 + 100 + np.arange(0.0, 500.0, 10.0)))
    result = _run(str(log), "--split", "2026-01-01T00:01:40Z", "--rolling", "200")
    _assert_refused(result, "no request before the origin 2026-01-01T00:00:00Z")


def test_a_log_too_short_to_fit_is_refused(tmp_path: Path) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    result = _run(str(_csv(tmp_path / "short.csv", t0 + np.arange(12.0) * 3600)))
    _assert_refused(result, "too few requests before the origin", "no class has the 10")


def test_a_log_without_timestamps_is_refused(tmp_path: Path) -> None:
    log = _csv(tmp_path / "flat.csv", np.arange(100.0), with_time=False)
    _assert_refused(_run(str(log)), "no timestamp column ('timestamp')", "--timestamp-col")


def test_output_onto_the_input_log_is_refused(tmp_path: Path) -> None:
    log = _two_days(tmp_path)
    before = log.read_bytes()
    for option in ("--json", "--markdown"):
        _assert_refused(_run(str(log), option, str(log)), "is an input of this command")
    assert log.read_bytes() == before


def test_a_log_at_a_uri_is_the_same_log(tmp_path: Path) -> None:
    """`backtest file:///...` reads the log there (the URI was folded into a path that did
    not exist), gives the same backtest, and refuses an output onto the log it names."""
    log = _two_days(tmp_path)
    here, there = _json(str(log)), _json(log.as_uri())
    assert there.pop("source") == log.as_uri() and here.pop("source") == str(log)
    assert there == here
    before = log.read_bytes()
    _assert_refused(_run(log.as_uri(), "--json", str(log)), "is an input of this command")
    assert log.read_bytes() == before


def test_split_parsing() -> None:
    assert parse_split(" 0.25 ") == 0.25
    assert parse_split("2026-10-12") == datetime(2026, 10, 12, tzinfo=UTC)
    assert parse_split("2026-10-12T06:00:00Z") == datetime(2026, 10, 12, 6, tzinfo=UTC)
    for bad in ("1", "-0.1", "nan", "inf", "next week"):
        with pytest.raises(BacktestError, match="--split"):
            parse_split(bad)


def test_interval_score() -> None:
    assert interval_score(10.0, 20.0, 15.0) == 10.0  # inside: the width
    assert interval_score(10.0, 20.0, 8.0) == pytest.approx(10.0 + 20 * 2.0)  # (2/0.1)(l - y)
    assert interval_score(10.0, 20.0, 23.0) == pytest.approx(10.0 + 20 * 3.0)


# ---------------------------------------------------------------------------------------------
# Library: excluded classes, calibration on a known truth
# ---------------------------------------------------------------------------------------------

DAY = 86400.0
T0 = datetime(2026, 1, 5, tzinfo=UTC).timestamp()  # a Monday


def _stationary(days: int, per_day: float, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Two classes with constant Poisson arrival rates and fixed lognormal unit costs."""
    rng = np.random.default_rng(seed)
    truth = {"small": (0.7, 0.002, 1.0), "large": (0.3, 0.02, 0.6)}  # share, median, sigma
    out = {}
    for name, (share, median, sigma) in truth.items():
        n = rng.poisson(share * per_day * days)
        times = np.sort(T0 + rng.random(n) * days * DAY)
        out[name] = (times, rng.lognormal(np.log(median), sigma, n))
    return out


def test_a_class_new_in_the_window_is_left_out_of_both_sides() -> None:
    data = _stationary(days=4, per_day=400, seed=3)
    rng = np.random.default_rng(4)
    late = np.sort(T0 + 3 * DAY + rng.random(30) * DAY)  # appears after the split only
    data["newcomer"] = (late, np.full(late.size, 100.0))
    log = make_log(
        {k: v[1] for k, v in data.items()}, timestamps={k: v[0] for k, v in data.items()}
    )
    bt = run_backtest(log, datetime.fromtimestamp(T0 + 3 * DAY, tz=UTC), trials=500)
    (o,) = bt.origins
    assert o.excluded == ("newcomer",)
    assert o.excluded_requests == 30 and o.excluded_cost == pytest.approx(3000.0)
    window = {k: (t >= T0 + 3 * DAY) for k, (t, _) in data.items()}
    expected = sum(float(c[window[k]].sum()) for k, (_, c) in data.items() if k != "newcomer")
    assert o.actual == pytest.approx(expected, rel=1e-12)
    assert o.requests == sum(int(window[k].sum()) for k in ("small", "large"))
    assert any("newcomer" in note and "left out" in note for note in bt.notes)
    doc = backtest_to_dict(bt)
    assert doc["origins"][0]["excluded"]["classes"] == ["newcomer"]
    assert "newcomer" in backtest_to_markdown(bt)


def test_calibration_on_a_stationary_log() -> None:
    """28 days, constant rate, two lognormal classes: 10 origins from day 1.4 to day 14, each
    forecasting the next day (windows disjoint: 1 day long, 1.4 days apart).

    Tolerance: if the forecast is calibrated and the origins independent, the number of
    windows whose actual falls in P5-P95 is Binomial(10, 0.9), and P(X <= 5) = 0.0016: we ask
    for X >= 6, which a calibrated forecast fails once in 600 logs. (The fits share data, which
    correlates their errors; the loose bound absorbs that.) A badly overconfident forecast (one
    that resamples requests as if independent covers about 5%) gives X >= 6 with probability
    below 1e-6. Coverage alone would reward an absurdly wide forecast, so the width is bounded
    too: the truth's own P5-P95 of a day is about 0.15 of its median, and we allow 1.0.
    """
    data = _stationary(days=28, per_day=500, seed=11)
    log = make_log(
        {k: v[1] for k, v in data.items()}, timestamps={k: v[0] for k, v in data.items()}
    )
    bt = run_backtest(log, 0.5, rolling=10, horizon_s=DAY, trials=2000, seed=1)
    assert len(bt.origins) == 10
    starts = [o.split for o in bt.origins]
    assert all(b - a >= DAY for a, b in pairwise(starts))  # disjoint
    covered = sum(o.in_p5_p95 for o in bt.origins)
    assert covered >= 6, [round(o.pit, 3) for o in bt.origins]
    assert bt.coverage_p5_p95 == covered / 10
    widths = [o.width for o in bt.origins]
    assert all(w is not None and w < 1.0 for w in widths), widths
