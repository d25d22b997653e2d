"""Attacks on the data server that must fail: keys, path traversal, injection, and everything
the SQL endpoint must refuse. Run over HTTP against the real server."""

from __future__ import annotations

import http.client
import os
import stat
from urllib.parse import urlsplit

import httpx
import pytest

from server.keys import KeyStore
from tests.server_support import build_data_root, start_server


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("server_sec")
    paths = build_data_root(root)
    keys_file = root / "server" / "api_keys.json"
    store = KeyStore(keys_file)
    reader, admin = store.add("reader"), store.add("admin", trusted=True)
    srv = start_server(paths, keys_file)
    with httpx.Client(base_url=srv.url, timeout=20) as client:
        yield {
            "client": client,
            "reader": reader,
            "admin": admin,
            "url": srv.url,
            "root": root,
            "store": store,
            "keys_file": keys_file,
        }
    srv.stop()


def _no_trace(r: httpx.Response) -> None:
    assert "Traceback" not in r.text and 'File "' not in r.text
    assert r.json()["error"]["message"]


# -- keys ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "route", ["/v1/symbols", "/v1/coverage", "/v1/bars/AAA", "/v1/marts", "/v1/features/momentum/1"]
)
def test_every_data_route_needs_a_key(env, route):
    r = env["client"].get(route)
    assert r.status_code == 401
    _no_trace(r)


@pytest.mark.parametrize(
    "key",
    ["wrong", "", "dm_0000000000000000_" + "A" * 43, "x" * 5000],
)
def test_a_wrong_key_is_refused(env, key):
    r = env["client"].get("/v1/bars/AAA", headers={"X-API-Key": key})
    assert r.status_code == 401


def test_a_key_with_a_tampered_secret_is_refused(env):
    good = env["reader"]
    bad = good[:-1] + ("A" if good[-1] != "A" else "B")
    assert env["client"].get("/v1/bars/AAA", headers={"X-API-Key": good}).status_code == 200
    assert env["client"].get("/v1/bars/AAA", headers={"X-API-Key": bad}).status_code == 401


def test_keys_are_stored_hashed_and_private(env):
    text = env["keys_file"].read_text()
    secret = env["reader"].split("_", 2)[2]
    assert secret not in text and env["reader"] not in text
    assert stat.S_IMODE(os.stat(env["keys_file"]).st_mode) == 0o600


def test_a_revoked_key_stops_working_without_restart(env):
    key = env["store"].add("temp")
    assert env["client"].get("/v1/marts", headers={"X-API-Key": key}).status_code == 200
    assert env["store"].revoke("temp")
    assert env["client"].get("/v1/marts", headers={"X-API-Key": key}).status_code == 401


def test_sql_needs_a_trusted_key(env):
    r = env["client"].post(
        "/v1/sql", json={"sql": "select 1"}, headers={"X-API-Key": env["reader"]}
    )
    assert r.status_code == 403
    r = env["client"].post("/v1/sql", json={"sql": "select 1"})
    assert r.status_code == 401


# -- symbols and parameters ------------------------------------------------------------------
@pytest.mark.parametrize(
    "symbol",
    [
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2Fetc%2Fpasswd",
        "..",
        "a%2F..%2F..%2Fsecret.txt",
        "..%5C..%5Cwindows",
        "AAA%00",
        "%2E%2E%2Fsecret.txt",
        "A%20A",
    ],
)
def test_path_traversal_in_symbols_is_refused(env, symbol):
    r = env["client"].get(f"/v1/bars/{symbol}", headers={"X-API-Key": env["reader"]})
    assert r.status_code in (400, 404)
    assert "top secret" not in r.text and "root:" not in r.text


def test_raw_dot_segments_never_reach_a_file(env):
    # http.client sends the path as is (httpx would normalise the dots away)
    parts = urlsplit(env["url"])
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", "/v1/bars/../../../secret.txt", headers={"X-API-Key": env["reader"]})
    resp = conn.getresponse()
    body = resp.read().decode()
    conn.close()
    assert resp.status in (400, 404)
    assert "top secret" not in body


@pytest.mark.parametrize(
    "params",
    [
        {"timeframe": "1d' or '1'='1"},
        {"start": "2024-01-01'; drop table x; --"},
        {"columns": "close, (select 1)"},
        {"columns": "close\" from read_csv('/etc/passwd') --"},
        {"adjustment": "asof:2024-01-01'); copy x to '/tmp/x"},
        {"cursor": "' or 1=1 --"},
    ],
)
def test_sql_injection_in_parameters_is_inert(env, params):
    r = env["client"].get("/v1/bars/AAA", params=params, headers={"X-API-Key": env["reader"]})
    assert 400 <= r.status_code < 500
    _no_trace(r)


def test_injection_in_the_symbol_is_just_an_unknown_symbol(env):
    r = env["client"].get("/v1/bars/AAA'%20OR%20'1'='1", headers={"X-API-Key": env["reader"]})
    assert r.status_code == 400  # white space is refused by the symbol check
    r = env["client"].get("/v1/bars/AAA'OR'1'='1", headers={"X-API-Key": env["reader"]})
    assert r.status_code == 404
    r = env["client"].get(
        "/v1/features/momentum/1",
        params={"symbols": "AAA') or ('1'='1"},
        headers={"X-API-Key": env["reader"]},
    )
    assert r.status_code == 400


