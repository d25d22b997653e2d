"""The data server's read queries: bars (raw, split, total-return or point-in-time adjusted),
features, coverage and symbols, each a parameterised DuckDB query over Parquet files with
keyset (cursor) pagination.

User input reaches SQL only as bound parameters; identifiers (column names) are accepted
only when they are columns of the file being read, and are quoted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.errors import InvalidInputError
from ingest.schema import validate_symbol
from ingest.timeframes import TIMEFRAMES, normalize_timeframe
from warehouse.layout import mart_location

from .snapshots import MartNotFoundError, Snapshot

__all__ = [
    "Adjustment",
    "MartShapeError",
    "Page",
    "PageResult",
    "bars_page",
    "coverage_page",
    "features_page",
    "parse_adjustment",
    "parse_time",
    "run_page",
    "symbols_page",
]

BARS_MART = "bars_adjusted"
#: bars resampled from 1m (5m ... 1w); served where bars_adjusted has no such timeframe
RESAMPLED_MART = "bars_resampled"
FACTORS_MART = "adjustment_factors"
COVERAGE_MART = "coverage_summary"
SYMBOLS_MART = "symbols"
FACTOR_COLUMNS = ("symbol", "valid_from_at", "valid_to_at", "known_from", "known_to")
FACTOR_COLUMNS += ("split_factor", "dividend_factor")
PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
DEFAULT_BAR_COLUMNS = ("symbol", "timeframe", "ts", *PRICE_COLUMNS)
MAX_SYMBOLS = 1000
_FEATURE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_FEATURE_VERSION = re.compile(r"^v?([0-9]{1,6})$")


class MartShapeError(InvalidInputError):
    """A mart lacks the columns a request needs (HTTP 409: rebuild or ask differently)."""


class UnknownSymbolError(InvalidInputError):
    """No rows at all for the symbol (HTTP 404)."""


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- parameters ------------------------------------------------------------------------
def parse_time(value: str | None, name: str) -> datetime | None:
    """An ISO date or datetime; naive values are UTC. A clear error names the parameter."""
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        ts = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        raise InvalidInputError(
            f"{name}={value[:40]!r} is not a date or time; use ISO 8601, "
            "e.g. 2024-01-31 or 2024-01-31T14:30:00Z"
        ) from None
    try:
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-05:00 is in year 10000 in UTC
        raise InvalidInputError(
            f"{name}={value[:40]!r} is outside the years 0001-9999 once converted to UTC"
        ) from None


def parse_date(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInputError(
            f"{name}={value[:40]!r} is not a date; use YYYY-MM-DD, e.g. 2024-01-31"
        ) from None


def split_list(value: str | Sequence[str] | None) -> list[str]:
    """``a,b`` or repeated parameters, as one list without empty items or duplicates."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        for part in item.split(","):
            p = part.strip()
            if p and p not in out:
                out.append(p)
    return out


@dataclass(frozen=True)
class Adjustment:
    kind: str  # none | split | total | asof
    as_of: date | None = None

    def label(self) -> str:
        return f"asof:{self.as_of.isoformat()}" if self.as_of else self.kind


def parse_adjustment(adjustment: str | None, as_of: str | None) -> Adjustment:
    """``none`` (default), ``split``, ``total``, ``asof:<date>``; or ``as_of=<date>`` alone."""
    a = (adjustment or "").strip().lower()
    if a.startswith(("asof:", "as_of:", "as-of:")):
        when = a.split(":", 1)[1]
        if as_of and parse_date(as_of, "as_of") != parse_date(when, "adjustment"):
            raise InvalidInputError("adjustment=asof:<date> and as_of=<date> disagree; pass one")
        return Adjustment("asof", parse_date(when, "adjustment"))
    if a in ("asof", "as_of", "as-of", "pit"):
        if not as_of:
            raise InvalidInputError("adjustment=asof needs a date: asof:2024-01-31 or as_of=...")
        return Adjustment("asof", parse_date(as_of, "as_of"))
    if as_of:
        if a not in ("", "asof"):
            raise InvalidInputError(
                f"as_of applies to point-in-time adjustment only, not adjustment={a}; "
                "drop one of the two"
            )
        return Adjustment("asof", parse_date(as_of, "as_of"))
    aliases = {"": "none", "raw": "none", "none": "none", "split": "split", "total": "total"}
    aliases |= {"adjusted": "total", "total_return": "total", "tr": "total"}
    if a not in aliases:
        raise InvalidInputError(
            f"unknown adjustment {adjustment!r}; use none, split, total or asof:YYYY-MM-DD"
        )
    return Adjustment(aliases[a])


