"""The data server's HTTP API (FastAPI): read-only routes over the Parquet marts.

Every route but ``/v1/health`` needs an ``X-API-Key``; ``POST /v1/sql`` needs a trusted
one. Results come as JSON, CSV, Parquet or an Arrow IPC stream (``format=`` or ``Accept``)
and stream batch by batch. Pages end with a ``next_cursor`` (also in the ``X-Next-Cursor``
and ``Link`` headers) to pass back as ``cursor=`` for the next page.

Every request reads one published set of marts (``on_current_set``). Errors are a JSON
body with a message and never a traceback or a path of the machine; a client's mistake
is a 4xx. The only 5xx on purpose is 503 with ``Retry-After``: every SQL worker busy, or
builds publishing faster than a request can finish. A key past its request rate gets 429
with ``Retry-After`` (``ServerConfig.rate_limit``); SQL limits are ``ServerConfig.sql``.
"""

import contextlib
import importlib.metadata as _metadata
import logging
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, TypeVar

import duckdb
import pyarrow as pa
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from ingest.errors import DuckmarketError
from ingest.paths import DataPaths

from .formats import MEDIA_TYPES, NotAcceptableError, encode, encode_capped, negotiate
from .keys import KEY_HEADER, ApiKey, KeyStore, default_keys_file
from .queries import (
    MartShapeError,
    Page,
    UnknownSymbolError,
    bars_page,
    built_timeframes,
    coverage_page,
    features_page,
    parse_adjustment,
    parse_time,
    run_page,
    split_list,
    symbols_page,
)
from .ratelimit import RateLimit, RateLimiter
from .redact import machine_prefixes, scrub_paths
from .snapshots import MartNotFoundError, Snapshot, list_marts, log_ignored
from .sql import SqlBusyError, SqlLimits, SqlMemoryError, SqlTimeoutError
from .workers import SqlWorkers

__all__ = ["ServerConfig", "create_app"]

log = logging.getLogger("duckmarket.server")

try:
    duckmarket_version = _metadata.version("duckmarket")
except _metadata.PackageNotFoundError:  # a source tree that is not installed
    duckmarket_version = "0+unknown"


@dataclass(frozen=True)
class ServerConfig:
    paths: DataPaths
    keys_file: Path | None = None
    default_limit: int = 10_000
    max_limit: int = 1_000_000
    batch_rows: int = 65_536
    duckdb_threads: int = 2
    #: memory of the REST routes' queries together (they share one in-process DuckDB)
    duckdb_memory_limit: str = "2GB"
    sql: SqlLimits = field(default_factory=SqlLimits)
    #: requests per API key (429 with Retry-After past it)
    rate_limit: RateLimit = field(default_factory=RateLimit)

    @property
    def keys_path(self) -> Path:
        return self.keys_file or default_keys_file(self.paths.root)


# -- errors ------------------------------------------------------------------------------------
def _code(exc: BaseException) -> str:
    name = type(exc).__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() or "error"


class MartsRepublishingError(DuckmarketError):
    """Builds published so fast that a request lost its set of marts three times (503)."""

    retry_after_s = 1


#: how often a request starts again on the new set when builds swept its own
SET_ATTEMPTS = 3
#: failures a swept set cannot cause: never retried
_NOT_FROM_A_SWEPT_SET = (SqlTimeoutError, SqlMemoryError, SqlBusyError, NotAcceptableError)

T = TypeVar("T")


def _status(exc: DuckmarketError) -> int:
    if isinstance(exc, SqlBusyError | MartsRepublishingError):
        return 503
    if isinstance(exc, UnknownSymbolError | MartNotFoundError):
        return 404
    if isinstance(exc, MartShapeError):
        return 409
    if isinstance(exc, NotAcceptableError):
        return 406
    if isinstance(exc, SqlTimeoutError):
        return 408
    return 400


