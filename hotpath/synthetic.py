"""Synthetic marts shaped like ``bars_adjusted``, for tests and benchmarks without a warehouse.

Bars are 1-minute, 390 per weekday from 14:30 UTC, a random walk per symbol, with one 2-for-1
split and quarterly dividends so the raw, split-adjusted and total-return columns differ.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["bar_timestamps", "make_bars_mart", "synthetic_bars"]

_MINUTE_NS = 60 * 1_000_000_000
_DAY_NS = 86_400 * 1_000_000_000
_FIRST_DAY_NS = int(np.datetime64("2015-01-05", "ns").astype(np.int64))  # a Monday


def bar_timestamps(rows: int) -> np.ndarray:
    """``rows`` session-minute timestamps (int64 ns, UTC): 390 per weekday from 14:30."""
    i = np.arange(rows, dtype=np.int64)
    session, minute = np.divmod(i, 390)
    week, weekday = np.divmod(session, 5)
    day = week * 7 + weekday
    return _FIRST_DAY_NS + day * _DAY_NS + (14 * 60 + 30) * _MINUTE_NS + minute * _MINUTE_NS


def synthetic_bars(symbol: str, rows: int, seed: int = 0, *, wide: bool = True) -> pa.Table:
    """One symbol's bars as an Arrow table with the ``bars_adjusted`` columns."""
    rng = np.random.default_rng([seed, *symbol.encode()])
    ts = bar_timestamps(rows)
    close = 50.0 + 50.0 * rng.random() + np.cumsum(rng.normal(0.0, 0.05, rows))
    close = np.maximum(close, 1.0)
    open_ = np.concatenate([close[:1], close[:-1]])
    spread = np.abs(rng.normal(0.0, 0.02, rows))
    high = np.maximum(open_, close) + spread
    low = np.maximum(np.minimum(open_, close) - spread, 0.5)
    volume = rng.integers(100, 10_000, rows).astype(np.float64)
    cols: dict[str, object] = {
        "symbol": pa.array(np.full(rows, symbol, dtype=object), pa.string()),
        "ts": pa.array(ts // 1000, pa.timestamp("us", tz="UTC")),
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
    }
    if wide:
        split = np.where(np.arange(rows) < rows // 2, 0.5, 1.0)  # a 2-for-1 split mid-way
        steps = np.zeros(rows)
        steps[rows // 4 :: max(rows // 4, 1)] = 0.01
        dividend = np.exp(-np.cumsum(steps[::-1])[::-1])
        total = split * dividend
        cols = {
            "symbol": cols["symbol"],
            "source": pa.array(np.full(rows, "synthetic", dtype=object), pa.string()),
            "timeframe": pa.array(np.full(rows, "1m", dtype=object), pa.string()),
            **{k: v for k, v in cols.items() if k != "symbol"},
            "split_factor": split,
            "dividend_factor": dividend,
            **{f"{k}_adj": cols[k] * total for k in ("open", "high", "low", "close")},
            "volume_adj": volume / split,
            **{f"{k}_split_adj": cols[k] * split for k in ("open", "high", "low", "close")},
            "volume_split_adj": volume / split,
            "is_final": np.arange(rows) < rows - 5,
            "is_suspect": rng.random(rows) < 0.001,
        }
    return pa.table(cols)


def make_bars_mart(
    path: str | os.PathLike[str],
    symbols: Sequence[str],
    rows_per_symbol: int | Mapping[str, int],
    *,
    seed: int = 0,
    wide: bool = True,
    row_group_size: int = 1_000_000,
) -> int:
    """Write a Parquet mart sorted by (symbol, ts), one symbol at a time; returns its rows.

    ``rows_per_symbol`` is one count for all or a count per symbol.
    """
    writer: pq.ParquetWriter | None = None
    total = 0
    try:
        for sym in sorted(symbols):
            n = rows_per_symbol if isinstance(rows_per_symbol, int) else rows_per_symbol[sym]
            table = synthetic_bars(sym, n, seed, wide=wide)
            total += n
            if writer is None:
                writer = pq.ParquetWriter(str(path), table.schema, compression="zstd")
            writer.write_table(table, row_group_size=row_group_size)
    finally:
        if writer is not None:
            writer.close()
    return total
