"""Trades behind minute bars: synthetic ticks that aggregate back to the bars exactly.

Each 1m bar becomes 4 to 8 trades: the first at the bar's open time at the open price, the
last at the close, the bar's high and low somewhere in between, the others uniform between
low and high; sizes split the bar's volume. Every random number is a hash of a key, the
minute and the trade's position, so the ticks of a minute never depend on the range asked
for.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..schema import TS_TYPE
from .randomness import splitmix64, uniform53

MIN_TRADES, MAX_TRADES = 4, 8


def _uniform(key: int, minute_us: np.ndarray, slot: np.ndarray, stream: int) -> np.ndarray:
    """Uniform in (0, 1] from (key, minute, slot within the minute, stream)."""
    return uniform53(splitmix64(key, minute_us * 16 + slot, stream))


def ticks_from_bars(bars: pa.Table, key: int, venue: str = "SYNX") -> pa.Table:
    """Ticks (ts, seq, price, size, side, venue) whose 1m aggregation is ``bars``."""
    minute = bars.column("ts").cast(pa.int64()).to_numpy()
    o, h, lo, c, v = (
        bars.column(name).to_numpy() for name in ("open", "high", "low", "close", "volume")
    )
    n_bars = minute.size
    counts = MIN_TRADES + np.floor(
        _uniform(key, minute, np.zeros(n_bars, np.int64), 1) * (MAX_TRADES - MIN_TRADES + 1)
    ).astype(np.int64)
    bar_of = np.repeat(np.arange(n_bars), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    j = np.arange(bar_of.size) - starts  # position of the trade within its minute
    k = counts[bar_of]
    m = minute[bar_of]
    u_price = _uniform(key, m, j, 2)
    price = lo[bar_of] + u_price * (h[bar_of] - lo[bar_of])
    # the high and the low sit at two distinct inner positions of the minute
    hi_slot = 1 + np.floor(_uniform(key, minute, np.full(n_bars, 1), 3) * (counts - 2)).astype(
        np.int64
    )
    lo_off = 1 + np.floor(_uniform(key, minute, np.full(n_bars, 2), 4) * (counts - 3)).astype(
        np.int64
    )
    lo_slot = 1 + (hi_slot - 1 + lo_off) % (counts - 2)
    price = np.where(j == 0, o[bar_of], price)
    price = np.where(j == k - 1, c[bar_of], price)
    price = np.where(j == hi_slot[bar_of], h[bar_of], price)
    price = np.where(j == lo_slot[bar_of], lo[bar_of], price)
    # times: the first trade at the bar's open, the others at sorted offsets in the minute
    offs = np.floor(_uniform(key, m, j, 5) * 58_000_000).astype(np.int64) + 1_000_000
    offs = np.where(j == 0, 0, offs)
    order = np.lexsort((offs, bar_of))
    offs = offs[order] + j  # strictly increasing within each minute, in slot order
    ts = m + offs
    # sizes: the bar's volume split by random weights
    w = _uniform(key, m, j, 6) + 0.05
    wsum = np.bincount(bar_of, weights=w, minlength=n_bars)
    size = v[bar_of] * w / wsum[bar_of]
    side = np.where(_uniform(key, m, j, 7) < 0.5, "buy", "sell")
    seq = (m // 60_000_000) * 16 + j
    return pa.table(
        {
            "ts": pa.array(ts, pa.int64()).cast(TS_TYPE),
            "seq": pa.array(seq, pa.int64()),
            "price": pa.array(price, pa.float64()),
            "size": pa.array(size, pa.float64()),
            "side": pa.array(side, pa.string()),
            "venue": pa.array(np.full(ts.size, venue, dtype=object), pa.string()),
        }
    )
