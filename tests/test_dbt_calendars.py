"""Exchange sessions written for the warehouse (no dbt run needed)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow.parquet as pq

from ingest.paths import DataPaths
from warehouse.calendars import write_calendars


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
