"""Forex in the warehouse: the FX calendar (17:00 New York days) in coverage and daily bars.

One lake for the module, landed through the Dukascopy source itself (bi5 files packed
here and served by a fake HTTP transport, decoded by the source, written by the lake
writer), then one real ``dbt build``. Two weeks of EURUSD minutes around the start of US
summer time (Sunday 2024-03-10), complete from each Sunday 17:00 New York open to the
Friday 17:00 close; GBPUSD the same with three hours missing across UTC midnight. The
second week lands after a first build, so the marts are those of an incremental build.
"""

from __future__ import annotations

import lzma
import struct
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pandas as pd
import pytest

from ingest.manager import DataManager
from ingest.paths import DataPaths
from ingest.sources.dukascopy import (
    CANDLE,
    TICK_RECORD,
    DukascopySource,
    candle_path,
    tick_path,
)
from warehouse.build import run_build
from warehouse.layout import read_table

pytestmark = pytest.mark.slow

NY = ZoneInfo("America/New_York")
NOW = datetime(2024, 3, 20, tzinfo=UTC)
WAREHOUSE = (
    "path:models/staging path:models/intermediate path:models/marts/bars "
    "path:models/marts/coverage path:models/marts/quality path:seeds/source_limits.csv "
    "path:tests/dbt/warehouse"
)
#: the two FX weeks, by their sessions' dates
WEEKS = [[date(2024, 3, d) for d in range(4, 9)], [date(2024, 3, d) for d in range(11, 16)]]
#: GBPUSD's hole: 23:00 to 02:00 UTC, inside Wednesday 2024-03-06's session (it opened
#: on Tuesday at 17:00 New York = 22:00 UTC)
HOLE = (datetime(2024, 3, 5, 23, tzinfo=UTC), datetime(2024, 3, 6, 2, tzinfo=UTC))
#: EURUSD's tick hours, across Monday 2024-03-11's 17:00 New York (21:00 UTC) close
TICK_HOURS = [datetime(2024, 3, 11, h, tzinfo=UTC) for h in (19, 20, 21, 22)]


def ny_five_pm(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 17, tzinfo=NY).astimezone(UTC)


def session_minutes() -> list[datetime]:
    """Every minute of the two weeks' sessions, computed from the New York clock."""
    out = []
    for week in WEEKS:
        t, end = ny_five_pm(week[0] - timedelta(days=1)), ny_five_pm(week[-1])
        while t < end:
            out.append(t)
            t += timedelta(minutes=1)
    return out


def bi5(records: list[tuple], fmt: struct.Struct) -> bytes:
    return lzma.compress(b"".join(fmt.pack(*r) for r in records), format=lzma.FORMAT_ALONE)


class Feed:
    """Dukascopy's files by path (a missing one is a 404, as for a closed market)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/datafeed/")
        if path not in self.files:
            return httpx.Response(404)
        return httpx.Response(200, content=self.files[path])

    def source(self) -> DukascopySource:
        client = httpx.Client(transport=httpx.MockTransport(self.handler))
        return DukascopySource(
            client=client,
            base_url="https://datafeed.test/datafeed",
            sleep=lambda _s: None,
            now=NOW,
        )


def tick_files(feed: Feed, symbol: str, hours: list[datetime], seed: int) -> dict:
    """Hour files of 1 to 6 quotes a minute (integer points; float32-exact volumes); returns
    each minute's candle per side as Dukascopy derives it from the ticks."""
    rng = np.random.default_rng(seed)
    candles = {}
    bid = 108_500
    for hour in hours:
        records = []
        for minute in range(60):
            n = int(rng.integers(1, 7))
            ms = np.sort(rng.choice(60_000, n, replace=False)) + minute * 60_000
            bids = bid + np.cumsum(rng.integers(-2, 3, n))
            asks = bids + rng.integers(1, 4, n)
            bid = int(bids[-1])
            bid_v = rng.integers(1, 20, n) / 4
            ask_v = rng.integers(1, 20, n) / 4
            records += [
                (int(t), int(a), int(b), float(av), float(bv))
                for t, a, b, av, bv in zip(ms, asks, bids, ask_v, bid_v, strict=True)
            ]
            candles[hour + timedelta(minutes=minute)] = {
                "BID": (bids[0], bids.max(), bids.min(), bids[-1], bid_v.sum()),
                "ASK": (asks[0], asks.max(), asks.min(), asks[-1], ask_v.sum()),
            }
        feed.files[tick_path(symbol, hour)] = bi5(records, TICK_RECORD)
    return candles


