"""The yfinance adapter, driven through its injectable boundary with real-shaped frames.

No test touches the network: ``history_fn`` and ``actions_fn`` are fakes returning frames
shaped like ``yfinance.Ticker.history(auto_adjust=False, actions=True)`` and
``Ticker.actions``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ingest.errors import (
    RateLimitedError,
    SourceError,
    SourceUnreachableError,
    SymbolNotFoundError,
    UnsupportedRequestError,
)
from ingest.sources.yfinance import (
    BARS_SCHEMA,
    YFinanceSource,
    chunk_range,
    split_factors,
    unadjust_splits,
)

FIXTURES = Path(__file__).parent / "fixtures"
NY = "America/New_York"
YAHOO_COLUMNS = ["Open", "High", "Low", "Close", "Adj Close", "Volume", "Dividends", "Stock Splits"]


def yahoo_daily() -> pd.DataFrame:
    """AAPL-like daily excerpt around the 2020-08-31 4-for-1 split, as Yahoo returns it."""
    df = pd.read_csv(FIXTURES / "aapl_2020_split_daily.csv")
    idx = pd.DatetimeIndex(pd.to_datetime(df.pop("Date"), utc=True)).tz_convert(NY)
    idx.name = "Date"
    df.index = idx
    df["Volume"] = df["Volume"].astype("int64")
    return df[YAHOO_COLUMNS]


def yahoo_actions() -> pd.DataFrame:
    """AAPL's full split history plus the 2020 dividends (split-adjusted), Ticker.actions."""
    rows = [
        ("1987-06-16", 0.0, 2.0),
        ("2000-06-21", 0.0, 2.0),
        ("2005-02-28", 0.0, 2.0),
        ("2014-06-09", 0.0, 7.0),
        ("2020-08-07", 0.205, 0.0),
        ("2020-08-31", 0.0, 4.0),
        ("2020-11-06", 0.205, 0.0),
    ]
    idx = pd.DatetimeIndex([pd.Timestamp(d, tz=NY) for d, _, _ in rows], name="Date")
    return pd.DataFrame(
        {"Dividends": [r[1] for r in rows], "Stock Splits": [r[2] for r in rows]}, index=idx
    )


class FakeYahoo:
    """Serves one symbol's frame like Yahoo: the rows in [start, end), everything else
    empty; records every call."""

    def __init__(self, frame: pd.DataFrame, actions: pd.DataFrame | None = None) -> None:
        self.frame = frame
        self.actions = actions if actions is not None else yahoo_actions()
        self.calls: list[tuple[str, str, datetime, datetime]] = []
        self.action_calls: list[str] = []

    def history(self, symbol: str, interval: str, start: datetime, end: datetime) -> pd.DataFrame:
        self.calls.append((symbol, interval, start, end))
        if symbol != "AAPL":
            return pd.DataFrame()
        idx = self.frame.index
        if interval in ("1d", "1wk"):
            local = idx.tz_localize(None)
            lo, hi = pd.Timestamp(start.date()), pd.Timestamp(end.date())
            mask = (local >= lo) & (local < hi)
        else:
            mask = (idx >= pd.Timestamp(start)) & (idx < pd.Timestamp(end))
        return self.frame[mask]

    def actions_fn(self, symbol: str) -> pd.DataFrame:
        self.action_calls.append(symbol)
        return self.actions


def source(fake: FakeYahoo, now: datetime | None = None, **kw: object) -> YFinanceSource:
    return YFinanceSource(
        history_fn=fake.history,
        actions_fn=fake.actions_fn,
        now=now or datetime(2021, 1, 4, tzinfo=UTC),
        sleep=lambda s: None,
        **kw,  # type: ignore[arg-type]
    )


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def by_date(table: pa.Table) -> dict[date, dict[str, object]]:
    return {r["ts"].date(): r for r in table.to_pylist()}


# --- un-adjustment ----------------------------------------------------------------------


def test_pre_split_bars_are_converted_to_as_traded_prices_and_volume() -> None:
    fake = FakeYahoo(yahoo_daily())
    res = source(fake).fetch_bars("AAPL", "1d", utc(2020, 8, 1), utc(2020, 12, 1))
    rows = by_date(res.bars)
    aug28 = rows[date(2020, 8, 28)]
    assert aug28["close"] == pytest.approx(124.8075 * 4)  # 499.23 as traded
    assert aug28["close"] == pytest.approx(499.23)
    assert aug28["open"] == pytest.approx(504.05)
    assert aug28["volume"] == pytest.approx(187_630_000 / 4)
    # the split day and after are untouched
    assert rows[date(2020, 8, 31)]["close"] == pytest.approx(129.04)
    assert rows[date(2020, 8, 31)]["volume"] == pytest.approx(225_702_700)
    # Yahoo's Adj Close is kept as given
    assert aug28["adj_close"] == pytest.approx(124.592550)
    assert res.bars.schema == BARS_SCHEMA


