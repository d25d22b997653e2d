"""The published marts: ``<data>/marts/<name>.parquet``, what Python readers, the hot path
and the server read (never the DuckDB file, which dbt holds while it builds).

A model is published when its yml says ``meta: {export: true}`` (with ``export_order_by``
for the row order). After a successful build each one is copied out of the warehouse to a
temporary file beside its target and renamed over the old file, so a reader never sees a
half-written mart.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import duckdb

from ingest.paths import DataPaths

ROW_GROUP_SIZE = 122_880


def exported_models(paths: DataPaths) -> dict[str, list[str]]:
    """{model name: export order columns} for models with ``meta.export`` true."""
    path = paths.root / ".dbt" / "target" / "manifest.json"
    nodes = json.loads(path.read_text())["nodes"]
    out: dict[str, list[str]] = {}
    for node in nodes.values():
        if node.get("resource_type") != "model":
            continue
        meta = {**node.get("meta", {}), **node.get("config", {}).get("meta", {})}
        if meta.get("export"):
            out[node["name"]] = list(meta.get("export_order_by") or [])
    return out


def export_marts(
    paths: DataPaths, *, only_run: bool = False, results: list[dict[str, Any]] | None = None
) -> dict[str, Path]:
    """Copy exported marts to ``<data>/marts/<name>.parquet`` atomically; returns the paths."""
    models = exported_models(paths)
    if only_run and results is not None:
        ran = {
            r["unique_id"].rsplit(".", 1)[-1]
            for r in results
            if r.get("status") == "success" and r["unique_id"].startswith("model.")
        }
        models = {k: v for k, v in models.items() if k in ran}
    paths.marts.mkdir(parents=True, exist_ok=True)
    done: dict[str, Path] = {}
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        con.execute("set TimeZone = 'UTC'")
        existing = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'main'"
            ).fetchall()
        }
        for name, order in sorted(models.items()):
            if name not in existing:
                continue
            columns = {
                r[0]
                for r in con.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = 'main' and table_name = ?",
                    [name],
                ).fetchall()
            }
            order = [c for c in order if c in columns]
            target = paths.marts / f"{name}.parquet"
            tmp = paths.marts / f".{name}.parquet.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            order_sql = f" order by {', '.join(_q(c) for c in order)}" if order else ""
            try:
                con.execute(
                    f"copy (select * from main.{_q(name)}{order_sql}) to '{tmp}' "
                    f"(format parquet, compression zstd, row_group_size {ROW_GROUP_SIZE})"
                )
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            done[name] = target
    finally:
        con.close()
    return done


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def summary(paths: DataPaths) -> dict[str, Any]:
    """What the warehouse holds, from the Parquet marts (never opens the DuckDB file)."""
    marts = {p.stem: p for p in sorted(paths.marts.glob("*.parquet"))}
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
