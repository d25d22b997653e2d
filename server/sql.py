"""Ad-hoc SQL for trusted keys: one read-only SELECT over the marts, on a locked-down DuckDB.

Each request gets its own in-memory DuckDB whose only files are the marts, opened for this
request (a rebuild cannot tear the read). Before the user's text runs:

- ``allowed_directories`` is the marts directory and ``allowed_paths`` the opened marts,
  then ``enable_external_access=false`` (nothing else on the machine can be read or
  written: no ``read_csv('/etc/passwd')``, ``COPY ... TO``, ``ATTACH`` of a file,
  ``INSTALL``);
- extension autoinstall and autoload are off, and ``lock_configuration=true`` so no
  ``SET``/``RESET`` can undo any of it;
- the text must parse to exactly one statement, of type SELECT;
- a timer interrupts the query after ``timeout_s``, memory is capped, spilling to disk is
  off, and at most ``max_rows`` rows come back.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from ingest.errors import InvalidInputError
from warehouse.pit import as_of_macro

from .queries import ident
from .snapshots import Snapshot, list_marts

__all__ = ["SqlLimits", "SqlResult", "SqlTimeoutError", "run_sql"]

MAX_SQL_CHARS = 100_000


class SqlRejectedError(InvalidInputError):
    """Text that is not exactly one SELECT, or a query DuckDB refuses."""


class SqlTimeoutError(InvalidInputError):
    """The query ran past the time limit and was interrupted."""


@dataclass(frozen=True)
class SqlLimits:
    timeout_s: float = 10.0
    max_rows: int = 100_000
    memory_limit: str = "1GB"
    threads: int = 2


@dataclass
class SqlResult:
    table: pa.Table
    truncated: bool
    marts: list[str]


def check_statement(sql: str) -> duckdb.Statement:
    """The one SELECT statement in ``sql``, or a clear error saying what is wrong."""
    if len(sql) > MAX_SQL_CHARS:
        raise SqlRejectedError(f"the query is longer than {MAX_SQL_CHARS} characters")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise SqlRejectedError(f"the query does not parse: {_short(exc)}") from None
    if not statements:
        raise SqlRejectedError("the query is empty; send one SELECT statement")
    if len(statements) != 1:
        raise SqlRejectedError(
            f"send exactly one statement, got {len(statements)}; "
            "drop the extra ';'-separated statements"
        )
    statement = statements[0]
    if statement.type != duckdb.StatementType.SELECT:
        kind = str(statement.type).rsplit(".", 1)[-1]
        raise SqlRejectedError(
            f"only SELECT statements are allowed here, got {kind}; "
            "the SQL endpoint reads the marts and changes nothing"
        )
    return statement


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:500] if str(exc).strip() else type(exc).__name__


def _locked_connection(snap: Snapshot, limits: SqlLimits) -> tuple[duckdb.DuckDBPyConnection, list]:
    con = duckdb.connect(
        ":memory:",
        config={
            "threads": limits.threads,
            "memory_limit": limits.memory_limit,
            "max_temp_directory_size": "0B",
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "enable_external_file_cache": False,
        },
    )
    # timestamps come back as the marts hold them, in "UTC" (not the host's "Etc/UTC",
    # which polars will not concatenate with "UTC")
    con.execute("set TimeZone = 'UTC'")
    try:
        marts = list_marts(snap.marts_dir)
        files = {name: snap.mart(name) for name in marts}
        con.execute("set allowed_directories = ?", [[str(snap.marts_dir) + "/"]])
        if files:
            con.execute("set allowed_paths = ?", [list(files.values())])
        con.execute("set enable_external_access = false")
        for name, path in files.items():
            literal = "'" + path.replace("'", "''") + "'"
            con.execute(f"create view {ident(name)} as select * from read_parquet({literal})")
        if {"bars_adjusted", "adjustment_factors"} <= files.keys():
            # select * from bars_as_of(date '2023-06-30'), as in the DuckDB shell; marts of
            # another shape (built by an older version) simply go without it
            with contextlib.suppress(duckdb.Error):
                con.execute(as_of_macro())
        con.execute("set lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con, marts


def run_sql(snap: Snapshot, sql: str, limits: SqlLimits) -> SqlResult:
    """Run one SELECT over the marts of ``snap`` within ``limits``."""
    statement = check_statement(sql)
    con, marts = _locked_connection(snap, limits)
    timed_out = threading.Event()

    def interrupt() -> None:
        timed_out.set()
        con.interrupt()

    timer = threading.Timer(limits.timeout_s, interrupt)
    timer.daemon = True
    timer.start()
    try:
        reader = con.execute(statement).to_arrow_reader(min(limits.max_rows + 1, 65_536))
        batches: list[pa.RecordBatch] = []
        rows = 0
        for batch in reader:
            batches.append(batch)
            rows += batch.num_rows
            if rows > limits.max_rows:
                break
        table = pa.Table.from_batches(batches, schema=reader.schema)
    except duckdb.InterruptException:
        raise SqlTimeoutError(
            f"the query ran longer than {limits.timeout_s:g} s and was stopped; "
            "narrow it (filter on symbol or ts) or aggregate"
        ) from None
    except duckdb.OutOfMemoryException:
        raise SqlRejectedError(
            f"the query needs more than the {limits.memory_limit} memory limit; narrow it"
        ) from None
    except duckdb.Error as exc:
        if timed_out.is_set():
            raise SqlTimeoutError(
                f"the query ran longer than {limits.timeout_s:g} s and was stopped"
            ) from None
        raise SqlRejectedError(f"the query failed: {_short(exc)}") from None
    finally:
        timer.cancel()
        con.close()
    truncated = table.num_rows > limits.max_rows
    return SqlResult(table.slice(0, limits.max_rows), truncated, marts)