# -- the SQL endpoint ------------------------------------------------------------------------
ATTACKS = {
    "copy_to": "copy (select 1) to '/tmp/duckmarket_pwned.csv'",
    "copy_mart_out": "copy bars_adjusted to '{root}/stolen.parquet'",
    "attach_file": "attach '{root}/evil.duckdb' as evil",
    "attach_memory": "attach ':memory:' as m",
    "install": "install httpfs",
    "load": "load httpfs",
    "read_csv_passwd": "select * from read_csv('/etc/passwd')",
    "read_text_passwd": "select * from read_text('/etc/passwd')",
    "read_blob_environ": "select * from read_blob('/proc/self/environ')",
    "read_secret_outside_marts": "select * from read_csv('{root}/secret.txt')",
    "read_lake": "select * from read_csv('{root}/lake/not_a_mart.csv')",
    "dotdot_out_of_marts": "select * from read_text('{root}/marts/../secret.txt')",
    "read_keys_file": "select * from read_text('{root}/server/api_keys.json')",
    "glob_root": "select * from glob('/*')",
    "two_statements": "select 1; select 2",
    "select_then_copy": "select 1; copy (select 1) to '/tmp/duckmarket_pwned2.csv'",
    "set_external_access": "set enable_external_access = true",
    "reset_lock": "reset lock_configuration",
    "set_then_read": "set lock_configuration = false; select * from read_csv('/etc/passwd')",
    "pragma": "pragma enable_profiling",
    "create_table": "create table t as select 1",
    "create_secret": "create secret s (type s3, key_id 'a', secret 'b')",
    "export_database": "export database '{root}/dump'",
    "call": "call duckdb_settings()",
    "query_function_copy": "select * from query('copy (select 1) to ''/tmp/duckmarket_q.csv''')",
    "sniff_passwd": "select * from sniff_csv('/etc/passwd')",
    "parquet_metadata_outside": "select * from parquet_metadata('{root}/lake/**/*.parquet')",
    "empty": "   ",
    "comment_only": "-- nothing",
    "garbage": "selec * frm",
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_the_sql_endpoint_refuses(env, name):
    sql = ATTACKS[name].format(root=env["root"])
    r = env["client"].post("/v1/sql", json={"sql": sql}, headers={"X-API-Key": env["admin"]})
    assert 400 <= r.status_code < 500, (name, r.status_code, r.text)
    _no_trace(r)
    assert "top secret" not in r.text and "root:x" not in r.text
    assert not (env["root"] / "stolen.parquet").exists()
    assert not (env["root"] / "evil.duckdb").exists()
    assert not os.path.exists("/tmp/duckmarket_pwned.csv")


def test_the_lockdown_is_in_place_inside_the_query(env):
    """The settings are locked on the query's connection (read here directly: the
    endpoint itself refuses settings functions, which name the server's directories)."""
    from server.snapshots import Snapshot
    from server.sql import SqlLimits, _locked_connection

    with Snapshot(env["root"] / "marts") as snap:
        con, _marts = _locked_connection(snap, SqlLimits())
    try:
        rows = con.execute(
            "select name, value from duckdb_settings() where name in "
            "('enable_external_access', 'lock_configuration', 'autoinstall_known_extensions', "
            "'autoload_known_extensions') order by name"
        ).fetchall()
    finally:
        con.close()
    assert dict(rows) == {
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
        "enable_external_access": "false",
        "lock_configuration": "true",
    }
    r = env["client"].post(
        "/v1/sql",
        json={"sql": "select name, value from duckdb_settings()"},
        headers={"X-API-Key": env["admin"]},
    )
    assert r.status_code == 400 and "duckdb_settings" in r.json()["error"]["message"]


def test_a_long_query_is_stopped_by_the_timeout(tmp_path):
    paths = build_data_root(tmp_path)
    from server.sql import SqlLimits

    admin = KeyStore(tmp_path / "k.json").add("admin", trusted=True)
    srv = start_server(paths, tmp_path / "k.json", sql=SqlLimits(timeout_s=0.5))
    try:
        sql = "select count(*) from range(10000000000) a, range(1000) b where a.range % 7 = b.range"
        r = httpx.post(
            srv.url + "/v1/sql", json={"sql": sql}, headers={"X-API-Key": admin}, timeout=30
        )
        assert r.status_code == 408
        assert "longer than" in r.json()["error"]["message"]
        # the server is still fine afterwards
        r = httpx.post(
            srv.url + "/v1/sql",
            json={"sql": "select 42 as x"},
            headers={"X-API-Key": admin},
            timeout=10,
        )
        assert r.json()["data"] == [{"x": 42}]
    finally:
        srv.stop()


def test_sql_errors_are_clear_400s(env):
    r = env["client"].post(
        "/v1/sql",
        json={"sql": "select nope from bars_adjusted"},
        headers={"X-API-Key": env["admin"]},
    )
    assert r.status_code == 400
    assert "nope" in r.json()["error"]["message"]
    _no_trace(r)


def test_the_locked_connection_holds_even_without_the_statement_check(env):
    """Second line of defence: on the connection itself, writes, reads outside the marts
    and attempts to undo the lockdown all fail."""
    import duckdb

    from server.snapshots import Snapshot
    from server.sql import SqlLimits, _locked_connection

    root = env["root"]
    with Snapshot(root / "marts") as snap:
        con, marts = _locked_connection(snap, SqlLimits())
        try:
            assert "bars_adjusted" in marts
            assert con.execute("select count(*) from bars_adjusted").fetchone()[0] > 0
            for sql in [
                "set enable_external_access = true",
                "set lock_configuration = false",
                "reset allowed_directories",
                "set allowed_directories = ['/']",
                f"copy (select 1) to '{root}/x.csv'",
                f"attach '{root}/evil.duckdb'",
                "install httpfs",
                "load httpfs",
                "select * from read_csv('/etc/passwd')",
                f"select * from read_text('{root}/secret.txt')",
            ]:
                with pytest.raises(duckdb.Error):
                    con.execute(sql).fetchall()
        finally:
            con.close()
    assert not (root / "x.csv").exists() and not (root / "evil.duckdb").exists()
