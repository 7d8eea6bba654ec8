"""Prices from the genai-prices catalog: lookups, identity with the catalog's own calc_price,
prices over time, and no network."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime

import numpy as np
import pytest
from genai_prices import Usage, calc_price
from genai_prices.data import providers as bundled_providers
from genai_prices.data_snapshot import DataSnapshot, set_custom_snapshot

from costsim.errors import CostsimError, PriceError
from costsim.simulate import prices


def _epoch(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def _reference(
    model: prices.CatalogModel, inp: float, out: float, cached: float, t: float
) -> float:
    """genai-prices' own price of one call (Decimal arithmetic, one call at a time)."""
    provider = next(p for p in bundled_providers if p.id == model.provider)
    usage = Usage(
        input_tokens=float(inp), output_tokens=float(out), cache_read_tokens=float(cached)
    )
    at = datetime.fromtimestamp(t, UTC)
    return float(model.info.calc_price(usage, provider, genai_request_timestamp=at).total_price)


@pytest.mark.parametrize(
    ("spelling", "key"),
    [
        ("openai:gpt-4o", "openai:gpt-4o"),
        ("gpt-4o", "openai:gpt-4o"),
        ("GPT-4o-2024-08-06", "openai:gpt-4o"),
        ("openai/gpt-4o", "openai:gpt-4o"),  # LiteLLM
        ("anthropic:claude-sonnet-4", "anthropic:claude-sonnet-4-0"),
        ("claude-3-5-sonnet-20241022", "anthropic:claude-3-5-sonnet"),
        ("anthropic/claude-sonnet-4", "anthropic:claude-sonnet-4-0"),
        # Bedrock modelId, plain, cross-region and with the provider named
        (
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
            "aws:regional.anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        (
            "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "aws:regional.anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        (
            "bedrock:anthropic.claude-3-5-sonnet-20240620-v1:0",
            "aws:regional.anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        ("azure:gpt-4o", "azure:gpt-4o"),  # Azure prices OpenAI models from OpenAI's entry
        ("openrouter/openai/gpt-4o", "openrouter:openai/gpt-4o"),
        ("  gemini-1.5-pro ", "google:gemini-1.5-pro"),
    ],
)
def test_resolve_spellings(spelling: str, key: str) -> None:
    model = prices.resolve(spelling)
    assert model.key == key
    assert model.ref == spelling.strip()


def test_resolved_model_is_frozen_and_equal_across_spellings() -> None:
    a, b = prices.resolve("gpt-4o"), prices.resolve("openai:gpt-4o")
    assert a == b and hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.model = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("spelling", "suggested"),
    [
        ("gpt-4oo", "openai:gpt-4o"),
        ("openai:gpt-4p", "openai:gpt-4o"),
        ("claude-sonet-4", "anthropic:claude-sonnet-4-0"),
    ],
)
def test_unknown_model_names_closest(spelling: str, suggested: str) -> None:
    with pytest.raises(PriceError) as info:
        prices.resolve(spelling)
    message = str(info.value)
    assert isinstance(info.value, CostsimError)
    assert "\n" not in message
    assert repr(spelling) in message and "closest:" in message and suggested in message


def test_unknown_model_without_close_match_and_empty_name() -> None:
    with pytest.raises(PriceError, match="no close match"):
        prices.resolve("zzzz-qqqq-xxxx-9999")
    with pytest.raises(PriceError, match="expected 'provider:model'"):
        prices.resolve("   ")


# (spelling, input, output, cached) on models with cached prices, tiers, a per-request fee,
# no cached price, price changes by date and by time of day.
CASES = [
    ("openai:gpt-4o", 1_000, 200, 0),
    ("gpt-4o-2024-08-06", 12_345, 678, 10_000),
    ("anthropic:claude-sonnet-4", 40_000, 1_500, 39_000),
    ("anthropic.claude-3-5-sonnet-20240620-v1:0", 2_000, 300, 512),
    ("gemini-1.5-pro", 150_000, 2_000, 0),  # above the 128k tier: every token at the tier rate
    ("gemini-1.5-pro", 100_000, 2_000, 50_000),  # cached tokens charged the input price
    ("google:gemini-3-pro-preview", 250_000, 8_000, 100_000),
    ("perplexity:sonar", 500, 700, 0),  # per-request fee
    ("openai:o3", 3_000, 9_000, 1_000),
    ("deepseek-chat", 8_000, 900, 4_000),
    ("deepseek:deepseek-v4-flash", 8_000, 900, 4_000),
    ("mistral-medium-latest", 5_000, 5_000, 0),
]
TIMES = [
    _epoch(2025, 1, 1, 12),
    _epoch(2025, 6, 10),  # o3's price cut, from 00:00 UTC
    _epoch(2026, 6, 16, 3, 30),
    _epoch(2026, 9, 10, 7),
    _epoch(2026, 11, 1, 20),
]


def test_price_calls_equals_calc_price() -> None:
    rows = [(case, t) for case in CASES for t in TIMES]
    models = [case[0] for case, _ in rows]
    inp, out, cached = (np.array([case[k] for case, _ in rows], dtype=float) for k in (1, 2, 3))
    t = np.array([t for _, t in rows])
    got = prices.price_calls(models, inp, out, cached, t)
    for i, ((spelling, *_), ti) in enumerate(rows):
        model = prices.resolve(spelling)
        usage = Usage(input_tokens=int(inp[i]), output_tokens=int(out[i]))
        usage.cache_read_tokens = int(cached[i])
        want = calc_price(
            usage,
            model_ref=model.model,
            provider_id=model.provider,
            genai_request_timestamp=datetime.fromtimestamp(ti, UTC),
        )
        assert want.model is model.info
        assert got[i] == pytest.approx(float(want.total_price), rel=1e-12, abs=1e-15), spelling


def test_every_catalog_model_prices_as_the_catalog_does() -> None:
    """Identity over the whole catalog: tiers, date and time-of-day periods, fees."""
    usages = np.array(
        [[1_000, 250, 0], [300_000, 4_000, 120_000], [1_500_000, 10, 1_500_000]], dtype=float
    )
    times = np.array([_epoch(2024, 3, 1, 2), _epoch(2027, 2, 1, 5)])
    inp = np.repeat(usages[:, 0], times.size)
    out = np.repeat(usages[:, 1], times.size)
    cached = np.repeat(usages[:, 2], times.size)
    t = np.tile(times, len(usages))
    checked = 0
    for model in prices.catalog():
        try:
            got = model.call_costs(inp, out, cached, t)
        except PriceError as e:
            assert "no per-token price" in str(e)
            continue
        want = [_reference(model, *row) for row in zip(inp, out, cached, t, strict=True)]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15, err_msg=model.key)
        checked += 1
    assert checked > 2200


