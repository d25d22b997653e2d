"""read_mart / scan_mart: one obvious way to read a Parquet mart, with pushdown."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

import hotpath
from hotpath.synthetic import make_bars_mart
from ingest.errors import InvalidInputError
from ingest.paths import DataPaths

ROWS = {"AAPL": 900, "MSFT": 400}


@pytest.fixture
def paths(tmp_path: Path) -> DataPaths:
    p = DataPaths(tmp_path / "data").ensure()
    make_bars_mart(p.marts / "bars_adjusted.parquet", list(ROWS), ROWS)
    return p


def test_read_mart_filters_and_projects(paths: DataPaths) -> None:
    df = hotpath.read_mart(
        "bars_adjusted",
        columns=["ts", "close_adj"],
        symbols=["MSFT"],
        start=datetime(2015, 1, 5, 15, 0, tzinfo=UTC),
        end="2015-01-06",
        data_dir=paths.root,
    )
    assert df.columns == ["ts", "close_adj"]
    assert df.height == 390 - 30
    assert df["ts"].dtype == pl.Datetime("us", "UTC")
    assert df["ts"].is_sorted()


def test_read_mart_defaults_to_every_row(paths: DataPaths) -> None:
    df = hotpath.read_mart("bars_adjusted", data_dir=paths)
    assert df.height == sum(ROWS.values())
    assert df["symbol"].unique(maintain_order=True).to_list() == ["AAPL", "MSFT"]


def test_scan_mart_pushes_filters_into_the_scan(paths: DataPaths) -> None:
    lf = hotpath.scan_mart("bars_adjusted", symbols="AAPL", columns=["close"], data_dir=paths)
    assert isinstance(lf, pl.LazyFrame)
    plan = lf.explain()
    assert "SELECTION" in plan.upper() or "FILTER" in plan.upper()
    assert lf.collect().height == ROWS["AAPL"]


def test_data_dir_comes_from_the_environment(
    paths: DataPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUCKMARKET_DATA", str(paths.root))
    assert hotpath.list_marts() == ["bars_adjusted"]
    assert hotpath.read_mart("bars_adjusted", columns=["symbol"]).height == sum(ROWS.values())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "missing"}, "no mart 'missing'.*available: bars_adjusted"),
        ({"name": "../x"}, "invalid mart name"),
        ({"name": "bars_adjusted", "columns": ["nope"]}, "no column"),
        ({"name": "bars_adjusted", "start": datetime(2015, 1, 5)}, "naive datetime"),
    ],
)
def test_bad_reads_get_clear_errors(paths: DataPaths, kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        hotpath.read_mart(data_dir=paths, **kwargs)
