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
"""

import math

import numpy as np
import pyarrow as pa
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import ndtr


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

    bars = (
        dbt.ref("pair_bars")
        .select("pair_id, symbol_a, symbol_b, timeframe, ts, price_a, price_b")
        .order("pair_id, ts")
        .to_arrow_table()
    )
    pair_ids = bars.column("pair_id").to_numpy(zero_copy_only=False)
    ts = bars.column("ts").to_numpy()
    months = ts.astype("datetime64[M]")
    price_a = bars.column("price_a").to_numpy()
    price_b = bars.column("price_b").to_numpy()
    n = len(pair_ids)
    # a test date is a pair's last common bar of a calendar month (UTC)
    last_of_month = np.ones(n, dtype=bool)
    if n:
        last_of_month[:-1] = (pair_ids[1:] != pair_ids[:-1]) | (months[1:] != months[:-1])
    starts = np.zeros(n, dtype=np.int64)
    cuts = np.flatnonzero(pair_ids[1:] != pair_ids[:-1]) + 1
    starts[cuts] = cuts
    starts = np.maximum.accumulate(starts) if n else starts

    rows: dict[str, list] = {
        k: []
        for k in (
            "row",
            "window_start_row",
            "n_obs",
            "adf_lags",
            "adf_nobs",
            "hedge_beta",
            "hedge_alpha",
            "adf_stat",
            "spread_ar_const",
            "spread_ar_phi",
            "spread_ar_residual_var",
            "spread_at_test",
        )
    }
    for i in np.flatnonzero(last_of_month).tolist():
        first = starts[i] if window == 0 else max(starts[i], i - window + 1)
        n_obs = i - first + 1
        if n_obs < max(min_obs, window):
            continue
        lags = adf_lags(lag_rule, n_obs)
        y0 = price_a[first : i + 1]
        y1 = price_b[first : i + 1]
        beta, alpha, tau, nobs, spread = engle_granger(y0, y1, lags)
        ar_const, ar_phi, ar_var = ar1(spread)
        values = (i, first, n_obs, lags, nobs, beta, alpha, tau, ar_const, ar_phi, ar_var)
        for key, value in zip(rows, (*values, float(spread[-1])), strict=True):
            rows[key].append(value)

    idx = np.asarray(rows["row"], dtype=np.int64)
    first_idx = np.asarray(rows["window_start_row"], dtype=np.int64)
    n_obs = np.asarray(rows["n_obs"], dtype=np.int64)
    taus = np.asarray(rows["adf_stat"], dtype=np.float64)
    p_values = np.asarray([_pvalue(t, surface) for t in taus.tolist()], dtype=np.float64)
    t_crit = n_obs - 1.0

    def critical(level_key: float) -> np.ndarray:
        c = crit[level_key]
        return c["b_inf"] + c["b_1"] / t_crit + c["b_2"] / t_crit**2 + c["b_3"] / t_crit**3

    return pa.table(
        {
            "pair_id": bars.column("pair_id").take(idx),
            "symbol_a": bars.column("symbol_a").take(idx),
            "symbol_b": bars.column("symbol_b").take(idx),
            "timeframe": bars.column("timeframe").take(idx),
            "test_date": pa.array(ts[idx].astype("datetime64[D]"), pa.date32()),
            "test_ts": bars.column("ts").take(idx),
            "window_start_ts": bars.column("ts").take(first_idx),
            "n_obs": n_obs,
            "hedge_beta": np.asarray(rows["hedge_beta"], dtype=np.float64),
            "hedge_alpha": np.asarray(rows["hedge_alpha"], dtype=np.float64),
            "adf_lag_rule": pa.array([lag_rule] * len(idx), pa.string()),
            "adf_lags": np.asarray(rows["adf_lags"], dtype=np.int32),
            "adf_nobs": np.asarray(rows["adf_nobs"], dtype=np.int32),
            "adf_stat": taus,
            "p_value": p_values,
            "crit_value_1pct": critical(0.01),
            "crit_value_5pct": critical(0.05),
            "crit_value_10pct": critical(0.10),
            "significance_level": np.full(len(idx), level),
            "is_cointegrated": p_values < level,
            # the window's spread (residuals) as an AR(1), for pair_ou_parameters
            "spread_ar_nobs": n_obs - 1,
            **{
                key: np.asarray(rows[key], dtype=np.float64)
                for key in (
                    "spread_ar_const",
                    "spread_ar_phi",
                    "spread_ar_residual_var",
                    "spread_at_test",
                )
            },
        }
    )