def candle_files(
    feed: Feed, symbol: str, minutes: list[datetime], seed: int, fixed: dict | None = None
) -> None:
    """BID and ASK day files of a random walk (integer points), one candle per minute;
    ``fixed`` gives some minutes' candles (open, high, low, close, volume per side)."""
    rng = np.random.default_rng(seed)
    n = len(minutes)
    bid_open = 108_000 + np.cumsum(rng.integers(-3, 4, n))
    spread = rng.integers(1, 4, n)
    sides = {}
    for side, base in (("BID", bid_open), ("ASK", bid_open + spread)):
        o = base
        c = base + rng.integers(-2, 3, n)
        h = np.maximum(o, c) + rng.integers(0, 3, n)
        low = np.minimum(o, c) - rng.integers(0, 3, n)
        v = rng.integers(1, 40, n) / 4  # exact in float32
        sides[side] = list(zip(o, h, low, c, v, strict=True))
    days: dict[date, dict[str, list[tuple]]] = {}
    for i, t in enumerate(minutes):
        start = datetime(t.year, t.month, t.day, tzinfo=UTC)
        per_side = days.setdefault(t.date(), {"BID": [], "ASK": []})
        for side in ("BID", "ASK"):
            o, h, low, c, v = (fixed or {}).get(t, {}).get(side) or sides[side][i]
            # a record holds open, close, low, high (in that order), then the volume
            rec = (int((t - start).total_seconds()), int(o), int(c), int(low), int(h), float(v))
            per_side[side].append(rec)
    for day, per_side in days.items():
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        for side, records in per_side.items():
            feed.files[candle_path(symbol, start, side)] = bi5(records, CANDLE)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("forex")
    paths = DataPaths(root)
    feed = Feed()
    minutes = session_minutes()
    # the tick hours' candles are the ones Dukascopy derives from those ticks
    candle_files(feed, "EURUSD", minutes, seed=1, fixed=tick_files(feed, "EURUSD", TICK_HOURS, 3))
    candle_files(feed, "GBPUSD", [t for t in minutes if not HOLE[0] <= t < HOLE[1]], seed=2)
    dm = DataManager(paths, sources={"dukascopy": feed.source()}, now=lambda: NOW)
    # two landings and two builds: the second is incremental, from inside the second
    # week's Wednesday session (it opened on Tuesday at 21:00 UTC)
    for start, end in (("2024-03-03", "2024-03-13"), ("2024-03-13", "2024-03-16")):
        report = dm.ingest(["EURUSD", "GBPUSD"], "1m", start, end, source="dukascopy")
        assert all(r.status in ("ok", "fetched") for r in report.results), report.results
        result = run_build(
            paths, select=WAREHOUSE, quiet=True, extra=("--indirect-selection", "cautious")
        )
        assert result.ok, result.error + "\n" + result.output[-4000:]
        if start == "2024-03-03":
            report = dm.ingest(
                ["EURUSD"],
                "tick",
                TICK_HOURS[0],
                TICK_HOURS[-1] + timedelta(hours=1),
                source="dukascopy",
            )
            assert report.results[0].status in ("ok", "fetched"), report.results
    return {"paths": paths, "minutes": minutes}


def mart(built: dict, name: str) -> pd.DataFrame:
    return read_table(built["paths"].marts, name).to_pandas()


# --- coverage on the FX calendar -----------------------------------------------------------


def test_a_complete_forex_fortnight_is_fully_covered(built: dict) -> None:
    summary = mart(built, "coverage_summary").set_index(["source", "symbol", "timeframe"])
    eur = summary.loc[("dukascopy", "EURUSD", "1m")]
    assert eur["calendar"] == "FX"
    assert eur["row_count"] == len(built["minutes"]) == 10 * 1440
    assert eur["expected_rows"] == 10 * 1440
    assert eur["completeness"] == 1.0
    assert eur["sessions_expected"] == eur["sessions_complete"] == 10
    assert eur["rows_outside_sessions"] == 0 and eur["gap_count"] == 0
    gaps = mart(built, "coverage_gaps")
    assert gaps.query("symbol == 'EURUSD'").empty


