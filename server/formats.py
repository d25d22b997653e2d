"""Response formats of the data server: JSON, CSV, Parquet and Arrow IPC, written batch by
batch so a large result streams instead of being built in memory."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ingest.errors import InvalidInputError

__all__ = ["FORMATS", "MEDIA_TYPES", "NotAcceptableError", "encode", "encode_capped", "negotiate"]

MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
}
FORMATS = tuple(MEDIA_TYPES)
_ACCEPT = {
    "application/json": "json",
    "text/json": "json",
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/parquet": "parquet",
    "application/vnd.apache.arrow.stream": "arrow",
    "application/vnd.apache.arrow": "arrow",
    "application/x-arrow": "arrow",
}


#: what polars raises when it meets a case it does not handle (not an Exception)
_PANIC = getattr(pl.exceptions, "PanicException", ValueError)


class NotAcceptableError(InvalidInputError):
    """No format the client accepts, or an answer the format cannot hold (HTTP 406)."""


def negotiate(fmt: str | None, accept: str | None) -> str:
    """The response format: ``fmt`` (a query parameter) wins, else the best of ``Accept``."""
    if fmt:
        f = fmt.strip().lower()
        if f in ("ipc", "arrows", "feather"):
            f = "arrow"
        if f not in MEDIA_TYPES:
            raise InvalidInputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        return f
    if not accept:
        return "json"
    offers: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        media = media.lower()
        if q <= 0:
            continue
        if media in ("*/*", "application/*"):
            offers.append((q, i, "json"))
        elif media in _ACCEPT:
            offers.append((q, i, _ACCEPT[media]))
    if not offers:
        raise NotAcceptableError(
            f"none of the media types in Accept ({accept[:200]}) is served; use one of "
            + ", ".join(MEDIA_TYPES.values())
            + " or the format parameter"
        )
    offers.sort(key=lambda o: (-o[0], o[1]))
    return offers[0][2]


class _Drain(io.RawIOBase):
    """A write-only sink whose bytes are taken out after each batch; ``tell`` keeps counting
    (Parquet records absolute offsets in its footer)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        data = bytes(b)
        self._chunks.append(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def take(self) -> bytes:
        data, self._chunks = b"".join(self._chunks), []
        return data


def _json_value(v: object) -> object:
    if isinstance(v, datetime | date | time):
        return v.isoformat()
    if isinstance(v, timedelta):
        return v.total_seconds()
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, bytes):
        return v.hex()
    raise TypeError(f"cannot encode {type(v).__name__} as JSON")


def _nan_to_null(batch: pa.RecordBatch) -> pa.RecordBatch:
    cols = []
    for col in batch.columns:
        if pa.types.is_floating(col.type) and col.null_count < len(col):
            nan = pc.is_nan(col)
            if pc.any(nan).as_py():
                col = pc.if_else(nan, pa.scalar(None, col.type), col)
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, schema=batch.schema)


def _dumps(obj: object) -> str:
    return json.dumps(obj, default=_json_value, separators=(",", ":"), allow_nan=False)


def _iso_strings(col: pa.Array) -> pa.Array:
    tz = col.type.tz
    suffix = "Z" if tz in ("UTC", "Etc/UTC", "+00:00", "utc") else ("%z" if tz else "")
    return pc.strftime(col, format="%Y-%m-%dT%H:%M:%S" + suffix)


def _rows_json(batch: pa.RecordBatch) -> bytes:
    """``{...},{...}`` for the rows of ``batch``: polars (Rust) writes them, NaN as null and
    times as ISO 8601; the standard library takes any type polars refuses."""
    try:
        cols = [_iso_strings(c) if pa.types.is_timestamp(c.type) else c for c in batch.columns]
        text = pl.from_arrow(pa.RecordBatch.from_arrays(cols, names=batch.schema.names))
        return text.write_json().encode()[1:-1]  # type: ignore[union-attr]
    except (pl.exceptions.PolarsError, pa.ArrowException, TypeError, ValueError, _PANIC):
        # polars panics (a BaseException) on types it cannot write yet, e.g. binary
        rows = _nan_to_null(batch).to_pylist()
        return ",".join(_dumps(r) for r in rows).encode()


def _encode_json(
    schema: pa.Schema, batches: Iterable[pa.RecordBatch], meta: dict[str, object]
) -> Iterator[bytes]:
    yield b'{"columns":' + _dumps([f.name for f in schema]).encode() + b',"data":['
    n = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        yield (b"," if n else b"") + _rows_json(batch)
        n += batch.num_rows
    tail = {"count": n, **{k: _safe_float(v) for k, v in meta.items()}}
    yield b"]," + _dumps(tail)[1:].encode()


def _safe_float(v: object) -> object:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _encode_with(
    writer_factory, batches: Iterable[pa.RecordBatch], sink: _Drain
) -> Iterator[bytes]:
    writer = writer_factory(sink)
    try:
        head = sink.take()
        if head:
            yield head
        for batch in batches:
            if batch.num_rows:
                writer.write_batch(batch)
                chunk = sink.take()
                if chunk:
                    yield chunk
    finally:
        writer.close()
    tail = sink.take()
    if tail:
        yield tail


def encode(
    fmt: str,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    meta: dict[str, object] | None = None,
) -> Iterator[bytes]:
    """Bytes of ``batches`` in ``fmt``; ``meta`` (e.g. next_cursor) goes into JSON bodies."""
    meta = meta or {}
    if fmt == "json":
        return _encode_json(schema, batches, meta)
    sink = _Drain()
    if fmt == "arrow":
        return _encode_with(lambda s: ipc.new_stream(s, schema), batches, sink)
    if fmt == "csv":
        return _encode_with(lambda s: pacsv.CSVWriter(s, schema), batches, sink)
    if fmt == "parquet":
        return _encode_with(
            lambda s: pq.ParquetWriter(s, schema, compression="zstd"), batches, sink
        )
    raise InvalidInputError(f"unknown format {fmt!r}")


def encode_capped(
    fmt: str,
    table: pa.Table,
    meta: Callable[[int], dict[str, object]],
    max_bytes: int,
) -> tuple[bytes, int]:
    """The whole body of ``table`` in ``fmt``, at most ``max_bytes`` long: rows are cut
    from the end until it fits. ``meta(rows_kept)`` gives the JSON body's metadata (it
    says whether rows were cut). Returns the body and the number of rows in it."""
    rows = table.num_rows
    while True:
        kept = table.slice(0, rows)
        try:
            body = b"".join(encode(fmt, table.schema, kept.to_batches(), meta(rows)))
        except (pa.ArrowException, TypeError, ValueError, OverflowError, _PANIC):
            types = ", ".join(f"{f.name} ({f.type})" for f in table.schema)[:300]
            raise NotAcceptableError(
                f"the answer cannot be written as {fmt}: its columns are {types}; ask for "
                "format=arrow (every type) or cast the column to varchar in the query"
            ) from None
        if len(body) <= max_bytes or rows == 0:
            return body, rows
        # shrink in proportion, a little more, so a couple of rounds suffice
        rows = min(rows - 1, int(rows * max_bytes / len(body) * 0.95))
