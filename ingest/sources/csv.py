"""Bars from local CSV or Parquet files: Yahoo exports, generic vendor files, old archives.

Two shapes are understood:

* the yfinance export shape (``Date``/``Datetime``, Open, High, Low, Close, Adj Close,
  Volume, optionally Dividends and Stock Splits; rows in either order). Its prices are
  split-adjusted as of the export, so they are un-adjusted with the file's own Stock
  Splits column by :func:`ingest.sources.yfinance.unadjust_splits`;
* a generic shape, with a ``mapping`` from the file's column names to the standard names
  (``ts``, ``open``, ``high``, ``low``, ``close``, ``volume``, ``adj_close``,
  ``dividends``, ``stock_splits``) and a ``timezone`` for naive timestamps.

The happy path is one vectorised parse (pyarrow.csv with typed columns); only when it
fails does the reader fall back to parsing text columns with polars and rejecting the rows
that do not parse (with the reason and the row's text).
"""

from __future__ import annotations

import csv as _pycsv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from ..errors import DuckmarketError, InvalidInputError, UnsupportedRequestError
from ..schema import TS_TYPE
from ..timeframes import SESSION_TIMEFRAMES, bar_length, normalize_timeframe
from .base import Capabilities, FetchResult, Source, TimeframeLimits
from .yfinance import actions_table, unadjust_splits

__all__ = ["STANDARD_COLUMNS", "CsvSource", "ImportedFile", "read_bar_file", "read_bar_files"]

#: standard column -> header spellings recognised without a mapping (case-insensitive)
STANDARD_COLUMNS: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "date", "datetime", "timestamp", "time"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close",),
    "volume": ("volume",),
    "adj_close": ("adj close", "adj_close", "adjclose", "adjusted close"),
    "dividends": ("dividends", "dividend"),
    "stock_splits": ("stock splits", "stock_splits", "splits", "split"),
    "symbol": ("symbol", "ticker"),
}
REQUIRED = ("ts", "open", "high", "low", "close", "volume")
_NUMERIC = ("open", "high", "low", "close", "volume", "adj_close", "dividends", "stock_splits")
_MAX_BAD_FRACTION = 0.5
#: no market data is older (the NYSE's first recorded prices are from 1792, but no vendor
#: file is); a date before this is a typo or a misread format
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_TZ_SUFFIX = r"(Z|z|[+-]\d\d:?\d\d)$"


