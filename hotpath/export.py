"""Export a mart or any SQL query to a memory-mappable file (Arrow IPC or records64).

DuckDB runs the query and streams Arrow record batches; each batch is checked for (symbol, ts)
order and converted to null-free fixed-width columns. Marts are already sorted, so they are
streamed without ``ORDER BY`` and re-run sorted only if the check fails; ad-hoc SQL is always
sorted by DuckDB. The file is written beside its target, fsynced, validated by the reader,
renamed into place and recorded in the manifest's ``exports`` table.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import re
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.errors import InvalidInputError
from ingest.paths import DataPaths
from ingest.timeutil import TimeLike, to_datetime
from warehouse.layout import parquet_scan
from warehouse.marts import connect_marts

from .formats import (
    ARROW_FORMAT,
    ARROW_META_KEY,
    BOOL_FIELD_KEY,
    FLAG_BITS,
    LAYOUT_VERSION,
    PRICE_BASES,
    PRICE_FIELDS,
    R64_END_MAGIC,
    R64_FOOTER,
    R64_HEADER,
    R64_MAGIC,
    RECORD_DTYPE,
    RECORDS64_FORMAT,
)
from .marts import DataDir, mart_path

__all__ = ["FORMATS", "ExportResult", "export"]

log = logging.getLogger(__name__)

ExportFormat = Literal["arrow", "records64"]
FORMATS: dict[str, str] = {"arrow": ".arrow", "records64": ".records64"}
PriceBasis = Literal["raw", "split", "total"]

_BATCH_ROWS = 1 << 20
_NAT = np.iinfo(np.int64).min
#: the instants, in microseconds, that nanoseconds since the epoch can hold
_NS_MIN_US = -(2**63) // 1000 + 1
_NS_MAX_US = (2**63 - 1) // 1000


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    path: Path
    format: str
    rows: int
    bytes: int
    symbols: list[str]
    sha256: str | None
    seconds: float
    export_id: int | None = None
    missing_symbols: list[str] = field(default_factory=list)
    #: the bars' timeframe, for a source with a timeframe column (one per export)
    timeframe: str | None = None
    #: one line per thing the user should know (columns left out, ...)
    notes: list[str] = field(default_factory=list)


class _Unsorted(Exception):
    """The stream is not sorted by (symbol, ts): re-run the query with ORDER BY."""


# -- per-column conversion ---------------------------------------------------------------


@dataclass
class _Column:
    """How one output column is made from the query's Arrow column."""

    name: str
    kind: Literal["float", "int", "bool", "timestamp", "date", "text"]
    out_type: pa.DataType
    np_dtype: np.dtype
    values: dict[str | None, int] = field(default_factory=dict)  # text: value -> code

    def convert(self, arr: pa.Array) -> np.ndarray:
        """Return the batch column as a null-free numpy array of ``np_dtype``."""
        if self.kind == "float":
            if arr.type != self.out_type:
                arr = arr.cast(self.out_type)
            if arr.null_count:
                arr = pc.fill_null(arr, float("nan"))
            return arr.to_numpy(zero_copy_only=False)
        if self.kind == "int":
            if arr.null_count:
                raise InvalidInputError(
                    f"column {self.name!r} has nulls, which an integer view cannot hold: "
                    f"coalesce it or cast it to double in the query"
                )
            return arr.to_numpy(zero_copy_only=False)
        if self.kind == "bool":
            if arr.null_count:
                arr = pc.fill_null(arr, False)
            return arr.to_numpy(zero_copy_only=False).view(np.uint8)
        if self.kind == "timestamp":
            # beyond what nanoseconds hold (1677 to 2262; 9999-12-31 for "no end"): NaT
            us = arr.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
            fits = pc.and_(pc.greater_equal(us, _NS_MIN_US), pc.less_equal(us, _NS_MAX_US))
            arr = pc.if_else(fits, us, pa.scalar(None, pa.int64())).cast(
                pa.timestamp("us", tz="UTC")
            )
            arr = arr.cast(pa.timestamp("ns", tz="UTC"))
            if arr.null_count:
                arr = pc.fill_null(arr.cast(pa.int64()), _NAT)
            return arr.cast(pa.int64()).to_numpy(zero_copy_only=False)
        if self.kind == "date":
            if arr.null_count:
                raise InvalidInputError(f"date column {self.name!r} has nulls: coalesce it")
            return arr.cast(pa.int32()).to_numpy(zero_copy_only=False)
        # text: a global dictionary, codes in order of first appearance; a null is a code
        # too, whose dictionary value is null (the codes themselves are never null)
        enc = pc.dictionary_encode(arr.cast(pa.string()))
        local = enc.dictionary.to_pylist()
        codes = [self.values.setdefault(v, len(self.values)) for v in local]
        if arr.null_count:
            codes.append(self.values.setdefault(None, len(self.values)))  # type: ignore[arg-type]
        lookup = np.array(codes or [0], dtype=np.int32)
        idx = pc.fill_null(enc.indices, len(local)).to_numpy(zero_copy_only=False)
        return lookup[idx].astype(np.int32)


