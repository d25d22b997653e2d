"""Hedge ratios and spreads per pair and bar, from bars at or before ts only.

Rolling OLS of price_a on price_b over the last `pairs_ols_window` common bars (null until
the window is full): spread = price_a - ols_beta * price_b - ols_alpha, z-scored over its
last `pairs_zscore_window` values (sample standard deviation; null until that many exist or
when they are all equal). The Kalman-filter hedge (pair_kalman) sits beside it.

Compiled kernels (warehouse/kernels.py ``rolling_ols``, ``rolling_zscore``) compute each
window on its own, in bar order: a value at ts is the same number, to the bit, whatever
bars come later and whichever other pairs are built. (DuckDB's window aggregates, which
this model used to be, combine partial states along a tree laid over all the partitions
of a hash group, so the last bits of a pair's rolling beta moved with the other pairs.)
"""

import numpy as np
import pyarrow as pa

from warehouse.kernels import rolling_ols, rolling_zscore, row_groups, sort_by_key_and_time


def _nullable(values: np.ndarray) -> pa.Array:
    """Undefined values (a window not yet full, a flat window) as nulls."""
    mask = ~np.isfinite(values)
    return pa.array(values, pa.float64(), mask=mask if mask.any() else None)


def model(dbt, session):
    ols_window = int(dbt.config.get("ols_window"))
    zscore_window = int(dbt.config.get("zscore_window"))
    bars = (
        dbt.ref("pair_bars")
        .select(
            "pair_id, symbol_a, symbol_b, timeframe, ts, bar_index, close_a, close_b, "
            "price_a, price_b"
        )
        .to_arrow_table()
    )
    bars, starts, ends = sort_by_key_and_time(bars, "pair_id")
    price_a = np.ascontiguousarray(bars.column("price_a").to_numpy(), dtype=np.float64)
    price_b = np.ascontiguousarray(bars.column("price_b").to_numpy(), dtype=np.float64)
    beta, alpha, spread = rolling_ols(price_a, price_b, starts, ends, ols_window)
    zscore = rolling_zscore(spread, starts, ends, zscore_window)
    for name, values in (
        ("ols_beta", beta),
        ("ols_alpha", alpha),
        ("ols_spread", spread),
        ("ols_zscore", zscore),
    ):
        bars = bars.append_column(name, _nullable(values))
    kalman = (
        dbt.ref("pair_kalman")
        .select(
            "pair_id, ts, kalman_beta, kalman_alpha, kalman_spread, kalman_spread_std, "
            "kalman_zscore"
        )
        .to_arrow_table()
    )
    return row_groups(bars.join(kalman, keys=["pair_id", "ts"], join_type="left outer"))
