"""Kalman-filter hedge ratio and intercept per pair and bar.

State x = (beta, alpha), a random walk with covariance delta / (1 - delta) * I per bar;
observation price_a = beta * price_b + alpha + v, v ~ N(0, obs_var); prior x = 0 with
covariance initial_var * I. kalman_beta / kalman_alpha are filtered through bar t;
kalman_spread = price_a - beta * price_b - alpha with the state known before bar t (the
one-step forecast error: the hedge you would hold entering the bar), kalman_spread_std its
standard deviation sqrt(Q) and kalman_zscore their ratio. Point in time by construction.
"""

import math

import numpy as np
import pyarrow as pa


def _filter(pa_: list, pb: list, delta: float, obs_var: float, initial_var: float):
    w = delta / (1.0 - delta)
    beta = alpha = 0.0
    p11, p12, p22 = initial_var, 0.0, initial_var
    n = len(pa_)
    betas, alphas, spreads, stds = [0.0] * n, [0.0] * n, [0.0] * n, [0.0] * n
    for i in range(n):
        x, y = pb[i], pa_[i]
        p11 += w
        p22 += w
        ph0 = p11 * x + p12
        ph1 = p12 * x + p22
        q = x * ph0 + ph1 + obs_var
        e = y - beta * x - alpha
        k0 = ph0 / q
        k1 = ph1 / q
        beta += k0 * e
        alpha += k1 * e
        p11 -= k0 * ph0
        p12 -= k0 * ph1
        p22 -= k1 * ph1
        betas[i], alphas[i], spreads[i], stds[i] = beta, alpha, e, math.sqrt(q)
    return betas, alphas, spreads, stds


def model(dbt, session):
    delta = float(dbt.config.get("kalman_delta"))
    obs_var = float(dbt.config.get("kalman_obs_var"))
    initial_var = float(dbt.config.get("kalman_initial_var"))
    bars = (
        dbt.ref("pair_bars")
        .select("pair_id, ts, price_a, price_b")
        .order("pair_id, ts")
        .to_arrow_table()
    )
    pair_ids = bars.column("pair_id").to_numpy(zero_copy_only=False)
    price_a = bars.column("price_a").to_numpy()
    price_b = bars.column("price_b").to_numpy()
    n = len(pair_ids)
    out = {k: np.empty(n) for k in ("beta", "alpha", "spread", "std")}
    cuts = (np.flatnonzero(pair_ids[1:] != pair_ids[:-1]) + 1).tolist()
    for a, b in zip([0, *cuts], [*cuts, n], strict=True):
        if a == b:
            continue
        res = _filter(price_a[a:b].tolist(), price_b[a:b].tolist(), delta, obs_var, initial_var)
        for key, values in zip(("beta", "alpha", "spread", "std"), res, strict=True):
            out[key][a:b] = values
    return pa.table(
        {
            "pair_id": bars.column("pair_id"),
            "ts": bars.column("ts"),
            "kalman_beta": out["beta"],
            "kalman_alpha": out["alpha"],
            "kalman_spread": out["spread"],
            "kalman_spread_std": out["std"],
            "kalman_zscore": out["spread"] / out["std"],
        }
    )
