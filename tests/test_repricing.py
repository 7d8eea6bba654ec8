"""Re-pricing a class from its tokens at the pilot's own price sheet reproduces its cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from costsim.model.file import load_model
from costsim.scenario import Price
from costsim.simulate.repricing import reprice

MODEL = Path(__file__).resolve().parents[1] / "scenarios" / "pilot.model.json"
# the price sheet scenarios/make_pilot.py bills the bundled pilot with
PILOT_PRICES = {
    "embedding_ingest": Price(0.02, 0.02, 0.02, 0.0),
    "default": Price(3.0, 15.0, 0.3, 0.0),
}


@pytest.mark.parametrize(
    "name",
    ["lookup", "rag_single_hop", "rag_multi_hop", "long_context_summary", "agent_tool_use",
     "embedding_ingest"],
)  # fmt: skip
def test_repricing_at_pilot_prices_reproduces_the_pilot_mean(name: str) -> None:
    cf = load_model(MODEL).classes[name]
    price = PILOT_PRICES.get(name, PILOT_PRICES["default"])
    unit, mean = reprice(cf, price, np.random.default_rng(1))
    pilot = cf.quantities["cost_usd"].summary["mean"]
    # The Gaussian copula approximates the joint tail of the tokens: within 5% of the pilot's
    # mean cost, and the refitted distribution keeps the re-priced sample's mean.
    assert abs(mean / pilot - 1) < 0.05, (name, mean, pilot)
    assert abs(unit.dist.mean() / mean - 1) < 0.01


def test_a_catalog_model_prices_like_its_own_sheet_written_out() -> None:
    """`pricing: {default: {model: openai:gpt-4o}}` is the catalog's sheet at the horizon's
    start; explicit keys still override it; an unknown model is a key-path error."""
    from pathlib import Path

    from costsim.errors import ScenarioError
    from costsim.model.file import load_model
    from costsim.scenario import parse_scenario
    from costsim.simulate.forecast import run_forecast
    from costsim.simulate.prices import per_mtok

    model = load_model(Path(__file__).parent.parent / "scenarios" / "pilot.model.json")
    from datetime import UTC, datetime

    sheet = per_mtok("openai:gpt-4o", datetime(2026, 1, 5, tzinfo=UTC))

    def totals(price: dict) -> np.ndarray:
        doc = {
            "model": "unused.json",
            "horizon": "7d",
            "volume": {"requests": 1e6},
            "trials": 200,
            "seed": 3,
            "start": "2026-01-05",
            "pricing": {"default": price},
        }
        return run_forecast(parse_scenario(doc), model, bridge=False).totals

    written = {
        "input_per_mtok": sheet.input_per_mtok,
        "output_per_mtok": sheet.output_per_mtok,
        "cached_per_mtok": sheet.cached_per_mtok,
        "per_request": sheet.per_request,
    }
    np.testing.assert_array_equal(totals({"model": "openai:gpt-4o"}), totals(written))
    cheaper = totals({"model": "openai:gpt-4o", "output_per_mtok": sheet.output_per_mtok / 2})
    assert cheaper.mean() < totals(written).mean()
    with pytest.raises(ScenarioError, match=r"pricing\.default\.model: .*closest"):
        totals({"model": "openai:gpt-4oo"})
    doc = {"model": "unused.json", "volume": {"requests": 1e6}, "trials": 100, "horizon": "7d",
           "pricing": {"default": {"model": "openai:gpt-4oo"}}}  # fmt: skip
    named = parse_scenario(doc, Path("/x/s.yaml"))  # the file first, as for its other errors
    with pytest.raises(ScenarioError, match=r"^/x/s\.yaml: pricing\.default\.model: .*closest"):
        run_forecast(named, model, bridge=False)


def test_a_price_the_model_has_no_tokens_for_is_said_not_charged(tmp_path: Path) -> None:
    # fitted without input tokens, priced per input and output token: only the output is
    # charged, and a note says so (it was silent)
    import json

    import yaml
    from cli_helpers import run

    pilot = MODEL.parent / "pilot.parquet"
    model = tmp_path / "m.json"
    assert run("fit", pilot, "--input-tokens-col", "", "-o", model, "-q").exit_code == 0
    doc = {"model": str(model), "volume": {"requests": 1e6}, "horizon": "7d", "trials": 200}
    scenario = tmp_path / "s.yaml"
    notes = []
    for price in ({"input_per_mtok": 3.0, "output_per_mtok": 15.0}, {"output_per_mtok": 15.0}):
        scenario.write_text(yaml.safe_dump({**doc, "pricing": {"default": price}}))
        result = run("forecast", scenario, "--no-bridge", "--json", "-")
        assert result.exit_code == 0, result.stderr
        notes.append([n for n in json.loads(result.stdout)["notes"] if n.startswith("pricing:")])
    assert notes[0] == [
        "pricing: the model has no input_tokens for any class, so the input price is not "
        "charged (fit with `--input-tokens-col` to charge it)"
    ]
    assert notes[1] == []  # nothing charged for the input: nothing to say
