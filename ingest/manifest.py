"""The lake's SQLite manifest: files, fetch runs, coverage, builds and exports.

One file, ``lake/manifest.sqlite``, opened in WAL mode with ``synchronous=FULL``, a busy
timeout and foreign keys on; every write is one ``BEGIN IMMEDIATE`` transaction.

Coverage stores the half-open UTC intervals ``[start_ts, end_ts)`` already requested from a
source for a (source, symbol, timeframe), with a status: ``fetched`` (data came back),
``empty`` (the source explained that there was nothing, e.g. no session in the range) or
``unrecoverable`` (the vendor can never serve it, e.g. beyond its reach). Timestamps are
stored as integer microseconds since the epoch (UTC) so comparisons are exact.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA_VERSION = 2
COVERAGE_STATUSES = ("fetched", "empty", "unrecoverable")

_SCHEMA = """
create table if not exists meta (
    key text primary key,
    value text not null
);
create table if not exists symbols (
    source text not null,
    symbol text not null,
    name text,
    asset_class text,
    exchange text,
    currency text,
    timezone text,
    calendar text,
    first_seen_at integer not null,
    updated_at integer not null,
    primary key (source, symbol)
);
create table if not exists fetch_runs (
    run_id integer primary key autoincrement,
    source text not null,
    symbol text not null,
    timeframe text not null,
    start_us integer not null,
    end_us integer not null,
    status text not null check (status in ('running', 'ok', 'empty', 'failed')),
    rows integer not null default 0,
    api_calls integer not null default 0,
    duration_s real,
    error text,
    started_at integer not null
);
create table if not exists data_files (
    file_id integer primary key autoincrement,
    dataset text not null,
    path text not null,
    source text,
    symbol text,
    timeframe text,
    period text,
    rows integer not null,
    min_us integer,
    max_us integer,
    bytes integer not null,
    sha256 text not null,
    committed_at integer not null,
    superseded_at integer,
    fetch_run_id integer references fetch_runs (run_id)
);
create unique index if not exists data_files_live
    on data_files (path) where superseded_at is null;
create index if not exists data_files_key
    on data_files (dataset, source, symbol, timeframe);
