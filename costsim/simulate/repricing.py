"""Re-pricing a class from its tokens under a scenario's price sheet (DESIGN section 2).

A class's per-request cost under other prices is drawn from its token quantities joined by its
Gaussian copula, priced, and refitted as a spliced distribution (the shape of one request's
cost). What the pilot does not know flows in row by row: each parameter row scales that cost by
its own mean price, computed from the token quantities' own rows (their margins) and, where
cached tokens are priced apart, a draw of the copula's correlation between the cached share and
the input tokens, evaluated on uniforms common to all rows.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
from scipy import special

from ..errors import PriceError, ScenarioError
from ..model.fit import ClassFit, fit_values
from ..scenario import Price, Scenario
from .unitcost import UnitCost

REPRICE_MIN_SAMPLE = 20_000
REPRICE_MAX_SAMPLE = 2_000_000  # bounded memory whatever a model file says of a class's size
COPULA_COMMON = 4096  # common normal draws on which each row's copula correlation is evaluated


def effective_price(scenario: Scenario, name: str, at: float | None = None) -> Price | None:
    """A class's price sheet: its own keys, then `pricing.default`'s; where a key is still
    missing and a catalog `model` is named (its own first), the catalog's price in force at
    ``at`` (epoch seconds; None = today) fills it (`costsim.simulate.prices`, bundled, no
    network)."""
    pricing = scenario.pricing
    if pricing is None:
        return None
    own = pricing.classes.get(name)
    default = pricing.default
    if own is None and default is None:
        return None
    fields = ("input_per_mtok", "output_per_mtok", "cached_per_mtok", "per_request")
    merged: dict[str, float | None] = {}
    for f in fields:
        value = getattr(own, f) if own is not None else None
        if value is None and default is not None:
            value = getattr(default, f)
        merged[f] = value
    own_model = own.model if own is not None else None
    model = own_model or (default.model if default is not None else None)
    if model is not None and any(v is None for v in merged.values()):
        from .prices import per_mtok

        where = f"pricing.classes.{name}.model" if own_model else "pricing.default.model"
        when = None if at is None else datetime.fromtimestamp(at, tz=UTC)
        try:
            sheet = per_mtok(model, when)
        except PriceError as exc:  # named as the scenario's other errors are
            file = f"{scenario.path}: " if scenario.path is not None else ""
            raise ScenarioError(f"{file}{where}: {exc}") from None
        merged = {f: v if v is not None else getattr(sheet, f) for f, v in merged.items()}
    return Price(**merged, model=model)


def _copula_sample(cf: ClassFit, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Joint draws of a class's quantities through its Gaussian copula."""
    names, corr = cf.dependence
    w, v = np.linalg.eigh((corr + corr.T) / 2)
    root = v * np.sqrt(np.clip(w, 0.0, None))
    z = rng.standard_normal((n, len(names))) @ root.T
    u = np.clip(special.ndtr(z), 1e-12, 1 - 1e-12)
    return {q: cf.quantities[q].dist.ppf(u[:, j]) for j, q in enumerate(names)}