def _column_for(f: pa.Field) -> _Column:
    t = f.type
    if pa.types.is_floating(t):
        out = pa.float32() if t == pa.float32() else pa.float64()
        return _Column(f.name, "float", out, np.dtype(out.to_pandas_dtype()))
    if pa.types.is_decimal(t):
        return _Column(f.name, "float", pa.float64(), np.dtype(np.float64))
    if pa.types.is_integer(t):
        return _Column(f.name, "int", t, np.dtype(t.to_pandas_dtype()))
    if pa.types.is_boolean(t):
        return _Column(f.name, "bool", pa.uint8(), np.dtype(np.uint8))
    if pa.types.is_timestamp(t):
        return _Column(f.name, "timestamp", pa.timestamp("ns", tz="UTC"), np.dtype(np.int64))
    if pa.types.is_date32(t) or pa.types.is_date64(t):
        return _Column(f.name, "date", pa.date32(), np.dtype(np.int32))
    if (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_string_view(t)
        or pa.types.is_dictionary(t)
    ):
        return _Column(f.name, "text", pa.dictionary(pa.int32(), pa.string()), np.dtype(np.int32))
    raise InvalidInputError(
        f"column {f.name!r} has type {t}, which has no fixed-width view: cast it to a number, "
        "timestamp or text in the query, or leave it out with --columns"
    )


@dataclass
class _Batch:
    rows: int
    codes: np.ndarray  # int32 symbol codes
    ts: np.ndarray  # int64 ns since the epoch, UTC
    cols: dict[str, np.ndarray]


