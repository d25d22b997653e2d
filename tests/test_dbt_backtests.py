"""The backtest store in dbt: staging shows registered runs only, and the backtest_metrics
mart equals the Python API's metrics (the same function computes both)."""

from __future__ import annotations

import math
from datetime import timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ingest.backtests import record_backtest
from ingest.lake import Lake
from ingest.paths import DataPaths
from tests.test_backtest_store import _run
from tests.test_dbt_catalog import dbt
from warehouse.backtest_metrics import METRICS, run_metrics

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    paths = DataPaths(tmp_path_factory.mktemp("backtests") / "data").ensure()
    runs = [
        record_backtest(paths, **_run()),
        record_backtest(paths, **_run(config={"entry": 2.5}, periods_per_year=52.0)),
    ]
    # a recording killed before its runs row: result files on disk, no run
    real = Lake.upsert_partition

    def dying(self, dataset, keys, new, **kw):
        if dataset.name == "backtest_runs":
            raise KeyboardInterrupt
        return real(self, dataset, keys, new, **kw)

    Lake.upsert_partition = dying
    try:
        with pytest.raises(KeyboardInterrupt):
            record_backtest(paths, **_run(config={"entry": 9.0}))
    finally:
        Lake.upsert_partition = real
    proc = dbt(paths, "build", "--select", "source:backtests+")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    return paths, runs


def _query(paths: DataPaths, sql: str):
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_staging_shows_registered_runs_only(built):
    paths, runs = built
    expected = sorted(r.run_id for r in runs)
    for model in ("runs", "signals", "fills", "trades", "equity"):
        got = _query(paths, f"select distinct run_id from staging.stg_backtests__{model}")
        assert sorted(r[0] for r in got) == expected, model


def test_the_metrics_mart_equals_the_python_api(built):
    paths, _runs = built
    cols = ", ".join(["run_id", *METRICS])
    mart = {r[0]: r[1:] for r in _query(paths, f"select {cols} from backtest_metrics")}
    api = run_metrics(paths)
    assert set(mart) == set(api["run_id"].to_list())
    for row in api.iter_rows(named=True):
        for name, value in zip(METRICS, mart[row["run_id"]], strict=True):
            expected = row[name]
            if isinstance(expected, float) and math.isnan(expected):
                assert value is None or math.isnan(value), name
            else:
                assert value == expected, name


def test_a_lake_without_backtests_builds_empty_models(tmp_path):
    paths = DataPaths(tmp_path / "data").ensure()
    proc = dbt(paths, "build", "--select", "source:backtests+")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr
    assert _query(paths, "select count(*) from backtest_metrics") == [(0,)]
    assert _query(paths, "select count(*) from staging.stg_backtests__fills") == [(0,)]


def test_data_tests_catch_a_fill_before_its_signal_and_unbalanced_equity(tmp_path):
    """Files altered behind record_backtest's back: the dbt data tests still catch them."""
    paths = DataPaths(tmp_path / "data").ensure()
    run = record_backtest(paths, **_run())
    fills = paths.lake / "fills" / f"run_id={run.run_id}" / "data.parquet"
    t = pq.read_table(fills)
    early = pc.subtract(t.column("ts"), pa.scalar(timedelta(days=3)))
    pq.write_table(t.set_column(t.schema.get_field_index("ts"), "ts", early), fills)
    equity = paths.lake / "equity" / f"run_id={run.run_id}" / "data.parquet"
    t = pq.read_table(equity)
    cash = pc.add(t.column("cash"), 1.0)
    pq.write_table(t.set_column(t.schema.get_field_index("cash"), "cash", cash), equity)
    proc = dbt(paths, "build", "--select", "source:backtests+")
    assert proc.returncode != 0
    for name in ("assert_backtest_fills_after_signals", "assert_backtest_equity_balances"):
        failed = [line for line in proc.stdout.splitlines() if "FAIL" in line and name in line]
        assert failed, proc.stdout[-3000:]