def test_price_change_is_honoured_by_timestamp() -> None:
    # openai o3: $10/$40 per Mtok until 2025-06-09, $2/$8 from 2025-06-10 00:00 UTC.
    before, after = _epoch(2025, 6, 9, 23, 59, 59), _epoch(2025, 6, 10)
    cost = prices.price_calls(["openai:o3"] * 2, [1e6, 1e6], [1e6, 1e6], [0, 0], [before, after])
    np.testing.assert_allclose(cost, [10 + 40, 2 + 8])
    old = prices.per_mtok("openai:o3", datetime(2025, 6, 9, 23, 59, 59, tzinfo=UTC))
    new = prices.per_mtok("openai:o3", datetime(2025, 6, 10))  # naive = UTC
    assert (old.input_per_mtok, old.output_per_mtok) == (10.0, 40.0)
    assert (new.input_per_mtok, new.output_per_mtok) == (2.0, 8.0)
    rows = dict(prices.describe("openai:o3", datetime(2025, 1, 1, tzinfo=UTC)))
    assert rows["valid to"] == "2025-06-09 (next price from 2025-06-10)"
    assert dict(prices.describe("openai:o3"))["valid from"] == "2025-06-10"


def test_time_of_day_prices() -> None:
    # deepseek-chat: $0.27/$1.10 from 00:30 to 16:30 UTC, $0.135/$0.55 otherwise.
    day, night = _epoch(2026, 3, 2, 12), _epoch(2026, 3, 2, 20)
    cost = prices.price_calls(["deepseek-chat"] * 2, [1e6] * 2, [0, 0], None, [day, night])
    np.testing.assert_allclose(cost, [0.27, 0.135])
    sheet = prices.per_mtok("deepseek-chat", datetime(2026, 3, 2, 20, tzinfo=UTC))
    assert sheet.input_per_mtok == 0.135
    assert any("time of day" in note for note in sheet.notes)


def test_per_mtok_equals_catalog_prices() -> None:
    at = datetime(2026, 11, 1, tzinfo=UTC)
    model = prices.resolve("anthropic:claude-sonnet-4")
    catalog = model.info.get_prices(at)
    sheet = prices.per_mtok("anthropic:claude-sonnet-4", at)
    assert sheet.model == "anthropic:claude-sonnet-4-0"
    assert sheet.input_per_mtok == float(catalog.input_mtok)  # type: ignore[arg-type]
    assert sheet.output_per_mtok == float(catalog.output_mtok)  # type: ignore[arg-type]
    assert sheet.cached_per_mtok == float(catalog.cache_read_mtok)  # type: ignore[arg-type]
    assert sheet.per_request == 0.0
    assert (sheet.input_per_mtok, sheet.output_per_mtok, sheet.cached_per_mtok) == (3, 15, 0.3)
    assert any("cache_write_mtok" in note for note in sheet.notes)  # said, not modelled


