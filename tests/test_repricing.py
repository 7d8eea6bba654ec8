"""Re-pricing a class from its tokens at the pilot's own price sheet reproduces its cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from costsim.modelfile import load_model
from costsim.repricing import reprice
from costsim.scenario import Price

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
