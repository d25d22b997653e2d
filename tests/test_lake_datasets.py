"""Ticks, corporate actions, symbols and the manifest mirror dbt reads."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.manager import DataManager
from ingest.schema import TS_TYPE

from .conftest import FakeSource


def _ticks(start: datetime, n: int, seq0: int = 0, price: float = 10.0) -> pa.Table:
    return pa.table(
        {
            "ts": pa.array([start + timedelta(seconds=i // 2) for i in range(n)], TS_TYPE),
            "seq": list(range(seq0, seq0 + n)),
            "price": [price + i * 0.01 for i in range(n)],
            "size": [1.0] * n,
            "side": ["buy", "sell"] * (n // 2) + ["buy"] * (n % 2),
        }
    )


def test_ticks_are_partitioned_by_month_and_keyed_by_ts_and_seq(lake):
    start = datetime(2023, 1, 31, 23, 59, 58, tzinfo=UTC)
    with lake.writer():
        rep = lake.write_ticks("binance", "BTC/USDT", _ticks(start, 8))
        again = lake.write_ticks("binance", "BTC/USDT", _ticks(start, 8, price=20.0))
    assert [p.rsplit("=", 1)[1] for p in rep.partitions] == ["2023-01", "2023-02"]
    assert again.rows_written == 8
    got = duckdb.sql(
        f"""select period, count(*), min(price) from read_parquet(
                '{lake.root}/ticks/*/*/*/*.parquet', hive_partitioning = true,
                hive_types = {{'period': 'varchar'}})
            group by all order by 1"""
    ).fetchall()
    assert got == [("2023-01", 4, 20.0), ("2023-02", 4, 20.04)]


def test_ticks_with_bad_prices_are_quarantined(lake):
    t = _ticks(datetime(2023, 1, 2, tzinfo=UTC), 4)
    t = t.set_column(2, "price", pa.array([10.0, -1.0, float("nan"), 10.3]))
    with lake.writer():
        rep = lake.write_ticks("binance", "ETH/USDT", t)
    assert (rep.rows_written, rep.rejected) == (2, 2)
    assert lake.read_rejects("ticks").num_rows == 2


def test_corporate_actions_upsert_on_ex_date_and_type(lake):
    acts = pa.table(
        {
            "ex_date": [date(2020, 8, 31), date(2020, 8, 7)],
            "action_type": ["split", "dividend"],
            "split_ratio": [4.0, None],
            "cash_amount": [None, 0.82],
            "currency": ["USD", "USD"],
        }
    )
    with lake.writer():
        lake.write_actions("yfinance", "AAPL", acts)
        revised = acts.set_column(3, "cash_amount", pa.array([None, 0.83]))
        lake.write_actions("yfinance", "AAPL", revised)
    got = lake.read_actions("yfinance", "AAPL")
    assert got.column("ex_date").to_pylist() == [date(2020, 8, 7), date(2020, 8, 31)]
    assert got.column("cash_amount").to_pylist() == [0.83, None]


def test_actions_with_bad_values_are_quarantined(lake):
    acts = pa.table(
        {
            "ex_date": [date(2020, 1, 2), date(2020, 1, 3), date(2020, 1, 6)],
            "action_type": ["split", "dividend", "merger"],
            "split_ratio": [0.0, None, None],
            "cash_amount": [None, 0.5, None],
        }
    )
    with lake.writer():
        rep = lake.write_actions("x", "AAA", acts)
    assert (rep.rows_written, rep.rejected) == (1, 2)
    reasons = sorted(lake.read_rejects("corporate_actions").column("reason").to_pylist())
    assert reasons[0].startswith("split without") or reasons[1].startswith("split without")
    assert any(r.startswith("unknown action_type") for r in reasons)


def test_ingest_writes_symbols_and_a_manifest_mirror_for_dbt(paths):
    dm = DataManager(
        paths,
        sources={"fake": FakeSource()},
        default_source="fake",
        now=lambda: datetime(2024, 6, 1, tzinfo=UTC),
    )
    dm.ingest(["AAA", "BBB"], "1d", "2024-01-01", "2024-02-01")
    syms = pq.read_table(paths.lake / "symbols" / "source=fake" / "data.parquet")
    assert syms.column("symbol").to_pylist() == ["AAA", "BBB"]
    assert syms.column("asset_class").to_pylist() == ["equity", "equity"]
    mirror = paths.lake / "_manifest"
    cov = duckdb.sql(
        f"select symbol, status from '{mirror}/coverage.parquet' order by 1"
    ).fetchall()
    assert cov == [("AAA", "fetched"), ("BBB", "fetched")]
    files = duckdb.sql(
        f"select count(*) from '{mirror}/data_files.parquet' where dataset = 'bars'"
    ).fetchone()
    assert files == (2,)
    runs = duckdb.sql(f"select status, api_calls from '{mirror}/fetch_runs.parquet'").fetchall()
    assert runs == [("ok", 1), ("ok", 1)]
