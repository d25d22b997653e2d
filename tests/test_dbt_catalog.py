"""The dbt project describes itself: a catalogue where every column of every public model
(staging, marts, publication) has a description, enforced contracts on the SQL marts,
exposures for what reads the published marts, and source freshness from ingested_at.

One small lake is ingested and built once for the module (seeds and models: the data tests
run elsewhere); ``dbt docs generate`` and ``dbt source freshness`` then run on it
the way warehouse/build.py runs dbt (artifacts under ``<data>/.dbt``).
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ingest.manager import DataManager
from ingest.paths import DataPaths
from ingest.sources.synthetic import SyntheticSource
from server.queries import BARS_MART, COVERAGE_MART, FACTORS_MART, RESAMPLED_MART
from tests.dbt_lake import SmallLake, bars_table
from warehouse.build import REPO, dbt_command, dbt_env
from warehouse.marts import PUBLISHED

pytestmark = pytest.mark.slow

#: the models a user reads; intermediate models are the project's own business
PUBLIC_PATHS = ("models/staging/", "models/marts/", "models/publication/")
SYMBOLS = ["SYN000", "SYN001", "SYN002"]


def dbt(paths: DataPaths, command: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """``dbt <command> <extra>`` as warehouse/build.py runs it; command may be two words
    (``source freshness``, ``docs generate``)."""
    cmd = dbt_command(paths, "COMMAND", extra=extra)
    i = cmd.index("COMMAND")
    cmd[i : i + 1] = command.split()
    return subprocess.run(
        cmd,
        cwd=REPO,
        env=dbt_env(paths),
        capture_output=True,
        text=True,
        timeout=600,
    )


def artifact(paths: DataPaths, name: str) -> dict[str, Any]:
    return json.loads((paths.root / ".dbt" / "target" / name).read_text())


def freshness(paths: DataPaths) -> tuple[int, dict[str, dict[str, Any]]]:
    """dbt source freshness: (exit code, sources.json results by source name)."""
    proc = dbt(paths, "source freshness")
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout[-3000:] + proc.stderr
    results = artifact(paths, "sources.json")["results"]
    return proc.returncode, {r["unique_id"].split(".", 2)[2]: r for r in results}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    paths = DataPaths(tmp_path_factory.mktemp("parse") / "data").ensure()
    proc = dbt(paths, "parse")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    return artifact(paths, "manifest.json")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Freshly ingested bars, actions and trades, built; then docs and freshness."""
    paths = DataPaths(tmp_path_factory.mktemp("catalog") / "data").ensure()
    src = SyntheticSource(seed=3, n_symbols=4)
    with DataManager(paths, sources={"synthetic": src}) as dm:
        dm.ingest(SYMBOLS, "1d", "2021-01-01", "2023-01-01", source="synthetic")
        dm.ingest(SYMBOLS[:1], "tick", "2022-12-28", "2022-12-29", source="synthetic")
    proc = dbt(paths, "build", "--exclude", "resource_type:test", "resource_type:unit_test")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    proc = dbt(paths, "docs generate")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    out = {
        "paths": paths,
        "catalog": artifact(paths, "catalog.json"),
        "manifest": artifact(paths, "manifest.json"),
    }
    out["freshness_rc"], out["freshness"] = freshness(paths)
    return out


def public_models(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        uid: node
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] == "model" and node["original_file_path"].startswith(PUBLIC_PATHS)
    }


# --- documentation -----------------------------------------------------------------------


def test_every_catalogued_column_of_every_public_model_has_a_description(built) -> None:
    models = public_models(built["manifest"])
    catalog = built["catalog"]["nodes"]
    assert set(models) <= set(catalog), (
        f"not in the catalogue: {sorted(set(models) - set(catalog))}"
    )
    undocumented, total = [], 0
    for uid, node in models.items():
        assert node["description"].strip(), f"{uid} has no description"
        described = {
            name.lower(): col.get("description", "").strip()
            for name, col in node["columns"].items()
        }
        columns = catalog[uid]["columns"]
        assert columns, f"{uid}: no columns in the catalogue"
        for name in columns:
            total += 1
            if not described.get(name.lower()):
                undocumented.append(f"{node['name']}.{name}")
    assert not undocumented, f"{len(undocumented)} of {total} columns undocumented: {undocumented}"
    assert total > 300  # every staging model and mart, not an empty catalogue


def test_documented_columns_exist(built) -> None:
    """No description of a column the model does not have (a renamed or dropped column)."""
    catalog = built["catalog"]["nodes"]
    stale = [
        f"{node['name']}.{name}"
        for uid, node in public_models(built["manifest"]).items()
        for name in node["columns"]
        if name.lower() not in {c.lower() for c in catalog[uid]["columns"]}
    ]
    assert not stale


def test_shared_columns_come_from_docs_blocks(manifest) -> None:
    """A column that several public models share is described once, in a docs block: its
    models' descriptions are then the same text (rendered from the block)."""
    docs = {d["block_contents"].strip() for d in manifest["docs"].values()}
    seen: dict[str, set[str]] = {}
    for node in public_models(manifest).values():
        for name, col in node["columns"].items():
            seen.setdefault(name, set()).add(col["description"].strip())
    for name in ("symbol", "source", "ts", "ingested_at", "pair_id", "split_factor"):
        descriptions = seen[name]
        assert any(d in docs for d in descriptions), name
    # the published mart's columns read the same as the staging model's
    nodes = manifest["nodes"]
    assert (
        nodes["model.duckmarket.bars_adjusted"]["columns"]["open"]["description"]
        == nodes["model.duckmarket.stg_lake__bars"]["columns"]["open"]["description"]
    )