class _Converter:
    """Turns DuckDB's record batches into checked, null-free numpy columns."""

    def __init__(self, schema: pa.Schema) -> None:
        names = schema.names
        for required in ("symbol", "ts"):
            if required not in names:
                raise InvalidInputError(
                    f"the query yields no {required!r} column (it yields: {', '.join(names)}); "
                    "an export needs symbol (text) and ts (timestamp) columns"
                )
        sym_t, ts_t = schema.field("symbol").type, schema.field("ts").type
        text = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
        if not (any(t(sym_t) for t in text) or pa.types.is_dictionary(sym_t)):
            raise InvalidInputError(f"symbol must be text, not {sym_t}")
        if not pa.types.is_timestamp(ts_t):
            raise InvalidInputError(
                f"ts must be a timestamp (TIMESTAMPTZ, UTC), not {ts_t}: cast it in the query"
            )
        self.columns = [_column_for(f) for f in schema if f.name not in ("symbol", "ts")]
        self.symbols: list[str] = []
        self.counts: list[int] = []
        self.last_ts = _NAT

    def convert(self, batch: pa.RecordBatch) -> _Batch:
        sym = batch.column("symbol")
        ts_arr = batch.column("ts")
        if sym.null_count or ts_arr.null_count:
            raise InvalidInputError("symbol and ts must not be null in an export")
        enc = pc.dictionary_encode(sym.cast(pa.string()))
        local: list[str] = enc.dictionary.to_pylist()
        idx = enc.indices.to_numpy(zero_copy_only=False)
        ts = ts_arr.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
        ts = ts.to_numpy(zero_copy_only=False)
        n = len(idx)
        if n:
            # sorted <=> local symbols strictly increase, codes never decrease, and ts never
            # decreases within a symbol, across batch boundaries too
            if any(a >= b for a, b in itertools.pairwise(local)) or (
                self.symbols and local[0] < self.symbols[-1]
            ):
                raise _Unsorted
            if n > 1:
                same = idx[1:] == idx[:-1]
                if np.any(idx[1:] < idx[:-1]) or np.any((ts[1:] < ts[:-1]) & same):
                    raise _Unsorted
            continues = bool(self.symbols) and local[0] == self.symbols[-1]
            if continues and ts[0] < self.last_ts:
                raise _Unsorted
            offset = len(self.symbols) - (1 if continues else 0)
            counts = np.bincount(idx, minlength=len(local))
            if continues:
                self.counts[-1] += int(counts[0])
                self.symbols.extend(local[1:])
                self.counts.extend(int(c) for c in counts[1:])
            else:
                self.symbols.extend(local)
                self.counts.extend(int(c) for c in counts)
            self.last_ts = int(ts[-1])
            codes = (idx + offset).astype(np.int32)
        else:
            codes = np.empty(0, np.int32)
        cols = {c.name: c.convert(batch.column(c.name)) for c in self.columns}
        return _Batch(n, codes, ts, cols)

    def ranges(self) -> list[list[int]]:
        if not self.counts:
            return []
        stops = np.cumsum(self.counts, dtype=np.int64).tolist()
        starts = [0, *stops[:-1]]
        return [[a, b] for a, b in zip(starts, stops, strict=True)]


# -- the query ---------------------------------------------------------------------------


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class _Plan:
    query: str
    params: list[object]
    ordered: bool  # ORDER BY in the query (else: check order, re-run if unsorted)

    def sorted(self) -> _Plan:
        return _Plan(f"select * from ({self.query}) as q order by symbol, ts", self.params, True)


def _connect(paths: DataPaths) -> duckdb.DuckDBPyConnection:
    """Every mart of one published set as a view (``--sql`` may name any of them)."""
    return connect_marts(paths)


#: columns that name a mart's series, in order of preference: the export's ``symbol``
ENTITY_COLUMNS = ("symbol", "pair_id", "model_name", "split_id", "run_id")
#: columns that give a mart's rows their time, in order of preference: the export's ``ts``
TIME_COLUMNS = (
    "ts",
    "test_ts",
    "valid_from_at",
    "ex_date",
    "gap_start_at",
    "first_ts",
    "built_at",
    "window_end_ts",
    "train_start_ts",
)


def _keyed(
    con: duckdb.DuckDBPyConnection, base: str, schema: pa.Schema, notes: list[str] | None
) -> tuple[str, pa.Schema]:
    """``base`` with the export's key columns: ``symbol`` (text) and ``ts`` (UTC). A mart
    keyed otherwise (a pair_id, an ex_date) gets them as copies of its own key columns; one
    with no time column gets ts = 1970-01-01 on every row (indexed by series only)."""
    names = schema.names
    entity = next((c for c in ENTITY_COLUMNS if c in names), None)
    if entity is None:
        raise InvalidInputError(
            f"the query yields no column naming a series ({', '.join(ENTITY_COLUMNS)}); it "
            f"yields: {', '.join(names)}. Alias one as symbol in --sql"
        )
    time = next((c for c in TIME_COLUMNS if c in names), None)
    if entity == "symbol" and time == "ts":
        return base, schema
    keys = []
    if entity != "symbol":
        keys.append(f"cast({_ident(entity)} as varchar) as symbol")
    if time is None:
        keys.append("timestamptz '1970-01-01 00:00:00+00' as ts")
        if notes is not None:
            notes.append("the rows have no time column: ts is 1970-01-01 on every row")
    elif time != "ts":
        keys.append(f"cast({_ident(time)} as timestamptz) as ts")
    replaced = [c for c in ("symbol", "ts") if c in names and c not in (entity, time)]
    exclude = f" exclude ({', '.join(_ident(c) for c in replaced)})" if replaced else ""
    if notes is not None and (entity != "symbol" or time not in (None, "ts")):
        notes.append(f"indexed by {entity} as symbol and {time or 'nothing'} as ts")
    keyed = f"select {', '.join(keys)}, *{exclude} from ({base}) as keyed_source"
    return keyed, con.execute(f"select * from ({keyed}) as q limit 0").to_arrow_reader().schema


