"""`duckmarket report`: one self-contained HTML page, opened from disk in a real headless
Chromium (the system package, driven by Playwright) with the network cut off: no console
error, no request leaves the file, and every chart draws (its pixels, not only its div).

The data come from the real producers: `duckmarket demo --universe 4` builds the marts,
the manifest's own API records update runs and vendor revisions, and
`warehouse.artifacts` registers a model.
"""

from __future__ import annotations

import io
import json
import re
import sqlite3

import pytest

from ingest.manifest import Manifest
from tests.report_support import CHROMIUM_ARGS, chromium_or_skip, cli, demo_copy
from warehouse.report import render_report

pytestmark = pytest.mark.slow

EVERY_CHART = {
    "coverage-heatmap",
    "coverage-gap-classes",
    "quality-flags",
    "quality-quarantine",
    "price-adjustment",
    "pair-spread",
    "update-runs",
    "revisions",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    paths = demo_copy(tmp_path_factory, "report")
    before = render_report(paths)  # no update run recorded yet
    with Manifest(paths.manifest) as m:
        for i, status in enumerate(("ok", "partial", "ok")):
            run = m.start_update_run(None, pid=None)
            revised = 0
            if i:
                bars = [
                    (
                        1_701_388_800_000_000 + k * 86_400_000_000,
                        json.dumps({"close": 100.0 + k, "volume": 1000.0}),
                        json.dumps({"close": 100.5 + k, "volume": 1200.0}),
                    )
                    for k in range(3)
                ]
                revised = m.record_revisions(run, "synthetic", "SYN001", "1d", bars)
            m.finish_update_run(
                run,
                status,
                series=8,
                fetched_rows=250 * i,
                revised_rows=revised,
                build_id=None,
                report_json="{}",
            )
    model = paths.root.parent / "model.bin"
    model.write_bytes(b"weights")
    from warehouse.artifacts import register_artifact

    register_artifact(
        paths, model, model_type="ridge", version="1", feature_set="technical", split_id=5
    )
    out = paths.root.parent / "report.html"
    assert cli(["--data-dir", str(paths.root), "report", "--out", str(out)]) == 0
    return {"paths": paths, "before": before, "html": out.read_text(), "file": out}


def test_the_page_needs_nothing_from_outside(demo):
    from plotly.offline import get_plotlyjs

    page = demo["html"]
    # plotly.js is inlined once (its map code names tile servers; map traces are unused,
    # and the browser test below checks that nothing is requested)
    bundle = page.index("<script", page.index("</style>"))
    bundle_end = page.index("</script>", bundle) + len("</script>")
    assert len(get_plotlyjs()) <= bundle_end - bundle
    rest = page[:bundle] + page[bundle_end:]
    assert "Plotly.newPlot" not in page[:bundle] and get_plotlyjs()[:200] not in rest
    assert not re.search(r"<script[^>]+\bsrc=", rest, flags=re.IGNORECASE)
    assert not re.search(r"<link\b", rest, flags=re.IGNORECASE)
    assert not re.search(r"""\b(src|href)=["']?(https?:)?//""", rest, flags=re.IGNORECASE)
    assert not re.search(r"https?://", rest)
    assert rest.count("<script") == rest.count('class="chart"')  # one per chart


def test_every_section_is_on_the_page(demo):
    page = demo["html"]
    charts = set(re.findall(r'data-chart="([^"]+)"', page))
    assert charts == EVERY_CHART
    assert "Model artifacts" in page and "ridge" in page
    assert "No backtest is published yet" in page  # no backtest marts: said, not drawn


def test_update_runs_appear_only_once_recorded(demo):
    assert "Recent update runs" not in demo["before"]
    assert 'data-chart="update-runs"' not in demo["before"]
    assert "Recent update runs" in demo["html"]
    assert "close 100 → 100.5" in demo["html"]  # a revision, old and new


def test_the_report_opens_offline_in_headless_chromium_and_every_chart_draws(demo):
    playwright = pytest.importorskip("playwright.sync_api")
    from PIL import Image

    executable = chromium_or_skip()
    problems: list[str] = []
    outside: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on(
                "console",
                lambda m: (
                    problems.append(f"{m.type}: {m.text}")
                    if m.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

            def only_the_file(route):
                if route.request.url.startswith(("file://", "data:", "blob:")):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", only_the_file)
            page.goto(demo["file"].as_uri(), wait_until="load")
            page.wait_for_function(
                """() => [...document.querySelectorAll('.chart')]
                          .every(d => d.querySelector('.main-svg') !== null)""",
                timeout=30_000,
            )
            charts = page.eval_on_selector_all(
                ".chart",
                """divs => divs.map(d => ({
                    key: d.dataset.chart,
                    id: d.id,
                    height: d.getBoundingClientRect().height,
                    // what plotly drew for the data: heatmap images, bars, lines, markers
                    marks: d.querySelectorAll(
                        '.main-svg image, g.trace g.point path, g.trace path.js-line, '
                        + 'g.trace path.point'
                    ).length,
                }))""",
            )
            assert {c["key"] for c in charts} == EVERY_CHART
            for c in charts:
                assert c["height"] > 150, c
                assert c["marks"] > 0, c  # data drawn, not only axes
                shot = Image.open(io.BytesIO(page.locator(f"#{c['id']}").screenshot()))
                grey = shot.convert("L")
                inked = sum(grey.histogram()[:235]) / (grey.width * grey.height)
                colours = shot.convert("RGB").getcolors(maxcolors=1 << 20) or []
                assert inked > 0.01, (c["key"], inked)  # more than a white box
                assert len(colours) > 20, (c["key"], len(colours))
            whole = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("L")
            assert whole.getextrema()[0] < 100  # dark ink somewhere: text and lines
        finally:
            browser.close()
    assert not problems, problems
    assert not outside, outside


def test_symbol_and_pair_pick_the_charts(demo):
    page = render_report(demo["paths"], symbol="SYN003", pair="SYN000/SYN001")
    assert "Raw and adjusted prices: SYN003 (1d)" in page
    assert "Pair spread and OU bands: SYN000_SYN001 (1d)" in page
    assert "dividend ex-date" in page


def test_by_default_the_symbol_with_a_split_and_the_most_cointegrated_pair(demo):
    page = demo["html"]
    title = re.search(r"Raw and adjusted prices: (\w+)", page)
    assert title and title.group(1) in ("SYN000", "SYN001")  # the demo's split symbols
    assert "split ex-date (1)" in page
    assert "Pair spread and OU bands: SYN001_SYN002" in page


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--symbol", "NOPE"], "no bars of 'NOPE' in the marts (known: SYN000"),
        (["--pair", "SYN000_NOPE"], "no pair 'SYN000_NOPE' in pair_spreads (known:"),
    ],
)
def test_an_unknown_symbol_or_pair_is_one_line(demo, capsys, argv, says):
    assert cli(["--data-dir", str(demo["paths"].root), "report", *argv]) == 1
    err = capsys.readouterr().err
    assert says in " ".join(err.split())
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2  # one wrapped line


def test_no_marts_is_one_line_and_creates_nothing(tmp_path, capsys):
    root = tmp_path / "data"
    assert cli(["--data-dir", str(root), "report"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "no published marts under" in err and "duckmarket build" in err
    assert not root.exists()


def test_the_default_file_is_in_the_data_root(demo, capsys):
    root = demo["paths"].root
    assert cli(["--data-dir", str(root), "report"]) == 0
    assert (root / "report.html").stat().st_size > 1_000_000  # plotly.js is in it
    assert "report.html" in capsys.readouterr().out


def test_update_tables_of_another_shape_are_read_defensively(demo, tmp_path):
    """A manifest whose update tables lack columns or hold odd values: the section shows
    what it can, and the report never fails because of it."""
    import shutil

    from ingest.paths import DataPaths

    root = tmp_path / "data"
    shutil.copytree(demo["paths"].root, root, symlinks=True)
    con = sqlite3.connect(root / "lake" / "manifest.sqlite")
    con.executescript(
        """
        drop table revisions;
        create table revisions (run_id integer, ts text);
        insert into revisions values (1, 'yesterday');
        insert into update_runs (started_at, status, finished_at, fetched_rows)
            values (1, 'running', null, 7);
        update update_runs set report_json = 'not json' where run_id = 1;
        """
    )
    con.close()
    page = render_report(DataPaths(root))
    assert "Recent update runs" in page
    assert 'data-chart="revisions"' not in page  # no series columns: no chart
    con = sqlite3.connect(root / "lake" / "manifest.sqlite")
    con.executescript("drop table revisions; drop table update_runs;")
    con.close()
    assert "Recent update runs" not in render_report(DataPaths(root))


def test_a_backtest_s_entries_and_exits_are_marked_once_one_is_published(demo):
    """No backtest mart exists yet; one with pair_id, entry_ts and exit_ts (here a view
    beside the demo's marts) gets its trades marked on the spread."""
    import math

    from warehouse.marts import connect_marts
    from warehouse.report import _pair_section, _views

    con = connect_marts(demo["paths"])
    try:
        con.execute(
            """create view backtest_trades as
               select 'SYN000_SYN001' as pair_id,
                      timestamptz '2015-03-02 00:00:00+00' as entry_ts,
                      timestamptz '2015-04-01 00:00:00+00' as exit_ts"""
        )
        section = _pair_section(con, _views(con), "SYN000_SYN001")
    finally:
        con.close()
    traces = {t.name: t for t in section.charts[0].figure.data}
    for kind in ("entry", "exit"):
        (y,) = traces[f"backtest {kind} (1)"].y
        assert math.isfinite(y)  # on the spread of that day
    assert not any("No backtest" in n for n in section.notes)
