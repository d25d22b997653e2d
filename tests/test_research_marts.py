"""End-to-end checks of the research marts (pairs, features, splits) on a synthetic lake.

Two dbt builds per session: the demo universe (12 symbols, daily, 2019-2023) plus two
families with splits (SYN044 1-for-5 in 2020, SYN030 3-for-1 after CUTOFF), and the same
lake truncated at CUTOFF (bars and corporate actions after it never ingested), for the
point-in-time test. The screened candidate pairs join the seeded universe. Every number
is checked against an independent implementation written here (numpy, pandas,
statsmodels).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from warehouse.features import FEATURE_SETS, feature_set

pytestmark = pytest.mark.slow

START, END, CUTOFF = "2019-01-01", "2024-01-01", "2022-07-01"
N_SYMBOLS = 12
SPLIT_FAMILIES = ["SYN027", "SYN028", "SYN029", "SYN030", "SYN043", "SYN044"]
# adjustment_factors: the on-run-end hook (bars_as_of macro) reads it
SELECT = "+path:models/marts/pairs +path:models/marts/features +adjustment_factors"
MARTS = (
    "bars_adjusted",
    "features_technical_v1",
    "feature_set_registry",
    "walk_forward_splits",
    "pair_bars",
    "pair_spreads",
    "pair_kalman",
    "pair_cointegration",
    "pair_ou_parameters",
    "pair_universe",
    "pair_candidates",
    "total_return_factors",
    "staging.stg_manifest__data_files",
)


def _build(root: Path, end: str) -> dict[str, pd.DataFrame]:
    from ingest.manager import DataManager
    from ingest.paths import DataPaths
    from ingest.sources.synthetic import SyntheticSource
    from warehouse.build import run_build

    paths = DataPaths(root).ensure()
    dm = DataManager(paths)
    src = SyntheticSource(seed=42, n_symbols=N_SYMBOLS)
    dm.add_source(src)
    symbols = src.list_symbols() + SPLIT_FAMILIES
    report = dm.ingest(symbols, "1d", START, end, source="synthetic")
    assert not report.failed
    # the singular tests under tests/dbt/warehouse belong to the bars marts, not these
    result = run_build(
        paths,
        select=SELECT,
        exclude="path:tests/dbt/warehouse",
        quiet=True,
        export=False,
        extra=["--vars", json.dumps({"pairs_include_candidates": True})],
    )
    assert result.ok, result.error or result.output[-3000:]
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        return {name: con.sql(f"select * from {name}").df() for name in MARTS}


@pytest.fixture(scope="session")
def full(tmp_path_factory) -> dict[str, pd.DataFrame]:
    return _build(tmp_path_factory.mktemp("research_full") / "data", END)


@pytest.fixture(scope="session")
def truncated(tmp_path_factory) -> dict[str, pd.DataFrame]:
    return _build(tmp_path_factory.mktemp("research_cut") / "data", CUTOFF)


# --- independent implementations ---------------------------------------------------------


def ema_loop(x: np.ndarray, n: int) -> np.ndarray:
    a = 2.0 / (n + 1)
    out = np.empty(len(x))
    e = x[0]
    for i, v in enumerate(x):
        e = v if i == 0 else a * v + (1 - a) * e
        out[i] = e
    return out


def wilder_loop(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    avg = None
    for i in range(len(x)):
        if i == n - 1:
            avg = float(np.mean(x[:n]))
        elif i >= n:
            avg = (avg * (n - 1) + x[i]) / n
        if avg is not None:
            out[i] = avg
    return out


def reference_features(bars: pd.DataFrame) -> pd.DataFrame:
    """The technical v1 set computed with pandas and explicit loops, one symbol."""
    c = bars["close_adj"].reset_index(drop=True)
    h = bars["high_adj"].reset_index(drop=True)
    lo = bars["low_adj"].reset_index(drop=True)
    scale = 1.0 / (bars["split_factor"] * bars["dividend_factor"]).reset_index(drop=True)
    out = pd.DataFrame(index=c.index)
    for k in (1, 5, 20):
        out[f"ret_{k}"] = c.pct_change(k, fill_method=None)
        out[f"log_ret_{k}"] = np.log(c / c.shift(k))
    for n in (20, 50):
        out[f"sma_{n}"] = c.rolling(n).mean() * scale
    ema20 = pd.Series(ema_loop(c.to_numpy(), 20))
    ema20[:19] = np.nan
    out["ema_20"] = ema20 * scale
    d = c.diff().to_numpy()[1:]
    gain = wilder_loop(np.where(d > 0, d, 0.0), 14)
    loss = wilder_loop(np.where(d < 0, -d, 0.0), 14)
    out["rsi_14"] = np.r_[np.nan, 100 - 100 / (1 + gain / loss)]
    macd = ema_loop(c.to_numpy(), 12) - ema_loop(c.to_numpy(), 26)
    signal = ema_loop(macd, 9)
    out["macd"] = pd.Series(macd).where(c.index >= 25) * scale
    out["macd_signal"] = pd.Series(signal).where(c.index >= 33) * scale
    out["macd_hist"] = pd.Series(macd - signal).where(c.index >= 33) * scale
    mid, sd = c.rolling(20).mean(), c.rolling(20).std(ddof=0)
    out["bb_mid"], out["bb_upper"], out["bb_lower"] = (
        mid * scale,
        (mid + 2 * sd) * scale,
        (mid - 2 * sd) * scale,
    )
    out["bb_pct_b"] = (c - (mid - 2 * sd)) / (4 * sd)
    out["bb_width"] = 4 * sd / mid
    prev = c.shift(1)
    tr = pd.concat([h - lo, (h - prev).abs(), (lo - prev).abs()], axis=1).max(axis=1)
    out["atr_14"] = np.r_[np.nan, wilder_loop(tr.to_numpy()[1:], 14)] * scale
    out["rvol_20"] = np.log(c / prev).rolling(20).std(ddof=1) * math.sqrt(252)
    out["zscore_20"] = (c - c.rolling(20).mean()) / c.rolling(20).std(ddof=1)
    idx = np.arange(20)
    for name, y in (("high", h), ("low", lo)):
        out[f"slope_{name}_20"] = (
            y.rolling(20).apply(lambda w: np.polyfit(idx, w, 1)[0], raw=True) * scale
        )
    out["direction"] = np.sign(c.diff())
    for k in (1, 5):
        out[f"label_fwd_ret_{k}"] = c.shift(-k) / c - 1
    return out


# --- features ----------------------------------------------------------------------------


def test_feature_set_columns_are_declared_once(full):
    fs = feature_set("technical", 1)
    mart = full["features_technical_v1"]
    assert list(mart.columns) == [
        "symbol",
        "timeframe",
        "ts",
        "close",
        *fs.feature_columns(),
        *fs.label_columns(),
    ]
    assert all(c.startswith("label_") for c in fs.label_columns())
    assert not any(c.startswith("label_") for c in fs.feature_columns())


def test_every_indicator_matches_an_independent_implementation(full):
    bars = full["bars_adjusted"].query("timeframe == '1d'").sort_values(["symbol", "ts"])
    mart = full["features_technical_v1"].sort_values(["symbol", "ts"])
    fs = feature_set("technical", 1)
    checked = 0
    for symbol, sym_bars in bars.groupby("symbol"):
        ours = mart[mart["symbol"] == symbol].reset_index(drop=True)
        ref = reference_features(sym_bars)
        assert len(ours) == len(ref) > 300
        warm = slice(60, None)  # after every window's warm-up
        for col in fs.feature_columns() + fs.label_columns():
            a = ours[col].to_numpy(dtype=float)[warm]
            b = ref[col].to_numpy(dtype=float)[warm]
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{symbol} {col}")
            ok = ~np.isnan(a)
            # 1e-9 relative; near zero, 1e-9 of the column's typical size (bb_pct_b ~ 0 is
            # a difference of two prices)
            scale = float(np.median(np.abs(b[ok]))) if ok.any() else 0.0
            np.testing.assert_allclose(
                a[ok], b[ok], rtol=1e-9, atol=1e-9 * scale, err_msg=f"{symbol} {col}"
            )
            checked += int(ok.sum())
    assert checked > 100_000


def test_price_unit_features_are_in_the_as_traded_units_of_their_bar(full):
    mart = full["features_technical_v1"]
    ratio = (mart["sma_20"] / mart["close"]).dropna()
    # never off by a later split (2-10x); only the rare bad print strays
    assert ratio.between(0.7, 1.3).mean() > 0.999


def test_labels_look_forward_and_nothing_else_does(full):
    mart = full["features_technical_v1"].sort_values(["symbol", "ts"])
    last = mart.groupby("symbol").tail(5)
    assert last["label_fwd_ret_5"].isna().all()
    assert last["ret_5"].notna().all()


def test_registry_lists_each_set_with_its_definition_and_lake_files(full):
    reg = full["feature_set_registry"].set_index("model_name")
    assert set(reg.index) == set(FEATURE_SETS)
    row = reg.loc["features_technical_v1"]
    assert json.loads(row["definition"]) == FEATURE_SETS["features_technical_v1"].definition()
    files = full["staging.stg_manifest__data_files"]
    expected = files[
        ((files["dataset"] == "bars") & (files["timeframe"] == "1d"))
        | (files["dataset"] == "corporate_actions")
    ]
    assert row["data_file_count"] == len(expected) > N_SYMBOLS
    assert sorted(f["sha256"] for f in row["data_files"]) == sorted(expected["sha256"])


# --- walk-forward splits -------------------------------------------------------------------


def test_walk_forward_splits_respect_the_embargo_and_expand(full):
    splits = full["walk_forward_splits"].sort_values("split_id")
    calendar = np.sort(full["bars_adjusted"].query("timeframe == '1d'")["ts"].unique())
    assert len(splits) >= 4
    assert (splits["train_start_ts"] == calendar[0]).all()  # expanding
    for s in splits.itertuples():
        between = ((calendar > s.train_end_ts) & (calendar < s.validation_start_ts)).sum()
        assert between == s.embargo_bars == 5
        assert s.validation_start_ts.day <= 7  # validation starts with a month
    starts = splits["validation_start_ts"].to_numpy()
    ends = splits["validation_end_ts"].to_numpy()
    assert (starts[1:] > ends[:-1]).all()  # step = validation length: no overlap


# --- pairs ---------------------------------------------------------------------------------


def test_pair_bars_hold_only_common_timestamps(full):
    pb = full["pair_bars"]
    bars = full["bars_adjusted"].query("timeframe == '1d'")
    n = bars.groupby("symbol").size()
    for pair in full["pair_universe"].itertuples():
        rows = pb[pb["pair_id"] == pair.pair_id]
        assert len(rows) == min(n[pair.symbol_a], n[pair.symbol_b])  # same calendar here
        assert rows["ts"].is_unique


def test_rolling_ols_spread_and_zscore_match_numpy(full):
    sp = full["pair_spreads"]
    rows = sp[sp["pair_id"] == "SYN000_SYN001"].sort_values("ts").reset_index(drop=True)
    for i in (59, 300, len(rows) - 1):
        w = rows.iloc[i - 59 : i + 1]
        beta, alpha = np.polyfit(w["price_b"], w["price_a"], 1)
        assert rows.loc[i, "ols_beta"] == pytest.approx(beta, rel=1e-9)
        assert rows.loc[i, "ols_alpha"] == pytest.approx(alpha, rel=1e-9, abs=1e-12)
        spread = rows.loc[i, "price_a"] - beta * rows.loc[i, "price_b"] - alpha
        assert rows.loc[i, "ols_spread"] == pytest.approx(spread, rel=1e-7, abs=1e-12)
    assert rows.loc[:58, "ols_beta"].isna().all()
    i = 400
    z = rows["ols_spread"].iloc[i - 19 : i + 1]
    assert rows.loc[i, "ols_zscore"] == pytest.approx(
        (z.iloc[-1] - z.mean()) / z.std(ddof=1), rel=1e-8
    )


def test_kalman_hedge_matches_a_matrix_implementation(full):
    sp = full["pair_spreads"]
    rows = sp[sp["pair_id"] == "SYN004_SYN005"].sort_values("ts")
    delta, ve = 1e-4, 1e-3
    x, p = np.zeros(2), np.eye(2) * 1.0
    w = delta / (1 - delta) * np.eye(2)
    betas, errors = [], []
    for ya, yb in zip(rows["price_a"], rows["price_b"], strict=True):
        h = np.array([yb, 1.0])
        p = p + w
        e = ya - h @ x
        q = h @ p @ h + ve
        k = p @ h / q
        x = x + k * e
        p = p - np.outer(k, h) @ p
        betas.append(x[0])
        errors.append(e / math.sqrt(q))
    np.testing.assert_allclose(rows["kalman_beta"], betas, rtol=1e-9)
    np.testing.assert_allclose(rows["kalman_zscore"], errors, rtol=1e-8, atol=1e-10)


def test_engle_granger_matches_statsmodels_coint(full):
    from statsmodels.tsa.stattools import coint

    tests = full["pair_cointegration"]
    pb = full["pair_bars"]
    assert set(tests["adf_lag_rule"]) == {"schwert"}
    sample = tests.groupby("pair_id").nth([0, 17, -1])
    assert len(sample) >= 30
    for t in sample.itertuples():
        rows = pb[(pb["pair_id"] == t.pair_id) & (pb["ts"] <= t.test_ts)].sort_values("ts")
        rows = rows.tail(252)
        assert rows["ts"].iloc[0] == t.window_start_ts and len(rows) == t.n_obs
        stat, pvalue, crit = coint(
            rows["price_a"].to_numpy(),
            rows["price_b"].to_numpy(),
            trend="c",
            maxlag=t.adf_lags,
            autolag=None,
        )
        assert t.adf_lags == math.ceil(12 * (252 / 100) ** 0.25)
        assert t.adf_stat == pytest.approx(stat, abs=1e-6)
        assert t.p_value == pytest.approx(pvalue, abs=1e-9)
        np.testing.assert_allclose(
            [t.crit_value_1pct, t.crit_value_5pct, t.crit_value_10pct], crit, rtol=1e-12
        )
        assert t.is_cointegrated == (pvalue < 0.05)


def test_cointegrated_families_are_found_more_often_than_not_tested(full):
    tests = full["pair_cointegration"]
    assert tests["is_cointegrated"].mean() > 0.05  # synthetic families are cointegrated
    assert tests["test_date"].map(lambda d: d.day).min() >= 25  # month-end bars


def test_ou_parameters_match_an_ar1_fit_of_the_window_spread(full):
    import statsmodels.api as sm

    ou = full["pair_ou_parameters"]
    pb = full["pair_bars"]
    t = ou[ou["is_mean_reverting"]].iloc[10]
    rows = pb[
        (pb["pair_id"] == t["pair_id"])
        & (pb["ts"] >= t["window_start_ts"])
        & (pb["ts"] <= t["test_ts"])
    ].sort_values("ts")
    s = (rows["price_a"] - t["hedge_beta"] * rows["price_b"] - t["hedge_alpha"]).to_numpy()
    fit = sm.OLS(s[1:], sm.add_constant(s[:-1])).fit()
    c, phi = fit.params
    theta = -math.log(phi)
    assert t["ar_phi"] == pytest.approx(phi, rel=1e-9)
    assert t["theta"] == pytest.approx(theta, rel=1e-8)
    assert t["mu"] == pytest.approx(c / (1 - phi), rel=1e-8, abs=1e-12)
    assert t["half_life_bars"] == pytest.approx(math.log(2) / theta, rel=1e-8)
    sd_eq = math.sqrt(fit.mse_resid / (1 - phi**2))
    assert t["sigma_equilibrium"] == pytest.approx(sd_eq, rel=1e-8)
    assert t["sigma"] == pytest.approx(math.sqrt(fit.mse_resid * 2 * theta / (1 - phi**2)))
    assert t["entry_upper"] == pytest.approx(t["mu"] + 2.0 * sd_eq, rel=1e-8)
    assert t["exit_lower"] == pytest.approx(t["mu"] - 0.5 * sd_eq, rel=1e-8)


def test_candidate_screen_finds_pairs_inside_the_synthetic_families(full):
    from ingest.sources.synthetic import SyntheticSource

    families = SyntheticSource(seed=42, n_symbols=60).families()
    family_of = {s: i for i, fam in enumerate(families) for s in fam}
    cand = full["pair_candidates"]
    assert {"SYN043_SYN044", "SYN008_SYN009"} <= set(cand["pair_id"])
    assert (cand["symbol_a"].map(family_of) == cand["symbol_b"].map(family_of)).all()
    universe = full["pair_universe"]
    assert set(cand["pair_id"]) <= set(universe["pair_id"])
    assert (universe.set_index("pair_id").loc["SYN000_SYN001", "pair_origin"]) == "seed"


def test_split_pairs_are_continuous_across_the_split(full):
    pb = full["pair_bars"]
    rows = pb[pb["pair_id"] == "SYN043_SYN044"].sort_values("ts")
    jump = np.abs(np.diff(rows["price_b"].to_numpy()))  # log prices, 1-for-5 in 2020
    assert len(rows) > 1000 and jump.max() < 0.5


# --- point in time -------------------------------------------------------------------------


def test_total_return_factors_complement_the_backward_factors(full):
    """split_factor * dividend_factor (backward, base = latest) equals the symbol's latest
    forward factor over the bar's own: the same adjustment, chained the other way."""
    bars = full["bars_adjusted"].query("timeframe == '1d'")
    f = full["total_return_factors"]
    latest = f.sort_values("valid_from").groupby("symbol")["total_return_factor"].last()
    merged = pd.merge_asof(
        bars.assign(day=bars["ts"].dt.tz_convert(None).dt.normalize()).sort_values("day"),
        f.assign(day=pd.to_datetime(f["valid_from"]))[
            ["symbol", "day", "total_return_factor"]
        ].sort_values("day"),
        on="day",
        by="symbol",
    )
    merged["total_return_factor"] = merged["total_return_factor"].fillna(1.0)
    want = merged["split_factor"] * merged["dividend_factor"]
    got = merged["symbol"].map(latest).fillna(1.0) / merged["total_return_factor"]
    np.testing.assert_allclose(got, want, rtol=1e-13)
    assert (merged["total_return_factor"] != 1.0).sum() > 1000  # splits and dividends apply