def _every_column(
    con: duckdb.DuckDBPyConnection, base: str, schema: pa.Schema, notes: list[str] | None
) -> list[str]:
    """The select list of an arrow export of every column: columns with no fixed-width view
    left out, integer columns holding nulls as doubles (NaN), each with a note."""
    kept: list[str] = []
    ints: list[str] = []
    dates: set[str] = set()
    for f in schema:
        if f.name in ("symbol", "ts"):
            continue
        try:
            col = _column_for(f)
        except InvalidInputError:
            if notes is not None:
                notes.append(
                    f"left out column {f.name!r} ({f.type}): it has no fixed-width view; "
                    "cast it in --sql to keep it"
                )
            continue
        kept.append(f.name)
        if col.kind in ("int", "date"):
            ints.append(f.name)
        if col.kind == "date":
            dates.add(f.name)
    with_nulls: set[str] = set()
    if ints:
        counts = con.execute(
            "select "
            + ", ".join(f"count(*) - count({_ident(c)})" for c in ints)
            + f" from ({base}) as q"
        ).fetchone()
        with_nulls = {c for c, n in zip(ints, counts or (), strict=True) if n}
    out = []
    for c in kept:
        if c in with_nulls and c in dates:
            out.append(f"cast({_ident(c)} as timestamptz) as {_ident(c)}")
            if notes is not None:
                notes.append(f"column {c!r} holds nulls: exported as timestamps, NaT for null")
        elif c in with_nulls:
            out.append(f"cast({_ident(c)} as double) as {_ident(c)}")
            if notes is not None:
                notes.append(f"column {c!r} holds nulls: exported as double with NaN for null")
        else:
            out.append(_ident(c))
    return out


