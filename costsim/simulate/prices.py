"""Model prices from a maintained catalog: pydantic's ``genai-prices``, using only the data
bundled in the installed package.

No network, ever. ``genai-prices`` can fetch newer prices from GitHub, but only through its
opt-in ``UpdatePrices`` background task, which installs a process-wide "custom snapshot". We
never start it, and we do not read the process-wide snapshot either: we build our own
``DataSnapshot`` from the bundled ``genai_prices.data.providers``, so a forecast depends only
on the installed package version (``CATALOG_VERSION``), even if another library in the same
process turned auto-update on.

Conventions (the same as ``genai_prices.calc_price``, which ``price_calls`` reproduces):

- **Cached tokens are part of the input tokens**, as OpenAI counts them (``prompt_tokens``
  includes ``cached_tokens``): a call costs
  ``(input - cached) * input_price + cached * cached_price + output * output_price``, per
  million tokens, plus the per-request fee. genai-prices defines ``input_tokens`` the same way
  (it includes cache reads and writes). Anthropic's ``input_tokens`` excludes them: a log
  adapter adds them before pricing. A model without a cached price charges cached tokens the
  input price. More cached than input tokens is refused.
- **Cache writes**, web searches, audio and the like are not modelled: only input, cached
  input and output tokens and a per-request fee are priced.
- **Tiers** (e.g. Gemini above 200k prompt tokens) are "cliff" tiers: once a call's *total*
  input tokens exceed a tier's start, all its tokens of every kind cost the tier's rate.
  ``price_calls`` applies them per call; ``per_mtok`` (one flat price sheet) takes the base
  tier and says so in ``notes``.
- **Dates**: a model's prices can change at a UTC date (the new price applies from 00:00 UTC
  that day) or by time of day (off-peak prices). A call is priced at the prices in force at
  its timestamp (epoch seconds, UTC); an unknown timestamp (NaN) at today's prices.
- **Request-context variants** (batch, flex/priority tiers, fast mode) are not applied: the
  standard prices are used.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from costsim.errors import PriceError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices

__all__ = [
    "CatalogModel",
    "CatalogPrice",
    "catalog",
    "catalog_version",
    "describe",
    "per_mtok",
    "price_calls",
    "resolve",
]

_MTOK = 1_000_000.0
_DAY = 86_400.0
_EPOCH = date(1970, 1, 1)
# "provider:model": a provider id is a plain word (Bedrock ids such as
# "anthropic.claude-3-5-sonnet-20240620-v1:0" have a colon too, but a dot before it).
_PROVIDER_PREFIX = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_-]*):(.+)$")
# Price keys costsim prices; any other key a model has is listed as "not modelled".
_MODELLED_KEYS = frozenset({"input_mtok", "output_mtok", "cache_read_mtok", "requests_kcount"})


@dataclass(frozen=True)
class CatalogModel:
    """One model of the catalog as resolved from a spelling: ``provider`` and ``model`` are the
    catalog's ids (``provider:model`` names it unambiguously), ``name`` its display name, ``ref``
    the spelling that was resolved, and ``info`` the catalog entry with its prices over time."""

    provider: str
    model: str
    name: str
    provider_name: str = field(compare=False)
    ref: str = field(compare=False)
    info: ModelInfo = field(repr=False, compare=False)

    @property
    def key(self) -> str:
        """``provider:model``, the spelling that resolves back to exactly this model."""
        return f"{self.provider}:{self.model}"

    def call_costs(
        self,
        input_tokens: Any,
        output_tokens: Any,
        cached_input_tokens: Any = None,
        timestamps: Any = None,
    ) -> np.ndarray:
        """USD per call of this model, vectorised over calls (per price period, not per call).
        ``cached_input_tokens`` ``None`` = none cached; ``timestamps`` epoch seconds, ``None`` or
        NaN = now. A NaN token count gives a NaN cost."""
        inp = _as_float_array(input_tokens, "input_tokens")
        out = _as_float_array(output_tokens, "output_tokens", like=inp)
        cached = (
            np.zeros_like(inp)
            if cached_input_tokens is None
            else _as_float_array(cached_input_tokens, "cached_input_tokens", like=inp)
        )
        t = _timestamps(timestamps, inp)
        _check_tokens(inp, out, cached)
        periods = _periods(self.info)
        chosen = _period_index(periods, t)
        cost = np.full(inp.shape, np.nan)
        for i in np.unique(chosen):
            rows = chosen == i
            prices = periods[i][1]
            _require_token_prices(self, prices)
            cost[rows] = _cost(prices, inp[rows], out[rows], cached[rows])
        return cost


@dataclass(frozen=True)
class CatalogPrice:
    """A flat price sheet in USD (the fields of ``costsim.scenario.Price``): per million input,
    output and cached input tokens, and per request. ``cached_per_mtok`` is the input price when
    the model has no cached price, and ``per_request`` is 0 without a fee, so no field falls back
    to another sheet. ``notes`` say what the flat sheet leaves out (tiers, time of day, ...)."""

    input_per_mtok: float
    output_per_mtok: float
    cached_per_mtok: float
    per_request: float
    model: str
    notes: tuple[str, ...] = ()


def catalog_version() -> str:
    """The installed genai-prices version, whose bundled data is the catalog. The package
    exposes no separate data date."""
    import genai_prices

    return str(genai_prices.__version__)


@lru_cache(maxsize=1)
def _snapshot() -> DataSnapshot:
    # The bundled data only: never ``get_snapshot()``, which may return prices fetched by an
    # ``UpdatePrices`` task someone else started.
    from genai_prices.data import providers
    from genai_prices.data_snapshot import DataSnapshot

    return DataSnapshot(providers=providers, from_auto_update=False)


def catalog() -> tuple[CatalogModel, ...]:
    """Every model of the catalog, provider by provider, in the catalog's order."""
    return tuple(
        _catalog_model(provider, info, f"{provider.id}:{info.id}")
        for provider in _snapshot().providers
        for info in provider.models
    )


