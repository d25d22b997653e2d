"""`duckmarket init` and `duckmarket update`: the universe file, fetch-once runs for cron,
vendor revisions and regressions, exit codes a scheduler can act on."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.compute as pc
import pytest

import duckmarket.update as update_module
from duckmarket.cli import main
from duckmarket.config import load_config
from duckmarket.update import run_update
from ingest.errors import InvalidInputError, SourceUnreachableError
from ingest.manifest import Manifest
from ingest.paths import DataPaths
from ingest.sources.synthetic import SyntheticSource

REPO = Path(__file__).resolve().parents[1]
#: a fixed clock: a Wednesday, so no weekly backfill is due (it runs on Saturdays)
NOW = datetime(2024, 5, 15, 21, 0, tzinfo=UTC)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def universe(root: Path, body: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "duckmarket.toml"
    path.write_text(body)
    return path


SMALL = """
[update]
build = false
backfill_weekday = "never"

[[series]]
source = "synthetic"
symbols = ["SYN000", "SYN001"]
timeframes = ["1d", "1m"]
start = "10d"
options = { seed = 42, n_symbols = 12 }
"""


# --- the universe file -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[update]\nbuild = true\n", r"no \[\[series\]\] block"),
        ('[[series]]\nsource = "synthetic"\nsymbols = ["A"]\nstart = "2024-01-01"\ncolour = 1\n',
         r"series\[0\]: unknown key\(s\) colour"),
        ('[[series]]\nsource = "synthetic"\nsymbols = ["A"]\ntimeframes = ["7q"]\nstart = "1d"\n',
         r"series\[0\]\.timeframes"),
        ('[[series]]\nsource = "synthetic"\nsymbols = ["A"]\nstart = "yesterday"\n',
         r"series\[0\]\.start: 'yesterday' is neither a date"),
        ('[[series]]\nsource = "synthetic"\nsymbols_file = "nope.txt"\nstart = "1d"\n',
         "nope.txt: no such file"),
        ('[[series]]\nsource = "synthetic"\nstart = "1d"\n', "no symbols"),
        ('pairs = [["A"]]\n[[series]]\nsource = "x"\nsymbols = ["A"]\nstart = "1d"\n',
         r"pairs\[0\]"),
        ("[update\n", "not valid TOML"),
        ('[update]\nbackfill_weekday = "someday"\n', "backfill_weekday"),
    ],
)  # fmt: skip
def test_universe_file_mistakes_name_their_place(tmp_path: Path, body: str, message: str):
    with pytest.raises(InvalidInputError, match=message):
        load_config(universe(tmp_path, body))


def test_init_writes_an_example_that_loads_and_never_overwrites(tmp_path: Path, capsys):
    root = str(tmp_path / "d")
    rc, out, _ = run(capsys, "--data-dir", root, "init")
    assert rc == 0 and "duckmarket.toml" in out
    config = load_config(tmp_path / "d" / "duckmarket.toml")
    assert {s.source for s in config.series} == {"synthetic"}
    assert config.pairs == (("SYN004", "SYN005"),) and config.build
    rc, _, err = run(capsys, "--data-dir", root, "init")
    assert rc == 1 and "exists" in err
    assert run(capsys, "--data-dir", root, "init", "--force")[0] == 0


def test_symbols_from_a_file_beside_the_universe(tmp_path: Path) -> None:
    (tmp_path / "names.txt").write_text("# mine\nSYN003 SYN004\n")
    body = '[[series]]\nsource = "synthetic"\nsymbols = ["SYN000"]\nsymbols_file = "names.txt"\n'
    config = load_config(universe(tmp_path, body + 'start = "2024-01-01"\n'))
    assert config.series[0].symbols == ("SYN000", "SYN003", "SYN004")


# --- runs --------------------------------------------------------------------------------


def test_a_second_update_fetches_nothing(tmp_path: Path) -> None:
    paths = DataPaths(tmp_path / "d")
    config = load_config(universe(paths.root, SMALL))
    first = run_update(paths, config, now=lambda: NOW)
    assert first.status == "ok" and first.exit_code == 0
    assert first.fetched_rows > 0 and {s.status for s in first.series} == {"ok"}
    second = run_update(paths, config, now=lambda: NOW + timedelta(seconds=40))
    assert second.status == "ok" and second.api_calls == 0 and second.fetched_rows == 0
    # the next day brings the next day's bars only
    third = run_update(paths, config, now=lambda: NOW + timedelta(days=1))
    assert 0 < third.api_calls <= 4
    assert {s.status for s in third.series} <= {"ok", "empty"}
    with Manifest(paths.manifest) as m:
        runs = m.update_runs()
    assert [r["status"] for r in runs] == ["ok", "ok", "ok"]
    assert json.loads(runs[0]["report_json"])["api_calls"] == third.api_calls


def test_a_vendor_revision_is_detected_counted_and_kept(tmp_path: Path) -> None:
    paths = DataPaths(tmp_path / "d")
    run_update(paths, load_config(universe(paths.root, SMALL)), now=lambda: NOW)
    revised = load_config(
        universe(paths.root, SMALL.replace("n_symbols = 12", "n_symbols = 12, revision = 3"))
    )
    report = run_update(paths, revised, backfill_days=5, now=lambda: NOW)
    # what the vendor changed, computed from the source itself
    start = NOW - timedelta(days=5)
    end = NOW.replace(second=0, microsecond=0)
    expected = 0
    for sym in ("SYN000", "SYN001"):
        for tf in ("1d", "1m"):
            a = SyntheticSource(42, 12).fetch_bars(sym, tf, start, end).bars
            b = SyntheticSource(42, 12, revision=3).fetch_bars(sym, tf, start, end).bars
            differs = pc.or_(
                pc.not_equal(a["close"], b["close"]), pc.not_equal(a["volume"], b["volume"])
            )
            expected += pc.sum(pc.cast(differs, "int64")).as_py()
    assert expected > 0
    assert report.revised_rows == expected and report.backfill_days == 5
    with Manifest(paths.manifest) as m:
        kept = m.query("select count(*) as n from revisions where run_id = ?", (report.run_id,))
        row = m.query("select old_json, new_json from revisions limit 1")[0]
    assert kept[0]["n"] == expected
    old, new = json.loads(row["old_json"]), json.loads(row["new_json"])
    assert old["volume"] != new["volume"] and old["open"] == new["open"]
    # the lake now holds the vendor's new edition
    again = run_update(paths, revised, backfill_days=5, now=lambda: NOW)
    assert again.revised_rows == 0


class _Shrinking(SyntheticSource):
    """A vendor whose history lost its latest days, or that stopped sending new bars."""

    def __init__(self, cut: datetime, **kw) -> None:
        super().__init__(**kw)
        self.cut = cut

    def fetch_bars(self, symbol, timeframe, start, end):
        return super().fetch_bars(symbol, timeframe, start, min(end, max(start, self.cut)))


def test_vendor_regressions_are_reported(tmp_path: Path, monkeypatch) -> None:
    paths = DataPaths(tmp_path / "d")
    config = load_config(
        universe(paths.root, SMALL.replace('"1d", "1m"', '"1d"').replace('"10d"', '"30d"'))
    )
    run_update(paths, config, now=lambda: NOW)
    cut = NOW - timedelta(days=8)
    monkeypatch.setattr(update_module, "make_source", lambda name, **kw: _Shrinking(cut, **kw))
    report = run_update(paths, config, backfill_days=14, now=lambda: NOW + timedelta(days=1))
    notes = {s.symbol: s.regression for s in report.series}
    assert all(n and "history shrank" in n for n in notes.values()), notes
    later = run_update(paths, config, now=lambda: NOW + timedelta(days=9))
    assert all("no new data since" in (s.regression or "") for s in later.series)


def test_failures_give_scheduler_exit_codes(tmp_path: Path, capsys, monkeypatch) -> None:
    root = tmp_path / "d"
    universe(root, SMALL.replace('["SYN000", "SYN001"]', '["SYN000", "NOPE"]'))
    monkeypatch.setattr(update_module, "_wall_clock", lambda: NOW)
    rc, out, err = run(capsys, "--data-dir", str(root), "update", "--json")
    report = json.loads(out)
    assert rc == 2 and report["status"] == "partial"
    assert {(s["symbol"], s["status"]) for s in report["series"]} >= {
        ("SYN000", "ok"),
        ("NOPE", "failed"),
    }

    class Unreachable(SyntheticSource):
        def fetch_bars(self, *a, **k):
            raise SourceUnreachableError("cannot resolve host example.invalid")

    monkeypatch.setattr(update_module, "make_source", lambda name, **kw: Unreachable(**kw))
    rc, _out, err = run(capsys, "--data-dir", str(root), "update")
    assert rc == 4 and "cannot resolve host" in err and "Traceback" not in err

    rc, _out, err = run(capsys, "--data-dir", str(tmp_path / "empty"), "update")
    assert rc == 1 and "duckmarket init" in err


def test_one_update_at_a_time(tmp_path: Path, capsys) -> None:
    root = tmp_path / "d"
    universe(root, SMALL)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from ingest.paths import DataPaths; "
         "from duckmarket.update import _update_lock\n"
         "with _update_lock(DataPaths(sys.argv[1])):\n"
         "    print('locked', flush=True); time.sleep(60)",
         str(root)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        rc, _out, err = run(capsys, "--data-dir", str(root), "update")
        assert rc == 3 and f"an update is already running on {root}: PID {holder.pid}" in err
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_init_then_update_runs_the_demo_universe_end_to_end(tmp_path: Path, capsys, monkeypatch):
    """The README's two commands, as written: the demo universe lands, builds, exports; the
    second run fetches nothing and builds nothing new."""
    root = str(tmp_path / "data")
    monkeypatch.setattr(update_module, "_wall_clock", lambda: NOW)
    assert run(capsys, "--data-dir", root, "init")[0] == 0
    rc, out, err = run(capsys, "--data-dir", root, "update")
    assert rc == 0, out + err
    assert "build ok" in out and "export bars_adjusted" in out
    assert (Path(root) / "export" / "bars_adjusted.1d.arrow").is_file()
    rc, out, _ = run(capsys, "--data-dir", root, "update", "--json")
    second = json.loads(out)
    assert rc == 0 and second["api_calls"] == 0 and second["build"]["status"] == "skipped"
    # the universe's own pair is built besides the seeded ones
    import duckdb

    marts = Path(root) / "marts"
    pairs = duckdb.sql(
        f"select symbol_a, symbol_b from read_parquet('{marts}/pair_universe.parquet')"
    ).fetchall()
    assert ("SYN004", "SYN005") in pairs