def _plan(
    con: duckdb.DuckDBPyConnection,
    base: str,
    *,
    is_mart: bool,
    fmt: str,
    columns: Sequence[str] | None,
    prices: str | None,
    symbols: list[str] | None,
    start: TimeLike | None,
    end: TimeLike | None,
    timeframe: str | None = None,
    notes: list[str] | None = None,
) -> tuple[_Plan, str | None, str | None]:
    """The query of an export, the records64 price basis, and the timeframe of its rows."""
    try:
        schema = con.execute(f"select * from ({base}) as q limit 0").to_arrow_reader().schema
    except duckdb.Error as e:
        raise InvalidInputError(f"the export query failed: {e}") from None
    if is_mart:
        base, schema = _keyed(con, base, schema, notes)
    names = schema.names
    for required in ("symbol", "ts"):
        if required not in names:
            raise InvalidInputError(
                f"the query yields no {required!r} column (it yields: {', '.join(names)}); "
                "an export needs symbol (text) and ts (timestamp) columns"
            )
    basis: str | None = None
    if fmt == "records64":
        if columns is not None:
            raise InvalidInputError("--columns applies to arrow exports; records64 is fixed")
        if prices is None:
            basis = next((b for b in ("total", "raw") if set(PRICE_BASES[b]) <= set(names)), None)
            if basis is None:
                raise InvalidInputError(
                    "records64 needs open, high, low, close, volume columns (raw) or their "
                    "_adj (total) or _split_adj (split) forms; the query yields: "
                    + ", ".join(names)
                )
        else:
            if prices not in PRICE_BASES:
                raise InvalidInputError(f"--prices must be one of {', '.join(PRICE_BASES)}")
            basis = prices
            missing = [c for c in PRICE_BASES[basis] if c not in names]
            if missing:
                raise InvalidInputError(
                    f"--prices {basis} needs column(s) {', '.join(missing)}, which the query "
                    "does not yield"
                )
        flags = [
            f"(case when {_ident(c)} then {bit} else 0 end)"
            for c, bit in FLAG_BITS.items()
            if c in names
        ]
        select = ["symbol", "ts"]
        select += [
            f"cast({_ident(src)} as double) as {dst}"
            for src, dst in zip(PRICE_BASES[basis], PRICE_FIELDS, strict=True)
        ]
        select.append(f"cast({' + '.join(flags) or '0'} as integer) as flags")
    else:
        if prices is not None:
            raise InvalidInputError("--prices applies to records64; use --columns for arrow")
        if columns is None:
            select = ["symbol", "ts", *_every_column(con, base, schema, notes)]
        else:
            unknown = [c for c in columns if c not in names]
            if unknown:
                raise InvalidInputError(
                    f"unknown column(s) {', '.join(unknown)}; the query yields: " + ", ".join(names)
                )
            select = ["symbol", "ts"] + [_ident(c) for c in columns if c not in ("symbol", "ts")]
    where: list[str] = ["symbol is not null", "ts is not null"]
    params: list[object] = []
    if symbols is not None:
        if not symbols:
            raise InvalidInputError("--symbols was given with no symbol")
        where.append(f"symbol in ({', '.join('?' * len(symbols))})")
        params.extend(symbols)
    lo = to_datetime(start, "start") if start is not None else None
    hi = to_datetime(end, "end") if end is not None else None
    if lo is not None and hi is not None and lo >= hi:
        raise InvalidInputError(
            f"--start ({lo:%Y-%m-%d %H:%M}) must be before --end ({hi:%Y-%m-%d %H:%M})"
        )
    if lo is not None:
        where.append("ts >= ?")
        params.append(lo)
    if hi is not None:
        where.append("ts < ?")
        params.append(hi)
    asked = timeframe
    timeframe = _one_timeframe(con, base, names, where, params, timeframe)
    if asked is not None:
        where.append("timeframe = ?")
        params.append(timeframe)
    query = f"select {', '.join(select)} from ({base}) as q"
    if where:
        query += " where " + " and ".join(where)
    plan = _Plan(query, params, ordered=False)
    return (plan if is_mart else plan.sorted()), basis, timeframe


def _one_timeframe(
    con: duckdb.DuckDBPyConnection,
    base: str,
    names: list[str],
    where: list[str],
    params: list[object],
    timeframe: str | None,
) -> str | None:
    """The one timeframe an export of bars holds: the one asked for, or the only one in the
    selection (rows with no timeframe, such as a corporate action's, are not bars and do
    not count). Two timeframes never share an export (its index is by symbol and time)."""
    if "timeframe" not in names:
        if timeframe is not None:
            raise InvalidInputError(
                f"--timeframe {timeframe}: the source has no timeframe column (its columns: "
                f"{', '.join(names)})"
            )
        return None
    clause = " where " + " and ".join([*where, "timeframe is not null"])
    try:
        held = [
            r[0]
            for r in con.execute(
                f"select distinct timeframe from ({base}) as q{clause} order by 1", params
            ).fetchall()
        ]
    except duckdb.Error as e:
        raise InvalidInputError(f"the export query failed: {e}") from None
    if timeframe is not None:
        if held and timeframe not in held:  # (no rows at all: "nothing to export" later)
            raise InvalidInputError(
                f"no {timeframe} bars in the selection; it holds "
                f"{', '.join(map(str, held)) or 'no rows'}"
            )
        return timeframe
    if len(held) > 1:
        raise InvalidInputError(
            f"the selection holds bars of {len(held)} timeframes ({', '.join(map(str, held))}); "
            "an export holds one: choose it with --timeframe (timeframe= from Python)"
        )
    return held[0] if held else None


def _stream(
    con: duckdb.DuckDBPyConnection, plan: _Plan, batch_rows: int
) -> tuple[_Converter, Iterator[_Batch]]:
    try:
        reader = con.execute(plan.query, plan.params).to_arrow_reader(batch_rows)
    except duckdb.Error as e:
        raise InvalidInputError(f"the export query failed: {e}") from None
    conv = _Converter(reader.schema)

    def batches() -> Iterator[_Batch]:
        try:
            for batch in reader:
                yield conv.convert(batch)
        except duckdb.Error as e:
            raise InvalidInputError(f"the export query failed: {e}") from None

    return conv, batches()


