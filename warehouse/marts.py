"""The published marts: what Python readers, the hot path and the server read (never the
DuckDB file, which dbt holds while it builds).

Layout, under the data root::

    marts -> .marts/<build_id>          a symbolic link: the current set
    .marts/<build_id>/<mart>.parquet    one file per mart
    .marts/<build_id>/_set.json         the set's build id, time, and each mart's rows and bytes

Publication is the last node of ``dbt build`` (``models/publication/published_marts.py``
refs every mart), so plain ``dbt build`` and ``duckmarket build`` publish the same files.
It writes every mart of the warehouse into a new hidden directory, fsyncs it, renames it
to its build id, then swaps the ``marts`` link to it with one ``os.replace``: a reader that
opens ``marts/<mart>.parquet`` sees every mart of one build or every mart of the previous
one, never a mix and never a half-written file. A failed mart or test skips publication,
so readers keep the previous set. The previous set stays on disk (a reader that resolved
the link just before the swap can finish); older sets and the partial sets of killed
builds are swept by the next publication.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from ingest.paths import DataPaths

from .pit import as_of_macro

ROW_GROUP_SIZE = 122_880
SETS_DIR = ".marts"
SET_FILE = "_set.json"
_PARTIAL = ".partial-"

__all__ = [
    "PUBLISHED",
    "PublishedSet",
    "connect_marts",
    "current_set",
    "publish",
    "publish_marts",
    "summary",
]

#: every published mart and the columns its file is sorted by; the publication model
#: (models/publication/published_marts.py) refs each of them
PUBLISHED: dict[str, tuple[str, ...]] = {
    "adjustment_factors": ("symbol", "known_from", "valid_from"),
    "backtest_metrics": ("run_id",),
    "bars_adjusted": ("symbol", "timeframe", "ts"),
    "bars_bid_ask": ("symbol", "timeframe", "ts"),
    "bars_from_ticks": ("symbol", "ts"),
    "bars_resampled": ("symbol", "timeframe", "ts"),
    "corporate_actions": ("symbol", "ex_date"),
    "coverage_gaps": ("symbol", "timeframe", "gap_start_at"),
    "coverage_summary": ("symbol", "timeframe", "source"),
    "feature_set_registry": (),
    "features_technical_v1": ("symbol", "ts"),
    "pair_bars": (),
    "pair_candidates": (),
    "pair_cointegration": (),
    "pair_kalman": (),
    "pair_ou_parameters": (),
    "pair_spreads": (),
    "pair_universe": (),
    "pairs_backtest_equity": ("run_id", "ts"),
    "pairs_backtest_fills": ("run_id", "fill_id"),
    "pairs_backtest_metrics": ("run_id",),
    "pairs_backtest_runs": ("run_id",),
    "pairs_backtest_signals": ("run_id", "signal_id"),
    "pairs_backtest_trades": ("run_id", "trade_id"),
    "perpetual_bars": ("symbol", "timeframe", "ts"),
    "quality_quarantine": ("symbol", "ts"),
    "total_return_factors": ("symbol", "valid_from"),
    "walk_forward_splits": (),
}


@dataclass
class PublishedSet:
    """One published set of marts."""

    build_id: str
    path: Path
    published_at: str
    marts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def file(self, mart: str) -> Path:
        return self.path / f"{mart}.parquet"


def current_set(paths: DataPaths) -> PublishedSet | None:
    """The set ``<data>/marts`` points to now (None before the first publication, or when
    ``marts`` is a plain directory of files someone put there)."""
    link = paths.marts
    if not link.is_symlink():
        return None
    target = Path(os.path.realpath(link))
    try:
        meta = json.loads((target / SET_FILE).read_text())
    except (OSError, ValueError):
        return None
    return PublishedSet(meta["build_id"], target, meta["published_at"], meta["marts"])


def publish(
    con: duckdb.DuckDBPyConnection,
    paths: DataPaths,
    marts: Mapping[str, Sequence[str]] = PUBLISHED,
    *,
    schema: str = "main",
) -> PublishedSet:
    """Write every mart in ``marts`` that exists in ``schema`` to a new set and make it the
    current one. ``marts`` maps a mart to the columns its file is sorted by."""
    root = paths.root
    sets = root / SETS_DIR
    sets.mkdir(parents=True, exist_ok=True)
    previous = current_set(paths)
    build_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"
    partial = sets / f"{_PARTIAL}{build_id}"
    partial.mkdir()
    existing = {
        name: {
            r[0]
            for r in con.execute(
                "select column_name from information_schema.columns "
                "where table_schema = ? and table_name = ?",
                [schema, name],
            ).fetchall()
        }
        for name in marts
    }
    written: dict[str, dict[str, Any]] = {}
    try:
        for name, order in sorted(marts.items()):
            columns = existing[name]
            if not columns:
                continue  # not built in this warehouse (a selection that left it out)
            order = [c for c in order if c in columns]
            target = partial / f"{name}.parquet"
            order_sql = f" order by {', '.join(_q(c) for c in order)}" if order else ""
            con.execute(
                f"copy (select * from {_q(schema)}.{_q(name)}{order_sql}) to '{target}' "
                f"(format parquet, compression zstd, row_group_size {ROW_GROUP_SIZE})"
            )
            _fsync(target)
            rows = con.execute(
                "select sum(row_group_num_rows) from "
                "(select distinct row_group_id, row_group_num_rows from parquet_metadata(?))",
                [str(target)],
            ).fetchone()
            written[name] = {"rows": int(rows[0] or 0), "bytes": target.stat().st_size}
        published_at = datetime.now(UTC).isoformat()
        meta = {"build_id": build_id, "published_at": published_at, "marts": written}
        (partial / SET_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
        _fsync(partial / SET_FILE)
        _fsync(partial)
        final = sets / build_id
        os.replace(partial, final)
        _fsync(sets)
        legacy = _point_marts_at(paths, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    keep = {build_id} | ({previous.build_id} if previous else set()) | legacy
    sweep(paths, keep)
    return PublishedSet(build_id, final, published_at, written)


def _point_marts_at(paths: DataPaths, target: Path) -> set[str]:
    """Swap the ``marts`` link to ``target`` in one rename. A plain ``marts`` directory (a
    data root from before sets, or files put there by hand) first moves into ``.marts``,
    where it is kept until the next publication; returns its name then."""
    link = paths.marts
    moved: set[str] = set()
    if link.exists() and not link.is_symlink():
        legacy = target.parent / f"legacy-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
        os.replace(link, legacy)
        moved.add(legacy.name)
    tmp = paths.root / f".marts-link-{uuid.uuid4().hex[:8]}"
    os.symlink(os.path.relpath(target, paths.root), tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(paths.root)
    return moved


def sweep(paths: DataPaths, keep: set[str]) -> int:
    """Remove every set but ``keep``, the partial sets of killed publications and stray
    links; returns how many were removed."""
    removed = 0
    sets = paths.root / SETS_DIR
    if sets.is_dir():
        for d in sets.iterdir():
            if d.name not in keep:
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
    for tmp in paths.root.glob(".marts-link-*"):
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed += 1
    return removed


def connect_marts(paths: DataPaths) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with every published mart as a view (and the table macro
    ``bars_as_of``), all from one published set: SQL over the marts that never touches
    the warehouse file, so it runs while dbt builds."""
    published = Path(os.path.realpath(paths.marts))
    con = duckdb.connect(":memory:")
    con.execute("set TimeZone = 'UTC'")
    names = []
    for path in sorted(published.glob("*.parquet")) if published.is_dir() else []:
        name = path.stem
        literal = "'" + str(path).replace("'", "''") + "'"
        con.execute(f"create view {_q(name)} as select * from read_parquet({literal})")
        names.append(name)
    if {"bars_adjusted", "adjustment_factors"} <= set(names):
        with contextlib.suppress(duckdb.Error):  # marts of an older shape go without it
            con.execute(as_of_macro())
    return con


