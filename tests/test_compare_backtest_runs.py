"""analyses/compare_backtest_runs.sql: compiled by `dbt compile`, run against a warehouse
that holds recorded runs (record_backtest) and the reference pairs runs, it lists every
run with its metrics and the config values that differ from the strategy's most common
ones."""

from __future__ import annotations

import json
import math

import duckdb
import pytest

from ingest.backtests import record_backtest
from ingest.manager import DataManager
from ingest.paths import DataPaths
from ingest.sources.synthetic import SyntheticSource
from tests.test_backtest_store import _run
from tests.test_dbt_catalog import dbt
from warehouse.backtest_metrics import METRICS

pytestmark = pytest.mark.slow

SYMBOLS = ["SYN000", "SYN001", "SYN002", "SYN003"]  # six seeded pairs
VARS = {"coint_min_obs": 60, "backtest_entry_z": 1.5, "backtest_stop_z": 3.0}


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> dict:
    paths = DataPaths(tmp_path_factory.mktemp("compare") / "data").ensure()
    src = SyntheticSource(seed=42, n_symbols=12)
    with DataManager(paths, sources={"synthetic": src}) as dm:
        report = dm.ingest(SYMBOLS, "1d", "2020-01-01", "2022-01-01", source="synthetic")
    assert not report.failed
    # two runs of the usual config (from two engines), one that changes entry and adds stop
    recorded = {
        "usual_notebook": record_backtest(paths, **_run()).run_id,
        "usual_vectorbt": record_backtest(paths, **_run(engine="vectorbt")).run_id,
        "changed": record_backtest(
            paths, **_run(config={"entry": 2.5, "exit": 0.0, "legs": ["KO"], "stop": 4})
        ).run_id,
    }
    select = ["--select", "source:backtests+", "+path:models/marts/pairs_backtest"]
    proc = dbt(paths, "build", *select, "--vars", json.dumps(VARS))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    proc = dbt(paths, "compile", "--select", "compare_backtest_runs", "--vars", json.dumps(VARS))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    compiled = (
        paths.root / ".dbt/target/compiled/duckmarket/analyses/compare_backtest_runs.sql"
    ).read_text()
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        cur = con.execute(compiled)
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        expected = {
            "recorded": con.execute("select * from backtest_metrics").df(),
            "reference": con.execute("select * from pairs_backtest_metrics").df(),
            "reference_runs": con.execute("select run_id, config from pairs_backtest_runs").df(),
        }
    finally:
        con.close()
    return {"compiled": compiled, "rows": rows, "run_ids": recorded, **expected}


def test_the_analysis_compiles_to_the_warehouse_relations(compared):
    sql = compared["compiled"]
    assert "{{" not in sql and "ref(" not in sql
    for relation in ("stg_backtests__runs", "backtest_metrics", "pairs_backtest_runs"):
        assert f'"{relation}"' in sql


def test_every_run_is_listed_once_with_its_metrics(compared):
    rows = {r["run_id"]: r for r in compared["rows"]}
    assert len(rows) == len(compared["rows"])
    recorded, reference = compared["recorded"], compared["reference"]
    assert len(recorded) == 3 and len(reference) >= 6
    assert set(rows) == set(recorded["run_id"]) | set(reference["run_id"])
    for origin in ("recorded", "reference"):
        for m in compared[origin].to_dict("records"):
            row = rows[m["run_id"]]
            assert row["origin"] == origin
            for name in METRICS:
                want, got = m[name], row[name]
                if want is None or (isinstance(want, float) and math.isnan(want)):
                    assert got is None or math.isnan(got), name
                else:
                    assert got == want, name
    # per strategy, best Sharpe first
    strategies = [r["strategy"] for r in compared["rows"]]
    assert strategies == sorted(strategies)


def test_config_differences_are_against_the_most_common_values(compared):
    rows = {r["run_id"]: r for r in compared["rows"]}
    ids = compared["run_ids"]
    changed = rows[ids["changed"]]
    assert changed["n_config_differences"] == 2
    assert json.loads(changed["config_differences"]) == {"$.entry": 2.5, "$.stop": 4}
    # entry's most common value is 2.0; stop's is absent (null) in two of three runs
    assert json.loads(changed["config_most_common"]) == {"$.entry": 2.0, "$.stop": None}
    for usual in ("usual_notebook", "usual_vectorbt"):
        row = rows[ids[usual]]
        assert row["n_config_differences"] == 0
        assert json.loads(row["config_differences"]) == {}
    # the reference runs of one build share their config: nothing sets one apart
    for run in compared["reference_runs"].itertuples():
        row = rows[run.run_id]
        assert row["n_config_differences"] == 0
        assert json.loads(row["config"]) == json.loads(run.config)
        assert json.loads(row["config"])["entry_z"] == VARS["backtest_entry_z"]
