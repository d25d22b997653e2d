"""The outlier screen of bars_adjusted against the synthetic source's designed bad prints.

The synthetic source spikes about one daily close in 5,000 and one minute close in
200,000, and lists them (``SyntheticSource.faults``). The lake here holds 24 years of
daily bars for eight symbols and the weeks of minute bars around every designed minute
fault of 2023 for those symbols; the warehouse must flag every designed bad print
(recall) and little else (precision), and keep hard violations apart from the screen.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from ingest.manager import DataManager
from ingest.paths import DataPaths
from ingest.sources.synthetic import SyntheticSource
from warehouse.build import run_build
from warehouse.layout import mart_location, parquet_scan

pytestmark = pytest.mark.slow

DAILY = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC))
YEAR = (datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC))


def _day(ts: datetime) -> datetime:
    return datetime(ts.year, ts.month, ts.day, tzinfo=UTC)


@pytest.fixture(scope="module")
def screened(tmp_path_factory):
    paths = DataPaths(tmp_path_factory.mktemp("screen") / "data").ensure()
    src = SyntheticSource(seed=7, n_symbols=8)
    symbols = src.list_symbols()
    designed: set[tuple[str, str, datetime]] = set()
    with DataManager(paths, sources={"synthetic": src}) as dm:
        dm.ingest(symbols, "1d", *DAILY, source="synthetic")
        for sym in symbols:
            designed |= {(sym, "1d", t) for t in src.faults(sym, "1d", *DAILY)["bad_print"]}
            for t in src.faults(sym, "1m", *YEAR)["bad_print"]:
                start, end = _day(t) - timedelta(days=3), _day(t) + timedelta(days=3)
                dm.ingest([sym], "1m", start, end, source="synthetic")
                designed |= {(sym, "1m", f) for f in src.faults(sym, "1m", start, end)["bad_print"]}
    result = run_build(paths, select="+bars_adjusted", quiet=True)
    assert result.ok, (result.error or "") + result.output[-3000:]
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    rows = con.execute(
        f"""select symbol, timeframe, ts, is_outlier, is_invalid, outlier_score
            from {parquet_scan(mart_location(paths.marts, "bars_adjusted"))}"""
    ).fetchall()
    return {"designed": designed, "rows": rows}


def _score(screened: dict, timeframe: str | None = None) -> tuple[float, float, int]:
    designed = {d for d in screened["designed"] if timeframe in (None, d[1])}
    flagged = {
        (sym, tf, ts)
        for sym, tf, ts, is_outlier, _, _ in screened["rows"]
        if is_outlier and timeframe in (None, tf)
    }
    hits = len(designed & flagged)
    return hits / max(len(flagged), 1), hits / max(len(designed), 1), len(designed)


def test_the_universe_holds_designed_faults_of_both_timeframes(screened):
    assert _score(screened, "1d")[2] >= 10
    assert _score(screened, "1m")[2] >= 3


@pytest.mark.parametrize("timeframe", ["1d", "1m", None])
def test_bad_prints_are_found_with_precision_and_recall(screened, timeframe):
    precision, recall, n = _score(screened, timeframe)
    assert recall >= 0.99, f"recall {recall:.3f} of {n} designed bad prints"
    assert precision >= 0.9, f"precision {precision:.3f}"


def test_the_screen_flags_a_tiny_share_of_bars(screened):
    rows = screened["rows"]
    outliers = sum(1 for r in rows if r[3])
    assert outliers / len(rows) < 0.001


def test_every_bar_has_a_score_and_scores_rank_the_faults_first(screened):
    designed = screened["designed"]
    scores = [(r[5], (r[0], r[1], r[2]) in designed) for r in screened["rows"]]
    assert all(s is not None and s >= 0 for s, _ in scores)
    lowest_fault = min(s for s, is_fault in scores if is_fault)
    clean_above = sum(1 for s, is_fault in scores if not is_fault and s >= lowest_fault)
    assert clean_above <= 0.1 * len(designed)
