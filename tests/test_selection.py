"""A selection of one mart with its parents builds on a fresh data root (issue 10, item 6).

`duckmarket build -s +bars_resampled` once failed in a `relationships` test on a seed it
had not selected. Each selection below starts from an empty warehouse (the lake stays),
so a test or a model that reads an unselected node fails here; the marts it built are
published.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from duckmarket.cli import main
from ingest.manager import DataManager
from ingest.paths import DataPaths
from ingest.sources.synthetic import SyntheticSource
from warehouse.marts import current_set

pytestmark = pytest.mark.slow

SYMBOLS = ["SYN000", "SYN001"]


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> DataPaths:
    paths = DataPaths(tmp_path_factory.mktemp("selection") / "data").ensure()
    src = SyntheticSource(seed=5, n_symbols=3)
    with DataManager(paths, sources={"synthetic": src}) as dm:
        dm.ingest(
            SYMBOLS,
            "1d",
            datetime(2021, 1, 1, tzinfo=UTC),
            datetime(2022, 1, 1, tzinfo=UTC),
            source="synthetic",
        )
        dm.ingest(
            SYMBOLS,
            "1m",
            datetime(2021, 12, 20, tzinfo=UTC),
            datetime(2021, 12, 24, tzinfo=UTC),
            source="synthetic",
        )
    return paths


@pytest.mark.parametrize(
    ("selection", "built"),
    [
        ("+bars_resampled", {"bars_resampled", "bars_adjusted"}),
        ("+coverage_summary", {"coverage_summary"}),
        ("+quality_quarantine", {"quality_quarantine", "bars_adjusted"}),
        ("+total_return_factors", {"total_return_factors"}),
    ],
)
def test_a_mart_with_its_parents_builds_alone(lake, selection, built, capsys) -> None:
    for old in lake.root.glob(lake.warehouse.name + "*"):
        old.unlink()
    assert main(["--data-dir", str(lake.root), "build", "-q", "-s", selection]) == 0, (
        capsys.readouterr().err[-3000:]
    )
    published = current_set(lake)
    assert published is not None
    assert built <= set(published.marts), sorted(published.marts)
    assert all(published.marts[name]["rows"] > 0 for name in built)
