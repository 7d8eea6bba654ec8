"""`costsim compare` and `costsim.simulate.compare`: deployment options on common random numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from costsim.model.file import load_model
from costsim.report.compare import compare_to_dict, compare_to_markdown
from costsim.scenario import load_scenario
from costsim.simulate.chunks import chunk_traffic
from costsim.simulate.compare import ROUTED, bucket_requests, run_compare
from costsim.simulate.forecast import run_forecast
from costsim.simulate.prepare import prepare
from tests.cli_helpers import one_error, run

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "scenarios" / "pilot.model.json"
EXAMPLE = ROOT / "scenarios" / "deployments.yaml"
HOURS = 7 * 24

GPUS = {
    "kind": "provisioned",
    "gpu_hour_usd": 24,
    "throughput": {"default": 10, "classes": {"agent_tool_use": 0.2, "long_context_summary": 0.5}},
    "replicas": {"min": 1, "max": 4},
    "overflow": "throttle",
}


@pytest.fixture(scope="module")
def model() -> Any:
    return load_model(MODEL)


def write(tmp_path: Path, deployments: dict[str, Any], **extra: Any) -> Path:
    doc: dict[str, Any] = {
        "model": str(MODEL),
        "horizon": "7d",
        "resolution": "1h",
        "volume": {"requests": 500_000, "uncertainty": 0.3},
        "mix_concentration": 400,
        "traffic": {"spikes": {"rate": 0.5, "magnitude": {"median": 2}, "duration": "2h"}},
        "trials": 400,
        "seed": 11,
        "deployments": deployments,
        **extra,
    }
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def compare_of(tmp_path: Path, model: Any, deployments: dict[str, Any], **extra: Any) -> Any:
    return run_compare(load_scenario(write(tmp_path, deployments, **extra)), model)


# ---------------------------------------------------------------------------------------------
# Identities
# ---------------------------------------------------------------------------------------------


def test_api_without_pricing_is_todays_forecast_trial_by_trial(tmp_path: Path, model: Any) -> None:
    sc = load_scenario(write(tmp_path, {"api": {"kind": "api"}, "gpus": GPUS}))
    cmp = run_compare(sc, model)
    fc = run_forecast(sc, model, bridge=False)
    np.testing.assert_array_equal(cmp["api"].cost, fc.totals)
    assert cmp["api"].utilisation is None and cmp["api"].delayed_share == 0


def test_bucket_requests_add_up_to_the_forecasts_intensity(tmp_path: Path, model: Any) -> None:
    prep = prepare(load_scenario(write(tmp_path, {"api": {"kind": "api"}})), model)
    traffic = chunk_traffic(prep, 0, 300)
    req = bucket_requests(prep.plan, traffic, slice(0, 300))
    assert req.shape == (300, HOURS, len(prep.classes))
    np.testing.assert_allclose(req.sum(axis=1), traffic.intensity, rtol=1e-9)


def test_fixed_replicas_with_ample_throughput_cost_replicas_hours_price(
    tmp_path: Path, model: Any
) -> None:
    fixed = {
        "kind": "provisioned",
        "gpu_hour_usd": 4.0,
        "throughput": {"default": 1e6},
        "replicas": {"min": 3, "max": 3},
    }
    committed = {**fixed, "commitment": {"replicas": 2, "gpu_hour_usd": 2.5}}
    cmp = compare_of(tmp_path, model, {"fixed": fixed, "committed": committed})
    np.testing.assert_allclose(cmp["fixed"].cost, 3 * HOURS * 4.0, rtol=1e-12)
    np.testing.assert_allclose(cmp["committed"].cost, HOURS * (2 * 2.5 + 1 * 4.0), rtol=1e-12)
    for name in ("fixed", "committed"):
        assert cmp[name].overflow_share == 0 and cmp[name].throttled_share == 0
        assert cmp[name].replica_hours == pytest.approx(3 * HOURS)


def test_batch_discount_on_every_class_halves_the_bill(tmp_path: Path, model: Any) -> None:
    batch = {"kind": "api", "batch": {"discount": 0.5, "classes": "all"}}
    cmp = compare_of(tmp_path, model, {"api": {"kind": "api"}, "batch": batch})
    np.testing.assert_allclose(cmp["batch"].cost, 0.5 * cmp["api"].cost, rtol=1e-12)


def test_rate_limit_bills_extra_attempts_only_when_failures_are_billed(
    tmp_path: Path, model: Any
) -> None:
    limited = {"kind": "api", "rate_limit": {"requests_per_minute": 40}}
    options = {"api": {"kind": "api"}, "limited": limited}
    billed = compare_of(tmp_path, model, options)
    assert billed["limited"].delayed_share > 0.01
    assert np.all(billed["limited"].cost >= billed["api"].cost)
    assert billed["limited"].cost.mean() > billed["api"].cost.mean()
    free = compare_of(tmp_path, model, options, reliability={"billed_failures": False})
    np.testing.assert_allclose(free["limited"].cost, free["api"].cost, rtol=1e-12)
    assert free["limited"].delayed_share == pytest.approx(billed["limited"].delayed_share)


def test_overflow_is_billed_at_the_api_unit_cost(tmp_path: Path, model: Any) -> None:
    tiny = {**GPUS, "throughput": {"default": 1e-6}, "replicas": {"min": 1, "max": 1}}
    cmp = compare_of(
        tmp_path,
        model,
        {"api": {"kind": "api"}, "spill": {**tiny, "overflow": "api"}, "drop": tiny},
    )
    # the pool serves next to nothing: the api bills (almost) all of the traffic
    assert cmp["spill"].overflow_share == pytest.approx(1.0, abs=1e-5)
    assert cmp["drop"].throttled_share == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(cmp["spill"].cost, cmp["drop"].cost + cmp["api"].cost, rtol=1e-5)


def test_routed_plan(tmp_path: Path, model: Any) -> None:
    options = {"api": {"kind": "api"}, "gpus": GPUS}
    everything = compare_of(tmp_path, model, options, route={"default": "api"})
    np.testing.assert_array_equal(everything[ROUTED].cost, everything["api"].cost)
    split = compare_of(
        tmp_path, model, options, route={"default": "api", "classes": {"lookup": "gpus"}}
    )
    assert split.names == ("api", "gpus", ROUTED)
    assert split[ROUTED].utilisation is not None
    assert np.all(split[ROUTED].cost > 0)


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------


def test_regret_and_flexibility(tmp_path: Path, model: Any) -> None:
    gpus = {**GPUS, "switch": {"cost": 2000, "lead_time": "2d"}}
    cmp = compare_of(tmp_path, model, {"api": {"kind": "api"}, "gpus": gpus})
    regret = cmp.stats.regret
    assert np.all(regret >= 0)
    np.testing.assert_array_equal(regret.min(axis=1), 0.0)
    costs = np.column_stack([o.cost for o in cmp.options])
    cheapest = costs.argmin(axis=1)
    np.testing.assert_array_equal(regret[np.arange(costs.shape[0]), cheapest], 0.0)
    assert sum(s.p_cheapest for s in cmp.stats.options) == pytest.approx(1.0)
    assert np.all(cmp.flexibility.value >= 0)
    for o in cmp.options:  # the first period is part of the whole
        assert np.all(o.first >= 0) and np.all(o.first <= o.cost * (1 + 1e-12))
    assert cmp.review_after_s == pytest.approx(7 * 86400 / 3, abs=3600)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deployments", "extra", "fragments"),
    [
        ({"x": {"kind": "serverless"}}, {}, ("deployments.x.kind", "api, provisioned")),
        ({"g": {**GPUS, "overflow": "g"}}, {}, ("deployments.g.overflow", "itself")),
        ({"a": {"kind": "api"}}, {"route": {"default": "nope"}}, ("route.default", "'nope'")),
        (
            {"a": {"kind": "api"}},
            {"route": {"classes": {"lookup": "gpu"}}},
            ("route.classes.lookup", "'gpu'"),
        ),
        (
            {"g": {**GPUS, "throughput": {"default": 0}}},
            {},
            ("deployments.g.throughput.default", "> 0"),
        ),
        (
            {"g": {**GPUS, "throughput": {"default": 1, "classes": {"lookup": -2}}}},
            {},
            ("deployments.g.throughput.classes.lookup",),
        ),
        (
            {"a": GPUS, "g": {**GPUS, "overflow": "a"}},
            {},
            ("deployments.g.overflow", "provisioned option"),
        ),
        ({}, {}, ("compare needs a `deployments:` block",)),
    ],
)
def test_bad_deployment_blocks_exit_2_with_the_key_path(
    tmp_path: Path, deployments: dict[str, Any], extra: dict[str, Any], fragments: tuple[str, ...]
) -> None:
    path = write(tmp_path, deployments, **extra)
    if not deployments:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        del doc["deployments"]
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    one_error(run("compare", path), *fragments)


def test_bad_review_after(tmp_path: Path) -> None:
    path = write(tmp_path, {"api": {"kind": "api"}})
    one_error(run("compare", path, "--review-after", "8d", "--quiet"), "--review-after")
    one_error(run("compare", path, "--review-after", "soon", "--quiet"), "--review-after")


def test_json_keys_and_same_seed_same_bytes(tmp_path: Path) -> None:
    path = write(tmp_path, {"api": {"kind": "api"}, "gpus": GPUS})
    outs = [tmp_path / "a.json", tmp_path / "b.json"]
    for out in outs:
        result = run("compare", path, "--json", out, "--review-after", "2d", "--quiet")
        assert result.exit_code == 0, result.stderr
        assert result.stdout == ""
    assert outs[0].read_bytes() == outs[1].read_bytes()
    doc = json.loads(outs[0].read_text(encoding="utf-8"))
    assert doc["kind"] == "costsim.compare" and doc["schema_version"] == 1
    assert (doc["seed"], doc["trials"], doc["review_after_s"]) == (11, 400, 2 * 86400)
    assert list(doc["deployments"]) == ["api", "gpus"]
    for entry in doc["deployments"].values():
        assert set(entry["quantiles"]) == {"p5", "p50", "p95", "mean"}
        for key in (
            "p_cheapest", "expected_regret", "regret_p95", "utilisation", "overflow_share",
            "throttled_share", "delayed_share", "flexibility_value",
        ):  # fmt: skip
            assert key in entry
    assert doc["deployments"]["api"]["utilisation"] is None
    assert 0 < doc["deployments"]["gpus"]["utilisation"] <= 1
    other = run("compare", path, "--json", "-", "--seed", "12", "--review-after", "2d")
    assert other.exit_code == 0 and json.loads(other.stdout)["seed"] == 12


def test_markdown_and_table(tmp_path: Path, model: Any) -> None:
    path = write(tmp_path, {"api": {"kind": "api"}, "gpus": GPUS})
    result = run("compare", path)
    assert result.exit_code == 0, result.stderr
    assert "P(cheapest)" in result.stdout and "gpus" in result.stdout
    md = compare_to_markdown(run_compare(load_scenario(path), model))
    assert md.startswith("### costsim compare: scenario.yaml")
    assert "| api | \\$" in md and "| gpus | provisioned |" in md


def test_worked_example_runs(tmp_path: Path, model: Any) -> None:
    out = tmp_path / "example.json"
    result = run("compare", EXAMPLE, "--trials", 200, "--json", out, "--quiet")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert list(doc["deployments"]) == list(load_scenario(EXAMPLE).deployments)
    assert compare_to_dict  # the renderer the CLI used
