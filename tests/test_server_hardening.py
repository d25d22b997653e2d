"""The data server under abuse (issue 12, items 6-11): requests during republication,
extreme parameters, edited cursors, queries past their time, memory or size, too many
requests, stray files in the marts, and answers that would name the server's paths.
Against the real server (uvicorn on a loopback port) with small limits, so it stays fast."""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from server import RateLimit, SqlLimits
from server.keys import KeyStore
from tests.server_support import build_data_root, publish_set, start_server

SMALL = SqlLimits(
    timeout_s=1.0, memory_limit="400MB", max_bytes=200_000, max_concurrent=2, threads=1
)
GENEROUS = RateLimit(per_second=1000, burst=1000)


def _start(root: Path, **config: object) -> tuple[object, str, str]:
    """A published data root under ``root``, a reader and a trusted key, the server."""
    paths = build_data_root(root)
    publish_set(paths, _markers(0))
    store = KeyStore(root / "keys.json")
    reader, admin = store.add("reader"), store.add("admin", trusted=True)
    config = {"sql": SMALL, "rate_limit": GENEROUS, **config}
    srv = start_server(paths, root / "keys.json", **config)
    return srv, reader, admin


def _markers(i: int) -> dict[str, pa.Table]:
    """Two marts that every build writes with its own number: a request that read marts of
    two builds would see them differ."""
    return {"marker_a": pa.table({"n": [i]}), "marker_b": pa.table({"n": [i]})}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("server_hard")
    srv, reader, admin = _start(root)
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        yield {"client": client, "reader": reader, "admin": admin, "root": root, "url": srv.url}
    srv.stop()


def _sql(env, sql: str, fmt: str | None = None, **body: object) -> httpx.Response:
    params = {"format": fmt} if fmt else None
    return env["client"].post(
        "/v1/sql", json={"sql": sql, **body}, params=params, headers={"X-API-Key": env["admin"]}
    )


def _get(env, route: str, **params: object) -> httpx.Response:
    return env["client"].get(route, params=params, headers={"X-API-Key": env["reader"]})


def _is_clear_error(r: httpx.Response) -> bool:
    text = r.text
    return "Traceback" not in text and 'File "' not in text and bool(r.json()["error"]["message"])


_MACHINE_DIRS = re.compile(r"(?<![\w/])/(?:tmp|home|root|work|proc|etc|usr|var|opt)(?:/|\b)")


def _paths_in(text: str, root: Path) -> list[str]:
    """Paths of this machine named in ``text``."""
    needles = {str(root), os.path.realpath(root), os.getcwd(), os.path.expanduser("~")}
    needles |= {sys.prefix, str(root.parent)}
    found = [n for n in needles if len(n) > 1 and n in text]
    return found + _MACHINE_DIRS.findall(text)


# -- 6. requests during a rebuild -----------------------------------------------------------
def test_requests_during_republication_all_succeed_on_one_set(tmp_path):
    srv, reader, admin = _start(tmp_path, sql=SqlLimits(timeout_s=5.0, max_concurrent=3))
    paths = srv.app.state.config.paths
    done = threading.Event()
    published = [0]

    def publisher() -> None:
        # each build sweeps the set before the previous one: a request that runs across
        # two publications loses the set it started on
        while not done.is_set() and published[0] < 60:
            published[0] += 1
            publish_set(paths, _markers(published[0]))

    failures: list[str] = []
    sql = (
        "select (select n from marker_a) as a, (select n from marker_b) as b, "
        "(select count(*) from bars_adjusted) as bars"
    )

    def client(i: int) -> None:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for _ in range(12):
                r = c.post("/v1/sql", json={"sql": sql}, headers={"X-API-Key": admin})
                if r.status_code != 200:
                    failures.append(f"sql {r.status_code} {r.text[:200]}")
                elif (row := r.json()["data"][0])["a"] != row["b"] or not row["bars"]:
                    failures.append(f"sql read two sets: {row}")
                r = c.get(
                    "/v1/bars/MSFT",
                    params={"timeframe": "1m", "limit": 50 + i},
                    headers={"X-API-Key": reader},
                )
                if r.status_code != 200 or r.json()["count"] != 50 + i:
                    failures.append(f"bars {r.status_code} {r.text[:200]}")
                r = c.get("/v1/marts", headers={"X-API-Key": reader})
                names = {m["name"] for m in r.json().get("marts", [])}
                if r.status_code != 200 or not {"marker_a", "bars_adjusted"} <= names:
                    failures.append(f"marts {r.status_code} {r.text[:200]}")

    pub = threading.Thread(target=publisher)
    clients = [threading.Thread(target=client, args=(i,)) for i in range(3)]
    try:
        pub.start()
        for t in clients:
            t.start()
        for t in clients:
            t.join(120)
    finally:
        done.set()
        pub.join(60)
        srv.stop()
    assert published[0] >= 3
    assert not failures, failures[:5]