@dataclass
class ImportedFile:
    """One file read: as-traded bars, actions (when the file has them) and rejected rows."""

    bars: pa.Table
    actions: pa.Table | None = None
    #: (0-based data row index, reason, the row's text)
    rejects: list[tuple[int, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _fail(path: Path, what: str) -> InvalidInputError:
    return InvalidInputError(f"{path}: {what}")


# --- reading ----------------------------------------------------------------------------


def _is_parquet(path: Path) -> bool:
    if path.suffix.lower() in (".parquet", ".pq", ".parq"):
        return True
    with path.open("rb") as fh:
        return fh.read(4) == b"PAR1"


#: magic numbers of files people mistake for CSV, and what to say about them
_MAGIC = (
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook?); export the sheet as CSV (UTF-8)"),
    (b"\xd0\xcf\x11\xe0", "an Excel .xls workbook; export the sheet as CSV (UTF-8)"),
    (b"\x1f\x8b", "gzip-compressed; decompress it first (gunzip)"),
    (b"BZh", "bzip2-compressed; decompress it first (bunzip2)"),
    (b"\xfd7zXZ", "xz-compressed; decompress it first (unxz)"),
    (b"%PDF", "a PDF document, not a table of prices"),
)


def _check_text(path: Path) -> None:
    """Refuse what is not UTF-8 (or ASCII) text, saying what the file seems to be."""
    with path.open("rb") as fh:
        head = fh.read(8192)
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise _fail(path, f"is {what}; expected CSV text (UTF-8) or Parquet")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (
        len(head) >= 4 and head.count(b"\x00") > len(head) // 4
    ):
        raise _fail(
            path,
            "is UTF-16 text (every other byte is zero); save it as CSV UTF-8 (in Excel: "
            "'CSV UTF-8'; or iconv -f UTF-16 -t UTF-8) and import it again",
        )
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 13))
    if b"\x00" in head or controls > max(8, len(head) // 100):
        raise _fail(
            path,
            "is binary data, not text; expected a CSV file (UTF-8 text with a header line) "
            "or a Parquet file",
        )


def _shown(name: str) -> str:
    """A column name as it can be printed (control characters escaped, long names cut)."""
    text = name if name.isprintable() else repr(name)[1:-1]
    return text if len(text) <= 60 else text[:57] + "..."


def _csv_header(path: Path) -> tuple[list[str], int]:
    """Column names and the number of header lines (3 for yfinance multi-ticker exports:
    ``Price,...`` / ``Ticker,...`` / ``Date,,,``)."""
    _check_text(path)
    head: list[list[str]] = []
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = _pycsv.reader(fh)
        try:
            for _, row in zip(range(3), reader, strict=False):
                head.append(row)
        except _pycsv.Error as exc:
            if not head:  # the header itself cannot be read
                raise _fail(path, f"the header line cannot be read as CSV ({exc})") from None
            # a data row the stdlib reader refuses (an enormous field): not needed here
    if not head or not any(c.strip() for c in head[0]):
        raise _fail(path, "the file is empty (no header line); expected a CSV with a header")
    names = [c.strip() for c in head[0]]
    if (
        names
        and names[0].lower() == "price"
        and len(head) == 3
        and head[1]
        and head[1][0].strip().lower() == "ticker"
    ):
        names[0] = head[2][0].strip() or "Date"
        return names, 3
    return names, 1


def _resolve(
    path: Path,
    names: list[str],
    mapping: dict[str, str] | None,
    ts_column: str | None,
) -> dict[str, str]:
    """Standard name -> the file's column name."""
    lower = {n.lower(): n for n in names}
    out: dict[str, str] = {}
    explicit: set[str] = set()
    for src, target in (mapping or {}).items():
        if target not in STANDARD_COLUMNS:
            raise InvalidInputError(
                f"mapping target {target!r} (for column {src!r}) is not one of "
                f"{', '.join(STANDARD_COLUMNS)}"
            )
        col = src if src in names else lower.get(src.lower())
        if col is None:
            raise _fail(
                path,
                f"mapped column {src!r} is not in the file; columns found: "
                f"{', '.join(map(_shown, names))}",
            )
        if target in out:
            raise _fail(path, f"columns {out[target]!r} and {col!r} are both mapped to {target!r}")
        out[target] = col
        explicit.add(target)
    if ts_column is not None:
        col = ts_column if ts_column in names else lower.get(ts_column.lower())
        if col is None:
            raise _fail(
                path,
                f"ts column {ts_column!r} is not in the file; columns found: "
                f"{', '.join(map(_shown, names))}",
            )
        out["ts"] = col
        explicit.add("ts")
    used = set(out.values())
    for target, spellings in STANDARD_COLUMNS.items():
        if target in explicit:
            continue
        hits = [n for n in names if n.strip().lower() in spellings and n not in used]
        if len(hits) > 1:
            raise _fail(
                path,
                f"columns {' and '.join(repr(h) for h in hits)} both look like {target!r}; "
                f"pass a mapping (or ts_column) to say which one to use",
            )
        if hits:
            out[target] = hits[0]
    missing = [t for t in REQUIRED if t not in out]
    if missing:
        raise _fail(
            path,
            f"missing required column(s) {', '.join(missing)}; columns found: "
            f"{', '.join(map(_shown, names)) or '(none)'}. Pass a mapping such as "
            "{'timestamp': 'ts', 'o': 'open', ...} for files with other names",
        )
    return out


def _in_file_order(names: list[str], cols: dict[str, str]) -> list[str]:
    """The columns used, in the file's order (so a rejected row reads as the file does)."""
    used = set(cols.values())
    return list(dict.fromkeys(n for n in names if n in used))


def _read_csv_fast(
    path: Path, names: list[str], header_lines: int, cols: dict[str, str], intraday: bool
) -> pl.DataFrame | None:
    """Typed parse with pyarrow.csv; None when anything in the file does not parse."""
    import pyarrow.csv as pacsv

    types: dict[str, pa.DataType] = {cols[c]: pa.float64() for c in _NUMERIC if c in cols}
    types[cols["ts"]] = TS_TYPE if intraday else pa.string()
    if "symbol" in cols:
        types[cols["symbol"]] = pa.string()
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                skip_rows=header_lines, column_names=names, block_size=1 << 24
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                include_columns=_in_file_order(names, cols),
                strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError):
        return None
    return pl.from_arrow(table)  # type: ignore[return-value]


def _read_csv_text(
    path: Path, names: list[str], header_lines: int, cols: dict[str, str]
) -> pl.DataFrame:
    """Every needed column as text (the fallback that lets bad rows be rejected one by one)."""
    wanted = _in_file_order(names, cols)
    try:
        df = pl.read_csv(
            path,
            has_header=False,
            skip_rows=header_lines,
            new_columns=names,
            infer_schema=False,
            truncate_ragged_lines=True,
            encoding="utf8-lossy",
        )
        return df.select(wanted)
    except (pl.exceptions.PolarsError, pl.exceptions.ComputeError):
        pass
    # last resort: the stdlib reader (odd quoting, ragged rows), padded to the header
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    try:
        rows = list(_pycsv.reader(io.StringIO(text)))[header_lines:]
    except _pycsv.Error as exc:
        raise _fail(path, f"cannot be read as CSV ({exc})") from None
    width = len(names)
    rows = [(r + [""] * width)[:width] for r in rows if r]
    data = {n: [r[i] if r[i] != "" else None for r in rows] for i, n in enumerate(names)}
    return pl.DataFrame({n: data[n] for n in wanted}, schema={n: pl.String for n in wanted})


