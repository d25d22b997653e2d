"""Crashes, concurrent writers, orphaned files and manifest repair."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta

import pyarrow.parquet as pq
import pytest

from ingest.errors import LakeLockedError
from ingest.lake import Lake

from .conftest import T0, make_bars

WRITER = textwrap.dedent(
    """
    import sys, time
    from datetime import timedelta
    from ingest.lake import Lake
    from tests.conftest import T0, make_bars
    lake = Lake(sys.argv[1])
    mode = sys.argv[2]
    with lake.writer():
        print("locked", flush=True)
        if mode == "hold":
            time.sleep(60)
        for i in range(10_000):  # many partitions, until killed
            start = T0.replace(year=2000 + i % 25) + timedelta(days=i // 25)
            lake.write_bars("synthetic", f"S{i % 7}", "1m", make_bars(start, 2000, seed=i))
            print("wrote", i, flush=True)
    """
)


def _spawn(root, mode):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), mode],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_second_writer_gets_a_clear_error(paths):
    proc = _spawn(paths.root, "hold")
    try:
        assert proc.stdout.readline().strip() == "locked"
        lake = Lake(paths)
        with pytest.raises(LakeLockedError, match=rf"pid {proc.pid}.*wait for it"), lake.writer():
            pass
        # readers are never blocked
        assert lake.read_bars("synthetic", "S0", "1m").num_rows == 0
    finally:
        proc.kill()
        proc.wait()
    # the kernel released the lock with the process
    with Lake(paths).writer():
        pass


def test_sigkill_mid_ingest_leaves_no_torn_partition_and_verify_repairs(paths):
    proc = _spawn(paths.root, "write")
    assert proc.stdout.readline().strip() == "locked"
    written = 0
    deadline = time.monotonic() + 60
    while written < 12 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("wrote"):
            written += 1
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert written >= 12
    lake = Lake(paths)
    # every live file is complete, readable Parquet (no torn partition)
    for p in (lake.root / "bars").rglob("data.parquet"):
        pq.read_table(p)
    report = lake.verify()
    # the only possible disagreement: a file renamed before its manifest row was written
    assert all(p.kind == "unrecorded_file" and p.repaired for p in report.problems)
    assert not list(lake.root.rglob(".*.tmp-*"))
    again = lake.verify()
    assert again.ok, again.problems
    # and the lake takes new writes afterwards
    with lake.writer():
        lake.write_bars("synthetic", "S0", "1m", make_bars(T0, 10))


def test_orphaned_temporary_files_are_swept_by_the_next_writer(lake):
    with lake.writer():
        lake.write_bars("synthetic", "AAA", "1m", make_bars(T0, 3))
    d = next((lake.root / "bars").rglob("data.parquet")).parent
    orphan = d / ".data.parquet.tmp-99999-deadbeef"
    orphan.write_bytes(b"half a file")
    with lake.writer():
        pass
    assert not orphan.exists()
    assert lake.verify().ok


def _one_file(lake):
    with lake.writer():
        lake.write_bars("synthetic", "AAA", "1m", make_bars(T0, 30))
    lake.manifest.add_coverage("synthetic", "AAA", "1m", T0, T0 + timedelta(minutes=30), "fetched")
    return next((lake.root / "bars").rglob("data.parquet"))


def test_verify_repairs_a_manifest_row_without_its_file_and_forgets_its_coverage(lake):
    f = _one_file(lake)
    f.unlink()
    report = lake.verify()
    assert [p.kind for p in report.problems] == ["missing_file"]
    assert lake.manifest.live_files() == []
    assert lake.manifest.coverage("synthetic", "AAA", "1m") == []
    assert lake.verify().ok


def test_verify_records_a_file_without_its_row(lake):
    f = _one_file(lake)
    lake.manifest.retire_file(f.relative_to(lake.root).as_posix())
    report = lake.verify()
    assert [p.kind for p in report.problems] == ["unrecorded_file"]
    assert len(lake.manifest.live_files()) == 1
    assert lake.verify().ok


def test_verify_re_records_a_file_whose_content_changed(lake):
    f = _one_file(lake)
    t = pq.read_table(f).slice(0, 10)
    pq.write_table(t, f)
    report = lake.verify()
    assert report.problems[0].kind in ("size", "rows", "checksum")
    assert lake.manifest.live_files()[0].rows == 10
    assert lake.verify().ok


def test_verify_moves_a_corrupt_file_aside(lake):
    f = _one_file(lake)
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])  # truncated
    report = lake.verify()
    assert [p.kind for p in report.problems] == ["corrupt"]
    assert not f.exists()
    assert list((lake.root / "_corrupt").rglob("*"))
    assert lake.manifest.coverage("synthetic", "AAA", "1m") == []
    assert lake.verify().ok


def test_verify_without_repair_only_reports(lake):
    f = _one_file(lake)
    f.unlink()
    report = lake.verify(repair=False)
    assert not report.ok
    assert not report.problems[0].repaired
    assert len(lake.manifest.live_files()) == 1


def test_manifest_runs_in_wal_with_full_sync(lake):
    c = lake.manifest._conn
    assert c.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert c.execute("pragma synchronous").fetchone()[0] == 2  # FULL
    assert c.execute("pragma foreign_keys").fetchone()[0] == 1
    assert c.execute("pragma busy_timeout").fetchone()[0] >= 1000
    tables = {r[0] for r in c.execute("select name from sqlite_master where type = 'table'")}
    assert {"symbols", "data_files", "fetch_runs", "coverage", "build_runs", "exports"} <= tables
