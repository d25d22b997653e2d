"""Recording backtests: lake tables, run ids, idempotence, atomicity, trades, validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import polars as pl
import pytest

from ingest.backtests import (
    BACKTESTING_PY_TRADES,
    VECTORBT_FILLS,
    fills_from_round_trips,
    read_run_table,
    read_runs,
    record_backtest,
)
from ingest.errors import InvalidInputError
from ingest.lake import Lake
from tests.conftest import make_bars

T0 = datetime(2024, 1, 2, tzinfo=UTC)
DAY = timedelta(days=1)


def _run(**over):
    """A two-trade run on KO: long 10 @100 -> 110, short 5 @110 -> 100, fees 1 a fill."""
    ts = [T0 + i * DAY for i in range(6)]
    fills = pl.DataFrame(
        {
            "ts": [ts[1], ts[3], ts[3], ts[5]],
            "symbol": ["KO"] * 4,
            "side": ["buy", "sell", "sell", "buy"],
            "quantity": [10.0, 10.0, 5.0, 5.0],
            "price": [100.0, 110.0, 110.0, 100.0],
            "commission": [1.0, 1.0, 1.0, 1.0],
            "signal_id": [0, 1, 1, 2],
        }
    ).with_columns(pl.col("ts").dt.cast_time_unit("us"))
    signals = pl.DataFrame(
        {
            "signal_id": [0, 1, 2],
            "ts": [ts[0], ts[2], ts[4]],
            "direction": ["long_spread", "short_spread", "flat"],
            "legs": ['["KO"]'] * 3,
        }
    )
    # positions: 0, 10 KO, 10 KO, -5 KO, -5 KO, 0 ; marks 100, 100, 105, 110, 104, 100
    pos = [0.0, 1000.0, 1050.0, -550.0, -520.0, 0.0]
    cash = [1000.0, -1.0, -1.0, 1647.0, 1647.0, 1146.0]
    equity = pl.DataFrame(
        {"ts": ts, "equity": [c + p for c, p in zip(cash, pos, strict=True)], "cash": cash}
    ).with_columns(positions_value=pl.Series(pos))
    kw = dict(
        strategy="pairs_z",
        config={"entry": 2.0, "exit": 0.0, "legs": ["KO"]},
        engine="notebook",
        fills=fills,
        equity=equity,
        signals=signals,
        universe="KO",
    )
    kw.update(over)
    return kw


def test_a_run_lands_in_every_table_and_the_manifest(tmp_path):
    run = record_backtest(tmp_path, **_run())
    assert run.created and run.fills == 4 and run.periods == 6 and run.trades == 2
    runs = read_runs(tmp_path)
    assert runs["run_id"].to_list() == [run.run_id]
    assert runs["config"][0] == '{"entry":2.0,"exit":0.0,"legs":["KO"]}'
    with Lake(tmp_path) as lake:
        live = {f.dataset for f in lake.manifest.live_files() if run.run_id in f.path}
        assert live == {"backtest_runs", "signals", "fills", "trades", "equity"}
        assert lake.verify(repair=False).ok
    for table in ("signals", "fills", "trades", "equity"):
        assert (tmp_path / "lake" / table / f"run_id={run.run_id}" / "data.parquet").is_file()


def test_trades_are_derived_from_fills(tmp_path):
    run = record_backtest(tmp_path, **_run())
    trades = read_run_table(tmp_path, "trades", run.run_id)
    assert trades["direction"].to_list() == ["long", "short"]
    assert trades["pnl"].to_list() == [100.0 - 2.0, 50.0 - 2.0]
    assert trades["trade_return"].to_list() == [98.0 / 1000.0, 48.0 / 550.0]
    assert trades["bars_held"].to_list() == [2, 2]


def test_a_fill_through_zero_closes_one_trade_and_opens_the_next(tmp_path):
    kw = _run()
    ts = kw["equity"]["ts"]
    kw["fills"] = pl.DataFrame(
        {
            "ts": [ts[1], ts[3], ts[5]],
            "symbol": ["KO"] * 3,
            "quantity": [10.0, -15.0, 5.0],  # signed, no side column
            "price": [100.0, 110.0, 100.0],
            "commission": [1.0, 1.5, 1.0],
        }
    )
    kw["signals"] = None
    run = record_backtest(tmp_path, **kw)
    trades = read_run_table(tmp_path, "trades", run.run_id)
    assert trades["quantity"].to_list() == [10.0, 5.0]
    assert trades["commission"].to_list() == [2.0, 1.5]


def test_the_same_run_recorded_twice_is_one_run(tmp_path):
    first = record_backtest(tmp_path, **_run())
    with Lake(tmp_path) as lake:
        before = [(f.path, f.sha256) for f in lake.manifest.live_files()]
    again = record_backtest(tmp_path, **_run(config={"legs": ["KO"], "exit": 0.0, "entry": 2.0}))
    assert again.run_id == first.run_id and not again.created
    with Lake(tmp_path) as lake:
        assert [(f.path, f.sha256) for f in lake.manifest.live_files()] == before
    assert read_runs(tmp_path).height == 1


def test_new_config_or_new_data_gives_a_new_run(tmp_path):
    a = record_backtest(tmp_path, **_run())
    b = record_backtest(tmp_path, **_run(config={"entry": 2.5}))
    with Lake(tmp_path) as lake:
        lake.write_bars("synthetic", "KO", "1d", make_bars(T0, 5, DAY))
    c = record_backtest(tmp_path, **_run())
    assert len({a.run_id, b.run_id, c.run_id}) == 3
    d = record_backtest(tmp_path, **_run(universe="PEP"))  # KO's bars not read
    assert d.run_id == a.run_id and not d.created


def test_different_results_under_the_same_run_id_are_refused(tmp_path):
    record_backtest(tmp_path, **_run())
    kw = _run()
    kw["fills"] = kw["fills"].with_columns(pl.col("commission") * 2)
    kw["equity"] = kw["equity"].drop("cash", "positions_value")
    with pytest.raises(InvalidInputError, match="immutable"):
        record_backtest(tmp_path, initial_cash=1000.0, **kw)


def test_a_killed_recording_leaves_no_run_and_is_replaced(tmp_path, monkeypatch):
    calls = []
    real = Lake.upsert_partition

    def dying(self, dataset, keys, new, **kw):
        if dataset.name == "backtest_runs":
            raise KeyboardInterrupt  # killed before the runs row landed
        calls.append(dataset.name)
        return real(self, dataset, keys, new, **kw)

    monkeypatch.setattr(Lake, "upsert_partition", dying)
    with pytest.raises(KeyboardInterrupt):
        record_backtest(tmp_path, **_run())
    assert calls == ["signals", "fills", "trades", "equity"]
    assert read_runs(tmp_path).height == 0
    monkeypatch.setattr(Lake, "upsert_partition", real)
    run = record_backtest(tmp_path, **_run())
    assert run.created and read_run_table(tmp_path, "fills", run.run_id).height == 4


def test_cash_and_positions_are_derived_from_fills_and_initial_cash(tmp_path):
    kw = _run()
    kw["equity"] = kw["equity"].drop("cash", "positions_value")
    run = record_backtest(tmp_path, initial_cash=1000.0, **kw)
    eq = read_run_table(tmp_path, "equity", run.run_id)
    assert eq["cash"].to_list() == [1000.0, -1.0, -1.0, 1647.0, 1647.0, 1146.0]
    assert eq["period_return"][0] == 0.0
    assert eq["period_return"][2] == pytest.approx(1049.0 / 999.0 - 1, abs=1e-15)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda kw: kw["equity"].with_columns(pl.col("cash") + 5), "equity row 0 .* != cash"),
        (lambda kw: kw["equity"].reverse(), "equity row 1: ts .* is not after"),
        (
            lambda kw: kw["equity"].with_columns(pl.col("ts").dt.replace_time_zone(None)),
            "naive timestamps",
        ),
    ],
)
def test_bad_equity_is_refused_in_one_line(tmp_path, change, message):
    kw = _run()
    kw["equity"] = change(kw)
    with pytest.raises(InvalidInputError, match=message) as err:
        record_backtest(tmp_path, **kw)
    assert "\n" not in str(err.value)
    assert read_runs(tmp_path).height == 0


def test_a_fill_before_its_signal_is_refused(tmp_path):
    kw = _run()
    kw["signals"] = kw["signals"].with_columns(
        pl.when(pl.col("signal_id") == 1).then(pl.col("ts") + 2 * DAY).otherwise(pl.col("ts"))
    )
    with pytest.raises(InvalidInputError, match=r"fill 1 at .* is not after its signal 1"):
        record_backtest(tmp_path, **kw)


def test_bad_fills_are_refused_in_one_line(tmp_path):
    kw = _run()
    kw["fills"] = kw["fills"].with_columns(pl.lit("hold").alias("side"))
    with pytest.raises(InvalidInputError, match="side 'hold'"):
        record_backtest(tmp_path, **kw)
    kw = _run()
    kw["fills"] = kw["fills"].drop("price")
    with pytest.raises(InvalidInputError, match=r"lacks column\(s\) \['price'\]"):
        record_backtest(tmp_path, **kw)


def test_vectorbt_shaped_pandas_frames_record(tmp_path):
    """The shape of ``pf.orders.records_readable`` and of ``pf.value()`` with a DatetimeIndex."""
    kw = _run()
    f = kw["fills"].to_pandas()
    orders = pd.DataFrame(
        {
            "Order Id": range(4),
            "Column": f["symbol"],
            "Timestamp": f["ts"],
            "Size": f["quantity"],
            "Price": f["price"],
            "Fees": f["commission"],
            "Side": ["Buy", "Sell", "Sell", "Buy"],
        }
    )
    e = kw["equity"].to_pandas().set_index("ts")
    value = pd.DataFrame(
        {"equity": e["equity"], "cash": e["cash"], "positions_value": e["positions_value"]}
    )
    run = record_backtest(
        tmp_path,
        strategy="vbt",
        config={"fast": 10},
        engine="vectorbt",
        fills=orders,
        equity=value,
        fill_columns=VECTORBT_FILLS,
    )
    assert read_run_table(tmp_path, "trades", run.run_id)["pnl"].to_list() == [98.0, 48.0]


def test_backtesting_py_trades_become_fills(tmp_path):
    kw = _run()
    ts = kw["equity"]["ts"].to_pandas()
    trades = pd.DataFrame(
        {
            "Size": [10, -5],
            "EntryBar": [1, 3],
            "ExitBar": [3, 5],
            "EntryPrice": [100.0, 110.0],
            "ExitPrice": [110.0, 100.0],
            "EntryTime": [ts[1], ts[3]],
            "ExitTime": [ts[3], ts[5]],
        }
    )
    fills = fills_from_round_trips(trades, symbol="KO", columns=BACKTESTING_PY_TRADES)
    curve = pd.DataFrame({"Equity": kw["equity"]["equity"].to_numpy() + 4.0}, index=ts)
    curve.index.name = "ts"
    run = record_backtest(
        tmp_path,
        strategy="bt",
        config={},
        engine="backtesting.py",
        fills=fills,
        equity=curve,
        equity_columns={"equity": "Equity"},
        initial_cash=1000.0,
    )
    assert read_run_table(tmp_path, "trades", run.run_id)["pnl"].to_list() == [100.0, 50.0]