def _read_parquet(path: Path) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise _fail(
            path,
            f"not a readable Parquet file ({exc}); it may be truncated or corrupt — "
            "re-export or re-copy it",
        ) from exc


def _check_parquet_types(path: Path, schema: pa.Schema, cols: dict[str, str]) -> None:
    """Refuse columns no value of which could be used (lists, structs, binary...)."""
    for target, name in cols.items():
        t = schema.field(name).type
        text = pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)
        if target == "ts":
            ok = text or pa.types.is_timestamp(t) or pa.types.is_date(t)
            want = "timestamps, dates or text"
        elif target == "symbol":
            ok = text or pa.types.is_integer(t) or pa.types.is_dictionary(t)
            want = "text"
        else:
            ok = text or pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
            want = "numbers"
        if not ok:
            raise _fail(path, f"column {name!r} ({target}) has type {t}; expected {want}")


def _typed_intraday_bars(table: pa.Table, cols: dict[str, str]) -> pa.Table | None:
    """The zero-copy path for a Parquet file that is already what the lake stores: intraday
    bars with a tz-aware timestamp, numeric prices, no corporate-action columns and strictly
    increasing timestamps. Anything else (None) takes the general path."""
    if "dividends" in cols or "stock_splits" in cols or "symbol" in cols:
        return None
    ts = table.column(cols["ts"])
    if not (pa.types.is_timestamp(ts.type) and ts.type.tz) or ts.null_count:
        return None
    out: dict[str, pa.ChunkedArray] = {"ts": ts.cast(TS_TYPE)}
    for name in ("open", "high", "low", "close", "volume", "adj_close"):
        if name not in cols:
            continue
        col = table.column(cols[name])
        if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
            return None
        out[name] = col.cast(pa.float64())
    us = out["ts"].cast(pa.int64()).to_numpy()
    if us.size > 1 and not bool((us[1:] > us[:-1]).all()):
        return None
    out["is_final"] = pa.chunked_array([pa.array(np.ones(len(us), dtype=bool))])
    order = ["ts", "open", "high", "low", "close", "volume", "is_final", "adj_close"]
    return pa.table({k: out[k] for k in order if k in out})


# --- parsing columns --------------------------------------------------------------------


def _check_timezone(timezone: str | None) -> None:
    if timezone is None:
        return
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInputError(
            f"unknown timezone {timezone!r}; use an IANA name such as America/New_York, "
            "Europe/London, Asia/Tokyo or UTC"
        ) from None


def _localize(path: Path, naive: pl.Series, timezone: str) -> pl.Series:
    try:
        return naive.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
    except pl.exceptions.PolarsError as exc:  # a name zoneinfo knows and polars does not
        raise _fail(path, f"timezone {timezone!r} cannot be used here ({exc})") from None


#: day and month as numbers in an unknown order: 03/01/2023, 3.1.2023, 03-01-2023 10:00
_NUMERIC_DATE = r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2}|\d{4})(\D.*)?$"


def _iso_dates(path: Path, s: pl.Series, notes: list[str]) -> pl.Series:
    """Rewrite numeric dates (``03/01/2023``) as ISO dates when the file says which number is
    the day (a value above 12 in one position only); refuse them when it does not."""
    matches = s.str.contains(_NUMERIC_DATE).fill_null(False)
    if not matches.any():
        return s
    g = s.filter(matches).str.extract_groups(_NUMERIC_DATE).struct.unnest()
    g.columns = ["a", "b", "year", "rest"]
    example = s.filter(matches)[0]
    hint = "pass --date-format (%d/%m/%Y for day first, %m/%d/%Y for month first)"
    if (g.get_column("year").str.len_chars() == 2).any():
        raise _fail(path, f"dates such as {example!r} have two-digit years; {hint[:-1]}, %y)")
    a = g.get_column("a").cast(pl.Int32)
    b = g.get_column("b").cast(pl.Int32)
    day_first, month_first = bool((a > 12).any()), bool((b > 12).any())
    if day_first == month_first:
        why = (
            "mix day-first and month-first values"
            if day_first
            else "could be day/month or month/day (no value above 12 tells)"
        )
        raise _fail(path, f"dates such as {example!r} {why}; {hint}")
    day, month = ("a", "b") if day_first else ("b", "a")
    iso = g.select(
        pl.concat_str(
            [
                pl.col("year"),
                pl.lit("-"),
                pl.col(month).str.zfill(2),
                pl.lit("-"),
                pl.col(day).str.zfill(2),
                pl.col("rest").fill_null(""),
            ]
        )
    ).to_series()
    notes.append(
        f"dates read {'day' if day_first else 'month'} first ({example!r}); "
        "--date-format says otherwise"
    )
    out = s.to_list()
    for i, v in zip(np.flatnonzero(matches.to_numpy()).tolist(), iso.to_list(), strict=True):
        out[i] = v
    return pl.Series(s.name, out, dtype=pl.String)