def reprice(cf: ClassFit, price: Price, rng: np.random.Generator) -> tuple[UnitCost, float]:
    """Per-request cost under a price sheet: copula draws of tokens, priced, then refitted."""
    have = set(cf.quantities)
    if not have & {"input_tokens", "output_tokens"}:
        raise ScenarioError(
            f"pricing.classes.{cf.name}: the model has no token columns for class '{cf.name}', "
            "so it cannot be re-priced; remove its price or refit with token columns"
        )
    n = min(max(cf.requests, REPRICE_MIN_SAMPLE), REPRICE_MAX_SAMPLE)
    draws = _copula_sample(cf, n, rng)
    zero = np.zeros(n)
    inp = draws.get("input_tokens", zero)
    out = draws.get("output_tokens", zero)
    cached = draws["cached_share"] * inp if "cached_share" in draws else zero
    p_in = (price.input_per_mtok or 0.0) / 1e6
    p_out = (price.output_per_mtok or 0.0) / 1e6
    p_cached = (
        price.cached_per_mtok if price.cached_per_mtok is not None else price.input_per_mtok or 0.0
    ) / 1e6
    fee = price.per_request or 0.0
    cost = (inp - cached) * p_in + cached * p_cached + out * p_out + fee
    caps = {q: cf.quantities[q].dist.cap for q in cf.quantities}
    cap = None
    if all(caps.get(q) is not None for q in ("input_tokens", "output_tokens") if q in caps):
        cap = (
            (caps.get("input_tokens") or 0.0) * max(p_in, p_cached)
            + (caps.get("output_tokens") or 0.0) * p_out
            + fee
        )
        cap = max(cap, float(cost.max()))
    qf = fit_values(cost, rng, cap=cap)
    # Row 0 is the re-priced point estimate; the other rows carry what the pilot does not know
    # of the tokens (each token quantity's own parameter rows) as a scale on the cost: the mean
    # price of a row over the mean price of row 0. (The refit's own draws are left out: they
    # would measure the noise of the synthetic sample, not of the pilot.)
    means = {
        q: quantity_rows(cf, q, rng).row_means()
        for q in ("input_tokens", "output_tokens", "cached_share")
        if q in cf.quantities
    }
    rows = next(iter(means.values())).size
    ones, zeros = np.ones(rows), np.zeros(rows)
    e_in, e_out = means.get("input_tokens", zeros), means.get("output_tokens", zeros)
    cached_frac = float(cached.sum() / inp.sum()) if inp.sum() > 0 else 0.0
    cs = means.get("cached_share")
    a = cached_frac * (cs / cs[0] if cs is not None and cs[0] > 0 else ones)
    if cs is not None and p_cached != p_in:
        a = a * _cached_dependence_rows(cf, rows, rng)
    row_mean = fee + p_out * e_out + e_in * (p_in * (1.0 - a) + p_cached * a)
    row_scale = row_mean / row_mean[0] if row_mean[0] > 0 else ones
    unit = replace(UnitCost.from_fit(qf.dist, None, None, rows=rows), row_scale=row_scale)
    return unit, float(cost.mean())


def unpriced_tokens(cf: ClassFit, price: Price) -> tuple[str, ...]:
    """The token quantities a price sheet charges that the class's model lacks (fitted
    without that column): re-pricing leaves their cost out."""
    charged = {
        "input_tokens": bool(price.input_per_mtok) or bool(price.cached_per_mtok),
        "output_tokens": bool(price.output_per_mtok),
    }
    return tuple(q for q, c in charged.items() if c and q not in cf.quantities)


def quantity_rows(cf: ClassFit, q: str, rng: np.random.Generator) -> UnitCost:
    """The parameter rows of one fitted quantity of a class."""
    qf = cf.quantities[q]
    return UnitCost.from_fit(qf.dist, qf.xi_draws, qf.sigma_draws, n=qf.n, rng=rng)


def _cached_dependence_rows(cf: ClassFit, rows: int, rng: np.random.Generator) -> np.ndarray:
    """Per row, the cached fraction of input tokens, E[share x input] / E[input], under a draw
    of the copula correlation between the two, relative to row 0's.

    The correlation is estimated on normal scores from the class's requests, so its Fisher
    transform has standard error about 1 / sqrt(n - 3). Every row is evaluated on the same
    ``COPULA_COMMON`` normal draws (common uniforms): the ratio to row 0 carries the
    correlation's uncertainty, not the noise of those draws.
    """
    names, corr = cf.dependence
    if "input_tokens" not in names or "cached_share" not in names:
        return np.ones(rows)
    i, k = names.index("input_tokens"), names.index("cached_share")
    rho = float(np.clip(corr[i, k], -0.999, 0.999))
    se = 1.0 / np.sqrt(max(cf.requests - 3, 1))
    rho_r = np.tanh(np.arctanh(rho) + se * rng.standard_normal(rows))
    rho_r[0] = rho
    z_in, e = rng.standard_normal((2, COPULA_COMMON))
    inp = cf.quantities["input_tokens"].dist.ppf(special.ndtr(z_in))
    z_share = rho_r[:, None] * z_in + np.sqrt(1.0 - rho_r**2)[:, None] * e
    share = cf.quantities["cached_share"].dist.ppf(special.ndtr(z_share).ravel())
    frac = (share.reshape(rows, -1) @ inp) / max(float(inp.sum()), 1e-300)
    return np.asarray(frac / frac[0] if frac[0] > 0 else np.ones(rows))