create table if not exists coverage (
    source text not null,
    symbol text not null,
    timeframe text not null,
    start_us integer not null,
    end_us integer not null,
    status text not null check (status in ('fetched', 'empty', 'unrecoverable')),
    fetch_run_id integer references fetch_runs (run_id),
    updated_at integer not null,
    check (end_us > start_us)
);
create index if not exists coverage_key on coverage (source, symbol, timeframe, start_us);
create table if not exists build_runs (
    build_id integer primary key autoincrement,
    command text not null,
    -- killed: the build's process died before it recorded an outcome
    status text not null check (status in ('running', 'ok', 'failed', 'killed')),
    started_at integer not null,
    duration_s real,
    error text,
    data_files text not null,  -- JSON list of the live file_ids the build read
    pid integer  -- the build's process
);
create table if not exists update_runs (
    run_id integer primary key autoincrement,
    started_at integer not null,
    finished_at integer,
    status text not null check (status in ('running', 'ok', 'partial', 'failed', 'killed')),
    config_path text,
    series integer not null default 0,     -- (source, symbol, timeframe) series visited
    fetched_rows integer not null default 0,
    revised_rows integer not null default 0,
    build_id integer,                       -- the build it ran, if any
    pid integer,
    report_json text                        -- the run's report (duckmarket update --json)
);
create table if not exists revisions (
    run_id integer not null references update_runs (run_id),
    source text not null,
    symbol text not null,
    timeframe text not null,
    ts integer not null,                    -- the bar's open time, us UTC
    old_json text,                          -- the bar as held before (null: it was missing)
    new_json text,                          -- the bar as the vendor sent it again (null: gone)
    detected_at integer not null
);
create index if not exists revisions_key on revisions (source, symbol, timeframe, ts);
create table if not exists exports (
    export_id integer primary key autoincrement,
    path text not null,
    mart text,
    sql text,
    format text not null,
    rows integer not null,
    bytes integer not null,
    sha256 text,
    build_id integer references build_runs (build_id),
    data_files text,  -- JSON list of file_ids live when the export was written
    created_at integer not null
);
-- trained models and the data they were trained on (warehouse/artifacts.py)
create table if not exists model_artifacts (
    artifact_id integer primary key autoincrement,
    name text not null,
    version text not null,
    model_type text not null,
    path text not null,                     -- the artifact file, absolute, at registration
    bytes integer not null,
    sha256 text not null,
    metrics_json text not null default '{}',
    feature_set text not null,              -- e.g. features_technical_v1
    feature_definition_sha256 text not null,
    split_json text,                        -- the walk-forward split's bounds (null: none)
    marts_set text,                         -- the published set the features came from
    data_files_fingerprint text not null,   -- SHA-256 over the files' checksums, by path
    notes text,
    registered_at integer not null,
    unique (name, version)
);
create table if not exists model_artifact_files (
    artifact_id integer not null references model_artifacts (artifact_id),
    file_id integer not null references data_files (file_id),
    primary key (artifact_id, file_id)
);
"""


def to_us(ts: datetime) -> int:
    """tz-aware datetime -> integer microseconds since the epoch (exact)."""
    if ts.tzinfo is None:
        raise ValueError(f"naive datetime {ts!r}: timestamps must be timezone-aware UTC")
    delta = ts.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    from datetime import timedelta

    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def _now_us() -> int:
    return to_us(datetime.now(UTC))


@dataclass(frozen=True)
class DataFile:
    file_id: int
    dataset: str
    path: str
    source: str | None
    symbol: str | None
    timeframe: str | None
    period: str | None
    rows: int
    min_us: int | None
    max_us: int | None
    bytes: int
    sha256: str
    committed_at: int


@dataclass(frozen=True)
class CoverageInterval:
    start_us: int
    end_us: int
    status: str


@dataclass(frozen=True)
class FetchRun:
    run_id: int
    source: str
    symbol: str
    timeframe: str
    start_us: int
    end_us: int
    status: str
    rows: int
    api_calls: int
    duration_s: float | None
    error: str | None
    started_at: int


def _migrate_build_runs(c: sqlite3.Connection) -> None:
    """Version 1 manifests: build_runs without the ``killed`` status and the ``pid`` column.
    SQLite cannot change a check constraint in place, so the table is copied (one
    transaction; foreign keys off meanwhile, as SQLite's documented procedure says)."""
    sql = c.execute("select sql from sqlite_master where type = 'table' and name = 'build_runs'")
    if "'killed'" in sql.fetchone()[0]:
        return
    c.execute("pragma foreign_keys=off")
    try:
        c.execute("begin immediate")
        try:
            again = c.execute(
                "select sql from sqlite_master where type = 'table' and name = 'build_runs'"
            ).fetchone()[0]
            if "'killed'" not in again:  # another process may have migrated meanwhile
                create = _SCHEMA[_SCHEMA.index("create table if not exists build_runs") :]
                create = create[: create.index(");") + 2]
                c.execute(create.replace("build_runs", "build_runs_v2", 1))
                c.execute(
                    """insert into build_runs_v2 (build_id, command, status, started_at,
                           duration_s, error, data_files)
                       select build_id, command, status, started_at, duration_s, error,
                           data_files from build_runs"""
                )
                c.execute("drop table build_runs")
                c.execute("alter table build_runs_v2 rename to build_runs")
            c.execute("commit")
        except BaseException:
            c.execute("rollback")
            raise
    finally:
        c.execute("pragma foreign_keys=on")


class Manifest:
    """A connection to the manifest. Cheap to create; close it (or use ``with``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        c = self._conn
        c.execute("pragma journal_mode=wal")
        c.execute("pragma synchronous=full")
        c.execute("pragma busy_timeout=30000")
        c.execute("pragma foreign_keys=on")
        # executescript commits implicitly; it runs outside BEGIN and is idempotent.
        c.executescript(_SCHEMA)
        _migrate_build_runs(c)
        c.execute(
            "insert or ignore into meta (key, value) values ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        c.execute(
            "update meta set value = ? where key = 'schema_version' and cast(value as int) < ?",
            (str(SCHEMA_VERSION), SCHEMA_VERSION),
        )

    # -- plumbing ------------------------------------------------------------------------

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: all or nothing."""
        c = self._conn
        c.execute("begin immediate")
        try:
            yield c
        except BaseException:
            c.execute("rollback")
            raise
        else:
            c.execute("commit")

    def query(self, sql: str, params: Iterable[object] = ()) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name."""
        cur = self._conn.execute(sql, tuple(params))
        cols = [d[0] for d in cur.description or ()]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    # -- symbols -------------------------------------------------------------------------

    def upsert_symbol(self, source: str, symbol: str, info: dict[str, object] | None) -> None:
        info = info or {}
        now = _now_us()
        with self.transaction() as c:
            c.execute(
                """
                insert into symbols (source, symbol, name, asset_class, exchange, currency,
                                     timezone, calendar, first_seen_at, updated_at)
                values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                on conflict (source, symbol) do update set
                    name = coalesce(excluded.name, name),
                    asset_class = coalesce(excluded.asset_class, asset_class),
                    exchange = coalesce(excluded.exchange, exchange),
                    currency = coalesce(excluded.currency, currency),
                    timezone = coalesce(excluded.timezone, timezone),
                    calendar = coalesce(excluded.calendar, calendar),
                    updated_at = excluded.updated_at
                """,
                (
                    source,
                    symbol,
                    info.get("name"),
                    info.get("asset_class"),
                    info.get("exchange"),
                    info.get("currency"),
                    info.get("timezone"),
                    info.get("calendar"),
                    now,
                    now,
                ),
            )

    def symbols(self, source: str | None = None) -> list[dict[str, object]]:
        if source is None:
            return self.query("select * from symbols order by source, symbol")
        return self.query("select * from symbols where source = ? order by symbol", (source,))

    # -- fetch runs ----------------------------------------------------------------------

    def start_fetch_run(
        self, source: str, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> int:
        with self.transaction() as c:
            cur = c.execute(
                """insert into fetch_runs (source, symbol, timeframe, start_us, end_us, status,
                                           started_at)
                   values (?, ?, ?, ?, ?, 'running', ?)""",
                (source, symbol, timeframe, to_us(start), to_us(end), _now_us()),
            )
            return int(cur.lastrowid or 0)

    def finish_fetch_run(
        self,
        run_id: int,
        status: str,
        *,
        rows: int = 0,
        api_calls: int = 0,
        duration_s: float | None = None,
        error: str | None = None,
    ) -> None:
        with self.transaction() as c:
            c.execute(
                """update fetch_runs set status = ?, rows = ?, api_calls = ?, duration_s = ?,
                          error = ? where run_id = ?""",
                (status, rows, api_calls, duration_s, error, run_id),
            )

    def fetch_runs(self, **where: object) -> list[FetchRun]:
        sql = "select * from fetch_runs"
        if where:
            sql += " where " + " and ".join(f"{k} = ?" for k in where)
        rows = self.query(sql + " order by run_id", where.values())
        return [FetchRun(**r) for r in rows]  # type: ignore[arg-type]

    # -- data files ----------------------------------------------------------------------

    def commit_file(
        self,
        *,
        dataset: str,
        path: str,
        keys: dict[str, str],
        rows: int,
        min_us: int | None,
        max_us: int | None,
        nbytes: int,
        sha256: str,
        fetch_run_id: int | None = None,
        conn: sqlite3.Connection | None = None,
    ) -> int:
        """Record a new live version of ``path``, superseding the previous one."""

        def _do(c: sqlite3.Connection) -> int:
            now = _now_us()
            c.execute(
                "update data_files set superseded_at = ? where path = ? and superseded_at is null",
                (now, path),
            )
            cur = c.execute(
                """insert into data_files (dataset, path, source, symbol, timeframe, period,
                       rows, min_us, max_us, bytes, sha256, committed_at, fetch_run_id)
                   values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    dataset,
                    path,
                    keys.get("source"),
                    keys.get("symbol"),
                    keys.get("timeframe"),
                    keys.get("period"),
                    rows,
                    min_us,
                    max_us,
                    nbytes,
                    sha256,
                    now,
                    fetch_run_id,
                ),
            )
            return int(cur.lastrowid or 0)

        if conn is not None:
            return _do(conn)
        with self.transaction() as c:
            return _do(c)

    def retire_file(self, path: str, conn: sqlite3.Connection | None = None) -> None:
        """Mark the live version of ``path`` as gone (file deleted)."""
        sql = "update data_files set superseded_at = ? where path = ? and superseded_at is null"
        if conn is not None:
            conn.execute(sql, (_now_us(), path))
            return
        with self.transaction() as c:
            c.execute(sql, (_now_us(), path))

    def live_files(self, dataset: str | None = None, **where: object) -> list[DataFile]:
        clauses = ["superseded_at is null"]
        params: list[object] = []
        if dataset is not None:
            clauses.append("dataset = ?")
            params.append(dataset)
        for k, v in where.items():
            if v is not None:
                clauses.append(f"{k} = ?")
                params.append(v)
        rows = self.query(
            f"""select file_id, dataset, path, source, symbol, timeframe, period, rows, min_us,
                       max_us, bytes, sha256, committed_at
                from data_files where {" and ".join(clauses)} order by path""",
            params,
        )
        return [DataFile(**r) for r in rows]  # type: ignore[arg-type]

    # -- coverage ------------------------------------------------------------------------

    def coverage(self, source: str, symbol: str, timeframe: str) -> list[CoverageInterval]:
        rows = self.query(
            """select start_us, end_us, status from coverage
               where source = ? and symbol = ? and timeframe = ? order by start_us""",
            (source, symbol, timeframe),
        )
        return [CoverageInterval(**r) for r in rows]  # type: ignore[arg-type]

    def add_coverage(
        self,
        source: str,
        symbol: str,
        timeframe: str,
        start: datetime,
        end: datetime,
        status: str,
        fetch_run_id: int | None = None,
    ) -> None:
        """Add ``[start, end)`` with ``status``; the newest status wins where they overlap,
        and touching intervals of one status are merged so the table stays small."""
        if status not in COVERAGE_STATUSES:
            raise ValueError(f"coverage status must be one of {COVERAGE_STATUSES}")
        s, e = to_us(start), to_us(end)
        if e <= s:
            return
        with self.transaction() as c:
            existing = c.execute(
                """select rowid, start_us, end_us, status, fetch_run_id from coverage
                   where source = ? and symbol = ? and timeframe = ?
                     and end_us >= ? and start_us <= ?""",
                (source, symbol, timeframe, s, e),
            ).fetchall()
            pieces: list[tuple[int, int, str, int | None]] = []
            for _rowid, a, b, st, run in existing:
                # keep what lies outside the new interval
                if a < s:
                    pieces.append((a, min(b, s), st, run))
                if b > e:
                    pieces.append((max(a, e), b, st, run))
            new_s, new_e = s, e
            kept: list[tuple[int, int, str, int | None]] = []
            for a, b, st, run in pieces:
                if st == status and (b == new_s or a == new_e):
                    new_s, new_e = min(new_s, a), max(new_e, b)
                else:
                    kept.append((a, b, st, run))
            c.executemany("delete from coverage where rowid = ?", [(r[0],) for r in existing])
            now = _now_us()
            rows = [*kept, (new_s, new_e, status, fetch_run_id)]
            c.executemany(
                """insert into coverage (source, symbol, timeframe, start_us, end_us, status,
                                         fetch_run_id, updated_at)
                   values (?, ?, ?, ?, ?, ?, ?, ?)""",
                [(source, symbol, timeframe, a, b, st, run, now) for a, b, st, run in rows],
            )

    def clear_coverage(
        self, source: str | None = None, symbol: str | None = None, timeframe: str | None = None
    ) -> None:
        clauses, params = _where(source=source, symbol=symbol, timeframe=timeframe)
        with self.transaction() as c:
            c.execute(f"delete from coverage {clauses}", params)

    # -- builds and exports --------------------------------------------------------------

    def start_build_run(self, command: str, file_ids: list[int], pid: int | None = None) -> int:
        with self.transaction() as c:
            cur = c.execute(
                """insert into build_runs (command, status, started_at, data_files, pid)
                   values (?, 'running', ?, ?, ?)""",
                (command, _now_us(), json.dumps(sorted(file_ids)), pid),
            )
            return int(cur.lastrowid or 0)

    def mark_killed_builds(self) -> int:
        """Builds still ``running`` whose process is gone: ``killed``. Call it only while
        holding the build lock (then no other build can be running). Returns how many."""
        with self.transaction() as c:
            cur = c.execute(
                """update build_runs set status = 'killed',
                       error = 'the build process died before it finished (killed or crashed); '
                               || 'the previous published marts stayed in place'
                   where status = 'running'"""
            )
            return cur.rowcount

    def finish_build_run(
        self, run_id: int, status: str, duration_s: float, error: str | None = None
    ) -> None:
        with self.transaction() as c:
            c.execute(
                "update build_runs set status = ?, duration_s = ?, error = ? where build_id = ?",
                (status, duration_s, error, run_id),
            )

    def last_build_run(self, status: str | None = "ok") -> dict[str, object] | None:
        """The latest build with ``status`` (any status when None)."""
        if status is None:
            rows = self.query("select * from build_runs order by build_id desc limit 1")
        else:
            rows = self.query(
                "select * from build_runs where status = ? order by build_id desc limit 1",
                (status,),
            )
        return rows[0] if rows else None

    # -- update runs and vendor revisions --------------------------------------------------

    def start_update_run(self, config_path: str | None, pid: int | None = None) -> int:
        with self.transaction() as c:
            c.execute(
                """update update_runs set status = 'killed', finished_at = ?
                   where status = 'running' and (pid is null or pid != ?)""",
                (_now_us(), pid),
            )  # the caller holds the update lock: a run still 'running' died
            cur = c.execute(
                """insert into update_runs (started_at, status, config_path, pid)
                   values (?, 'running', ?, ?)""",
                (_now_us(), config_path, pid),
            )
            return int(cur.lastrowid or 0)

    def finish_update_run(
        self,
        run_id: int,
        status: str,
        *,
        series: int,
        fetched_rows: int,
        revised_rows: int,
        build_id: int | None,
        report_json: str,
    ) -> None:
        with self.transaction() as c:
            c.execute(
                """update update_runs set status = ?, finished_at = ?, series = ?,
                       fetched_rows = ?, revised_rows = ?, build_id = ?, report_json = ?
                   where run_id = ?""",
                (status, _now_us(), series, fetched_rows, revised_rows, build_id, report_json,
                 run_id),
            )  # fmt: skip

    def record_revisions(
        self,
        run_id: int,
        source: str,
        symbol: str,
        timeframe: str,
        rows: Iterable[tuple[int, str | None, str | None]],
    ) -> int:
        """Keep the bars a vendor changed, for audit: (ts us, old JSON, new JSON)."""
        now = _now_us()
        data = [(run_id, source, symbol, timeframe, ts, old, new, now) for ts, old, new in rows]
        with self.transaction() as c:
            c.executemany(
                """insert into revisions (run_id, source, symbol, timeframe, ts, old_json,
                       new_json, detected_at) values (?, ?, ?, ?, ?, ?, ?, ?)""",
                data,
            )
        return len(data)

    def update_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        return self.query("select * from update_runs order by run_id desc limit ?", (limit,))

    def record_export(
        self,
        *,
        path: str,
        mart: str | None,
        sql: str | None,
        format: str,
        rows: int,
        bytes: int,
        sha256: str | None = None,
        build_run_id: int | None = None,
    ) -> int:
        if build_run_id is None:
            last = self.last_build_run()
            build_run_id = int(last["build_id"]) if last else None  # type: ignore[call-overload]
        file_ids = [f.file_id for f in self.live_files()]
        with self.transaction() as c:
            cur = c.execute(
                """insert into exports (path, mart, sql, format, rows, bytes, sha256, build_id,
                                        data_files, created_at)
                   values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    path,
                    mart,
                    sql,
                    format,
                    rows,
                    bytes,
                    sha256,
                    build_run_id,
                    json.dumps(file_ids),
                    _now_us(),
                ),
            )
            return int(cur.lastrowid or 0)

    # -- mirror for dbt ------------------------------------------------------------------

    def write_mirror(self, directory: str | Path) -> None:
        """Write coverage, live data_files and fetch_runs as Parquet for dbt to read
        (DuckDB's sqlite scanner is an extension, not available offline)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        ts = pa.timestamp("us", tz="UTC")
        tables = {
            "coverage": (
                """select source, symbol, timeframe, start_us as start_ts, end_us as end_ts,
                          status, updated_at from coverage
                   order by source, symbol, timeframe, start_us""",
                pa.schema(
                    [
                        ("source", pa.string()),
                        ("symbol", pa.string()),
                        ("timeframe", pa.string()),
                        ("start_ts", ts),
                        ("end_ts", ts),
                        ("status", pa.string()),
                        ("updated_at", ts),
                    ]
                ),
            ),
            "data_files": (
                """select file_id, dataset, path, source, symbol, timeframe, period, rows,
                          min_us as min_ts, max_us as max_ts, bytes, sha256, committed_at
                   from data_files where superseded_at is null order by path""",
                pa.schema(
                    [
                        ("file_id", pa.int64()),
                        ("dataset", pa.string()),
                        ("path", pa.string()),
                        ("source", pa.string()),
                        ("symbol", pa.string()),
                        ("timeframe", pa.string()),
                        ("period", pa.string()),
                        ("rows", pa.int64()),
                        ("min_ts", ts),
                        ("max_ts", ts),
                        ("bytes", pa.int64()),
                        ("sha256", pa.string()),
                        ("committed_at", ts),
                    ]
                ),
            ),
            "fetch_runs": (
                """select run_id, source, symbol, timeframe, start_us as start_ts,
                          end_us as end_ts, status, rows, api_calls, duration_s, error,
                          started_at
                   from fetch_runs order by run_id""",
                pa.schema(
                    [
                        ("run_id", pa.int64()),
                        ("source", pa.string()),
                        ("symbol", pa.string()),
                        ("timeframe", pa.string()),
                        ("start_ts", ts),
                        ("end_ts", ts),
                        ("status", pa.string()),
                        ("rows", pa.int64()),
                        ("api_calls", pa.int64()),
                        ("duration_s", pa.float64()),
                        ("error", pa.string()),
                        ("started_at", ts),
                    ]
                ),
            ),
        }
        for name, (sql, schema) in tables.items():
            rows = self.query(sql)
            cols = {f.name: [r[f.name] for r in rows] for f in schema}
            arrays = []
            for f in schema:
                if pa.types.is_timestamp(f.type):
                    arrays.append(pa.array(cols[f.name], pa.int64()).cast(f.type))
                else:
                    arrays.append(pa.array(cols[f.name], f.type))
            table = pa.Table.from_arrays(arrays, schema=schema)
            tmp = directory / f".{name}.parquet.tmp"
            pq.write_table(table, tmp)
            tmp.replace(directory / f"{name}.parquet")

    # -- model artifacts -------------------------------------------------------------------

    def add_model_artifact(self, row: dict[str, Any], file_ids: Iterable[int]) -> int:
        """Record a trained model (``row``: the model_artifacts columns but the id and the
        time) with the data files it was trained on, in one transaction."""
        cols = [k for k in row if k not in ("artifact_id", "registered_at")]
        with self.transaction() as c:
            cur = c.execute(
                f"""insert into model_artifacts ({", ".join(cols)}, registered_at)
                    values ({", ".join("?" for _ in cols)}, ?)""",
                [*(row[k] for k in cols), _now_us()],
            )
            artifact_id = int(cur.lastrowid or 0)
            c.executemany(
                "insert into model_artifact_files (artifact_id, file_id) values (?, ?)",
                [(artifact_id, f) for f in sorted(set(file_ids))],
            )
            return artifact_id

    def model_artifacts(self, **where: object) -> list[dict[str, Any]]:
        clauses, params = _where(**where)
        return self.query(f"select * from model_artifacts {clauses} order by artifact_id", params)

    def model_artifact_files(self, artifact_id: int) -> list[dict[str, Any]]:
        """The data files a model was trained on, each as the manifest recorded it then
        (``superseded_at`` set: the lake has a newer version of that file since)."""
        return self.query(
            """select f.file_id, f.dataset, f.path, f.source, f.symbol, f.timeframe, f.period,
                      f.rows, f.min_us, f.max_us, f.bytes, f.sha256, f.committed_at,
                      f.superseded_at
               from model_artifact_files a join data_files f on f.file_id = a.file_id
               where a.artifact_id = ? order by f.path""",
            (artifact_id,),
        )


def _where(**kv: object) -> tuple[str, list[object]]:
    clauses = [f"{k} = ?" for k, v in kv.items() if v is not None]
    params = [v for v in kv.values() if v is not None]
    return ("where " + " and ".join(clauses)) if clauses else "", params