def _parse_with_format(
    path: Path, s: pl.Series, intraday: bool, timezone: str | None, date_format: str
) -> tuple[pl.Series, pl.Series]:
    utc = pl.Datetime("us", "UTC")
    try:
        parsed = s.str.to_datetime(format=date_format, strict=False, time_unit="us")
    except pl.exceptions.PolarsError as exc:
        raise InvalidInputError(f"--date-format {date_format!r} cannot be used ({exc})") from None
    assert isinstance(parsed.dtype, pl.Datetime)
    if parsed.dtype.time_zone is not None:  # the format has %z
        ts = parsed.dt.convert_time_zone("UTC").cast(utc)
        return (ts if intraday else _midnight(ts.dt.date())), ts.dt.date()
    wall = parsed.dt.date()
    if not intraday:
        return _midnight(wall), wall
    if timezone is None:
        raise _fail(path, _naive_message())
    local = _localize(path, parsed, timezone)
    return local.dt.convert_time_zone("UTC").cast(utc), wall


def _midnight(d: pl.Series) -> pl.Series:
    return d.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _parse_ts(
    path: Path,
    s: pl.Series,
    intraday: bool,
    timezone: str | None,
    date_format: str | None = None,
    notes: list[str] | None = None,
) -> tuple[pl.Series, pl.Series]:
    """(ts as UTC datetime[us] or null where unparsable, exchange-local date)."""
    utc = pl.Datetime("us", "UTC")
    if s.dtype == pl.Date:
        d = s
        return _midnight(d), d
    if isinstance(s.dtype, pl.Datetime):
        tz = s.dtype.time_zone
        if not intraday:
            d = s.dt.date()
            return _midnight(d), d
        if tz is None:
            if timezone is None:
                raise _fail(path, _naive_message())
            s = _localize(path, s, timezone)
            tz = timezone
        return s.dt.convert_time_zone("UTC").cast(utc), s.dt.date()
    if s.dtype != pl.String:
        raise _fail(
            path,
            f"the timestamp column has type {s.dtype}; expected dates, timestamps or text",
        )
    s = s.str.strip_chars()
    if date_format is not None:
        return _parse_with_format(path, s, intraday, timezone, date_format)
    s = _iso_dates(path, s, notes if notes is not None else [])
    wall_date = s.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    if not intraday:
        other = s.str.to_date(strict=False) if wall_date.null_count() > s.null_count() else None
        d = wall_date if other is None else wall_date.fill_null(other)
        return _midnight(d), d
    has_tz = s.str.contains(_TZ_SUFFIX).fill_null(False)
    aware = s.str.to_datetime(strict=False, time_zone="UTC", time_unit="us")
    aware = pl.select(pl.when(pl.lit(has_tz)).then(pl.lit(aware)).otherwise(None)).to_series()
    naive_mask = ~has_tz & s.is_not_null()
    ts = aware
    if naive_mask.any():
        naive = s.str.to_datetime(strict=False, time_unit="us")
        parsed_naive = naive_mask & naive.is_not_null()
        if parsed_naive.any():
            if timezone is None:
                raise _fail(path, _naive_message())
            local = _localize(path, naive, timezone)
            ts = aware.fill_null(local.dt.convert_time_zone("UTC"))
    ts = ts.cast(utc)
    return ts, wall_date.fill_null(ts.dt.date())


def _naive_message() -> str:
    return (
        "timestamps have no timezone offset; pass --timezone (e.g. --timezone "
        "America/New_York) to say which exchange clock they are in"
    )


def _parse_numbers(s: pl.Series) -> pl.Series:
    if s.dtype == pl.String:
        return s.str.strip_chars().cast(pl.Float64, strict=False)
    return s.cast(pl.Float64, strict=False)


def _bad_text(raw: pl.Series, parsed: pl.Series) -> pl.Series:
    """Rows where a non-empty text value did not parse."""
    if raw.dtype != pl.String:
        return parsed.is_null() & raw.is_not_null()
    nonempty = raw.is_not_null() & (raw.str.strip_chars() != "")
    return (nonempty & parsed.is_null()).fill_null(False)


# --- the reader -------------------------------------------------------------------------


@dataclass
class _Loaded:
    """A file's needed columns, before parsing: raw values, where they came from."""

    path: Path
    raw: pl.DataFrame
    cols: dict[str, str]
    #: the values were parsed by the typed reader (numbers are numbers, no text to reject)
    fast: bool
    #: the zero-copy Parquet path's result, when it applies
    typed: pa.Table | None = None


