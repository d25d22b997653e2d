"""The reference pairs rule (warehouse/pairs_backtest.py) on hand-built inputs, no dbt: a
z-score series that crosses the stop band exits with ``exit_stop`` and fills at the next
bar's open, in both directions.

The inputs are shaped as the marts give them (pair_spreads joined to pair_bars,
pair_cointegration, the pair timeframe's as-traded opens) and go through
:func:`inputs`, as in the dbt models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from warehouse.pairs_backtest import config_of, inputs, simulate

VARS = {
    "backtest_entry_z": 2.0,
    "backtest_exit_z": 0.5,
    "backtest_stop_z": 3.5,
    "backtest_commission_bps": 1.0,
    "backtest_slippage_bps": 2.0,
    "backtest_notional": 100_000.0,
}
SLIP, COMM = 2.0 / 1e4, 1.0 / 1e4
BETA = 1.3
# bar:   0    1    2: enter short  3: hold  4: stop (|z| = stop)  5: beyond the stop, flat:
#        no entry  6: enter long  7: stop, long side  8, 9: flat
Z = [0.0, 0.5, 2.5, 3.0, 3.5, 3.8, -2.2, -4.0, 0.0, 0.0]
TS = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=i) for i in range(len(Z))]
# A had a 2-for-1 split before the first bar: its total-return prices are half its as-traded ones
TR_A = 0.5


def _marts() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    n = len(Z)
    close_a = [100.5 + i for i in range(n)]
    close_b = [50.2 + 0.5 * i for i in range(n)]
    spreads = pl.DataFrame(
        {
            "pair_id": ["AAA_BBB"] * n,
            "symbol_a": ["AAA"] * n,
            "symbol_b": ["BBB"] * n,
            "timeframe": ["1d"] * n,
            "ts": TS,
            "close_a": close_a,
            "close_b": close_b,
            "ols_zscore": Z,
            "ols_beta": [BETA] * n,
            "close_tr_a": [c * TR_A for c in close_a],
            "close_tr_b": close_b,
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )
    coint = pl.DataFrame(
        {"pair_id": ["AAA_BBB"], "test_ts": [TS[0]], "is_cointegrated": [True]},
        schema_overrides={"test_ts": pl.Datetime("us", "UTC")},
    )
    opens = pl.DataFrame(
        {
            "symbol": ["AAA"] * n + ["BBB"] * n,
            "ts": TS + TS,
            "open": [100.0 + i for i in range(n)] + [50.0 + 0.5 * i for i in range(n)],
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )
    return spreads, coint, opens


@pytest.fixture(scope="module")
def run() -> dict[str, pl.DataFrame]:
    return simulate(inputs(*_marts()), config_of(VARS.__getitem__, "1d"))


def _open_tr(symbol: str, bar: int) -> float:
    return (100.0 + bar) * TR_A if symbol == "AAA" else 50.0 + 0.5 * bar


def test_signals_enter_at_the_entry_band_and_stop_at_the_stop_band(run):
    sig = run["signals"].sort("signal_id")
    assert sig["reason"].to_list() == [
        "none",
        "none",
        "entry",
        "hold",
        "exit_stop",  # |z| = stop_z exactly: the band is inclusive
        "none",  # |z| beyond the stop while flat: no entry
        "entry",
        "exit_stop",
        "none",
        "none",
    ]
    assert sig["held_position"].to_list() == [0, 0, 0, -1, -1, 0, 0, 1, 0, 0]
    assert sig["target_position"].to_list() == [0, 0, -1, -1, 0, 0, 1, 0, 0, 0]


def test_a_stop_fills_at_the_next_bars_open_with_costs(run):
    fills = run["fills"].sort("fill_id")
    # entry short at bar 3 (signal 2), stop at bar 5 (signal 4); entry long at bar 7
    # (signal 6), stop at bar 8 (signal 7): two legs each
    assert fills["signal_id"].to_list() == [2, 2, 4, 4, 6, 6, 7, 7]
    bars = [3, 3, 5, 5, 7, 7, 8, 8]
    assert fills["ts"].to_list() == [TS[b] for b in bars]
    assert (fills["signal_ts"] < fills["ts"]).all()
    short_a, short_b = fills.row(0, named=True), fills.row(1, named=True)
    assert short_a["quantity"] == pytest.approx(-100_000.0 / _open_tr("AAA", 3), rel=1e-15)
    assert short_b["quantity"] == pytest.approx(BETA * 100_000.0 / _open_tr("BBB", 3), rel=1e-15)
    for f, bar in zip(fills.iter_rows(named=True), bars, strict=True):
        open_tr = _open_tr(f["symbol"], bar)
        assert f["open_price"] == pytest.approx(open_tr, rel=1e-15)
        # a buy pays the slippage, a sell gives it up
        want = open_tr * (1 + SLIP) if f["quantity"] > 0 else open_tr * (1 - SLIP)
        assert f["price"] == pytest.approx(want, rel=1e-15)
        assert f["side"] == ("buy" if f["quantity"] > 0 else "sell")
        assert f["commission"] == pytest.approx(abs(f["quantity"] * f["price"]) * COMM, rel=1e-15)
    # the stop closes exactly what the entry opened
    assert fills["quantity"][2] == -fills["quantity"][0]
    assert fills["quantity"][3] == -fills["quantity"][1]
    assert fills["quantity"][6] == -fills["quantity"][4]
    assert fills["quantity"][7] == -fills["quantity"][5]


def test_stopped_trades_carry_exit_stop_and_their_costs(run):
    trades = run["trades"].sort("trade_id")
    fills = run["fills"].sort("fill_id")
    assert trades["direction"].to_list() == ["short_spread", "long_spread"]
    assert trades["exit_reason"].to_list() == ["exit_stop", "exit_stop"]
    assert trades["entry_ts"].to_list() == [TS[3], TS[7]]
    assert trades["exit_ts"].to_list() == [TS[5], TS[8]]
    assert trades["bars_held"].to_list() == [2, 1]
    assert trades["exit_signal_id"].to_list() == [4, 7]
    for t, legs in zip(trades.iter_rows(named=True), (fills[0:4], fills[4:8]), strict=True):
        assert (t["entry_price_a"], t["entry_price_b"]) == (legs["price"][0], legs["price"][1])
        assert (t["exit_price_a"], t["exit_price_b"]) == (legs["price"][2], legs["price"][3])
        flows = -(legs["quantity"] * legs["price"] + legs["commission"]).sum()
        assert t["pnl"] == pytest.approx(flows, rel=1e-12)
        assert t["commission"] == pytest.approx(legs["commission"].sum(), rel=1e-12)
    eq = run["equity"].sort("ts")
    assert eq["position"].to_list() == [0, 0, 0, -1, -1, 0, 0, 1, 0, 0]
    assert eq["equity"][-1] - 100_000.0 == pytest.approx(trades["pnl"].sum(), rel=1e-12)