def test_short_range_before_a_later_split_uses_the_full_split_history() -> None:
    fake = FakeYahoo(yahoo_daily())
    src = source(fake)
    res = src.fetch_bars("AAPL", "1d", utc(2020, 8, 4), utc(2020, 8, 8))
    # the frame holds no split row, the 4-for-1 comes from Ticker.actions
    assert res.bars.num_rows == 4
    assert by_date(res.bars)[date(2020, 8, 6)]["close"] == pytest.approx(455.61)
    assert res.api_calls == 2  # history + actions
    again = src.fetch_bars("AAPL", "1d", utc(2020, 8, 26), utc(2020, 8, 29))
    assert again.api_calls == 1  # split history fetched once per symbol
    assert fake.action_calls == ["AAPL"]
    assert by_date(again.bars)[date(2020, 8, 27)]["close"] == pytest.approx(500.04)


def test_dividend_cash_is_as_traded_and_actions_are_limited_to_the_range() -> None:
    fake = FakeYahoo(yahoo_daily())
    res = source(fake).fetch_bars("AAPL", "1d", utc(2020, 8, 1), utc(2020, 12, 1))
    acts = res.actions.to_pylist()
    assert [(a["ex_date"], a["action_type"]) for a in acts] == [
        (date(2020, 8, 7), "dividend"),
        (date(2020, 8, 31), "split"),
        (date(2020, 11, 6), "dividend"),
    ]
    assert acts[0]["cash_amount"] == pytest.approx(0.82)  # 0.205 x 4 before the split
    assert acts[0]["split_ratio"] is None
    assert acts[1]["split_ratio"] == 4.0
    assert acts[1]["cash_amount"] is None
    assert acts[2]["cash_amount"] == pytest.approx(0.205)
    # the 1987..2014 splits are outside the range
    assert res.actions.schema.field("ex_date").type == pa.date32()


def test_adj_close_over_split_adjusted_close_behaves_as_a_dividend_factor() -> None:
    """Independent check: Yahoo's Adj Close / (as-traded close / C) is Yahoo's dividend
    factor: 1 after the last dividend, constant between ex-dates, stepping by
    (1 - D / previous close) across each ex-date (as-traded D and close)."""
    fake = FakeYahoo(yahoo_daily())
    bars = source(fake).fetch_bars("AAPL", "1d", utc(2020, 8, 1), utc(2020, 12, 1)).bars
    d = [r["ts"].date() for r in bars.to_pylist()]
    close = np.array(bars.column("close").to_pylist())
    adj = np.array(bars.column("adj_close").to_pylist())
    c = split_factors(np.array(d, dtype="datetime64[D]"), ["2020-08-31"], [4.0])
    factor = adj / (close / c)
    assert factor[d.index(date(2020, 11, 6)) :] == pytest.approx(1.0, abs=1e-6)
    i_aug7 = d.index(date(2020, 8, 7))
    i_nov6 = d.index(date(2020, 11, 6))
    between = factor[i_aug7:i_nov6]
    assert between == pytest.approx(between[0], abs=1e-6)
    step_nov = factor[i_nov6 - 1] / factor[i_nov6]
    assert step_nov == pytest.approx(1 - 0.205 / 119.03, abs=1e-6)
    step_aug = factor[i_aug7 - 1] / factor[i_aug7]
    assert step_aug == pytest.approx(1 - 0.82 / 455.61, abs=1e-6)


def test_unadjust_splits_handles_reverse_splits_and_several_splits() -> None:
    bars = pa.table(
        {
            "open": [1.0, 1.0, 1.0],
            "high": [1.0, 1.0, 1.0],
            "low": [1.0, 1.0, 1.0],
            "close": [10.0, 10.0, 10.0],
            "volume": [1000.0, 1000.0, 1000.0],
            "adj_close": [9.0, 9.0, 9.0],
        }
    )
    dates = np.array(["2022-01-03", "2022-02-01", "2022-03-01"], dtype="datetime64[D]")
    out = unadjust_splits(bars, dates, ["2022-02-01", "2022-03-01"], [0.1, 2.0])
    # before both: x 0.1 x 2 = 0.2; between: x 2; after: x 1
    assert out.column("close").to_pylist() == pytest.approx([2.0, 20.0, 10.0])
    assert out.column("volume").to_pylist() == pytest.approx([5000.0, 500.0, 1000.0])
    assert out.column("adj_close").to_pylist() == [9.0, 9.0, 9.0]


