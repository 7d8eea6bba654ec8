"""The scenario format (DESIGN section 3), declared once.

Each section is a frozen pydantic dataclass whose fields are the keys of the YAML file: the
docstring under a field is its description (in the JSON Schema and the `init` template), its
type says what is allowed. Values read in other units are kept in the unit the code uses
(durations in seconds, with ``*_s`` properties); checks that span several keys run once the
keys they read are valid. What the code reads and the file does not say (the resolved model
path, the file's own path, the document as read) is added by `Scenario`, for the file it was
read from.

Bounds are generous (no real scenario comes near them) but finite: the engine multiplies
volume x growth x events x spikes x prices, and with these the product stays below about 1e40
USD, far from float overflow.

The sections have rooms of their own: `traffic` (volume, mix, traffic), `pricing` (prices and
deployments), `reliability` (reliability and budget), on what `common` holds (bounds, the
pydantic configuration, shared field types); this module puts them together (`ScenarioDoc`,
`Scenario`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, model_validator
from pydantic.dataclasses import dataclass

from ..defaults import MAX_SEED
from ..durations import Duration, format_duration
from ..formats import (
    Flag,
    NonEmpty,
    Problem,
    adapter,
    clean_schema,
    keys,
    problems_error,
    raise_problems,
    show,
    suggest,
)
from .common import (
    _CONFIG,
    _NICE_RESOLUTIONS,
    _VOLUME_AMOUNTS,
    BUCKET_TOLERANCE,
    DEFAULT_RESOLUTION_S,
    DEFAULT_TRIALS,
    MAX_BUCKETS,
    MAX_HORIZON_S,
    MAX_REQUESTS,
    MAX_SPIKES_PER_TRIAL,
    MAX_TRIALS,
    MIN_MIX_WEIGHT,
    MIN_RESOLUTION_S,
    MIN_TRIALS,
    MIX_TOLERANCE,
    THROTTLE,
    Share,
    Start,
    _cap,
    _config,
    _count,
    _Section,
)
from .pricing import Deployment, Pricing, ProvisionedOption, Route
from .reliability import Budget, Reliability
from .traffic import Mix, NewClass, Traffic, Volume


def _at_least_one(shares: dict[str, float] | None) -> dict[str, float] | None:
    if shares is not None and not shares:
        raise problems_error(
            [("", "expected at least one class: share (or leave mix out for the pilot mix)")]
        )
    return shares


@dataclass(config=_config(oneOf=[{"required": ["model"]}, {"required": ["pilot"]}]), kw_only=True)
class ScenarioDoc(_Section):
    """Production as expected, for costsim forecast and costsim check."""

    model: Annotated[str, NonEmpty()] | None = None
    """The fitted model file (costsim fit), relative to this file."""
    pilot: Annotated[str, NonEmpty()] | None = None
    """A pilot log to fit on the fly, relative to this file (instead of model)."""
    horizon: Annotated[float, Duration(MIN_RESOLUTION_S, MAX_HORIZON_S)]
    """How far ahead to forecast."""
    resolution: Annotated[float, Duration(MIN_RESOLUTION_S, MAX_HORIZON_S)] = DEFAULT_RESOLUTION_S
    """Time bucket of the simulation, dividing the horizon into at most 100000 buckets."""
    start: Annotated[str, Start()] | None = None
    """ISO date-time of the horizon's start (UTC unless a zone is given; aligns the daily and
    weekly shapes). Default: a Monday 00:00 UTC."""
    volume: Volume
    """Production volume: exactly one of requests, per_hour or per_day."""
    shares: Annotated[dict[str, Share], AfterValidator(_at_least_one)] | None = Field(
        default=None, alias="mix"
    )
    """Production share of each class; omitted = the pilot's mix. Absolute shares sum to 1
    (a class left out gets 0); with mix_relative they are weights on the pilot's shares."""
    mix_relative: Flag = False
    """Mix values multiply the pilot shares (renormalised)."""
    # Dirichlet concentration: 100 is about +-5 points on a share of 0.5, 1e6 a fixed mix; below
    # 1 each trial's mix is mostly one class, and a small class's traffic can jump to a million
    # times its share (whose requests the engine then draws one by one).
    mix_concentration: (
        Annotated[float, _cap(1.0, 1e6, "larger is surer: 100 is about +-5 points on a share")]
        | None
    ) = None
    """Dirichlet concentration of the per-trial mix (larger = surer; omitted = fixed)."""
    new_classes: dict[str, NewClass] = dataclasses.field(default_factory=dict)
    """Classes the pilot did not have, each borrowed from a pilot class; give each a share in
    mix."""
    traffic: Traffic = dataclasses.field(default_factory=Traffic)
    """Traffic shape, spikes and events."""
    pricing: Pricing | None = None
    """Token pricing; omitted = the pilot's billed cost."""
    deployments: dict[str, Deployment] = dataclasses.field(default_factory=dict)
    """Ways to serve the traffic, by name (kind api or provisioned); omitted = the pricing
    above."""
    route: Route | None = None
    """Which deployment serves each class (only with deployments)."""
    reliability: Reliability = dataclasses.field(default_factory=Reliability)
    """How production's reliability differs from the pilot's (omitted = the pilot's)."""
    budget: Budget = dataclasses.field(default_factory=Budget)
    """Budgets for `costsim check`, in USD over the horizon."""
    # Fewer trials cannot estimate a P95; more take hours (and memory for every trial's total).
    trials: Annotated[int, _count(MIN_TRIALS, MAX_TRIALS, cap=False)] = DEFAULT_TRIALS
    """Monte Carlo trials."""
    seed: Annotated[int, _count(0, MAX_SEED)] = 0
    """Random seed."""

    @property
    def horizon_s(self) -> float:
        return self.horizon

    @property
    def resolution_s(self) -> float:
        return self.resolution

    @property
    def buckets(self) -> int:
        return round(self.horizon / self.resolution)

    @property
    def mix(self) -> Mix:
        return Mix(self.shares, self.mix_relative, self.mix_concentration, dict(self.new_classes))

    @property
    def default_route(self) -> str | None:
        """The option of a class without a route of its own (None without deployments)."""
        if self.route is not None and self.route.default is not None:
            return self.route.default
        return next(iter(self.deployments), None)

    @model_validator(mode="after")
    def _consistent(self) -> ScenarioDoc:
        """The checks that span sections; the volume's total and an empty pricing settled."""
        problems = [
            *self._sources(),
            *self._resolution(),
            *self._volume(),
            *self._mix(),
            *self._traffic(),
            *self._deployments(),
        ]
        raise_problems(problems)
        if self.pricing is not None and self.pricing.default is None and not self.pricing.classes:
            object.__setattr__(self, "pricing", None)
        return self

    def _sources(self) -> list[Problem]:
        if self.model is None and self.pilot is None:
            return [
                ("model", "required (the fitted model file, or pilot: a log to fit on the fly)")
            ]
        if self.model is not None and self.pilot is not None:
            return [("model", "give either model (a fitted model) or pilot (a log), not both")]
        return []

    def _resolution(self) -> list[Problem]:
        horizon, resolution = self.horizon, self.resolution
        given = resolution != DEFAULT_RESOLUTION_S
        shown = (
            format_duration(resolution) if given else f"the default {format_duration(resolution)}"
        )
        if resolution > horizon * (1 + BUCKET_TOLERANCE):
            return [(
                "resolution",
                f"{shown} is longer than the horizon ({format_duration(horizon)}) (set a shorter "
                "resolution)",
            )]  # fmt: skip
        if not _divides(horizon, resolution):
            fits = [
                r for r in _NICE_RESOLUTIONS if _divides(horizon, r) and horizon / r <= MAX_BUCKETS
            ]
            hint = ""
            if fits:
                best = sorted(fits, key=lambda r: abs(math.log(r / resolution)))[:2]
                hint = f" (e.g. {' or '.join(format_duration(r) for r in sorted(best))})"
            return [(
                "resolution",
                f"{shown} does not divide the horizon ({format_duration(horizon)}) into whole "
                f"buckets ({horizon / resolution:.6g}){hint}",
            )]  # fmt: skip
        if round(horizon / resolution) > MAX_BUCKETS:
            return [(
                "resolution",
                f"{shown} gives {round(horizon / resolution)} buckets over the horizon "
                f"({format_duration(horizon)}), at most {MAX_BUCKETS} are allowed (set a coarser "
                "resolution)",
            )]  # fmt: skip
        return []

    def _volume(self) -> list[Problem]:
        """The total over the horizon filled in: a rate x the horizon, before growth."""
        vol, horizon = self.volume, self.horizon
        key = next((k for k in ("per_hour", "per_day") if getattr(vol, k) is not None), "requests")
        unit = _VOLUME_AMOUNTS[key]
        amount = getattr(vol, key)
        if not amount:  # built in code without any amount
            return [("volume", "give one of requests (over the horizon), per_hour or per_day")]
        requests = amount if unit is None else amount * horizon / unit
        total = requests if unit is None else requests * _mean_growth(vol.growth, horizon)
        if total > MAX_REQUESTS:
            grown = f" (growing {vol.growth:g} per 30 days)" if total != requests else ""
            return [(
                "volume",
                f"{total:.3g} requests over the horizon{grown} is beyond costsim's range "
                f"(at most {MAX_REQUESTS:.0e}): lower volume.{key}"
                + (" or volume.growth" if grown else ""),
            )]  # fmt: skip
        if vol.requests != requests:
            object.__setattr__(self, "volume", dataclasses.replace(vol, requests=requests))
        return []

    def _mix(self) -> list[Problem]:
        problems: list[Problem] = []
        shares = self.shares
        if shares:
            total = math.fsum(shares.values())
            if total <= 0:
                problems.append(("mix", "every share is 0 (at least one must be > 0)"))
            elif self.mix_relative and max(shares.values()) < MIN_MIX_WEIGHT:
                problems.append((
                    "mix",
                    f"with mix_relative, values are weights on the pilot shares and the largest "
                    f"is {max(shares.values()):g}: scale them up (the largest at least "
                    f"{MIN_MIX_WEIGHT:g})",
                ))  # fmt: skip
            elif not self.mix_relative and abs(total - 1.0) > MIX_TOLERANCE:
                problems.append(
                    ("mix", f"shares sum to {total:.6g}, expected 1 (or set mix_relative: true)")
                )
        for name, spec in self.new_classes.items():
            where = f"new_classes.{name}"
            if spec.like == name:
                problems.append(
                    (f"{where}.like", "a new class cannot be like itself (name a pilot class)")
                )
            elif spec.like in self.new_classes:
                problems.append(
                    (f"{where}.like", f"'{spec.like}' is itself a new class (name a pilot class)")
                )
            if shares is None or name not in shares:
                problems.append(
                    (where, "not in mix (give it a share there, or it gets no traffic)")
                )
        return problems

    def _traffic(self) -> list[Problem]:
        problems: list[Problem] = []
        horizon, sp = self.horizon, self.traffic.spikes
        per_trial = sp.rate * horizon / 86400.0
        if per_trial > MAX_SPIKES_PER_TRIAL:
            problems.append((
                "traffic.spikes.rate",
                f"{sp.rate:g} spikes a day over {format_duration(horizon)} is about "
                f"{per_trial:.3g} spikes per trial; costsim holds at most {MAX_SPIKES_PER_TRIAL} "
                "per trial (about 1 GiB for a chunk of trials): lower traffic.spikes.rate or "
                "shorten the horizon",
            ))  # fmt: skip
        for i, ev in enumerate(self.traffic.events):
            if ev.at + ev.duration > horizon * (1 + BUCKET_TOLERANCE):
                problems.append((
                    f"traffic.events[{i}]",
                    f"ends at {format_duration(ev.at + ev.duration)} (at {format_duration(ev.at)} "
                    f"+ duration {format_duration(ev.duration)}), after the horizon "
                    f"({format_duration(horizon)})",
                ))  # fmt: skip
        return problems

    def _deployments(self) -> list[Problem]:
        names = list(self.deployments)
        if self.route is not None and not names:
            return [("route", "only with deployments (name the options there)")]
        problems: list[Problem] = []
        for name, option in self.deployments.items():
            if isinstance(option, ProvisionedOption) and option.overflow != THROTTLE:
                where = f"deployments.{name}.overflow"
                if option.overflow == name:
                    problems.append(
                        (where, f"cannot overflow to itself; name another option or {THROTTLE}")
                    )
                elif option.overflow not in names:
                    others = [THROTTLE, *(n for n in names if n != name)]
                    problems.append((where, _unknown_option(option.overflow, others)))
        if self.route is not None:
            if self.route.default is not None and self.route.default not in names:
                problems.append(("route.default", _unknown_option(self.route.default, names)))
            for cls, target in self.route.classes.items():
                if target not in names:
                    problems.append((f"route.classes.{cls}", _unknown_option(target, names)))
        return problems


