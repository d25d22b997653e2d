"""Exchange sessions for the warehouse, from exchange_calendars.

``write_calendars`` writes ``<lake>/calendars/calendar=NAME/data.parquet`` (session_date,
open_at, close_at in UTC, is_half_day) for every calendar the symbols dataset names, and
XNYS always, over a range covering the lake's bars. Each file is replaced atomically
(temporary file in the same directory, then ``os.replace``), so a reader never sees a
torn file. The 24/7 calendar needs no file: the warehouse generates it.
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.paths import DataPaths

log = logging.getLogger(__name__)

ALWAYS = ("XNYS",)
CONTINUOUS = "24/7"
SCHEMA = pa.schema(
    [
        ("session_date", pa.date32()),
        ("open_at", pa.timestamp("us", tz="UTC")),
        ("close_at", pa.timestamp("us", tz="UTC")),
        ("is_half_day", pa.bool_()),
    ]
)
#: sessions are written at least over this range, widened to cover the lake's bars
DEFAULT_START = date(2000, 1, 1)


def calendars_in_lake(paths: DataPaths) -> set[str]:
    """Calendar names the symbols dataset references (plus XNYS), without 24/7."""
    names = set(ALWAYS)
    files = list(paths.lake.glob("symbols/*/data.parquet"))
    for f in files:
        table = pq.read_table(f, columns=["calendar"])
        names.update(v for v in table.column("calendar").to_pylist() if v)
    names.discard(CONTINUOUS)
    return names


def bars_date_range(paths: DataPaths) -> tuple[date, date] | None:
    """First and last bar date in the lake, from Parquet statistics (cheap)."""
    pattern = paths.lake / "bars" / "*" / "*" / "*" / "*" / "data.parquet"
    if not any(paths.lake.glob("bars/*/*/*/*/data.parquet")):
        return None
    con = duckdb.connect()
    try:
        row = con.execute(
            "select min(stats_min_value), max(stats_max_value) "
            "from parquet_metadata(?) where path_in_schema = 'ts'",
            [str(pattern)],
        ).fetchone()
    finally:
        con.close()
    if not row or row[0] is None:
        return None
    # statistics are ISO timestamps as text
    return date.fromisoformat(str(row[0])[:10]), date.fromisoformat(str(row[1])[:10])


def sessions_table(name: str, start: date, end: date) -> pa.Table:
    """Sessions of calendar ``name`` between start and end (clipped to its bounds)."""
    import exchange_calendars as xcals

    cal = xcals.get_calendar(name, start=start)
    first = max(start, cal.first_session.date())
    last = min(end, cal.last_session.date())
    if first > last:
        return SCHEMA.empty_table()
    sched = cal.schedule.loc[str(first) : str(last)]
    opens = sched["open"]
    closes = sched["close"]
    half = set(cal.early_closes.date) if len(cal.early_closes) else set()
    session_dates = [ts.date() for ts in sched.index]
    return pa.table(
        {
            "session_date": pa.array(session_dates, pa.date32()),
            "open_at": pa.array(opens.dt.tz_convert("UTC"), SCHEMA.field("open_at").type),
            "close_at": pa.array(closes.dt.tz_convert("UTC"), SCHEMA.field("close_at").type),
            "is_half_day": pa.array([d in half for d in session_dates], pa.bool_()),
        },
        schema=SCHEMA,
    )


def _write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_calendars(
    paths: DataPaths,
    names: set[str] | None = None,
    start: date | None = None,
    end: date | None = None,
) -> dict[str, int]:
    """Write the session files; returns {calendar: sessions}. Unknown names are skipped."""
    import exchange_calendars as xcals

    names = calendars_in_lake(paths) if names is None else set(names) - {CONTINUOUS}
    span = bars_date_range(paths)
    lo = min(DEFAULT_START, span[0]) if span else DEFAULT_START
    hi = (
        max(datetime.now(UTC).date() + timedelta(days=366), span[1])
        if span
        else datetime.now(UTC).date() + timedelta(days=366)
    )
    lo, hi = start or lo, end or hi
    known = set(xcals.get_calendar_names(include_aliases=True))
    written: dict[str, int] = {}
    for name in sorted(names):
        if name not in known:
            # a calendar mismatch never stops a build: coverage shows the symbol unmatched
            log.warning("unknown calendar %r: no sessions written", name)
            continue
        table = sessions_table(name, lo, hi)
        path = paths.lake / "calendars" / f"calendar={name}" / "data.parquet"
        if path.exists():
            try:
                old = pq.read_table(path)
                if old.schema.equals(table.schema) and old.equals(table):
                    written[name] = table.num_rows
                    continue
            except Exception:  # a damaged file is rewritten
                pass
        _write_atomic(table, path)
        written[name] = table.num_rows
    return written
