"""Engle-Granger cointegration of each pair as of each month's last common bar.

For each test date the window is the last `coint_window` common bars ending at that bar
(0: every bar since the first), so a result uses only data up to its date. Step 1: OLS of
price_a on price_b and a constant. Step 2: ADF regression of the residuals without
deterministic terms, d e[t] = g e[t-1] + sum_{i=1..L} c_i d e[t-i] + u[t], on the
n - 1 - L usable rows; the statistic is the t-ratio of g (as statsmodels'
`coint(y0, y1, trend="c", maxlag=L, autolag=None)`). Lag rule: `coint_adf_lags` is a fixed
L, or `schwert` for L = ceil(12 (n / 100) ^ 0.25) with n the window length (either capped at
n // 2 - 1). p-value: MacKinnon's response surface for 2 variables with a constant (seed
mackinnon_pvalue_coefficients); critical values: MacKinnon (2010) at T = n - 1 (seed
mackinnon_critical_values); is_cointegrated: p_value < coint_significance. The window's
residuals (the spread with the window's hedge) are also fitted as an AR(1),
s[t] = c + phi s[t-1] + u[t], for the Ornstein-Uhlenbeck mart.

The model runs every test in compiled code (warehouse/kernels.py,
``engle_granger_batch``, on up to two threads); ``engle_granger`` and ``ar1`` below are the
numpy reference it is tested against (tests/test_research_kernels.py), equal to rounding
(about 1e-12).
"""

import math
import os

import numpy as np
import pyarrow as pa
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import ndtr

from warehouse.kernels import engle_granger_parallel, row_groups, sort_by_key_and_time


