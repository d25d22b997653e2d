"""Where a mart lives in a published set, and how to read it (the readers' side of the
layout warehouse/marts.py writes): ``<mart>.parquet``, one file, or ``<mart>/``, a
dataset partitioned by symbol[, timeframe] and period (``<mart>/<symbol>/<timeframe>/
<period>.parquet``) whose files each hold every column.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pyarrow as pa

__all__ = ["list_marts", "mart_files", "mart_location", "parquet_scan", "read_table", "sql_literal"]


def sql_literal(value: str) -> str:
    """``value`` as a SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def mart_location(set_dir: Path | str, name: str) -> Path | None:
    """Where mart ``name`` lives in a published set (or a plain marts directory): its
    file ``<name>.parquet``, or its partitioned directory ``<name>/``; None if neither.
    Symbolic links are never followed (only what the publication wrote is read)."""
    base = Path(set_dir)
    for candidate in (base / f"{name}.parquet", base / name):
        try:
            mode = os.lstat(candidate).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode) and candidate.suffix == ".parquet":
            return candidate
        if stat.S_ISDIR(mode) and candidate.suffix != ".parquet":
            return candidate
    return None


def mart_files(location: Path | str) -> list[Path]:
    """The Parquet files of a mart at ``location`` (a file, or a partitioned directory's
    files in path order), hidden and temporary files left out."""
    location = Path(location)
    if location.is_file():
        return [location]
    return sorted(
        p
        for p in location.rglob("*.parquet")
        if not any(part.startswith(".") for part in p.relative_to(location).parts)
        and not p.is_symlink()
    )


def parquet_scan(location: Path | str) -> str:
    """SQL reading the mart at ``location``: ``read_parquet('<file>')``, or the glob of a
    partitioned mart's files (each holds every column)."""
    location = Path(location)
    if location.is_dir():
        glob = str(location / "**" / "*.parquet")
        return f"read_parquet({sql_literal(glob)})"
    return f"read_parquet({sql_literal(str(location))})"


def list_marts(set_dir: Path | str) -> list[str]:
    """Names of the marts in a published set (or a plain marts directory)."""
    base = Path(set_dir)
    if not base.is_dir():
        return []
    names = set()
    for entry in base.iterdir():
        name = entry.name.removesuffix(".parquet")
        if entry.name.startswith((".", "_")) or not name.isidentifier():
            continue
        if mart_location(base, name) is not None:
            names.add(name)
    return sorted(names)


def read_table(set_dir: Path | str, name: str) -> pa.Table:
    """Mart ``name`` of a published set (or a plain marts directory) as one Arrow table, in
    file order; FileNotFoundError if the set has no such mart."""
    import pyarrow.parquet as pq

    location = mart_location(set_dir, name)
    if location is None:
        raise FileNotFoundError(f"no mart {name!r} under {set_dir}")
    files = mart_files(location)
    return pa.concat_tables([pq.read_table(f) for f in files])