def test_missing_hours_are_one_gap_in_their_forex_session(built: dict) -> None:
    summary = mart(built, "coverage_summary").set_index(["source", "symbol", "timeframe"])
    gbp = summary.loc[("dukascopy", "GBPUSD", "1m")]
    assert gbp["completeness"] == pytest.approx((10 * 1440 - 180) / (10 * 1440))
    assert gbp["sessions_complete"] == 9 and gbp["gap_count"] == 1
    (gap,) = mart(built, "coverage_gaps").query("symbol == 'GBPUSD'").to_dict("records")
    # the hours across UTC midnight are one gap, in the session closing on Wednesday
    assert gap["first_session_date"] == gap["last_session_date"] == date(2024, 3, 6)
    assert gap["missing_rows"] == 180 and not gap["is_whole_sessions"]
    assert gap["gap_start_at"] == pd.Timestamp("2024-03-05 22:00", tz="UTC")
    assert gap["gap_end_at"] == pd.Timestamp("2024-03-06 22:00", tz="UTC")
    assert gap["calendar"] == "FX"


def test_the_lake_records_forex_symbols_on_the_fx_calendar(built: dict) -> None:
    symbols = pd.read_parquet(built["paths"].lake / "symbols")
    assert set(symbols["calendar"]) == {"FX"}
    assert (Path(built["paths"].lake) / "calendars" / "calendar=FX" / "data.parquet").exists()


# --- daily and weekly bars on the forex day ----------------------------------------------


def forex_day(ts: pd.Series) -> pd.Series:
    """The New York date on which a minute's session closes (independent of the build)."""
    return (ts.dt.tz_convert("America/New_York") + pd.Timedelta(hours=7)).dt.date


def test_daily_bars_are_the_17_00_new_york_sessions(built: dict) -> None:
    minute = mart(built, "bars_adjusted").query("symbol == 'EURUSD' and timeframe == '1m'")
    minute = minute.sort_values("ts")
    expected = minute.groupby(forex_day(minute["ts"])).agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
        first_ts=("ts", "min"),
    )
    daily = mart(built, "bars_resampled").query("symbol == 'EURUSD' and timeframe == '1d'")
    daily = daily.sort_values("ts").reset_index(drop=True)
    assert [t.date() for t in daily["ts"]] == [d for week in WEEKS for d in week]
    assert (daily["ts"].dt.hour == 0).all()  # a daily bar carries its session date
    assert list(daily["session_date"]) == list(expected.index)
    np.testing.assert_allclose(
        daily[["open", "high", "low", "close", "volume"]],
        expected[["open", "high", "low", "close", "volume"]],
    )
    assert (daily["bar_count"] == 1440).all() and (daily["expected_bar_count"] == 1440).all()
    assert not daily["is_partial"].any()
    # Monday's bar opens on Sunday at 17:00 New York: 22:00 UTC in winter, 21:00 in summer
    assert expected["first_ts"].iloc[0] == pd.Timestamp("2024-03-03 22:00", tz="UTC")
    assert expected["first_ts"].iloc[5] == pd.Timestamp("2024-03-10 21:00", tz="UTC")


def test_weekly_bars_run_from_the_sunday_open_to_the_friday_close(built: dict) -> None:
    minute = mart(built, "bars_adjusted").query("symbol == 'EURUSD' and timeframe == '1m'")
    minute = minute.set_index("ts").sort_index()
    weekly = mart(built, "bars_resampled").query("symbol == 'EURUSD' and timeframe == '1w'")
    weekly = weekly.sort_values("ts").reset_index(drop=True)
    assert list(weekly["ts"]) == [
        pd.Timestamp("2024-03-04", tz="UTC"),
        pd.Timestamp("2024-03-11", tz="UTC"),
    ]
    assert (weekly["bar_count"] == 7200).all() and (weekly["expected_bar_count"] == 7200).all()
    assert not weekly["is_partial"].any()
    bounds = [("2024-03-03 22:00", "2024-03-08 21:59"), ("2024-03-10 21:00", "2024-03-15 20:59")]
    for row, (first, last) in zip(weekly.itertuples(), bounds, strict=True):
        week = minute.loc[pd.Timestamp(first, tz="UTC") : pd.Timestamp(last, tz="UTC")]
        assert len(week) == 7200
        assert row.open == week["open"].iloc[0] and row.close == week["close"].iloc[-1]
        assert row.high == week["high"].max() and row.low == week["low"].min()
        assert row.volume == pytest.approx(week["volume"].sum())


