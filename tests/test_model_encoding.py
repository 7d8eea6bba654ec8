"""The model file's encoder: floats rounded to 10 digits in one vectorised pass, and the JSON
text written by repr, to the bit what the value-by-value encoder wrote (frozen below)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from costsim.model.file import SIGNIFICANT, _clean, dumps, rounded

SEED = 20261127


# ---------------------------------------------------------------------------------------------
# The former encoder, value by value (modelfile before the vectorised rounding)
# ---------------------------------------------------------------------------------------------


def ref_num(v: Any) -> Any:
    if v is None or isinstance(v, (bool, str, int)):
        return v
    f = float(v)
    if not math.isfinite(f):
        return None if math.isnan(f) else ("inf" if f > 0 else "-inf")
    return float(f"{f:.{SIGNIFICANT}g}")


def ref_clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): ref_clean(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    if isinstance(obj, (list, tuple)):
        return [ref_clean(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    return ref_num(obj)


_ref_encode = json.JSONEncoder().encode


def ref_dumps(obj: Any, indent: int = 0) -> str:
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{_ref_encode(k)}: {ref_dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if all(not isinstance(v, (dict, list)) for v in obj):
            return _ref_encode(obj)
        items = [f"{inner}{ref_dumps(v, indent + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return _ref_encode(obj)


def near_ties(rng: np.random.Generator, n: int) -> np.ndarray:
    ties = np.array(
        [float(f"{m}5e{e}") for m, e in zip(
            rng.integers(10**9, 10**10, n), rng.integers(-40, 30, n), strict=True
        )]
    )  # fmt: skip
    up, down = np.nextafter(ties, np.inf), np.nextafter(ties, -np.inf)
    return np.concatenate([ties, up, down, np.nextafter(up, np.inf), np.nextafter(down, -np.inf)])


def same_values(a: list[Any], b: list[Any]) -> bool:
    """Equal lists, floats compared by their bits (so -0.0 differs from 0.0)."""
    return len(a) == len(b) and all(repr(x) == repr(y) for x, y in zip(a, b, strict=True))


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["bit patterns", "lognormal", "3 decimals", "near ties", "powers of ten", "special"],
)
def test_rounded_is_the_value_by_value_rounding_to_the_bit(name: str) -> None:
    rng = np.random.default_rng([SEED, len(name)])
    values = {
        # every exponent, sign and mantissa a double can have, NaN and infinities among them
        "bit patterns": rng.integers(0, 2**64, 200_000, dtype=np.uint64).view(np.float64),
        "lognormal": rng.lognormal(0.0, 8.0, 200_000) * rng.choice([-1.0, 1.0], 200_000),
        "3 decimals": np.round(rng.uniform(-1e4, 1e4, 200_000), 3),
        # an 11th digit of 5, and the doubles next to them: the decimal rounding is a tie or
        # within an ulp of one
        "near ties": near_ties(rng, 20_000),
        "powers of ten": np.concatenate(
            [
                10.0 ** np.arange(-330, 309),
                np.nextafter(10.0 ** np.arange(-300, 300), 0.0),
                np.nextafter(10.0 ** np.arange(-300, 300), np.inf),
            ]
        ),
        "special": np.array(
            [
                0.0,
                -0.0,
                np.inf,
                -np.inf,
                np.nan,
                5e-324,
                -5e-324,
                2.2250738585072014e-308,
                1.7976931348623157e308,
                9999999999.5,
                9999999999.4999,
                0.1,
                1 / 3,
                1e22,
                1e-13,
            ]
        ),
    }[name]
    assert same_values(rounded(values), [ref_num(v) for v in values.tolist()])


def random_scalar(rng: np.random.Generator) -> Any:
    """A float of any magnitude or a special one, an int beyond 64 bits, a short text, a bool
    or None."""
    kind = int(rng.integers(0, 7))
    if kind == 0:  # any double at all, NaN and infinities included
        return float(rng.integers(0, 2**64, dtype=np.uint64).view(np.float64))
    if kind == 1:
        return float(rng.lognormal(0.0, 10.0) * rng.choice([-1.0, 1.0]))
    if kind == 2:
        return float(rng.choice([0.0, -0.0, np.inf, -np.inf, np.nan, 0.1, 1e22, 5e-324]))
    if kind == 3:
        return int(rng.integers(-(2**62), 2**62)) * int(rng.integers(1, 2**8))
    if kind == 4:
        return "".join(rng.choice(list('aé"\\ \n\u2603z'), int(rng.integers(0, 6))))
    return [True, False, None][kind - 5 + int(rng.integers(0, 2))]


def random_document(rng: np.random.Generator, depth: int = 0) -> Any:
    """A nested document of dicts, lists, tuples, lists of plain floats and scalars."""
    kind = int(rng.integers(0, 5 if depth < 4 else 2))
    if kind == 0:
        return random_scalar(rng)
    if kind == 1:  # the common case of a model: a list of finite floats
        return [float(v) for v in rng.lognormal(0.0, 5.0, int(rng.integers(0, 9)))]
    n = int(rng.integers(0, 5))
    if kind == 2:
        return {random_scalar(rng) if rng.random() < 0.2 else f"k{i}": random_document(
            rng, depth + 1) for i in range(n)}  # fmt: skip
    items = [random_document(rng, depth + 1) for _ in range(n)]
    return tuple(items) if kind == 3 else items


@pytest.mark.parametrize("seed", range(8))
def test_clean_and_dumps_write_what_the_value_by_value_encoder_wrote(seed: int) -> None:
    rng = np.random.default_rng([SEED, seed])
    for _ in range(100):
        doc = random_document(rng)
        assert dumps(_clean(doc)) == ref_dumps(ref_clean(doc))


def test_numpy_arrays_and_scalars_are_cleaned_as_their_values() -> None:
    rng = np.random.default_rng(SEED)
    doc = {
        "draws": rng.lognormal(0.0, 3.0, 1000),
        "matrix": rng.normal(size=(3, 4)),
        "counts": np.arange(5),
        "mixed": [1, 2.5, np.float64(0.1 + 0.2), np.int64(7), float("nan"), (1.0, float("inf"))],
        "alone": np.float64(2.0) / 3.0,
        1: "key made a string",
    }
    assert dumps(_clean(doc)) == ref_dumps(ref_clean(doc))
    assert _clean(np.float64(1) / 3) == ref_num(1 / 3)  # a float alone