# -- writers -----------------------------------------------------------------------------


def _meta(conv: _Converter, fmt: str, rows: int, source: dict[str, object]) -> dict[str, object]:
    return {
        "format": fmt,
        "layout_version": LAYOUT_VERSION,
        "rows": rows,
        "sort_key": ["symbol", "ts"],
        "symbols": conv.symbols,
        "ranges": conv.ranges(),
        "created_at": datetime.now(UTC).isoformat(),
        **source,
    }


def _concat(pieces: list[np.ndarray], rows: int, dtype: np.dtype) -> np.ndarray:
    """One contiguous array from ``pieces``, releasing each piece as soon as it is copied."""
    if len(pieces) == 1 and pieces[0].dtype == dtype and pieces[0].flags.c_contiguous:
        return pieces.pop()
    out = np.empty(rows, dtype)
    pos = 0
    while pieces:
        p = pieces.pop(0)
        out[pos : pos + len(p)] = p
        pos += len(p)
    return out


def _write_arrow(
    tmp: Path, conv: _Converter, batches: Iterable[_Batch], source: dict[str, object]
) -> int:
    codes: list[np.ndarray] = []
    ts: list[np.ndarray] = []
    cols: dict[str, list[np.ndarray]] = {c.name: [] for c in conv.columns}
    rows = 0
    for b in batches:
        rows += b.rows
        codes.append(b.codes)
        ts.append(b.ts)
        for name, arr in b.cols.items():
            cols[name].append(arr)
    fields = [
        pa.field("symbol", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("ts", pa.timestamp("ns", tz="UTC"), nullable=False),
    ]
    crc: dict[str, int] = {}
    code_arr = _concat(codes, rows, np.dtype(np.int32))
    ts_arr = _concat(ts, rows, np.dtype(np.int64))
    crc["symbol"], crc["ts"] = zlib.crc32(code_arr), zlib.crc32(ts_arr)
    arrays: list[pa.Array] = [
        pa.DictionaryArray.from_arrays(
            pa.Array.from_buffers(pa.int32(), rows, [None, pa.py_buffer(code_arr)]),
            pa.array(conv.symbols, pa.string()),
        ),
        pa.Array.from_buffers(fields[1].type, rows, [None, pa.py_buffer(ts_arr)]),
    ]
    for c in conv.columns:
        data = _concat(cols.pop(c.name), rows, c.np_dtype)
        crc[c.name] = zlib.crc32(data)
        meta = {BOOL_FIELD_KEY: b"bool"} if c.kind == "bool" else None
        fields.append(pa.field(c.name, c.out_type, nullable=False, metadata=meta))
        if c.kind == "text":
            values = sorted(c.values, key=c.values.__getitem__)
            arrays.append(
                pa.DictionaryArray.from_arrays(
                    pa.Array.from_buffers(pa.int32(), rows, [None, pa.py_buffer(data)]),
                    pa.array(values, pa.string()),
                )
            )
        else:
            arrays.append(pa.Array.from_buffers(c.out_type, rows, [None, pa.py_buffer(data)]))
    meta = _meta(conv, ARROW_FORMAT, rows, source)
    meta["crc32"] = crc
    schema = pa.schema(fields, metadata={ARROW_META_KEY: json.dumps(meta).encode()})
    batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
    options = pa.ipc.IpcWriteOptions(compression=None)
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema, options=options) as w:
        w.write_batch(batch)
    return rows