def publish_marts(paths: DataPaths) -> PublishedSet:
    """Publish the warehouse's marts from outside dbt (the warehouse opened read-only)."""
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        con.execute("set TimeZone = 'UTC'")
        return publish(con, paths, PUBLISHED)
    finally:
        con.close()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def summary(paths: DataPaths) -> dict[str, Any]:
    """What the warehouse holds, from the Parquet marts (never opens the DuckDB file)."""
    published = Path(os.path.realpath(paths.marts))  # every mart from one published set
    marts = {p.stem: p for p in sorted(published.glob("*.parquet"))}
    out: dict[str, Any] = {"marts": str(paths.marts)}
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        if "bars_adjusted" in marts:
            rows = con.execute(
                "select timeframe, count(*), sum(is_invalid::int), sum(is_outlier::int) "
                "from read_parquet(?) group by all order by all",
                [str(marts["bars_adjusted"])],
            ).fetchall()
            out["symbols"] = con.execute(
                "select count(distinct symbol) from read_parquet(?)", [str(marts["bars_adjusted"])]
            ).fetchone()[0]
            out["bars"] = {tf: n for tf, n, _, _ in rows}
            out["invalid bars"] = sum(int(v or 0) for _, _, v, _ in rows)
            out["outlier bars"] = sum(int(v or 0) for *_, v in rows)
        if "bars_resampled" in marts:
            out["resampled bars"] = dict(
                con.execute(
                    "select timeframe, count(*) from read_parquet(?) group by all order by all",
                    [str(marts["bars_resampled"])],
                ).fetchall()
            )
        if "coverage_summary" in marts:
            row = con.execute(
                "select count(*), round(avg(completeness), 4), sum(gap_count), "
                "sum(fetchable_gaps), sum(beyond_reach_gaps), sum(vendor_empty_gaps) "
                "from read_parquet(?)",
                [str(marts["coverage_summary"])],
            ).fetchone()
            out["coverage"] = {
                "series": row[0],
                "mean completeness": row[1],
                "gaps": int(row[2] or 0),
                "fetchable": int(row[3] or 0),
                "beyond reach": int(row[4] or 0),
                "vendor returned nothing": int(row[5] or 0),
            }
        if "quality_quarantine" in marts:
            out["quarantined rows"] = dict(
                con.execute(
                    "select reason, count(*) from read_parquet(?) group by all order by 2 desc",
                    [str(marts["quality_quarantine"])],
                ).fetchall()
            )
    finally:
        con.close()
    out["mart files"] = [p.name for p in marts.values()]
    return out