# -- cursors -----------------------------------------------------------------------------
def _enc_value(v: object) -> object:
    if isinstance(v, datetime):
        return {"t": v.astimezone(UTC).isoformat()}
    if isinstance(v, date):
        return {"d": v.isoformat()}
    if v is None or isinstance(v, str | int | float | bool):
        return v
    return str(v)


def _dec_value(v: object) -> object:
    if isinstance(v, dict) and len(v) == 1:
        ((k, text),) = v.items()
        if k == "t" and isinstance(text, str):
            ts = datetime.fromisoformat(text)
            if ts.tzinfo is None:
                raise ValueError("naive time in cursor")
            return ts
        if k == "d" and isinstance(text, str):
            return date.fromisoformat(text)
        raise ValueError("bad cursor value")
    if v is None or isinstance(v, str | int | float | bool):
        return v
    raise ValueError("bad cursor value")


def encode_cursor(values: Sequence[object], fingerprint: str) -> str:
    doc = {"k": [_enc_value(v) for v in values], "q": fingerprint}
    raw = json.dumps(doc, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class InvalidCursorError(InvalidInputError):
    """A cursor this server did not write for these parameters (HTTP 400)."""


def _bad_cursor() -> InvalidCursorError:
    return InvalidCursorError(
        "invalid cursor: pass the next_cursor of the previous page unchanged, "
        "with the same parameters"
    )


def decode_cursor(
    cursor: str, fingerprint: str, n_keys: int, key_types: Sequence[pa.DataType] | None = None
) -> list[object]:
    """The key values in ``cursor``. With ``key_types`` (the page's key columns), each
    value must be of its column's type and in its range: an edited cursor is refused here
    rather than failing in DuckDB."""
    if len(cursor) > 2000:
        raise _bad_cursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        doc = json.loads(raw)
        if not isinstance(doc, dict) or not isinstance(doc.get("k"), list):
            raise ValueError("not a cursor")
        values = [_dec_value(v) for v in doc["k"]]
        same_query = doc.get("q") == fingerprint
    except (ValueError, KeyError, TypeError, RecursionError):
        raise _bad_cursor() from None
    if not same_query or len(values) != n_keys:
        raise _bad_cursor()
    if key_types is not None:
        for value, typ in zip(values, key_types, strict=True):
            if not _fits(value, typ):
                raise _bad_cursor()
    return values


def _fits(value: object, typ: pa.DataType) -> bool:
    """``value`` (as a cursor decodes it) can stand for a value of a column of ``typ``."""
    if value is None:
        return True
    if pa.types.is_timestamp(typ):
        # cursors hold times in UTC; another offset could leave the years DuckDB converts
        return isinstance(value, datetime) and value.utcoffset() == timedelta(0)
    if pa.types.is_date(typ):
        return isinstance(value, date) and not isinstance(value, datetime)
    if pa.types.is_boolean(typ):
        return isinstance(value, bool)
    if pa.types.is_integer(typ):
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        bits = typ.bit_width
        low, high = (
            (0, 2**bits - 1)
            if pa.types.is_unsigned_integer(typ)
            else (
                -(2 ** (bits - 1)),
                2 ** (bits - 1) - 1,
            )
        )
        return low <= value <= high
    if pa.types.is_floating(typ):
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and abs(value) < 1e300
        )
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return isinstance(value, str)
    return isinstance(value, str)  # other types travel as their text (encode_cursor)


