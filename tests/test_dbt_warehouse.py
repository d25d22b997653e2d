"""End-to-end: a real ``dbt build`` (subprocess) on a small lake, then the marts.

One build for the whole module (session fixture); the checks read the Parquet marts, the
way Python users do, and compare them with independent numpy/pandas computations.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ingest.paths import DataPaths
from tests.dbt_lake import (
    WORKED_CLOSES,
    SmallLake,
    add_worked_example,
    add_yfinance_symbol,
)
from warehouse.build import WarehouseLockedError, lock_holder, run_build
from warehouse.layout import list_marts, read_table
from warehouse.marts import summary
from warehouse.pit import bars_as_of

pytestmark = pytest.mark.slow

#: this project's warehouse models and their tests (other marts live in the same project)
WAREHOUSE = (
    "path:models/staging path:models/intermediate path:models/marts/bars "
    "path:models/marts/coverage path:models/marts/quality path:seeds/source_limits.csv "
    "path:tests/dbt/warehouse"
)
CAUTIOUS = ("--indirect-selection", "cautious")


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("warehouse")
    lake = SmallLake(root).build()
    worked_days = add_worked_example(lake)
    yf = add_yfinance_symbol(lake)
    paths = DataPaths(root)
    result = run_build(paths, select=WAREHOUSE, quiet=True, extra=CAUTIOUS)
    assert result.ok, result.error + "\n" + result.output[-4000:]
    return {"paths": paths, "result": result, "worked_days": worked_days, "yf": yf}


def mart(built: dict, name: str) -> pd.DataFrame:
    return read_table(built["paths"].marts, name).to_pandas()


def test_build_publishes_every_mart(built: dict) -> None:
    names = set(list_marts(built["paths"].marts))
    assert {
        "bars_adjusted",
        "bars_resampled",
        "bars_from_ticks",
        "adjustment_factors",
        "corporate_actions",
        "coverage_summary",
        "coverage_gaps",
        "quality_quarantine",
    } <= names
    assert not list(built["paths"].marts.glob(".*tmp*"))
    # the bar marts as datasets partitioned like the lake, the others as one file
    for name in ("bars_adjusted", "bars_resampled", "bars_from_ticks"):
        assert (built["paths"].marts / name).is_dir(), name
    assert (built["paths"].marts / "coverage_summary.parquet").is_file()


def test_exported_bars_are_sorted_by_symbol_timeframe_ts(built: dict) -> None:
    bars = mart(built, "bars_adjusted")
    keys = list(zip(bars["symbol"], bars["timeframe"], bars["ts"], strict=True))
    assert keys == sorted(keys)


def test_worked_check_total_return_closes(built: dict) -> None:
    bars = mart(built, "bars_adjusted").query("symbol == 'WRK'").sort_values("ts")
    assert bars["close"].tolist() == WORKED_CLOSES
    np.testing.assert_allclose(
        bars["close_adj"], [49.50, 50.49, 50.50, 52.00, 52.50, 53.00], rtol=0, atol=1e-9
    )
    np.testing.assert_allclose(bars["volume_adj"], [2000] * 4 + [1000] * 2)


def test_worked_check_as_of_d4_from_python(built: dict) -> None:
    d4 = built["worked_days"][3]
    bars = bars_as_of(built["paths"], d4, symbols=["WRK"], timeframe="1d").to_pandas()
    assert len(bars) == 4
    assert bars["close_adj"].iloc[0] == pytest.approx(99.00, abs=1e-9)
    assert bars["close_adj"].iloc[3] == pytest.approx(104.0)


def test_worked_check_as_of_d4_from_the_duckdb_macro(built: dict) -> None:
    d4 = built["worked_days"][3]
    con = duckdb.connect(str(built["paths"].warehouse), read_only=True)
    try:
        rows = con.execute(
            "select close_adj from bars_as_of(?) where symbol = 'WRK' order by ts", [d4]
        ).fetchall()
    finally:
        con.close()
    assert [round(r[0], 9) for r in rows] == [99.0, 100.98, 101.0, 104.0]


def test_adjusted_closes_match_yfinance_adj_close(built: dict) -> None:
    yf = built["yf"]
    bars = mart(built, "bars_adjusted").query("symbol == 'YFX'").sort_values("ts")
    assert len(bars) == len(yf)
    np.testing.assert_allclose(bars["close_adj"].to_numpy(), yf["Adj Close"].to_numpy(), rtol=1e-6)
    # split-only adjustment gives back Yahoo's (split-adjusted) Close
    np.testing.assert_allclose(
        bars["close_split_adj"].to_numpy(), yf["Close"].to_numpy(), rtol=1e-6
    )
    np.testing.assert_allclose(
        bars["volume_split_adj"].to_numpy(), yf["Volume"].to_numpy(), rtol=1e-6
    )


def test_adjusted_closes_match_an_independent_numpy_computation(built: dict) -> None:
    bars = mart(built, "bars_adjusted").query("symbol == 'AAA' and timeframe == '1d'")
    bars = bars.sort_values("ts").reset_index(drop=True)
    dates = bars["ts"].dt.date.to_numpy()
    close = bars["close"].to_numpy()
    factor = np.ones(len(bars))
    actions = mart(built, "corporate_actions").query("symbol == 'AAA'")
    for a in actions.itertuples():
        before = dates < a.ex_date
        if a.action_type == "split":
            factor[before] /= a.split_ratio
        else:
            prev = close[before][-1]
            factor[before] *= 1 - a.cash_amount / prev
    # stored bit-rounded to 37 significant bits (macros/bit_round.sql): within 2^-37 of the
    # exact product, plus the factors' own last-bit differences
    np.testing.assert_allclose(bars["close_adj"].to_numpy(), close * factor, rtol=2**-36)
    assert (bars["close_adj"] != bars["close"] * factor).any()  # rounded, not recomputed


def test_source_precedence_picks_csv_over_synthetic(built: dict) -> None:
    bars = mart(built, "bars_adjusted").query("symbol == 'AAA' and timeframe == '1d'")
    assert (bars["source"] == "csv").sum() == 3
    assert not bars.duplicated(["symbol", "timeframe", "ts"]).any()


def test_resampled_bars_match_pandas(built: dict) -> None:
    minute = mart(built, "bars_adjusted").query("symbol == 'BTC/USD' and timeframe == '1m'")
    minute = minute.set_index("ts").sort_index()
    expected = minute.resample("1h").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    got = mart(built, "bars_resampled").query("symbol == 'BTC/USD' and timeframe == '1h'")
    got = got.set_index("ts").sort_index()
    pd.testing.assert_frame_equal(
        got[["open", "high", "low", "close", "volume"]], expected, check_freq=False
    )
    assert (got["bar_count"] == 60).all() and not got["is_partial"].any()


def test_equity_buckets_start_at_the_session_open(built: dict) -> None:
    hourly = mart(built, "bars_resampled").query("symbol == 'AAA' and timeframe == '1h'")
    minutes = hourly["ts"].dt.minute.unique().tolist()
    assert minutes == [30]  # 09:30 New York = 14:30 UTC in March (EST)
    daily = mart(built, "bars_resampled").query("symbol == 'AAA' and timeframe == '1d'")
    assert len(daily) == 3 and (daily["bar_count"] == 390).all()
    assert not daily["is_partial"].any()


def test_a_hole_makes_buckets_partial(built: dict) -> None:
    daily = mart(built, "bars_resampled").query("symbol == 'BBB' and timeframe == '1d'")
    assert daily["is_partial"].sum() == 1
    assert sorted(daily["bar_count"]) == [360, 390, 390]


def test_ticks_aggregate_to_minute_bars(built: dict) -> None:
    ticks = pd.read_parquet(built["paths"].lake / "ticks")
    ticks = ticks.sort_values(["ts", "seq"]).set_index("ts")
    expected = ticks["price"].resample("1min").ohlc().dropna()
    got = mart(built, "bars_from_ticks").set_index("ts").sort_index()
    np.testing.assert_allclose(got[["open", "high", "low", "close"]], expected.to_numpy())
    assert got["trade_count"].sum() == len(ticks)
    # a lake written before quotes existed (no bid/ask columns anywhere) still builds
    assert "bid" not in ticks.columns
    assert (got["quote_count"] == 0).all() and got["bid_open"].isna().all()
    assert mart(built, "bars_bid_ask").empty


def test_bad_print_is_flagged_not_dropped(built: dict) -> None:
    bbb = mart(built, "bars_adjusted").query("symbol == 'BBB' and timeframe == '1m'")
    bbb = bbb.sort_values("ts").reset_index(drop=True)
    assert len(bbb) == 1140
    spike = bbb.iloc[500]
    assert spike["is_suspect"]
    assert spike["is_outlier"] and not spike["is_invalid"]
    assert list(spike["quality_flags"]) == ["outlier"]
    assert bbb["is_outlier"].sum() == 1  # the bar after the spike reverts; it holds nothing


def test_quarantine_lists_flags_and_ingest_rejects(built: dict) -> None:
    q = mart(built, "quality_quarantine")
    assert set(q["disposition"]) >= {"flagged", "rejected_at_ingest"}
    assert (q["reason"] == "non-positive price").sum() == 1
    flagged = mart(built, "bars_adjusted").query("is_suspect")
    assert (q["disposition"] == "flagged").sum() == flagged["quality_flags"].map(len).sum()


def test_coverage_gaps_are_classified(built: dict) -> None:
    gaps = mart(built, "coverage_gaps").set_index(["symbol", "timeframe"])
    assert gaps.loc[("BBB", "1m"), "gap_class"] == "fetchable"
    assert gaps.loc[("BBB", "1m"), "missing_rows"] == 30
    assert gaps.loc[("BBB", "1d"), "gap_class"] == "vendor_returned_nothing"
    summary_ = mart(built, "coverage_summary").set_index(["source", "symbol", "timeframe"])
    assert summary_.loc[("synthetic", "AAA", "1m"), "completeness"] == 1.0
    assert summary_.loc[("synthetic", "BBB", "1m"), "completeness"] == pytest.approx(1140 / 1170)
    assert summary_.loc[("synthetic", "BTC/USD", "1m"), "expected_rows"] == 2880


def test_summary_reads_the_marts(built: dict) -> None:
    s = summary(built["paths"])
    assert s["symbols"] == 5
    assert s["bars"]["1m"] == 1170 + 1140 + 2880
    assert s["quarantined rows"]["non-positive price"] == 1


def test_lock_holder_is_parsed_from_duckdb_error() -> None:
    text = (
        'IO Error: Could not set lock on file "/d/warehouse.duckdb": Conflicting lock is '
        "held in /usr/bin/python3.11 (PID 4242) by user me. See also ..."
    )
    assert lock_holder(text) == ("/usr/bin/python3.11", 4242)
    assert lock_holder("Binder Error: nothing to see") is None


def test_a_lock_conflict_names_the_holding_process(built: dict, tmp_path: Path) -> None:
    paths: DataPaths = built["paths"]
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import duckdb, sys, time
                con = duckdb.connect({str(paths.warehouse)!r})
                print('ready', flush=True)
                sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(WarehouseLockedError, match=rf"PID {holder.pid}"):
            run_build(paths, select="stg_lake__bars", quiet=True, export=False)
    finally:
        holder.communicate("", timeout=30)
