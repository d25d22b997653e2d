"""Importing local CSV and Parquet files of bars (Yahoo exports and generic shapes)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ingest.errors import InvalidInputError, UnsupportedRequestError
from ingest.sources.csv import CsvSource, read_bar_file
from ingest.sources.yfinance import YFinanceSource

FIXTURES = Path(__file__).parent / "fixtures"
AAPL = FIXTURES / "aapl_2020_split_daily.csv"
GENERIC = FIXTURES / "generic_minute_naive.csv"
GARBAGE = FIXTURES / "daily_with_garbage.csv"
GENERIC_MAPPING = {
    "timestamp": "ts",
    "o": "open",
    "h": "high",
    "l": "low",
    "c": "close",
    "vol": "volume",
}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def closes(table: pa.Table) -> dict[date, float]:
    return {r["ts"].date(): r["close"] for r in table.to_pylist()}


def reversed_copy(src: Path, dst: Path) -> Path:
    header, *rows = src.read_text().splitlines()
    dst.write_text("\n".join([header, *reversed(rows)]) + "\n")
    return dst


# --- the yfinance export shape ----------------------------------------------------------


def test_yahoo_export_is_unadjusted_with_its_own_split_column() -> None:
    imp = read_bar_file(AAPL, timeframe="1d")
    c = closes(imp.bars)
    assert c[date(2020, 8, 28)] == pytest.approx(499.23)
    assert c[date(2020, 8, 31)] == pytest.approx(129.04)
    vol = {r["ts"].date(): r["volume"] for r in imp.bars.to_pylist()}
    assert vol[date(2020, 8, 28)] == pytest.approx(46_907_500)
    assert imp.bars.column_names == [
        "ts",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "is_final",
        "adj_close",
    ]
    assert all(imp.bars.column("is_final").to_pylist())
    assert imp.rejects == []


def test_yahoo_export_daily_ts_is_the_session_date_at_midnight_utc() -> None:
    ts = read_bar_file(AAPL, timeframe="1d").bars.column("ts").to_pylist()
    assert ts[0] == utc(2020, 8, 4)
    assert ts[-1] == utc(2020, 11, 9)
    assert all(t.hour == 0 for t in ts)


def test_yahoo_export_actions_have_as_traded_dividends() -> None:
    acts = read_bar_file(AAPL, timeframe="1d", currency="USD").actions
    assert acts is not None
    rows = acts.to_pylist()
    assert [(r["ex_date"], r["action_type"]) for r in rows] == [
        (date(2020, 8, 7), "dividend"),
        (date(2020, 8, 31), "split"),
        (date(2020, 11, 6), "dividend"),
    ]
    assert rows[0]["cash_amount"] == pytest.approx(0.82)
    assert rows[1]["split_ratio"] == 4.0
    assert rows[2]["currency"] == "USD"


def test_descending_rows_give_the_same_bars(tmp_path: Path) -> None:
    asc = read_bar_file(AAPL, timeframe="1d")
    desc = read_bar_file(reversed_copy(AAPL, tmp_path / "desc.csv"), timeframe="1d")
    assert desc.bars.equals(asc.bars)
    assert desc.actions is not None and desc.actions.equals(asc.actions)


def test_csv_and_the_yfinance_adapter_agree_on_the_same_data() -> None:
    df = pd.read_csv(AAPL)
    idx = pd.DatetimeIndex(pd.to_datetime(df.pop("Date"), utc=True)).tz_convert("America/New_York")
    idx.name = "Date"
    df.index = idx
    splits_only = df.loc[df["Stock Splits"] != 0, ["Dividends", "Stock Splits"]]
    src = YFinanceSource(
        history_fn=lambda *a: df,
        actions_fn=lambda s: splits_only,
        now=utc(2021, 1, 4),
        sleep=lambda s: None,
    )
    via_adapter = src.fetch_bars("AAPL", "1d", utc(2020, 8, 1), utc(2020, 12, 1)).bars
    via_file = read_bar_file(AAPL, timeframe="1d").bars
    assert via_file.equals(via_adapter)


def test_yahoo_intraday_export_with_offsets_is_converted_to_utc(tmp_path: Path) -> None:
    path = tmp_path / "aapl_5m.csv"
    path.write_text(
        "Datetime,Open,High,Low,Close,Adj Close,Volume\n"
        "2023-03-10 09:30:00-05:00,150.2,150.8,149.9,150.5,150.5,1200000\n"
        "2023-03-10 09:35:00-05:00,150.5,150.9,150.1,150.7,150.7,800000\n"
        "2023-03-13 09:30:00-04:00,151.0,151.5,150.6,151.2,151.2,1300000\n"
    )
    ts = read_bar_file(path, timeframe="5m").bars.column("ts").to_pylist()
    assert ts == [utc(2023, 3, 10, 14, 30), utc(2023, 3, 10, 14, 35), utc(2023, 3, 13, 13, 30)]


def test_multi_header_yfinance_download_export(tmp_path: Path) -> None:
    path = tmp_path / "download.csv"
    path.write_text(
        "Price,Close,High,Low,Open,Volume\n"
        "Ticker,AAPL,AAPL,AAPL,AAPL,AAPL\n"
        "Date,,,,,\n"
        "2023-01-03,125.07,130.90,124.17,130.28,112117500\n"
        "2023-01-04,126.36,128.66,125.08,126.89,89113600\n"
    )
    bars = read_bar_file(path, timeframe="1d").bars
    assert closes(bars) == {date(2023, 1, 3): 125.07, date(2023, 1, 4): 126.36}


def test_parquet_export_of_a_yahoo_frame_reads_like_the_csv(tmp_path: Path) -> None:
    df = pd.read_csv(AAPL)
    df["Date"] = pd.to_datetime(df["Date"], utc=True).dt.tz_convert("America/New_York")
    path = tmp_path / "aapl.parquet"
    df.set_index("Date").to_parquet(path)
    from_parquet = read_bar_file(path, timeframe="1d")
    assert from_parquet.bars.equals(read_bar_file(AAPL, timeframe="1d").bars)


# --- the generic shape ------------------------------------------------------------------


def test_generic_mapping_with_timezone_converts_naive_times_to_utc() -> None:
    imp = read_bar_file(
        GENERIC, timeframe="1m", mapping=GENERIC_MAPPING, timezone="America/New_York"
    )
    ts = imp.bars.column("ts").to_pylist()
    assert ts[0] == utc(2023, 3, 10, 14, 30)  # EST
    assert ts[3] == utc(2023, 3, 13, 13, 30)  # EDT
    assert imp.bars.column("volume").to_pylist()[0] == 12000.0
    assert "adj_close" not in imp.bars.column_names  # the extra 'venue' column is ignored
    assert imp.actions is None


def test_naive_timestamps_without_timezone_are_an_error() -> None:
    with pytest.raises(InvalidInputError, match="--timezone"):
        read_bar_file(GENERIC, timeframe="1m", mapping=GENERIC_MAPPING)


def test_standard_names_match_case_insensitively(tmp_path: Path) -> None:
    path = tmp_path / "lower.csv"
    path.write_text("date,OPEN,high,Low,close,VOLUME,notes\n2023-01-03,1,2,0.5,1.5,100,x\n")
    bars = read_bar_file(path, timeframe="1d").bars
    assert bars.to_pylist()[0]["close"] == 1.5


def test_parquet_with_naive_timestamps_uses_the_timezone(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    pa_table = pa.table(
        {
            "time": pa.array([datetime(2023, 7, 3, 9, 30), datetime(2023, 7, 3, 9, 31)]),
            "open": [1.0, 2.0],
            "high": [1.0, 2.0],
            "low": [1.0, 2.0],
            "close": [1.0, 2.0],
            "volume": [10, 20],
        }
    )
    import pyarrow.parquet as pq

    pq.write_table(pa_table, path)
    with pytest.raises(InvalidInputError, match="--timezone"):
        read_bar_file(path, timeframe="1m")
    ts = read_bar_file(path, timeframe="1m", timezone="America/New_York").bars["ts"].to_pylist()
    assert ts == [utc(2023, 7, 3, 13, 30), utc(2023, 7, 3, 13, 31)]


# --- bad input --------------------------------------------------------------------------


def test_garbage_lines_are_rejected_with_reasons() -> None:
    imp = read_bar_file(GARBAGE, timeframe="1d")
    assert sorted(closes(imp.bars)) == [
        date(2023, 1, 3),
        date(2023, 1, 4),
        date(2023, 1, 6),
        date(2023, 1, 9),
    ]
    assert [(i, why) for i, why, _ in imp.rejects] == [
        (2, "bad timestamp 'this line is not a bar at all'"),
        (3, "bad volume 'abc'"),
        (5, "bad timestamp 'not-a-date'"),
    ]
    assert imp.rejects[1][2] == "2023-01-05,127.13,127.77,124.76,125.02,abc"


def test_mostly_bad_rows_fail_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("Date,Open,High,Low,Close,Volume\n2023-01-03,1,1,1,1,1\nx,y\nz,w\nq,r\n")
    with pytest.raises(InvalidInputError, match=r"3 of 4 rows cannot be used"):
        read_bar_file(path, timeframe="1d")


def test_duplicate_timestamps_keep_the_first_row(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Volume\n"
        "2023-01-04,2,2,2,2,1\n2023-01-03,1,1,1,1,1\n2023-01-04,9,9,9,9,1\n"
    )
    imp = read_bar_file(path, timeframe="1d")
    assert closes(imp.bars) == {date(2023, 1, 3): 1.0, date(2023, 1, 4): 2.0}
    assert [(i, why) for i, why, _ in imp.rejects] == [(2, "duplicate timestamp")]


def test_price_less_rows_are_dropped_and_partial_nans_pass_through(tmp_path: Path) -> None:
    path = tmp_path / "nan.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Volume,Dividends\n"
        "2023-01-03,1,1,1,1,100,0\n"
        "2023-01-04,NaN,NaN,NaN,NaN,,0.5\n"
        "2023-01-05,2,,2,2,100,0\n"
    )
    imp = read_bar_file(path, timeframe="1d")
    assert imp.bars.num_rows == 2
    assert np.isnan(imp.bars.column("high").to_pylist()[1])
    assert imp.rejects == []
    assert imp.actions is not None
    assert imp.actions.to_pylist()[0]["cash_amount"] == 0.5


def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(InvalidInputError, match=r"empty\.csv.*empty"):
        read_bar_file(path, timeframe="1d")


def test_header_only_file_has_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("Date,Open,High,Low,Close,Volume\n")
    with pytest.raises(InvalidInputError, match="no rows"):
        read_bar_file(path, timeframe="1d")


def test_truncated_parquet_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.parquet"
    df = pd.DataFrame({"Date": ["2023-01-03"] * 100, "Open": 1.0, "High": 1.0})
    df.to_parquet(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInputError, match=r"cut\.parquet.*truncated or corrupt"):
        read_bar_file(path, timeframe="1d")


def test_missing_columns_are_listed_with_the_columns_found(tmp_path: Path) -> None:
    path = tmp_path / "partial.csv"
    path.write_text("Date,Open,Close\n2023-01-03,1,1\n")
    with pytest.raises(InvalidInputError) as info:
        read_bar_file(path, timeframe="1d")
    msg = str(info.value)
    assert "high, low, volume" in msg
    assert "columns found: Date, Open, Close" in msg


def test_colliding_columns_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "two_dates.csv"
    path.write_text("Date,Datetime,Open,High,Low,Close,Volume\n2023-01-03,x,1,1,1,1,1\n")
    with pytest.raises(InvalidInputError, match="both look like 'ts'"):
        read_bar_file(path, timeframe="1d")
    # naming the ts column resolves it
    bars = read_bar_file(path, timeframe="1d", ts_column="Date").bars
    assert bars.num_rows == 1


# --- the source -------------------------------------------------------------------------


def test_csv_source_serves_the_rows_in_range() -> None:
    src = CsvSource(AAPL, timeframe="1d", symbol="AAPL")
    assert src.capabilities.timeframes.keys() == {"1d"}
    assert not src.capabilities.needs_network
    res = src.fetch_bars("AAPL", "1d", utc(2020, 8, 26), utc(2020, 9, 1))
    assert list(closes(res.bars)) == [
        date(2020, 8, 26),
        date(2020, 8, 27),
        date(2020, 8, 28),
        date(2020, 8, 31),
    ]
    assert res.actions is not None
    assert res.actions.column("action_type").to_pylist() == ["split"]
    assert res.api_calls == 0
    with pytest.raises(UnsupportedRequestError):
        src.fetch_bars("AAPL", "1m", utc(2020, 8, 26), utc(2020, 9, 1))
    with pytest.raises(UnsupportedRequestError):
        src.fetch_bars("MSFT", "1d", utc(2020, 8, 26), utc(2020, 9, 1))


def test_typed_intraday_parquet_takes_the_zero_copy_path_and_keeps_values(tmp_path):
    import pyarrow.parquet as pq

    from ingest.schema import TS_TYPE

    n = 1000
    ts = pa.array(
        [datetime(2024, 1, 2, 14, 30, tzinfo=UTC) + timedelta(minutes=i) for i in range(n)],
        TS_TYPE,
    )
    close = np.linspace(100, 110, n)
    table = pa.table(
        {
            "ts": ts,
            "open": close,
            "high": close + 1,
            "low": close - 1,
            "close": close,
            "volume": np.arange(n, dtype=np.int64),
        }
    )
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)
    got = read_bar_file(path, timeframe="1m")
    assert got.rejects == []
    assert got.bars.column("ts").equals(table.column("ts"))
    assert got.bars.column("close").to_pylist() == close.tolist()
    assert got.bars.column("volume").type == pa.float64()
    assert got.bars.column("is_final").to_pylist() == [True] * n
    # out of order or duplicated rows take the general path: sorted, duplicates rejected
    shuffled = pa.concat_tables([table.slice(500), table.slice(0, 500), table.slice(10, 1)])
    pq.write_table(shuffled, path)
    got = read_bar_file(path, timeframe="1m")
    assert got.bars.column("ts").equals(table.column("ts"))
    assert [r[1] for r in got.rejects] == ["duplicate timestamp"]