def fingerprint(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


# -- a page --------------------------------------------------------------------------------
@dataclass
class Page:
    """``select <columns> from <source> where <filters> order by <keys>``, one page of it."""

    source: str
    columns: list[tuple[str, str]]  # (sql expression, output name)
    keys: list[str]  # sql expressions, unique per row together
    source_params: list[object] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)
    params: list[object] = field(default_factory=list)
    fingerprint: str = ""
    #: (sql, params) that must return a row, else the result is "unknown" (404)
    exists: tuple[str, list[object]] | None = None
    missing_message: str = ""


@dataclass
class PageResult:
    schema: pa.Schema
    reader: pa.RecordBatchReader
    next_cursor: str | None


def _keyset(keys: list[str], values: list[object]) -> tuple[str, list[object]]:
    """``keys >= values`` lexicographically, with a plain ``k0 >= v0`` that Parquet prunes on."""

    def ge(i: int) -> tuple[str, list[object]]:
        if i == len(keys) - 1:
            return f"{keys[i]} >= ?", [values[i]]
        rest, rest_params = ge(i + 1)
        return (
            f"({keys[i]} > ? or ({keys[i]} = ? and {rest}))",
            [values[i], values[i], *rest_params],
        )

    expr, params = ge(0)
    return f"{keys[0]} >= ? and {expr}", [values[0], *params]


def run_page(
    cur: duckdb.DuckDBPyConnection,
    page: Page,
    *,
    limit: int,
    cursor: str | None,
    batch_rows: int = 65_536,
) -> PageResult:
    """Run one page of ``page``: the rows from ``cursor`` on, at most ``limit`` of them."""
    filters, params = list(page.filters), list(page.params)
    if cursor:
        # the key columns' types, from the files' metadata (no row is read)
        probe = f"select {', '.join(page.keys)} from {page.source} limit 0"
        key_types = cur.execute(probe, page.source_params).to_arrow_table().schema.types
        values = decode_cursor(cursor, page.fingerprint, len(page.keys), key_types)
        expr, extra = _keyset(page.keys, values)
        filters.append(expr)
        params += extra
    elif page.exists is not None:
        sql, exists_params = page.exists
        if cur.execute(sql, exists_params).fetchone() is None:
            raise UnknownSymbolError(page.missing_message)
    where = f" where {' and '.join(filters)}" if filters else ""
    order = ", ".join(page.keys)
    base = f"from {page.source}{where} order by {order}"
    all_params = [*page.source_params, *params]
    boundary = cur.execute(
        f"select {', '.join(page.keys)} {base} limit 1 offset ?", [*all_params, limit]
    ).fetchone()
    next_cursor = encode_cursor(list(boundary), page.fingerprint) if boundary else None
    select = ", ".join(f"{expr} as {ident(name)}" for expr, name in page.columns)
    result = cur.execute(f"select {select} {base} limit ?", [*all_params, limit])
    reader = result.to_arrow_reader(batch_rows)
    return PageResult(reader.schema, reader, next_cursor)


def _pick_columns(
    requested: list[str], available: dict[str, str], default: Sequence[str], what: str
) -> list[tuple[str, str]]:
    names = requested or [c for c in default if c in available]
    unknown = [c for c in names if c not in available]
    if unknown:
        raise InvalidInputError(
            f"unknown column(s) for {what}: {', '.join(c[:40] for c in unknown[:10])}; "
            f"available: {', '.join(available)}"
        )
    return [(available[c], c) for c in names]


def _require(schema: pa.Schema, mart: str, needed: Sequence[str], why: str) -> None:
    missing = [c for c in needed if c not in schema.names]
    if missing:
        raise MartShapeError(
            f"mart {mart!r} has no column(s) {', '.join(missing)} needed for {why}; "
            "rebuild the warehouse (dbt build)"
        )


