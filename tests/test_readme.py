"""The README, walked as a new user walks it, on the demo's real data.

`duckmarket demo` builds a small universe; then the README's commands (status, verify,
export of every mart), every Python example of the README executed as written from the
directory holding ``data/``, every route of the data server for every timeframe the
warehouse built, and point in time from Python, from the warehouse's SQL and from the
server's SQL, which must agree.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import duckdb
import httpx
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import hotpath
from duckmarket.cli import main
from ingest.paths import DataPaths
from server.keys import KeyStore
from tests.server_support import start_server
from warehouse import bars_as_of
from warehouse.layout import list_marts, read_table
from warehouse.marts import current_set

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
AS_OF = "2023-06-30"


def _python_blocks() -> list[str]:
    """The README's Python examples on the local data (those reading s3:// are walked by
    tests/test_remote.py, against its local S3 server)."""
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    return [b for b in blocks if "s3://" not in b]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    home = tmp_path_factory.mktemp("readme")
    paths = DataPaths(home / "data")
    assert main(["--data-dir", str(paths.root), "demo", "--universe", "4"]) == 0
    return {"home": home, "paths": paths}


def test_status_and_verify_as_written(demo, capsys):
    root = str(demo["paths"].root)
    assert main(["--data-dir", root, "status"]) == 0
    assert main(["--data-dir", root, "verify"]) == 0
    out = capsys.readouterr().out
    assert "all match the manifest" in out


def test_every_mart_the_demo_builds_exports(demo, capsys):
    paths = demo["paths"]
    marts = list_marts(paths.marts)
    assert len(marts) >= 18
    for mart in marts:
        table = read_table(paths.marts, mart)
        timeframes = (
            sorted({t for t in table.column("timeframe").to_pylist() if t is not None})
            if "timeframe" in table.column_names
            else []
        )
        for tf in timeframes if len(timeframes) > 1 else [None]:
            out = paths.export / f"{mart}.{tf or 'all'}.arrow"
            argv = ["--data-dir", str(paths.root), "export", mart, "--out", str(out)]
            if tf is not None:
                argv += ["--timeframe", tf]
            if table.num_rows == 0:
                assert main(argv) == 1, mart  # one line, no traceback
                assert "nothing to export" in capsys.readouterr().err
                continue
            assert main(argv) == 0, (mart, tf, capsys.readouterr().err)
            with hotpath.open(out) as x:
                assert len(x) > 0
                if tf is not None:
                    assert len(x) == sum(
                        1 for t in table.column("timeframe").to_pylist() if t == tf
                    )


def test_the_readmes_three_reads_of_a_partitioned_mart_give_the_mart(demo):
    """polars and pyarrow handed the directory, DuckDB the glob, as the README shows: each
    reads every row of the demo's partitioned bars_adjusted with the mart's own columns,
    types and values (no key added from the paths, no type guessed for it)."""
    import polars as pl

    root = demo["paths"].root
    text = (REPO / "README.md").read_text()
    for shown in (
        'pl.read_parquet("data/marts/bars_adjusted")',
        'pyarrow.parquet.read_table("data/marts/bars_adjusted")',
        "select * from 'data/marts/bars_adjusted/**/*.parquet'",
    ):
        assert shown in text, shown
    published = current_set(demo["paths"])
    assert (published.path / "bars_adjusted").is_dir()
    expected = read_table(demo["paths"].marts, "bars_adjusted")
    assert expected.num_rows == published.marts["bars_adjusted"]["rows"] > 1000
    keys = ["symbol", "timeframe", "ts"]
    want = pl.from_arrow(expected).sort(keys)
    by_polars = pl.read_parquet(str(root / "marts" / "bars_adjusted"))
    by_arrow = pl.from_arrow(pq.read_table(root / "marts" / "bars_adjusted"))
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    by_duckdb = pl.from_arrow(
        con.execute(f"select * from '{root}/marts/bars_adjusted/**/*.parquet'").to_arrow_table()
    )
    for name, got in (("polars", by_polars), ("pyarrow", by_arrow), ("duckdb", by_duckdb)):
        assert got.columns == want.columns, name
        assert got.schema == want.schema, name
        assert got.sort(keys).equals(want), name


def test_the_readme_column_glossary_names_real_columns(demo):
    """Every column the README's glossary table names exists in the demo's bar marts."""
    text = (REPO / "README.md").read_text()
    table = text[text.index("| column | meaning |") :].split("\n\n", 1)[0]
    named = {
        name
        for line in table.splitlines()[2:]
        for name in re.findall(r"`([a-z_]+)`", line.split("|")[1])
    }
    marts = demo["paths"].marts
    columns = {
        c
        for mart in ("bars_adjusted", "bars_resampled")
        for c in read_table(marts, mart).schema.names
    }
    assert len(named) >= 25 and named <= columns, named - columns


def test_bad_export_requests_are_one_line_errors(demo, capsys):
    root = str(demo["paths"].root)
    for argv, message in [
        (["export", "bars_adjusted", "-t", "1m", "--symbols", "NOPE"], "nothing to export"),
        (
            ["export", "bars_adjusted", "-t", "1m", "--start", "2023-02-01", "--end", "2023-01-01"],
            "must be before",
        ),
        (["export", "bars_adjusted"], "choose it with --timeframe"),
    ]:
        assert main(["--data-dir", root, *argv]) != 0
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_the_readme_python_examples_run_as_written(demo, monkeypatch):
    monkeypatch.chdir(demo["home"])
    monkeypatch.delenv("DUCKMARKET_DATA", raising=False)
    blocks = _python_blocks()
    assert len(blocks) >= 3
    scope: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), scope)  # the README's own code
    day = scope["day"]
    # one timeframe: a day of 1m bars, never a daily bar mixed in
    assert 300 < len(day) <= 390
    assert scope["daily"].height > 1000
    assert isinstance(scope["pit"], pa.Table) and scope["pit"].num_rows > 0


def test_point_in_time_agrees_from_python_the_warehouse_and_the_server(demo):
    paths = demo["paths"]
    from_python = bars_as_of(str(paths.root), AS_OF, symbols=["SYN000"], timeframe="1d")
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        con.execute("set TimeZone = 'UTC'")
        from_sql = con.execute(
            f"select ts, close_adj from bars_as_of(date '{AS_OF}') "
            "where symbol = 'SYN000' and timeframe = '1d' order by ts"
        ).to_arrow_table()
    finally:
        con.close()
    assert from_sql.num_rows == from_python.num_rows > 100
    assert from_sql["close_adj"].to_pylist() == from_python["close_adj"].to_pylist()
    demo["pit"] = from_python


@pytest.fixture(scope="module")
def server(demo):
    keys = demo["home"] / "keys.json"
    store = KeyStore(keys)
    reader, admin = store.add("reader"), store.add("admin", trusted=True)
    srv = start_server(demo["paths"], keys)
    with httpx.Client(base_url=srv.url, headers={"X-API-Key": reader}, timeout=30) as client:
        yield {"client": client, "admin": admin}
    srv.stop()


def _arrow(r: httpx.Response) -> pa.Table:
    assert r.status_code == 200, r.text
    return ipc.open_stream(r.content).read_all()


def test_every_built_timeframe_is_served(demo, server):
    client = server["client"]
    listed = client.get("/v1/timeframes").json()["timeframes"]
    timeframes = [t["timeframe"] for t in listed]
    assert {"1m", "1d", "5m", "15m", "30m", "1h", "4h", "1w"} <= set(timeframes)
    spec = client.get("/openapi.json").json()
    params = spec["paths"]["/v1/bars/{symbol}"]["get"]["parameters"]
    described = next(p for p in params if p["name"] == "timeframe")["description"]
    assert all(tf in described for tf in timeframes)
    for tf in timeframes:
        table = _arrow(client.get("/v1/bars/SYN000", params={"timeframe": tf, "format": "arrow"}))
        assert table.num_rows > 0, tf
        assert set(table["timeframe"].to_pylist()) == {tf}
        assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    missing = client.get("/v1/bars/SYN000", params={"timeframe": "2m"})
    assert missing.status_code == 404 and "no 2m bars are built" in missing.text


def test_every_route_answers_on_the_demo(server):
    client = server["client"]
    assert httpx.get(str(client.base_url) + "/v1/health").json()["status"] == "ok"
    assert len(client.get("/v1/marts").json()["marts"]) >= 18
    for route in ("/v1/symbols", "/v1/coverage", "/v1/features/technical/1"):
        assert _arrow(client.get(route, params={"format": "arrow"})).num_rows > 0, route
    r = client.post(
        "/v1/sql",
        json={"sql": f"select count(*) as n from bars_as_of(date '{AS_OF}')"},
        headers={"X-API-Key": server["admin"]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"][0]["n"] > 0


def test_the_server_serves_the_report(demo, server):
    """GET /v1/report is the page `duckmarket report` writes, without the machine's paths."""
    from warehouse.report import render_report

    client = server["client"]
    page = client.get("/v1/report", params={"symbol": "SYN001"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert str(demo["paths"].root) not in page.text and "/tmp/" not in page.text
    local = render_report(demo["paths"], symbol="SYN001")
    sections = re.compile(r'<section id="([^"]+)"')
    assert (
        sections.findall(page.text) == sections.findall(local) and len(sections.findall(local)) >= 4
    )
    assert client.get("/v1/report", params={"symbol": "NOPE"}).status_code == 400
    assert httpx.get(str(client.base_url) + "/v1/report").status_code == 401


def test_server_and_marts_speak_one_time_zone(demo, server):
    import polars as pl

    served = pl.from_arrow(
        _arrow(server["client"].get("/v1/bars/SYN000", params={"format": "arrow"}))
    )
    mart = pl.from_arrow(read_table(demo["paths"].marts, "bars_adjusted")).head(3)
    both = pl.concat([served.select("ts"), mart.select("ts")])  # fails on UTC vs Etc/UTC
    assert both.schema["ts"] == pl.Datetime("us", "UTC")


def test_a_clean_data_dir_says_build_first(tmp_path, capsys):
    shutil.rmtree(tmp_path, ignore_errors=True)
    with pytest.raises(Exception, match="build the warehouse first"):
        bars_as_of(str(tmp_path / "data"), AS_OF)


# plain-SQL analyses; those with Jinja (refs to staging models) run after `dbt compile`
# (tests/test_compare_backtest_runs.py)
SHELL_ANALYSES = sorted(
    p.name for p in (REPO / "analyses").glob("*.sql") if "{{" not in p.read_text()
)


@pytest.mark.parametrize("analysis", SHELL_ANALYSES)
def test_every_analysis_runs_in_the_shell_and_over_the_marts(demo, capsys, analysis):
    paths, sql_file = demo["paths"], REPO / "analyses" / analysis
    # as `.read analyses/<file>` in `duckdb -readonly data/warehouse.duckdb`
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    try:
        con.execute("set TimeZone = 'UTC'")
        in_shell = con.execute(sql_file.read_text()).fetchall()
    finally:
        con.close()
    assert in_shell, analysis
    # and over the published marts, with no lock on the warehouse
    assert main(["--data-dir", str(paths.root), "sql", str(sql_file), "--format", "json"]) == 0
    over_marts = json.loads(capsys.readouterr().out)
    assert len(over_marts) == len(in_shell)


def test_backtests_list_shows_the_demo_reference_runs_with_the_marts_metrics(demo, capsys):
    """`duckmarket backtests list` after `demo`: the reference pairs runs the build made,
    with the same metrics as the published pairs_backtest_metrics mart."""
    import math

    import ingest.backtests as ingest_backtests
    from warehouse.backtest_metrics import METRICS

    root = str(demo["paths"].root)
    mart = pq.read_table(demo["paths"].marts / "pairs_backtest_metrics.parquet").to_pylist()
    assert mart, "the demo builds reference pairs runs"
    capsys.readouterr()
    assert main(["--data-dir", root, "backtests", "list", "--json"]) == 0
    listed = {r["run_id"]: r for r in json.loads(capsys.readouterr().out)}
    # beside the runs the README's Python example may have recorded in the same data dir
    reference = {rid for rid, r in listed.items() if r["strategy"] == mart[0]["strategy"]}
    assert reference == {r["run_id"] for r in mart}
    recorded = ingest_backtests.read_runs(demo["paths"])
    assert set(listed) - reference == set(recorded["run_id"].to_list())
    for row in mart:
        for name in METRICS:
            want, got = row[name], listed[row["run_id"]][name]
            if want is None or (isinstance(want, float) and math.isnan(want)):
                assert got is None, name
            elif isinstance(want, float) and math.isinf(want):
                assert got == ("inf" if want > 0 else "-inf"), name
            else:
                assert got == want, name
    assert main(["--data-dir", root, "backtests", "compare", mart[0]["run_id"][:8]]) == 0
    assert mart[0]["run_id"][:12] in capsys.readouterr().out
