"""The duckmarket command, invoked as a user would (in-process, no network)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from duckmarket.cli import main
from ingest import manager as manager_module
from ingest.lake import Lake
from ingest.sources.yfinance import YFinanceSource


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_ingest_synthetic_as_written_then_status_and_verify(tmp_path, capsys):
    root = str(tmp_path / "d")
    rc, out, _ = run(
        capsys,
        "--data-dir",
        root,
        "ingest",
        "synthetic",
        "--universe",
        "30",
        "--timeframe",
        "1m",
        "--start",
        "2023-01-01",
        "--end",
        "2023-03-01",
    )
    assert rc == 0
    assert "30 symbol(s)" in out
    lake = Lake(root)
    assert len({f.symbol for f in lake.manifest.live_files("bars")}) == 30
    rc, out, _ = run(capsys, "--data-dir", root, "status")
    assert rc == 0
    assert "30 symbol(s)" in out
    rc, out, _ = run(capsys, "--data-dir", root, "verify")
    assert rc == 0
    assert "all match the manifest" in out
    # the same request again fetches nothing
    rc, out, _ = run(
        capsys,
        "--data-dir",
        root,
        "ingest",
        "synthetic",
        "--universe",
        "30",
        "--timeframe",
        "1m",
        "--start",
        "2023-01-01",
        "--end",
        "2023-03-01",
    )
    assert "0 source call(s)" in out


def test_data_root_from_environment_variable(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DUCKMARKET_DATA", str(tmp_path / "env-root"))
    rc, _, _ = run(
        capsys,
        "ingest",
        "synthetic",
        "--universe",
        "2",
        "--timeframe",
        "1d",
        "--start",
        "2023-01-01",
        "--end",
        "2023-02-01",
    )
    assert rc == 0
    assert (tmp_path / "env-root" / "lake" / "manifest.sqlite").exists()


YF_CSV = """Date,Open,High,Low,Close,Adj Close,Volume,Dividends,Stock Splits
2020-08-26,126.18,126.99,125.08,126.52,124.20,163022400,0.0,0.0
2020-08-27,127.14,127.49,123.83,125.01,122.72,155552400,0.0,0.0
2020-08-28,126.01,126.44,124.58,124.81,122.52,187630000,0.0,0.0
2020-08-31,127.58,131.00,126.00,129.04,126.68,225702700,0.0,4.0
2020-09-01,132.76,134.80,130.53,134.18,131.72,151948100,0.0,0.0
"""


def test_ingest_csv_as_written(tmp_path, capsys):
    f = tmp_path / "calm.csv"
    f.write_text(YF_CSV)
    root = str(tmp_path / "d")
    rc, out, _ = run(
        capsys, "--data-dir", root, "ingest", "csv", str(f), "--symbol", "CALM", "--timeframe", "1d"
    )
    assert rc == 0
    assert "5 rows" in out
    lake = Lake(root)
    bars = lake.read_bars("csv", "CALM", "1d")
    # before the 4-for-1 split the as-traded close is four times Yahoo's adjusted one
    assert bars.column("close").to_pylist()[0] == pytest.approx(126.52 * 4)
    assert bars.column("close").to_pylist()[-1] == pytest.approx(134.18)
    acts = lake.read_actions("csv", "CALM")
    assert acts.column("action_type").to_pylist() == ["split"]
    assert acts.column("split_ratio").to_pylist() == [4.0]


def test_ingest_csv_with_garbage_file_fails_clearly(tmp_path, capsys):
    f = tmp_path / "junk.csv"
    f.write_text("this is not,a price file\n\x00\x01,zzz\n")
    rc, _, err = run(
        capsys, "--data-dir", str(tmp_path / "d"), "ingest", "csv", str(f), "--symbol", "X"
    )
    assert rc != 0
    assert "error:" in err
    assert "Traceback" not in err


def _yahoo_daily(dates, base=100.0):
    idx = pd.DatetimeIndex(pd.to_datetime(dates)).tz_localize("America/New_York")
    idx.name = "Date"
    n = len(idx)
    close = base + np.arange(n, dtype=float)
    return pd.DataFrame(
        {
            "Open": close - 0.5,
            "High": close + 1,
            "Low": close - 1,
            "Close": close,
            "Adj Close": close,
            "Volume": np.full(n, 1_000_000),
            "Dividends": np.zeros(n),
            "Stock Splits": np.zeros(n),
        },
        index=idx,
    )


def test_ingest_yfinance_as_written_without_network(tmp_path, capsys, monkeypatch):
    calls = []

    def history(symbol, interval, start, end):
        calls.append((symbol, interval))
        if symbol == "MSFT":
            return _yahoo_daily(["2020-01-02", "2020-01-03", "2020-01-06"], 160.0)
        return _yahoo_daily(["2020-01-02", "2020-01-03", "2020-01-06"], 75.0)

    def actions(symbol):
        return _yahoo_daily([])[["Dividends", "Stock Splits"]]

    src = YFinanceSource(
        history_fn=history,
        actions_fn=actions,
        sleep=lambda s: None,
        now=datetime(2020, 1, 7, tzinfo=UTC),
    )
    monkeypatch.setattr(manager_module, "make_source", lambda name: src)
    root = str(tmp_path / "d")
    rc, _out, err = run(
        capsys,
        "--data-dir",
        root,
        "ingest",
        "yfinance",
        "AAPL",
        "MSFT",
        "--timeframe",
        "1d",
        "--start",
        "2020-01-01",
    )
    assert rc == 0, err
    assert {c[0] for c in calls} == {"AAPL", "MSFT"}
    bars = Lake(root).read_bars("yfinance", "MSFT", "1d")
    assert bars.column("close").to_pylist() == [160.0, 161.0, 162.0]
    assert [t.hour for t in bars.column("ts").to_pylist()] == [0, 0, 0]


def test_failed_symbols_give_a_non_zero_exit_and_a_hint(tmp_path, capsys, monkeypatch):
    def history(symbol, interval, start, end):
        if symbol == "GONE":
            return _yahoo_daily([])
        return _yahoo_daily(["2020-01-02", "2020-01-03"])

    src = YFinanceSource(
        history_fn=history,
        actions_fn=lambda s: _yahoo_daily([]),
        sleep=lambda s: None,
        now=datetime(2020, 1, 7, tzinfo=UTC),
    )
    monkeypatch.setattr(manager_module, "make_source", lambda name: src)
    rc, _out, err = run(
        capsys,
        "--data-dir",
        str(tmp_path / "d"),
        "ingest",
        "yfinance",
        "AAPL",
        "GONE",
        "--start",
        "2020-01-01",
        "--end",
        "2020-01-04",
    )
    assert rc == 2
    assert "GONE" in err
    assert "Re-run" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ingest", "synthetic", "--timeframe", "7m"], "unknown timeframe"),
        (["ingest", "synthetic", "--start", "yesterday"], "not a date"),
        (["ingest", "synthetic", "--symbols", "../../etc"], "looks like a file path"),
        (["ingest", "synthetic", "--symbols", "30"], "--universe 30"),
        (["clear", "--symbol", "NOPE"], "holds nothing for"),
        (["clear"], "say what to clear"),
        (["build"], "holds no bars yet"),
        (["clear", "--timeframe", "1m"], "needs --symbol"),
        (["ingest", "csv", "/nonexistent/file.csv", "--symbol", "X"], "nonexistent"),
    ],
)
def test_user_errors_are_one_clear_line(tmp_path, capsys, argv, message):
    rc, _, err = run(capsys, "--data-dir", str(tmp_path / "d"), *argv)
    assert rc != 0
    assert message in err
    assert "Traceback" not in err


def test_clear_symbol_and_timeframe(tmp_path, capsys):
    root = str(tmp_path / "d")
    run(
        capsys,
        "--data-dir",
        root,
        "ingest",
        "synthetic",
        "--universe",
        "3",
        "--timeframe",
        "1d",
        "--start",
        "2023-01-01",
        "--end",
        "2023-02-01",
    )
    rc, out, _ = run(capsys, "--data-dir", root, "clear", "--symbol", "SYN000", "--timeframe", "1d")
    assert rc == 0
    assert "1 file(s) removed" in out
    rc, out, err = run(capsys, "--data-dir", root, "clear", "--all")
    assert rc != 0 and "--yes" in err  # no terminal to ask: --all needs --yes
    rc, out, _ = run(capsys, "--data-dir", root, "clear", "--all", "--dry-run")
    assert rc == 0 and "would be removed" in out
    rc, out, _ = run(capsys, "--data-dir", root, "clear", "--all", "--yes")
    assert rc == 0
    rc, out, _ = run(capsys, "--data-dir", root, "status")
    assert "empty" in out


def test_data_dir_after_the_command_and_status_for_scripts(tmp_path, capsys):
    root = str(tmp_path / "d")
    argv = ["ingest", "synthetic", "--universe", "3", "--timeframe", "1d"]
    rc, _, _ = run(
        capsys, *argv, "--start", "2023-01-01", "--end", "2023-02-01", "--data-dir", root
    )
    assert rc == 0
    rc, out, _ = run(capsys, "status", "--json", "--data-dir", root)
    assert rc == 0
    stats = json.loads(out)
    assert stats["symbols"] == 3 and stats["data_dir"] == str(Path(root).resolve())
    rc, out, _ = run(capsys, "status", "--json", "--symbol", "SYN001", "--data-dir", root)
    one = json.loads(out)
    assert one["symbols"] == 1 and one["groups"][0]["timeframe"] == "1d"
    assert datetime.fromisoformat(one["groups"][0]["first"]).year == 2023
    rc, out, _ = run(capsys, "--data-dir", root, "status", "--timeframe", "1m", "--json")
    assert json.loads(out)["groups"] == []


def test_clear_dry_run_removes_nothing(tmp_path, capsys):
    root = str(tmp_path / "d")
    argv = ["ingest", "synthetic", "--universe", "2", "--timeframe", "1d"]
    run(capsys, "--data-dir", root, *argv, "--start", "2023-01-01", "--end", "2023-02-01")
    rc, out, _ = run(capsys, "--data-dir", root, "clear", "--symbol", "SYN000", "--dry-run")
    assert rc == 0 and "would remove bars/source=synthetic/timeframe=1d/symbol=SYN000" in out
    assert len(Lake(root).manifest.live_files("bars")) == 2


def test_ingest_csv_takes_the_metadata_no_file_carries(tmp_path, capsys):
    f = tmp_path / "calm.csv"
    f.write_text(YF_CSV)
    root = str(tmp_path / "d")
    argv = ["ingest", "csv", str(f), "--symbol", "CALM", "--asset-class", "equity"]
    rc, _, _ = run(capsys, "--data-dir", root, *argv, "--calendar", "XNAS", "--currency", "USD")
    assert rc == 0
    rows = pq.read_table(Path(root) / "lake" / "symbols" / "source=csv" / "data.parquet")
    row = rows.to_pylist()[0]
    assert (row["symbol"], row["asset_class"], row["calendar"]) == ("CALM", "equity", "XNAS")
