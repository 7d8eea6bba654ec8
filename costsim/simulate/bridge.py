"""The bridge from the naive linear estimate to the forecast (DESIGN section 5): steps that switch
one driver on at a time (mix shift and pricing, the unseen tail, spikes and events, retries,
cold starts, uncertainty), run on the forecast's first `BRIDGE_TRIALS` trials with its own
random numbers; and how the mean and P95 would move were the tails' caps 10x and 100x higher,
for the classes whose mean depends on them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .engine import Strata, build_strata
from .prepare import Prepared
from .reliability import cold_changed, retries_changed
from .traffic import ALL_DRIVERS, Drivers
from .unitcost import CAP_FACTORS

BRIDGE_TRIALS = 4000  # trials of the bridge's intermediate steps


@dataclass(frozen=True)
class BridgeStep:
    driver: str
    p50: float
    p95: float
    delta_p50: float
    delta_p95: float


@dataclass(frozen=True)
class CapSensitivity:
    """The forecast's mean and P95 had the caps of the classes whose mean depends on them been
    10x and 100x higher (on the bridge's trials, with the forecast's random numbers)."""

    classes: tuple[str, ...]
    factors: tuple[float, ...]  # 10, 100
    mean: tuple[float, ...]
    p95: tuple[float, ...]


def cap_sensitive(prep: Prepared) -> tuple[int, ...]:
    """The classes whose capped tail's mean depends on its cap (`cap_moves_mean`, found when
    the class was prepared)."""
    return tuple(j for j, pc in enumerate(prep.classes) if pc.cap_sensitive)


def cap_variants(prep: Prepared, sensitive: tuple[int, ...]) -> tuple[tuple[Strata, ...], ...]:
    """The strata of every class with the ``sensitive`` classes' caps 10x and 100x higher
    (`CAP_FACTORS`)."""
    variants = []
    for factor in CAP_FACTORS if sensitive else ():
        strata = list(prep.strata)
        for j in sensitive:
            unit = prep.classes[j].unit
            d = unit.dist
            assert d.cap is not None
            strata[j] = build_strata(
                replace(unit, dist=replace(d, cap=factor * d.cap)), prep.reference_intensity[j]
            )
        variants.append(tuple(strata))
    return tuple(variants)


def cap_sensitivity(
    prep: Prepared, sensitive: tuple[int, ...], totals: np.ndarray, variants: tuple[np.ndarray, ...]
) -> CapSensitivity | None:
    """The forecast's mean and P95 on the bridge's trials (its first ones: the same random
    numbers), as they are and with the sensitive classes' caps 10x and 100x higher."""
    if not sensitive:
        return None
    n = min(BRIDGE_TRIALS, totals.size)
    means, p95s = [float(totals[:n].mean())], [float(np.quantile(totals[:n], 0.95))]
    for t in variants:
        tot = t.sum(axis=1)
        means.append(float(tot.mean()))
        p95s.append(float(np.quantile(tot, 0.95)))
    names = tuple(prep.classes[j].name for j in sensitive)
    return CapSensitivity(names, (1.0, *CAP_FACTORS), tuple(means), tuple(p95s))


def cap_note(cs: CapSensitivity | None, classes: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The note on the classes whose mean depends on their cap: with the figures of ``cs``
    where the bridge ran, else naming ``classes`` alone."""
    names = cs.classes if cs is not None else classes
    if not names:
        return ()
    if cs is None:
        figures = "the forecast with its bridge (not --no-bridge) shows by how much"
    else:
        figures = f"on {BRIDGE_TRIALS:,} trials at most: " + "; ".join(
            f"{'with the model' + chr(39) + 's caps' if f == 1 else f'caps {f:g}x higher'}: "
            f"mean ${m:,.0f}, P95 ${p:,.0f}"
            for f, m, p in zip(cs.factors, cs.mean, cs.p95, strict=True)
        )
    return (
        f"the mean depends on the cap of {', '.join(names)} (a tail too heavy for its mean to "
        f"settle); {figures}. Set a physical cap (`costsim fit --cap`, `--max-tokens`): the "
        "default one is only a multiple of the largest value the pilot saw",
    )


def bridge_steps(prep: Prepared) -> list[tuple[str, Drivers | None]]:
    """The bridge's steps, each switching one more driver on (None: a step computed from the
    plan alone, or one the scenario leaves unchanged)."""
    sc = prep.scenario
    rel = sc.reliability
    has_spikes = sc.traffic.spikes.rate_per_day > 0 or bool(sc.traffic.events)
    return [
        ("mix shift & pricing" if sc.pricing is not None else "mix shift", None),
        ("unseen tail", Drivers(True, False, False, False, False)),
        ("spikes & events", Drivers(True, True, False, False, False) if has_spikes else None),
        ("retries", Drivers(True, True, True, False, False) if retries_changed(rel) else None),
        ("cold starts", Drivers(True, True, True, True, False) if cold_changed(rel) else None),
        ("uncertainty", ALL_DRIVERS),
    ]


def summarise_bridge(
    prep: Prepared, full: np.ndarray, step_totals: dict[str, np.ndarray]
) -> tuple[BridgeStep, ...]:
    """Naive -> forecast, switching each driver on in turn (common random numbers).

    The intermediate steps (``step_totals``) ran on the first ``BRIDGE_TRIALS`` trials (the
    same random numbers as the forecast's); the last step ends at the forecast's own quantiles,
    so the bridge adds up to the headline figures.
    """
    naive = prep.pilot_mean_cost * prep.plan.projected_requests
    mix_value = float(
        sum(
            pc.pilot_mean * prep.plan.base_no_events[:, j].sum()
            for j, pc in enumerate(prep.classes)
        )
    )
    out = []
    prev50 = prev95 = naive
    cur50 = cur95 = naive
    for name, drivers in bridge_steps(prep):
        if name.startswith("mix"):
            cur50 = cur95 = mix_value
        elif drivers is ALL_DRIVERS:
            cur50, cur95 = float(np.quantile(full, 0.5)), float(np.quantile(full, 0.95))
        elif drivers is not None:
            tot = step_totals[name].sum(axis=1)
            cur50, cur95 = float(np.quantile(tot, 0.5)), float(np.quantile(tot, 0.95))
        out.append(BridgeStep(name, cur50, cur95, cur50 - prev50, cur95 - prev95))
        prev50, prev95 = cur50, cur95
    return tuple(out)
