"""Builds and exports that die: what the next run finds and cleans, and what a second build
is told while the first runs. (Kills of `duckmarket build` during dbt and during
publication are in test_publication.py, on a real warehouse.)"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import hotpath
from duckmarket.cli import main
from hotpath.synthetic import make_bars_mart
from ingest.manager import DataManager
from ingest.manifest import Manifest
from ingest.paths import DataPaths
from warehouse.build import WarehouseLockedError, build_lock, run_build

REPO = Path(__file__).resolve().parents[1]


def test_a_killed_export_leaves_the_old_file_and_the_next_export_sweeps(tmp_path: Path):
    paths = DataPaths(tmp_path / "data").ensure()
    rows = {f"S{i:02d}": 400_000 for i in range(8)}  # 3.2 M rows: a write of a second or so
    make_bars_mart(paths.marts / "bars_adjusted.parquet", list(rows), rows)
    out = paths.export / "bars.arrow"
    first = hotpath.export("bars_adjusted", data_dir=paths, out=out, symbols=["S00"])
    before = out.read_bytes()

    proc = subprocess.Popen(
        [sys.executable, "-m", "duckmarket", "--data-dir", str(paths.root), "export",
         "bars_adjusted", "--out", str(out)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    tmp: list[Path] = []
    while proc.poll() is None and time.monotonic() < deadline:
        tmp = [p for p in out.parent.iterdir() if p.name.endswith(".tmp") and p.stat().st_size]
        if tmp:
            break
        time.sleep(0.001)
    assert tmp, "the export finished before it could be killed mid-write"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert out.read_bytes() == before  # the old export is whole
    with hotpath.open(out, verify=True) as x:
        assert x.symbols == ["S00"] and len(x) == first.rows
    assert any(p.exists() for p in tmp)  # the killed writer's temporary is still there

    # a temporary of a live process (this one) is not touched
    mine = out.parent / f".other.arrow.{os.getpid()}.0123abcd.tmp"
    mine.write_bytes(b"in progress")
    again = hotpath.export("bars_adjusted", data_dir=paths, out=out, symbols=["S01"])
    assert again.rows == 400_000
    left = sorted(p.name for p in out.parent.iterdir())
    assert left == sorted(["bars.arrow", mine.name])


def _tiny_lake(root: Path) -> DataPaths:
    dm = DataManager(root)
    dm.get_ohlcv("SYN000", "1d", "2024-01-02", "2024-01-20", source="synthetic")
    return dm.paths


def test_a_second_build_is_told_which_build_runs(tmp_path: Path, capsys):
    paths = _tiny_lake(tmp_path / "data")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from ingest.paths import DataPaths; "
         "from warehouse.build import build_lock\n"
         "with build_lock(DataPaths(sys.argv[1])):\n"
         "    print('locked', flush=True); time.sleep(60)",
         str(paths.root)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(WarehouseLockedError) as err:
            run_build(paths, quiet=True)
        msg = str(err.value)
        assert f"a build is already running on {paths.root}: PID {holder.pid}, started " in msg
        assert "close that DuckDB shell" not in msg
        started = msg.split("started ")[1].split(" UTC")[0]
        when = datetime.strptime(started, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        assert abs((datetime.now(UTC) - when).total_seconds()) < 60
        rc = main(["--data-dir", str(paths.root), "build"])
        assert rc == 3 and "a build is already running" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    # the lock dies with its holder
    with build_lock(paths):
        pass


def test_runs_of_dead_builds_are_marked_killed_and_status_says_so(tmp_path: Path, capsys):
    paths = _tiny_lake(tmp_path / "data")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with Manifest(paths.manifest) as m:
        run = m.start_build_run("dbt build", [], pid=dead.pid)
    rc = main(["--data-dir", str(paths.root), "status"])
    out = " ".join(capsys.readouterr().out.split())
    assert rc == 0 and "last build: killed, started" in out and "died before it finished" in out
    assert main(["--data-dir", str(paths.root), "status", "--json"]) == 0
    assert '"status": "killed"' in capsys.readouterr().out
    # the next build records it for good, under its lock
    with build_lock(paths), Manifest(paths.manifest) as m:
        assert m.mark_killed_builds() == 1
        row = m.query("select status, error from build_runs where build_id = ?", (run,))[0]
    assert row["status"] == "killed" and "died before it finished" in row["error"]


def test_a_version_1_manifest_is_migrated_without_losing_runs(tmp_path: Path):
    path = tmp_path / "manifest.sqlite"
    with Manifest(path):
        pass
    c = sqlite3.connect(path)  # rebuild build_runs as version 1 had it, with a run and an export
    c.executescript(
        """
        pragma foreign_keys=off;
        drop table build_runs;
        create table build_runs (
            build_id integer primary key autoincrement,
            command text not null,
            status text not null check (status in ('running', 'ok', 'failed')),
            started_at integer not null, duration_s real, error text, data_files text not null);
        insert into build_runs values (7, 'dbt build', 'running', 1, null, null, '[]');
        insert into exports (path, format, rows, bytes, build_id, created_at)
            values ('x.arrow', 'arrow', 1, 1, 7, 1);
        update meta set value = '1' where key = 'schema_version';
        """
    )
    c.close()
    with Manifest(path) as m:
        assert m.mark_killed_builds() == 1
        assert m.last_build_run(None)["status"] == "killed"
        assert m.query("select build_id from exports") == [{"build_id": 7}]
        assert m.query("select value from meta where key = 'schema_version'")[0]["value"] == "2"
        assert m.query("pragma foreign_key_check") == []
