"""Small vectorised helpers the readers share."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def bools(arr: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def text_in(arr: pa.Array, words: set[str]) -> np.ndarray:
    """Rows whose text, case-folded and trimmed, is one of ``words``."""
    low = pc.utf8_lower(pc.utf8_trim_whitespace(arr))
    return bools(pc.is_in(low, value_set=pa.array(sorted(words), pa.string())))


def present(arr: pa.Array) -> np.ndarray:
    return np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