def _write_records64(
    tmp: Path,
    conv: _Converter,
    batches: Iterable[_Batch],
    source: dict[str, object],
    batch_rows: int,
) -> int:
    buf = np.zeros(batch_rows, RECORD_DTYPE)  # padding stays zero
    rows = 0
    crc = 0
    with open(tmp, "wb") as f:
        f.write(bytes(R64_HEADER.size))
        for b in batches:
            if b.rows > len(buf):
                buf = np.zeros(b.rows, RECORD_DTYPE)
            rec = buf[: b.rows]
            rec["ts"] = b.ts
            rec["symbol_id"] = b.codes
            for name in (*PRICE_FIELDS, "flags"):
                rec[name] = b.cols[name]
            raw = rec.view(np.uint8)
            crc = zlib.crc32(raw, crc)
            f.write(raw)
            rows += b.rows
        meta = _meta(conv, RECORDS64_FORMAT, rows, source)
        meta.update(
            byte_order="little",
            record_size=RECORD_DTYPE.itemsize,
            fields=[
                {"name": n, "offset": RECORD_DTYPE.fields[n][1], "type": RECORD_DTYPE[n].str}
                for n in RECORD_DTYPE.names
            ],
            flag_bits=FLAG_BITS,
            crc32={"records": crc},
        )
        blob = json.dumps(meta).encode()
        f.write(blob)
        f.write(R64_FOOTER.pack(len(blob), R64_END_MAGIC))
        meta_offset = R64_HEADER.size + rows * RECORD_DTYPE.itemsize
        f.seek(0)
        f.write(
            R64_HEADER.pack(
                R64_MAGIC,
                LAYOUT_VERSION,
                RECORD_DTYPE.itemsize,
                rows,
                R64_HEADER.size,
                meta_offset,
                len(blob),
            )
        )
    return rows


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _record_in_manifest(paths: DataPaths, **kw: object) -> int | None:
    """Best effort: an export never fails because the manifest cannot record it."""
    try:
        from ingest.manifest import Manifest
    except ImportError:
        log.warning("ingest.manifest is not available; export not recorded")
        return None
    try:
        with Manifest(paths.manifest) as m:
            return m.record_export(**kw)  # type: ignore[arg-type]
    except Exception as e:  # the export itself succeeded
        log.warning("could not record the export in %s: %s", paths.manifest, e)
        return None


def _default_name(mart: str | None, sql: str | None, fmt: str, timeframe: str | None) -> str:
    stem = mart or "query_" + hashlib.sha1((sql or "").encode()).hexdigest()[:10]
    if timeframe is not None:
        stem += f".{timeframe}"
    return stem + FORMATS[fmt]