def test_close_tr_equals_close_adj_over_the_first_factor(full):
    """pair_bars' forward-chained close_tr is the old definition (close_adj over the first
    bar's backward factor) to 2^-36 (close_adj is stored bit-rounded to 37 bits), though
    computed without any later action."""
    bars = full["bars_adjusted"].query("timeframe == '1d'").sort_values(["symbol", "ts"])
    factor = bars["split_factor"] * bars["dividend_factor"]
    old = bars["close_adj"] / factor.groupby(bars["symbol"]).transform("first")
    old = pd.Series(old.to_numpy(), index=pd.MultiIndex.from_frame(bars[["symbol", "ts"]]))
    pb = full["pair_bars"]
    cols = ["symbol", "ts", "close", "close_tr"]
    new = pd.concat(
        [
            pb[["symbol_a", "ts", "close_a", "close_tr_a"]].set_axis(cols, axis=1),
            pb[["symbol_b", "ts", "close_b", "close_tr_b"]].set_axis(cols, axis=1),
        ]
    ).drop_duplicates(["symbol", "ts"])
    want = old.loc[pd.MultiIndex.from_frame(new[["symbol", "ts"]])].to_numpy()
    got = new["close_tr"].to_numpy()
    np.testing.assert_allclose(got, want, rtol=2**-36)
    rel = np.abs(got / want - 1)
    print(f"close_tr new vs old: max abs {np.abs(got - want).max():.3g}, max rel {rel.max():.3g}")
    # not vacuous: actions after the first bar move close_tr away from close
    assert (np.abs(got / new["close"].to_numpy() - 1) > 0.01).sum() > 1000


