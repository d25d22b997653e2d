"""Incremental builds give the same marts as a full refresh.

One lake gets a full build, then one more session of 1m bars (incremental), then a new
split for a symbol (which restates that symbol's whole history). A copy of the final lake
built from scratch must give identical marts.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ingest.paths import DataPaths
from tests.dbt_lake import SmallLake
from tests.test_dbt_warehouse import CAUTIOUS, WAREHOUSE
from warehouse.build import UNIT_TESTED, BuildResult, project_fingerprint, run_build
from warehouse.layout import mart_files, read_table
from warehouse.marts import current_set, publish_marts

pytestmark = pytest.mark.slow

COMPARED = {
    "bars_adjusted": ["symbol", "timeframe", "ts"],
    "bars_resampled": ["symbol", "timeframe", "ts"],
    "coverage_summary": ["source", "symbol", "timeframe"],
    "coverage_gaps": ["source", "symbol", "timeframe", "gap_start_at"],
    "quality_quarantine": ["dataset", "symbol", "timeframe", "ts", "reason", "row_key"],
    "adjustment_factors": ["symbol", "known_from", "valid_from"],
    "bars_bid_ask": ["source", "symbol", "timeframe", "ts"],
    # not published: read from the warehouse file
    "int_bars_days_counted": ["source", "symbol", "timeframe", "bar_date"],
}


def build(paths: DataPaths, full_refresh: bool = False) -> BuildResult:
    result = run_build(
        paths, select=WAREHOUSE, full_refresh=full_refresh, quiet=True, extra=CAUTIOUS
    )
    assert result.ok, (result.error or "") + "\n" + result.output[-4000:]
    return result


def unit_tests_run(result: BuildResult) -> int:
    return sum(1 for uid in result.timings if uid.startswith("unit_test."))


def read(paths: DataPaths, name: str) -> pd.DataFrame:
    if name.startswith("int_"):
        con = duckdb.connect(str(paths.warehouse), read_only=True)
        try:
            df = con.execute(f"select * from intermediate.{name}").to_arrow_table().to_pandas()
        finally:
            con.close()
    else:
        df = read_table(paths.marts, name).to_pandas()
    df = df.drop(
        columns=[c for c in ("ingested_at",) if c in df.columns and name != "bars_adjusted"]
    )
    keys = [k for k in COMPARED[name] if k in df.columns]
    for c in df.columns:
        if (
            df[c].dtype == object
            and len(df)
            and isinstance(df[c].iloc[0], list | tuple | type(None))
        ):
            df[c] = df[c].map(lambda v: None if v is None else tuple(v))
    return df.sort_values(keys, na_position="first").reset_index(drop=True)


@pytest.fixture(scope="session")
def incremental_and_full(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[DataPaths, DataPaths, dict]:
    inc_root = tmp_path_factory.mktemp("incremental")
    lake = SmallLake(inc_root, quoted=("AAA",)).build()
    inc = DataPaths(inc_root)
    units = [unit_tests_run(build(inc))]
    before = read_table(inc.marts, "bars_adjusted").to_pandas()
    first_set = current_set(inc)
    lake.append_minute_session("AAA")
    units.append(unit_tests_run(build(inc)))
    after_day = read_table(inc.marts, "bars_adjusted").to_pandas()
    day_set = current_set(inc)
    inodes = {
        name: {
            which: {
                str(f.relative_to(s.path / name)): f.stat().st_ino
                for f in mart_files(s.path / name)
            }
            for which, s in (("first", first_set), ("day", day_set))
        }
        for name in ("bars_adjusted", "bars_resampled")
    }
    # nothing new: the change logs name nothing, so publication fingerprints nothing
    units.append(unit_tests_run(build(inc)))
    noop_set = current_set(inc)
    lake.add_split("BBB", date(2024, 3, 7), 2.0)
    # the record of passed unit tests names another project (as after an edit to a
    # model): they run again
    record = inc.root / ".dbt" / UNIT_TESTED
    record.write_text(record.read_text().replace(project_fingerprint(), "0" * 64))
    units.append(unit_tests_run(build(inc)))
    full_root = tmp_path_factory.mktemp("full")
    shutil.copytree(inc.lake, Path(full_root) / "lake")
    full = DataPaths(Path(full_root))
    build(full, full_refresh=True)
    split_set = current_set(inc)
    states = {
        "before": before,
        "after_day": after_day,
        "inodes": inodes,
        "units": units,
        "sets": {"first": first_set, "day": day_set, "noop": noop_set, "split": split_set},
    }
    return inc, full, states


def test_unit_tests_run_until_they_pass_for_the_project(incremental_and_full) -> None:
    """dbt's unit tests check models against fixed inputs: once they passed for this
    project and selection, the next builds leave them out, until the project changes."""
    _, _, states = incremental_and_full
    first, day, noop, edited = states["units"]
    assert first >= 5 and day == 0 and noop == 0 and edited == first


def test_one_more_session_adds_its_bars(incremental_and_full) -> None:
    _, _, states = incremental_and_full
    before, after = states["before"], states["after_day"]
    added = (
        after.query("symbol == 'AAA' and timeframe == '1m'").shape[0]
        - before.query("symbol == 'AAA' and timeframe == '1m'").shape[0]
    )
    assert added == 390
    # the other symbols' rows are untouched
    other = ["symbol != 'AAA'"]
    pd.testing.assert_frame_equal(
        before.query(other[0]).reset_index(drop=True), after.query(other[0]).reset_index(drop=True)
    )


def test_one_more_session_rewrites_only_the_partitions_it_changed(incremental_and_full) -> None:
    """The publication after one more session of AAA writes AAA's partitions that hold new
    bars (its 1m month and its resampled bars) and hard-links every other file from the
    previous set: same inode, not a copy."""
    _, _, states = incremental_and_full
    for name, sets in states["inodes"].items():
        first, day = sets["first"], sets["day"]
        assert set(first) == set(day), name  # the session falls in a year already held
        rewritten = {rel for rel in day if day[rel] != first[rel]}
        assert rewritten, name
        assert all(rel.startswith("AAA/") for rel in rewritten), (name, rewritten)
        kept = set(day) - rewritten
        assert any(not rel.startswith("AAA/") for rel in kept), name
    rewritten_1m = {
        rel
        for rel, ino in states["inodes"]["bars_adjusted"]["day"].items()
        if ino != states["inodes"]["bars_adjusted"]["first"][rel]
    }
    assert all(rel.startswith("AAA/1m/") for rel in rewritten_1m), rewritten_1m
    assert len(rewritten_1m) == 1, rewritten_1m


def test_publication_fingerprints_only_what_the_change_logs_name(incremental_and_full) -> None:
    """The first publication fingerprints every partition; after one more session of AAA
    only AAA's partitions from the rewritten period on are read again; after a build with
    nothing new, none; after a split of BBB, BBB's. The others are carried over from the
    previous set (and the marts still equal a full refresh: test below)."""
    _, _, states = incremental_and_full
    sets = states["sets"]
    for name in ("bars_adjusted", "bars_resampled"):
        parts = {n: s.marts[name]["partitions"] for n, s in sets.items()}
        hashed = {n: s.marts[name]["hashed"] for n, s in sets.items()}
        assert hashed["first"] == len(parts["first"]) > 3, name
        assert 0 < hashed["day"] < len(parts["day"]), name
        assert hashed["noop"] == 0, name
        assert 0 < hashed["split"] < len(parts["split"]), name
        aaa = [rel for rel in parts["day"] if rel.startswith("AAA/")]
        bbb = [rel for rel in parts["split"] if rel.startswith("BBB/")]
        assert hashed["day"] <= len(aaa) and hashed["split"] >= len(bbb), name
        # every set names its change log's last build, and each build moved it on
        marks = [s.marts[name]["log"] for s in sets.values()]
        assert len({m["id"] for m in marks}) == 1, name
        seqs = [m["seq"] for m in marks]
        assert seqs == sorted(seqs) and seqs[0] < seqs[-1], name
    # the no-op set is the day's set, file for file
    for name in ("bars_adjusted", "bars_resampled"):
        day, noop = sets["day"], sets["noop"]
        assert noop.marts[name]["partitions"] == day.marts[name]["partitions"]


def test_a_table_changed_outside_dbt_is_fingerprinted_in_full(
    incremental_and_full, tmp_path: Path
) -> None:
    """A change the log does not name (rows deleted by hand) shows in the row count, and
    the publication falls back to fingerprinting every partition."""
    inc, _, _ = incremental_and_full
    root = tmp_path / "copy"
    shutil.copytree(inc.root, root, symlinks=True, ignore=shutil.ignore_patterns(".dbt"))
    copy = DataPaths(root)
    con = duckdb.connect(str(copy.warehouse))
    try:
        con.execute("delete from main.bars_adjusted where symbol = 'AAA' and timeframe = '1m'")
        left = con.execute("select count(*) from main.bars_adjusted").fetchone()[0]
    finally:
        con.close()
    published = publish_marts(copy)
    meta = published.marts["bars_adjusted"]
    assert meta["rows"] == left
    assert meta["hashed"] == len(meta["partitions"])
    assert not any(rel.startswith("AAA/1m/") for rel in meta["partitions"])
    assert read_table(copy.marts, "bars_adjusted").num_rows == left


def test_a_new_split_restates_the_symbol_history(incremental_and_full) -> None:
    inc, _, states = incremental_and_full
    now = read_table(inc.marts, "bars_adjusted").to_pandas()
    old = states["after_day"]
    cut = pd.Timestamp("2024-03-07", tz="UTC")
    b_now = now[(now["symbol"] == "BBB") & (now["ts"] < cut)].sort_values(["timeframe", "ts"])
    b_old = old[(old["symbol"] == "BBB") & (old["ts"] < cut)].sort_values(["timeframe", "ts"])
    assert len(b_now) == len(b_old) > 0
    assert (b_now["split_factor"] == 0.5).all()
    pd.testing.assert_series_equal(
        b_now["close_adj"].reset_index(drop=True),
        (b_old["close_adj"] * 0.5).reset_index(drop=True),
        rtol=1e-12,
    )


@pytest.mark.parametrize("name", sorted(COMPARED))
def test_incremental_equals_full_refresh(incremental_and_full, name: str) -> None:
    inc, full, _ = incremental_and_full
    a, b = read(inc, name), read(full, name)
    assert len(a) > 0, name  # never an empty comparison
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12, atol=0)
