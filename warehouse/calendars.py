"""Sessions for the warehouse: exchange calendars (exchange_calendars) and the forex day.

``write_calendars`` writes ``<lake>/calendars/calendar=NAME/data.parquet`` (session_date,
open_at, close_at in UTC, is_half_day, day_start_at, day_end_at) for every calendar the
symbols dataset names, XNYS always, and FX when a symbol is forex, over a range covering
the lake's bars. Each file is replaced atomically (temporary file in the same directory,
then ``os.replace``), so a reader never sees a torn file. The 24/7 calendar needs no
file: the warehouse generates it.

``day_start_at`` and ``day_end_at`` bound the session's *trading day*: the bars with
``day_start_at <= ts < day_end_at`` belong to the session (daily bars, coverage). For an
exchange calendar it is the session's UTC date, so pre- and post-market bars count with
their session; for FX it is the session itself, 17:00 to 17:00 New York.

The FX calendar (``FOREX``) is not in exchange_calendars; it is generated here with
zoneinfo: one session per weekday D, from 17:00 New York on D - 1 to 17:00 New York on D
(the session closing on D is session D, so Sunday 17:00 opens Monday's session and Friday
17:00 closes the week), daylight saving time followed through the New York clock (the
switch falls on a Sunday at 02:00, inside the weekend closure, so every session lasts 24
hours). Closures: no session on 25 December and 1 January (on a weekday); the market
reopens at 17:00 New York on the holiday itself, for the next day's session. Shortened
sessions on 24 and 31 December are not modelled (brokers differ on them).
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.paths import DataPaths

log = logging.getLogger(__name__)

ALWAYS = ("XNYS",)
CONTINUOUS = "24/7"
#: the forex calendar (17:00 New York days), and the asset classes that always use it
FOREX = "FX"
FOREX_ASSET_CLASSES = frozenset({"fx", "forex"})
#: forex days end at 17:00 New York; no session on these (month, day)
FOREX_CLOSE = (ZoneInfo("America/New_York"), 17)
FOREX_HOLIDAYS = frozenset({(12, 25), (1, 1)})
_TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        ("session_date", pa.date32()),
        ("open_at", _TS),
        ("close_at", _TS),
        ("is_half_day", pa.bool_()),
        ("day_start_at", _TS),
        ("day_end_at", _TS),
    ]
)
#: sessions are written at least over this range, widened to cover the lake's bars
DEFAULT_START = date(2000, 1, 1)


def calendars_in_lake(paths: DataPaths) -> set[str]:
    """Calendar names the symbols dataset references (plus XNYS, and FX when a symbol's
    asset class is forex: the warehouse gives those FX whatever their calendar says),
    without 24/7."""
    names = set(ALWAYS)
    files = list(paths.lake.glob("symbols/*/data.parquet"))
    for f in files:
        table = pq.read_table(f, columns=["calendar", "asset_class"])
        names.update(v for v in table.column("calendar").to_pylist() if v)
        classes = table.column("asset_class").to_pylist()
        if any(str(v).lower() in FOREX_ASSET_CLASSES for v in classes if v):
            names.add(FOREX)
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
    midnights = [datetime(d.year, d.month, d.day, tzinfo=UTC) for d in session_dates]
    return pa.table(
        {
            "session_date": pa.array(session_dates, pa.date32()),
            "open_at": pa.array(opens.dt.tz_convert("UTC"), _TS),
            "close_at": pa.array(closes.dt.tz_convert("UTC"), _TS),
            "is_half_day": pa.array([d in half for d in session_dates], pa.bool_()),
            # an exchange session's trading day is its UTC date
            "day_start_at": pa.array(midnights, _TS),
            "day_end_at": pa.array([m + timedelta(days=1) for m in midnights], _TS),
        },
        schema=SCHEMA,
    )


def forex_session_dates(start: date, end: date) -> list[date]:
    """Dates of the FX sessions between start and end: weekdays, less the closures."""
    out = []
    day = start
    while day <= end:
        if day.weekday() < 5 and (day.month, day.day) not in FOREX_HOLIDAYS:
            out.append(day)
        day += timedelta(days=1)
    return out


def forex_close(day: date) -> datetime:
    """17:00 New York on ``day``, in UTC (21:00 in summer time, 22:00 in winter)."""
    zone, hour = FOREX_CLOSE
    return datetime(day.year, day.month, day.day, hour, tzinfo=zone).astimezone(UTC)


def forex_sessions_table(start: date, end: date) -> pa.Table:
    """FX sessions between start and end: session D runs from 17:00 New York on D - 1 to
    17:00 New York on D, and is its own trading day."""
    days = forex_session_dates(start, end)
    opens = [forex_close(d - timedelta(days=1)) for d in days]
    closes = [forex_close(d) for d in days]
    return pa.table(
        {
            "session_date": pa.array(days, pa.date32()),
            "open_at": pa.array(opens, _TS),
            "close_at": pa.array(closes, _TS),
            "is_half_day": pa.array([False] * len(days), pa.bool_()),
            "day_start_at": pa.array(opens, _TS),
            "day_end_at": pa.array(closes, _TS),
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
        if name == FOREX:
            table = forex_sessions_table(lo, hi)
        elif name in known:
            table = sessions_table(name, lo, hi)
        else:
            # a calendar mismatch never stops a build: coverage shows the symbol unmatched
            log.warning("unknown calendar %r: no sessions written", name)
            continue
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