def _catalog_model(provider: Provider, info: ModelInfo, ref: str) -> CatalogModel:
    return CatalogModel(
        provider=provider.id,
        model=info.id,
        name=info.name or info.id,
        provider_name=provider.name,
        ref=ref,
        info=info,
    )


@lru_cache(maxsize=1024)
def resolve(name: str) -> CatalogModel:
    """The catalog model a spelling names: ``provider:model`` ("openai:gpt-4o",
    "anthropic:claude-sonnet-4"), or a model id as logs write it — plain ("gpt-4o-2024-08-06"),
    Bedrock ("anthropic.claude-3-5-sonnet-20240620-v1:0") or LiteLLM ("openai/gpt-4o").

    A plain name goes to the provider the catalog infers from it, else to the first provider
    (in catalog order) that lists it; write ``provider:model`` to choose another.
    """
    from genai_prices.data_snapshot import find_provider_by_id

    ref = name.strip() if isinstance(name, str) else ""
    if not ref:
        raise PriceError(
            f"model {name!r}: expected 'provider:model' (e.g. 'openai:gpt-4o') or a model id "
            "as the logs write it"
        )
    snap = _snapshot()
    prefixed = _PROVIDER_PREFIX.match(ref)
    if prefixed and (provider := find_provider_by_id(snap.providers, prefixed[1])) is not None:
        model_ref = prefixed[2].strip()
        try:
            provider, info = snap.find_provider_model(model_ref, None, provider.id, None)
        except LookupError:
            raise PriceError(_unknown(ref, model_ref, provider)) from None
        return _catalog_model(provider, info, ref)

    # LiteLLM's "provider/model" (the catalog splits it only when the prefix is a provider),
    # then the provider inferred from the name.
    for provider_id in ("litellm", None) if "/" in ref else (None,):
        try:
            provider, info = snap.find_provider_model(ref, None, provider_id, None)
        except LookupError:
            continue
        return _catalog_model(provider, info, ref)
    # Bedrock ids and others no provider claims by name: the first provider listing it.
    for provider in snap.providers:
        if (listed := provider.find_model(ref)) is not None:
            return _catalog_model(provider, listed, ref)
    raise PriceError(_unknown(ref, ref, None))


