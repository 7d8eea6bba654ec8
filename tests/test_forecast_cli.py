"""`costsim forecast`, `schema` and `init` as a user meets them: the bundled scenarios, the JSON
contract, reproducibility, common random numbers, one-line errors, and a fresh bundled model."""

from __future__ import annotations

import itertools
import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from costsim.cli import app
from costsim.errors import CostsimWarning
from costsim.logs import read_pilot
from costsim.model.file import load_model, model_to_json
from costsim.model.fit import fit_model
from costsim.scenario import load_scenario
from costsim.simulate.forecast import run_forecast

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
MODEL = SCENARIOS / "pilot.model.json"
PILOT = SCENARIOS / "pilot.parquet"
BUNDLED = ["launch_month.yaml", "agentic_growth.yaml", "price_change.yaml"]
QUANTILE_KEYS = ["p5", "p50", "p90", "p95", "p99", "mean"]
PRICE_FACTOR = 2.5
runner = CliRunner()
_RUNS = itertools.count()


def _run(*args: str | Path) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def _forecast_json(path: Path, *args: str | Path) -> dict[str, Any]:
    """Run `costsim forecast` quietly with --json to a file; the parsed JSON."""
    out = path.parent / f"{path.stem}.{next(_RUNS)}.json"
    result = _run("forecast", path, "--json", out, "-q", *args)
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def _write_scenario(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _model_classes() -> list[str]:
    return list(json.loads(MODEL.read_text())["classes"])


# ---------------------------------------------------------------------------------------------
# 1. The bundled scenarios run, and the JSON / samples / Markdown follow the contract
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_scenario_writes_contract_outputs(tmp_path: Path, name: str) -> None:
    trials = 500
    js, md, pq_path = tmp_path / "f.json", tmp_path / "f.md", tmp_path / "samples.parquet"
    result = _run(
        "forecast", SCENARIOS / name, "--trials", str(trials),
        "--json", js, "--markdown", md, "--samples", pq_path,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "the naive estimate" in result.stdout

    data = json.loads(js.read_text())
    for key in ("schema_version", "seed", "trials", "quantiles", "naive_linear", "per_class"):
        assert key in data, key
    assert data["schema_version"] == 1
    assert data["trials"] == trials
    assert data["seed"] == yaml.safe_load((SCENARIOS / name).read_text())["seed"]
    q = data["quantiles"]
    assert list(q) == QUANTILE_KEYS
    assert 0 < q["p5"] < q["p50"] < q["p90"] < q["p95"] < q["p99"]
    assert q["p5"] < q["mean"] < q["p99"]
    assert data["naive_linear"] > 0

    new = yaml.safe_load((SCENARIOS / name).read_text()).get("new_classes") or {}
    classes = [*_model_classes(), *new]
    assert sorted(data["per_class"]) == sorted(classes)
    for row in data["per_class"].values():
        assert 0 <= row["request_share"] <= 1 and 0 <= row["cost_share"] <= 1
    assert sum(r["cost_share"] for r in data["per_class"].values()) == pytest.approx(1, rel=1e-6)

    bridge = data["bridge"]
    assert isinstance(bridge, list) and bridge, "the bridge is on by default"
    assert bridge[0]["driver"].startswith("mix shift")
    assert bridge[-1]["driver"] == "uncertainty"
    assert bridge[-1]["p50"] == pytest.approx(q["p50"], rel=1e-9)  # it ends at the forecast
    assert bridge[-1]["p95"] == pytest.approx(q["p95"], rel=1e-9)

    table = pq.read_table(pq_path)
    assert table.num_rows == trials
    assert table.column_names == ["trial", "total_usd", *data["per_class"]]
    assert set(classes) <= set(table.column_names)
    frame = table.to_pandas()
    assert list(frame["trial"]) == list(range(trials))
    np.testing.assert_allclose(frame["total_usd"], frame[classes].sum(axis=1), rtol=1e-9)
    assert float(np.median(frame["total_usd"])) == pytest.approx(q["p50"], rel=1e-6)

    text = md.read_text()
    assert text.startswith(f"### costsim forecast: {name}")
    assert "the naive estimate" in text


# ---------------------------------------------------------------------------------------------
# 2. Reproducibility
# ---------------------------------------------------------------------------------------------


def test_same_scenario_and_seed_give_byte_identical_json(tmp_path: Path) -> None:
    scenario = SCENARIOS / "launch_month.yaml"
    outs = [tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"]
    extra = [[], [], ["--seed", "8"]]
    for out, more in zip(outs, extra, strict=True):
        result = _run("forecast", scenario, "--trials", "500", "--json", out, "-q", *more)
        assert result.exit_code == 0, result.stderr
    a, b, c = (o.read_bytes() for o in outs)
    assert a == b
    assert c != a  # the seed is honoured ...
    assert json.loads(c)["seed"] == 8  # ... and recorded
    assert json.loads(c)["quantiles"] != json.loads(a)["quantiles"]


def test_a_pilot_fitted_on_the_fly_forecasts_as_its_model_file_does(tmp_path: Path) -> None:
    """`pilot:` fits the log and reads the model back from its text, as `model:` reads the file
    `costsim fit` writes (the bundled one): the same hash, and the same numbers (it simulated
    the fit's unrounded numbers under the file's hash)."""
    doc = yaml.safe_load((SCENARIOS / "launch_month.yaml").read_text())
    doc["model"] = str(MODEL)
    by_file = _forecast_json(_write_scenario(tmp_path / "file.yaml", doc), "--trials", "500")
    del doc["model"]
    doc["pilot"] = str(PILOT)
    on_the_fly = _forecast_json(_write_scenario(tmp_path / "fly.yaml", doc), "--trials", "500")
    assert on_the_fly["model_hash"] == by_file["model_hash"]
    assert on_the_fly.pop("scenario") != by_file.pop("scenario")  # `model:` or `pilot:`
    assert on_the_fly == by_file


# ---------------------------------------------------------------------------------------------
# 3. Common random numbers: prices times k give costs times k, trial by trial
# ---------------------------------------------------------------------------------------------


def _priced_scenario(k: float) -> dict[str, Any]:
    return {
        "model": str(MODEL),
        "horizon": "30d",
        "resolution": "1h",
        "volume": {"requests": 3_000_000, "uncertainty": 0.2},
        "mix_concentration": 300,
        "traffic": {"spikes": {"rate": 0.3, "magnitude": {"median": 2.5, "sd": 0.4}}},
        "pricing": {
            "default": {
                "input_per_mtok": 2.0 * k,
                "output_per_mtok": 18.0 * k,
                "cached_per_mtok": 0.2 * k,
            },
            "classes": {
                "embedding_ingest": {
                    "input_per_mtok": 0.02 * k,
                    "output_per_mtok": 0.0,
                    "per_request": 0.00002 * k,
                },
            },
        },
        "trials": 1000,
        "seed": 11,
    }


@pytest.fixture
def priced_pair(tmp_path: Path) -> tuple[Path, Path]:
    return (
        _write_scenario(tmp_path / "base.yaml", _priced_scenario(1.0)),
        _write_scenario(tmp_path / "dear.yaml", _priced_scenario(PRICE_FACTOR)),
    )


def test_scaled_prices_scale_every_trial(priced_pair: tuple[Path, Path]) -> None:
    model = load_model(MODEL)
    base, dear = (run_forecast(load_scenario(p), model, bridge=False) for p in priced_pair)
    assert base.trials == dear.trials == 1000
    np.testing.assert_array_equal(dear.class_requests, base.class_requests)  # same traffic
    np.testing.assert_allclose(dear.totals, PRICE_FACTOR * base.totals, rtol=1e-6)
    np.testing.assert_allclose(dear.class_totals, PRICE_FACTOR * base.class_totals, rtol=1e-6)
    assert all(c.repriced for c in base.per_class.values())


def test_scaled_prices_scale_cli_quantiles(priced_pair: tuple[Path, Path]) -> None:
    base, dear = (_forecast_json(p, "--no-bridge") for p in priced_pair)
    for key in QUANTILE_KEYS:
        assert dear["quantiles"][key] == pytest.approx(
            PRICE_FACTOR * base["quantiles"][key], rel=1e-6
        ), key
    assert base["bridge"] == dear["bridge"] == []  # --no-bridge


# ---------------------------------------------------------------------------------------------
# 4. Bad scenario and model files: exit 2, one line naming the key path, no traceback
# ---------------------------------------------------------------------------------------------

GOOD = {"model": str(MODEL), "horizon": "1d", "volume": {"requests": 2000}, "trials": 100}


def _with(**changes: Any) -> str:
    return yaml.safe_dump({**GOOD, **changes}, sort_keys=False)


def _bad_model(tmp_path: Path, text: str) -> str:
    path = tmp_path / "other.model.json"
    path.write_text(text)
    return _with(model=str(path))


def _model_v99(tmp_path: Path) -> str:
    doc = json.loads(MODEL.read_text())
    doc["schema_version"] = 99
    return _bad_model(tmp_path, json.dumps(doc))


BAD_SCENARIOS = {
    "unknown_key": (
        lambda t: _with(volume={"requests": 2000, "growht": 0.1}),
        r"volume\.growht: unknown key; did you mean 'growth'\?",
    ),
    "wrong_type": (
        lambda t: _with(traffic={"spikes": {"rate": "often"}}),
        r"traffic\.spikes\.rate: expected a number >= 0, got 'often'",
    ),
    "wrong_type_trials": (
        lambda t: _with(trials="many"),
        r"trials: expected an integer in \[100, 10000000\], got 'many'",
    ),
    "negative_volume": (
        lambda t: _with(volume={"requests": -5}),
        r"volume\.requests: expected a number > 0, got -5",
    ),
    "mix_not_one": (
        lambda t: _with(mix={"lookup": 0.5, "agent_tool_use": 0.4}),
        r"mix: shares sum to 0\.9, expected 1",
    ),
    "class_not_in_model": (
        lambda t: _with(mix={"lookup": 0.5, "nonexistent": 0.5}),
        r"mix\.nonexistent: class not in the model.*model classes: .*lookup",
    ),
    # a relative mix reads the `like` class's share: it was read before the class was checked
    # (the memory estimate), a KeyError and exit 70
    "new_class_like_a_class_not_in_model": (
        lambda t: _with(
            mix_relative=True, mix={"agent_x": 1}, new_classes={"agent_x": {"like": "nope"}}
        ),
        r"new_classes\.agent_x\.like: class 'nope' not in the model",
    ),
    "missing_model": (
        lambda t: _with(model=str(t / "gone.model.json")),
        r"model file not found: .*gone\.model\.json",
    ),
    "malformed_yaml": (
        lambda t: f"model: {MODEL}\nhorizon: 1d\nvolume: {{requests: 2000\n",
        r"invalid YAML at line \d+, column \d+",
    ),
    "model_other_version": (
        _model_v99,
        r"other\.model\.json: model schema_version 99 is not supported",
    ),
    "model_not_json": (
        lambda t: _bad_model(t, "this is not JSON {\n"),
        r"other\.model\.json: cannot read the model file as JSON",
    ),
}


def _assert_one_error_line(result: Any, pattern: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    return str(lines[0])


@pytest.mark.parametrize("case", list(BAD_SCENARIOS))
def test_bad_scenario_exits_2_with_one_line(tmp_path: Path, case: str) -> None:
    make, pattern = BAD_SCENARIOS[case]
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(make(tmp_path))
    out = tmp_path / "out.json"
    result = _run("forecast", scenario, "--json", out, "--no-bridge")
    line = _assert_one_error_line(result, pattern)
    if case.startswith(("model_", "missing_model")):
        assert str(tmp_path) in line  # names the model file
    else:
        assert line.startswith(f"error: {scenario}: ")  # names the scenario file
    assert not out.exists()
    assert result.stdout == ""


def test_missing_scenario_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = _run("forecast", missing)
    _assert_one_error_line(result, rf"scenario file not found: {re.escape(str(missing))}$")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(_with(volume={"requests": -5}, seed=-1, horizon="1 fortnight"))
    line = _assert_one_error_line(_run("forecast", scenario), r"horizon: .*; volume\.requests")
    assert "seed: expected an integer >= 0, got -1" in line


def test_error_text_that_looks_like_markup_does_not_crash(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(_with(mix={"lookup": 0.5, "[/x]": 0.5}))
    _assert_one_error_line(_run("forecast", scenario), r"mix\.\[/x\]: class not in the model")


def test_error_names_a_file_with_brackets_verbatim(tmp_path: Path) -> None:
    scenario = tmp_path / "plan[v2].yaml"
    scenario.write_text(_with(volume={"requests": -5}))
    line = _assert_one_error_line(_run("forecast", scenario), r"volume\.requests")
    assert line.startswith(f"error: {scenario}: ")


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["--engine", "nope"], r"'--engine': 'nope' is not one of 'strata', 'reference'"),
        (["--trials", "0"], r"--trials: expected an integer in \[100, 10,000,000\], got '0'"),
        (["--trials", "1000000000"], r"--trials: expected an integer in \[100, 10,000,000\]"),
        (["--seed", "-1"], r"--seed: expected an integer in \[0, 9223372036854775807\], got -1"),
    ],
)
def test_bad_forecast_options_exit_2(tmp_path: Path, args: list[str], pattern: str) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(_with())
    _assert_one_error_line(_run("forecast", scenario, "--no-bridge", *args), pattern)


# ---------------------------------------------------------------------------------------------
# 5. costsim schema
# ---------------------------------------------------------------------------------------------


def test_schema_to_stdout_and_file(tmp_path: Path) -> None:
    result = _run("schema")
    assert result.exit_code == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"model", "horizon", "volume", "mix", "pricing", "trials", "seed"} <= set(
        schema["properties"]
    )
    assert "requests" in schema["properties"]["volume"]["properties"]

    out = tmp_path / "scenario.schema.json"
    result = _run("schema", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert json.loads(out.read_text()) == schema


# ---------------------------------------------------------------------------------------------
# 6. costsim init
# ---------------------------------------------------------------------------------------------


def test_init_writes_a_scenario_that_runs(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "scenario.yaml"
    out.parent.mkdir()
    result = _run("init", MODEL, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert out.is_file()
    assert f"wrote {out}:" in " ".join(result.stderr.split())
    assert load_scenario(out).model_path.resolve() == MODEL.resolve()  # type: ignore[union-attr]

    result = _run("forecast", out, "--trials", "300", "--no-bridge")
    assert result.exit_code == 0, result.stderr
    assert "the naive estimate" in result.stdout

    first = out.read_bytes()
    out.write_text("# edited by hand\n" + first.decode())
    result = _run("init", MODEL, "-o", out)
    line = _assert_one_error_line(result, r"exists; pass --force")
    assert str(out) in line
    assert out.read_text().startswith("# edited by hand")  # untouched

    result = _run("init", MODEL, "-o", out, "--force")
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes() == first


def test_init_note_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / ("a_rather_long_folder_name_for_the_scenario" * 2) / "scenario.yaml"
    out.parent.mkdir()
    result = _run("init", MODEL, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"wrote {out}: edit volume and mix, then run `costsim forecast {out}`"
    ]


def test_init_with_a_missing_model_exits_2(tmp_path: Path) -> None:
    out = tmp_path / "scenario.yaml"
    result = _run("init", tmp_path / "gone.model.json", "-o", out)
    _assert_one_error_line(result, r"model file not found: .*gone\.model\.json")
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# 7. The per-request reference engine agrees with the stratified one on a tiny scenario
# ---------------------------------------------------------------------------------------------


def test_reference_engine_agrees_with_strata(tmp_path: Path) -> None:
    scenario = _write_scenario(
        tmp_path / "tiny.yaml",
        {"model": str(MODEL), "horizon": "1d", "volume": {"requests": 2000}, "seed": 3},
    )
    strata = _forecast_json(scenario, "--trials", "200", "--no-bridge")
    ref = _forecast_json(scenario, "--trials", "200", "--no-bridge", "--engine", "reference")
    assert (strata["engine"], ref["engine"]) == ("strata", "reference")
    assert strata["naive_linear"] == ref["naive_linear"]
    sq, rq = strata["quantiles"], ref["quantiles"]
    # Loose, Monte Carlo-sized bounds: 200 trials of 2000 requests put the P50's standard
    # error near 1%; the tails are noisier.
    assert rq["p50"] == pytest.approx(sq["p50"], rel=0.05)
    assert rq["mean"] == pytest.approx(sq["mean"], rel=0.05)
    for key in ("p5", "p95"):
        assert rq[key] == pytest.approx(sq[key], rel=0.10), key


# ---------------------------------------------------------------------------------------------
# 8. The bundled model file is what `costsim fit` makes of the bundled pilot today
# ---------------------------------------------------------------------------------------------


#: how far a number of the model file may move between machines: its last (tenth) significant
#: digit. The parameter rows come out of optimisers and of numpy's vectorised exp and log,
#: whose last bits differ between numpy builds and CPUs (seen: 1.215789278e-05 against
#: ...279e-05 on a machine without AVX-512); a change to the fit moves them much further.
#: Near zero, what is left of a cancellation (a covariance of two nearly independent
#: parameters: -1.3e-18 against 4.9e-20) moves by more than its own size: `MACHINE_ABS`.
MACHINE_REL, MACHINE_ABS = 1e-8, 1e-12


def model_differences(committed: Any, fresh: Any, where: str = "") -> list[str]:
    """Where two model documents differ: structure, strings and integers exactly, floats by
    more than `MACHINE_REL` (and `MACHINE_ABS`)."""
    if isinstance(committed, dict) and isinstance(fresh, dict):
        if list(committed) != list(fresh):
            return [f"{where or '/'}: keys {list(committed)} != {list(fresh)}"]
        return [
            d for k in committed for d in model_differences(committed[k], fresh[k], f"{where}/{k}")
        ]
    if isinstance(committed, list) and isinstance(fresh, list):
        if len(committed) != len(fresh):
            return [f"{where}: {len(committed)} items != {len(fresh)}"]
        return [
            d
            for i, (a, b) in enumerate(zip(committed, fresh, strict=True))
            for d in model_differences(a, b, f"{where}/{i}")
        ]
    both_floats = isinstance(committed, float) and isinstance(fresh, float)
    if both_floats and np.isclose(committed, fresh, rtol=MACHINE_REL, atol=MACHINE_ABS):
        return []
    return (
        []
        if committed == fresh and type(committed) is type(fresh)
        else [f"{where}: {committed!r} != {fresh!r}"]
    )


def test_model_differences_finds_what_a_changed_fit_changes() -> None:
    doc = json.loads(MODEL.read_text(encoding="utf-8"))
    assert model_differences(doc, json.loads(json.dumps(doc))) == []
    name = next(iter(doc["classes"]))
    cls = doc["classes"][name]
    nudged = json.loads(json.dumps(doc))
    nudged["classes"][name]["share"] = cls["share"] * (1 + 1e-6)
    nudged["notes"] = [*doc["notes"], "another note"]
    last_digit = json.loads(json.dumps(doc))
    last_digit["classes"][name]["share"] = cls["share"] * (1 + 1e-10)
    assert model_differences(doc, last_digit) == []
    assert [d.split(":")[0] for d in model_differences(doc, nudged)] == [
        f"/classes/{name}/share",
        "/notes",
    ]


def test_bundled_model_is_up_to_date() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CostsimWarning)
        fresh = model_to_json(fit_model(read_pilot(PILOT)))
    committed = MODEL.read_text(encoding="utf-8")
    if committed == fresh:
        return
    # the same but for the last digit of some numbers: not stale (see MACHINE_REL)
    differences = model_differences(json.loads(committed), json.loads(fresh))
    assert not differences, (
        "scenarios/pilot.model.json is stale; regenerate it with "
        "`costsim fit scenarios/pilot.parquet -o scenarios/pilot.model.json`\n"
        + "\n".join(differences[:20])
    )


def test_the_classes_naive_costs_say_why_they_do_not_add_up_to_the_naive_estimate(
    tmp_path: Path,
) -> None:
    # a mix shifted toward costly agents: the classes' naive costs (production mix) sum to
    # twice the naive estimate (pilot mix); a line under the table says so, in the terminal and
    # in Markdown, with the sum; a scenario that keeps the mix says nothing
    said = {}
    for name in ("agentic_growth", "launch_month"):
        out = tmp_path / f"{name}.json"
        md = tmp_path / f"{name}.md"
        result = CliRunner().invoke(
            app,
            ["forecast", str(ROOT / "scenarios" / f"{name}.yaml"), "--trials", "300",
             "--no-bridge", "--json", str(out), "--markdown", str(md)],
            terminal_width=400,
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        data = json.loads(out.read_text())
        text = " ".join(result.stdout.split())  # the line as one, however it was wrapped
        said[name] = (text, data, md.read_text())
    text, data, md = said["agentic_growth"]
    summed = sum(c["naive_cost"] for c in data["per_class"].values())
    assert summed > 1.5 * data["naive_linear"]
    assert text.count("naive cost: a class's pilot mean per request") == 1
    assert f"projected requests, ${summed:,.0f} in all; the naive estimate " in text
    assert f"(${data['naive_linear']:,.0f}) keeps the pilot's mix and costs" in text
    assert "naive cost: a class's pilot mean per request" in md
    assert "naive cost: a class" not in said["launch_month"][0] + said["launch_month"][2]
