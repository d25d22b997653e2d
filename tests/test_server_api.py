"""Every route of the data server over HTTP, against the real server on a loopback port."""

from __future__ import annotations

import io
import json

import httpx
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from server.keys import KeyStore
from tests.server_support import MINUTE_BARS, build_data_root, start_server


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("server_api")
    paths = build_data_root(root)
    store = KeyStore(root / "keys.json")
    reader, admin = store.add("reader"), store.add("admin", trusted=True)
    srv = start_server(paths, root / "keys.json")
    with httpx.Client(base_url=srv.url, headers={"X-API-Key": reader}, timeout=10) as client:
        yield {"client": client, "admin": admin, "url": srv.url, "paths": paths}
    srv.stop()


@pytest.fixture
def client(env) -> httpx.Client:
    return env["client"]


def test_health_needs_no_key(env):
    r = httpx.get(env["url"] + "/v1/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.json()["bars"] is True


def test_openapi_describes_the_versioned_routes(env):
    spec = httpx.get(env["url"] + "/openapi.json").json()
    for route in ("/v1/health", "/v1/symbols", "/v1/coverage", "/v1/bars/{symbol}", "/v1/sql"):
        assert route in spec["paths"]
    assert "/v1/features/{name}/{version}" in spec["paths"]
    assert "APIKeyHeader" in spec["components"]["securitySchemes"]


def test_docs_page_works_offline(env):
    """/docs is Swagger UI from assets the server itself serves: nothing from a CDN."""
    import re

    page = httpx.get(env["url"] + "/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    refs = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    refs += re.findall(r"""url:\s*["']([^"']+)["']""", page.text)
    assert refs and not [r for r in refs if "//" in r], refs
    for ref in refs:
        got = httpx.get(env["url"] + ref)
        assert got.status_code == 200, ref
    js = httpx.get(env["url"] + "/docs/assets/swagger-ui-bundle.js")
    assert len(js.content) > 500_000 and "SwaggerUIBundle" in js.text


def test_marts_lists_built_marts_with_columns(client):
    marts = {m["name"]: m for m in client.get("/v1/marts").json()["marts"]}
    assert {"bars_adjusted", "adjustment_factors", "coverage_summary"} <= set(marts)
    assert "close_adj" in [c["name"] for c in marts["bars_adjusted"]["columns"]]


def test_symbols_come_from_the_lake_reference_data(client):
    body = client.get("/v1/symbols").json()
    assert [r["symbol"] for r in body["data"]] == ["AAA", "BTC/USDT", "MSFT"]
    assert body["data"][0]["exchange"] == "XNYS"


def test_coverage_per_symbol_and_timeframe(client):
    body = client.get("/v1/coverage", params={"symbols": "MSFT"}).json()
    assert len(body["data"]) == 1
    row = body["data"][0]
    assert (row["symbol"], row["timeframe"], row["rows"]) == ("MSFT", "1m", MINUTE_BARS)
    assert client.get("/v1/coverage", params={"timeframe": "1d"}).json()["count"] == 1


def _closes(client, **params) -> list[float]:
    r = client.get("/v1/bars/AAA", params={"columns": "ts,close", **params})
    assert r.status_code == 200, r.text
    return [round(row["close"], 6) for row in r.json()["data"]]


def test_bars_raw_by_default(client):
    assert _closes(client) == [100.0, 102.0, 101.0, 104.0, 52.5, 53.0]


def test_bars_total_return_adjusted_match_the_design_example(client):
    assert _closes(client, adjustment="total") == [49.5, 50.49, 50.5, 52.0, 52.5, 53.0]
    vols = client.get("/v1/bars/AAA", params={"adjustment": "total"}).json()["data"]
    assert [v["volume"] for v in vols][:4] == [2000.0] * 4


def test_bars_split_adjusted(client):
    assert _closes(client, adjustment="split") == [50.0, 51.0, 50.5, 52.0, 52.5, 53.0]


def test_bars_as_of_a_date_see_only_actions_known_then(client):
    # as of D4 only the dividend ex D3 is known: D1 adjusts to 99.00, and no bar after D4
    assert _closes(client, adjustment="asof:2024-01-05") == [99.0, 100.98, 101.0, 104.0]
    assert _closes(client, as_of="2024-01-05") == [99.0, 100.98, 101.0, 104.0]
    # before any action: raw; after both: today's adjustment
    assert _closes(client, as_of="2024-01-03") == [100.0, 102.0]
    assert _closes(client, as_of="2024-02-01") == [49.5, 50.49, 50.5, 52.0, 52.5, 53.0]


def test_bars_start_end_and_symbols_with_a_slash(client):
    r = client.get("/v1/bars/BTC%2FUSDT", params={"start": "2024-01-03", "end": "2024-01-05"})
    assert r.status_code == 200, r.text
    assert [row["ts"][:10] for row in r.json()["data"]] == ["2024-01-03", "2024-01-04"]


def test_bars_cursor_pagination_walks_every_row_once(client):
    params = {"timeframe": "1m", "limit": 700, "columns": "ts"}
    seen, cursor, pages = [], None, 0
    while True:
        r = client.get("/v1/bars/MSFT", params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [row["ts"] for row in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        assert r.headers.get("x-next-cursor") == cursor
        if not cursor:
            break
        assert 'rel="next"' in r.headers["link"]
    assert pages == 4
    assert len(seen) == MINUTE_BARS == len(set(seen))
    assert seen == sorted(seen)


def test_a_cursor_belongs_to_its_query(client):
    r = client.get("/v1/bars/MSFT", params={"timeframe": "1m", "limit": 10})
    cursor = r.json()["next_cursor"]
    r = client.get(
        "/v1/bars/MSFT",
        params={"timeframe": "1m", "limit": 10, "start": "2024-01-03", "cursor": cursor},
    )
    assert r.status_code == 400
    assert "cursor" in r.json()["error"]["message"]
    r = client.get("/v1/bars/MSFT", params={"timeframe": "1m", "cursor": "bm90IGEgY3Vyc29y"})
    assert r.status_code == 400


@pytest.mark.parametrize(
    ("fmt", "accept"),
    [
        ("arrow", None),
        (None, "application/vnd.apache.arrow.stream"),
        ("parquet", None),
        (None, "application/vnd.apache.parquet"),
        ("csv", None),
        (None, "text/csv"),
    ],
)
def test_bars_in_every_format(client, fmt, accept):
    params = {"timeframe": "1m", "limit": 2000, **({"format": fmt} if fmt else {})}
    r = client.get("/v1/bars/MSFT", params=params, headers={"Accept": accept} if accept else {})
    assert r.status_code == 200, r.text
    kind = fmt or {"application/vnd.apache.arrow.stream": "arrow", "text/csv": "csv"}.get(
        accept, "parquet"
    )
    if kind == "arrow":
        assert r.headers["content-type"] == "application/vnd.apache.arrow.stream"
        table = ipc.open_stream(r.content).read_all()
    elif kind == "parquet":
        table = pq.read_table(io.BytesIO(r.content))
    else:
        assert r.headers["content-type"].startswith("text/csv")
        table = pacsv.read_csv(io.BytesIO(r.content))
    assert table.num_rows == 2000
    assert table.column_names == [
        "symbol",
        "timeframe",
        "ts",
        "open",
        "high",
        "low",
        "close",
        "volume",
    ]


def test_unacceptable_accept_is_406(client):
    r = client.get("/v1/bars/AAA", headers={"Accept": "image/png"})
    assert r.status_code == 406
    assert r.json()["error"]["code"] == "not_acceptable"


def test_features_by_name_and_version(client):
    r = client.get(
        "/v1/features/momentum/v1",
        params={"symbols": "AAA,MSFT", "start": "2024-01-10", "limit": 25},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 25
    assert {row["symbol"] for row in body["data"]} == {"AAA", "MSFT"}
    rest = client.get(
        "/v1/features/momentum/1",
        params={
            "symbols": "AAA,MSFT",
            "start": "2024-01-10",
            "limit": 25,
            "cursor": body["next_cursor"],
        },
    ).json()
    assert rest["count"] == 2 * 21 - 25 and rest["next_cursor"] is None
    # NaN becomes null in JSON (valid JSON throughout)
    early = client.get("/v1/features/momentum/1", params={"symbols": "ZZZ", "limit": 1}).json()
    assert early["data"][0]["mom_5d"] is None
    json.loads(client.get("/v1/features/momentum/1").text)


def test_unknown_things_are_clear_404s(client):
    assert client.get("/v1/bars/NOPE").status_code == 404
    assert client.get("/v1/features/nothing/1").status_code == 404
    assert client.get("/v1/nowhere").status_code == 404
    r = client.get("/v1/bars/AAA", params={"timeframe": "7m"})
    assert r.status_code == 400 and "timeframe" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "params",
    [
        {"adjustment": "weird"},
        {"adjustment": "asof:yesterday"},
        {"start": "soon"},
        {"columns": "close,nope"},
        {"limit": 0},
        {"limit": "many"},
        {"format": "xml"},
        {"adjustment": "total", "as_of": "2024-01-05"},
    ],
)
def test_bad_parameters_are_4xx_without_a_trace(client, params):
    r = client.get("/v1/bars/AAA", params=params)
    assert 400 <= r.status_code < 500
    err = r.json()["error"]
    assert err["message"] and "Traceback" not in r.text and 'File "' not in r.text


def test_sql_for_trusted_keys_returns_rows_in_any_format(env, client):
    sql = {"sql": "select symbol, count(*) as n from bars_adjusted group by all order by 1"}
    r = client.post("/v1/sql", json=sql, headers={"X-API-Key": env["admin"]})
    assert r.status_code == 200, r.text
    assert [(x["symbol"], x["n"]) for x in r.json()["data"]] == [
        ("AAA", 6),
        ("BTC/USDT", 10),
        ("MSFT", MINUTE_BARS),
    ]
    r = client.post("/v1/sql?format=arrow", json=sql, headers={"X-API-Key": env["admin"]})
    assert ipc.open_stream(r.content).read_all().num_rows == 3


def test_sql_row_cap_truncates_and_says_so(env, client):
    r = client.post(
        "/v1/sql",
        json={"sql": "select * from range(1000)", "max_rows": 10},
        headers={"X-API-Key": env["admin"]},
    )
    assert r.status_code == 200
    assert r.json()["count"] == 10 and r.json()["truncated"] is True
    assert r.headers["x-truncated"] == "true"