def _load(
    path: str | Path,
    timeframe: str,
    mapping: dict[str, str] | None,
    ts_column: str | None,
) -> _Loaded:
    path = Path(path)
    intraday = normalize_timeframe(timeframe) not in SESSION_TIMEFRAMES
    if path.is_dir():
        raise _fail(path, "is a folder; import a folder with DataManager.import_files")
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise _fail(path, "the file is empty; expected a CSV with a header line or Parquet")

    if _is_parquet(path):
        table = _read_parquet(path)
        cols = _resolve(path, table.column_names, mapping, ts_column)
        _check_parquet_types(path, table.schema, cols)
        typed = _typed_intraday_bars(table, cols) if intraday else None
        if typed is not None:
            return _Loaded(path, pl.DataFrame(), cols, True, typed)
        raw = pl.from_arrow(table.select(_in_file_order(table.column_names, cols)))
        assert isinstance(raw, pl.DataFrame)
        fast = False
    else:
        names, header_lines = _csv_header(path)
        cols = _resolve(path, names, mapping, ts_column)
        # intraday split un-adjustment needs the exchange-local wall date: text path
        can_fast = not (intraday and "stock_splits" in cols)
        parsed = _read_csv_fast(path, names, header_lines, cols, intraday) if can_fast else None
        fast = parsed is not None
        raw = parsed if parsed is not None else _read_csv_text(path, names, header_lines, cols)
    if raw.height == 0:
        raise _fail(path, "the file has a header but no rows")
    return _Loaded(path, raw, cols, fast)


def _split_by_symbol(
    loaded: _Loaded,
) -> tuple[dict[str, tuple[pl.DataFrame, np.ndarray]], list[tuple[int, str, str]]]:
    """symbol -> (its rows, their row numbers in the file), in order of first appearance;
    and the rows whose symbol is missing or not a usable symbol (rejected)."""
    from ..schema import validate_symbol

    raw = loaded.raw
    col = loaded.cols["symbol"]
    text = raw.get_column(col).cast(pl.String).str.strip_chars()
    rows = raw.with_columns(text.alias(col)).with_row_index("_row")
    groups: dict[str, tuple[pl.DataFrame, np.ndarray]] = {}
    unusable: list[tuple[int, str, str]] = []
    for (value,), part in rows.partition_by(col, maintain_order=True, as_dict=True).items():
        numbers = part.get_column("_row").to_numpy().astype(np.int64)
        part = part.drop("_row")
        try:
            if value is None or value == "":
                raise InvalidInputError("missing symbol")
            symbol = validate_symbol(str(value))
        except DuckmarketError as exc:
            why = str(exc) if value in (None, "") else f"bad symbol {value!r}: {exc}"
            unusable += [(int(n), why, _row_text(part, k)) for k, n in enumerate(numbers)]
            continue
        groups[symbol] = (part, numbers)
    if not groups:
        raise _fail(loaded.path, f"no row has a usable symbol in column {col!r}")
    if len(unusable) > raw.height * _MAX_BAD_FRACTION:
        raise _fail(
            loaded.path,
            f"{len(unusable)} of {raw.height} rows have no usable symbol "
            f"(e.g. row {unusable[0][0]}: {unusable[0][1]})",
        )
    return groups, sorted(unusable)


def read_bar_file(
    path: str | Path,
    *,
    timeframe: str,
    mapping: dict[str, str] | None = None,
    timezone: str | None = None,
    ts_column: str | None = None,
    split_adjusted: bool | None = None,
    currency: str | None = None,
    date_format: str | None = None,
    symbol: str | None = None,
) -> ImportedFile:
    """Read one CSV or Parquet file of bars for one symbol.

    ``mapping`` maps the file's column names to standard names; standard names are also
    recognised case-insensitively without one. ``timezone`` is the clock of naive
    timestamps (required when there are any, for intraday files). ``split_adjusted`` says
    whether prices are split-adjusted (Yahoo-style) and must be un-adjusted with the
    file's split column; by default the data decides (see :func:`_judge_split_adjusted`).
    Daily and weekly bars get ``ts`` = the session date at 00:00 UTC. Numeric dates such as
    ``03/01/2023`` are read in the order the file's values prove (a day above 12) and
    refused when nothing does, unless ``date_format`` (strftime, e.g. ``%d/%m/%Y``) says.
    Timestamps before 1900 or in the future are rejected rows.

    A file with a symbol column (``symbol``/``ticker``, or mapped to ``symbol``) must
    hold one symbol, or ``symbol`` says which one to read; :func:`read_bar_files` reads
    all of them.
    """
    _check_timezone(timezone)
    loaded = _load(path, timeframe, mapping, ts_column)
    if loaded.typed is not None:
        return ImportedFile(bars=loaded.typed)
    if "symbol" not in loaded.cols:
        return _parse(
            loaded, loaded.raw, None, timeframe, timezone, split_adjusted, currency, date_format
        )
    groups, unusable = _split_by_symbol(loaded)
    if symbol is None:
        if len(groups) > 1:
            names = list(groups)
            more = f", ... ({len(names)} in all)" if len(names) > 5 else ""
            raise _fail(
                loaded.path,
                f"holds {len(names)} symbols ({', '.join(names[:5])}{more}); say which one "
                "to read, or import them all (duckmarket ingest csv without --symbol, "
                "DataManager.import_files)",
            )
        symbol = next(iter(groups))
    if symbol not in groups:
        raise _fail(
            loaded.path,
            f"has no rows for {symbol!r} in column {loaded.cols['symbol']!r}; it holds "
            f"{', '.join(list(groups)[:5])}",
        )
    part, numbers = groups[symbol]
    one = _parse(loaded, part, numbers, timeframe, timezone, split_adjusted, currency, date_format)
    if unusable and len(groups) == 1:  # rows without a symbol in a one-symbol file
        one.rejects = sorted(one.rejects + unusable)
    return one


