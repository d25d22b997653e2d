"""Fused scan kernels over mapped columns: one pass, every byte read once.

numpy needs one pass per reduction (``close.sum()``, ``volume.sum()``, ``np.dot``), so a
mean close plus a VWAP reads each column two or three times; these kernels, compiled by
numba, read each column once and keep the machine's memory bandwidth as the only limit.
NaN rows (a missing price or volume) are skipped, not propagated.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import numpy as np
from numba import njit

# reassociation lets LLVM vectorise the sums; NaN semantics are kept (no 'nnan' flag)
_FASTMATH = {"reassoc", "contract", "arcp", "nsz"}


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _range_sums(
    price: np.ndarray, volume: np.ndarray, start: int, stop: int
) -> tuple[float, float, float, int]:
    """Sums of price, volume, price * volume and the row count over rows [start, stop)
    where both are present."""
    sp = 0.0
    sv = 0.0
    spv = 0.0
    n = 0
    for i in range(start, stop):
        p = price[i]
        v = volume[i]
        ok = (p == p) & (v == v)
        sp += p if ok else 0.0
        sv += v if ok else 0.0
        spv += p * v if ok else 0.0
        n += 1 if ok else 0
    return sp, sv, spv, n


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _price_volume_sums(price: np.ndarray, volume: np.ndarray) -> tuple[float, float, float, int]:
    return _range_sums(price, volume, 0, price.shape[0])


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _grouped_sums(price: np.ndarray, volume: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    out = np.zeros((bounds.shape[0] - 1, 4))
    for g in range(bounds.shape[0] - 1):
        sp, sv, spv, n = _range_sums(price, volume, bounds[g], bounds[g + 1])
        out[g, 0] = sp
        out[g, 1] = sv
        out[g, 2] = spv
        out[g, 3] = n
    return out


@dataclass(frozen=True)
class PriceVolumeStats:
    rows: int  # rows with both a price and a volume
    mean_price: float
    total_volume: float
    vwap: float  # sum(price * volume) / sum(volume)


def _as_f8(a: np.ndarray, name: str) -> np.ndarray:
    if a.dtype != np.float64 or a.ndim != 1:
        raise TypeError(f"{name} must be a 1-D float64 array, got {a.dtype} with {a.ndim} dims")
    return a


#: below this many rows one thread is faster than handing chunks to a pool
PARALLEL_MIN_ROWS = 1 << 20


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="hotpath")


def price_volume_stats(
    price: np.ndarray, volume: np.ndarray, threads: int | None = None
) -> PriceVolumeStats:
    """Mean price, total volume and VWAP in one pass over two columns.

    Large inputs are split into one contiguous chunk per core (the kernel releases the
    GIL): one core alone does not saturate the memory bus."""
    price, volume = _as_f8(price, "price"), _as_f8(volume, "volume")
    if price.shape != volume.shape:
        raise ValueError("price and volume must have the same length")
    k = threads or os.cpu_count() or 1
    if k > 1 and price.shape[0] >= PARALLEL_MIN_ROWS:
        step = -(-price.shape[0] // k)
        parts = [
            _pool().submit(_price_volume_sums, price[i : i + step], volume[i : i + step])
            for i in range(0, price.shape[0], step)
        ]
        sums = [f.result() for f in parts]
        sp = sum(x[0] for x in sums)
        sv = sum(x[1] for x in sums)
        spv = sum(x[2] for x in sums)
        n = sum(x[3] for x in sums)
    else:
        sp, sv, spv, n = _price_volume_sums(price, volume)
    return PriceVolumeStats(
        rows=int(n),
        mean_price=sp / n if n else float("nan"),
        total_volume=sv,
        vwap=spv / sv if sv else float("nan"),
    )


def grouped_price_volume_stats(
    price: np.ndarray, volume: np.ndarray, bounds: np.ndarray
) -> np.ndarray:
    """Per group ``[bounds[g], bounds[g+1])``: rows, mean price, total volume, VWAP."""
    price, volume = _as_f8(price, "price"), _as_f8(volume, "volume")
    sums = _grouped_sums(price, volume, np.ascontiguousarray(bounds, dtype=np.int64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.column_stack(
            [sums[:, 3], sums[:, 0] / sums[:, 3], sums[:, 1], sums[:, 2] / sums[:, 1]]
        )


def warm_up() -> None:
    """Compile (or load from the cache) the kernels, so a timed call measures the scan."""
    x = np.ones(4)
    _price_volume_sums(x, x)
    _grouped_sums(x, x, np.array([0, 2, 4], dtype=np.int64))