def _unknown(ref: str, model_ref: str, provider: Provider | None) -> str:
    """One line: the spelling, where it was looked for, and the closest catalog ids."""
    providers = [provider] if provider is not None else _snapshot().providers
    candidates: dict[str, str] = {}
    for p in providers:
        for info in p.models:
            for spelling in (info.id, info.name):
                if spelling:
                    candidates.setdefault(spelling.lower(), f"{p.id}:{info.id}")
    query = model_ref.lower()
    close = difflib.get_close_matches(query, list(candidates), n=10, cutoff=0.6)
    # A LiteLLM/OpenRouter-style prefix the catalog does not know: also try the last part.
    if "/" in query:
        tail = query.rsplit("/", 1)[1]
        close += difflib.get_close_matches(tail, list(candidates), n=10, cutoff=0.6)
    suggestions = list(dict.fromkeys(candidates[c] for c in close))[:5]
    where = f"provider {provider.id!r} of " if provider is not None else ""
    hint = (
        f"closest: {', '.join(suggestions)}"
        if suggestions
        else "no close match; `genai-prices list` shows the catalog"
    )
    return (
        f"model {ref!r} is not in {where}the genai-prices {catalog_version()} price catalog; "
        f"{hint} (write it as provider:model)"
    )


# --- prices over time --------------------------------------------------------------------


def _periods(info: ModelInfo) -> list[tuple[Any, ModelPrice]]:
    """(constraint, prices) in catalog order; a later active period overrides an earlier one,
    and the first applies when none is active (``ModelInfo.get_prices``)."""
    from genai_prices.types import ModelPrice

    if isinstance(info.prices, ModelPrice):
        return [(None, info.prices)]
    return [(c.constraint, c.prices) for c in info.prices]


def _day_start(d: date) -> float:
    """Epoch seconds of 00:00 UTC on ``d``: a start-date price applies from then."""
    return (d - _EPOCH).days * _DAY


def _seconds_of_day(value: time) -> float:
    """A time of day as seconds after 00:00 UTC (naive times are UTC, as in the catalog)."""
    if value.tzinfo is not None:
        value = datetime.combine(_EPOCH, value).astimezone(UTC).time()
    return value.hour * 3600.0 + value.minute * 60.0 + value.second + value.microsecond / 1e6


def _active(constraint: Any, t: np.ndarray) -> np.ndarray:
    """Whether a period's constraint holds at each timestamp (epoch seconds, UTC)."""
    from genai_prices.types import StartDateConstraint, TimeOfDateConstraint

    if constraint is None:
        return np.ones(t.shape, dtype=bool)
    if isinstance(constraint, StartDateConstraint):
        return np.asarray(t >= _day_start(constraint.start_date))
    if isinstance(constraint, TimeOfDateConstraint):
        sod = np.mod(t, _DAY)
        start = _seconds_of_day(constraint.start_time)
        end = _seconds_of_day(constraint.end_time)
        if end < start:  # the window wraps past midnight
            return np.asarray((sod >= start) | (sod < end))
        return np.asarray((sod >= start) & (sod < end))
    raise PriceError(f"unsupported price constraint in the catalog: {constraint!r}")


def _period_index(periods: Sequence[tuple[Any, ModelPrice]], t: np.ndarray) -> np.ndarray:
    """Index of the period in force at each timestamp: the last active one, else the first."""
    chosen = np.zeros(t.shape, dtype=np.intp)
    undecided = np.ones(t.shape, dtype=bool)
    for i in range(len(periods) - 1, 0, -1):  # period 0 is the default either way
        active = _active(periods[i][0], t)
        chosen[undecided & active] = i
        undecided &= ~active
    return chosen


