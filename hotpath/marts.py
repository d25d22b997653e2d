"""The one obvious way to read a materialised Parquet mart from Python (polars, lazily).

Projection (``columns``) and predicates (``symbols``, ``start`` inclusive, ``end`` exclusive)
are pushed into the Parquet scan, so a point query reads only the row groups it needs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl

from ingest.errors import InvalidInputError
from ingest.paths import DataPaths
from ingest.timeutil import TimeLike, to_datetime
from warehouse import layout
from warehouse.remote import is_remote

__all__ = ["list_marts", "mart_path", "read_mart", "scan_mart"]

_MART_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

DataDir = str | os.PathLike[str] | DataPaths | None


def _paths(data_dir: DataDir) -> DataPaths:
    return data_dir if isinstance(data_dir, DataPaths) else DataPaths.from_arg(data_dir)


def list_marts(data_dir: DataDir = None) -> list[str]:
    """Names of the marts materialised as Parquet under ``<data>/marts``."""
    return layout.list_marts(_paths(data_dir).marts)


def mart_path(name: str, data_dir: DataDir = None) -> Path:
    """Where mart ``name`` is: its Parquet file, or the directory of a partitioned mart
    (the bar marts: ``<mart>/<symbol>/<timeframe>/<period>.parquet``, every column in
    every file). A clear error if the name is unsafe or the mart not built.
    Paths are within the set the ``marts`` link names now (one build's marts)."""
    if not _MART_NAME.match(name):
        raise InvalidInputError(
            f"invalid mart name {name!r}: use the model's name, e.g. bars_adjusted"
        )
    paths = _paths(data_dir)
    path = layout.mart_location(os.path.realpath(paths.marts), name)
    if path is None:
        known = ", ".join(list_marts(paths)) or "none yet"
        raise InvalidInputError(
            f"no mart {name!r} under {paths.marts} (available: {known}); "
            "run `dbt build` to materialise the marts"
        )
    return path


def _scan_remote(name: str, url: str) -> pl.LazyFrame:
    """Mart ``name`` of the current snapshot at ``url`` (s3://bucket/prefix, as
    ``duckmarket push`` wrote it), through polars' own S3 support."""
    from warehouse.remote import RemoteStore

    if not _MART_NAME.match(name):
        raise InvalidInputError(
            f"invalid mart name {name!r}: use the model's name, e.g. bars_adjusted"
        )
    store = RemoteStore(url)
    return pl.scan_parquet(store.mart_files(name), storage_options=store.endpoint.polars_options())


def scan_mart(
    name: str,
    *,
    columns: Sequence[str] | None = None,
    symbols: Iterable[str] | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    timeframe: str | None = None,
    data_dir: DataDir = None,
) -> pl.LazyFrame:
    """A lazy scan of mart ``name`` with the given projection and filters pushed down.
    ``data_dir`` may also be the ``s3://bucket/prefix`` a ``duckmarket push`` wrote to.

    A mart with a ``timeframe`` column (``bars_adjusted`` holds 1d and 1m bars) is read one
    timeframe at a time: ``timeframe`` picks it, and is needed when the selection holds
    several (two timeframes in one frame would be counted twice by any aggregate)."""
    if is_remote(data_dir):
        lf = _scan_remote(name, str(data_dir))
    else:
        lf = pl.scan_parquet(layout.mart_files(mart_path(name, data_dir)))
    schema = lf.collect_schema()
    wanted = list(columns) if columns is not None else None
    needed = set(wanted or [])
    if symbols is not None:
        needed.add("symbol")
    if start is not None or end is not None:
        needed.add("ts")
    missing = sorted(needed - set(schema.names()))
    if missing:
        raise InvalidInputError(
            f"mart {name!r} has no column(s) {', '.join(missing)}; "
            f"its columns are: {', '.join(schema.names())}"
        )
    if symbols is not None:
        if isinstance(symbols, str):
            symbols = [symbols]
        lf = lf.filter(pl.col("symbol").is_in(list(symbols)))
    if start is not None:
        lf = lf.filter(pl.col("ts") >= pl.lit(to_datetime(start)))
    if end is not None:
        lf = lf.filter(pl.col("ts") < pl.lit(to_datetime(end)))
    if "timeframe" in schema.names():
        held = (
            lf.select(pl.col("timeframe").drop_nulls().unique().sort())
            .collect()["timeframe"]
            .to_list()
        )
        if timeframe is None and len(held) > 1:
            raise InvalidInputError(
                f"mart {name!r} holds {len(held)} timeframes here ({', '.join(map(str, held))}); "
                "read one at a time with timeframe="
            )
        if timeframe is not None:
            if timeframe not in held:
                raise InvalidInputError(
                    f"mart {name!r} has no {timeframe} rows here; it holds "
                    f"{', '.join(map(str, held)) or 'none'}"
                )
            lf = lf.filter(pl.col("timeframe") == timeframe)
    elif timeframe is not None:
        raise InvalidInputError(f"mart {name!r} has no timeframe column")
    if wanted is not None:
        lf = lf.select(wanted)
    return lf


def read_mart(
    name: str,
    *,
    columns: Sequence[str] | None = None,
    symbols: Iterable[str] | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    timeframe: str | None = None,
    data_dir: DataDir = None,
) -> pl.DataFrame:
    """Read mart ``name`` (``<data>/marts/<name>.parquet``, or the files of a partitioned
    mart) into a polars DataFrame.

    ``columns`` projects, ``symbols`` filters, ``start`` is inclusive and ``end`` exclusive
    (aware datetimes, dates or ISO strings; strings without an offset are UTC), ``timeframe``
    picks the bars' timeframe (needed when the selection holds several). Rows keep the
    mart's order, (symbol, ts).
    """
    return scan_mart(
        name,
        columns=columns,
        symbols=symbols,
        start=start,
        end=end,
        timeframe=timeframe,
        data_dir=data_dir,
    ).collect()
