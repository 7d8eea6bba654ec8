"""The fitted-model file: versioned, human-readable, deterministic JSON.

Same input and options give a byte-identical file: keys come in a fixed order, floats are
rounded to ``SIGNIFICANT`` digits, nothing time- or machine-dependent is written. The file holds
everything the forecast needs, so the pilot log is never needed again.
"""

from __future__ import annotations

import json
import math
from dataclasses import fields
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import ModelFileError
from ..formats import read_json
from ..outputs import write_atomic
from .drift import DriftFit
from .fit import ClassFit, FitOptions, FittedModel, QuantityFit, Rates, Traffic
from .format import KIND, SCHEMA_VERSION, ClassDoc, ModelDoc, QuantityDoc, validated
from .splice import SplicedDistribution

SIGNIFICANT = 10


# ---------------------------------------------------------------------------------------------
# Serialisation
# ---------------------------------------------------------------------------------------------


def _num(v: Any) -> Any:
    if v is None or isinstance(v, (bool, str, int)):
        return v
    f = float(v)
    if not math.isfinite(f):
        return None if math.isnan(f) else ("inf" if f > 0 else "-inf")
    return float(f"{f:.{SIGNIFICANT}g}")


def _clean(obj: Any) -> Any:
    """``obj`` as plain JSON values: dicts with str keys, lists, and every float rounded to
    ``SIGNIFICANT`` digits (`_num`). The floats are gathered on the way and rounded together
    in one `rounded` call at the end (a model holds about a million of them, in some 20,000
    lists), each written back to its place."""
    floats: list[np.ndarray] = []  # lists of floats, each written back to its place:
    places: list[tuple[list[float], int, int]] = []  # (list, start, stop) in the flat array
    scalars: list[float] = []  # floats alone in a dict or a list, and their places
    scalar_places: list[tuple[Any, Any]] = []
    size = 0

    def later(values: np.ndarray, into: list[float]) -> None:
        nonlocal size
        floats.append(values)
        places.append((into, size, size + values.size))
        size += values.size

    def walk(obj: Any, container: Any, key: Any) -> Any:
        t = type(obj)
        if t is float and container is not None:  # most values: a float in a dict or a list
            scalars.append(obj)
            scalar_places.append((container, key))
            return None
        if t is int or t is str or obj is None or t is bool:
            return obj
        if isinstance(obj, dict):
            out: dict[str, Any] = {}
            for k, v in obj.items():
                out[str(k)] = walk(v, out, str(k))
            return out
        if isinstance(obj, np.ndarray) and obj.dtype == np.float64 and obj.ndim == 1:
            values = [0.0] * obj.size
            later(obj, values)
            return values
        if isinstance(obj, np.ndarray):
            obj = obj.tolist()
        if isinstance(obj, (list, tuple)):
            if obj and set(map(type, obj)) == {float}:  # the common case, quickly
                values = [0.0] * len(obj)
                later(np.array(obj, dtype=float), values)
                return values
            items: list[Any] = [None] * len(obj)
            for i, v in enumerate(obj):
                items[i] = walk(v, items, i)
            return items
        if obj is None or isinstance(obj, (bool, str, int)):
            return obj
        if isinstance(obj, np.integer):
            return int(obj)
        if container is None:  # a float alone
            return _num(obj)
        scalars.append(float(obj))
        scalar_places.append((container, key))
        return None

    out = walk(obj, None, None)
    if floats or scalars:
        flat = rounded(np.concatenate([*floats, np.array(scalars, dtype=float)]))
        for into, a, b in places:
            into[:] = flat[a:b]
        for (container, key), value in zip(scalar_places, flat[size:], strict=True):
            container[key] = value
    return out


_TIE = 1e-4  # how close to a rounding tie a scaled value is left to `_num` (see `rounded`)
_EXACT_POWER = 22  # 10**k is a double exactly for k <= 22


