"""Ad-hoc SQL for trusted keys: one read-only SELECT over the marts, on a locked-down DuckDB.

This module is the sandbox; ``workers.py`` runs it in worker processes the server can
kill (a query past its time, or one that needs more memory than allowed, cannot hurt the
server). Each query gets a fresh in-memory DuckDB whose only files are the marts of one
published set. Before the user's text runs:

- the text must parse to exactly one statement, of type SELECT;
- it may read the marts (views), its own CTEs and a few table functions that touch no
  file and reveal nothing of the machine (``range``, ``unnest``, ``bars_as_of`` ...);
  catalog and settings functions (``duckdb_settings()``, ``current_setting()``,
  ``duckdb_views()``, ``information_schema``) are refused: they name the server's
  directories (the marts' set, the home and working directories);
- ``allowed_directories`` is the set directory, then ``enable_external_access=false``
  (nothing else on the machine can be read or written: no ``read_csv('/etc/passwd')``,
  ``COPY ... TO``, ``ATTACH`` of a file, ``INSTALL``);
- extension autoinstall and autoload are off, and ``lock_configuration=true`` so no
  ``SET``/``RESET`` can undo any of it;
- DuckDB's memory limit is set, spilling to disk is off, a timer interrupts the query
  after ``timeout_s``, and at most ``max_rows`` rows and ``max_bytes`` bytes come back.

Error messages name no path of the machine (``redact.scrub_paths``).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from ingest.errors import DuckmarketError, InvalidInputError
from warehouse.layout import sql_literal
from warehouse.pit import as_of_macro

from .queries import ident
from .redact import scrub_paths
from .snapshots import Snapshot, list_marts

__all__ = [
    "SqlBusyError",
    "SqlLimits",
    "SqlMemoryError",
    "SqlRejectedError",
    "SqlResult",
    "SqlTimeoutError",
    "parse_bytes",
    "run_sql",
]

MAX_SQL_CHARS = 100_000

#: table functions a query may call: none reads a file or describes the machine
ALLOWED_TABLE_FUNCTIONS = frozenset(
    {
        "bars_as_of",  # the point-in-time macro over the marts
        "generate_series",
        "json_each",
        "json_tree",
        "range",
        "repeat",
        "repeat_row",
        "unnest",
    }
)
#: scalar functions refused: settings name directories, plans name files, and these run
#: or log SQL behind the check
DENIED_FUNCTIONS = frozenset(
    {
        "current_setting",
        "getenv",
        "json_execute_serialized_sql",
        "json_serialize_plan",
        "write_log",
    }
)
#: catalog relations and functions, refused even under a CTE's name
_CATALOG_NAME = re.compile(r"^(duckdb_|pragma_|sqlite_|pg_|information_schema)", re.IGNORECASE)
_CATALOG_FUNCTION = re.compile(r"^(duckdb_|pragma_)", re.IGNORECASE)
_CATALOG_SCHEMAS = frozenset({"information_schema", "pg_catalog"})


class SqlRejectedError(InvalidInputError):
    """Text that is not exactly one SELECT, or a query DuckDB refuses."""


class SqlTimeoutError(InvalidInputError):
    """The query ran past the time limit and was interrupted (HTTP 408)."""


class SqlMemoryError(SqlRejectedError):
    """The query needed more memory than one query may use."""


class SqlBusyError(DuckmarketError):
    """Every SQL worker is busy (HTTP 503 with Retry-After)."""

    retry_after_s = 1


@dataclass(frozen=True)
class SqlLimits:
    """Limits of ``POST /v1/sql``. Memory in total is at most ``max_concurrent`` times
    ``memory_limit`` (plus each worker's interpreter, about 200 MB)."""

    #: a query running longer is interrupted, or its worker killed a second later
    timeout_s: float = 10.0
    #: rows in one answer (more are cut off, flagged ``truncated``)
    max_rows: int = 100_000
    #: memory one query may use (DuckDB's limit, and the worker process's data limit)
    memory_limit: str = "1GB"
    #: DuckDB threads of one query
    threads: int = 2
    #: bytes of one answer as sent (more rows are cut off, flagged ``truncated``)
    max_bytes: int = 64 * 2**20
    #: queries running at once; one more gets 503 with Retry-After
    max_concurrent: int = 2
    #: an idle worker process exits after this long
    worker_idle_s: float = 300.0


@dataclass
class SqlResult:
    table: pa.Table
    truncated: bool
    marts: list[str]
    #: "rows" or "bytes" when truncated
    truncated_by: str | None = None
    #: (file name, why) of files in the set that are not served
    ignored: list[tuple[str, str]] = field(default_factory=list)


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(size: str | int) -> int:
    """``"1GB"``, ``"512MiB"`` or a number of bytes, as bytes (DuckDB's units)."""
    if isinstance(size, int):
        return size
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", size)
    if not m or m.group(2).lower() not in _UNITS:
        raise InvalidInputError(f"invalid size {size!r}: use e.g. 512MB or 2GB")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


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


def _references(node: object, out: dict[str, set]) -> None:
    """Collect what a serialized query (``json_serialize_sql``) calls and reads."""
    if isinstance(node, dict):
        if node.get("class") in ("FUNCTION", "WINDOW") and "function_name" in node:
            out["functions"].add(str(node["function_name"]).lower())
        kind = node.get("type")
        if kind == "TABLE_FUNCTION" and isinstance(node.get("function"), dict):
            out["table_functions"].add(str(node["function"].get("function_name", "")).lower())
        if kind == "BASE_TABLE":
            out["tables"].add(
                (
                    str(node.get("catalog_name") or "").lower(),
                    str(node.get("schema_name") or "").lower(),
                    str(node.get("table_name") or "").lower(),
                )
            )
        if isinstance(node.get("cte_map"), dict):
            for item in node["cte_map"].get("map") or []:
                if isinstance(item, dict):
                    out["ctes"].add(str(item.get("key", "")).lower())
        for v in node.values():
            _references(v, out)
    elif isinstance(node, list):
        for v in node:
            _references(v, out)


def check_references(con: duckdb.DuckDBPyConnection, sql: str, marts: list[str]) -> None:
    """Refuse a query that reads anything but the marts, its CTEs and the allowed table
    functions, or calls a function that names the machine's directories. Judged on
    DuckDB's own parse tree, so quoting, comments or nesting cannot hide a call."""
    doc = json.loads(con.execute("select json_serialize_sql(?)", [sql]).fetchone()[0])
    if doc.get("error"):
        raise SqlRejectedError(
            "this form of query is not supported here: "
            + scrub_paths(str(doc.get("error_message", "")))[:300]
        )
    refs: dict[str, set] = {"functions": set(), "table_functions": set(), "tables": set()}
    refs["ctes"] = set()
    _references(doc, refs)
    marts_lower = {m.lower() for m in marts}
    for fn in sorted(refs["table_functions"]):
        if fn not in ALLOWED_TABLE_FUNCTIONS:
            raise SqlRejectedError(
                f"table function {fn}() is not available here; query the marts as tables "
                f"(GET /v1/marts lists them) or use {', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))}"
            )
    for fn in sorted(refs["functions"]):
        if fn in DENIED_FUNCTIONS or _CATALOG_FUNCTION.match(fn):
            raise SqlRejectedError(
                f"{fn}() is not available here: it describes the server, not the marts"
            )
    for catalog, schema, table in sorted(refs["tables"]):
        if (
            _CATALOG_NAME.match(table)
            or schema in _CATALOG_SCHEMAS
            or catalog not in ("", "memory")
            or schema not in ("", "main")
        ):
            raise SqlRejectedError(
                f"{'.'.join(p for p in (catalog, schema, table) if p)} is not a mart; "
                "the SQL endpoint reads the marts only (GET /v1/marts lists them)"
            )
        if table not in marts_lower and table not in refs["ctes"]:
            raise SqlRejectedError(
                f"unknown table {table[:80]!r}: the SQL endpoint reads the marts only "
                "(GET /v1/marts lists them), not files"
            )


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return scrub_paths(text.splitlines()[0][:500]) if text else type(exc).__name__


def _locked_connection(
    snap: Snapshot, limits: SqlLimits, ignored: list[tuple[str, str]] | None = None
) -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    """A locked DuckDB with one view per mart of ``snap``; marts that cannot be read (a
    file named ``.parquet`` that is not Parquet) are left out and added to ``ignored``."""
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
        files: dict[str, list[str]] = {}
        for name in list_marts(snap.marts_dir):
            try:
                files[name] = snap.files(name)  # one, or a partitioned mart's
            except InvalidInputError:  # removed, or not a regular file
                continue
        con.execute("set allowed_directories = ?", [[str(snap.marts_dir) + "/"]])
        if files:
            con.execute("set allowed_paths = ?", [[f for fs in files.values() for f in fs]])
        con.execute("set enable_external_access = false")
        marts = []
        for name, paths in files.items():
            literal = "[" + ", ".join(sql_literal(p) for p in paths) + "]"
            try:
                # a view binds its files now: a stray file is found here, and left out
                # rather than failing every query
                con.execute(f"create view {ident(name)} as select * from read_parquet({literal})")
            except duckdb.Error as exc:
                if ignored is not None:
                    ignored.append((f"{name}.parquet", _short(exc)))
                continue
            marts.append(name)
        if {"bars_adjusted", "adjustment_factors"} <= set(marts):
            # select * from bars_as_of(date '2023-06-30'), as in the DuckDB shell; marts of
            # another shape (built by an older version) simply go without it
            with contextlib.suppress(duckdb.Error):
                con.execute(as_of_macro())
        con.execute("set lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con, marts


def memory_error(limits: SqlLimits) -> SqlMemoryError:
    return SqlMemoryError(
        f"the query needs more memory than the {limits.memory_limit} one query may use and "
        "was stopped; narrow it (filter on symbol or ts), aggregate, or ask for fewer columns"
    )


def timeout_error(limits: SqlLimits) -> SqlTimeoutError:
    return SqlTimeoutError(
        f"the query ran longer than {limits.timeout_s:g} s and was stopped; "
        "narrow it (filter on symbol or ts) or aggregate"
    )


def run_sql(snap: Snapshot, sql: str, limits: SqlLimits) -> SqlResult:
    """Run one SELECT over the marts of ``snap`` within ``limits``, in this process (the
    server calls it through ``workers.SqlWorkers``, which can kill what it cannot stop)."""
    statement = check_statement(sql)
    ignored: list[tuple[str, str]] = []
    con, marts = _locked_connection(snap, limits, ignored)
    timed_out = threading.Event()

    def interrupt() -> None:
        timed_out.set()
        con.interrupt()

    timer = threading.Timer(limits.timeout_s, interrupt)
    timer.daemon = True
    try:
        check_references(con, statement.query, marts)
        timer.start()
        reader = con.execute(statement).to_arrow_reader(min(limits.max_rows + 1, 65_536))
        batches: list[pa.RecordBatch] = []
        rows = size = 0
        truncated_by = None
        for batch in reader:
            if rows + batch.num_rows > limits.max_rows:
                batch = batch.slice(0, limits.max_rows - rows)
                truncated_by = "rows"
            if size + batch.nbytes > limits.max_bytes:
                batch = _fit(batch, limits.max_bytes - size)
                truncated_by = "bytes"
            batches.append(batch)
            rows += batch.num_rows
            size += batch.nbytes
            if truncated_by:
                break
        table = pa.Table.from_batches(batches, schema=reader.schema)
    except duckdb.InterruptException:
        raise timeout_error(limits) from None
    except (duckdb.OutOfMemoryException, MemoryError):
        raise memory_error(limits) from None
    except duckdb.Error as exc:
        if timed_out.is_set():
            raise timeout_error(limits) from None
        if "out of memory" in str(exc).lower() or "bad_alloc" in str(exc).lower():
            raise memory_error(limits) from None
        raise SqlRejectedError(f"the query failed: {_short(exc)}") from None
    finally:
        timer.cancel()
        con.close()
    return SqlResult(table, truncated_by is not None, marts, truncated_by, ignored)


def _fit(batch: pa.RecordBatch, budget: int) -> pa.RecordBatch:
    """The longest head of ``batch`` whose buffers take at most ``budget`` bytes."""
    lo, hi = 0, batch.num_rows
    while lo < hi:  # the largest n with nbytes(head n) <= budget
        mid = (lo + hi + 1) // 2
        if batch.slice(0, mid).nbytes <= budget:
            lo = mid
        else:
            hi = mid - 1
    return batch.slice(0, lo)
