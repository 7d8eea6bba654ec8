"""A commented starting scenario for a fitted model (`costsim init`); its comments are the
descriptions the format declares for its keys."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from .format import ScenarioDoc
from .reliability import Reliability
from .traffic import Spikes, Traffic, Volume

if TYPE_CHECKING:
    from ..model.fit import FittedModel


def _note(section: Any, key: str) -> str:
    """The first sentence of a key's declared description, for a comment."""
    text = " ".join((section.__pydantic_fields__[key].description or "").split())
    first = text.split(". ")[0].rstrip(".")
    return first[:1].lower() + first[1:]


def _line(text: str, section: Any, key: str, width: int = 24) -> str:
    """``text`` followed by the description of ``key`` as a comment."""
    return f"{text:<{width}}# {_note(section, key)}"


_PLAIN_SCALAR = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "all"}


# Characters YAML allows unescaped in a double-quoted scalar (printable, not a line break).
_YAML_RAW = re.compile(
    "[\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)


def _yaml_str(text: str) -> str:
    """A string as a YAML scalar: plain when that reads back as the same string, else
    double-quoted with YAML escapes."""
    if _PLAIN_SCALAR.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif _YAML_RAW.fullmatch(ch):
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def _comment(text: str) -> str:
    """Text safe inside a YAML comment: one line, printable characters only."""
    return "".join(ch if _YAML_RAW.fullmatch(ch) else " " for ch in " ".join(text.split()))


def _rounded_shares(shares: dict[str, float]) -> tuple[dict[str, int], int]:
    """Shares as integers over 10**d summing exactly to 10**d (largest remainders), with the
    fewest decimals d >= 4 that keep every positive share positive."""
    total = math.fsum(shares.values())
    names = list(shares)
    units: list[int] = []
    d = 4
    for d in range(4, 13):
        scale = 10**d
        exact = [shares[n] / total * scale for n in names]
        units = [math.floor(x) for x in exact]
        order = sorted(range(len(names)), key=lambda i: units[i] - exact[i])
        for i in order[: scale - sum(units)]:
            units[i] += 1
        if all(u > 0 for u, n in zip(units, names, strict=True) if shares[n] > 0):
            break
    return dict(zip(names, units, strict=True)), d


def _money(x: float) -> str:
    """A round amount: two significant digits."""
    if x <= 0:
        return "0"
    digits = max(0, 1 - math.floor(math.log10(x)))
    return f"{round(x, -(math.floor(math.log10(x)) - 1)):,.{min(digits, 2)}f}".replace(",", "")


def _pct_range(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.1%}" if math.isclose(lo, hi) else f"{lo:.1%} to {hi:.1%} by class"


def init_scenario_text(model: FittedModel, model_path: str) -> str:
    """A commented starting scenario (YAML text) for a fitted model.

    The volume is the pilot's request rate extrapolated to the 30-day horizon (the pilot's
    request count when it had no timestamps), the mix is the pilot's; spikes, an event,
    pricing, reliability and a budget are given as commented-out examples.
    """
    names = list(model.classes)
    traffic = model.traffic
    horizon_h = 30 * 24.0
    if traffic.rate_per_hour:
        requests = max(1, round(traffic.rate_per_hour * horizon_h))
        volume_note = (
            f"the pilot's {traffic.rate_per_hour:,.1f} requests/hour extrapolated to 30 days"
        )
    else:
        requests = max(1, int(traffic.requests))
        volume_note = "the pilot's request count (it had no timestamps, so no rate)"
    units, decimals = _rounded_shares({n: c.share for n, c in model.classes.items()})
    width = max(len(_yaml_str(n)) for n in names) + 2
    unit_cost = {n: (c.cost_total or 0.0) / max(c.requests, 1) for n, c in model.classes.items()}
    cheapest, costliest = (
        min(names, key=unit_cost.__getitem__),
        max(names, key=unit_cost.__getitem__),
    )
    shapes = [
        label
        for label, profile in (
            ("hour of day", traffic.hourly_profile),
            ("weekday", traffic.weekday_profile),
        )
        if profile is not None
    ]
    shape_note = (
        f"the pilot's {' and '.join(shapes)} shape" if shapes else "the pilot had no shape: flat"
    )
    has_tokens = any("input_tokens" in c.quantities for c in model.classes.values())
    error_rates = [
        c.rates.error_rate for c in model.classes.values() if c.rates.error_rate is not None
    ]
    cold_rates = [
        c.rates.cold_start_rate
        for c in model.classes.values()
        if c.rates.cold_start_rate is not None
    ]
    costs = [c.cost_total for c in model.classes.values()]
    naive = None
    if all(c is not None for c in costs) and traffic.requests > 0:
        naive = math.fsum(c for c in costs if c is not None) / traffic.requests * requests

    lines = [
        "# costsim scenario: production as you expect it (`costsim forecast`, `costsim check`).",
        f"# Started from the fitted model of {_comment(str(model.source))} "
        f"({traffic.requests} requests, "
        f"{len(names)} classes).",
        "# Paths are relative to this file. Durations: 30d, 12h, 15m, 90s, 2w or seconds.",
        "",
        f"model: {_yaml_str(model_path)}",
        "",
        _line("horizon: 30d", ScenarioDoc, "horizon"),
        _line("resolution: 1h", ScenarioDoc, "resolution"),
        "# start: 2027-01-04T00:00:00Z   # start of the horizon (aligns daily and weekly shapes)",
        "",
        "volume:",
        f"  requests: {requests}   # over the horizon: {volume_note}",
        _line("  growth: 0", Volume, "growth"),
        _line("  uncertainty: 0", Volume, "uncertainty"),
        "",
        "# Production share of each class, here the pilot's. Absolute shares sum to 1 (a class",
        "# left out gets 0); with `mix_relative: true` they multiply the pilot's shares instead.",
        "mix:",
    ]
    for name in names:
        key = _yaml_str(name) + ":"
        lines.append(f"  {key:<{width}} {units[name] / 10**decimals:.{decimals}f}")
    lines += [
        "# mix_concentration: 300   # per-trial uncertainty of the mix (Dirichlet; larger = surer)",
        "# new_classes:             # classes the pilot did not have (give each a share in mix)",
        f"#   {_yaml_str(costliest + '_v2')}: {{like: {_yaml_str(costliest)}, cost_scale: 1.5}}",
        "",
        "traffic:",
        f"  shape: pilot          # {shape_note}; or flat",
        _line("  # hourly: [...]", Traffic, "hourly"),
        "  # weekly: [1, 1, 1, 1, 1, 0.6, 0.5]   # Monday first",
        "  # spikes:              # random spikes",
        _line("  #   rate: 0.5", Spikes, "rate"),
        "  #   magnitude: {median: 3, sd: 0.5}   # traffic multiplier (lognormal)",
        "  #   duration: 2h",
        "  #   classes: all       # or a list of classes",
        "  # events:              # scheduled, such as a launch",
        "  #   - {name: launch, at: 7d, duration: 2d, multiplier: 3, classes: all}",
        "",
        "# pricing:                 # re-price from tokens (USD per million); omitted = pilot cost",
    ]
    if not has_tokens:
        lines.append("#                           (this pilot has no token counts to re-price)")
    lines += [
        "#   default: {input_per_mtok: 3, output_per_mtok: 15, cached_per_mtok: 0.3}",
        "#   classes:",
        f"#     {_yaml_str(cheapest)}: {{input_per_mtok: 0.5, output_per_mtok: 1.5}}",
        '#   # or a catalog model: default: {model: "openai:gpt-4o"}  (see `costsim prices`)',
        "",
        "# deployments:             # ways to serve the traffic, for `costsim compare`",
        "#   api: {kind: api}       # the pilot's cost, or `pricing:` as above",
        "#   gpus:",
        "#     kind: provisioned",
        "#     gpu_hour_usd: 4.0    # on-demand price of one replica-hour",
        "#     throughput: {default: 20}   # requests per second one replica serves",
        "#     replicas: {min: 1, max: 8}",
        "#     autoscale: {target_utilization: 0.7, scale_up_delay: 5m, scale_down_after: 15m}",
        "#     overflow: api        # or throttle",
        "#     switch: {cost: 20000, lead_time: 14d}   # what leaving it costs",
        "",
        "# reliability:             # omitted = the pilot's behaviour",
        "#   error_rate: 0.02        # per attempt"
        + (f" (pilot: {_pct_range(error_rates)})" if error_rates else ""),
        _line("#   load_exponent: 1", Reliability, "load_exponent", 28),
        _line("#   max_attempts: 3", Reliability, "max_attempts", 28),
        "#   billed_failures: true",
        "#   cold_start_rate: 0.01   # share of requests served cold"
        + (f" (pilot: {_pct_range(cold_rates)})" if cold_rates else ""),
        "#   cold_start_cost_ratio: 1.2",
        "#   spike_cold_share: 0.3   # share of a spike's extra requests served cold",
        "",
        "# budget:                  # for `costsim check`: USD over the horizon",
    ]
    if naive is not None:
        lines.append(
            f"#   # naive linear estimate: ${naive:,.0f} (pilot mean cost per request x requests)"
        )
        fail, warn, amount = _money(1.5 * naive), _money(1.2 * naive), _money(2 * naive)
    else:
        fail, warn, amount = "120000", "100000", "150000"
    lines += [
        f"#   p95: {{fail: {fail}, warn: {warn}}}",
        f"#   exceed: [{{amount: {amount}, max_prob: 0.05}}]",
        "",
        "trials: 10000",
        "seed: 0",
        "",
    ]
    return "\n".join(lines)