def rounded(values: np.ndarray) -> list[Any]:
    """`_num` of every value, vectorised: each float rounded to ``SIGNIFICANT`` digits as
    ``float(f"{v:.10g}")`` does, to the bit.

    v is scaled by an exact power of ten to [1e9, 1e10) and rounded to an integer r; then
    r / 10**k (or r * 10**-k) is one correctly rounded operation on two exact numbers, the
    double nearest the decimal, as parsing its digits gives. Scaling is off by at most an ulp
    (2e-6 at 1e10), so the integer is the decimal rounding's unless the scaled value is
    within ``_TIE`` of a half: those values, the ones outside the exact powers' range and
    anything not finite go through `_num` one by one (a few in ten thousand). Zeros stay."""
    x = np.asarray(values, dtype=float)
    with np.errstate(all="ignore"):
        e = np.floor(np.log10(np.abs(x)))
        k = (SIGNIFICANT - 1) - e
        scale = 10.0 ** np.abs(k)
        scaled = np.where(k >= 0, x * scale, x / scale)
        r = np.rint(scaled)
        out = np.where(k >= 0, r / scale, r * scale)
        tie = np.abs(np.abs(scaled - np.trunc(scaled)) - 0.5) <= _TIE
        digits = (np.abs(r) >= 10.0 ** (SIGNIFICANT - 1)) & (np.abs(r) < 10.0**SIGNIFICANT)
        zero = x == 0  # itself (-0.0 too), as `_num` gives it
        slow = (~np.isfinite(out) | (np.abs(k) > _EXACT_POWER) | tie | ~digits) & ~zero
        out = np.where(zero, x, out)
    result: list[Any] = out.tolist()
    for i in np.flatnonzero(slow).tolist():
        result[i] = _num(x[i])
    return result


