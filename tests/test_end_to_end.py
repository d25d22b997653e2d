"""From ingest to marts: the synthetic source, the lake, a full `dbt build`, the marts.

The synthetic source knows the economic (total-return) price path behind its as-traded
bars, so the warehouse's adjustment is checked against ground truth: a total-return
adjusted close divided by the economic close must be one constant per symbol over its
whole history, across every split and dividend.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pytest

from ingest.manager import DataManager
from ingest.manifest import Manifest
from ingest.paths import DataPaths
from ingest.sources.synthetic import SyntheticSource
from warehouse.build import run_build
from warehouse.layout import list_marts, mart_location, parquet_scan

START, END = datetime(2008, 1, 1, tzinfo=UTC), datetime(2013, 1, 1, tzinfo=UTC)


def _symbol_with_split_and_dividends(src: SyntheticSource) -> tuple[str, datetime]:
    for sym in src.list_symbols():
        acts = src.fetch_bars(sym, "1d", START, END).actions
        if acts is None or acts.num_rows == 0:
            continue
        types = acts.column("action_type").to_pylist()
        if "split" in types and "dividend" in types:
            d = acts.column("ex_date").to_pylist()[types.index("split")]
            return sym, datetime(d.year, d.month, d.day, tzinfo=UTC)
    raise AssertionError("the synthetic universe should hold a symbol with both actions")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    paths = DataPaths(tmp_path_factory.mktemp("e2e") / "data").ensure()
    src = SyntheticSource(seed=42, n_symbols=4)
    sym, split_day = _symbol_with_split_and_dividends(src)
    with DataManager(paths, sources={"synthetic": src}) as dm:
        dm.ingest(src.list_symbols(), "1d", START, END, source="synthetic")
        # a week of minute bars around the split, for the intraday adjustment
        dm.ingest(
            [sym],
            "1m",
            split_day - timedelta(days=4),
            split_day + timedelta(days=3),
            source="synthetic",
        )
        # and two hours of trades on the split day, aggregated to 1m by the warehouse
        dm.ingest(
            [sym],
            "tick",
            split_day + timedelta(hours=14, minutes=30),
            split_day + timedelta(hours=16, minutes=30),
            source="synthetic",
        )
    result = run_build(paths, quiet=True)
    assert result.ok, (result.error or "") + result.output[-3000:]
    return {"paths": paths, "src": src, "symbol": sym, "split_day": split_day, "result": result}


def _scan(paths: DataPaths, name: str) -> str:
    """SQL reading a published mart (one file, or a partitioned mart's files)."""
    return parquet_scan(mart_location(paths.marts, name))


def _ratio(w, timeframe: str, start: datetime, end: datetime) -> np.ndarray:
    src, sym = w["src"], w["symbol"]
    truth = src.economic_close(sym, timeframe, start, end)
    bad = {t for t in src.faults(sym, timeframe, start, end)["bad_print"]}
    con = duckdb.connect()
    con.register("truth", truth)
    rows = con.execute(
        f"""select b.ts, b.close_adj / t.close
            from {_scan(w["paths"], "bars_adjusted")} as b
            inner join truth as t on b.ts = t.ts
            where b.symbol = ? and b.timeframe = ? order by b.ts""",
        [sym, timeframe],
    ).fetchall()
    assert len(rows) > 10
    return np.array([r for ts, r in rows if ts not in bad])


def test_daily_total_return_adjustment_matches_the_economic_price_path(warehouse):
    r = _ratio(warehouse, "1d", START, END)
    assert np.max(np.abs(r / r[-1] - 1)) < 1e-9


def test_intraday_adjustment_across_a_split_matches_too(warehouse):
    day = warehouse["split_day"]
    r = _ratio(warehouse, "1m", day - timedelta(days=4), day + timedelta(days=3))
    assert np.max(np.abs(r / r[-1] - 1)) < 1e-9


def test_ticks_aggregate_in_the_warehouse_to_the_sources_minute_bars(warehouse):
    day = warehouse["split_day"]
    a, b = day + timedelta(hours=14, minutes=30), day + timedelta(hours=16, minutes=30)
    bars = warehouse["src"].fetch_bars(warehouse["symbol"], "1m", a, b).bars
    got = duckdb.execute(
        f"""select ts, open, high, low, close, volume
            from {_scan(warehouse["paths"], "bars_from_ticks")}
            where symbol = ? order by ts""",
        [warehouse["symbol"]],
    ).fetchall()
    assert [r[0] for r in got] == bars.column("ts").to_pylist()
    for i, c in enumerate(("open", "high", "low", "close"), start=1):
        assert [r[i] for r in got] == bars.column(c).to_pylist(), c
    np.testing.assert_allclose([r[5] for r in got], bars.column("volume").to_numpy(), rtol=1e-12)


def test_the_build_is_recorded_with_the_lake_files_it_read(warehouse):
    with Manifest(warehouse["paths"].manifest) as m:
        run = m.last_build_run()
        live = {f.file_id for f in m.live_files()}
    assert run is not None
    assert run["build_id"] == warehouse["result"].build_run_id
    assert run["status"] == "ok"
    read = set(json.loads(run["data_files"]))
    assert read
    assert read <= live


def test_every_mart_is_exported_and_readable(warehouse):
    marts = warehouse["paths"].marts
    names = set(list_marts(marts))
    for name in (
        "bars_adjusted",
        "bars_resampled",
        "coverage_summary",
        "quality_quarantine",
        "pair_spreads",
        "pair_cointegration",
        "features_technical_v1",
    ):
        assert name in names
        n = duckdb.sql(f"select count(*) from {_scan(warehouse['paths'], name)}").fetchone()[0]
        assert n > 0, name


def test_a_second_build_with_nothing_new_changes_nothing(warehouse):
    paths = warehouse["paths"]
    q = (
        f"select symbol, timeframe, ts, close_adj, volume_adj, is_suspect "
        f"from {_scan(paths, 'bars_adjusted')} order by all"
    )
    before = duckdb.sql(q).fetchall()
    result = run_build(paths, quiet=True)
    assert result.ok
    assert duckdb.sql(q).fetchall() == before
