"""Kalman-filter hedge ratio and intercept per pair and bar.

State x = (beta, alpha), a random walk with covariance delta / (1 - delta) * I per bar;
observation price_a = beta * price_b + alpha + v, v ~ N(0, obs_var); prior x = 0 with
covariance initial_var * I. kalman_beta / kalman_alpha are filtered through bar t;
kalman_spread = price_a - beta * price_b - alpha with the state known before bar t (the
one-step forecast error: the hedge you would hold entering the bar), kalman_spread_std its
standard deviation sqrt(Q) and kalman_zscore their ratio. Point in time by construction.
"""

import numpy as np
import pyarrow as pa

from warehouse.kernels import kalman_filter, row_groups, sort_by_key_and_time


def model(dbt, session):
    delta = float(dbt.config.get("kalman_delta"))
    obs_var = float(dbt.config.get("kalman_obs_var"))
    initial_var = float(dbt.config.get("kalman_initial_var"))
    bars = dbt.ref("pair_bars").select("pair_id, ts, price_a, price_b").to_arrow_table()
    # each pair's bars in time order (numpy sort: far cheaper than ORDER BY on pair_id)
    bars, starts, ends = sort_by_key_and_time(bars, "pair_id")
    price_a = np.ascontiguousarray(bars.column("price_a").to_numpy(), dtype=np.float64)
    price_b = np.ascontiguousarray(bars.column("price_b").to_numpy(), dtype=np.float64)
    # one compiled pass over every pair (the recursion of the docstring, restarted per pair)
    beta, alpha, spread, std = kalman_filter(
        price_a, price_b, starts, ends, delta, obs_var, initial_var
    )
    return row_groups(
        pa.table(
            {
                "pair_id": bars.column("pair_id"),
                "ts": bars.column("ts"),
                "kalman_beta": beta,
                "kalman_alpha": alpha,
                "kalman_spread": spread,
                "kalman_spread_std": std,
                "kalman_zscore": spread / std,
            }
        )
    )
