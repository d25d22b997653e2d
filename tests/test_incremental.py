"""Incremental fetching: only missing ranges are fetched, and fetched values read back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from ingest.errors import InvalidInputError, SourceError
from ingest.manager import DataManager
from ingest.planner import chunk, merge, subtract

from .conftest import FakeSource

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def dm_with(paths, src: FakeSource) -> DataManager:
    dm = DataManager(paths, sources={"fake": src}, default_source="fake", now=lambda: NOW)
    return dm


def d(y, m, day):
    return datetime(y, m, day, tzinfo=UTC)


def test_acceptance_first_request_lands_again_is_free_wider_fetches_two_gaps(paths):
    src = FakeSource()
    dm = dm_with(paths, src)
    first = dm.get_ohlcv("AAA", "1d", "2023-02-01", "2023-03-01")
    assert first.height == 28
    assert len(src.calls) == 1
    # values read back equal the values fetched
    expected = [src.value("AAA", t) for t in first["ts"].to_list()]
    assert first["close"].to_list() == expected

    again = dm.get_ohlcv("AAA", "1d", "2023-02-01", "2023-03-01")
    assert len(src.calls) == 1  # zero source calls
    assert again.equals(first)

    wider = dm.get_ohlcv("AAA", "1d", "2023-01-01", "2023-04-01")
    assert [(c[2], c[3]) for c in src.calls[1:]] == [
        (d(2023, 1, 1), d(2023, 2, 1)),
        (d(2023, 3, 1), d(2023, 4, 1)),
    ]
    assert wider.height == 90
    assert wider["ts"].is_sorted()
    assert wider["close"].to_list() == [src.value("AAA", t) for t in wider["ts"].to_list()]
    assert dm.verify().ok


def test_force_refresh_refetches_everything_asked_for(paths):
    src = FakeSource()
    dm = dm_with(paths, src)
    dm.get_ohlcv("AAA", "1d", "2023-02-01", "2023-03-01")
    src.version = 1  # the vendor revised its data
    df = dm.get_ohlcv("AAA", "1d", "2023-02-01", "2023-03-01", force_refresh=True)
    assert len(src.calls) == 2
    assert df["close"][0] == src.value("AAA", d(2023, 2, 1))


def test_trailing_window_is_always_refetched(paths):
    src = FakeSource(trailing=timedelta(days=3))
    dm = dm_with(paths, src)
    dm.get_ohlcv("AAA", "1d", "2024-05-01", "2024-06-01")
    dm.get_ohlcv("AAA", "1d", "2024-05-01", "2024-06-01")
    assert [(c[2], c[3]) for c in src.calls] == [
        (d(2024, 5, 1), d(2024, 6, 1)),
        (d(2024, 5, 29), d(2024, 6, 1)),
    ]


def test_future_is_never_requested(paths):
    src = FakeSource()
    dm = dm_with(paths, src)
    dm.get_ohlcv("AAA", "1d", "2024-05-25", "2024-12-31")
    assert src.calls[0][3] == NOW


def test_ranges_beyond_the_sources_reach_are_marked_unrecoverable_not_requested(paths):
    src = FakeSource(lookback=timedelta(days=30))
    dm = dm_with(paths, src)
    dm.get_ohlcv("AAA", "1d", "2024-01-01", "2024-06-01")
    assert src.calls[0][2] == NOW - timedelta(days=30)
    cov = dm.lake.manifest.coverage("fake", "AAA", "1d")
    assert [c.status for c in cov] == ["unrecoverable", "fetched"]
    dm.get_ohlcv("AAA", "1d", "2024-01-01", "2024-06-01")
    assert len(src.calls) == 1


def test_requests_are_chunked_to_the_largest_span_allowed(paths):
    src = FakeSource(max_span=timedelta(days=7))
    dm = dm_with(paths, src)
    df = dm.get_ohlcv("AAA", "1d", "2024-03-01", "2024-03-31")
    assert len(src.calls) == 5
    assert all(c[3] - c[2] <= timedelta(days=7) for c in src.calls)
    assert df.height == 30


def test_not_final_bars_are_fetched_again_next_time(paths):
    src = FakeSource(not_final_after=d(2024, 5, 31))
    dm = dm_with(paths, src)
    df = dm.get_ohlcv("AAA", "1d", "2024-05-20", "2024-06-01")
    assert df.filter(~pl.col("is_final"))["ts"].to_list() == [d(2024, 5, 31)]
    dm.get_ohlcv("AAA", "1d", "2024-05-20", "2024-06-01")
    assert [(c[2], c[3]) for c in src.calls[1:]] == [(d(2024, 5, 31), NOW)]


def test_an_empty_answer_for_a_bad_symbol_is_a_failed_run_never_coverage(paths):
    src = FakeSource(empty_symbols={"NOPE"})
    dm = dm_with(paths, src)
    with pytest.raises(SourceError, match="misspelt or delisted"):
        dm.get_ohlcv("NOPE", "1d", "2024-01-01", "2024-02-01")
    assert dm.lake.manifest.coverage("fake", "NOPE", "1d") == []
    runs = dm.lake.manifest.fetch_runs(symbol="NOPE")
    assert [r.status for r in runs] == ["failed"]
    assert "delisted" in runs[0].error
    # asking again asks the source again
    with pytest.raises(SourceError):
        dm.get_ohlcv("NOPE", "1d", "2024-01-01", "2024-02-01")
    assert len(src.calls) == 2


def test_a_source_failing_midway_keeps_what_was_fetched_and_reports_the_rest(paths):
    src = FakeSource(fail_on={"CCC"})
    dm = dm_with(paths, src)
    report = dm.ingest(["AAA", "BBB", "CCC", "DDD"], "1d", "2024-01-01", "2024-02-01")
    assert [r.status for r in report.results] == ["ok", "ok", "failed", "ok"]
    assert "simulated outage" in report.failed[0].error
    assert not report.ok
    # a re-run fetches only the failed symbol
    src.fail_on.clear()
    report = dm.ingest(["AAA", "BBB", "CCC", "DDD"], "1d", "2024-01-01", "2024-02-01")
    assert [r.status for r in report.results] == ["cached", "cached", "ok", "cached"]
    assert dm.verify().ok


def test_multi_returns_one_long_frame(paths):
    dm = dm_with(paths, FakeSource())
    df = dm.get_ohlcv_multi(["AAA", "BBB"], "1d", "2024-01-01", "2024-01-11")
    assert df.group_by("symbol").len().sort("symbol")["len"].to_list() == [10, 10]


def test_cache_stats_and_clear(paths):
    dm = dm_with(paths, FakeSource())
    dm.get_ohlcv_multi(["AAA", "BBB"], "1d", "2024-01-01", "2024-01-11")
    dm.get_ohlcv("AAA", "1m", "2024-01-02", "2024-01-02T01:00:00+00:00")
    stats = dm.get_cache_stats()
    assert stats["symbols"] == 2
    assert stats["rows"] == 20 + 60
    assert dm.clear_cache(symbol="AAA", timeframe="1m") == 1
    assert dm.get_cache_stats()["rows"] == 20
    assert dm.lake.manifest.coverage("fake", "AAA", "1m") == []
    assert dm.lake.manifest.coverage("fake", "AAA", "1d") != []
    dm.clear_cache(symbol="BBB")
    assert dm.get_cache_stats()["symbols"] == 1
    dm.clear_cache()
    assert dm.get_cache_stats()["rows"] == 0
    assert dm.verify().ok


@pytest.mark.parametrize(
    ("bound", "match"),
    [("2023-13-01", "not a date"), (datetime(2023, 1, 1), "no timezone")],
)
def test_bad_bounds_get_clear_errors(paths, bound, match):
    from ingest.errors import InvalidInputError

    dm = dm_with(paths, FakeSource())
    with pytest.raises(InvalidInputError, match=match):
        dm.get_ohlcv("AAA", "1d", bound, "2024-01-01")


def test_interval_arithmetic():
    assert merge([(5, 7), (1, 3), (3, 4)]) == [(1, 4), (5, 7)]
    assert subtract((0, 10), [(2, 4), (3, 5), (8, 12)]) == [(0, 2), (5, 8)]
    assert subtract((0, 10), []) == [(0, 10)]
    assert subtract((0, 10), [(0, 10)]) == []
    assert chunk((0, 10), 4) == [(0, 4), (4, 8), (8, 10)]


def test_the_public_api_is_importable_from_the_package(tmp_path):
    import ingest

    for name in ingest.__all__:
        assert getattr(ingest, name) is not None
    from ingest import DataManager as Public

    dm = Public(
        tmp_path / "d", sources={"fake": FakeSource()}, default_source="fake", now=lambda: NOW
    )
    assert dm.get_ohlcv("AAA", "1d", "2024-01-01", "2024-01-05").height == 4


def test_reads_without_a_source_go_to_the_source_that_holds_the_series(tmp_path, fake_source):
    from ingest.sources.synthetic import SyntheticSource

    src = SyntheticSource(seed=1, n_symbols=3)
    dm = DataManager(tmp_path / "d", sources={"synthetic": src, "fake": fake_source})
    assert dm.default_source == "yfinance"
    dm.ingest(["SYN000"], "1d", "2023-01-01", "2023-02-01", source="synthetic")
    df = dm.get_ohlcv("SYN000", "1d", "2023-01-01", "2023-02-01")  # no source: not Yahoo
    assert len(df) > 15
    assert fake_source.calls == []
    dm.ingest(["SYN000"], "1d", "2023-01-01", "2023-02-01", source="fake")
    with pytest.raises(InvalidInputError, match="several sources"):
        dm.get_ohlcv("SYN000", "1d", "2023-01-01", "2023-02-01")