def _at_seconds(at: datetime | None) -> float:
    if at is None:
        return datetime.now(UTC).timestamp()
    if at.tzinfo is None:  # naive = UTC, as genai-prices reads it
        at = at.replace(tzinfo=UTC)
    return at.timestamp()


# --- the arithmetic ----------------------------------------------------------------------


def _rate(price: Decimal | TieredPrices | None, total_input: np.ndarray) -> np.ndarray:
    """USD per unit at each call: the base price, or the tier the call's total input tokens
    exceed (cliff tiers: the whole count is charged the tier's rate)."""
    from genai_prices.types import TieredPrices

    if price is None:
        return np.zeros(total_input.shape)
    if isinstance(price, TieredPrices):
        rate = np.full(total_input.shape, float(price.base))
        for tier in sorted(price.tiers, key=lambda tier: tier.start):
            rate[total_input > tier.start] = float(tier.price)
        return rate
    return np.full(total_input.shape, float(price))


def _cost(prices: ModelPrice, inp: np.ndarray, out: np.ndarray, cached: np.ndarray) -> np.ndarray:
    # cost = ((input - cached) * p_in + cached * p_cached + output * p_out) / 1e6 + fee;
    # without a cached price, cached tokens are plain input tokens.
    has_cached = prices.cache_read_mtok is not None
    uncached = inp - cached if has_cached else inp
    tokens = uncached * _rate(prices.input_mtok, inp) + out * _rate(prices.output_mtok, inp)
    if has_cached:
        tokens = tokens + cached * _rate(prices.cache_read_mtok, inp)
    return np.asarray(tokens / _MTOK + _fee(prices))


def _fee(prices: ModelPrice) -> float:
    """USD per request (the catalog prices requests per thousand)."""
    return (_base(prices.requests_kcount) or 0.0) / 1000.0


def _require_token_prices(model: CatalogModel, prices: ModelPrice) -> None:
    """Refuse a model priced only by other units (audio hours, pages, ...): its tokens would
    cost $0. A sheet with no price at all is a free model (e.g. ``:free``, a subscription)."""
    token_priced = any(getattr(prices, key) is not None for key in _MODELLED_KEYS)
    if not token_priced and (priced := ", ".join(_other_prices(prices))):
        raise PriceError(
            f"model {model.key!r} has no per-token price in the catalog (it prices {priced}); "
            "give its prices in the scenario instead"
        )


def _as_float_array(values: Any, what: str, like: np.ndarray | None = None) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as e:
        raise PriceError(f"{what}: expected numbers ({e})") from None
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    if like is not None and arr.shape != like.shape:
        raise PriceError(f"{what}: {arr.size} values for {like.size} calls")
    return arr


def _timestamps(timestamps: Any, like: np.ndarray) -> np.ndarray:
    now = datetime.now(UTC).timestamp()
    if timestamps is None:
        return np.full(like.shape, now)
    t = _as_float_array(timestamps, "timestamps", like=like)
    return np.where(np.isfinite(t), t, now)


def _check_tokens(inp: np.ndarray, out: np.ndarray, cached: np.ndarray) -> None:
    named = (("input_tokens", inp), ("output_tokens", out), ("cached_input_tokens", cached))
    for what, arr in named:
        bad = np.flatnonzero(arr < 0)
        if bad.size:
            raise PriceError(
                f"{what}: {bad.size} calls have a negative count (first: call {bad[0]}, "
                f"{arr[bad[0]]:g}); counts must be >= 0"
            )
    over = np.flatnonzero(cached > inp)
    if over.size:
        i = over[0]
        raise PriceError(
            f"cached_input_tokens: {over.size} calls have more cached than input tokens (first: "
            f"call {i}, {cached[i]:g} > {inp[i]:g}); cached tokens are part of the input tokens, "
            "as OpenAI counts them"
        )


