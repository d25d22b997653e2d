"""Map an export and hand out numpy views of its columns without copying.

``hotpath.open(path)`` maps the file read-only and checks it before anything is read: magic
bytes, footer, layout version, sizes, the symbol index. Columns are views into the mapping
(``np.shares_memory(export.col("close"), export.buffer)`` holds), so a full scan costs memory
bandwidth only, and the pages are shared by every process that maps the same file.

Every view is read-only. A reader keeps the file it opened: an export renamed over it later
does not change what the reader sees; open the path again to see the new one.
"""

from __future__ import annotations

import json
import mmap
import os
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ingest.timeutil import TimeLike, to_ns

from .formats import (
    ARROW_FORMAT,
    ARROW_MAGIC,
    ARROW_META_KEY,
    BOOL_FIELD_KEY,
    LAYOUT_VERSION,
    PARQUET_MAGIC,
    R64_END_MAGIC,
    R64_FOOTER,
    R64_HEADER,
    R64_MAGIC,
    RECORD_DTYPE,
    RECORDS64_FORMAT,
    BadExportError,
)
from .kernels import PriceVolumeStats, price_volume_stats

__all__ = ["BATCH_ROWS", "ExportReader", "ExportView", "open_export"]

BATCH_ROWS = 500_000


class _Mapped:
    """The state shared by a reader and all its views: the mapping, index and column views."""

    def __init__(self, path: Path, verify: bool, populate: bool = False) -> None:
        self.path = path
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < len(ARROW_MAGIC) * 2 + 8 and size < R64_HEADER.size + R64_FOOTER.size:
                    raise BadExportError(
                        f"{path} is not a duckmarket export: {size} bytes is too short "
                        "(truncated or empty)"
                    )
                if populate and hasattr(mmap, "MAP_POPULATE"):
                    flags = mmap.MAP_SHARED | mmap.MAP_POPULATE
                    self.mm = mmap.mmap(f.fileno(), 0, flags=flags, prot=mmap.PROT_READ)
                else:
                    self.mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as e:
            raise BadExportError(f"cannot open export {path}: {e.strerror or e}") from None
        self.size = size
        self.buffer = np.frombuffer(self.mm, dtype=np.uint8)
        head = bytes(self.mm[:8])
        self.table: pa.Table | None = None
        self.records: np.ndarray | None = None
        self.bool_cols: set[str] = set()
        if head.startswith(ARROW_MAGIC):
            self.meta = self._open_arrow()
        elif head == R64_MAGIC:
            self.meta = self._open_records64()
        elif head.startswith(PARQUET_MAGIC):
            raise BadExportError(
                f"{path} is a Parquet file, not an export: read marts with hotpath.read_mart, "
                "or make a mappable file with `duckmarket export <mart>`"
            )
        else:
            raise BadExportError(
                f"{path} is not a duckmarket export (unknown magic bytes {head!r}); "
                "create one with `duckmarket export`"
            )
        self._check_index()
        if verify:
            self._verify_checksums()

    # -- Arrow -----------------------------------------------------------------------------

    def _open_arrow(self) -> dict[str, Any]:
        path = self.path
        if bytes(self.mm[-len(ARROW_MAGIC) :]) != ARROW_MAGIC:
            raise BadExportError(
                f"{path} is truncated or not an Arrow IPC file (no closing ARROW1 footer); "
                "re-export it"
            )
        try:
            reader = pa.ipc.open_file(pa.BufferReader(pa.py_buffer(self.mm)))
            schema = reader.schema
        except (pa.ArrowException, OSError) as e:
            raise BadExportError(f"{path} is a corrupt Arrow file: {e}; re-export it") from None
        meta = self._meta_json((schema.metadata or {}).get(ARROW_META_KEY), ARROW_FORMAT)
        if reader.num_record_batches != 1:
            raise BadExportError(
                f"{path} has {reader.num_record_batches} record batches; a duckmarket export "
                "has exactly one (one contiguous buffer per column)"
            )
        try:
            batch = reader.get_batch(0)
            batch.validate()
        except (pa.ArrowException, OSError) as e:
            raise BadExportError(f"{path} has a corrupt record batch: {e}") from None
        if batch.num_rows != meta["rows"]:
            raise BadExportError(
                f"{path} holds {batch.num_rows} rows but its index says {meta['rows']}"
            )
        for name in ("symbol", "ts"):
            if name not in schema.names:
                raise BadExportError(f"{path} has no {name!r} column")
        cols: dict[str, np.ndarray] = {}
        for f, arr in zip(schema, batch.columns, strict=True):
            if arr.null_count:
                raise BadExportError(f"{path}: column {f.name!r} has nulls; re-export it")
            if (f.metadata or {}).get(BOOL_FIELD_KEY) == b"bool":
                self.bool_cols.add(f.name)
            cols[f.name] = self._view(f, arr)
        if not pa.types.is_dictionary(schema.field("symbol").type):
            raise BadExportError(f"{path}: symbol is not dictionary-encoded")
        if batch.column("symbol").dictionary.to_pylist() != meta["symbols"]:
            raise BadExportError(f"{path}: the symbol dictionary disagrees with the index")
        self.table = pa.Table.from_batches([batch])
        self.cols = cols
        return meta

    def _view(self, f: pa.Field, arr: pa.Array) -> np.ndarray:
        t = f.type
        if pa.types.is_dictionary(t):
            arr, t = arr.indices, arr.type.index_type
        if pa.types.is_timestamp(t):
            np_dtype, view = np.dtype(np.int64), np.dtype("datetime64[ns]")
        elif pa.types.is_date32(t):
            np_dtype, view = np.dtype(np.int32), None
        elif pa.types.is_integer(t) or pa.types.is_floating(t):
            np_dtype, view = np.dtype(t.to_pandas_dtype()), None
        else:
            raise BadExportError(f"{self.path}: column {f.name!r} has unsupported type {t}")
        data = arr.buffers()[1]
        if data is None or data.size < (arr.offset + len(arr)) * np_dtype.itemsize:
            raise BadExportError(f"{self.path}: column {f.name!r} is shorter than its length")
        out = np.frombuffer(data, np_dtype, count=len(arr), offset=arr.offset * np_dtype.itemsize)
        if f.name in self.bool_cols:
            return out.view(np.bool_)
        return out.view(view) if view is not None else out

    # -- records64 -------------------------------------------------------------------------

    def _open_records64(self) -> dict[str, Any]:
        path = self.path
        if self.size < R64_HEADER.size + R64_FOOTER.size:
            raise BadExportError(f"{path} is truncated: {self.size} bytes, no footer")
        _, version, rec_size, rows, data_off, meta_off, meta_len = R64_HEADER.unpack_from(
            self.mm, 0
        )
        if version != LAYOUT_VERSION:
            raise BadExportError(
                f"{path} has records64 layout version {version}; this duckmarket reads "
                f"version {LAYOUT_VERSION}: upgrade duckmarket or re-export the file"
            )
        if rec_size != RECORD_DTYPE.itemsize or data_off != R64_HEADER.size:
            raise BadExportError(
                f"{path}: record size {rec_size} / data offset {data_off} "
                "do not match the records64 layout"
            )
        expected = data_off + rows * rec_size + meta_len + R64_FOOTER.size
        if meta_off != data_off + rows * rec_size or self.size != expected:
            raise BadExportError(
                f"{path} is truncated or corrupt: {self.size} bytes where the header promises "
                f"{expected} ({rows} records); re-export it"
            )
        foot_len, end_magic = R64_FOOTER.unpack_from(self.mm, self.size - R64_FOOTER.size)
        if end_magic != R64_END_MAGIC or foot_len != meta_len:
            raise BadExportError(f"{path} has a corrupt footer; re-export it")
        meta = self._meta_json(bytes(self.mm[meta_off : meta_off + meta_len]), RECORDS64_FORMAT)
        if meta["rows"] != rows:
            raise BadExportError(f"{path}: header says {rows} rows, metadata {meta['rows']}")
        rec = np.frombuffer(self.mm, RECORD_DTYPE, count=rows, offset=data_off)
        self.records = rec
        self.cols = {
            "symbol": rec["symbol_id"],
            "ts": rec["ts"].view("datetime64[ns]"),
            **{n: rec[n] for n in ("open", "high", "low", "close", "volume", "flags")},
        }
        return meta

    # -- shared checks ---------------------------------------------------------------------

    def _meta_json(self, raw: bytes | None, fmt: str) -> dict[str, Any]:
        if raw is None:
            raise BadExportError(
                f"{self.path} is an Arrow file but not a duckmarket export (no "
                f"{ARROW_META_KEY.decode()} index); create one with `duckmarket export`"
            )
        try:
            meta = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise BadExportError(f"{self.path} has unreadable metadata; re-export it") from None
        if not isinstance(meta, dict) or meta.get("format") != fmt:
            raise BadExportError(f"{self.path}: metadata does not describe a {fmt} file")
        if meta.get("layout_version") != LAYOUT_VERSION:
            raise BadExportError(
                f"{self.path} has layout version {meta.get('layout_version')}; this duckmarket "
                f"reads version {LAYOUT_VERSION}: upgrade duckmarket or re-export the file"
            )
        return meta

    def _check_index(self) -> None:
        symbols, ranges, rows = self.meta["symbols"], self.meta["ranges"], self.meta["rows"]
        r = np.asarray(ranges, dtype=np.int64).reshape(-1, 2)
        ok = len(symbols) == len(r) and len(set(symbols)) == len(symbols)
        if len(r):
            ok = ok and r[0, 0] == 0 and r[-1, 1] == rows and bool(np.all(r[1:, 0] == r[:-1, 1]))
            ok = ok and bool(np.all(r[:, 1] >= r[:, 0]))
        else:
            ok = ok and rows == 0
        if not ok:
            raise BadExportError(f"{self.path} has an inconsistent symbol index; re-export it")
        self.symbols: list[str] = list(symbols)
        self.ranges = r
        self.index = {s: i for i, s in enumerate(symbols)}
        self.ts_ns: np.ndarray = self.cols["ts"].view(np.int64)

    def _verify_checksums(self) -> None:
        crc = self.meta.get("crc32", {})
        if self.records is not None:
            got = {"records": zlib.crc32(self.records.view(np.uint8))}
        else:
            got = {}
            for name in crc:
                view = self.cols[name]
                got[name] = zlib.crc32(view.view(np.uint8) if view.dtype == np.bool_ else view)
        if got != crc:
            bad = sorted(k for k in crc if got.get(k) != crc[k])
            raise BadExportError(f"{self.path}: checksum mismatch in {', '.join(bad)}")
        codes = self.cols["symbol"]
        for i, (a, b) in enumerate(self.ranges):
            if b > a and not (codes[a] == i and codes[b - 1] == i):
                raise BadExportError(f"{self.path}: the index disagrees with the symbol column")


