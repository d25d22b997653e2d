"""The ccxt source against an offline Binance: ccxt's own HTTP layer, parsers and error
mapping run on recorded, real-shaped answers (see tests/ccxt_binance.py)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import ccxt
import polars as pl
import pytest

from ingest.errors import (
    InvalidInputError,
    RateLimitedError,
    SourceError,
    SourceUnreachableError,
    SymbolNotFoundError,
    UnsupportedRequestError,
)
from ingest.manager import DataManager
from ingest.schema import SYMBOLS
from ingest.sources import lake_source_name, make
from ingest.sources.ccxt import CcxtSource

from .ccxt_binance import FIXTURES, HOUR, MINUTE, Answer, FakeBinance, ms, trades_between

NOW = datetime(2024, 6, 1, 12, 30, 20, tzinfo=UTC)


def d(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def fake() -> FakeBinance:
    return FakeBinance(NOW)


def manager(paths, src: CcxtSource, fake: FakeBinance) -> DataManager:
    return DataManager(paths, sources={src.name: src}, now=fake.now)


def kline_starts(fake: FakeBinance) -> list[datetime]:
    return [datetime.fromtimestamp(r.int("startTime") / 1000, UTC) for r in fake.calls("klines")]


# --- names and capabilities ---------------------------------------------------------------


def test_the_source_is_ccxt_colon_exchange_for_users_and_ccxt_underscore_in_the_lake():
    assert lake_source_name("ccxt:binance") == "ccxt_binance"
    assert lake_source_name("ccxt_binance") == "ccxt_binance"
    assert lake_source_name("yfinance") == "yfinance"
    assert make("ccxt:binance").name == make("ccxt_binance").name == "ccxt_binance"
    with pytest.raises(InvalidInputError, match="did you mean binance"):
        make("ccxt:binanse")


def test_capabilities_come_from_the_exchange_object(fake):
    src = fake.source()
    caps = src.capabilities
    assert list(caps.timeframes) == ["1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w"]
    assert caps.timeframes["1m"].max_span == timedelta(minutes=10_000)
    assert caps.supports("tick") and caps.supports("funding")
    assert not caps.supports("2m")  # Binance has 3m, not 2m
    assert fake.requests == []  # nothing asked of the exchange to know that


def test_an_exchange_without_ohlcv_or_the_timeframe_is_refused_before_any_request(paths, fake):
    dm = manager(paths, fake.source(), fake)
    with pytest.raises(UnsupportedRequestError, match="has no 2m bars"):
        dm.ingest(["BTC/USDT"], "2m", "2024-05-01", "2024-05-02", source="ccxt:binance")
    exchange = ccxt.binance()
    exchange.has = {**exchange.has, "fetchOHLCV": False}
    exchange.session.mount("https://", fake)
    blind = CcxtSource(exchange, sleep=fake.sleep, clock=fake.clock, now=fake.now)
    dm.add_source(blind)
    with pytest.raises(UnsupportedRequestError, match="has no 1m bars; it serves tick, funding"):
        dm.ingest(["BTC/USDT"], "1m", "2024-05-01", "2024-05-02", source="ccxt:binance")
    assert fake.requests == []


# --- bars ---------------------------------------------------------------------------------


def test_a_binance_kline_row_lands_as_a_bar_with_its_extra_columns(paths, fake):
    rows = json.loads((FIXTURES / "binance_klines_ETHBTC_1m.json").read_text())
    fake.recorded[("api", "ETHBTC", "1m")] = rows
    dm = manager(paths, fake.source(), fake)
    df = dm.get_ohlcv(
        "ETH/BTC",
        "1m",
        "2020-06-06T21:22:00+00:00",
        "2020-06-06T21:25:00+00:00",
        source="ccxt:binance",
    )
    first = df.row(0, named=True)
    assert first["ts"] == datetime.fromtimestamp(1591478520, UTC)
    assert (first["open"], first["high"], first["low"], first["close"]) == (
        0.025013,
        0.025018,
        0.025,
        0.025,
    )
    assert first["volume"] == 22.19
    assert first["quote_volume"] == 0.55490906
    assert first["trade_count"] == 40
    assert first["taker_buy_volume"] == 10.929
    assert first["taker_buy_quote_volume"] == 0.27336462
    assert df["is_final"].all()
    assert df.height == 3


def test_fetch_once_first_lands_same_request_is_free_wider_fetches_only_the_two_gaps(paths, fake):
    src = fake.source()
    dm = manager(paths, src, fake)
    first = dm.get_ohlcv("BTC/USDT", "1h", "2024-02-01", "2024-03-01", source="ccxt:binance")
    assert first.height == 29 * 24
    assert len(fake.calls("exchangeInfo")) == 3  # spot, USD-M, COIN-M: once per source
    assert kline_starts(fake) == [d(2024, 2, 1)]  # 696 candles: one page of 1000
    # the values read back are the exchange's
    expected = fake.kline("api", "BTCUSDT", "1h", ms(d(2024, 2, 7, 5)))
    assert first.filter(pl.col("ts") == d(2024, 2, 7, 5))["close"].item() == float(expected[4])

    n = len(fake.requests)
    again = dm.get_ohlcv("BTC/USDT", "1h", "2024-02-01", "2024-03-01", source="ccxt:binance")
    assert len(fake.requests) == n  # zero calls
    assert again.equals(first)

    wider = dm.get_ohlcv("BTC/USDT", "1h", "2024-01-01", "2024-04-01", source="ccxt:binance")
    assert kline_starts(fake)[1:] == [d(2024, 1, 1), d(2024, 3, 1)]
    assert wider.height == 91 * 24
    assert wider["ts"].is_sorted() and wider["ts"].is_unique().all()
    assert dm.verify().ok
    runs = dm.lake.manifest.fetch_runs(symbol="BTC/USDT")
    assert [r.api_calls for r in runs] == [4, 1, 1]  # markets (3) + a page; then a page each


def test_pages_follow_each_other_across_the_page_size_limit(fake):
    src = fake.source()
    res = src.fetch_bars("BTC/USDT", "1m", d(2024, 5, 30), d(2024, 5, 30) + timedelta(minutes=2500))
    assert kline_starts(fake) == [
        d(2024, 5, 30),
        d(2024, 5, 30) + timedelta(minutes=1000),
        d(2024, 5, 30) + timedelta(minutes=2000),
    ]
    assert [r.int("limit") for r in fake.calls("klines")] == [1000, 1000, 1000]
    ts = res.bars.column("ts").to_pylist()
    assert len(ts) == 2500 and len(set(ts)) == 2500
    assert ts[-1] == d(2024, 5, 30) + timedelta(minutes=2499)


def test_a_perpetual_pages_by_its_own_smaller_limit(fake):
    res = fake.source().fetch_bars("BTC/USDT:USDT", "1m", d(2024, 5, 31), d(2024, 5, 31, 10))
    assert [(r.api, r.int("limit")) for r in fake.calls("klines")] == [("fapi", 500)] * 2
    assert res.bars.num_rows == 600


def test_the_forming_candle_is_not_final_and_is_fetched_again(paths, fake):
    src = fake.source()
    dm = manager(paths, src, fake)
    df = dm.get_ohlcv("BTC/USDT", "1m", "2024-06-01T12:00:00+00:00", source="ccxt:binance")
    assert df.filter(~pl.col("is_final"))["ts"].to_list() == [d(2024, 6, 1, 12, 30)]
    forming_close = df["close"][-1]
    cov = dm.lake.manifest.coverage("ccxt_binance", "BTC/USDT", "1m")
    assert cov[-1].end_us == ms(d(2024, 6, 1, 12, 30)) * 1000  # covered up to the forming bar

    fake.now_ms += 5 * MINUTE
    df = dm.get_ohlcv(
        "BTC/USDT",
        "1m",
        "2024-06-01T12:00:00+00:00",
        "2024-06-01T12:34:00+00:00",
        source="ccxt:binance",
    )
    assert kline_starts(fake)[-1] == d(2024, 6, 1, 12, 30)  # only from the forming bar on
    bar = df.filter(pl.col("ts") == d(2024, 6, 1, 12, 30)).row(0, named=True)
    assert bar["is_final"]
    assert bar["close"] != forming_close
    assert bar["close"] == float(fake.kline("api", "BTCUSDT", "1m", ms(d(2024, 6, 1, 12, 30)))[4])


def test_a_gap_inside_a_page_is_skipped_without_asking_again(fake):
    fake.gaps[("api", "BTCUSDT")] = [(ms(d(2024, 5, 31, 2)), ms(d(2024, 5, 31, 4)))]
    res = fake.source().fetch_bars("BTC/USDT", "1m", d(2024, 5, 31, 1), d(2024, 5, 31, 6))
    assert len(fake.calls("klines")) == 1
    assert res.bars.num_rows == 5 * 60 - 120


def test_a_range_inside_a_maintenance_gap_is_empty_coverage_never_retried(paths, fake):
    fake.gaps[("api", "BTCUSDT")] = [(ms(d(2024, 5, 31, 2)), ms(d(2024, 5, 31, 4)))]
    dm = manager(paths, fake.source(), fake)
    report = dm.ingest(
        ["BTC/USDT"],
        "1m",
        "2024-05-31T02:10:00+00:00",
        "2024-05-31T03:50:00+00:00",
        source="ccxt:binance",
    )
    assert [r.status for r in report.results] == ["empty"]
    assert [c.status for c in dm.lake.manifest.coverage("ccxt_binance", "BTC/USDT", "1m")] == [
        "empty"
    ]
    n = len(fake.requests)
    report = dm.ingest(
        ["BTC/USDT"],
        "1m",
        "2024-05-31T02:10:00+00:00",
        "2024-05-31T03:50:00+00:00",
        source="ccxt:binance",
    )
    assert [r.status for r in report.results] == ["cached"]
    assert len(fake.requests) == n


def test_from_before_the_listing_pages_from_the_listing_and_earlier_ranges_cost_nothing(
    paths, fake
):
    dm = manager(paths, fake.source(), fake)
    report = dm.ingest(["BTC/USDT"], "1h", "2015-01-01", "2017-09-01", source="ccxt:binance")
    assert report.ok
    probes = [r for r in fake.calls("klines") if r.int("startTime") == 0]
    assert len(probes) == 1 and probes[0].int("limit") == 1  # the first candle, once
    starts = [r.int("startTime") for r in fake.calls("klines") if r.int("startTime")]
    assert starts == [ms(d(2015, 1, 1)), ms(d(2017, 8, 17, 4))]  # chunk 2: no request
    cov = dm.lake.manifest.coverage("ccxt_binance", "BTC/USDT", "1h")
    assert [c.status for c in cov] == ["empty", "fetched"]
    df = dm.get_ohlcv("BTC/USDT", "1h", "2015-01-01", "2017-09-01", source="ccxt:binance")
    assert df["ts"][0] == d(2017, 8, 17, 4)
    assert CcxtSource.listing(dm.source("ccxt:binance"), "BTC/USDT", "1h") == d(2017, 8, 17, 4)


def test_bars_carry_the_markets_metadata_into_the_symbols_dataset(paths, fake):
    dm = manager(paths, fake.source(), fake)
    dm.ingest(
        ["BTC/USDT", "BTC/USDT:USDT"], "1d", "2024-05-01", "2024-05-10", source="ccxt:binance"
    )
    path = dm.lake.file_path(SYMBOLS, {"source": "ccxt_binance"})
    symbols = pl.read_parquet(path).sort("symbol")
    assert symbols["symbol"].to_list() == ["BTC/USDT", "BTC/USDT:USDT"]
    assert symbols["asset_class"].to_list() == ["crypto", "crypto"]
    assert symbols["calendar"].to_list() == ["24/7", "24/7"]
    assert symbols["market_type"].to_list() == ["spot", "swap"]
    assert symbols["tick_size"].to_list() == [0.01, 0.1]
    assert symbols["contract_size"].to_list() == [None, 1.0]
    assert symbols["settle"].to_list() == [None, "USDT"]
    assert symbols["name"][1] == "BTC/USDT perpetual on Binance"


# --- errors -------------------------------------------------------------------------------


def test_http_429_is_retried_with_backoff_honouring_retry_after(fake):
    src = fake.source(base_delay=0.5)
    src.markets()
    fake.queued = [fake.rate_limited(retry_after=3), fake.rate_limited(retry_after=3)]
    res = src.fetch_bars("BTC/USDT", "1h", d(2024, 5, 1), d(2024, 5, 2))
    assert res.bars.num_rows == 24
    assert res.api_calls == 3  # two refusals and the answer
    backoffs = [s for s in fake.sleeps if s >= 1]
    assert len(backoffs) == 2 and all(s >= 3 for s in backoffs)


def test_rate_limit_exceeded_and_ddos_protection_are_both_retried(fake):
    """ccxt 4 maps 429 to DDoSProtection and code -1003 to RateLimitExceeded: siblings."""
    assert not issubclass(ccxt.DDoSProtection, ccxt.RateLimitExceeded)
    assert not issubclass(ccxt.RateLimitExceeded, ccxt.DDoSProtection)
    src = fake.source(base_delay=0.01)
    src.markets()
    weight = {"code": -1003, "msg": "Too much request weight used; current limit is 6000."}
    fake.queued = [fake.rate_limited(), Answer(400, weight)]
    assert src.fetch_bars("BTC/USDT", "1h", d(2024, 5, 1), d(2024, 5, 2)).api_calls == 3


def test_a_rate_limit_that_persists_is_reported_with_its_attempts(paths, fake):
    src = fake.source(base_delay=0.01, max_retries=2)
    src.markets()
    fake.queued = [fake.rate_limited()] * 3
    with pytest.raises(RateLimitedError, match="still refused after 3 attempts") as info:
        src.fetch_bars("BTC/USDT", "1h", d(2024, 5, 1), d(2024, 5, 2))
    assert info.value.attempts == 3


def test_a_ban_is_reported_at_once_not_waited_for(fake):
    src = fake.source()
    src.markets()
    fake.queued = [
        Answer(
            418,
            {"code": -1003, "msg": "Way too many requests; IP banned."},
            {"Retry-After": "7200"},
        )
    ]
    with pytest.raises(RateLimitedError, match="7200 s"):
        src.fetch_bars("BTC/USDT", "1h", d(2024, 5, 1), d(2024, 5, 2))
    assert not [s for s in fake.sleeps if s >= 1]


def test_server_errors_are_retried(fake):
    src = fake.source(base_delay=0.01)
    src.markets()
    fake.queued = [Answer(503, "<html>Service Unavailable</html>")]
    assert src.fetch_bars("BTC/USDT", "1h", d(2024, 5, 1), d(2024, 5, 2)).api_calls == 2


def test_invalid_symbol_from_the_exchange_is_a_per_symbol_failure(paths, fake):
    fake.invalid.add(("api", "ETHUSDT"))  # ccxt lists it, the exchange refuses it
    dm = manager(paths, fake.source(), fake)
    report = dm.ingest(
        ["ETH/USDT", "BTC/USDT"], "1h", "2024-05-01", "2024-05-02", source="ccxt:binance"
    )
    assert [r.status for r in report.results] == ["failed", "ok"]
    assert "unknown symbol" in report.failed[0].error
    assert '"code":-1121' in report.failed[0].error.replace(" ", "")
    runs = dm.lake.manifest.fetch_runs(symbol="ETH/USDT")
    assert [r.status for r in runs] == ["failed"]
    assert dm.lake.manifest.coverage("ccxt_binance", "ETH/USDT", "1h") == []


def test_a_symbol_not_in_the_markets_fails_before_any_candle_is_asked_for(paths, fake):
    dm = manager(paths, fake.source(), fake)
    report = dm.ingest(["BTCUSDT"], "1h", "2024-05-01", "2024-05-02", source="ccxt:binance")
    assert report.results[0].status == "failed"
    assert "did you mean BTC/USDT or BTC/USDT:USDT" in report.results[0].error
    assert fake.calls("klines") == []


def test_an_unreachable_exchange_stops_the_whole_run_at_once(paths, fake):
    fake.queued = [fake.unreachable()]
    dm = manager(paths, fake.source(), fake)
    with pytest.raises(SourceUnreachableError, match="cannot be reached") as info:
        dm.ingest(["BTC/USDT", "ETH/USDT"], "1h", "2024-05-01", "2024-05-02", source="ccxt:binance")
    assert info.value.exit_code == 4
    assert fake.sleeps == []  # no back-off: retrying cannot help
    runs = dm.lake.manifest.fetch_runs()
    assert [(r.symbol, r.status, r.api_calls) for r in runs] == [("BTC/USDT", "failed", 1)]


def test_requests_never_run_past_the_exchanges_rate_limit(fake):
    """A request of cost c keeps the next one waiting rateLimit x c (a leaky bucket). On
    Binance rateLimit is 50 ms and ccxt's costs follow its weights: spot exchangeInfo 4,
    futures exchangeInfo 1, a spot klines page 0.4 (weight 2 of 6,000 a minute)."""
    src = fake.source()
    src.fetch_bars("BTC/USDT", "1m", d(2024, 5, 28), d(2024, 5, 31))
    times = [r.at for r in fake.requests]
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert [r.endpoint for r in fake.requests] == ["exchangeInfo"] * 3 + ["klines"] * 5
    assert gaps == [0.2, 0.05, 0.05, 0.02, 0.02, 0.02, 0.02]
    assert sum(fake.sleeps) == pytest.approx(times[-1])  # the source slept that long


# --- discovery ----------------------------------------------------------------------------


def test_markets_are_listed_with_their_metadata(fake):
    src = fake.source()
    swaps = src.list_markets("swap", quote="USDT")
    assert [m["symbol"] for m in swaps] == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    btc = swaps[0]
    assert (btc["base"], btc["quote"], btc["settle"], btc["market_type"]) == (
        "BTC",
        "USDT",
        "USDT",
        "swap",
    )
    assert (btc["contract_size"], btc["tick_size"], btc["amount_step"]) == (1.0, 0.1, 0.001)
    assert btc["listed_at"] == "2019-09-25T08:00:00+00:00"
    spot = [m["symbol"] for m in src.list_markets("spot")]
    assert spot == ["BTC/USDT", "ETH/BTC", "ETH/USDT"]  # LUNA/USDT is not trading
    assert "LUNA/USDT" in [m["symbol"] for m in src.list_markets("spot", active_only=False)]
    inverse = src.list_markets("swap", quote="USD")[0]
    assert (inverse["symbol"], inverse["contract_size"]) == ("BTC/USD:BTC", 100.0)


def test_a_market_type_resolves_a_pair_to_its_market(fake):
    src = fake.source()
    assert src.resolve(["BTC/USDT", "ETH/USDT"], "swap") == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    assert src.resolve(["BTC/USD"], "swap") == ["BTC/USD:BTC"]
    assert src.resolve(["BTC/USDT"], "future") == ["BTC/USDT:USDT-240628"]
    assert src.resolve(["BTC/USDT:USDT", "NOPE/X"]) == ["BTC/USDT:USDT", "NOPE/X"]
    with pytest.raises(SymbolNotFoundError, match="no swap market for ETH/BTC"):
        src.resolve(["ETH/BTC"], "swap")


# --- trades -------------------------------------------------------------------------------

W0 = d(2024, 5, 31, 9)


def test_trades_are_paged_by_time_then_by_id_and_land_as_ticks(paths, fake):
    # 2,500 trades in the first 25 minutes (a busy hour), then 300 quieter ones
    fake.add_trades("api", "BTCUSDT", trades_between(ms(W0), 2500, 600))
    fake.add_trades("api", "BTCUSDT", trades_between(ms(W0) + 2 * HOUR, 300, 1000))
    dm = manager(paths, fake.source(), fake)
    ticks = dm.get_ticks("BTC/USDT", W0, W0 + timedelta(hours=3), source="ccxt:binance")
    assert ticks.height == 2800
    assert ticks["seq"].to_list() == list(range(26129, 26129 + 2800))  # the aggregate ids
    assert ticks["trade_id"][0] == "26129"
    assert set(ticks["side"]) == {"buy", "sell"}
    assert ticks["side"][0] == "sell"  # buyer was the maker: the taker sold
    assert ticks["venue"].unique().to_list() == ["binance"]
    calls = fake.calls("aggTrades")
    by_time = [c for c in calls if "startTime" in c.params]
    by_id = [c for c in calls if "fromId" in c.params]
    assert [c.int("fromId") for c in by_id] == [26129 + 1000, 26129 + 2000]
    assert all(c.int("endTime") - c.int("startTime") < HOUR for c in by_time)
    assert fake.calls("aggTrades")[0].int("startTime") == ms(W0)


def test_ticks_aggregate_to_the_exchanges_own_one_minute_candles(paths, fake):
    fake.add_trades("api", "BTCUSDT", trades_between(ms(W0) + 1234, 1800, 997))
    dm = manager(paths, fake.source(), fake)
    end = W0 + timedelta(minutes=30)
    ticks = dm.get_ticks("BTC/USDT", W0, end, source="ccxt:binance")
    bars = dm.get_ohlcv("BTC/USDT", "1m", W0, end, source="ccxt:binance")
    # the ticks -> 1m path of the warehouse (models/marts/bars/bars_from_ticks.sql):
    # epoch-aligned minutes, first and last by (ts, seq)
    agg = (
        ticks.sort("ts", "seq")
        .group_by(pl.col("ts").dt.truncate("1m"), maintain_order=True)
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("size").sum().alias("volume"),
        )
    )
    assert agg["ts"].to_list() == bars["ts"].to_list()
    for c in ("open", "high", "low", "close"):
        assert agg[c].to_list() == bars[c].to_list(), c
    assert agg["volume"].to_list() == pytest.approx(bars["volume"].to_list(), rel=1e-9)


def test_trade_windows_without_trades_are_stepped_over(fake):
    fake.add_trades("api", "BTCUSDT", trades_between(ms(W0) + 5 * HOUR, 10, 1000))
    res = fake.source().fetch_ticks("BTC/USDT", W0, W0 + timedelta(hours=6))
    assert res.ticks.num_rows == 10
    assert len(fake.calls("aggTrades")) == 6  # one window an hour


# --- funding ------------------------------------------------------------------------------


def test_funding_rates_land_with_their_interval_and_coverage(paths, fake):
    dm = manager(paths, fake.source(), fake)
    df = dm.get_funding("BTC/USDT:USDT", "2024-01-01", "2024-03-01", source="ccxt:binance")
    assert df.height == 60 * 3
    assert df["interval_hours"].unique().to_list() == [8.0]
    row = df.row(0, named=True)
    paid = fake.funding_at("BTCUSDT", ms(d(2024, 1, 1)))
    assert row["ts"] == datetime.fromtimestamp(paid["fundingTime"] / 1000, UTC)
    assert row["rate"] == float(paid["fundingRate"])
    assert row["mark_price"] == float(paid["markPrice"])
    cov = dm.lake.manifest.coverage("ccxt_binance", "BTC/USDT:USDT", "funding")
    assert [c.status for c in cov] == ["fetched"]
    n = len(fake.requests)
    again = dm.get_funding("BTC/USDT:USDT", "2024-01-01", "2024-03-01", source="ccxt:binance")
    assert len(fake.requests) == n and again.equals(df)


def test_funding_pages_past_the_thousand_row_limit(fake):
    res = fake.source().fetch_funding("BTC/USDT:USDT", d(2020, 1, 1), d(2021, 6, 1))
    assert res.funding.num_rows == 517 * 3
    assert len(fake.calls("fundingRate")) == 2
    assert all(c.int("limit") == 1000 for c in fake.calls("fundingRate"))


def test_funding_of_a_spot_market_is_refused_with_the_perpetual_to_use(fake):
    with pytest.raises(UnsupportedRequestError, match=r"perpetual swaps, such as BTC/USDT:USDT"):
        fake.source().fetch_funding("BTC/USDT", d(2024, 1, 1), d(2024, 2, 1))
    assert fake.calls("fundingRate") == []


def test_funding_is_a_series_of_its_own_for_status_and_clear(paths, fake):
    dm = manager(paths, fake.source(), fake)
    dm.get_funding("BTC/USDT:USDT", "2024-01-01", "2024-02-01", source="ccxt:binance")
    dm.get_ohlcv("BTC/USDT:USDT", "1d", "2024-01-01", "2024-02-01", source="ccxt:binance")
    stats = dm.get_cache_stats(source="ccxt:binance", timeframe="funding")
    assert [(g["dataset"], g["rows"]) for g in stats["groups"]] == [("funding_rates", 93)]
    assert dm.files_to_clear("BTC/USDT:USDT", "funding", source="ccxt:binance") == [
        "funding_rates/source=ccxt_binance/symbol=BTC%2FUSDT%3AUSDT/data.parquet"
    ]
    assert dm.clear_cache("BTC/USDT:USDT", "funding", source="ccxt:binance") == 1
    assert dm.lake.manifest.coverage("ccxt_binance", "BTC/USDT:USDT", "funding") == []
    assert dm.lake.manifest.coverage("ccxt_binance", "BTC/USDT:USDT", "1d") != []
    assert dm.verify().ok


def test_a_source_failing_hard_inside_funding_keeps_other_errors_typed(fake):
    src = fake.source(base_delay=0.01, max_retries=0)
    src.markets()
    fake.queued = [Answer(400, {"code": -1102, "msg": "Mandatory parameter was not sent."})]
    with pytest.raises(SourceError, match="Binance refused"):
        src.fetch_funding("BTC/USDT:USDT", d(2024, 1, 1), d(2024, 2, 1))
