"""The server serves rebuilt marts without a restart and never a half-written or mixed one;
``duckmarket serve`` starts the real server from the command line on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from server.keys import KeyStore
from server.snapshots import Snapshot
from tests.server_support import (
    bars_table,
    build_data_root,
    publish_set,
    start_server,
    write_atomically,
)
from warehouse.layout import read_table


@pytest.fixture
def env(tmp_path):
    paths = build_data_root(tmp_path)
    key = KeyStore(tmp_path / "k.json").add("reader")
    srv = start_server(paths, tmp_path / "k.json", batch_rows=256)
    with httpx.Client(base_url=srv.url, headers={"X-API-Key": key}, timeout=10) as client:
        yield {"client": client, "paths": paths}
    srv.stop()


def test_a_rebuilt_mart_is_served_without_restart(env):
    client, paths = env["client"], env["paths"]
    assert client.get("/v1/bars/NEWCO").status_code == 404
    write_atomically(bars_table(extra_symbol="NEWCO"), paths.marts / "bars_adjusted.parquet")
    r = client.get("/v1/bars/NEWCO")
    assert r.status_code == 200
    assert [row["close"] for row in r.json()["data"]] == [10.0, 11.0, 12.0]


def test_a_new_feature_mart_appears_without_restart(env):
    client, paths = env["client"], env["paths"]
    assert client.get("/v1/features/carry/2").status_code == 404
    table = pa.table(
        {"symbol": ["AAA"], "ts": pa.array([0], pa.timestamp("us", tz="UTC")), "carry": [0.5]}
    )
    write_atomically(table, paths.marts / "features_carry_v2.parquet")
    assert client.get("/v1/features/carry/2").json()["data"][0]["carry"] == 0.5


def test_a_response_streaming_during_a_rebuild_keeps_the_old_version(env):
    client, paths = env["client"], env["paths"]
    mart = paths.marts / "bars_adjusted.parquet"
    params = {"timeframe": "1m", "format": "arrow", "limit": 100_000, "columns": "ts,close"}
    with client.stream("GET", "/v1/bars/MSFT", params=params) as r:
        assert r.status_code == 200
        chunks = r.iter_bytes()
        first = next(chunks)
        # the rebuild replaces the file: MSFT now has other prices and fewer rows
        new = bars_table().filter(pa.compute.not_equal(bars_table()["symbol"], "MSFT"))
        write_atomically(new, mart)
        body = first + b"".join(chunks)
    table = ipc.open_stream(body).read_all()
    old = bars_table()
    old_msft = old.filter(pa.compute.equal(old["symbol"], "MSFT"))
    assert table.num_rows == old_msft.num_rows
    assert table["close"].to_pylist() == old_msft["close"].to_pylist()
    assert client.get("/v1/bars/MSFT", params={"timeframe": "1m"}).status_code == 404


def test_a_snapshot_reads_one_published_set_until_it_is_swept(tmp_path):
    paths = build_data_root(tmp_path)
    first = publish_set(paths)
    snap = Snapshot(paths.marts)
    assert snap.marts_dir == first and not snap.is_stale()
    # one build publishes: the snapshot still reads its own set, whole
    publish_set(paths, {"bars_adjusted": bars_table(extra_symbol="NEWCO")})
    assert snap.is_stale()
    old = read_table(snap.marts_dir, "bars_adjusted")
    assert "NEWCO" not in old["symbol"].to_pylist()
    assert Snapshot(paths.marts).marts_dir != first
    # the next one sweeps it: the snapshot says so, and the callers start again
    publish_set(paths)
    assert not first.exists() and snap.is_stale()


def test_no_file_descriptors_leak(env):
    client = env["client"]
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(30):
        client.get("/v1/bars/AAA", params={"format": "arrow"})
        client.get("/v1/bars/NOPE")
        client.get("/v1/bars/AAA", params={"adjustment": "bogus"})
    time.sleep(0.2)
    assert len(os.listdir("/proc/self/fd")) <= before + 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_duckmarket_serve_from_the_command_line(tmp_path):
    build_data_root(tmp_path)
    cli = [sys.executable, "-m", "duckmarket", "--data-dir", str(tmp_path), "serve"]
    made = subprocess.run([*cli, "--add-key", "ci"], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("dm_") and key not in (tmp_path / "server" / "api_keys.json").read_text()
    listed = subprocess.run([*cli, "--list-keys"], capture_output=True, text=True, timeout=60)
    assert listed.stdout.startswith("ci\tread-only")
    port = _free_port()
    proc = subprocess.Popen(
        [*cli, "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        r = httpx.get(url + "/v1/bars/AAA", headers={"X-API-Key": key}, timeout=10)
        assert r.status_code == 200 and r.json()["count"] == 6
        assert "server" not in r.headers
    finally:
        proc.terminate()
        proc.wait(10)