# --- timestamps -------------------------------------------------------------------------


def test_daily_bars_keep_the_session_date_at_midnight_utc() -> None:
    fake = FakeYahoo(yahoo_daily())
    bars = source(fake).fetch_bars("AAPL", "1d", utc(2020, 8, 1), utc(2020, 12, 1)).bars
    ts = bars.column("ts").to_pylist()
    assert bars.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert all(t.hour == 0 and t.minute == 0 for t in ts)  # not 04:00 / 05:00
    assert ts[0] == utc(2020, 8, 4)
    assert ts[-1] == utc(2020, 11, 9)  # after the DST change too
    assert ts == sorted(ts)


def yahoo_intraday(days: list[str], times: list[str]) -> pd.DataFrame:
    stamps = [pd.Timestamp(f"{d} {t}", tz=NY) for d in days for t in times]
    n = len(stamps)
    base = np.linspace(100, 101, n)
    df = pd.DataFrame(
        {
            "Open": base,
            "High": base + 0.2,
            "Low": base - 0.2,
            "Close": base + 0.1,
            "Adj Close": base + 0.1,
            "Volume": np.arange(n, dtype="int64") * 100 + 1000,
            "Dividends": 0.0,
            "Stock Splits": 0.0,
        },
        index=pd.DatetimeIndex(stamps, name="Datetime"),
    )
    return df


def test_intraday_bars_are_converted_to_utc_across_dst() -> None:
    frame = yahoo_intraday(["2023-03-10", "2023-03-13"], ["09:30", "09:35", "15:55"])
    fake = FakeYahoo(frame, actions=pd.DataFrame())
    src = source(fake, now=utc(2023, 3, 20))
    bars = src.fetch_bars("AAPL", "5m", utc(2023, 3, 10), utc(2023, 3, 14)).bars
    ts = bars.column("ts").to_pylist()
    assert ts[0] == utc(2023, 3, 10, 14, 30)  # EST: -05:00
    assert ts[3] == utc(2023, 3, 13, 13, 30)  # EDT: -04:00
    assert ts[-1] == utc(2023, 3, 13, 19, 55)
    assert fake.calls[0][1] == "5m"


def test_intraday_dividend_row_without_prices_is_dropped_but_recorded() -> None:
    frame = yahoo_intraday(["2020-11-06"], ["09:30", "09:35", "09:40"])
    div_row = pd.DataFrame(
        {c: [np.nan] for c in YAHOO_COLUMNS},
        index=pd.DatetimeIndex([pd.Timestamp("2020-11-06 00:00", tz=NY)], name="Datetime"),
    )
    div_row["Dividends"] = 0.205
    div_row["Stock Splits"] = 0.0
    frame = pd.concat([div_row, frame])
    frame.iloc[2, frame.columns.get_loc("High")] = np.nan  # a partly broken bar
    fake = FakeYahoo(frame)
    src = source(fake, now=utc(2020, 11, 20))
    res = src.fetch_bars("AAPL", "5m", utc(2020, 11, 6), utc(2020, 11, 7))
    assert res.bars.num_rows == 3
    assert any("without prices" in n for n in res.notes)
    highs = res.bars.column("high").to_pylist()
    assert np.isnan(highs[1])  # passed through for the lake writer to quarantine
    divs = [a for a in res.actions.to_pylist() if a["action_type"] == "dividend"]
    assert divs == [
        {
            "ex_date": date(2020, 11, 6),
            "action_type": "dividend",
            "split_ratio": None,
            "cash_amount": pytest.approx(0.205),
            "currency": None,
        }
    ]


def test_interval_names_follow_yfinance() -> None:
    frame = yahoo_intraday(["2023-03-10"], ["09:30", "10:30"])
    fake = FakeYahoo(frame, actions=pd.DataFrame())
    src = source(fake, now=utc(2023, 3, 20))
    src.fetch_bars("AAPL", "1h", utc(2023, 3, 10), utc(2023, 3, 11))
    weekly = yahoo_daily().iloc[:1]
    fake.frame = weekly
    src.fetch_bars("AAPL", "1w", utc(2020, 8, 3), utc(2020, 8, 10))
    assert [c[1] for c in fake.calls] == ["60m", "1wk"]


# --- the still-forming bar --------------------------------------------------------------


