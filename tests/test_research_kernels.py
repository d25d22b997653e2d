"""The compiled research kernels (warehouse/kernels.py) against the numpy references.

Fast, no dbt: feature set `technical` v1 with the kernels vs the per-symbol numpy code
(`compute_features(..., compiled=False)`), the Kalman kernel vs the scalar recursion, the
batched Engle-Granger / AR(1) kernel vs the numpy two-step in pair_cointegration.py, on
random series including short, flat and unsorted input.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from warehouse import kernels as rk
from warehouse.features import compute_features, feature_set

REPO = Path(__file__).resolve().parents[1]


def _bars(rng: np.random.Generator, lengths: list[int]) -> pa.Table:
    parts = []
    for i, n in enumerate(lengths):
        c = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        if n > 80:
            c[40:75] = c[40]  # a flat stretch: zero standard deviations
        parts.append(
            {
                "symbol": np.full(n, f"S{i:03d}"),
                "ts": np.datetime64("2000-01-03", "D") + np.arange(n),
                "close": c,
                "high": c * (1 + rng.uniform(0, 0.02, n)),
                "low": c * (1 - rng.uniform(0, 0.02, n)),
                # a 2-for-1 split half way and a dividend every 50 bars
                "total_return_factor": np.where(np.arange(n) < n // 2, 1.0, 0.5)
                * 0.99 ** (np.arange(n) // 50),
            }
        )
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    cols["ts"] = pa.array(cols["ts"].astype("datetime64[us]"), pa.timestamp("us", tz="UTC"))
    return pa.table(cols)


def _assert_same(ref: pa.Table, new: pa.Table, rel: float = 1e-12) -> None:
    assert ref.schema == new.schema
    for name in ref.column_names:
        a, b = ref.column(name), new.column(name)
        if not pa.types.is_floating(a.type) and not pa.types.is_integer(a.type):
            assert a.equals(b), name
            continue
        assert a.null_count == b.null_count, name
        x = a.to_numpy(zero_copy_only=False).astype(float)
        y = b.to_numpy(zero_copy_only=False).astype(float)
        np.testing.assert_array_equal(np.isnan(x), np.isnan(y), err_msg=name)
        ok = ~np.isnan(x)
        np.testing.assert_allclose(y[ok], x[ok], rtol=rel, atol=rel, err_msg=name)


@pytest.mark.parametrize("shuffle", [False, True])
def test_compiled_features_match_the_numpy_reference(shuffle):
    rng = np.random.default_rng(7)
    bars = _bars(rng, [400, 1, 13, 19, 20, 21, 50, 300])
    if shuffle:
        bars = bars.take(rng.permutation(bars.num_rows))
    fs = feature_set("technical", 1)
    _assert_same(compute_features(fs, bars, compiled=False), compute_features(fs, bars))


@pytest.mark.parametrize("threads", [2, 3, 20])
def test_compiled_features_split_into_blocks_on_threads(monkeypatch, threads):
    import warehouse.features as features

    rng = np.random.default_rng(9)
    bars = _bars(rng, [300, 5, 120, 64, 1, 250, 90])
    fs = feature_set("technical", 1)
    want = compute_features(fs, bars)
    monkeypatch.setattr(features, "_threads", lambda n: threads)
    got = compute_features(fs, bars)
    assert got.column("sma_20").num_chunks > 1
    assert got.equals(want)


def test_compiled_features_on_no_rows():
    rng = np.random.default_rng(1)
    bars = _bars(rng, [30]).slice(0, 0)
    fs = feature_set("technical", 1)
    _assert_same(compute_features(fs, bars, compiled=False), compute_features(fs, bars))


def test_compiled_features_propagate_missing_prices():
    rng = np.random.default_rng(3)
    bars = _bars(rng, [200, 120])
    close = bars.column("close").to_numpy().copy()
    close[[10, 150, 260]] = np.nan
    bars = bars.set_column(bars.schema.get_field_index("close"), "close", [close])
    fs = feature_set("technical", 1)
    _assert_same(compute_features(fs, bars, compiled=False), compute_features(fs, bars))


def _kalman_reference(pa_, pb, delta, obs_var, initial_var):
    w = delta / (1.0 - delta)
    beta = alpha = 0.0
    p11, p12, p22 = initial_var, 0.0, initial_var
    out = []
    for x, y in zip(pb, pa_, strict=True):
        p11 += w
        p22 += w
        ph0, ph1 = p11 * x + p12, p12 * x + p22
        q = x * ph0 + ph1 + obs_var
        e = y - beta * x - alpha
        k0, k1 = ph0 / q, ph1 / q
        beta += k0 * e
        alpha += k1 * e
        p11 -= k0 * ph0
        p12 -= k0 * ph1
        p22 -= k1 * ph1
        out.append((beta, alpha, e, math.sqrt(q)))
    return np.array(out).T.reshape(4, -1)


def test_kalman_kernel_matches_the_scalar_recursion():
    rng = np.random.default_rng(11)
    b = 4.0 + np.cumsum(rng.normal(0, 0.01, 700))
    a = 0.7 * b + 1.0 + rng.normal(0, 0.01, 700)
    starts, ends = np.array([0, 300, 300], np.int64), np.array([300, 300, 700], np.int64)
    got = rk.kalman_filter(a, b, starts, ends, 1e-4, 1e-3, 1.0)
    want = np.hstack(
        [_kalman_reference(a[s:e], b[s:e], 1e-4, 1e-3, 1.0) for s, e in ((0, 300), (300, 700))]
    )
    np.testing.assert_array_equal(got, want)  # the same operations in the same order


def test_rolling_ols_waits_for_a_full_window():
    """pair_spreads' kernels: price_a = 2 price_b + 1 exactly, a 3-bar window: beta 2 and
    alpha 1 from the third bar on (NaN, a null in the mart, before), spread 0; a flat window
    of spreads has no z-score."""
    b = np.array([1.0, 2.0, 3.0, 4.0])
    a = 2.0 * b + 1.0
    starts, ends = np.array([0], np.int64), np.array([4], np.int64)
    got = rk.rolling_ols(a, b, starts, ends, 3)
    assert np.isnan(got[:, :2]).all()
    np.testing.assert_allclose(got[:, 2:], [[2.0, 2.0], [1.0, 1.0], [0.0, 0.0]], atol=1e-12)
    assert np.isnan(rk.rolling_zscore(np.zeros(4), starts, ends, 2)).all()


def test_rolling_ols_is_the_same_number_whatever_follows():
    """A window's result depends on its own rows only: cutting the series after t, or
    adding other series around it, leaves every value up to t unchanged to the bit."""
    rng = np.random.default_rng(5)
    b = 4.0 + np.cumsum(rng.normal(0, 0.01, 400))
    a = 0.9 * b + 0.2 + rng.normal(0, 0.01, 400)
    one = np.array([0], np.int64)
    whole = rk.rolling_ols(a, b, one, np.array([400], np.int64), 60)
    cut = rk.rolling_ols(a[:250], b[:250], one, np.array([250], np.int64), 60)
    np.testing.assert_array_equal(whole[:, :250], cut)
    other = rng.normal(0, 1, 123)
    both = rk.rolling_ols(
        np.r_[other, a], np.r_[other[::-1], b], np.array([0, 123]), np.array([123, 523]), 60
    )
    np.testing.assert_array_equal(both[:, 123:], whole)
    z = rk.rolling_zscore(whole[2], one, np.array([400], np.int64), 20)
    zc = rk.rolling_zscore(cut[2], one, np.array([250], np.int64), 20)
    np.testing.assert_array_equal(z[:250], zc)


def test_rolling_ols_and_zscore_kernels_match_numpy():
    """The kernels of pair_spreads against numpy, on three series of one array."""
    rng = np.random.default_rng(4)
    b = 4.0 + np.cumsum(rng.normal(0, 0.01, 500))
    a = 0.9 * b + 0.2 + rng.normal(0, 0.01, 500)
    starts, ends = np.array([0, 200, 230], np.int64), np.array([200, 230, 500], np.int64)
    w, zw = 60, 20
    got = rk.rolling_ols(a, b, starts, ends, w)
    z = rk.rolling_zscore(got[2], starts, ends, zw)
    for s, e in zip(starts, ends, strict=True):
        assert np.isnan(got[:, s : min(s + w - 1, e)]).all()
        for t in range(s + w - 1, e):
            x, y = b[t - w + 1 : t + 1], a[t - w + 1 : t + 1]
            beta = np.cov(x, y, bias=True)[0, 1] / np.var(x)
            alpha = y.mean() - beta * x.mean()
            want = [beta, alpha, a[t] - beta * b[t] - alpha]
            np.testing.assert_allclose(got[:, t], want, rtol=1e-9, atol=1e-12)
        for t in range(s, e):
            window = got[2, max(s, t - zw + 1) : t + 1]
            if t - zw + 1 < s or np.isnan(window).any():
                assert np.isnan(z[t])
            else:
                want = (window[-1] - window.mean()) / window.std(ddof=1)
                np.testing.assert_allclose(z[t], want, rtol=1e-9, atol=1e-12)


def _cointegration_module():
    path = REPO / "models" / "marts" / "pairs" / "pair_cointegration.py"
    spec = importlib.util.spec_from_file_location("pair_cointegration", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("window", "lags"), [(252, 16), (252, 0), (100, 1), (60, 12)])
def test_engle_granger_kernel_matches_the_numpy_two_step(window, lags):
    pc = _cointegration_module()
    rng = np.random.default_rng(5)
    n = 2000
    b = 4.0 + np.cumsum(rng.normal(0, 0.01, n))
    a = 0.8 * b + 0.5 + 0.3 * np.cumsum(rng.normal(0, 0.002, n)) + rng.normal(0, 0.01, n)
    lasts = np.arange(window - 1, n, 21, dtype=np.int64)
    firsts = lasts - window + 1
    got = rk.engle_granger_batch(a, b, firsts, lasts, np.full(len(lasts), lags, np.int64))
    for q in range(len(lasts)):
        beta, alpha, tau, nobs, e = pc.engle_granger(
            a[firsts[q] : lasts[q] + 1], b[firsts[q] : lasts[q] + 1], lags
        )
        const, phi, var = pc.ar1(e)
        want = [beta, alpha, tau, nobs, const, phi, var, e[-1]]
        np.testing.assert_allclose(got[:, q], want, rtol=1e-9, atol=1e-12)


def test_engle_granger_on_threads_equals_one_pass():
    rng = np.random.default_rng(2)
    n = 30_000
    b = 4.0 + np.cumsum(rng.normal(0, 0.01, n))
    a = 0.5 * b + rng.normal(0, 0.01, n)
    lasts = np.arange(251, n, 7, dtype=np.int64)
    firsts, lags = lasts - 251, np.full(len(lasts), 16, np.int64)
    one = rk.engle_granger_batch(a, b, firsts, lasts, lags)
    for threads in (2, 3):
        got = rk.engle_granger_parallel(a, b, firsts, lasts, lags, threads)
        np.testing.assert_array_equal(got, one)


def test_vectorised_p_values_match_the_scalar_rule():
    pc = _cointegration_module()
    c = {
        "small_p_b0": 2.1,
        "small_p_b1": 0.9,
        "small_p_b2": 0.03,
        "large_p_b0": 1.7,
        "large_p_b1": 0.8,
        "large_p_b2": 0.1,
        "large_p_b3": 0.01,
        "tau_star": -2.0,
        "tau_min": -18.0,
        "tau_max": 4.0,
    }
    taus = np.array([-30.0, -18.0, -5.0, -2.0, -1.0, 0.0, 3.9, 4.1, np.nan])
    want = np.array([pc._pvalue(float(t), c) for t in taus])
    np.testing.assert_array_equal(pc.p_values(taus, c), want)
    np.testing.assert_array_equal(
        pc.p_values(taus, {**c, "tau_max": None})[:-1],
        [pc._pvalue(float(t), {**c, "tau_max": None}) for t in taus[:-1]],
    )


def test_sort_by_key_and_time_orders_rows_and_finds_runs():
    t = pa.table({"k": ["b", "a", "b", "a", "c"], "ts": [2, 5, 1, 3, 0], "v": [0, 1, 2, 3, 4]})
    out, starts, ends = rk.sort_by_key_and_time(t, "k", "ts")
    assert out.column("v").to_pylist() == [3, 1, 2, 0, 4]
    assert starts.tolist() == [0, 2, 4] and ends.tolist() == [2, 4, 5]
