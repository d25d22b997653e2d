"""Sessions written for the warehouse: exchange calendars and the forex day (no dbt run)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.paths import DataPaths
from ingest.schema import SYMBOLS
from warehouse.calendars import calendars_in_lake, forex_sessions_table, write_calendars


def test_xnys_sessions_are_written_in_utc_with_half_days(tmp_path: Path) -> None:
    paths = DataPaths(tmp_path)
    written = write_calendars(paths, {"XNYS"}, start=date(2023, 11, 20), end=date(2023, 11, 30))
    assert written == {"XNYS": 8}
    table = pq.read_table(tmp_path / "lake" / "calendars" / "calendar=XNYS" / "data.parquet")
    rows = {r["session_date"]: r for r in table.to_pylist()}
    assert date(2023, 11, 23) not in rows  # Thanksgiving
    friday = rows[date(2023, 11, 24)]
    assert friday["is_half_day"]
    assert friday["open_at"] == datetime(2023, 11, 24, 14, 30, tzinfo=UTC)
    assert friday["close_at"] == datetime(2023, 11, 24, 18, 0, tzinfo=UTC)
    assert not list((tmp_path / "lake" / "calendars").rglob(".*tmp*"))


def test_unknown_calendars_and_24_7_are_skipped(tmp_path: Path) -> None:
    written = write_calendars(
        DataPaths(tmp_path),
        {"NOT-A-CALENDAR", "24/7", "XNYS"},
        start=date(2024, 1, 2),
        end=date(2024, 1, 5),
    )
    assert written == {"XNYS": 4}


def test_forex_sessions_run_17_to_17_new_york_across_the_dst_change() -> None:
    # US summer time starts Sunday 2024-03-10 at 02:00, inside the weekend closure
    rows = {
        r["session_date"]: r
        for r in forex_sessions_table(date(2024, 3, 1), date(2024, 3, 15)).to_pylist()
    }
    assert sorted(rows) == [
        date(2024, 3, d) for d in (1, 4, 5, 6, 7, 8, 11, 12, 13, 14, 15)
    ]  # weekdays only: no Saturday or Sunday session
    friday, monday = rows[date(2024, 3, 8)], rows[date(2024, 3, 11)]
    assert friday["open_at"] == datetime(2024, 3, 7, 22, tzinfo=UTC)  # 17:00 EST
    assert friday["close_at"] == datetime(2024, 3, 8, 22, tzinfo=UTC)
    # Monday's session opens on Sunday at 17:00 New York, now EDT (UTC-4)
    assert monday["open_at"] == datetime(2024, 3, 10, 21, tzinfo=UTC)
    assert monday["close_at"] == datetime(2024, 3, 11, 21, tzinfo=UTC)
    for r in rows.values():
        assert r["close_at"] - r["open_at"] == timedelta(hours=24)
        # an FX session is its own trading day
        assert (r["day_start_at"], r["day_end_at"]) == (r["open_at"], r["close_at"])
        assert not r["is_half_day"]


def test_forex_is_closed_on_christmas_and_new_years_day() -> None:
    days = [
        r["session_date"]
        for r in forex_sessions_table(date(2024, 12, 23), date(2025, 1, 3)).to_pylist()
    ]
    assert date(2024, 12, 25) not in days and date(2025, 1, 1) not in days
    assert days == [date(2024, 12, d) for d in (23, 24, 26, 27, 30, 31)] + [
        date(2025, 1, 2),
        date(2025, 1, 3),
    ]
    rows = {
        r["session_date"]: r
        for r in forex_sessions_table(date(2024, 12, 23), date(2025, 1, 3)).to_pylist()
    }
    # the market reopens at 17:00 New York on the holiday, for the next day's session
    assert rows[date(2024, 12, 26)]["open_at"] == datetime(2024, 12, 25, 22, tzinfo=UTC)
    assert rows[date(2024, 12, 24)]["close_at"] == datetime(2024, 12, 24, 22, tzinfo=UTC)


def test_forex_symbols_get_the_fx_calendar_written(tmp_path: Path) -> None:
    paths = DataPaths(tmp_path)
    symbols = tmp_path / "lake" / "symbols" / "source=dukascopy" / "data.parquet"
    symbols.parent.mkdir(parents=True)
    # a lake written before FX existed: its forex symbols say 24/7
    pq.write_table(
        pa.table(
            {
                "symbol": ["EURUSD"],
                "name": ["EURUSD"],
                "asset_class": ["fx"],
                "exchange": ["DUKASCOPY"],
                "currency": ["USD"],
                "timezone": ["UTC"],
                "calendar": ["24/7"],
                "ingested_at": pa.array(
                    [datetime(2024, 1, 1, tzinfo=UTC)], SYMBOLS.schema.field("ingested_at").type
                ),
            },
            schema=SYMBOLS.schema,
        ),
        symbols,
    )
    assert calendars_in_lake(paths) == {"XNYS", "FX"}
    written = write_calendars(paths, start=date(2024, 3, 4), end=date(2024, 3, 10))
    assert written == {"XNYS": 5, "FX": 5}
    fx = pq.read_table(tmp_path / "lake" / "calendars" / "calendar=FX" / "data.parquet")
    assert fx.column("session_date").to_pylist()[0] == date(2024, 3, 4)
    xnys = pq.read_table(tmp_path / "lake" / "calendars" / "calendar=XNYS" / "data.parquet")
    # an exchange session's trading day is its UTC date
    first = xnys.to_pylist()[0]
    assert first["day_start_at"] == datetime(2024, 3, 4, tzinfo=UTC)
    assert first["day_end_at"] == datetime(2024, 3, 5, tzinfo=UTC)