def _error(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    prefixes: list[str] | None = None,
):
    # no path of the server's machine in any answer (redact.py)
    message = scrub_paths(message, prefixes or ())
    body = {"error": {"status": status, "code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


# -- per-request resources ---------------------------------------------------------------------
class _Request:
    """The set of marts and the DuckDB cursor of one request, released once, whatever
    happens."""

    def __init__(self, db: duckdb.DuckDBPyConnection, snap: Snapshot) -> None:
        self.snap = snap
        self._db = db
        self._cur: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()

    @property
    def cur(self) -> duckdb.DuckDBPyConnection:
        if self._cur is None:
            self._cur = self._db.cursor()
        return self._cur

    def close(self) -> None:
        with self._lock:
            cur, self._cur = self._cur, None
        if cur is not None:
            with contextlib.suppress(duckdb.Error):
                cur.close()
        self.snap.close()

    def __del__(self) -> None:
        self.close()


class SqlRequest(BaseModel):
    sql: str = Field(..., max_length=100_000, description="one SELECT over the marts (views)")
    max_rows: int | None = Field(None, ge=1, description="at most this many rows (capped)")


def create_app(config: ServerConfig) -> FastAPI:
    """The FastAPI application serving ``config.paths``; run it with uvicorn."""
    paths = config.paths
    keys = KeyStore(config.keys_path)
    limiter = RateLimiter(config.rate_limit)
    workers = SqlWorkers(config.sql)
    prefixes = machine_prefixes(paths.root, config.keys_path.parent)
    db = duckdb.connect(
        ":memory:",
        config={
            "threads": config.duckdb_threads,
            "memory_limit": config.duckdb_memory_limit,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            # a mart replaced in place (a plain marts directory) keeps its name: no cache
            # keyed by path may outlive the file
            "enable_external_file_cache": False,
        },
    )
    # timestamps come back as the marts hold them, in "UTC" (not the host's "Etc/UTC",
    # which polars will not concatenate with "UTC")
    db.execute("set global TimeZone = 'UTC'")  # every request's cursor inherits it

    app = FastAPI(
        title="duckmarket data server",
        version=duckmarket_version,
        description=(
            "Read-only access to the duckmarket warehouse's Parquet marts. Send an API key "
            f"in the `{KEY_HEADER}` header (create one with `duckmarket serve --add-key NAME`). "
            "Choose the format with `format=json|csv|parquet|arrow` or the Accept header; "
            "follow `next_cursor` for the next page."
        ),
        docs_url=None,  # served below from local assets: /docs works offline
        redoc_url=None,
        lifespan=_lifespan,
    )
    _offline_docs(app)
    app.state.config = config
    app.state.keys = keys
    app.state.sql_workers = workers

    # -- errors: a clear JSON body, never a stack trace --------------------------------------
    @app.exception_handler(DuckmarketError)
    async def _duckmarket_error(request: Request, exc: DuckmarketError) -> JSONResponse:
        status = _status(exc)
        retry = getattr(exc, "retry_after_s", None)
        headers = {"Retry-After": str(retry)} if status == 503 and retry else None
        return _error(status, _code(exc), str(exc), headers, prefixes)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
        code[429] = "rate_limited"
        return _error(
            exc.status_code,
            code.get(exc.status_code, "http_error"),
            str(exc.detail),
            headers=getattr(exc, "headers", None),
            prefixes=prefixes,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(p) for p in e.get("loc", ()))
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return _error(
            422, "invalid_parameter", "; ".join(parts) or "invalid request", prefixes=prefixes
        )

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _error(500, "internal_error", "internal error; the server log has the details")

    # -- auth ------------------------------------------------------------------------------------
    api_key_header = APIKeyHeader(name=KEY_HEADER, auto_error=False)

    def require_key(presented: Annotated[str | None, Depends(api_key_header)]) -> ApiKey:
        if not presented:
            raise HTTPException(
                401,
                f"missing API key: send it in the {KEY_HEADER} header",
                headers={"WWW-Authenticate": "ApiKey"},
            )
        record = keys.verify(presented)
        if record is None:
            raise HTTPException(
                401, "invalid or revoked API key", headers={"WWW-Authenticate": "ApiKey"}
            )
        wait = limiter.retry_after(record.id)
        if wait:
            raise HTTPException(
                429,
                f"too many requests for key {record.name!r} (at most "
                f"{config.rate_limit.per_second:g} a second, {config.rate_limit.burst} at once); "
                f"retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        return record

    def require_trusted(key: Annotated[ApiKey, Depends(require_key)]) -> ApiKey:
        if not key.trusted:
            raise HTTPException(
                403,
                f"key {key.name!r} may not run SQL; ask for a trusted key "
                "(duckmarket serve --add-key NAME --trusted)",
            )
        return key

    Key = Annotated[ApiKey, Depends(require_key)]
    Fmt = Annotated[str | None, Query(alias="format", description="json, csv, parquet or arrow")]
    Limit = Annotated[int | None, Query(ge=1, le=config.max_limit, description="rows per page")]
    Cursor = Annotated[str | None, Query(max_length=2000, description="next_cursor of a page")]
    Columns = Annotated[
        str | None, Query(max_length=4000, description="comma-separated column names")
    ]

    # -- responses -----------------------------------------------------------------------------
    def stream(
        request: Request,
        build: Callable[[Snapshot], Page],
        fmt: str | None,
        limit: int | None,
        cursor: str | None,
        meta: dict[str, object] | None = None,
    ) -> StreamingResponse:
        """Build the page on one published set of marts and stream the result; the
        request's cursor is closed when the body is sent or anything fails."""
        f = negotiate(fmt, request.headers.get("accept"))

        def start(snap: Snapshot) -> tuple[_Request, object]:
            req = _Request(db, snap)
            try:
                page = build(snap)
                # once run_page returns, DuckDB holds the files open: the stream no longer
                # needs the set to exist
                return req, run_page(
                    req.cur,
                    page,
                    limit=limit or config.default_limit,
                    cursor=cursor,
                    batch_rows=config.batch_rows,
                )
            except BaseException:
                req.close()
                raise

        req, result = on_current_set(start, discard=lambda started: started[0].close())
        headers = {"Cache-Control": "no-store"}
        if result.next_cursor:
            headers["X-Next-Cursor"] = result.next_cursor
            nxt = request.url.include_query_params(cursor=result.next_cursor)
            headers["Link"] = f'<{nxt}>; rel="next"'
        body_meta = {**(meta or {}), "next_cursor": result.next_cursor}
        return _respond(req, f, result.schema, result.reader, body_meta, headers)

    def _respond(
        req: _Request | None,
        fmt: str,
        schema: pa.Schema,
        batches,
        meta: dict[str, object],
        headers: dict[str, str],
    ) -> StreamingResponse:
        def body() -> Iterator[bytes]:
            try:
                yield from encode(fmt, schema, batches, meta)
            finally:
                if req is not None:
                    req.close()

        return StreamingResponse(body(), media_type=MEDIA_TYPES[fmt], headers=headers)

    def on_current_set(
        work: Callable[[Snapshot], T], discard: Callable[[T], None] | None = None
    ) -> T:
        """``work`` on the published set current now; again on the new set if builds
        swept its set meanwhile (see snapshots.py), so a request reads one set whole.
        ``discard`` releases a result that is thrown away."""
        for _ in range(SET_ATTEMPTS):
            snap = Snapshot(paths.marts)
            try:
                result = work(snap)
            except _NOT_FROM_A_SWEPT_SET:
                raise
            except Exception:
                if not snap.is_stale():
                    raise
            else:
                # still current: never swept. Superseded but whole: as good as current.
                if not snap.is_stale() or snap.is_intact():
                    return result
                if discard is not None:
                    discard(result)
            log.info("marts republished during a request; starting it again on the new set")
        raise MartsRepublishingError(
            "the marts were republished several times during this request; retry in a second"
        )

    try:
        with Snapshot(paths.marts) as snap:
            built_at_start = ", ".join(built_timeframes(snap)) or "none yet"
    except (OSError, duckdb.Error, pa.ArrowException):
        built_at_start = "none yet"
    timeframe_help = (
        f"a timeframe the warehouse built: GET /v1/timeframes lists them (at start: "
        f"{built_at_start})"
    )

    # -- routes ----------------------------------------------------------------------------------
    # async: answered on the event loop, never queued behind requests in the thread pool
    @app.get("/v1/health", tags=["meta"], summary="Liveness and what is built (no key needed)")
    async def health() -> dict[str, object]:
        marts = list_marts(paths.marts)
        return {
            "status": "ok",
            "version": duckmarket_version,
            "marts": len(marts),
            "bars": "bars_adjusted" in marts,
        }

    @app.get("/v1/timeframes", tags=["meta"], summary="Timeframes of the bars that are built")
    def timeframes(key: Key) -> dict[str, object]:
        built = on_current_set(built_timeframes)
        return {"timeframes": [{"timeframe": tf, "mart": mart} for tf, mart in built.items()]}

    @app.get(
        "/v1/report",
        tags=["meta"],
        summary="The duckmarket report: one offline HTML page with charts",
        response_class=HTMLResponse,
    )
    def report(
        key: Key,
        symbol: Annotated[str | None, Query(max_length=64)] = None,
        pair: Annotated[str | None, Query(max_length=140)] = None,
    ) -> HTMLResponse:
        """The page `duckmarket report` writes (coverage, quality, prices, a pair's
        spread, update runs), rendered from the published marts on each request."""
        from warehouse.report import render_report

        html = render_report(paths, symbol=symbol, pair=pair, show_root=False)
        return HTMLResponse(html)

    @app.get("/v1/marts", tags=["meta"], summary="Built marts and their columns")
    def marts(key: Key) -> dict[str, object]:
        def describe(snap: Snapshot) -> list[dict[str, object]]:
            out = []
            for name in list_marts(snap.marts_dir):
                try:
                    schema = snap.schema(name)
                except MartNotFoundError:
                    if snap.is_stale():
                        raise  # the set was swept: start again on the new one
                    continue
                cols = [{"name": f.name, "type": str(f.type)} for f in schema]
                out.append({"name": name, "columns": cols})
            return out

        return {"marts": on_current_set(describe)}

    @app.get("/v1/symbols", tags=["data"], summary="Symbols with their reference data")
    def symbols(
        request: Request,
        key: Key,
        columns: Columns = None,
        fmt: Fmt = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> StreamingResponse:
        lake_files = sorted((paths.lake / "symbols").glob("source=*/data.parquet"))
        return stream(
            request,
            lambda snap: symbols_page(
                snap, lake_symbol_files=lake_files, columns=split_list(columns)
            ),
            fmt,
            limit,
            cursor,
        )

    @app.get("/v1/coverage", tags=["data"], summary="Coverage per symbol and timeframe")
    def coverage(
        request: Request,
        key: Key,
        symbols: Annotated[list[str] | None, Query(description="symbols (a,b or repeated)")] = None,
        timeframe: str | None = None,
        columns: Columns = None,
        fmt: Fmt = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> StreamingResponse:
        return stream(
            request,
            lambda snap: coverage_page(
                snap, symbols=split_list(symbols), timeframe=timeframe, columns=split_list(columns)
            ),
            fmt,
            limit,
            cursor,
        )

    @app.get("/v1/bars/{symbol:path}", tags=["data"], summary="Bars of one symbol")
    def bars(
        request: Request,
        symbol: str,
        key: Key,
        timeframe: Annotated[str, Query(description=timeframe_help)] = "1d",
        start: Annotated[str | None, Query(description="first time (inclusive), ISO")] = None,
        end: Annotated[str | None, Query(description="last time (exclusive), ISO")] = None,
        adjustment: Annotated[
            str | None, Query(description="none (default), split, total or asof:YYYY-MM-DD")
        ] = None,
        as_of: Annotated[
            str | None, Query(description="point-in-time adjustment as seen on this date")
        ] = None,
        columns: Columns = None,
        fmt: Fmt = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> StreamingResponse:
        adj = parse_adjustment(adjustment, as_of)
        return stream(
            request,
            lambda snap: bars_page(
                snap,
                symbol,
                timeframe=timeframe,
                start=parse_time(start, "start"),
                end=parse_time(end, "end"),
                adjustment=adj,
                columns=split_list(columns),
            ),
            fmt,
            limit,
            cursor,
            {"adjustment": adj.label()},
        )

    @app.get("/v1/features/{name}/{version}", tags=["data"], summary="A versioned feature set")
    def features(
        request: Request,
        name: str,
        version: str,
        key: Key,
        symbols: Annotated[list[str] | None, Query(description="symbols (a,b or repeated)")] = None,
        start: str | None = None,
        end: str | None = None,
        columns: Columns = None,
        fmt: Fmt = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> StreamingResponse:
        return stream(
            request,
            lambda snap: features_page(
                snap,
                name,
                version,
                symbols=split_list(symbols),
                start=parse_time(start, "start"),
                end=parse_time(end, "end"),
                columns=split_list(columns),
            ),
            fmt,
            limit,
            cursor,
        )

    @app.post("/v1/sql", tags=["sql"], summary="One read-only SELECT over the marts (trusted)")
    def sql(
        request: Request,
        body: SqlRequest,
        key: Annotated[ApiKey, Depends(require_trusted)],
        fmt: Fmt = None,
    ) -> Response:
        f = negotiate(fmt, request.headers.get("accept"))
        cap = min(body.max_rows or config.sql.max_rows, config.sql.max_rows)
        limits = replace(config.sql, max_rows=cap)

        def run(snap: Snapshot):
            # the worker reads the marts of this one set (snapshots.py)
            return snap.marts_dir, workers.run(snap.marts_dir, body.sql, limits)

        set_dir, result = on_current_set(run)
        for name, why in result.ignored:
            log_ignored(set_dir, name, why)
        table = result.table

        def meta(kept: int) -> dict[str, object]:
            by = "bytes" if kept < table.num_rows else result.truncated_by
            return {
                "truncated": by is not None,
                "truncated_by": by,
                "row_cap": cap,
                "byte_cap": config.sql.max_bytes,
            }

        # the whole answer is at most max_bytes as sent, in whatever format
        content, kept = encode_capped(f, table, meta, config.sql.max_bytes)
        info = meta(kept)
        log.info(
            "sql by %s: %d rows%s",
            key.name,
            kept,
            f" (truncated by {info['truncated_by']})" if info["truncated"] else "",
        )
        headers = {"Cache-Control": "no-store", "X-Truncated": str(info["truncated"]).lower()}
        return Response(content, media_type=MEDIA_TYPES[f], headers=headers)

    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    app.state.sql_workers.close()  # idle SQL workers stop with the server


def _offline_docs(app: FastAPI) -> None:
    """Swagger UI at ``/docs`` from assets installed with the server (the fastapi-offline
    package ships them), not from a CDN: the page works on a machine without internet."""
    import importlib.resources

    assets = importlib.resources.files("fastapi_offline") / "static"
    app.mount("/docs/assets", StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs/assets/favicon.png",
        )