#: a mart's files as DuckDB reads them: one path, or a partitioned mart's list of files
SCAN = "read_parquet(?)"


# -- bars ------------------------------------------------------------------------------------
_TIMEFRAMES_SEEN: dict[tuple[str, ...], dict[str, str]] = {}


def built_timeframes(snap: Snapshot) -> dict[str, str]:
    """{timeframe: the mart serving it} for every timeframe the warehouse built, shortest
    first: bars_adjusted's own (as ingested), then bars_resampled's. Cached per version of
    the two files (a published set never changes)."""
    files = []
    for mart in (BARS_MART, RESAMPLED_MART):
        try:
            path = snap.mart(mart)
        except MartNotFoundError:
            continue
        # a published set never changes: its mart is known by the set and the inode of
        # its file or directory
        st = os.stat(mart_location(snap.marts_dir, mart))
        files.append((mart, path, f"{mart}:{snap.marts_dir}:{st.st_ino}:{st.st_mtime_ns}"))
    key = tuple(k for _m, _p, k in files)
    if key in _TIMEFRAMES_SEEN:
        return _TIMEFRAMES_SEEN[key]
    out: dict[str, str] = {}
    with duckdb.connect() as con:
        for mart, path, _k in files:
            if "timeframe" not in snap.schema(mart).names:
                continue
            for (tf,) in con.execute(
                "select distinct timeframe from read_parquet(?) where timeframe is not null",
                [path],
            ).fetchall():
                out.setdefault(tf, mart)
    order = {tf: i for i, tf in enumerate(TIMEFRAMES)}
    out = dict(sorted(out.items(), key=lambda kv: order.get(kv[0], len(order))))
    if len(_TIMEFRAMES_SEEN) > 64:
        _TIMEFRAMES_SEEN.clear()
    _TIMEFRAMES_SEEN[key] = out
    return out