class ExportView:
    """Rows ``[start, stop)`` of an opened export; every column is a zero-copy numpy view."""

    def __init__(self, mapped: _Mapped, start: int, stop: int) -> None:
        self._m = mapped
        self.start = start
        self.stop = stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._m.path.name} rows {self.start}:{self.stop}>"

    @property
    def names(self) -> list[str]:
        """Column names, ``symbol`` and ``ts`` first."""
        return list(self._m.cols)

    def col(self, name: str) -> np.ndarray:
        """A read-only view of column ``name`` over these rows (no copy).

        ``ts`` and other timestamps are ``datetime64[ns]`` (UTC); ``symbol`` and text columns
        are int32 codes (``symbols[code]``); booleans are ``bool``. In records64, ``symbol``
        is the ``symbol_id`` field and views are strided (one 64-byte record per row).
        """
        try:
            view = self._m.cols[name]
        except KeyError:
            raise KeyError(
                f"no column {name!r} in {self._m.path.name}; columns: {', '.join(self._m.cols)}"
            ) from None
        return view[self.start : self.stop]

    __getitem__ = col

    def price_volume_stats(self, price: str = "close", volume: str = "volume") -> PriceVolumeStats:
        """Mean price, total volume and VWAP of these rows in one fused pass over the mapped
        columns (about the machine's memory bandwidth; see ``benchmarks/bench_hotpath.py``)."""
        return price_volume_stats(self.col(price), self.col(volume))

    @property
    def columns(self) -> dict[str, np.ndarray]:
        """Every column as a zero-copy view, by name."""
        return {n: v[self.start : self.stop] for n, v in self._m.cols.items()}

    @property
    def ts_ns(self) -> np.ndarray:
        """``ts`` as int64 nanoseconds since the epoch, UTC (a view)."""
        return self._m.ts_ns[self.start : self.stop]

    @property
    def records(self) -> np.ndarray:
        """records64 only: the structured array of 64-byte records over these rows (a view)."""
        if self._m.records is None:
            raise TypeError(f"{self._m.path.name} is an Arrow export, not records64")
        return self._m.records[self.start : self.stop]

    def batches(self, size: int = BATCH_ROWS) -> Iterator[ExportView]:
        """Consecutive views of at most ``size`` rows covering these rows exactly once."""
        if size <= 0:
            raise ValueError("batch size must be positive")
        for a in range(self.start, self.stop, size):
            yield ExportView(self._m, a, min(a + size, self.stop))

    def to_arrow(self) -> pa.Table:
        """A pyarrow Table of these rows: zero-copy for Arrow exports except boolean columns
        (re-packed to bits); records64 columns are strided, so they are copied."""
        m, n = self._m, len(self)
        if m.table is not None:
            table = m.table.slice(self.start, n)
            for name in m.bool_cols:
                i = table.schema.get_field_index(name)
                table = table.set_column(i, name, pa.array(self.col(name)))
            return table
        rec = self.records
        sym = pa.DictionaryArray.from_arrays(
            pa.array(rec["symbol_id"]), pa.array(m.symbols, pa.string())
        )
        ts = pa.array(np.ascontiguousarray(rec["ts"]), pa.timestamp("ns", tz="UTC"))
        cols = {"symbol": sym, "ts": ts}
        cols.update({k: pa.array(rec[k]) for k in ("open", "high", "low", "close", "volume")})
        cols["flags"] = pa.array(rec["flags"])
        return pa.table(cols)

    def to_polars(self) -> Any:
        """A polars DataFrame of these rows (zero-copy for numeric columns of Arrow exports)."""
        import polars as pl

        return pl.from_arrow(self.to_arrow(), rechunk=False)

    def to_torch(self, name: str) -> Any:
        """Column ``name`` as a torch tensor sharing the mapped memory (read-only: never write
        to it). Timestamps come as int64 nanoseconds. Needs torch installed."""
        try:
            import torch
        except ImportError:
            raise ImportError("to_torch needs PyTorch: pip install torch") from None
        view = self.col(name)
        if view.dtype.kind == "M":
            view = view.view(np.int64)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not writable.*")
            return torch.from_numpy(view)


