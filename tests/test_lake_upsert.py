"""Partition upserts: validation, merge semantics, idempotency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.errors import InvalidInputError
from ingest.lake import Lake
from ingest.schema import TS_TYPE

from .conftest import T0, make_bars


def _write(lake, table, symbol="AAA", tf="1m", source="synthetic"):
    with lake.writer():
        return lake.write_bars(source, symbol, tf, table)


def test_bars_are_partitioned_by_year_for_intraday_and_single_file_for_daily(lake):
    start = datetime(2022, 12, 31, 23, 58, tzinfo=UTC)
    rep = _write(lake, make_bars(start, 5))
    assert sorted(p.rsplit("=", 1)[1] for p in rep.partitions) == ["2022", "2023"]
    rep = _write(
        lake, make_bars(datetime(2020, 1, 1, tzinfo=UTC), 1000, timedelta(days=1)), tf="1d"
    )
    assert [p.rsplit("=", 1)[1] for p in rep.partitions] == ["all"]


def test_newest_fetch_wins_on_overlap_and_rows_stay_unique_and_sorted(lake):
    _write(lake, make_bars(T0, 10, base=100.0))
    revised = make_bars(T0 + timedelta(minutes=5), 10, base=200.0)
    _write(lake, revised)
    got = lake.read_bars("synthetic", "AAA", "1m")
    ts = got.column("ts").to_pylist()
    assert len(ts) == 15
    assert ts == sorted(set(ts))
    assert got.column("close").to_pylist()[5:] == revised.column("close").to_pylist()


def test_unsorted_input_is_stored_sorted(lake):
    t = make_bars(T0, 50)
    shuffled = t.take(pa.array(np.random.default_rng(1).permutation(50)))
    _write(lake, shuffled)
    got = lake.read_bars("synthetic", "AAA", "1m")
    assert got.column("ts").to_pylist() == t.column("ts").to_pylist()
    assert got.column("close").to_pylist() == t.column("close").to_pylist()


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("close", float("nan"), "NaN"),
        ("open", -1.0, "zero or negative"),
        ("low", 0.0, "zero or negative"),
        ("high", float("inf"), "NaN, infinite"),
        ("volume", -5.0, "volume is negative"),
    ],
)
def test_bad_values_are_quarantined_with_their_reason(lake, column, value, reason):
    t = make_bars(T0, 5)
    vals = t.column(column).to_pylist()
    vals[2] = value
    t = t.set_column(t.schema.get_field_index(column), column, pa.array(vals))
    rep = _write(lake, t)
    assert (rep.rows_written, rep.rejected) == (4, 1)
    rejects = lake.read_rejects()
    assert rejects.num_rows == 1
    assert reason in rejects.column("reason")[0].as_py()
    assert str(T0 + timedelta(minutes=2))[:16] in rejects.column("key")[0].as_py()


def test_high_below_low_is_quarantined(lake):
    t = make_bars(T0, 3)
    t = t.set_column(t.schema.get_field_index("high"), "high", pa.array([1.0, 200.0, 200.0]))
    rep = _write(lake, t)
    assert rep.rejected == 1
    assert lake.read_rejects().column("reason").to_pylist() == ["high below low"]


def test_duplicate_timestamps_in_a_batch_keep_the_last_and_quarantine_the_rest(lake):
    t = make_bars(T0, 3)
    dup = pa.concat_tables([t, t.slice(1, 1).set_column(4, "close", pa.array([123.0]))])
    dup = dup.set_column(2, "high", pa.array([*t.column("high").to_pylist(), 1000.0]))
    rep = _write(lake, dup)
    assert (rep.rows_written, rep.rejected) == (3, 1)
    got = lake.read_bars("synthetic", "AAA", "1m")
    assert got.column("close").to_pylist()[1] == 123.0
    assert "duplicate" in lake.read_rejects().column("reason")[0].as_py()


def test_naive_timestamps_are_refused(lake):
    t = make_bars(T0, 2)
    naive = t.set_column(0, "ts", pa.array([datetime(2023, 1, 2), datetime(2023, 1, 3)]))
    with pytest.raises(InvalidInputError, match="naive"):
        _write(lake, naive)


def test_missing_columns_are_named(lake):
    with pytest.raises(InvalidInputError, match=r"missing column.*volume"):
        _write(lake, make_bars(T0, 2).drop_columns(["volume"]))


@pytest.mark.parametrize("col", ["Weird Column", "symbol", "period"])
def test_unknown_or_reserved_columns_are_refused(lake, col):
    t = make_bars(T0, 2).append_column(col, pa.array([1.0, 2.0]))
    with pytest.raises(InvalidInputError, match=col):
        _write(lake, t)


def test_vendor_extra_columns_are_kept_and_older_files_read_with_nulls(lake):
    _write(lake, make_bars(T0, 3))
    extra = make_bars(T0 + timedelta(minutes=3), 2).append_column("vwap", pa.array([1.0, 2.0]))
    _write(lake, extra)
    got = lake.read_bars("synthetic", "AAA", "1m")
    assert got.column("vwap").to_pylist() == [None, None, None, 1.0, 2.0]


def test_writes_need_the_writer_lock(lake):
    from ingest.schema import BARS

    with pytest.raises(RuntimeError, match="writer lock"):
        lake.upsert_partition(
            BARS,
            {"source": "s", "timeframe": "1m", "symbol": "A", "period": "2023"},
            make_bars(T0, 1),
        )


def test_manifest_records_every_version_with_checksum(lake):
    import hashlib

    _write(lake, make_bars(T0, 3))
    _write(lake, make_bars(T0 + timedelta(minutes=3), 3))
    live = lake.manifest.live_files("bars")
    assert len(live) == 1
    f = live[0]
    p = lake.root / f.path
    assert f.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()
    assert f.rows == pq.read_metadata(p).num_rows == 6
    versions = lake.manifest.query("select count(*) as n from data_files where path = ?", [f.path])
    assert versions[0]["n"] == 2


# --- properties -----------------------------------------------------------------------

minutes = st.lists(st.integers(0, 300), min_size=1, max_size=60)


def _batch(mins: list[int], salt: float) -> pa.Table:
    ts = [T0 + timedelta(minutes=m) for m in mins]
    close = [100.0 + m / 10 + salt for m in mins]
    return pa.table(
        {
            "ts": pa.array(ts, TS_TYPE),
            "open": close,
            "high": [c + 1 for c in close],
            "low": [c - 1 for c in close],
            "close": close,
            "volume": [1.0] * len(mins),
        }
    )


def _content(lake: Lake) -> list[tuple]:
    t = lake.read_bars("synthetic", "AAA", "1m").drop_columns(["ingested_at"])
    return list(zip(*[t.column(c).to_pylist() for c in t.column_names], strict=True))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=minutes)
def test_upserting_a_batch_twice_equals_upserting_it_once(tmp_path_factory, batch):
    once = Lake(tmp_path_factory.mktemp("once"))
    twice = Lake(tmp_path_factory.mktemp("twice"))
    b = _batch(batch, 0.0)
    _write(once, b)
    _write(twice, b)
    _write(twice, b)
    assert _content(once) == _content(twice)
    assert twice.verify().ok


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(a=minutes, b=minutes)
def test_overlapping_batches_leave_one_row_per_key_newest_wins(tmp_path_factory, a, b):
    lake = Lake(tmp_path_factory.mktemp("lake"))
    _write(lake, _batch(a, 0.0))
    _write(lake, _batch(b, 0.5))
    rows = _content(lake)
    keys = [r[0] for r in rows]
    assert keys == sorted(set(keys))
    assert set(keys) == {T0 + timedelta(minutes=m) for m in set(a) | set(b)}
    newer = {T0 + timedelta(minutes=m) for m in b}
    for r in rows:
        m = (r[0] - T0) / timedelta(minutes=1)
        assert r[4] == 100.0 + m / 10 + (0.5 if r[0] in newer else 0.0)