def bars_page(
    snap: Snapshot,
    symbol: str,
    *,
    timeframe: str,
    start: datetime | None,
    end: datetime | None,
    adjustment: Adjustment,
    columns: list[str],
) -> Page:
    symbol = validate_symbol(symbol)
    timeframe = normalize_timeframe(timeframe)
    built = built_timeframes(snap)
    if built and timeframe not in built:
        raise UnknownSymbolError(
            f"no {timeframe} bars are built; the warehouse holds {', '.join(built)} "
            "(GET /v1/timeframes)"
        )
    mart = built.get(timeframe, BARS_MART)
    path = snap.mart(mart)
    schema = snap.schema(mart)
    _require(schema, mart, ("symbol", "timeframe", "ts"), "bars")
    names = schema.names
    source = "read_parquet(?) as bars"
    source_params: list[object] = [path]
    filters = ["bars.symbol = ?", "bars.timeframe = ?"]
    params: list[object] = [symbol, timeframe]

    prices: dict[str, str] = {}
    if adjustment.kind == "none":
        prices = {c: f"bars.{ident(c)}" for c in PRICE_COLUMNS if c in names}
        for c in ("split_factor", "dividend_factor"):
            if c in names:
                prices[c] = f"bars.{ident(c)}"
    elif adjustment.kind in ("split", "total"):
        suffix = "_split_adj" if adjustment.kind == "split" else "_adj"
        wanted = [f"{c}{suffix}" for c in PRICE_COLUMNS]
        _require(schema, mart, wanted, f"adjustment={adjustment.kind} of {timeframe} bars")
        prices = {c: f"bars.{ident(c + suffix)}" for c in PRICE_COLUMNS}
        for c in ("split_factor", "dividend_factor"):
            if c in names:
                prices[c] = f"bars.{ident(c)}"
        if adjustment.kind == "split" and "dividend_factor" in prices:
            prices["dividend_factor"] = "1.0::double"
    else:
        assert adjustment.as_of is not None
        _require(schema, mart, PRICE_COLUMNS, "point-in-time adjustment")
        try:
            factors_path = snap.mart(FACTORS_MART)
        except MartNotFoundError:
            raise MartShapeError(
                f"point-in-time adjustment needs the {FACTORS_MART!r} mart, which is not built; "
                "run `dbt build`, or ask for adjustment=none|split|total"
            ) from None
        _require(
            snap.schema(FACTORS_MART),
            FACTORS_MART,
            FACTOR_COLUMNS,
            "point-in-time adjustment",
        )
        source += (
            " left join read_parquet(?) as factors"
            " on factors.symbol = bars.symbol"
            " and bars.ts >= factors.valid_from_at and bars.ts < factors.valid_to_at"
            " and factors.known_from <= ? and factors.known_to > ?"
        )
        source_params += [factors_path, adjustment.as_of, adjustment.as_of]
        split = "coalesce(factors.split_factor, 1.0)"
        total = "coalesce(factors.split_factor * factors.dividend_factor, 1.0)"
        prices = {c: f"bars.{ident(c)} * {total}" for c in PRICE_COLUMNS[:4]}
        prices["volume"] = f"bars.volume / {split}"
        prices["split_factor"] = split
        prices["dividend_factor"] = "coalesce(factors.dividend_factor, 1.0)"
        # as seen on the as-of date: no bar after that day exists yet (on the last day a
        # datetime can hold, every bar is before it)
        if adjustment.as_of < date.max:
            as_of_end = datetime.combine(adjustment.as_of, datetime.min.time(), UTC)
            as_of_end += timedelta(1)
            end = as_of_end if end is None else min(end, as_of_end)

    if start is not None:
        filters.append("bars.ts >= ?")
        params.append(start)
    if end is not None:
        filters.append("bars.ts < ?")
        params.append(end)

    available: dict[str, str] = {}
    for c in ("symbol", "source", "timeframe", "ts"):
        if c in names:
            available[c] = f"bars.{ident(c)}"
    available |= prices
    for c in names:
        available.setdefault(c, f"bars.{ident(c)}")
    keys = ["bars.ts"] + (["bars.source"] if "source" in names else [])
    return Page(
        source=source,
        source_params=source_params,
        columns=_pick_columns(columns, available, DEFAULT_BAR_COLUMNS, "bars"),
        keys=keys,
        filters=filters,
        params=params,
        fingerprint=fingerprint("bars", symbol, timeframe, start, end, adjustment.label()),
        exists=(f"select 1 from {SCAN} where symbol = ? limit 1", [path, symbol]),
        missing_message=(
            f"no bars for symbol {symbol!r} in the warehouse; GET /v1/symbols lists the symbols"
        ),
    )


# -- features -------------------------------------------------------------------------------
def feature_mart(name: str, version: str) -> str:
    if not _FEATURE_NAME.match(name):
        raise InvalidInputError(
            f"invalid feature set name {name[:40]!r}: lowercase letters, digits and _"
        )
    m = _FEATURE_VERSION.match(version)
    if not m:
        raise InvalidInputError(f"invalid feature set version {version[:20]!r}: e.g. 1 or v1")
    return f"features_{name}_v{int(m.group(1))}"


def features_page(
    snap: Snapshot,
    name: str,
    version: str,
    *,
    symbols: list[str],
    start: datetime | None,
    end: datetime | None,
    columns: list[str],
) -> Page:
    mart = feature_mart(name, version)
    try:
        path = snap.mart(mart)
    except MartNotFoundError:
        raise MartNotFoundError(
            f"no feature set {name!r} version {version!r} (mart {mart}); "
            "GET /v1/marts lists what is built"
        ) from None
    schema = snap.schema(mart)
    _require(schema, mart, ("symbol", "ts"), "a feature set")
    syms = [validate_symbol(s) for s in symbols]
    if len(syms) > MAX_SYMBOLS:
        raise InvalidInputError(f"at most {MAX_SYMBOLS} symbols per request, got {len(syms)}")
    filters: list[str] = []
    params: list[object] = []
    if syms:
        filters.append(f"f.symbol in ({', '.join('?' * len(syms))})")
        params += syms
    if start is not None:
        filters.append("f.ts >= ?")
        params.append(start)
    if end is not None:
        filters.append("f.ts < ?")
        params.append(end)
    available = {c: f"f.{ident(c)}" for c in schema.names}
    return Page(
        source="read_parquet(?) as f",
        source_params=[path],
        columns=_pick_columns(columns, available, schema.names, mart),
        keys=["f.symbol", "f.ts"],
        filters=filters,
        params=params,
        fingerprint=fingerprint("features", mart, tuple(syms), start, end),
    )