def test_todays_daily_bar_is_not_final_during_the_session() -> None:
    frame = yahoo_daily()
    fake = FakeYahoo(frame)
    now = datetime(2020, 11, 9, 15, 0, tzinfo=UTC)  # 10:00 in New York
    bars = source(fake, now=now).fetch_bars("AAPL", "1d", utc(2020, 11, 1), utc(2020, 11, 10)).bars
    assert bars.column("is_final").to_pylist() == [True, True, True, False]


def test_current_intraday_bar_is_not_final() -> None:
    frame = yahoo_intraday(["2023-03-10"], ["09:30", "09:35", "09:40"])
    fake = FakeYahoo(frame, actions=pd.DataFrame())
    now = datetime(2023, 3, 10, 14, 42, tzinfo=UTC)  # 09:42 New York
    bars = source(fake, now=now).fetch_bars("AAPL", "5m", utc(2023, 3, 10), now).bars
    assert bars.column("is_final").to_pylist() == [True, True, False]


# --- failures ---------------------------------------------------------------------------


def rate_limit_error() -> Exception:
    try:
        from yfinance.exceptions import YFRateLimitError
    except ImportError:  # pragma: no cover - older yfinance
        return RuntimeError("Too Many Requests. Rate limited. Try after a while.")
    return YFRateLimitError()


def test_rate_limit_is_retried_with_growing_backoff_then_raised() -> None:
    delays: list[float] = []

    def limited(*args: object) -> pd.DataFrame:
        raise rate_limit_error()

    src = YFinanceSource(
        history_fn=limited,
        actions_fn=lambda s: pd.DataFrame(),
        sleep=delays.append,
        now=utc(2021, 1, 4),
        max_retries=4,
        base_delay=1.0,
    )
    with pytest.raises(RateLimitedError, match="rate-limited") as info:
        src.fetch_bars("AAPL", "1d", utc(2020, 8, 1), utc(2020, 9, 1))
    assert "5 attempts" in str(info.value)
    assert len(delays) == 4
    assert all(b > a for a, b in pairwise(delays))
    assert delays[0] >= 1.0
    assert delays[-1] >= 8.0


def test_rate_limit_then_success_counts_every_call() -> None:
    fake = FakeYahoo(yahoo_daily())
    failures = [rate_limit_error(), rate_limit_error()]
    delays: list[float] = []

    def flaky(*args: object) -> pd.DataFrame:
        if failures:
            raise failures.pop()
        return fake.history(*args)  # type: ignore[arg-type]

    src = YFinanceSource(
        history_fn=flaky, actions_fn=fake.actions_fn, sleep=delays.append, now=utc(2021, 1, 4)
    )
    res = src.fetch_bars("AAPL", "1d", utc(2020, 8, 1), utc(2020, 9, 1))
    assert res.bars.num_rows == 9
    assert len(delays) == 2
    assert res.api_calls == 4  # 3 history attempts + 1 actions


def test_other_vendor_errors_become_source_errors() -> None:
    def broken(*args: object) -> pd.DataFrame:
        raise KeyError("chart")

    src = YFinanceSource(history_fn=broken, actions_fn=lambda s: pd.DataFrame(), sleep=print)
    with pytest.raises(SourceError, match="KeyError"):
        src.fetch_bars("AAPL", "1d", utc(2020, 8, 1), utc(2020, 9, 1))


def test_empty_answer_for_a_range_with_sessions_is_symbol_not_found() -> None:
    fake = FakeYahoo(yahoo_daily())
    with pytest.raises(SymbolNotFoundError, match=r"no data for 'AAPLX'.*misspelt or delisted"):
        source(fake).fetch_bars("AAPLX", "1d", utc(2020, 8, 3), utc(2020, 8, 8))


def test_weekend_range_is_a_legit_empty_answer() -> None:
    fake = FakeYahoo(yahoo_daily())
    res = source(fake).fetch_bars("AAPLX", "1d", utc(2020, 8, 8), utc(2020, 8, 10))
    assert res.bars.num_rows == 0
    assert res.bars.schema == BARS_SCHEMA
    intraday = source(fake).fetch_bars("AAPLX", "5m", utc(2020, 12, 26), utc(2020, 12, 28))
    assert intraday.bars.num_rows == 0


# --- ranges -----------------------------------------------------------------------------


def test_chunk_range_respects_max_span() -> None:
    start, end = utc(2023, 3, 1), utc(2023, 3, 21)
    chunks = chunk_range("1m", start, end)
    assert len(chunks) == 3
    assert chunks[0][0] == start and chunks[-1][1] == end
    assert all(b - a <= timedelta(days=7) for a, b in chunks)
    assert all(chunks[i][1] == chunks[i + 1][0] for i in range(len(chunks) - 1))
    assert chunk_range("1d", utc(1990, 1, 1), end) == [(utc(1990, 1, 1), end)]
    assert len(chunk_range("1h", utc(2020, 1, 1), utc(2023, 1, 1))) == 2
    with pytest.raises(UnsupportedRequestError):
        chunk_range("4h", start, end)