def test_per_mtok_tiers_fee_and_missing_cached_price() -> None:
    gemini = prices.per_mtok("gemini-1.5-pro")
    assert (gemini.input_per_mtok, gemini.output_per_mtok) == (1.25, 5.0)
    assert gemini.cached_per_mtok == gemini.input_per_mtok  # no cached price: the input price
    assert any(note.startswith("tiered prices, base tier taken") for note in gemini.notes)
    assert any("128,000" in note for note in gemini.notes)
    sonar = prices.per_mtok("perplexity:sonar")
    assert sonar.per_request == pytest.approx(0.012)


def test_missing_models_give_nan_and_bad_counts_are_refused() -> None:
    cost = prices.price_calls(
        ["gpt-4o", None, float("nan"), "", "gpt-4o"], [1e6, 1, 1, 1, np.nan], [0, 1, 1, 1, 0]
    )
    assert cost[0] == pytest.approx(2.5)
    assert np.isnan(cost[1:]).all()
    with pytest.raises(PriceError, match="more cached than input tokens"):
        prices.price_calls(["gpt-4o"], [10], [1], [11])
    with pytest.raises(PriceError, match="output_tokens: 1 calls have a negative count"):
        prices.price_calls(["gpt-4o"], [10], [-1])
    with pytest.raises(PriceError, match="models: 2 values for 1 calls"):
        prices.price_calls(["gpt-4o", "gpt-4o"], [10], [1])
    with pytest.raises(PriceError, match="not in the genai-prices"):
        prices.price_calls(["gpt-4o", "no-such-model-xyz"], [1, 1], [1, 1])


def test_model_without_token_prices_is_refused_and_free_model_costs_nothing() -> None:
    whisper = prices.resolve("openai:whisper-1")  # priced per audio minute only
    with pytest.raises(PriceError, match="no per-token price"):
        prices.per_mtok(whisper.key)
    with pytest.raises(PriceError, match="no per-token price"):
        prices.price_calls([whisper.key], [1], [1])
    # An empty price sheet is a free model (here: included in the Copilot subscription).
    assert prices.price_calls(["github-copilot:gpt-4o"], [1e6], [1e6])[0] == 0.0
    free = prices.per_mtok("github-copilot:gpt-4o")
    assert (free.input_per_mtok, free.output_per_mtok, free.per_request) == (0.0, 0.0, 0.0)
    assert any("free" in note for note in free.notes)


def test_describe_rows() -> None:
    rows = dict(prices.describe("gpt-4o-2024-08-06", datetime(2026, 1, 1, tzinfo=UTC)))
    assert rows["provider"] == "openai (OpenAI)"
    assert rows["resolved from"] == "gpt-4o-2024-08-06"
    assert rows["input"] == "$2.5 / Mtok" and rows["cached input"] == "$1.25 / Mtok"
    assert rows["prices at"] == "2026-01-01T00:00:00+00:00"
    assert rows["tiers"] == "none"
    assert rows["catalog"].startswith(f"genai-prices {prices.catalog_version()} ")
    tiered = dict(prices.describe("gemini-1.5-pro"))
    assert "above 128,000 input tokens" in tiered["tiers"]


def test_bundled_data_even_if_auto_update_replaced_the_snapshot() -> None:
    """Another library's UpdatePrices installs a process-wide snapshot; we never read it."""
    set_custom_snapshot(DataSnapshot(providers=[], from_auto_update=True))
    try:
        prices.resolve.cache_clear()
        assert prices.per_mtok("openai:gpt-4o").input_per_mtok == 2.5
    finally:
        set_custom_snapshot(None)


def test_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("costsim.simulate.prices tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    prices.resolve.cache_clear()
    prices._snapshot.cache_clear()
    cost = prices.price_calls(["gpt-4o", "claude-3-5-sonnet-20241022"], [1e6, 1e6], [0, 0])
    np.testing.assert_allclose(cost, [2.5, 3.0])
    prices.describe("openai:o3")
    with pytest.raises(PriceError):
        prices.resolve("gpt-4oo")
    assert not any(t.name == "genai_prices:update" for t in threading.enumerate())


def test_no_network_from_import_on() -> None:
    """A fresh interpreter with sockets refused before costsim.simulate.prices (and genai-prices)
    load."""
    script = textwrap.dedent(
        """
        import socket

        def refuse(*args, **kwargs):
            raise OSError("network used")

        socket.socket.connect = refuse
        socket.create_connection = refuse
        from costsim.simulate import prices
        print(prices.price_calls(["openai:gpt-4o"], [1e6], [1e6], [5e5], [float("nan")])[0])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == pytest.approx(1.25 + 0.625 + 10)
