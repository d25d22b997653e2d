"""The marts are published by dbt itself, as one set, and a killed build never tears it.

``<data>/marts`` is a link to ``.marts/<build_id>``; the last node of ``dbt build``
(published_marts) writes a new set and swaps the link. Plain ``dbt build`` must refresh
the marts exactly as ``duckmarket build`` does, and SIGKILL at any point of a build must
leave readers the previous set, whole, with the next build succeeding unaided.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from ingest.manager import DataManager
from ingest.manifest import Manifest
from ingest.paths import ENV_VAR, DataPaths
from ingest.sources.synthetic import SyntheticSource
from warehouse.build import REPO, run_build
from warehouse.layout import list_marts, mart_files, mart_location
from warehouse.marts import PARTITIONED, PUBLISHED, SETS_DIR, current_set

pytestmark = pytest.mark.slow

SYMBOLS = ["SYN000", "SYN001", "SYN002"]


def _ingest(paths: DataPaths, end: datetime) -> None:
    src = SyntheticSource(seed=3, n_symbols=4)
    with DataManager(paths, sources={"synthetic": src}) as dm:
        dm.ingest(SYMBOLS, "1d", datetime(2020, 1, 1, tzinfo=UTC), end, source="synthetic")


def _set_is_whole(paths: DataPaths) -> dict[str, int]:
    """Every mart of the current set reads back with the rows its _set.json records."""
    published = current_set(paths)
    assert published is not None
    assert paths.marts.resolve() == published.path.resolve()
    rows = {}
    for name, meta in published.marts.items():
        files = mart_files(mart_location(paths.marts, name))
        assert sum(pq.read_metadata(f).num_rows for f in files) == meta["rows"]
        if name in PARTITIONED and meta["rows"]:
            # a dataset partitioned like the lake, every partition file recorded
            base = paths.marts / name
            assert {str(f.relative_to(base)) for f in files} == set(meta["partitions"])
            for f in files:
                part = meta["partitions"][str(f.relative_to(base))]
                assert pq.read_metadata(f).num_rows == part["rows"]
                assert f.stat().st_size == part["bytes"]
        rows[name] = meta["rows"]
    assert set(rows) == set(list_marts(paths.marts))
    return rows


def _dbt_processes(paths: DataPaths) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(paths.root / ".dbt") in cmdline:
            found.append(int(proc.name))
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    paths = DataPaths(tmp_path_factory.mktemp("publish") / "data").ensure()
    _ingest(paths, datetime(2022, 1, 1, tzinfo=UTC))
    t0 = time.perf_counter()
    result = run_build(paths, quiet=True)
    assert result.ok, (result.error or "") + result.output[-3000:]
    return {"paths": paths, "seconds": time.perf_counter() - t0, "result": result}


def test_a_build_publishes_one_whole_set(built):
    paths = built["paths"]
    assert paths.marts.is_symlink()
    rows = _set_is_whole(paths)
    assert set(rows) == set(PUBLISHED)  # the demo's graph builds every mart
    assert rows["bars_adjusted"] > 1000
    assert set(built["result"].exported) == set(rows)
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        listed = dict(con.execute("select mart, row_count from published_marts").fetchall())
    finally:
        con.close()
    assert listed == rows


def test_the_publication_model_refs_every_mart():
    tree = ast.parse((REPO / "models" / "publication" / "published_marts.py").read_text())
    refs = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "ref"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    marts = {p.stem for p in (REPO / "models" / "marts").rglob("*") if p.suffix in (".sql", ".py")}
    assert refs == set(PUBLISHED) == marts


def test_plain_dbt_build_refreshes_the_marts(built):
    paths = built["paths"]
    before = current_set(paths)
    _ingest(paths, datetime(2022, 7, 1, tzinfo=UTC))
    env = {**os.environ, ENV_VAR: str(paths.root)}
    dbt = [sys.executable, "-c", "from dbt.cli.main import cli; cli()"]
    target = ["--target-path", str(paths.root / ".dbt" / "target")]
    done = subprocess.run(
        [*dbt, "build", *target, "--log-path", str(paths.root / ".dbt" / "logs")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    after = current_set(paths)
    assert after is not None and before is not None
    assert after.build_id != before.build_id
    assert after.marts["bars_adjusted"]["rows"] > before.marts["bars_adjusted"]["rows"]
    _set_is_whole(paths)
    # the previous set stays for readers that resolved the link before the swap
    assert before.path.is_dir()


def _publishing(paths: DataPaths, files: int) -> bool:
    """A publication has begun, and has written (or linked) at least ``files`` Parquet
    files into its partial set."""
    sets = paths.root / SETS_DIR
    if not sets.is_dir():
        return False
    try:
        for partial in sets.iterdir():
            started = partial.name.startswith(".partial-")
            if started and (files == 0 or sum(1 for _ in partial.rglob("*.parquet")) >= files):
                return True
    except OSError:  # renamed or removed while looked at
        pass
    return False


def _kill_build_at(paths: DataPaths, seconds: float | None, files: int = 0) -> bool:
    """SIGKILL `duckmarket build` after `seconds`, or (None) as soon as publication has
    begun and put ``files`` files in its partial set; True when the build was still
    running then."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "duckmarket", "--data-dir", str(paths.root), "build", "-q"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if seconds is None:
            if _publishing(paths, files):
                break
        elif time.monotonic() > deadline - 120 + seconds:
            break
        time.sleep(0.005)
    running = proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for _ in range(200):  # the dbt child dies with its parent
        if not _dbt_processes(paths):
            break
        time.sleep(0.05)
    assert not _dbt_processes(paths), "dbt outlived the build that started it"
    return running


@pytest.mark.parametrize(
    ("fraction", "files"),
    [(0.5, 0), (None, 0), (None, 12)],
    ids=["during-dbt", "as-publication-begins", "amid-partition-files"],
)
def test_a_killed_build_leaves_the_previous_set_whole(built, fraction, files):
    paths = built["paths"]
    before = current_set(paths)
    rows = _set_is_whole(paths)
    seconds = None if fraction is None else fraction * built["seconds"]
    killed = _kill_build_at(paths, seconds, files)
    assert killed, "the build ended before the kill"
    after = current_set(paths)
    assert after is not None
    if after.build_id == before.build_id:
        assert _set_is_whole(paths) == rows
    else:  # the kill came after the swap: the new set is whole
        _set_is_whole(paths)
    # the next build needs no cleanup, and sweeps what the killed one left
    result = run_build(paths, quiet=True)
    assert result.ok, (result.error or "") + result.output[-3000:]
    with Manifest(paths.manifest) as m:  # the killed run is recorded as such
        runs = m.query("select build_id, status from build_runs order by build_id")
    assert runs[-1] == {"build_id": result.build_run_id, "status": "ok"}
    assert runs[-2]["status"] == "killed" and "running" not in {r["status"] for r in runs}
    _set_is_whole(paths)
    left = sorted(p.name for p in (paths.root / SETS_DIR).iterdir())
    assert not [n for n in left if n.startswith(".partial-")]
    assert len(left) <= 2
    assert not list(paths.root.glob(".marts-link-*"))


def test_set_file_names_its_build(built):
    published = current_set(built["paths"])
    meta = json.loads((published.path / "_set.json").read_text())
    assert meta["build_id"] == published.path.name