def test_requests_beyond_the_source_limits_are_refused() -> None:
    fake = FakeYahoo(yahoo_daily())
    src = source(fake, now=utc(2023, 3, 31))
    with pytest.raises(UnsupportedRequestError, match="at most 7 days"):
        src.fetch_bars("AAPL", "1m", utc(2023, 3, 20), utc(2023, 3, 30))
    with pytest.raises(UnsupportedRequestError, match="last 30 days"):
        src.fetch_bars("AAPL", "1m", utc(2023, 2, 1), utc(2023, 2, 3))
    with pytest.raises(UnsupportedRequestError, match="timeframe"):
        src.fetch_bars("AAPL", "4h", utc(2023, 3, 20), utc(2023, 3, 21))
    assert fake.calls == []


def test_capabilities_declare_yahoo_limits() -> None:
    caps = YFinanceSource.capabilities
    assert caps.split_adjusted and caps.needs_network and caps.has_actions
    assert caps.timeframes["1m"].max_span == timedelta(days=7)
    assert caps.timeframes["1m"].lookback == timedelta(days=30)
    assert caps.timeframes["1h"].lookback == timedelta(days=730)
    assert caps.timeframes["1d"].lookback is None
    assert caps.trailing_refetch > timedelta(0)


def test_symbol_info_comes_from_metadata_already_in_the_frame() -> None:
    frame = yahoo_daily()
    frame.attrs["history_metadata"] = {
        "currency": "USD",
        "exchangeName": "NMS",
        "instrumentType": "EQUITY",
        "exchangeTimezoneName": NY,
        "longName": "Apple Inc.",
    }
    res = source(FakeYahoo(frame)).fetch_bars("AAPL", "1d", utc(2020, 8, 1), utc(2020, 12, 1))
    assert res.symbol_info == {
        "currency": "USD",
        "name": "Apple Inc.",
        "exchange": "XNAS",
        "calendar": "XNYS",
        "asset_class": "equity",
        "timezone": NY,
    }
    assert set(res.actions.column("currency").to_pylist()) == {"USD"}


def _offline(*args: object) -> pd.DataFrame:
    """What yfinance raises with no network: curl_cffi's own DNS error, as it words it."""
    from curl_cffi.requests.exceptions import DNSError

    raise DNSError(
        "Failed to perform, curl: (6) Could not resolve host: query2.finance.yahoo.com. "
        "See https://curl.se/libcurl/c/libcurl-errors.html first for more details.",
        code=6,
    )


def test_an_unreachable_host_fails_at_once_without_backoff() -> None:
    delays: list[float] = []
    src = YFinanceSource(
        history_fn=_offline, actions_fn=_offline, sleep=delays.append, now=utc(2021, 1, 4)
    )
    with pytest.raises(SourceUnreachableError, match="cannot be reached") as info:
        src.fetch_bars("AAPL", "1d", utc(2020, 8, 1), utc(2020, 9, 1))
    assert delays == []
    assert info.value.attempts == 1


def test_server_errors_are_retried_and_counted() -> None:
    from curl_cffi.requests.exceptions import HTTPError

    fake = FakeYahoo(yahoo_daily())
    failures = [HTTPError("HTTP Error 503: Service Unavailable")]
    delays: list[float] = []

    def flaky(*args: object) -> pd.DataFrame:
        if failures:
            raise failures.pop()
        return fake.history(*args)  # type: ignore[arg-type]

    src = YFinanceSource(
        history_fn=flaky, actions_fn=fake.actions_fn, sleep=delays.append, now=utc(2021, 1, 4)
    )
    assert src.fetch_bars("AAPL", "1d", utc(2020, 8, 1), utc(2020, 9, 1)).bars.num_rows == 9
    assert len(delays) == 1


def test_offline_ingest_stops_the_run_and_counts_the_attempt(tmp_path, capsys) -> None:
    from ingest.manager import DataManager

    src = YFinanceSource(history_fn=_offline, actions_fn=_offline, sleep=lambda s: None)
    dm = DataManager(tmp_path / "d", sources={"yfinance": src})
    with pytest.raises(SourceUnreachableError):
        dm.ingest(["AAPL", "MSFT", "SPY"], "1d", "2020-08-01", "2020-09-01")
    runs = dm.lake.manifest.fetch_runs()
    assert [(r.symbol, r.status, r.api_calls) for r in runs] == [("AAPL", "failed", 1)]