# --- contracts ---------------------------------------------------------------------------


def test_every_sql_mart_enforces_its_contract(manifest) -> None:
    marts = {
        node["name"]: node
        for node in public_models(manifest).values()
        if node["original_file_path"].startswith("models/marts/") and node["language"] == "sql"
    }
    assert {"bars_adjusted", "bars_resampled", "coverage_gaps", "pair_bars"} <= set(marts)
    for name, node in marts.items():
        assert node["config"]["contract"]["enforced"], f"{name}: contract not enforced"
        untyped = [c for c, col in node["columns"].items() if not col.get("data_type")]
        assert not untyped, f"{name}: columns without data_type {untyped}"
    # keys are never null: the contract says so, and DuckDB holds the table to it
    keys = {
        "bars_adjusted": ["symbol", "timeframe", "ts", "ingested_at"],
        "bars_resampled": ["symbol", "timeframe", "ts"],
        "coverage_gaps": ["source", "symbol", "timeframe", "gap_class"],
        "pair_bars": ["pair_id", "ts"],
    }
    for name, columns in keys.items():
        for c in columns:
            constraints = marts[name]["columns"][c].get("constraints", [])
            assert {"type": "not_null"} in [{"type": k["type"]} for k in constraints], (name, c)


def test_enforced_not_null_constraints_reach_the_warehouse(built) -> None:
    import duckdb

    con = duckdb.connect(str(built["paths"].warehouse), read_only=True)
    try:
        nullable = dict(
            con.execute(
                "select column_name, is_nullable from information_schema.columns "
                "where table_name = 'bars_adjusted'"
            ).fetchall()
        )
    finally:
        con.close()
    assert nullable["ts"] == "NO" and nullable["split_factor"] == "NO"
    assert nullable["close"] == "YES"


# --- exposures ---------------------------------------------------------------------------


def test_exposures_depend_on_the_published_marts(manifest) -> None:
    exposures = {e["name"]: e for e in manifest["exposures"].values()}
    assert {"published_parquet_marts", "data_server", "hotpath_exports"} <= set(exposures)
    every_mart = {f"model.duckmarket.{name}" for name in PUBLISHED}
    for e in exposures.values():
        assert e["description"].strip() and e["owner"]["name"]
        assert "model.duckmarket.published_marts" in e["depends_on"]["nodes"], e["name"]
    assert every_mart <= set(exposures["published_parquet_marts"]["depends_on"]["nodes"])
    assert every_mart <= set(exposures["hotpath_exports"]["depends_on"]["nodes"])
    served = {BARS_MART, RESAMPLED_MART, FACTORS_MART, COVERAGE_MART}
    assert {f"model.duckmarket.{m}" for m in served} <= set(
        exposures["data_server"]["depends_on"]["nodes"]
    )


# --- source freshness --------------------------------------------------------------------


def test_freshness_passes_on_freshly_ingested_data(built) -> None:
    results = built["freshness"]
    assert built["freshness_rc"] == 0
    assert {"lake.bars", "lake.ticks", "lake.corporate_actions"} <= set(results)
    for name in ("lake.bars", "lake.ticks", "lake.corporate_actions"):
        assert results[name]["status"] == "pass", (name, results[name])
        assert results[name]["max_loaded_at_time_ago_in_s"] < 3600
    # ingested_at is the writer's stamp: it is freshness's clock
    assert results["lake.bars"]["criteria"]["warn_after"] == {"count": 4, "period": "day"}
    assert results["lake.bars"]["criteria"]["error_after"] == {"count": 8, "period": "day"}
    # reference data, rejects, calendars and the manifest mirror have no freshness
    assert not {"lake.symbols", "lake.rejects", "lake.calendars"} & set(results)
    assert not [n for n in results if n.startswith("manifest.")]


def _stale_lake(root: Path, bars_age: timedelta) -> DataPaths:
    """Bars last ingested bars_age ago (written again over the same keys: the new stamp
    wins), actions long ago (tests.dbt_lake stamps 2024-04-01), no trades ever."""
    lake = SmallLake(root)
    ts = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=i) for i in range(5)]
    close = np.linspace(100.0, 104.0, 5)
    ingested = datetime.now(UTC) - bars_age
    lake.put_bars(
        "synthetic", "1d", "AAA", bars_table(ts, close, np.random.default_rng(0), ingested)
    )
    lake.put_actions("synthetic", "AAA", [(ts[2].date(), "dividend", None, 0.5)])
    return DataPaths(root).ensure()


def test_stale_bars_warn_then_error_and_a_dataset_never_ingested_does_not_crash(
    tmp_path: Path,
) -> None:
    paths = _stale_lake(tmp_path / "data", timedelta(days=5))
    rc, results = freshness(paths)
    assert rc == 0  # warnings only
    assert results["lake.bars"]["status"] == "warn"
    assert 4 * 86400 < results["lake.bars"]["max_loaded_at_time_ago_in_s"] < 6 * 86400
    assert results["lake.corporate_actions"]["status"] == "warn"
    # no trades were ever ingested: reported as never loaded, a warning, not an error
    assert results["lake.ticks"]["status"] == "warn"
    assert results["lake.ticks"]["max_loaded_at"].startswith("0001-01-01")

    paths = _stale_lake(tmp_path / "data", timedelta(days=10))
    rc, results = freshness(paths)
    assert results["lake.bars"]["status"] == "error"
    assert 9 * 86400 < results["lake.bars"]["max_loaded_at_time_ago_in_s"] < 11 * 86400
    assert rc == 1
