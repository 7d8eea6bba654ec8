"""The fitted-model file: versioned, human-readable, deterministic JSON.

Same input and options give a byte-identical file: keys come in a fixed order, floats are
rounded to ``SIGNIFICANT`` digits, nothing time- or machine-dependent is written. The file holds
everything the forecast needs, so the pilot log is never needed again.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import CostsimError, ModelFileError
from .fit import ClassFit, Drift, FitOptions, FittedModel, QuantityFit, Rates, Traffic
from .splice import SplicedDistribution

SCHEMA_VERSION = 1
SIGNIFICANT = 10
KIND = "costsim.model"


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
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_clean(v) for v in obj.tolist()]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    return _num(obj)


def dumps(obj: Any, indent: int = 0) -> str:
    """JSON with objects indented and lists of scalars kept on one line."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if all(not isinstance(v, (dict, list)) for v in obj):
            return "[" + ", ".join(json.dumps(v) for v in obj) + "]"
        items = [f"{inner}{dumps(v, indent + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj)


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
                "window_s": d.window_s,
                "windows": d.windows,
                "level_sd": d.level_sd,
                "step_sd": d.step_sd,
                "phi": d.phi,
                "estimated": d.estimated,
                "note": d.note,
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


def write_atomic(path: str | Path, text: str) -> None:
    """Write text to ``path`` atomically: a temporary file in the same folder, then rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_model(model: FittedModel, path: str | Path) -> None:
    write_atomic(path, model_to_json(model))


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _f(v: Any) -> float:
    if v == "inf":
        return math.inf
    if v == "-inf":
        return -math.inf
    return float(v)


def _opt(v: Any) -> float | None:
    return None if v is None else _f(v)


def _tuple(v: Any) -> tuple[float, ...] | None:
    return None if v is None else tuple(_f(x) for x in v)


def _quantity_from_dict(name: str, d: dict[str, Any]) -> QuantityFit:
    tail = d["tail"]
    draws = tail.get("draws")
    ci = tail.get("xi_ci")
    return QuantityFit(
        name=name,
        n=int(d["n"]),
        dist=SplicedDistribution.from_dict(d["distribution"]),
        xi_ci=None if ci is None else (float(ci[0]), float(ci[1])),
        xi_draws=None if draws is None else np.asarray(draws["xi"], dtype=float),
        sigma_draws=None if draws is None else np.asarray(draws["sigma"], dtype=float),
        cap_source=tail.get("cap_source"),
        tail_source=str(tail["source"]),
        summary={k: _f(v) for k, v in d["summary"].items()},
        diagnostics=d.get("diagnostics", {}),
    )


def model_from_dict(d: dict[str, Any], source: str = "<model>") -> FittedModel:
    if not isinstance(d, dict) or d.get("kind") != KIND:
        raise ModelFileError(f'{source}: not a costsim model file (no "kind": "{KIND}")')
    version = d.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ModelFileError(
            f"{source}: model schema_version {version!r} is not supported (this costsim reads "
            f"version {SCHEMA_VERSION}); refit the pilot with `costsim fit`"
        )
    try:
        o = d["options"]
        options = FitOptions(
            seed=int(o["seed"]),
            caps={k: float(v) for k, v in o["caps"].items()},
            default_cap_factor=_opt(o["default_cap_factor"]),
            min_class_rows=int(o["min_class_rows"]),
            drift_window_s=float(o["drift_window_s"]),
        )
        classes = {}
        for name, c in d["classes"].items():
            r, dr, dep = c["rates"], c["drift"], c["dependence"]
            classes[name] = ClassFit(
                name=name,
                requests=int(c["requests"]),
                share=float(c["share"]),
                cost_total=_opt(c["cost_total"]),
                quantities={q: _quantity_from_dict(q, qd) for q, qd in c["quantities"].items()},
                dependence=(tuple(dep["variables"]), np.asarray(dep["correlation"], dtype=float)),
                rates=Rates(
                    error_rate=_opt(r["error_rate"]),
                    retry_pmf=_tuple(r["retry_pmf"]),
                    retry_mean=_opt(r["retry_mean"]),
                    retry_cost_share=_opt(r["retry_cost_share"]),
                    cold_start_rate=_opt(r["cold_start_rate"]),
                    cold_start_cost_ratio=_opt(r["cold_start_cost_ratio"]),
                    cold_start_latency_ms=_opt(r["cold_start_latency_ms"]),
                ),
                drift=Drift(
                    window_s=float(dr["window_s"]),
                    windows=int(dr["windows"]),
                    level_sd=float(dr["level_sd"]),
                    step_sd=float(dr["step_sd"]),
                    phi=float(dr["phi"]),
                    estimated=bool(dr["estimated"]),
                    note=dr.get("note"),
                ),
                hourly_profile=_tuple(c.get("hourly_profile")),
            )
        t = d["traffic"]
        traffic = Traffic(
            requests=int(t["requests"]),
            start=_opt(t["start"]),
            end=_opt(t["end"]),
            duration_s=_opt(t["duration_s"]),
            rate_per_hour=_opt(t["rate_per_hour"]),
            hourly_profile=_tuple(t["hourly_profile"]),
            weekday_profile=_tuple(t["weekday_profile"]),
        )
        src = d["source"]
        return FittedModel(
            source=str(src["path"]),
            rows_read=int(src["rows_read"]),
            rows_dropped=int(src["rows_dropped"]),
            columns=dict(src["columns"]),
            options=options,
            classes=classes,
            traffic=traffic,
            concentration=d.get("concentration"),
            notes=tuple(d.get("notes", ())),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(
            f"{source}: malformed model file ({type(exc).__name__}: {exc})"
        ) from None


def read_json(path: str | Path, what: str, error: type[CostsimError]) -> Any:
    """A JSON document, or ``error`` with one line: not found, or not readable JSON."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{what} not found: {path}")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: cannot read the {what} as JSON ({exc})") from None


def load_model(path: str | Path) -> FittedModel:
    if Path(path).suffix.lower() in (".parquet", ".pq", ".csv", ".gz"):
        raise ModelFileError(
            f"{path}: a pilot log, not a model file; fit it first (`costsim fit {path}`), or "
            f"write `pilot: {Path(path).name}` in the scenario to fit it on the fly"
        )
    return model_from_dict(read_json(path, "model file", ModelFileError), str(path))