def read_bar_files(
    path: str | Path,
    *,
    timeframe: str,
    mapping: dict[str, str] | None = None,
    timezone: str | None = None,
    ts_column: str | None = None,
    split_adjusted: bool | None = None,
    currency: str | None = None,
    date_format: str | None = None,
) -> tuple[dict[str, ImportedFile], list[tuple[int, str, str]]]:
    """Read a long file (one row per symbol and bar, a ``symbol``/``ticker`` column) into
    one :class:`ImportedFile` per symbol, in order of first appearance; rejected row
    numbers are the file's. Also the rows that name no usable symbol (row, reason, text).

    A file without a symbol column is read as one unnamed series, under the key ``""``.
    """
    _check_timezone(timezone)
    loaded = _load(path, timeframe, mapping, ts_column)
    if loaded.typed is not None:
        return {"": ImportedFile(bars=loaded.typed)}, []
    if "symbol" not in loaded.cols:
        one = _parse(
            loaded, loaded.raw, None, timeframe, timezone, split_adjusted, currency, date_format
        )
        return {"": one}, []
    groups, unusable = _split_by_symbol(loaded)
    out = {
        sym: _parse(
            loaded, part, numbers, timeframe, timezone, split_adjusted, currency, date_format
        )
        for sym, (part, numbers) in groups.items()
    }
    return out, unusable


def _judge_split_adjusted(
    frame: pl.DataFrame, split_dates: np.ndarray, split_ratios: np.ndarray
) -> bool | None:
    """Whether the prices are split-adjusted, judged by each split's price move.

    Across the ex-date of an N:1 split, as-traded prices fall N-fold while split-adjusted
    prices move as on any other day. Each split whose ratio is far enough from 1 to tell
    (below 0.8 or above 1.25) and that has a bar on either side votes for the explanation
    that leaves a move within a quarter of the split's log ratio (19 % for a 2:1 split)
    from the previous close to the ex-date's open; the majority decides. None when no split
    can tell (then the file's shape decides: Yahoo's exports are split-adjusted)."""
    if not split_dates.size or frame.height < 2:
        return None
    dates = frame.get_column("_date").to_numpy().astype("datetime64[D]")
    close = frame.get_column("close").to_numpy()
    opens = frame.get_column("open").to_numpy()
    votes = 0
    for d, r in zip(split_dates, split_ratios, strict=True):
        jump = abs(np.log(r))
        if not np.isfinite(jump) or jump < np.log(1.25):
            continue
        i = int(np.searchsorted(dates, d, side="left"))
        if i == 0 or i >= dates.size:
            continue
        before = close[i - 1]
        after = opens[i] if np.isfinite(opens[i]) and opens[i] > 0 else close[i]
        if not (before > 0 and after > 0):
            continue
        move = np.log(after / before)
        as_traded, adjusted = abs(move + np.log(r)), abs(move)
        if min(as_traded, adjusted) > jump / 4:
            continue  # neither explains the move well: no vote
        votes += 1 if adjusted < as_traded else -1
    return None if votes == 0 else votes > 0