@pytest.mark.parametrize(
    ("method", "route", "check"),
    [
        ("POST", "/v1/sql", lambda body: body["data"][0]["a"] == body["data"][0]["b"] > 0),
        ("GET", "/v1/bars/AAA", lambda body: body["count"] == 6),
        ("GET", "/v1/marts", lambda body: "marker_a" in {m["name"] for m in body["marts"]}),
        ("GET", "/v1/timeframes", lambda body: len(body["timeframes"]) == 2),
    ],
)
def test_a_request_whose_set_is_swept_before_it_reads_starts_on_the_new_one(
    tmp_path, monkeypatch, method, route, check
):
    """The worst moment, made certain: right after the request resolves the marts link,
    two builds publish, and the second sweeps the set the request resolved."""
    from server import snapshots

    srv, _reader, admin = _start(tmp_path)
    paths = srv.app.state.config.paths
    resolve = snapshots.Snapshot.__init__
    armed = threading.Event()
    builds = [0]

    def resolve_then_two_builds(self, marts_dir):
        resolve(self, marts_dir)
        if armed.is_set():
            armed.clear()
            for _ in range(2):
                builds[0] += 1
                publish_set(paths, _markers(builds[0]))
            assert not self.marts_dir.exists()

    monkeypatch.setattr(snapshots.Snapshot, "__init__", resolve_then_two_builds)
    sql = {"sql": "select (select n from marker_a) as a, (select n from marker_b) as b"}
    try:
        armed.set()
        r = httpx.request(
            method,
            srv.url + route,
            json=sql if method == "POST" else None,
            headers={"X-API-Key": admin},
            timeout=30,
        )
    finally:
        srv.stop()
    assert builds[0] == 2
    assert r.status_code == 200, r.text
    assert check(r.json()), r.text


# -- 7. extreme dates ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("route", "params", "expected"),
    [
        ("/v1/bars/AAA", {"start": "9999-12-31T23:00:00-05:00"}, 400),
        ("/v1/bars/AAA", {"start": "0001-01-01T00:30:00+05:00"}, 400),
        ("/v1/bars/AAA", {"end": "9999-12-31T23:59:59.999999-00:01"}, 400),
        ("/v1/bars/AAA", {"adjustment": "asof:9999-12-31"}, 200),
        ("/v1/bars/AAA", {"as_of": "9999-12-31"}, 200),
        ("/v1/bars/AAA", {"adjustment": "asof:0001-01-01"}, 200),
        ("/v1/bars/AAA", {"start": "0001-01-01", "end": "9999-12-31"}, 200),
        ("/v1/bars/AAA", {"start": "9999-12-31T23:59:59.999999Z"}, 200),
        ("/v1/bars/AAA", {"start": "0001-01-01T00:00:00Z", "adjustment": "asof:9999-12-31"}, 200),
        ("/v1/bars/AAA", {"start": "+10000-01-01"}, 400),
        ("/v1/bars/AAA", {"start": "2024-02-30"}, 400),
        ("/v1/bars/AAA", {"adjustment": "asof:10000-01-01"}, 400),
        ("/v1/bars/AAA", {"start": "9" * 1000}, 400),
        ("/v1/bars/AAA", {"limit": str(10**30)}, 422),
        ("/v1/features/momentum/1", {"start": "9999-12-31T23:00:00-05:00"}, 400),
        ("/v1/features/momentum/1", {"end": "0001-01-01T00:30:00+05:00"}, 400),
        ("/v1/features/momentum/1", {"start": "0001-01-01", "end": "9999-12-31"}, 200),
        ("/v1/features/momentum/99999999999999999999", {}, 400),
    ],
)
def test_extreme_parameters_get_a_4xx_with_a_message(env, route, params, expected):
    r = _get(env, route, **params)
    assert r.status_code == expected, r.text
    if expected >= 400:
        assert _is_clear_error(r)
    # the connection is still good for the next request
    assert _get(env, "/v1/bars/AAA").status_code == 200


