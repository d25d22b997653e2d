"""The lake and the marts on S3-compatible object storage, against a local S3 server (moto's
server mode on 127.0.0.1, started here): push, read back with DuckDB (httpfs), polars and
pyarrow, a push killed half-way, and a second machine pulling the lake and building it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from duckmarket.cli import main
from hotpath.marts import read_mart
from ingest.manager import DataManager
from ingest.manifest import Manifest
from ingest.paths import DataPaths
from ingest.sources.synthetic import SyntheticSource
from warehouse import remote
from warehouse.build import run_build
from warehouse.layout import list_marts, mart_files, mart_location

START, END = datetime(2020, 1, 1, tzinfo=UTC), datetime(2022, 1, 1, tzinfo=UTC)
MINUTES = (datetime(2021, 12, 20, tzinfo=UTC), datetime(2021, 12, 24, tzinfo=UTC))
BUCKET = "duckmarket-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    """moto's S3 server on 127.0.0.1; yields its endpoint URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start:\n" + log.read_text()) from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch, s3_server):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def _bucket(s3_server: str, name: str) -> str:
    fs = pafs.S3FileSystem(
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
        endpoint_override=s3_server.removeprefix("http://"),
        scheme="http",
        allow_bucket_creation=True,
    )
    fs.create_dir(name)
    return f"s3://{name}"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A warehouse built from the synthetic source: daily bars, a few days of minutes."""
    paths = DataPaths(tmp_path_factory.mktemp("remote") / "data").ensure()
    src = SyntheticSource(seed=7, n_symbols=3)
    with DataManager(paths, sources={"synthetic": src}) as dm:
        dm.ingest(src.list_symbols(), "1d", START, END, source="synthetic")
        dm.ingest(src.list_symbols()[:2], "1m", *MINUTES, source="synthetic")
    result = run_build(paths, quiet=True)
    assert result.ok, (result.error or "") + result.output[-3000:]
    return paths


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(paths: DataPaths, name: str) -> list[str]:
    return [str(f) for f in mart_files(mart_location(paths.marts, name))]


def _local_mart(paths: DataPaths, name: str):
    return duckdb.sql(f"select * from read_parquet({_files(paths, name)})").to_arrow_table()


def test_push_then_read_back_with_duckdb_polars_and_pyarrow(built, s3_server):
    url = _bucket(s3_server, BUCKET) + "/team/lake-a"
    report = remote.push(built, url)
    assert report.uploaded > 0 and report.copied == 0
    store = remote.RemoteStore(url)
    snap = store.require_current()
    assert snap.snapshot_id == report.snapshot_id
    assert snap.build_id == json.loads((built.marts / "_set.json").read_text())["build_id"]
    marts = list_marts(built.marts)
    assert store.mart_names() == marts

    # every mart through DuckDB's httpfs, s3:// paths: the same rows as the local set
    con = store.connect()
    try:
        for name in marts:
            local = _local_mart(built, name)
            cols = ", ".join(f'"{c}"' for c in local.column_names)
            con.register("local_rows", local)
            diff = con.execute(
                f"select count(*) from ((select {cols} from {name} "
                f"except all select {cols} from local_rows) union all "
                f"(select {cols} from local_rows except all select {cols} from {name}))"
            ).fetchone()[0]
            n = con.execute(f"select count(*) from {name}").fetchone()[0]
            assert (n, diff) == (local.num_rows, 0), name
            con.unregister("local_rows")
    finally:
        con.close()

    # polars through its own S3 support, with the storage options the store hands out
    glob = store.mart_glob("bars_adjusted")
    assert glob.startswith(f"{url}/snapshots/{snap.snapshot_id}/marts/bars_adjusted/")
    remote_pl = (
        pl.scan_parquet(glob, storage_options=store.endpoint.polars_options())
        .filter(pl.col("timeframe") == "1d")
        .sort("symbol", "ts")
        .collect()
    )
    local_pl = read_mart("bars_adjusted", timeframe="1d", data_dir=built.root).sort("symbol", "ts")
    assert remote_pl.equals(local_pl)
    # read_mart takes the bucket's address as its data directory
    assert (
        read_mart("bars_adjusted", timeframe="1d", data_dir=url)
        .sort("symbol", "ts")
        .equals(local_pl)
    )

    # pyarrow through its S3 filesystem
    key = store.mart_files("coverage_summary")[0].removeprefix("s3://")
    table = pq.read_table(key, filesystem=store.fs)
    assert table.equals(pq.read_table(mart_location(built.marts, "coverage_summary")))

    # the lake went too, byte for byte, with a consistent copy of the manifest
    for rel, meta in snap.files.items():
        if rel.startswith("lake/") and rel.endswith(".parquet"):
            assert meta["sha256"] == _sha(built.lake / rel.removeprefix("lake/")), rel
    assert "lake/manifest.sqlite" in snap.files


def test_a_second_push_sends_only_what_changed(built, s3_server):
    url = _bucket(s3_server, "dm-incremental")
    first = remote.push(built, url)
    again = remote.push(built, url)
    # nothing changed: every object is copied inside the bucket (at most the manifest's
    # copy differs byte-wise), none uploaded again
    assert again.uploaded <= 1 and again.copied >= first.uploaded - 1
    store = remote.RemoteStore(url)
    assert store.history() == [again.snapshot_id, first.snapshot_id]
    third = remote.push(built, url)
    # two snapshots are kept: the current one and the one before
    assert store.snapshot_ids() == sorted([again.snapshot_id, third.snapshot_id])
    assert third.deleted_snapshots == 1


def test_rotted_lake_bytes_are_caught_by_the_pull(built, s3_server, tmp_path):
    """Push takes the lake's checksums from the manifest (recorded as each file was
    written) rather than reading the lake again. A file whose bytes changed since, at the
    same size, goes up under its recorded checksum, and the pull refuses it."""
    copy = DataPaths(tmp_path / "copy")
    shutil.copytree(built.root, copy.root, symlinks=True)
    with Manifest(copy.manifest) as m:
        recorded = {f.path: f.sha256 for f in m.live_files()}
    victim = sorted(recorded)[0]
    data = bytearray((copy.lake / victim).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the file
    (copy.lake / victim).write_bytes(bytes(data))
    url = _bucket(s3_server, "dm-rot")
    remote.push(copy, url)
    snap = remote.RemoteStore(url).current()
    for rel, sha in recorded.items():
        assert snap.files[f"lake/{rel}"]["sha256"] == sha, rel
        assert (sha == _sha(copy.lake / rel)) is (rel != victim), rel
    other = DataPaths(tmp_path / "other").ensure()
    with pytest.raises(remote.RemoteError, match="does not match its checksum"):
        remote.pull(other, url)
    assert not (other.lake / victim).exists()  # nothing unchecked is left in the lake


def test_a_push_killed_half_way_leaves_the_current_snapshot_whole(built, s3_server):
    url = _bucket(s3_server, "dm-killed")
    good = remote.push(built, url)
    store = remote.RemoteStore(url)
    before = store.current()
    sent = []

    def die_after_five(rel: str) -> None:
        sent.append(rel)
        if len(sent) == 5:
            raise KeyboardInterrupt  # the push is stopped while objects are going up

    with pytest.raises(KeyboardInterrupt):
        remote.push(built, url, on_file=die_after_five)
    # the partial snapshot exists, but CURRENT still names the whole one
    assert len(store.snapshot_ids()) == 2
    assert store.current().snapshot_id == good.snapshot_id == before.snapshot_id
    con = store.connect()
    try:
        assert con.execute("select count(*) from bars_adjusted").fetchone()[0] > 0
    finally:
        con.close()
    # the next push succeeds and sweeps what the killed one left
    after = remote.push(built, url)
    assert sorted(store.snapshot_ids()) == sorted([good.snapshot_id, after.snapshot_id])


def test_a_second_machine_pulls_the_lake_and_builds_the_same_marts(built, s3_server, tmp_path):
    url = _bucket(s3_server, "dm-pull")
    remote.push(built, url)
    other = DataPaths(tmp_path / "other").ensure()
    report = remote.pull(other, url)
    assert report.downloaded > 0 and report.unchanged == 0
    for f in built.lake.rglob("*.parquet"):
        rel = f.relative_to(built.lake)
        if not any(p.startswith(".") for p in rel.parts):
            assert _sha(other.lake / rel) == _sha(f), rel
    # a pull of the same snapshot downloads nothing
    assert remote.pull(other, url).downloaded == 0
    result = run_build(other, quiet=True)
    assert result.ok, (result.error or "") + result.output[-3000:]
    cols = "symbol, timeframe, ts, close, close_adj, volume_adj, is_outlier"
    query = "select {} from read_parquet({}) order by all"
    mine = duckdb.sql(query.format(cols, _files(built, "bars_adjusted"))).fetchall()
    theirs = duckdb.sql(query.format(cols, _files(other, "bars_adjusted"))).fetchall()
    assert mine == theirs


def test_cli_push_and_sql_from_the_bucket(built, s3_server, capsys):
    url = _bucket(s3_server, "dm-cli") + "/prod"
    assert main(["--data-dir", str(built.root), "push", url]) == 0
    out = capsys.readouterr().out
    assert "pushed" in out and url in out
    assert (
        main(
            ["sql", "--from", url, "--format", "json", "select count(*) as n from coverage_summary"]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["n"] == pq.read_metadata(mart_location(built.marts, "coverage_summary")).num_rows


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["push", "not-a-bucket"], "expected s3://bucket/prefix"),
        (
            ["sql", "--from", "s3://dm-empty-never-pushed", "select 1"],
            "holds no duckmarket snapshot",
        ),
        (["push", "s3://dm-cli", "--endpoint-url", "ftp://x"], "expected http://host:port"),
        (["push", "s3://dm-no-such-bucket/x"], "no bucket 'dm-no-such-bucket'"),
    ],
)
def test_user_errors_are_one_line(built, s3_server, capsys, argv, message):
    _bucket(s3_server, "dm-empty-never-pushed")
    assert main(["--data-dir", str(built.root), *argv]) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_an_unreachable_store_is_a_clear_error(built, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")
    assert main(["--data-dir", str(built.root), "push", "s3://nowhere/x"]) != 0
    err = capsys.readouterr().err
    assert "nowhere" in err and "Traceback" not in err
    assert os.environ["AWS_ENDPOINT_URL"] in err


def _readme_section() -> str:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = text.index("### The lake and the marts on object storage")
    return text[start : text.index("### The models on Spark", start)]


def test_the_readme_object_storage_examples_run_as_written(built, s3_server, monkeypatch, tmp_path):
    """The README's commands and Python of the object-storage section, as written, from
    the directory holding data/, against the local S3 server (AWS_ENDPOINT_URL)."""
    import re
    import shlex

    section = _readme_section()
    _bucket(s3_server, "my-bucket")
    monkeypatch.chdir(built.root.parent)
    monkeypatch.delenv("DUCKMARKET_DATA", raising=False)
    elsewhere = tmp_path / "elsewhere"
    commands = [
        line.split("#")[0].strip()
        for block in re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
        for line in block.splitlines()
        if line.startswith("duckmarket ")
    ]
    assert [
        c.split()[1] if not c.split()[1].startswith("--") else c.split()[3] for c in commands
    ] == [
        "push",
        "sql",
        "pull",
    ]
    for command in commands:
        argv = [a.replace("/tmp/elsewhere", str(elsewhere)) for a in shlex.split(command)[1:]]
        assert main(argv) == 0, command
    assert (elsewhere / "lake" / "manifest.sqlite").is_file()
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1
    scope: dict[str, object] = {}
    exec(compile(blocks[0], "README.md", "exec"), scope)  # the README's own code
    try:
        assert scope["daily"].height > 0
        assert scope["rows"][0] > 0
        assert scope["lazy"].collect().height > 0
    finally:
        scope["con"].close()