def price_calls(
    models: Any,
    input_tokens: Any,
    output_tokens: Any,
    cached_input_tokens: Any = None,
    timestamps: Any = None,
) -> np.ndarray:
    """USD per call at catalog prices. ``models`` are spellings ``resolve`` accepts (each
    distinct one resolved once); a missing model (None, NaN, "") gives NaN for that call, for
    the caller to report. ``cached_input_tokens`` are part of ``input_tokens`` (``None`` = none
    cached); ``timestamps`` are epoch seconds (``None``/NaN = now). Equals
    ``genai_prices.calc_price`` call by call. Raises PriceError for an unknown model."""
    names = np.asarray(models, dtype=object).reshape(-1)
    inp = _as_float_array(input_tokens, "input_tokens")
    if names.shape != inp.shape:
        raise PriceError(f"models: {names.size} values for {inp.size} calls")
    out = _as_float_array(output_tokens, "output_tokens", like=inp)
    cached = (
        np.zeros_like(inp)
        if cached_input_tokens is None
        else _as_float_array(cached_input_tokens, "cached_input_tokens", like=inp)
    )
    t = _timestamps(timestamps, inp)
    codes, uniques = pd.factorize(names, use_na_sentinel=True)
    cost = np.full(inp.shape, np.nan)
    for code, name in enumerate(uniques):
        if not isinstance(name, str) or not name.strip():
            continue
        rows = codes == code
        model = resolve(name)
        try:
            cost[rows] = model.call_costs(inp[rows], out[rows], cached[rows], t[rows])
        except PriceError as e:
            raise PriceError(f"model {name!r}: {e}") from None
    return cost


# --- flat sheets and descriptions --------------------------------------------------------


def _base(price: Decimal | TieredPrices | None) -> float | None:
    from genai_prices.types import TieredPrices

    if price is None:
        return None
    return float(price.base if isinstance(price, TieredPrices) else price)


def _money(value: float) -> str:
    return f"${value:,.6g}"


def _tier_text(prices: ModelPrice) -> list[str]:
    from genai_prices.types import TieredPrices

    out = []
    for key, label in (
        ("input_mtok", "input"),
        ("cache_read_mtok", "cached input"),
        ("output_mtok", "output"),
    ):
        price = getattr(prices, key)
        if isinstance(price, TieredPrices):
            steps = ", ".join(
                f"{_money(float(t.price))} above {t.start:,} input tokens" for t in price.tiers
            )
            out.append(f"{label} {_money(float(price.base))} / Mtok, {steps}")
    return out


def _other_prices(prices: ModelPrice) -> list[str]:
    """The model's prices costsim does not model (cache writes, searches, audio, ...)."""
    return [
        f"{key} {_money(b)}"
        for key, value in prices.__dict__.items()
        if value is not None
        and not key.startswith("_")
        and key not in _MODELLED_KEYS
        and (b := _base(value)) is not None
    ]


def _time_of_day_text(periods: Sequence[tuple[Any, ModelPrice]]) -> list[str]:
    from genai_prices.types import TimeOfDateConstraint

    def sheet(prices: ModelPrice) -> str:
        return (
            f"input {_money(_base(prices.input_mtok) or 0.0)}, "
            f"output {_money(_base(prices.output_mtok) or 0.0)} / Mtok"
        )

    def hhmm(value: time) -> str:
        seconds = _seconds_of_day(value)
        return f"{seconds // 3600:02.0f}:{seconds % 3600 // 60:02.0f}"

    out = [
        f"{hhmm(c.start_time)}-{hhmm(c.end_time)} UTC: {sheet(prices)}"
        for c, prices in periods
        if isinstance(c, TimeOfDateConstraint)
    ]
    if out:  # the sheet in force outside the windows
        out.insert(0, f"otherwise: {sheet(periods[0][1])}")
    return out


def _in_force(model: CatalogModel, at: datetime | None) -> tuple[int, float]:
    periods = _periods(model.info)
    t = _at_seconds(at)
    return int(_period_index(periods, np.array([t]))[0]), t