def _parse(
    loaded: _Loaded,
    raw: pl.DataFrame,
    numbers: np.ndarray | None,
    timeframe: str,
    timezone: str | None,
    split_adjusted: bool | None,
    currency: str | None,
    date_format: str | None = None,
) -> ImportedFile:
    """Parse one series' rows (``numbers``: their row numbers in the file, when the file
    holds several series)."""
    path, cols, fast = loaded.path, loaded.cols, loaded.fast
    tf = normalize_timeframe(timeframe)
    intraday = tf not in SESSION_TIMEFRAMES
    n = raw.height
    notes: list[str] = []
    ts, local_date = _parse_ts(
        path, raw.get_column(cols["ts"]), intraday, timezone, date_format, notes
    )
    # a timestamp before 1900 or after now (plus one bar) is a typo or a wrong format
    latest = datetime.now(UTC) + bar_length(tf)
    too_early = (ts < _EARLIEST).fill_null(False)
    too_late = (ts > latest).fill_null(False)
    values: dict[str, pl.Series] = {}
    bad: dict[str, pl.Series] = {}
    for name in _NUMERIC:
        if name in cols:
            r = raw.get_column(cols[name])
            values[name] = _parse_numbers(r)
            if not fast:
                bad[name] = _bad_text(r, values[name])

    def row_number(i: int) -> int:
        return i if numbers is None else int(numbers[i])

    # rows to reject: no usable timestamp, or unparsable numbers
    reasons = pl.DataFrame({"_ts_bad": ts.is_null(), "_early": too_early, "_late": too_late, **bad})
    reject_mask = reasons.select(pl.any_horizontal(pl.all())).to_series()
    rejects: list[tuple[int, str, str]] = []
    if reject_mask.any():
        idx = np.flatnonzero(reject_mask.to_numpy())
        sub = reasons[idx]
        raw_ts = raw.get_column(cols["ts"])

        def why(k: int, i: int) -> str:
            out = []
            if sub["_ts_bad"][k]:
                v = raw_ts[i]
                out.append("missing timestamp" if v is None or v == "" else f"bad timestamp {v!r}")
            elif sub["_early"][k] or sub["_late"][k]:
                when = "before 1900" if sub["_early"][k] else "in the future"
                out.append(f"implausible timestamp {raw_ts[i]!s} ({when})")
            for name in bad:
                if sub[name][k]:
                    out.append(f"bad {name} {raw.get_column(cols[name])[i]!r}")
            return "; ".join(out)

        if idx.size > n * _MAX_BAD_FRACTION:
            i0 = int(idx[0])
            raise _fail(
                path,
                f"{idx.size} of {n} rows cannot be used (e.g. row {row_number(i0)}, "
                f"{why(0, i0)}: {_row_text(raw, i0)!r}); check the file's format, the "
                "mapping, the timeframe"
                + (" and --date-format" if date_format else "")
                + (", --timezone" if intraday else ""),
            )
        for k, i in enumerate(idx.tolist()):
            rejects.append((row_number(i), why(k, i), _row_text(raw, i)))

    keep = ~reject_mask
    frame = pl.DataFrame({"ts": ts, "_date": local_date, **values})
    if rejects:
        frame = frame.filter(keep)
    # duplicate timestamps: the first row in the file wins, later ones are rejected
    ts_int = frame.get_column("ts").to_physical().to_numpy()
    ascending = bool(ts_int.size < 2 or np.all(ts_int[1:] > ts_int[:-1]))
    if not ascending and not bool(np.all(ts_int[1:] < ts_int[:-1])):
        frame = frame.with_columns(pl.Series("_orig", np.flatnonzero(keep.to_numpy())))
        dup = frame.select(~pl.col("ts").is_first_distinct()).to_series()
        if dup.any():
            for i in frame.filter(dup)["_orig"].to_list():
                rejects.append((row_number(i), "duplicate timestamp", _row_text(raw, i)))
            frame = frame.filter(~dup)
        frame = frame.drop("_orig")
    rejects.sort()
    if not ascending:
        frame = frame.sort("ts", maintain_order=True)

    # actions (from all parsed rows, before dropping price-less ones)
    nan = float("nan")
    splits = frame.get_column("stock_splits").fill_null(0.0) if "stock_splits" in frame else None
    divs = frame.get_column("dividends").fill_null(0.0) if "dividends" in frame else None
    dates = frame.get_column("_date").to_numpy().astype("datetime64[D]")
    if splits is not None:
        s_np = splits.fill_nan(0.0).to_numpy()
        smask = (s_np > 0) & (s_np != 1.0)
        s_dates, s_ratios = dates[smask], s_np[smask]
    else:
        s_dates, s_ratios = np.array([], "datetime64[D]"), np.array([], np.float64)

    # rows without any price (e.g. a dividend-only row) are not bars
    prices = ["open", "high", "low", "close"]
    no_price = frame.select(
        pl.all_horizontal([pl.col(c).is_null() | pl.col(c).is_nan() for c in prices])
    ).to_series()
    priced = frame.filter(~no_price) if no_price.any() else frame

    adjusted = split_adjusted
    if adjusted is None and s_dates.size:
        yahoo = cols["stock_splits"].strip().lower() == "stock splits"
        verdict = _judge_split_adjusted(priced, s_dates, s_ratios)
        adjusted = yahoo if verdict is None else verdict
        if verdict is None:
            why = "as Yahoo exports are" if yahoo else "the default"
            notes.append(
                f"prices taken as {'split-adjusted' if yahoo else 'as-traded'} ({why}): no "
                "split in the file moves the price clearly either way; --prices says otherwise"
            )
        elif verdict:
            notes.append("prices are split-adjusted: they do not jump at the split(s)")
        else:
            notes.append("prices are as-traded: they fall by the split ratio at the split(s)")
    adjusted = bool(adjusted) and splits is not None

    actions: pa.Table | None = None
    if splits is not None or divs is not None:
        d_np = divs.fill_nan(0.0).to_numpy() if divs is not None else np.zeros(len(dates))
        dmask = d_np != 0
        actions = actions_table(
            dates[dmask],
            d_np[dmask],
            s_dates,
            s_ratios,
            currency,
            dividends_split_adjusted=adjusted,
        )

    if no_price.any():
        notes.append(f"dropped {int(no_price.sum())} row(s) without prices")
        frame = priced
    if rejects:
        notes.append(f"rejected {len(rejects)} row(s), each with its reason (lake/rejects)")

    out: dict[str, Any] = {"ts": frame.get_column("ts").to_arrow().cast(TS_TYPE)}
    for c in ("open", "high", "low", "close", "volume"):
        out[c] = pa.array(frame.get_column(c).fill_null(nan).to_numpy(), pa.float64())
    out["is_final"] = pa.array(np.ones(frame.height, dtype=bool), pa.bool_())
    if "adj_close" in frame:
        out["adj_close"] = pa.array(frame.get_column("adj_close").fill_null(nan).to_numpy())
    bars = pa.table(out)
    if adjusted and s_dates.size:
        bars = unadjust_splits(
            bars, frame.get_column("_date").to_numpy().astype("datetime64[D]"), s_dates, s_ratios
        )
        notes.append(f"un-adjusted {s_dates.size} split(s) found in the file")
    return ImportedFile(bars=bars, actions=actions, rejects=rejects, notes=notes)


