"""Exact sums that merge in any order: each value cut into 32-bit digits on a fixed binary
grid, the digits summed as integers (`Grid`)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grid:
    """Exact sums of values below 2^``top`` in magnitude: each value x is cut into digits
    d_j = floor(r_j / 2^lo_j), r_{j+1} = r_j - d_j 2^lo_j (exact in floating point), on the
    fixed exponents lo_j = top - 32 (j + 1). A digit is below 2^32, so the digits of up to 2^21
    rows add up exactly in float64 (a batch), and as int64 with carries across batches. The
    sum is exact for values on the grid (down to 2^lo_last); finer bits are dropped."""

    top: int
    levels: int

    @property
    def exponents(self) -> tuple[int, ...]:
        """The exponent of each accumulator row: a carry row at ``top``, then the digits."""
        return (self.top, *(self.top - 32 * (j + 1) for j in range(self.levels)))

    def digits(self, x: np.ndarray, nonnegative: bool = True) -> Iterator[tuple[int, np.ndarray]]:
        """(accumulator row, digits) of ``x``; rows whose digits are all 0 are left out. The
        digits array is reused from one row to the next."""
        x = np.asarray(x, dtype=np.float64)
        hi = float(np.max(x, initial=0.0)) if nonnegative else math.inf
        r: np.ndarray | None = None
        d = np.empty_like(x)
        for j, lo in enumerate(self.exponents[1:], start=1):
            if r is None and nonnegative and hi < 2.0**lo:
                continue  # every digit 0
            src = x if r is None else r
            np.multiply(src, 2.0**-lo, out=d)
            np.floor(d, out=d)
            if r is None:
                r = x - d * 2.0**lo
            else:
                r -= d * 2.0**lo
            yield j, d
            if not r.any():
                return

    def zeros(self, *shape: int) -> np.ndarray:
        return np.zeros((self.levels + 1, *shape), dtype=np.int64)

    def sums(
        self, x: np.ndarray, keys: np.ndarray, cells: int, nonnegative: bool = True
    ) -> np.ndarray:
        """Accumulator of ``x`` summed by ``keys`` (0..cells-1), normalised."""
        acc = self.zeros(cells)
        for j, d in self.digits(x, nonnegative):
            if cells == 1:  # every key 0 (integers below 2^53: any order sums them exactly)
                acc[j, 0] = int(d.sum())
            else:
                acc[j] += np.bincount(keys, weights=d, minlength=cells).astype(np.int64)
        return normalise(acc)

    def reduce(self, x: np.ndarray, starts: np.ndarray, nonnegative: bool = True) -> np.ndarray:
        """Accumulator of ``x`` summed over the slices that begin at ``starts`` (ascending,
        from 0; the last slice runs to the end), one column per slice, normalised."""
        acc = self.zeros(starts.size)
        for j, d in self.digits(x, nonnegative):
            acc[j] = np.add.reduceat(d, starts).astype(np.int64)  # integers: summed exactly
        return normalise(acc)

    def values(self, acc: np.ndarray) -> np.ndarray:
        """The floats of many accumulators (rows x cells) at once: the digits added from the
        smallest up, within an ulp or two of the exact sum, and like `value` a function of the
        exact sum alone (the digits are unique), so the same for any cut of the rows."""
        exps = self.exponents
        out = np.zeros(acc.shape[1:])
        for j in range(len(exps) - 1, -1, -1):
            out += acc[j].astype(np.float64) * 2.0 ** exps[j]
        return out

    def value(self, acc: np.ndarray) -> np.ndarray:
        """The floats of accumulators (rows x cells), each the exact sum correctly rounded."""
        exps = self.exponents
        flat = acc.reshape(acc.shape[0], -1)
        out = np.empty(flat.shape[1])
        for i in range(flat.shape[1]):
            out[i] = math.fsum(float(flat[j, i]) * 2.0 ** exps[j] for j in range(len(exps)))
        return out.reshape(acc.shape[1:])


def normalise(acc: np.ndarray) -> np.ndarray:
    """Carry each digit row's overflow into the row above, in place: every row but the carry
    row ends in [0, 2^32). The representation is then unique, whatever the order of adds."""
    for j in range(acc.shape[0] - 1, 0, -1):
        carry = acc[j] >> 32
        acc[j] -= carry << 32
        acc[j - 1] += carry
    return acc


VALUES = Grid(50, 4)  # quantities, retries, costs: below 2^50 (logs.MAX_VALUE = 1e15)
LOGS = Grid(10, 3)  # log unit cost: |y| < 745
SQUARES = Grid(20, 3)  # its square