def test_intraday_buckets_start_at_the_17_00_open(built: dict) -> None:
    four = mart(built, "bars_resampled").query("symbol == 'EURUSD' and timeframe == '4h'")
    summer = four["ts"] >= pd.Timestamp("2024-03-10", tz="UTC")
    assert sorted(set(four[~summer]["ts"].dt.hour)) == [2, 6, 10, 14, 18, 22]  # 17:00 EST
    assert sorted(set(four[summer]["ts"].dt.hour)) == [1, 5, 9, 13, 17, 21]  # 17:00 EDT
    assert len(four) == 10 * 6
    assert (four["bar_count"] == 240).all() and not four["is_partial"].any()


def test_a_hole_across_utc_midnight_makes_one_forex_day_partial(built: dict) -> None:
    daily = mart(built, "bars_resampled").query("symbol == 'GBPUSD' and timeframe == '1d'")
    partial = daily[daily["is_partial"]]
    assert [t.date() for t in partial["ts"]] == [date(2024, 3, 6)]
    assert partial["bar_count"].tolist() == [1440 - 180]
    assert len(daily) == 10


# --- bid and ask ---------------------------------------------------------------------------


def test_lake_bars_keep_each_side_in_bars_bid_ask(built: dict) -> None:
    quotes = mart(built, "bars_bid_ask")
    assert set(quotes["symbol"]) == {"EURUSD", "GBPUSD"}
    assert len(quotes) == 2 * 10 * 1440 - 180
    mid = mart(built, "bars_adjusted").query("timeframe == '1m'")
    both = quotes.merge(mid, on=["symbol", "timeframe", "ts"])
    assert len(both) == len(quotes)
    for field in ("open", "high", "low", "close"):
        # Dukascopy's 1m bar is the mean of its two sides' candles
        np.testing.assert_allclose(
            both[field], (both[f"bid_{field}"] + both[f"ask_{field}"]) / 2, atol=1e-9
        )
    np.testing.assert_allclose(both["spread_close"], both["ask_close"] - both["bid_close"])


def test_quote_ticks_make_the_same_minutes_as_dukascopys_own_candles(built: dict) -> None:
    from_ticks = mart(built, "bars_from_ticks").query("symbol == 'EURUSD'")
    from_ticks = from_ticks.set_index("ts").sort_index()
    hours = (TICK_HOURS[0], TICK_HOURS[-1] + timedelta(hours=1))
    candles = mart(built, "bars_bid_ask").query("symbol == 'EURUSD' and timeframe == '1m'")
    candles = candles[(candles["ts"] >= hours[0]) & (candles["ts"] < hours[1])]
    candles = candles.set_index("ts").sort_index()
    mids = mart(built, "bars_adjusted").query("symbol == 'EURUSD' and timeframe == '1m'")
    mids = mids.set_index("ts").loc[candles.index]
    assert list(from_ticks.index) == list(candles.index) and len(candles) == 4 * 60
    sides = [f"{s}_{f}" for s in ("bid", "ask") for f in ("open", "high", "low", "close")]
    # each side: exactly the candles Dukascopy built from the same ticks
    np.testing.assert_array_equal(from_ticks[sides].to_numpy(), candles[sides].to_numpy())
    # the mid: first and last quote's mid are the candle mids' open and close; its extremes
    # lie within the mean of the sides' extremes
    np.testing.assert_allclose(from_ticks["open"], mids["open"], atol=1e-9)
    np.testing.assert_allclose(from_ticks["close"], mids["close"], atol=1e-9)
    assert (from_ticks["high"] <= mids["high"] + 1e-9).all()
    assert (from_ticks["low"] >= mids["low"] - 1e-9).all()
    # sizes: bid plus ask, summed over the minute, as Dukascopy's two volumes
    np.testing.assert_allclose(from_ticks["volume"], mids["volume"])
    assert (from_ticks["trade_count"] == 0).all() and (from_ticks["quote_count"] >= 1).all()
    ticks = pd.read_parquet(built["paths"].lake / "ticks")
    assert from_ticks["quote_count"].sum() == len(ticks)