def _row_text(raw: pl.DataFrame, i: int) -> str:
    row = raw.row(i)
    return ",".join("" if v is None else str(v) for v in row).rstrip(",")


# --- the source -------------------------------------------------------------------------


class CsvSource(Source):
    """A local file of one symbol's bars, served like any other source (no network)."""

    name = "csv"

    def __init__(
        self,
        path: str | Path,
        *,
        timeframe: str,
        mapping: dict[str, str] | None = None,
        timezone: str | None = None,
        ts_column: str | None = None,
        symbol: str | None = None,
        split_adjusted: bool | None = None,
        currency: str | None = None,
        date_format: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.date_format = date_format
        self.timeframe = normalize_timeframe(timeframe)
        self.mapping = mapping
        self.timezone = timezone
        self.ts_column = ts_column
        self.symbol = symbol
        self.split_adjusted = split_adjusted
        self.currency = currency
        self.capabilities = Capabilities(
            timeframes={self.timeframe: TimeframeLimits()},
            needs_network=False,
            has_actions=True,
        )
        self._imported: ImportedFile | None = None

    @property
    def imported(self) -> ImportedFile:
        """The whole file, read once (bars, actions and rejected rows)."""
        if self._imported is None:
            self._imported = read_bar_file(
                self.path,
                timeframe=self.timeframe,
                mapping=self.mapping,
                timezone=self.timezone,
                ts_column=self.ts_column,
                split_adjusted=self.split_adjusted,
                currency=self.currency,
                symbol=self.symbol,
                date_format=self.date_format,
            )
        return self._imported

    def list_symbols(self) -> list[str] | None:
        return [self.symbol] if self.symbol else None

    def fetch_bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> FetchResult:
        if normalize_timeframe(timeframe) != self.timeframe:
            raise UnsupportedRequestError(
                f"{self.path} holds {self.timeframe} bars, not {timeframe}"
            )
        if self.symbol is not None and symbol != self.symbol:
            raise UnsupportedRequestError(f"{self.path} holds {self.symbol}, not {symbol}")
        for label, v in (("start", start), ("end", end)):
            if v.tzinfo is None or v.utcoffset() is None:
                raise InvalidInputError(f"{label} must be a timezone-aware datetime, got {v!r}")
        imp = self.imported
        lo = pa.scalar(start, TS_TYPE)
        hi = pa.scalar(end, TS_TYPE)
        import pyarrow.compute as pc

        ts = imp.bars.column("ts")
        bars = imp.bars.filter(pc.and_(pc.greater_equal(ts, lo), pc.less(ts, hi)))
        actions = imp.actions
        if actions is not None and actions.num_rows:
            ex = actions.column("ex_date").cast(pa.timestamp("us")).cast(TS_TYPE)
            day = start.astimezone(UTC).date()
            first_day = pa.scalar(datetime(day.year, day.month, day.day, tzinfo=UTC), TS_TYPE)
            actions = actions.filter(pc.and_(pc.greater_equal(ex, first_day), pc.less(ex, hi)))
        notes = list(imp.notes)
        if imp.rejects:
            notes.append(f"{len(imp.rejects)} rejected row(s): see CsvSource.imported.rejects")
        return FetchResult(bars=bars, actions=actions, symbol_info=None, api_calls=0, notes=notes)