def dumps(obj: Any, indent: int = 0) -> str:
    """JSON with objects indented and lists of scalars kept on one line."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{_scalar(k)}: {dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        types = set(map(type, obj))
        if types == {float} and all(map(math.isfinite, obj)):  # the common case, quickly
            return "[" + ", ".join(map(float.__repr__, obj)) + "]"
        if not any(issubclass(t, (dict, list)) for t in types):
            return _encode(obj)  # "[a, b, ...]": the scalars as json.dumps writes each
        items = [f"{inner}{dumps(v, indent + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return _scalar(obj)


_encode = json.JSONEncoder().encode  # json.dumps with its defaults, without its checks
_LITERALS = {None: "null", True: "true", False: "false"}


def _scalar(v: Any) -> str:
    """``_encode(v)``, quickly for the plain scalars (json writes a float by its repr)."""
    t = type(v)
    if t is float and math.isfinite(v):
        return float.__repr__(v)
    if t is str:
        return encode_basestring_ascii(v)
    if t is int:
        return int.__repr__(v)
    if v is None or t is bool:
        return _LITERALS[v]
    return _encode(v)


def _quantity_to_dict(qf: QuantityFit) -> dict[str, Any]:
    return {
        "n": qf.n,
        "distribution": qf.dist.to_dict(),
        "tail": {
            "source": qf.tail_source,
            "verdict": qf.verdict,
            "xi": qf.dist.xi if qf.tail_source != "none" else None,
            "xi_ci": list(qf.xi_ci) if qf.xi_ci is not None else None,
            "ci_level": 0.9,
            "cap_source": qf.cap_source,
            "draws": None
            if qf.xi_draws is None or qf.sigma_draws is None
            else {"xi": qf.xi_draws, "sigma": qf.sigma_draws},
        },
        "summary": qf.summary,
        "diagnostics": qf.diagnostics,
    }


def model_to_dict(model: FittedModel) -> dict[str, Any]:
    o = model.options
    classes = {}
    for name, c in model.classes.items():
        r, d = c.rates, c.drift
        classes[name] = {
            "requests": c.requests,
            "share": c.share,
            "cost_total": c.cost_total,
            "quantities": {q: _quantity_to_dict(qf) for q, qf in c.quantities.items()},
            "dependence": {
                "method": "gaussian copula on ranks",
                "variables": list(c.dependence[0]),
                "correlation": [list(row) for row in c.dependence[1]],
            },
            "rates": {
                "error_rate": r.error_rate,
                "retry_pmf": r.retry_pmf,
                "retry_mean": r.retry_mean,
                "retry_cost_share": r.retry_cost_share,
                "cold_start_rate": r.cold_start_rate,
                "cold_start_cost_ratio": r.cold_start_cost_ratio,
                "cold_start_latency_ms": r.cold_start_latency_ms,
            },
            "drift": {
                **{f.name: getattr(d, f.name) for f in fields(DriftFit)},
                "common": c.drift_common,
            },
            "hourly_profile": c.hourly_profile,
        }
    t = model.traffic
    out = {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        "costsim_version": __version__,
        "source": {
            "path": Path(model.source).name,
            "rows_read": model.rows_read,
            "rows_dropped": model.rows_dropped,
            "columns": model.columns,
        },
        "options": {
            "seed": o.seed,
            "caps": dict(sorted(o.caps.items())),
            "default_cap_factor": o.default_cap_factor,
            "min_class_rows": o.min_class_rows,
            "drift_window_s": o.drift_window_s,
        },
        "traffic": {
            "requests": t.requests,
            "start": t.start,
            "end": t.end,
            "duration_s": t.duration_s,
            "rate_per_hour": t.rate_per_hour,
            "hourly_profile": t.hourly_profile,
            "weekday_profile": t.weekday_profile,
        },
        "concentration": model.concentration,
        "classes": classes,
        "notes": list(model.notes),
    }
    return dict(_clean(out))


def model_to_json(model: FittedModel) -> str:
    return dumps(model_to_dict(model)) + "\n"


def save_model(model: FittedModel, path: str | Path) -> None:
    write_atomic(path, model_to_json(model))


def checked_model_json(model: FittedModel, source: str) -> str:
    """`model_to_json`, refused (`ModelFileError`) when `load_model` would refuse the text: a
    fit that produced something not finite is never written. What is checked is the document
    the text is written from: plain dicts, lists, str, int and floats that the text holds by
    their repr, so reading the text back would give the same document."""
    doc = model_to_dict(model)
    model_from_dict(doc, source)
    return dumps(doc) + "\n"


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _quantity(name: str, q: QuantityDoc) -> QuantityFit:
    dist, tail = q.distribution, q.tail
    return QuantityFit(
        name=name,
        n=q.n,
        dist=SplicedDistribution(
            np.asarray(dist.body_quantiles, dtype=float),
            dist.tail_prob,
            dist.xi,
            dist.sigma,
            dist.cap,
            None if dist.body_probs is None else np.asarray(dist.body_probs, dtype=float),
        ),
        xi_ci=None if tail.xi_ci is None else (tail.xi_ci[0], tail.xi_ci[1]),
        xi_draws=None if tail.draws is None else np.asarray(tail.draws.xi, dtype=float),
        sigma_draws=None if tail.draws is None else np.asarray(tail.draws.sigma, dtype=float),
        cap_source=tail.cap_source,
        tail_source=tail.source,
        summary=dict(q.summary),
        diagnostics=dict(q.diagnostics),
    )


def _class(name: str, c: ClassDoc) -> ClassFit:
    r, dr, dep = c.rates, c.drift, c.dependence
    return ClassFit(
        name=name,
        requests=c.requests,
        share=c.share,
        cost_total=c.cost_total,
        quantities={q: _quantity(q, qd) for q, qd in c.quantities.items()},
        dependence=(tuple(dep.variables), np.asarray(dep.correlation, dtype=float)),
        rates=Rates(
            error_rate=r.error_rate,
            retry_pmf=r.retry_pmf,
            retry_mean=r.retry_mean,
            retry_cost_share=r.retry_cost_share,
            cold_start_rate=r.cold_start_rate,
            cold_start_cost_ratio=r.cold_start_cost_ratio,
            cold_start_latency_ms=r.cold_start_latency_ms,
        ),
        drift=DriftFit(**{f.name: getattr(dr, f.name) for f in fields(DriftFit)}),
        hourly_profile=c.hourly_profile,
        drift_common=dr.common,
    )


def model_from_dict(d: dict[str, Any], source: str = "<model>") -> FittedModel:
    """The model a model file holds, every value checked (`model_format.ModelDoc`); any problem
    is a `ModelFileError` naming the key path of each bad value."""
    if not isinstance(d, dict) or d.get("kind") != KIND:
        raise ModelFileError(f'{source}: not a costsim model file (no "kind": "{KIND}")')
    version = d.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise ModelFileError(
            f"{source}: model schema_version {version!r} is not supported (this costsim reads "
            f"version {SCHEMA_VERSION}); refit the pilot with `costsim fit`"
        )
    doc = validated(ModelDoc, d, ModelFileError, source)
    o, t, src = doc.options, doc.traffic, doc.source
    return FittedModel(
        source=src.path,
        rows_read=src.rows_read,
        rows_dropped=src.rows_dropped,
        columns=dict(src.columns),
        options=FitOptions(
            seed=o.seed,
            caps=dict(o.caps),
            default_cap_factor=o.default_cap_factor,
            min_class_rows=o.min_class_rows,
            drift_window_s=o.drift_window_s,
        ),
        classes={name: _class(name, c) for name, c in doc.classes.items()},
        traffic=Traffic(
            requests=t.requests,
            start=t.start,
            end=t.end,
            duration_s=t.duration_s,
            rate_per_hour=t.rate_per_hour,
            hourly_profile=t.hourly_profile,
            weekday_profile=t.weekday_profile,
        ),
        concentration=None if doc.concentration is None else dict(doc.concentration),
        notes=tuple(doc.notes),
    )


def load_model(path: str | Path) -> FittedModel:
    if Path(path).suffix.lower() in (".parquet", ".pq", ".csv", ".gz"):
        raise ModelFileError(
            f"{path}: a pilot log, not a model file; fit it first (`costsim fit {path}`), or "
            f"write `pilot: {Path(path).name}` in the scenario to fit it on the fly"
        )
    return model_from_dict(read_json(path, "model file", ModelFileError), str(path))