def per_mtok(name: str, at: datetime | None = None) -> CatalogPrice:
    """The flat price sheet of a model at ``at`` (UTC; ``None`` = now), for a scenario's
    ``pricing: {default: {model: "openai:gpt-4o"}}``. Tiered prices: the base tier (noted)."""
    model = resolve(name)
    periods = _periods(model.info)
    i, _ = _in_force(model, at)
    prices = periods[i][1]
    _require_token_prices(model, prices)
    notes: list[str] = []
    if tiers := _tier_text(prices):
        notes.append("tiered prices, base tier taken: " + "; ".join(tiers))
    if tod := _time_of_day_text(periods):
        notes.append("prices depend on the time of day; taken at the time given: " + "; ".join(tod))
    input_price = _base(prices.input_mtok)
    output_price = _base(prices.output_mtok)
    cached_price = _base(prices.cache_read_mtok)
    if not any(getattr(prices, key) is not None for key in _MODELLED_KEYS):
        notes.append("the catalog lists no price: free (e.g. a free tier or a subscription)")
    elif input_price is None:
        notes.append("no input-token price: input tokens are free")
    if output_price is None and input_price is not None:
        notes.append("no output-token price: output tokens are free")
    if cached_price is None:
        notes.append("no cached-input price: cached tokens cost the input price")
    if other := _other_prices(prices):
        notes.append("not modelled: " + ", ".join(other))
    return CatalogPrice(
        input_per_mtok=input_price or 0.0,
        output_per_mtok=output_price or 0.0,
        cached_per_mtok=cached_price if cached_price is not None else (input_price or 0.0),
        per_request=_fee(prices),
        model=model.key,
        notes=tuple(notes),
    )


def _validity(model: CatalogModel, at: datetime | None) -> tuple[str, str]:
    """(valid from, valid to) of the start-date period in force at ``at``."""
    from genai_prices.types import StartDateConstraint

    periods = _periods(model.info)
    i, t = _in_force(model, at)
    constraint = periods[i][0]
    since = (
        constraint.start_date.isoformat()
        if isinstance(constraint, StartDateConstraint)
        else "(none given: the model's first price in the catalog)"
    )
    later = [
        c.start_date
        for c, _ in periods[i + 1 :]
        if isinstance(c, StartDateConstraint) and _day_start(c.start_date) > t
    ]
    if not later:
        return since, "(open)"
    nxt = min(later)
    return since, f"{(nxt - timedelta(days=1)).isoformat()} (next price from {nxt.isoformat()})"


def describe(name: str, at: datetime | None = None) -> list[tuple[str, str]]:
    """Rows (label, value) for ``costsim prices MODEL``: the model, its price sheet at ``at``
    (``None`` = now), when that sheet holds, its tiers and the catalog version."""
    model = resolve(name)
    sheet = per_mtok(name, at)
    periods = _periods(model.info)
    i, t = _in_force(model, at)
    prices = periods[i][1]
    valid_from, valid_to = _validity(model, at)
    rows = [
        ("provider", f"{model.provider} ({model.provider_name})"),
        ("model", model.model if model.name == model.model else f"{model.model} ({model.name})"),
    ]
    if model.ref not in (model.key, model.model):
        rows.append(("resolved from", model.ref))
    if model.info.deprecated:
        rows.append(("deprecated", "yes (still priced)"))
    cached = _money(sheet.cached_per_mtok) + " / Mtok"
    if prices.cache_read_mtok is None:
        cached += " (no cached price: the input price)"
    rows += [
        ("input", f"{_money(sheet.input_per_mtok)} / Mtok"),
        ("output", f"{_money(sheet.output_per_mtok)} / Mtok"),
        ("cached input", cached),
    ]
    if prices.requests_kcount is not None:
        rows.append(("per request", _money(sheet.per_request)))
    rows += [
        ("prices at", datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")),
        ("valid from", valid_from),
        ("valid to", valid_to),
        ("tiers", "; ".join(_tier_text(prices)) or "none"),
    ]
    if tod := _time_of_day_text(periods):
        rows.append(("time of day", "; ".join(tod)))
    if other := _other_prices(prices):
        rows.append(("not modelled", ", ".join(other)))
    rows.append(("catalog", f"genai-prices {catalog_version()} (bundled data; no auto-update)"))
    return rows