# -- 8. edited cursors -------------------------------------------------------------------------
def _edit(cursor: str, position: int, raw_value: str) -> str:
    doc = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    values = [json.dumps(v) for v in doc["k"]]
    values[position] = raw_value  # JSON text, so NaN and 1e40 arrive as written
    text = '{"k":[' + ",".join(values) + '],"q":' + json.dumps(doc["q"]) + "}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("position", "raw_value"),
    [
        (0, '"text"'),
        (0, "1" + "0" * 40),
        (0, "true"),
        (0, "NaN"),
        (0, "Infinity"),
        (0, "[1, 2]"),
        (0, '{"t": "9999-12-31T23:00:00-05:00"}'),
        (0, '{"t": "0001-01-01T00:30:00+05:00"}'),
        (0, '{"t": "2024-01-02T14:30:00"}'),
        (0, '{"d": "2024-01-02"}'),
        (0, '{"t": 5}'),
        (1, "1" + "0" * 40),
        (1, "NaN"),
        (1, '{"t": "2024-01-02T14:30:00+00:00"}'),
    ],
)
def test_an_edited_cursor_is_a_400(env, position, raw_value):
    params = {"timeframe": "1m", "limit": 100}
    first = _get(env, "/v1/bars/MSFT", **params)
    cursor = first.json()["next_cursor"]
    r = _get(env, "/v1/bars/MSFT", **params, cursor=_edit(cursor, position, raw_value))
    assert r.status_code == 400, r.text
    assert "invalid cursor" in r.json()["error"]["message"]


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59.999999+00:00", "0001-01-01T00:00:00+00:00"])
def test_a_cursor_at_the_ends_of_time_is_just_a_page(env, when):
    params = {"timeframe": "1m", "limit": 100}
    cursor = _get(env, "/v1/bars/MSFT", **params).json()["next_cursor"]
    r = _get(env, "/v1/bars/MSFT", **params, cursor=_edit(cursor, 0, json.dumps({"t": when})))
    assert r.status_code == 200, r.text


def test_an_edited_feature_cursor_is_a_400(env):
    first = _get(env, "/v1/features/momentum/1", limit=5)
    cursor = first.json()["next_cursor"]
    for position, raw in [(0, "1" + "0" * 40), (1, '"text"'), (1, "true")]:
        r = _get(env, "/v1/features/momentum/1", limit=5, cursor=_edit(cursor, position, raw))
        assert r.status_code == 400, r.text


# -- 9. limits ------------------------------------------------------------------------------
def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_cpu_bound_scalar_query_is_stopped_at_its_time_limit(env):
    _sql(env, "select 1")  # a worker is up: its start is not part of the time below
    started = time.monotonic()
    # one levenshtein call of 3.6e9 steps never checks for interruption (DuckDB's
    # interrupt waits for it: 11 s here): the worker is killed a second after the limit
    r = _sql(env, "select levenshtein(repeat('x', 60000), repeat('y', 60000)) as n")
    took = time.monotonic() - started
    assert r.status_code == 408, r.text
    assert took < SMALL.timeout_s + 4.0, took  # not the 11 s an uninterrupted call takes
    assert _sql(env, "select 42 as x").json()["data"] == [{"x": 42}]