def adf_lags(rule: str, n: int) -> int:
    """The ADF lag order for a window of n residuals (at most n // 2 - 1, as statsmodels)."""
    if str(rule).strip().lower() == "schwert":
        lags = math.ceil(12.0 * (n / 100.0) ** 0.25)
    else:
        lags = int(rule)
    return max(0, min(lags, n // 2 - 1))


def engle_granger(
    y0: np.ndarray, y1: np.ndarray, lags: int
) -> tuple[float, float, float, int, np.ndarray]:
    """(beta, alpha, tau, adf_nobs, residuals) of the two-step test on one window.

    Both regressions go through their small Gram matrices (one matrix product each): a
    multi-threaded LAPACK least-squares call is ten times slower on a busy 2-core machine.
    """
    n = len(y0)
    m0, m1 = y0.mean(), y1.mean()
    c0, c1 = y0 - m0, y1 - m1
    beta = (c1 @ c0) / (c1 @ c1)
    alpha = m0 - beta * m1
    e = c0 - beta * c1  # = y0 - beta y1 - alpha
    de = np.diff(e)
    nobs = n - 1 - lags
    k = lags + 1
    z = np.empty((nobs, k + 1))
    z[:, 0] = e[lags : n - 1]
    if lags:
        # column i is d e lagged i bars: a reversed sliding window over the differences
        z[:, 1:k] = sliding_window_view(de[: n - 2], lags)[:, ::-1]
    z[:, k] = de[lags:]
    gram = z.T @ z
    xtx, xty = gram[:k, :k], gram[:k, k]
    coef = np.linalg.solve(xtx, xty)
    ssr = gram[k, k] - coef @ xty
    unit = np.zeros(k)
    unit[0] = 1.0
    se = math.sqrt(ssr / (nobs - k) * np.linalg.solve(xtx, unit)[0])
    return float(beta), float(alpha), float(coef[0] / se), nobs, e


def ar1(s: np.ndarray) -> tuple[float, float, float]:
    """(const, phi, residual variance) of the OLS fit s[t] = const + phi s[t-1] + u[t]."""
    x, y = s[:-1], s[1:]
    xc, yc = x - x.mean(), y - y.mean()
    sxx = xc @ xc
    phi = (xc @ yc) / sxx
    const = y.mean() - phi * x.mean()
    resid = yc - phi * xc
    return float(const), float(phi), float(resid @ resid) / (len(y) - 2)


def _pvalue(tau: float, c: dict) -> float:
    if math.isnan(tau):
        return math.nan
    if c["tau_max"] is not None and tau > c["tau_max"]:
        return 1.0
    if tau < c["tau_min"]:
        return 0.0
    if tau <= c["tau_star"]:
        z = c["small_p_b0"] + c["small_p_b1"] * tau + c["small_p_b2"] * tau**2
    else:
        z = (
            c["large_p_b0"]
            + c["large_p_b1"] * tau
            + c["large_p_b2"] * tau**2
            + c["large_p_b3"] * tau**3
        )
    return float(ndtr(z))


def p_values(taus: np.ndarray, c: dict) -> np.ndarray:
    """:func:`_pvalue` over an array of statistics."""
    small = c["small_p_b0"] + c["small_p_b1"] * taus + c["small_p_b2"] * taus**2
    large = (
        c["large_p_b0"]
        + c["large_p_b1"] * taus
        + c["large_p_b2"] * taus**2
        + c["large_p_b3"] * taus**3
    )
    p = ndtr(np.where(taus <= c["tau_star"], small, large))
    p = np.where(taus < c["tau_min"], 0.0, p)
    if c["tau_max"] is not None:
        p = np.where(taus > c["tau_max"], 1.0, p)
    return np.where(np.isnan(taus), np.nan, p)


def model(dbt, session):
    window = int(dbt.config.get("coint_window"))
    min_obs = int(dbt.config.get("coint_min_obs"))
    lag_rule = str(dbt.config.get("coint_adf_lags"))
    level = float(dbt.config.get("coint_significance"))

    surface = (
        dbt.ref("mackinnon_pvalue_coefficients")
        .filter("regression = 'c' and n_vars = 2")
        .to_arrow_table()
        .to_pylist()[0]
    )
    crit = {
        row["significance_level"]: row
        for row in dbt.ref("mackinnon_critical_values")
        .filter("regression = 'c' and n_vars = 2")
        .to_arrow_table()
        .to_pylist()
    }

    pair_bars = dbt.ref("pair_bars")
    bars = pair_bars.select("pair_id, ts, price_a, price_b").to_arrow_table()
    # each pair's bars in time order (numpy sort: far cheaper than ORDER BY on pair_id)
    bars, pair_starts, pair_ends = sort_by_key_and_time(bars, "pair_id")
    ts = bars.column("ts").to_numpy()
    months = ts.astype("datetime64[M]")
    price_a = np.ascontiguousarray(bars.column("price_a").to_numpy(), dtype=np.float64)
    price_b = np.ascontiguousarray(bars.column("price_b").to_numpy(), dtype=np.float64)
    n = bars.num_rows
    # a test date is a pair's last common bar of a calendar month (UTC)
    last_of_month = np.ones(n, dtype=bool)
    if n:
        last_of_month[:-1] = months[1:] != months[:-1]
        last_of_month[pair_ends - 1] = True
    starts = np.zeros(n, dtype=np.int64)
    starts[pair_starts] = pair_starts
    starts = np.maximum.accumulate(starts) if n else starts

    idx = np.flatnonzero(last_of_month).astype(np.int64)
    first_idx = starts[idx] if window == 0 else np.maximum(starts[idx], idx - window + 1)
    n_obs = idx - first_idx + 1
    keep = n_obs >= max(min_obs, window)
    idx, first_idx, n_obs = idx[keep], first_idx[keep], n_obs[keep]
    lag_of = {int(m): adf_lags(lag_rule, int(m)) for m in np.unique(n_obs)}
    lags = np.asarray([lag_of[int(m)] for m in n_obs], dtype=np.int64)
    # every test in compiled code (engle_granger and ar1 above, per window), on up to 2
    # threads (this machine has 2 cores)
    threads = min(2, os.cpu_count() or 1)
    res = engle_granger_parallel(price_a, price_b, first_idx, idx, lags, threads)
    taus = res[2]
    p = p_values(taus, surface)
    t_crit = n_obs - 1.0

    def critical(level_key: float) -> np.ndarray:
        c = crit[level_key]
        return c["b_inf"] + c["b_1"] / t_crit + c["b_2"] / t_crit**2 + c["b_3"] / t_crit**3

    # symbols and timeframe: one row per pair, not read with every bar
    pairs = (
        pair_bars.aggregate(
            "pair_id, any_value(symbol_a) as symbol_a, any_value(symbol_b) as symbol_b, "
            "any_value(timeframe) as timeframe",
            "pair_id",
        )
        .to_arrow_table()
        .to_pydict()
    )
    where = {pid: i for i, pid in enumerate(pairs["pair_id"])}
    test_pair = bars.column("pair_id").take(idx)
    pair_row = np.asarray([where[pid] for pid in test_pair.to_pylist()], dtype=np.int64)

    def per_pair(name: str) -> pa.Array:
        return pa.array(pairs[name], pa.string()).take(pair_row)

    return row_groups(
        pa.table(
            {
                "pair_id": test_pair,
                "symbol_a": per_pair("symbol_a"),
                "symbol_b": per_pair("symbol_b"),
                "timeframe": per_pair("timeframe"),
                "test_date": pa.array(ts[idx].astype("datetime64[D]"), pa.date32()),
                "test_ts": bars.column("ts").take(idx),
                "window_start_ts": bars.column("ts").take(first_idx),
                "n_obs": n_obs,
                "hedge_beta": res[0],
                "hedge_alpha": res[1],
                "adf_lag_rule": pa.array([lag_rule] * len(idx), pa.string()),
                "adf_lags": lags.astype(np.int32),
                "adf_nobs": res[3].astype(np.int32),
                "adf_stat": taus,
                "p_value": p,
                "crit_value_1pct": critical(0.01),
                "crit_value_5pct": critical(0.05),
                "crit_value_10pct": critical(0.10),
                "significance_level": np.full(len(idx), level),
                "is_cointegrated": p < level,
                # the window's spread (residuals) as an AR(1), for pair_ou_parameters
                "spread_ar_nobs": n_obs - 1,
                "spread_ar_const": res[4],
                "spread_ar_phi": res[5],
                "spread_ar_residual_var": res[6],
                "spread_at_test": res[7],
            }
        )
    )
