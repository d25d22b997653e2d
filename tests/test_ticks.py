"""Synthetic ticks: they aggregate back to the 1m bars exactly, and land incrementally."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from ingest.errors import UnsupportedRequestError
from ingest.manager import DataManager
from ingest.sources.synthetic import SyntheticSource
from ingest.timeframes import TICK, dataset_of, parse_timeframe

T0 = datetime(2023, 3, 1, 14, 30, tzinfo=UTC)  # 09:30 New York


@pytest.fixture(scope="module")
def src():
    return SyntheticSource(seed=42, n_symbols=6)


def _agg(ticks: pl.DataFrame) -> pl.DataFrame:
    return (
        ticks.sort("ts", "seq")
        .group_by(pl.col("ts").dt.truncate("1m").alias("ts"), maintain_order=True)
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("size").sum().alias("volume"),
            pl.len().alias("n"),
        )
    )


@pytest.mark.parametrize("symbol", ["SYN000", "SYNC00/USD"])
def test_ticks_aggregate_exactly_to_the_minute_bars(src, symbol):
    start, end = T0, T0 + timedelta(hours=2)
    ticks = pl.from_arrow(src.fetch_ticks(symbol, start, end).ticks)
    bars = pl.from_arrow(src.fetch_bars(symbol, "1m", start, end).bars)
    agg = _agg(ticks)
    assert agg["ts"].to_list() == bars["ts"].to_list()
    for c in ("open", "high", "low", "close"):
        assert agg[c].to_list() == bars[c].to_list(), c
    np.testing.assert_allclose(agg["volume"].to_numpy(), bars["volume"].to_numpy(), rtol=1e-12)
    assert agg["n"].min() >= 4
    assert agg["n"].max() <= 8
    assert ticks["ts"].is_sorted()
    assert ticks.select(pl.struct("ts", "seq").is_unique().all()).item()


def test_ticks_do_not_depend_on_the_range_asked_for(src):
    a = src.fetch_ticks("SYN001", T0, T0 + timedelta(minutes=30, seconds=17)).ticks
    b = src.fetch_ticks("SYN001", T0 + timedelta(minutes=30, seconds=17), T0 + timedelta(hours=1))
    whole = src.fetch_ticks("SYN001", T0, T0 + timedelta(hours=1)).ticks
    import pyarrow as pa

    assert pa.concat_tables([a, b.ticks]).equals(whole)


def test_tick_ingest_is_incremental_and_reads_back(tmp_path, src):
    dm = DataManager(tmp_path / "d", sources={"synthetic": src}, default_source="synthetic")
    first = dm.get_ticks("SYN002", T0, T0 + timedelta(hours=1))
    runs = len(dm.lake.manifest.fetch_runs())
    again = dm.get_ticks("SYN002", T0, T0 + timedelta(hours=1))
    assert len(dm.lake.manifest.fetch_runs()) == runs  # nothing fetched again
    assert again.equals(first)
    direct = pl.from_arrow(src.fetch_ticks("SYN002", T0, T0 + timedelta(hours=1)).ticks)
    assert first.drop("symbol", "ingested_at").equals(direct)
    assert dm.verify().ok
    assert dm.clear_cache(symbol="SYN002", timeframe="tick") == 1
    assert dm.lake.manifest.coverage("synthetic", "SYN002", "tick") == []


def test_tick_is_a_timeframe_of_the_source_capabilities(src, fake_source):
    caps = src.capabilities
    assert caps.supports(TICK) and caps.limits(TICK) is caps.ticks
    assert caps.served == ["1m", "1d", TICK]
    assert not fake_source.capabilities.supports(TICK)
    assert TICK not in fake_source.capabilities.served
    assert parse_timeframe(" Ticks ") == TICK and dataset_of(TICK) == "ticks"
    assert parse_timeframe("60m") == "1h" and dataset_of("1h") == "bars"


def test_ticks_from_a_source_without_them_name_what_it_serves(tmp_path, fake_source):
    dm = DataManager(tmp_path / "d", sources={"fake": fake_source}, default_source="fake")
    with pytest.raises(UnsupportedRequestError, match=r"no tick data; it serves 1d, 1m"):
        dm.ingest(["AAA"], "ticks", T0, T0 + timedelta(hours=1))
    with pytest.raises(UnsupportedRequestError, match=r"no 5m bars; it serves 1d, 1m"):
        dm.get_ohlcv("AAA", "5m")  # no start: the default history is used, no KeyError
    assert fake_source.calls == []


def test_clearing_ticks_leaves_the_bars_and_their_coverage(tmp_path, src):
    dm = DataManager(tmp_path / "d", sources={"synthetic": src}, default_source="synthetic")
    dm.get_ticks("SYN001", T0, T0 + timedelta(minutes=30))
    dm.get_ohlcv("SYN001", "1m", T0, T0 + timedelta(minutes=30))
    assert dm.clear_cache(symbol="SYN001", timeframe="trades") == 1
    assert dm.lake.manifest.coverage("synthetic", "SYN001", TICK) == []
    assert dm.lake.manifest.coverage("synthetic", "SYN001", "1m")
    assert len(dm.lake.manifest.live_files("bars", symbol="SYN001")) == 1