#: an export's temporary file: .<name>.<pid>.<8 hex>.tmp, beside its target
_TMP_RE = re.compile(r"^\..+\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def sweep_temporary(directory: Path) -> int:
    """Remove the temporary files of exports whose process is gone (killed mid-write);
    a live process's file is left alone. Returns how many were removed."""
    removed = 0
    try:
        entries = list(directory.iterdir())
    except OSError:
        return 0
    for p in entries:
        m = _TMP_RE.match(p.name)
        if not m or _alive(int(m.group("pid"))):
            continue
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed += 1
            log.info("removed %s, left by an export that did not finish", p.name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def export(
    mart: str | None = None,
    *,
    sql: str | None = None,
    out: str | os.PathLike[str] | None = None,
    format: ExportFormat = "arrow",
    symbols: Iterable[str] | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    columns: Sequence[str] | None = None,
    prices: PriceBasis | None = None,
    timeframe: str | None = None,
    data_dir: DataDir = None,
    checksum: bool = True,
    record: bool = True,
    batch_rows: int = _BATCH_ROWS,
) -> ExportResult:
    """Export mart ``mart`` (or the result of ``sql``) to one memory-mappable file.

    ``sql`` may name any mart as a table (each ``<data>/marts/<name>.parquet`` is a view) and
    must yield ``symbol`` and ``ts`` columns. ``symbols`` filters, ``start`` is inclusive and
    ``end`` exclusive. ``format="arrow"`` keeps every column (or ``columns``);
    ``format="records64"`` keeps ts, OHLCV on the ``prices`` basis (``raw``, ``split`` or
    ``total``; default total when the mart has it) and flags. A source with a
    ``timeframe`` column (``bars_adjusted`` holds 1d and 1m bars) is exported one timeframe
    at a time: ``timeframe`` picks it, and is needed when the selection holds several.
    Columns with no fixed-width view (lists, structs) are left out of an arrow export of
    every column, with a note. ``out`` defaults to ``<data>/export/<mart>[.<timeframe>].
    <format>``; a directory gets that default name. The result is recorded in the manifest
    (with its SHA-256 unless ``checksum=False``).
    """
    t0 = time.perf_counter()
    if (mart is None) == (sql is None):
        raise InvalidInputError("export needs exactly one of a mart name or --sql QUERY")
    if format not in FORMATS:
        raise InvalidInputError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
    paths = data_dir if isinstance(data_dir, DataPaths) else DataPaths.from_arg(data_dir)
    sym_list = None
    if symbols is not None:
        sym_list = [symbols] if isinstance(symbols, str) else list(dict.fromkeys(symbols))
    if mart is not None:
        base = f"select * from {parquet_scan(mart_path(mart, paths))}"
    else:
        base = (sql or "").strip().rstrip(";")
        if not base:
            raise InvalidInputError("--sql was given an empty query")

    target = Path(out) if out is not None else paths.export
    if out is None or target.is_dir():
        target = target / _default_name(mart, sql, format, timeframe)
    target = target.expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_temporary(target.parent)
    tmp = target.parent / f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"

    con = _connect(paths)
    notes: list[str] = []
    try:
        plan, basis, timeframe = _plan(
            con,
            base,
            is_mart=mart is not None,
            fmt=format,
            columns=columns,
            prices=prices,
            symbols=sym_list,
            start=start,
            end=end,
            timeframe=timeframe,
            notes=notes,
        )
        source: dict[str, object] = {"mart": mart, "sql": sql}
        if basis is not None:
            source["prices"] = basis
        if timeframe is not None:
            source["timeframe"] = timeframe
        try:
            conv, rows = _write(con, plan, tmp, format, source, batch_rows)
        except _Unsorted:
            log.info("source is not sorted by (symbol, ts); sorting it in DuckDB")
            conv, rows = _write(con, plan.sorted(), tmp, format, source, batch_rows)
        if rows == 0:
            raise InvalidInputError(_empty_selection(mart, sym_list, start, end))
        _fsync(tmp)
        from .reader import open_export  # validate what was written before it goes live

        open_export(tmp).close()
        digest = None
        if checksum:
            with open(tmp, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        size = tmp.stat().st_size
        os.replace(tmp, target)
        _fsync(target.parent, directory=True)
    finally:
        con.close()
        tmp.unlink(missing_ok=True)
    export_id = None
    if record:
        export_id = _record_in_manifest(
            paths,
            path=str(target),
            mart=mart,
            sql=sql,
            format=format,
            rows=rows,
            bytes=size,
            sha256=digest,
        )
    missing = [s for s in sym_list or [] if s not in set(conv.symbols)]
    return ExportResult(
        path=target,
        format=format,
        rows=rows,
        bytes=size,
        symbols=list(conv.symbols),
        sha256=digest,
        seconds=time.perf_counter() - t0,
        export_id=export_id,
        missing_symbols=missing,
        timeframe=timeframe,
        notes=notes,
    )


def _empty_selection(
    mart: str | None, symbols: list[str] | None, start: TimeLike | None, end: TimeLike | None
) -> str:
    what = f"mart {mart!r}" if mart else "the query"
    parts = []
    if symbols:
        parts.append(f"symbols {' '.join(symbols)}")
    if start is not None or end is not None:
        parts.append(f"from {start or 'the start'} to {end or 'the end'}")
    selection = f" for {', '.join(parts)}" if parts else ""
    return f"nothing to export: {what} has no rows{selection}"


def _write(
    con: duckdb.DuckDBPyConnection,
    plan: _Plan,
    tmp: Path,
    fmt: str,
    source: dict[str, object],
    batch_rows: int,
) -> tuple[_Converter, int]:
    conv, batches = _stream(con, plan, batch_rows)
    if fmt == "arrow":
        rows = _write_arrow(tmp, conv, batches, source)
    else:
        rows = _write_records64(tmp, conv, batches, source, batch_rows)
    return conv, rows
