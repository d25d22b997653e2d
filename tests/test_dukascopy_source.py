"""Dukascopy through bi5 files built byte for byte here, served by a fake HTTP transport."""

from __future__ import annotations

import lzma
import struct
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ingest.errors import SourceError, SourceUnreachableError, SymbolNotFoundError
from ingest.manager import DataManager
from ingest.sources import make
from ingest.sources.dukascopy import (
    CANDLE,
    TICK_RECORD,
    DukascopySource,
    candle_path,
    decode_candles,
    decode_ticks,
    point_size,
    tick_path,
)

NOW = datetime(2019, 1, 10, tzinfo=UTC)
BASE = "https://datafeed.test/datafeed"


def d(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def bi5(records: list[tuple], fmt: struct.Struct) -> bytes:
    return lzma.compress(b"".join(fmt.pack(*r) for r in records), format=lzma.FORMAT_ALONE)


class FakeFeed:
    """Files by path; a missing path answers 404. ``queued`` status codes answer first."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.queued: list[int | Exception] = []
        self.sleeps: list[float] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/datafeed/")
        self.requests.append(path)
        if self.queued:
            q = self.queued.pop(0)
            if isinstance(q, Exception):
                raise q
            return httpx.Response(q)
        if path not in self.files:
            return httpx.Response(404)
        return httpx.Response(200, content=self.files[path])

    def source(self) -> DukascopySource:
        client = httpx.Client(transport=httpx.MockTransport(self.handler))
        return DukascopySource(client=client, base_url=BASE, sleep=self.sleeps.append, now=NOW)


@pytest.fixture
def feed() -> FakeFeed:
    return FakeFeed()


def manager(paths, src: DukascopySource) -> DataManager:
    return DataManager(paths, sources={src.name: src}, now=lambda: NOW)


# --- layout and decoding -------------------------------------------------------------------


def test_paths_count_the_month_from_zero():
    assert tick_path("eurusd", d(2019, 1, 4, 0)) == "EURUSD/2019/00/04/00h_ticks.bi5"
    assert tick_path("USDJPY", d(2020, 12, 31, 23)) == "USDJPY/2020/11/31/23h_ticks.bi5"
    assert candle_path("EURUSD", d(2019, 1, 4), "BID") == "EURUSD/2019/00/04/BID_candles_min_1.bi5"


def test_point_sizes_come_from_the_seed_table():
    assert point_size("EURUSD") == 1e-5
    assert point_size("usdjpy") == 1e-3
    assert point_size("XAUUSD") == 1e-3
    with pytest.raises(SymbolNotFoundError, match="forex_point_sizes"):
        point_size("NOPE")


def test_golden_first_tick_of_eurusd_2019_01_04_00h():
    body = bi5([(994, 114545, 114543, 1.0, 2.06), (1500, 114546, 114544, 0.75, 1.5)], TICK_RECORD)
    t = decode_ticks(body, d(2019, 1, 4, 0), point_size("EURUSD")).to_pylist()
    first = t[0]
    assert first["ts"] == datetime(2019, 1, 4, 0, 0, 0, 994000, tzinfo=UTC)
    assert first["ask"] == 1.14545
    assert first["bid"] == 1.14543
    assert first["ask_size"] == 1.0
    assert first["bid_size"] == pytest.approx(2.06, rel=1e-6)  # float32 millions
    assert first["price"] == 1.14544  # the mid
    assert first["side"] == "quote"
    assert t[1]["seq"] == first["seq"] + 1


def test_golden_candle_records_hold_open_close_low_high_in_that_order():
    # seconds, open, close, low, high, volume
    body = bi5(
        [(0, 114500, 114520, 114490, 114530, 3.5), (60, 114520, 114510, 114505, 114525, 1.25)],
        CANDLE,
    )
    c = decode_candles(body, d(2019, 1, 4), 1e-5).to_pylist()
    assert c[0] == {
        "ts": d(2019, 1, 4, 0, 0),
        "open": 1.145,
        "high": 1.1453,
        "low": 1.1449,
        "close": 1.1452,
        "volume": 3.5,
    }
    assert c[1]["ts"] == d(2019, 1, 4, 0, 1)


def test_a_truncated_file_and_a_wrong_size_body_are_errors_naming_the_file():
    good = bi5([(994, 114545, 114543, 1.0, 2.06)], TICK_RECORD)
    with pytest.raises(SourceError, match="not a valid LZMA file"):
        decode_ticks(good[:-5], d(2019, 1, 4), 1e-5, "EURUSD/x.bi5")
    odd = lzma.compress(b"\0" * 21, format=lzma.FORMAT_ALONE)
    with pytest.raises(SourceError, match="21 bytes, not a whole number of 20-byte"):
        decode_ticks(odd, d(2019, 1, 4), 1e-5)


# --- through the lake -----------------------------------------------------------------------


def hour_of_ticks(hour: datetime, n: int = 3) -> bytes:
    return bi5([(1000 * i + 5, 114545 + i, 114543 + i, 1.0, 2.0) for i in range(n)], TICK_RECORD)


def test_ticks_fetch_once_and_empty_hours_are_empty_coverage(paths, feed):
    feed.files[tick_path("EURUSD", d(2019, 1, 4, 0))] = hour_of_ticks(d(2019, 1, 4, 0))
    feed.files[tick_path("EURUSD", d(2019, 1, 4, 1))] = b""  # empty body: an empty hour
    # hour 02 is a 404: an empty hour too
    dm = manager(paths, feed.source())
    ticks = dm.get_ticks("EURUSD", d(2019, 1, 4, 0), d(2019, 1, 4, 3), source="dukascopy")
    assert ticks.height == 3
    assert set(ticks.columns) >= {"bid", "ask", "bid_size", "ask_size", "price", "side"}
    assert ticks["ask"].to_list() == [1.14545, 1.14546, 1.14547]
    assert len(feed.requests) == 3
    again = dm.get_ticks("EURUSD", d(2019, 1, 4, 0), d(2019, 1, 4, 3), source="dukascopy")
    assert len(feed.requests) == 3  # fetch-once: nothing asked again
    assert again.equals(ticks)
    quiet = dm.ingest(["EURUSD"], "tick", "2019-01-05", "2019-01-06", source="dukascopy")
    assert quiet.results[0].status == "empty"
    assert dm.verify().ok


def test_one_minute_bars_are_the_mid_of_bid_and_ask_candles_with_each_side_kept(paths, feed):
    day = d(2019, 1, 4)
    feed.files[candle_path("EURUSD", day, "BID")] = bi5(
        [
            (0, 114500, 114520, 114490, 114530, 3.0),
            (60, 114520, 114510, 114505, 114525, 1.0),
            (120, 114510, 114510, 114510, 114510, 0.0),
        ],
        CANDLE,
    )
    feed.files[candle_path("EURUSD", day, "ASK")] = bi5(
        [
            (0, 114502, 114522, 114492, 114532, 2.0),
            (60, 114522, 114512, 114507, 114527, 1.5),
            (120, 114512, 114512, 114512, 114512, 0.0),  # flat, no quote: dropped
        ],
        CANDLE,
    )
    dm = manager(paths, feed.source())
    bars = dm.get_ohlcv("EURUSD", "1m", day, day + timedelta(days=1), source="dukascopy")
    assert bars["ts"].to_list() == [d(2019, 1, 4, 0, 0), d(2019, 1, 4, 0, 1)]
    assert bars["open"].to_list() == [1.14501, 1.14521]
    assert bars["high"][0] == 1.14531 and bars["low"][0] == 1.14491
    assert bars["close"][0] == 1.14521
    assert bars["volume"].to_list() == [5.0, 2.5]
    assert bars["bid_open"][0] == 1.145 and bars["ask_close"][0] == 1.14522
    assert bars["is_final"].all()
    assert len(feed.requests) == 2
    dm.get_ohlcv("EURUSD", "1m", day, day + timedelta(days=1), source="dukascopy")
    assert len(feed.requests) == 2


def test_server_errors_and_rate_limits_are_retried(feed):
    feed.files[tick_path("EURUSD", d(2019, 1, 4, 0))] = hour_of_ticks(d(2019, 1, 4, 0))
    feed.queued = [503, 429]
    res = feed.source().fetch_ticks("EURUSD", d(2019, 1, 4, 0), d(2019, 1, 4, 1))
    assert res.ticks.num_rows == 3
    assert res.symbol_info["calendar"] == "FX"  # 17:00 New York days, not XNYS
    assert res.api_calls == 3
    assert len(feed.sleeps) == 2 and feed.sleeps[1] > feed.sleeps[0]


def test_an_unknown_symbol_is_a_per_symbol_failure(paths, feed):
    feed.files[tick_path("EURUSD", d(2019, 1, 4, 0))] = hour_of_ticks(d(2019, 1, 4, 0))
    dm = manager(paths, feed.source())
    report = dm.ingest(
        ["NOPE", "EURUSD"], "tick", "2019-01-04", "2019-01-04T01:00", source="dukascopy"
    )
    assert [r.status for r in report.results] == ["failed", "ok"]
    assert "forex_point_sizes" in report.results[0].error


def test_an_unreachable_host_stops_the_run(paths, feed):
    feed.queued = [httpx.ConnectError("no route")] * 10
    src = feed.source()
    src.max_retries = 1
    dm = manager(paths, src)
    with pytest.raises(SourceUnreachableError, match="cannot reach"):
        dm.ingest(
            ["EURUSD", "GBPUSD"], "tick", "2019-01-04", "2019-01-04T01:00", source="dukascopy"
        )


def test_make_builds_it_by_name():
    assert make("dukascopy").name == "dukascopy"