SEED_PAIRS = Path(__file__).resolve().parents[1] / "seeds" / "pairs.csv"
KEYS = {
    "features_technical_v1": ["symbol", "ts"],
    "pair_bars": ["pair_id", "ts"],
    "pair_spreads": ["pair_id", "ts"],
    "pair_kalman": ["pair_id", "ts"],
    "pair_cointegration": ["pair_id", "test_date"],
    "pair_ou_parameters": ["pair_id", "test_date"],
}


@pytest.mark.parametrize("mart", list(KEYS))
def test_no_value_at_t_changes_when_later_bars_are_deleted(full, truncated, mart):
    keys = KEYS[mart]
    a, b = full[mart], truncated[mart]
    ts_col = "ts" if "ts" in keys else "test_ts"
    cut = pd.Timestamp(CUTOFF, tz="UTC")
    assert b[ts_col].max() < cut <= a[ts_col].max()
    if "pair_id" in keys:  # the candidate screen may differ; the seeded pairs may not
        common = set(a["pair_id"]) & set(b["pair_id"])
        assert set(pd.read_csv(SEED_PAIRS)["pair_id"]) <= common
        a, b = a[a["pair_id"].isin(common)], b[b["pair_id"].isin(common)]
    a = a[a[ts_col] < cut].sort_values(keys).reset_index(drop=True)
    b = b.sort_values(keys).reset_index(drop=True)
    assert len(a) == len(b) > 0
    pd.testing.assert_frame_equal(a[keys], b[keys])
    # labels look forward by definition, and are the only columns allowed to
    skip = {c for c in a.columns if c.startswith("label_")}
    compared = 0
    for col in a.columns:
        if col in skip or col in keys:
            continue
        if pd.api.types.is_float_dtype(a[col]):
            # to the bit: every value at t is computed from bars and actions up to t only
            x, y = a[col].to_numpy(float), b[col].to_numpy(float)
            np.testing.assert_array_equal(np.isnan(x), np.isnan(y), err_msg=col)
            ok = ~np.isnan(x)
            assert (x[ok] == y[ok]).all(), (col, int((x[ok] != y[ok]).sum()))
        else:
            assert a[col].equals(b[col]), col
        compared += 1
    assert compared >= 3