# -- coverage and symbols --------------------------------------------------------------------
def coverage_page(
    snap: Snapshot, *, symbols: list[str], timeframe: str | None, columns: list[str]
) -> Page:
    syms = [validate_symbol(s) for s in symbols]
    tf = normalize_timeframe(timeframe) if timeframe else None
    if snap.has(COVERAGE_MART):
        schema = snap.schema(COVERAGE_MART)
        source, source_params = f"{SCAN} as c", [snap.mart(COVERAGE_MART)]
        names = schema.names
    else:  # derived from the bars until the warehouse has a coverage mart
        _require(snap.schema(BARS_MART), BARS_MART, ("symbol", "timeframe", "ts"), "coverage")
        has_source = "source" in snap.schema(BARS_MART).names
        src = "source, " if has_source else ""
        source = (
            f"(select symbol, {src}timeframe, min(ts) as first_ts, max(ts) as last_ts,"
            f" count(*) as rows from read_parquet(?) group by all) as c"
        )
        source_params = [snap.mart(BARS_MART)]
        names = ["symbol", *(["source"] if has_source else []), "timeframe"]
        names += ["first_ts", "last_ts", "rows"]
    filters: list[str] = []
    params: list[object] = []
    if syms:
        filters.append(f"c.symbol in ({', '.join('?' * len(syms))})")
        params += syms
    if tf:
        if "timeframe" not in names:
            raise MartShapeError(f"{COVERAGE_MART} has no timeframe column to filter on")
        filters.append("c.timeframe = ?")
        params.append(tf)
    keys = [f"c.{ident(k)}" for k in ("symbol", "timeframe", "source") if k in names]
    available = {c: f"c.{ident(c)}" for c in names}
    return Page(
        source=source,
        source_params=source_params,
        columns=_pick_columns(columns, available, names, "coverage"),
        keys=keys,
        filters=filters,
        params=params,
        fingerprint=fingerprint("coverage", tuple(syms), tf),
    )


def symbols_page(snap: Snapshot, *, lake_symbol_files: list[Path], columns: list[str]) -> Page:
    if snap.has(SYMBOLS_MART):
        source, source_params = f"{SCAN} as s", [snap.mart(SYMBOLS_MART)]
        names = snap.schema(SYMBOLS_MART).names
    elif lake_symbol_files:
        paths = [snap.open_file(p) for p in lake_symbol_files]
        source = "read_parquet(?, union_by_name = true) as s"
        source_params = [paths]
        names = pa.unify_schemas([pq.read_schema(p) for p in paths]).names
    else:
        source = "(select distinct symbol from read_parquet(?)) as s"
        source_params = [snap.mart(BARS_MART)]
        names = ["symbol"]
    if "symbol" not in names:
        raise MartShapeError("the symbols table has no symbol column")
    keys = ["s.symbol"] + (["s.source"] if "source" in names else [])
    names = [n for n in names if n not in ("ingested_at",)]
    available = {c: f"s.{ident(c)}" for c in names}
    return Page(
        source=source,
        source_params=source_params,
        columns=_pick_columns(columns, available, names, "symbols"),
        keys=keys,
        fingerprint=fingerprint("symbols"),
    )