def test_a_huge_string_is_refused_for_memory_without_growing_the_server(env):
    before = _rss()
    started = time.monotonic()
    r = _sql(env, "select length(repeat('x', 1000000000)) as n")
    assert r.status_code == 400, r.text
    assert "memory" in r.json()["error"]["message"] and SMALL.memory_limit in r.text
    assert time.monotonic() - started < 10
    r = _sql(env, "select length(string_agg(repeat('x', 1000), '')) as n from range(10000000)")
    assert r.status_code in (400, 408), r.text
    assert _rss() - before < 100 * 2**20  # the server itself did not take the memory
    assert _sql(env, "select 42 as x").json()["data"] == [{"x": 42}]


def test_queries_past_the_concurrency_limit_get_503_with_retry_after(env):
    slow = "select count(*) from range(10000000000) a, range(1000) b where a.range % 7 = b.range"
    results: list[httpx.Response] = []

    def run_slow() -> None:
        with httpx.Client(base_url=env["url"], timeout=30) as c:
            results.append(
                c.post("/v1/sql", json={"sql": slow}, headers={"X-API-Key": env["admin"]})
            )

    threads = [threading.Thread(target=run_slow) for _ in range(SMALL.max_concurrent)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # both slots taken (the timeout is 1 s)
    busy = _sql(env, "select 1")
    health_started = time.monotonic()
    health = env["client"].get("/v1/health")
    health_took = time.monotonic() - health_started
    for t in threads:
        t.join(30)
    assert busy.status_code == 503, busy.text
    assert int(busy.headers["retry-after"]) >= 1
    assert "retry" in busy.json()["error"]["message"]
    assert health.status_code == 200 and health_took < 5  # not stuck behind the SQL
    assert sorted(r.status_code for r in results) == [408] * SMALL.max_concurrent
    assert _sql(env, "select 1 as x").status_code == 200


@pytest.mark.parametrize("fmt", ["json", "csv", "arrow", "parquet"])
def test_answers_are_capped_in_bytes_and_say_so(env, fmt):
    # 1000 rows of 1 kB: 1 MB, five times the cap
    r = _sql(env, "select range as i, repeat('x', 1000) as s from range(1000)", fmt)
    assert r.status_code == 200, r.text
    assert len(r.content) <= SMALL.max_bytes
    assert r.headers["x-truncated"] == "true"
    if fmt == "json":
        body = r.json()
        assert body["truncated"] is True and body["truncated_by"] == "bytes"
        assert 0 < body["count"] < 1000 and body["byte_cap"] == SMALL.max_bytes
    if fmt == "arrow":
        table = ipc.open_stream(r.content).read_all()
        assert 0 < table.num_rows < 1000
        assert table["i"].to_pylist() == list(range(table.num_rows))


def test_a_small_answer_is_whole(env):
    r = _sql(env, "select range as i from range(100)")
    assert r.json()["count"] == 100 and r.json()["truncated"] is False
    assert r.headers["x-truncated"] == "false"


def test_requests_past_a_keys_rate_get_429_with_retry_after(tmp_path):
    srv, reader, admin = _start(tmp_path, rate_limit=RateLimit(per_second=0.5, burst=3))
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            codes = [c.get("/v1/marts", headers={"X-API-Key": reader}).status_code]
            codes += [c.get("/v1/marts", headers={"X-API-Key": reader}).status_code]
            codes += [c.get("/v1/marts", headers={"X-API-Key": reader}).status_code]
            limited = c.get("/v1/marts", headers={"X-API-Key": reader})
            other = c.get("/v1/marts", headers={"X-API-Key": admin})  # its own bucket
            health = c.get("/v1/health")
    finally:
        srv.stop()
    assert codes == [200, 200, 200]
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert "too many requests" in limited.json()["error"]["message"]
    assert other.status_code == 200 and health.status_code == 200


# -- 10. stray files in the marts ------------------------------------------------------------
def test_stray_files_in_the_marts_are_ignored_with_a_log_line(tmp_path, caplog):
    srv, reader, admin = _start(tmp_path)
    marts = Path(os.path.realpath(tmp_path / "marts"))
    (marts / "evil.parquet").symlink_to(tmp_path / "secret.txt")
    (marts / "junk.parquet").write_text("not parquet at all\n")
    (marts / "dangling.parquet").symlink_to(tmp_path / "nowhere")
    (marts / "adir.parquet").mkdir()
    try:
        with (
            caplog.at_level("WARNING", logger="duckmarket.server"),
            httpx.Client(base_url=srv.url, timeout=30) as c,
        ):
            admin_h, reader_h = {"X-API-Key": admin}, {"X-API-Key": reader}
            r = c.post("/v1/sql", json={"sql": "select 42 as x"}, headers=admin_h)
            assert r.status_code == 200 and r.json()["data"] == [{"x": 42}], r.text
            r = c.post(
                "/v1/sql", json={"sql": "select count(*) as n from bars_adjusted"}, headers=admin_h
            )
            assert r.status_code == 200 and r.json()["data"][0]["n"] > 0, r.text
            r = c.post("/v1/sql", json={"sql": "select * from evil"}, headers=admin_h)
            assert r.status_code == 400 and "top secret" not in r.text
            listed = c.get("/v1/marts", headers=reader_h)
            assert listed.status_code == 200
            names = {m["name"] for m in listed.json()["marts"]}
            assert "bars_adjusted" in names and not names & {"evil", "junk", "dangling", "adir"}
            assert c.get("/v1/bars/AAA", headers=reader_h).status_code == 200
            assert c.get("/v1/health").json()["status"] == "ok"
    finally:
        srv.stop()
    logged = " ".join(r.getMessage() for r in caplog.records)
    for name in ("evil.parquet", "junk.parquet", "dangling.parquet", "adir.parquet"):
        assert f"ignoring {name}" in logged, logged


# -- 11. no path of the machine in any answer -----------------------------------------------
PATH_PROBES = [
    "select current_setting('home_directory') as v",
    "select current_setting('file_search_path') as v",
    "select current_setting('temp_directory') as v",
    "select current_setting('allowed_directories') as v",
    "select current_setting('extension_directory') as v",
    "select \"current_setting\"('home_directory') as v",
    "select system.main.current_setting('home_directory') as v",
    "select list_transform([1], x -> current_setting('allowed_paths')) as v",
    "select * from duckdb_settings()",
    "with duckdb_settings as (select 1) select * from duckdb_settings()",
    "select name, value from duckdb_settings() where value like '%/%'",
    "select * from duckdb_views()",
    "select sql from duckdb_views",
    "select * from duckdb_databases()",
    "select * from duckdb_extensions()",
    "select * from duckdb_temporary_files()",
    "select * from information_schema.views",
    "select * from pg_catalog.pg_views",
    "select * from sqlite_master",
    "select * from memory.information_schema.tables",
    "select json_serialize_plan('select * from bars_adjusted') as v",
    "select * from query('select current_setting(''home_directory'')')",
    "select * from query_table('duckdb_settings')",
    "select * from histogram('bars_adjusted', close)",
    "select * from parquet_metadata('bars_adjusted.parquet')",
    "select * from read_parquet('bars_adjusted.parquet')",
    "select * from 'bars_adjusted.parquet'",
    "select * from read_csv('/etc/passwd')",
    "select * from read_text('{root}/secret.txt')",
    "select * from glob('*')",
    "select * from which_secret('s3://x', 's3')",
    "select error('{root}/marts/bars_adjusted.parquet is broken') as v",
    "select 1 from nope_{root}",
    "select * from bars_adjusted where",
]


@pytest.mark.parametrize("sql", PATH_PROBES)
def test_no_sql_answer_names_a_path_of_the_server(env, sql):
    r = _sql(env, sql.format(root=env["root"]))
    assert r.status_code < 500, r.text
    assert not _paths_in(r.text, env["root"]), r.text
    if r.status_code >= 400:
        assert _is_clear_error(r)


def test_no_rest_answer_names_a_path_of_the_server(env):
    answers = [
        _get(env, "/v1/marts"),
        _get(env, "/v1/timeframes"),
        _get(env, "/v1/symbols"),
        _get(env, "/v1/coverage"),
        _get(env, "/v1/bars/AAA", adjustment="asof:2024-01-05"),
        _get(env, "/v1/bars/NOPE"),
        _get(env, "/v1/features/nothing/1"),
        _get(env, "/v1/bars/AAA", columns="nope"),
        env["client"].get("/v1/health"),
        env["client"].get("/openapi.json"),
    ]
    for r in answers:
        assert r.status_code < 500 and not _paths_in(r.text, env["root"]), r.text


def test_a_broken_keys_file_is_reported_without_its_path(tmp_path):
    srv, reader, _admin = _start(tmp_path)
    try:
        (tmp_path / "keys.json").write_text("{not json")
        r = httpx.get(srv.url + "/v1/marts", headers={"X-API-Key": reader}, timeout=10)
    finally:
        srv.stop()
    assert 400 <= r.status_code < 500 and _is_clear_error(r)
    assert "keys file" in r.text and not _paths_in(r.text, tmp_path), r.text


# -- all of it at once, during a rebuild --------------------------------------------------
def test_a_mix_of_hostile_and_normal_requests_during_republication(tmp_path):
    srv, reader, admin = _start(tmp_path, sql=replace(SMALL, max_concurrent=6))
    paths = srv.app.state.config.paths
    marts = Path(os.path.realpath(paths.marts))
    (marts / "junk.parquet").write_text("not parquet\n")  # a stray file, in the first set
    (marts / "evil.parquet").symlink_to(tmp_path / "secret.txt")
    root = str(tmp_path)
    cursor = httpx.get(
        srv.url + "/v1/bars/MSFT",
        params={"timeframe": "1m", "limit": 10},
        headers={"X-API-Key": reader},
    ).json()["next_cursor"]
    R, A = {"X-API-Key": reader}, {"X-API-Key": admin}
    requests = [
        # normal
        ("GET", "/v1/bars/AAA", {}, R, None),
        ("GET", "/v1/bars/MSFT", {"timeframe": "1m", "limit": 500}, R, None),
        ("GET", "/v1/bars/AAA", {"adjustment": "asof:2024-01-05"}, R, None),
        ("GET", "/v1/features/momentum/1", {}, R, None),
        ("GET", "/v1/marts", {}, R, None),
        ("GET", "/v1/timeframes", {}, R, None),
        ("GET", "/v1/coverage", {"format": "arrow"}, R, None),
        ("POST", "/v1/sql", {}, A, {"sql": "select count(*) as n from bars_adjusted"}),
        ("POST", "/v1/sql", {}, A, {"sql": "select * from bars_as_of(date '2024-01-05')"}),
        ("GET", "/v1/bars/MSFT", {"timeframe": "1m", "limit": 10, "cursor": cursor}, R, None),
        # hostile
        ("GET", "/v1/bars/AAA", {"start": "9999-12-31T23:00:00-05:00"}, R, None),
        ("GET", "/v1/bars/AAA", {"start": "0001-01-01T00:30:00+05:00"}, R, None),
        ("GET", "/v1/bars/AAA", {"adjustment": "asof:9999-12-31"}, R, None),
        ("GET", "/v1/bars/MSFT", {"timeframe": "1m", "cursor": _edit(cursor, 0, "1e40")}, R, None),
        ("GET", "/v1/bars/MSFT", {"timeframe": "1m", "cursor": _edit(cursor, 0, "NaN")}, R, None),
        ("GET", "/v1/bars/..%2F..%2Fsecret.txt", {}, R, None),
        ("GET", "/v1/bars/AAA", {"columns": "close\" from read_csv('/etc/passwd') --"}, R, None),
        ("GET", "/v1/marts", {}, {"X-API-Key": "dm_0000000000000000_" + "A" * 43}, None),
        ("POST", "/v1/sql", {}, R, {"sql": "select 1"}),
        ("POST", "/v1/sql", {}, A, {"sql": "select length(repeat('x', 1000000000))"}),
        ("POST", "/v1/sql", {}, A, {"sql": "select length(lpad('', 300000000, 'x'))"}),
        (
            "POST",
            "/v1/sql",
            {},
            A,
            {"sql": "select levenshtein(repeat('x', 60000), repeat('y', 60000))"},
        ),
        ("POST", "/v1/sql", {}, A, {"sql": "select current_setting('home_directory')"}),
        ("POST", "/v1/sql", {}, A, {"sql": "select * from duckdb_settings()"}),
        ("POST", "/v1/sql", {}, A, {"sql": f"select * from read_text('{root}/secret.txt')"}),
        ("POST", "/v1/sql", {}, A, {"sql": "select repeat('x', 1000) from range(10000)"}),
        ("POST", "/v1/sql", {}, A, {"sql": "copy bars_adjusted to '/tmp/x.parquet'"}),
        ("POST", "/v1/sql", {}, A, {"sql": "select * from junk"}),
        ("POST", "/v1/sql", {}, A, {"sql": "select * from evil"}),
        ("POST", "/v1/sql", {}, A, {"sql": "select 42"}),
        ("POST", "/v1/sql", {}, A, {"not": "a query"}),
    ]
    done = threading.Event()
    published = [0]
    health_times: list[float] = []
    answers: list[tuple[str, int, str]] = []

    def publisher() -> None:
        while not done.is_set() and published[0] < 40:
            published[0] += 1
            new_set = publish_set(paths, _markers(published[0]))
            # stray files in every set: a link out of it and a file that is not Parquet
            (new_set / "junk.parquet").write_text("not parquet\n")
            (new_set / "evil.parquet").symlink_to(tmp_path / "secret.txt")
            time.sleep(0.05)

    def health() -> None:
        with httpx.Client(base_url=srv.url, timeout=5) as c:
            while not done.is_set():
                started = time.monotonic()
                try:
                    ok = c.get("/v1/health").status_code == 200
                except httpx.TimeoutException:
                    ok = False
                health_times.append(time.monotonic() - started if ok else 99)
                time.sleep(0.05)

    def client(part: list) -> None:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for method, route, params, headers, body in part:
                r = c.request(method, route, params=params, headers=headers, json=body)
                answers.append((f"{method} {route} {params} {body}", r.status_code, r.text))

    side = [threading.Thread(target=publisher), threading.Thread(target=health)]
    clients = [threading.Thread(target=client, args=(requests[i::3],)) for i in range(3)]
    try:
        for t in side + clients:
            t.start()
        for t in clients:
            t.join(180)
    finally:
        done.set()
        for t in side:
            t.join(60)
        srv.stop()
    assert len(answers) == len(requests)
    assert published[0] >= 2 and health_times
    server_errors = [(what, code) for what, code, _ in answers if code >= 500]
    assert not server_errors, server_errors
    leaks = [(what, text[:200]) for what, _, text in answers if _paths_in(text, tmp_path)]
    assert not leaks, leaks
    traces = [what for what, _, text in answers if "Traceback" in text]
    assert not traces, traces
    # health answers while SQL workers are busy (not a timing: the client waits 5 s, and
    # a health check stuck behind SQL would wait for the 1 s limit of several queries)
    assert max(health_times) < 5, max(health_times)