def _unknown_option(name: str, allowed: Sequence[str]) -> str:
    guess = suggest(name, allowed)
    hint = f"; did you mean '{guess}'?" if guess else ""
    return f"expected one of {', '.join(allowed)}, got {show(name)}{hint}"


def _divides(horizon: float, resolution: float) -> bool:
    ratio = horizon / resolution
    return abs(ratio - round(ratio)) <= BUCKET_TOLERANCE * ratio


def _mean_growth(growth: float, horizon: float) -> float:
    """Mean over the horizon of (1 + growth) ** (t / 30 days):
    (e^a - 1) / a with a = ln(1 + growth) x horizon / 30 days (1 when a = 0)."""
    a = math.log1p(growth) * horizon / (30 * 86400.0)
    return math.expm1(a) / a if a != 0 else 1.0


@dataclass(config=_CONFIG, kw_only=True)
class Scenario(ScenarioDoc):
    """A scenario as the code reads it: the document, and where it came from."""

    path: Path | None = None
    """The scenario file (None when built in code)."""
    model_path: Path | None = None
    """``model``, resolved relative to the scenario file."""
    pilot_path: Path | None = None
    """Or ``pilot`` (a log to fit on the fly), resolved likewise."""
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The document as read (dates as ISO text), for hashing and reports."""

    @property
    def document(self) -> dict[str, Any]:
        return self.raw


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the scenario format, for editors, from its declaration.

    The checks that span several keys (the resolution dividing the horizon, absolute mix shares
    summing to 1, an event ending within the horizon, warn below fail, the total volume with
    growth, spikes per trial, options named by overflow and route) and the bounds of durations
    written as text are made by `parse_scenario` only.
    """
    schema = clean_schema(adapter(ScenarioDoc).json_schema(by_alias=True))
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:  # every section where it is used: one self-contained tree
        if isinstance(node, list):
            return [inline(v) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref", "").removeprefix("#/$defs/")
        if ref in defs:
            return inline({**defs[ref], **{k: v for k, v in node.items() if k != "$ref"}})
        return {k: inline(v) for k, v in node.items()}

    schema = inline(schema)
    schema["properties"] = {k: schema["properties"][k] for k in keys(ScenarioDoc)}  # file order
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "costsim scenario",
        **schema,
    }