class ExportReader(ExportView):
    """An opened export: all its rows, its symbol index, and slices by symbol and time."""

    def __init__(
        self, path: str | os.PathLike[str], *, verify: bool = False, populate: bool = False
    ) -> None:
        mapped = _Mapped(Path(path), verify, populate)
        super().__init__(mapped, 0, int(mapped.meta["rows"]))

    @property
    def path(self) -> Path:
        return self._m.path

    @property
    def format(self) -> str:
        """``arrow`` or ``records64``."""
        return "arrow" if self._m.table is not None else "records64"

    @property
    def metadata(self) -> dict[str, Any]:
        """The export's JSON metadata (source mart or SQL, created_at, price basis, ...)."""
        return dict(self._m.meta)

    @property
    def symbols(self) -> list[str]:
        """Symbols in file order; a symbol's code is its position here."""
        return list(self._m.symbols)

    @property
    def buffer(self) -> np.ndarray:
        """The whole mapped file as uint8 (every column view lies inside it)."""
        return self._m.buffer

    def _rows_of(self, symbol: str) -> tuple[int, int]:
        try:
            a, b = self._m.ranges[self._m.index[symbol]]
        except KeyError:
            raise KeyError(f"symbol {symbol!r} is not in {self._m.path.name}") from None
        return int(a), int(b)

    def symbol(self, symbol: str) -> ExportView:
        """All rows of ``symbol`` (found by the index, no scan)."""
        return ExportView(self._m, *self._rows_of(symbol))

    def range(
        self, symbol: str, start: TimeLike | None = None, end: TimeLike | None = None
    ) -> ExportView:
        """Rows of ``symbol`` with ``start <= ts < end``, by index and binary search on ts."""
        a, b = self._rows_of(symbol)
        ts = self._m.ts_ns[a:b]
        lo = a + int(np.searchsorted(ts, to_ns(start), "left")) if start is not None else a
        hi = a + int(np.searchsorted(ts, to_ns(end), "left")) if end is not None else b
        return ExportView(self._m, lo, max(lo, hi))

    def close(self) -> None:
        """Drop this reader's references; the mapping is unmapped once no view remains."""
        self._m = _Closed(self._m.path)  # type: ignore[assignment]

    def __enter__(self) -> ExportReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Closed:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __getattr__(self, name: str) -> Any:
        raise ValueError(f"export {self.path.name} is closed")


def open_export(
    path: str | os.PathLike[str], *, verify: bool = False, populate: bool = False
) -> ExportReader:
    """Map export ``path`` (Arrow or records64) read-only and check it.

    ``verify=True`` also checks every column's CRC-32 and the symbol column against the index
    (reads the whole file once). ``populate=True`` pre-faults the whole mapping (Linux
    ``MAP_POPULATE``): opening costs one pass over the file, and the first scan then runs at
    warm speed. Bad files raise :class:`BadExportError`.
    """
    return ExportReader(path, verify=verify, populate=populate)
