"""The reference pairs backtest run by dbt (models/marts/pairs_backtest): the rule against
an independent loop over the marts it reads, fills at the next bar's open with costs,
equity balanced, metrics from metrics_frame, and point in time bit for bit: a lake
truncated at CUTOFF gives exactly the same signals, fills and equity before CUTOFF."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

START, END, CUTOFF = "2019-01-01", "2023-01-01", "2022-01-01"
SPLIT_FAMILIES = ["SYN027", "SYN028", "SYN029", "SYN030"]
SELECT = "+path:models/marts/pairs_backtest +adjustment_factors"
MARTS = (
    "pairs_backtest_signals",
    "pairs_backtest_fills",
    "pairs_backtest_trades",
    "pairs_backtest_equity",
    "pairs_backtest_runs",
    "pairs_backtest_metrics",
    "pair_spreads",
    "pair_bars",
    "pair_cointegration",
    "bars_adjusted",
)
# a config that trades often on four years of bars (entry 1.5, exit 0.25, stop 3)
VARS = {
    "backtest_entry_z": 1.5,
    "backtest_exit_z": 0.25,
    "backtest_stop_z": 3.0,
    "backtest_commission_bps": 1.0,
    "backtest_slippage_bps": 2.0,
    "backtest_notional": 100000.0,
    "coint_min_obs": 60,
}


def _build(root: Path, end: str) -> dict[str, pd.DataFrame]:
    from ingest.manager import DataManager
    from ingest.paths import DataPaths
    from ingest.sources.synthetic import SyntheticSource
    from warehouse.build import run_build

    paths = DataPaths(root).ensure()
    dm = DataManager(paths)
    src = SyntheticSource(seed=42, n_symbols=12)
    dm.add_source(src)
    report = dm.ingest(src.list_symbols() + SPLIT_FAMILIES, "1d", START, end, source="synthetic")
    assert not report.failed
    result = run_build(
        paths,
        select=SELECT,
        quiet=True,
        export=False,
        extra=["--vars", json.dumps(VARS)],
    )
    assert result.ok, result.error or result.output[-3000:]
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        return {name: con.sql(f"select * from {name}").df() for name in MARTS}


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> dict[str, pd.DataFrame]:
    return _build(tmp_path_factory.mktemp("pbt_full") / "data", END)


@pytest.fixture(scope="module")
def truncated(tmp_path_factory) -> dict[str, pd.DataFrame]:
    return _build(tmp_path_factory.mktemp("pbt_cut") / "data", CUTOFF)


def reference(full: dict[str, pd.DataFrame], pair_id: str) -> tuple[list, list]:
    """The rule written again, over the marts: (target positions, fills as (ts, symbol,
    quantity, price, commission))."""
    sp = full["pair_spreads"].query("pair_id == @pair_id").sort_values("ts")
    pb = full["pair_bars"].set_index(["pair_id", "ts"])
    co = full["pair_cointegration"].query("pair_id == @pair_id").sort_values("test_ts")
    bars = full["bars_adjusted"].query("timeframe == '1d'").set_index(["symbol", "ts"])["open"]
    e, x, s = VARS["backtest_entry_z"], VARS["backtest_exit_z"], VARS["backtest_stop_z"]
    n, slip, comm = VARS["backtest_notional"], 2.0 / 1e4, 1.0 / 1e4
    held, qty, targets, fills, pending = 0, [0.0, 0.0], [], [], None
    rows = list(sp.itertuples())
    for i, r in enumerate(rows):
        b = pb.loc[(pair_id, r.ts)]
        if pending is not None:
            opens = [
                bars.loc[(r.symbol_a, r.ts)] * b.close_tr_a / b.close_a,
                bars.loc[(r.symbol_b, r.ts)] * b.close_tr_b / b.close_b,
            ]
            beta = rows[i - 1].ols_beta
            new = (
                [0.0, 0.0]
                if pending == 0
                else [pending * n / opens[0], -pending * beta * n / opens[1]]
            )
            for leg, sym in enumerate((r.symbol_a, r.symbol_b)):
                dq = new[leg] - qty[leg]
                if dq:
                    price = opens[leg] * (1 + slip * np.sign(dq))
                    fills.append((r.ts, sym, dq, price, abs(dq * price) * comm))
            qty, held, pending = new, pending, None
        known = co[co.test_ts <= r.ts]
        coint = bool(known.is_cointegrated.iloc[-1]) if len(known) else False
        z = r.ols_zscore
        if pd.isna(z):
            t = 0
        elif held == 0:
            t = -1 if coint and e <= z < s else 1 if coint and -s < z <= -e else 0
        else:
            t = 0 if (not coint or held * z >= -x or held * z <= -s) else held
        targets.append(t)
        if t != held:
            pending = t
    return targets, fills


def test_signals_and_fills_match_an_independent_loop(full):
    sig, fil = full["pairs_backtest_signals"], full["pairs_backtest_fills"]
    traded = 0
    for pair_id in sorted(sig["pair_id"].unique()):
        targets, fills = reference(full, pair_id)
        got = sig.query("pair_id == @pair_id").sort_values("ts")
        assert got["target_position"].tolist() == targets, pair_id
        f = fil.query("pair_id == @pair_id").sort_values("fill_id")
        assert len(f) == len(fills), pair_id
        for row, ref in zip(f.itertuples(), fills, strict=True):
            assert (row.ts, row.symbol) == ref[:2]
            np.testing.assert_allclose(
                [row.quantity, row.price, row.commission], ref[2:], rtol=1e-12
            )
        traded += len(fills)
    assert traded >= 8  # the config trades: the test is not vacuous


def test_fills_follow_their_signal_at_the_next_bar(full):
    sig, fil = full["pairs_backtest_signals"], full["pairs_backtest_fills"]
    m = fil.merge(sig, on=["run_id", "signal_id"], suffixes=("", "_signal"))
    assert len(m) == len(fil) > 0
    assert (m["ts"] > m["ts_signal"]).all()
    assert (m["signal_ts"] == m["ts_signal"]).all()
    assert (m["target_position"] != m["held_position"]).all()
    assert (sig["inputs_as_of"] <= sig["ts"]).all()
    assert (sig["coint_test_ts"].dropna() <= sig.loc[sig["coint_test_ts"].notna(), "ts"]).all()


def test_equity_is_cash_plus_positions_and_metrics_come_from_metrics_frame(full):
    import polars as pl

    from warehouse.backtest_metrics import METRICS, compute_metrics

    eq = full["pairs_backtest_equity"]
    np.testing.assert_allclose(eq["equity"], eq["cash"] + eq["positions_value"], rtol=1e-12)
    runs, met = full["pairs_backtest_runs"], full["pairs_backtest_metrics"]
    assert set(runs["run_id"]) == set(met["run_id"]) == set(eq["run_id"])
    for run in runs.itertuples():
        e = eq[eq.run_id == run.run_id].sort_values("ts")
        m = compute_metrics(
            e["period_return"].to_numpy(),
            periods_per_year=run.periods_per_year,
            gross_exposure=e["gross_exposure"].to_numpy(),
            equity=e["equity"].to_numpy(),
        )
        row = met[met.run_id == run.run_id].iloc[0]
        for k in ("total_return", "sharpe", "max_drawdown", "exposure"):
            assert row[k] == pytest.approx(m[k], rel=1e-12, nan_ok=True), k
        assert json.loads(run.config)["entry_z"] == VARS["backtest_entry_z"]
    assert set(METRICS) <= set(pl.from_pandas(met).columns)


def test_trades_reconcile_with_fills_equity_signals_and_metrics(full):
    sig, fil = full["pairs_backtest_signals"], full["pairs_backtest_fills"]
    eq, tr = full["pairs_backtest_equity"], full["pairs_backtest_trades"]
    met = full["pairs_backtest_metrics"].set_index("run_id")
    runs = full["pairs_backtest_runs"].set_index("run_id")
    notional = VARS["backtest_notional"]
    checked = 0
    for run_id, e in eq.groupby("run_id"):
        e = e.sort_values("ts").reset_index(drop=True)
        t = tr[tr.run_id == run_id].sort_values("trade_id").reset_index(drop=True)
        f = fil[fil.run_id == run_id]
        s = sig[sig.run_id == run_id].set_index("signal_id")
        sym_a, sym_b = runs.loc[run_id, ["symbol_a", "symbol_b"]]
        closed = t[t.exit_reason != "open"]
        # the metrics count the closed trades and their winners
        assert met.loc[run_id, "n_trades"] == len(closed)
        if len(closed):
            assert met.loc[run_id, "hit_rate_trades"] == (closed.pnl > 0).mean()
        # at most one trade is open, and only the last
        assert (t.exit_reason == "open").sum() <= 1 and t.exit_reason.iloc[:-1].ne("open").all()
        assert t.trade_id.tolist() == list(range(len(t)))
        # every fill is an entry or an exit leg of exactly one trade
        assert len(f) == 2 * len(t) + 2 * len(closed)
        assert set(f.ts) == set(t.entry_ts) | set(closed.exit_ts)
        pos = e.set_index("ts")
        for x in t.itertuples():
            sign = 1 if x.direction == "long_spread" else -1
            assert s.loc[x.entry_signal_id, "reason"] == "entry"
            assert s.loc[x.entry_signal_id, "target_position"] == sign
            legs = f[f.ts == x.entry_ts].set_index("symbol")
            assert legs.loc[sym_a, "price"] == x.entry_price_a
            assert legs.loc[sym_b, "price"] == x.entry_price_b
            assert legs.loc[sym_a, "quantity"] == x.quantity_a and np.sign(x.quantity_a) == sign
            assert legs.loc[sym_b, "quantity"] == x.quantity_b
            i = e.index[e.ts == x.entry_ts][0]
            end = e.index[e.ts == x.exit_ts][0] if x.exit_reason != "open" else len(e)
            assert x.bars_held == end - i
            held = e.iloc[i:end]
            assert (held.position == sign).all()
            assert (held.quantity_a == x.quantity_a).all() and (
                held.quantity_b == x.quantity_b
            ).all()
            if x.exit_reason == "open":
                assert pd.isna(x.exit_ts) and pd.isna(x.pnl) and pd.isna(x.trade_return)
                continue
            assert s.loc[x.exit_signal_id, "reason"] == x.exit_reason
            assert s.loc[x.exit_signal_id, "ts"] < x.exit_ts
            out = f[f.ts == x.exit_ts].set_index("symbol")
            assert out.loc[sym_a, "quantity"] == -x.quantity_a
            assert (out.loc[sym_a, "price"], out.loc[sym_b, "price"]) == (
                x.exit_price_a,
                x.exit_price_b,
            )
            both = pd.concat([legs, out])
            assert x.commission == pytest.approx(both.commission.sum(), rel=1e-12)
            cash_flow = -(both.quantity * both.price + both.commission).sum()
            assert x.pnl == pytest.approx(cash_flow, rel=1e-9, abs=1e-6)
            # flat before and after: the trade's pnl is the change in equity, to the bit
            assert x.pnl == pos.loc[x.exit_ts, "equity"] - e.loc[i - 1, "equity"]
            gross = abs(x.quantity_a * x.entry_price_a) + abs(x.quantity_b * x.entry_price_b)
            assert x.trade_return == pytest.approx(x.pnl / gross, rel=1e-12)
            checked += 1
        if not (t.exit_reason == "open").any():
            assert e.equity.iloc[-1] - notional == pytest.approx(closed.pnl.sum(), abs=1e-6)
    assert checked >= 4 and set(tr.exit_reason) >= {"exit_mean"}


def test_trades_closed_before_t_do_not_change_when_later_bars_are_deleted(full, truncated):
    cut = pd.Timestamp(CUTOFF, tz="UTC")
    keys = ["run_id", "trade_id"]
    a = full["pairs_backtest_trades"].sort_values(keys).reset_index(drop=True)
    b = truncated["pairs_backtest_trades"].sort_values(keys).reset_index(drop=True)
    closed_a = a[a.exit_ts < cut].reset_index(drop=True)
    closed_b = b[b.exit_reason != "open"].reset_index(drop=True)
    assert len(closed_a) == len(closed_b) > 0
    pd.testing.assert_frame_equal(closed_a, closed_b, check_exact=True)
    # a trade open at the cut has the same entry in both lakes
    entry = [c for c in a.columns if not c.startswith("exit_") and c not in ("pnl", "commission")]
    entry = [c for c in entry if c not in ("trade_return", "bars_held")]
    open_b = b[b.exit_reason == "open"].set_index(keys)
    if len(open_b):
        same = a.set_index(keys).loc[open_b.index]
        pd.testing.assert_frame_equal(
            same[[c for c in entry if c not in keys]],
            open_b[[c for c in entry if c not in keys]],
            check_exact=True,
        )


@pytest.mark.parametrize(
    ("mart", "keys"),
    [
        ("pairs_backtest_signals", ["run_id", "signal_id"]),
        ("pairs_backtest_fills", ["run_id", "fill_id"]),
        ("pairs_backtest_equity", ["run_id", "ts"]),
    ],
)
def test_no_value_up_to_t_changes_when_later_bars_are_deleted(full, truncated, mart, keys):
    cut = pd.Timestamp(CUTOFF, tz="UTC")
    a, b = full[mart], truncated[mart]
    assert b["ts"].max() < cut <= a["ts"].max()
    a = a[a["ts"] < cut].sort_values(keys).reset_index(drop=True)
    b = b.sort_values(keys).reset_index(drop=True)
    assert len(a) == len(b) > 0
    # every column to the bit: decisions, times, symbols, sides, and every float (their
    # inputs, pair_bars' forward-chained close_tr and the z-scores, are exact themselves)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert any(pd.api.types.is_float_dtype(a[c]) for c in a.columns)


def test_the_backtest_is_exact_given_its_inputs(full, truncated):
    """The backtest itself is bit-exact: run on the truncated lake's inputs cut further,
    it equals its run on those inputs in full, up to the cut, to the bit."""
    import polars as pl

    from warehouse.pairs_backtest import config_of, inputs, simulate

    cfg = config_of(lambda k: VARS[k], "1d")
    sp = pl.from_pandas(truncated["pair_spreads"]).join(
        pl.from_pandas(truncated["pair_bars"]).select("pair_id", "ts", "close_tr_a", "close_tr_b"),
        on=["pair_id", "ts"],
    )
    co = pl.from_pandas(truncated["pair_cointegration"])
    op = pl.from_pandas(truncated["bars_adjusted"]).filter(pl.col("timeframe") == "1d")
    whole = simulate(inputs(sp, co, op.select("symbol", "ts", "open")), cfg)
    cut = datetime(2021, 6, 1)
    part = simulate(
        inputs(
            sp.filter(pl.col("ts").dt.replace_time_zone(None) < cut),
            co,
            op.select("symbol", "ts", "open"),
        ),
        cfg,
    )
    for name in ("signals", "fills", "equity"):
        a = whole[name].filter(pl.col("ts").dt.replace_time_zone(None) < cut)
        assert a.height > 0 and a.equals(part[name]), name
