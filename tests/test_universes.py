"""Universes from files: symbol lists, long files with a symbol column, folders of
per-symbol files (zipline's csvdir layout), and whether their prices are split-adjusted."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from duckmarket.cli import main
from ingest import manager as manager_module
from ingest.errors import InvalidInputError
from ingest.lake import Lake
from ingest.manager import DataManager
from ingest.sources.csv import read_bar_file, read_bar_files
from ingest.sources.yfinance import YFinanceSource
from ingest.universe import read_symbols_file

FIXTURES = Path(__file__).parent / "fixtures"
#: a real Yahoo export: split-adjusted prices around Apple's 4:1 split of 2020-08-31
AAPL = FIXTURES / "aapl_2020_split_daily.csv"
SPLIT_DAY = date(2020, 8, 31)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def as_traded_rows() -> list[dict]:
    """AAPL as traded (what the Yahoo file un-adjusts to), the reference for every shape."""
    imp = read_bar_file(AAPL, timeframe="1d")
    divs = {r["ex_date"]: r["cash_amount"] for r in actions(imp, "dividend")}
    rows = []
    for r in imp.bars.to_pylist():
        d = r["ts"].date()
        rows.append({**r, "date": d, "dividend": divs.get(d, 0.0), "split": 4.0 * (d == SPLIT_DAY)})
    return rows


def actions(imp, kind: str) -> list[dict]:
    return [r for r in imp.actions.to_pylist() if r["action_type"] == kind]


def write_csvdir_file(path: Path, rows: list[dict], *, adjusted: bool = False) -> Path:
    """zipline csvdir's shape: date,open,high,low,close,volume,dividend,split (split 1.0 on
    ordinary days, the ratio on the ex-date; prices as traded unless ``adjusted``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["date,open,high,low,close,volume,dividend,split"]
    for r in rows:
        f = 0.25 if adjusted and r["date"] < SPLIT_DAY else 1.0
        v = 4.0 if adjusted and r["date"] < SPLIT_DAY else 1.0
        px = [f"{r[c] * f:.10g}" for c in ("open", "high", "low", "close")]
        split = r["split"] or 1.0
        lines.append(f"{r['date']},{','.join(px)},{r['volume'] * v:.10g},{r['dividend']},{split}")
    path.write_text("\n".join(lines) + "\n")
    return path


def closes(bars) -> dict[date, float]:
    return {r["ts"].date(): r["close"] for r in bars.to_pylist()}


# --- symbol lists ------------------------------------------------------------------------


def test_symbols_file_lines_words_comments_and_a_csv_column(tmp_path: Path) -> None:
    plain = tmp_path / "u.txt"
    plain.write_text("# my universe\nAAPL\n\nMSFT GOOG  # big tech\nBRK.B,^GSPC\nAAPL\n")
    assert read_symbols_file(plain) == ["AAPL", "MSFT", "GOOG", "BRK.B", "^GSPC"]
    sp = tmp_path / "constituents.csv"
    sp.write_text('Symbol,Security,GICS Sector\nMMM,3M,Industrials\nAOS,"A. O. Smith, Inc",X\n')
    assert read_symbols_file(sp) == ["MMM", "AOS"]
    second = tmp_path / "second.csv"
    second.write_text("name,ticker\nApple,AAPL\nMicrosoft,MSFT\n")
    assert read_symbols_file(second) == ["AAPL", "MSFT"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "no such file"),
        ("# nothing yet\n\n", "lists no symbols"),
        ("symbol\n", "lists no symbols"),
        ("AAPL\n../etc\n", "line 2"),
    ],
)
def test_symbols_file_errors_name_the_file_and_line(tmp_path: Path, text, message) -> None:
    path = tmp_path / "u.txt"
    if text is not None:
        path.write_text(text)
    with pytest.raises(InvalidInputError, match=message):
        read_symbols_file(path)


def test_ingest_with_a_symbols_file(tmp_path: Path, capsys, monkeypatch) -> None:
    universe = tmp_path / "universe.txt"
    universe.write_text("# synthetic names\nSYN001\nSYN002 SYN001\n")
    root = str(tmp_path / "d")
    rc, _out, err = run(
        capsys, "--data-dir", root, "ingest", "synthetic", "--symbols-file", str(universe),
        "--symbols", "SYN000", "--timeframe", "1d", "--start", "2024-01-02", "--end", "2024-02-01",
    )  # fmt: skip
    assert rc == 0, err
    lake = Lake(root)
    assert all(
        lake.read_bars("synthetic", s, "1d").num_rows == 21 for s in ("SYN000", "SYN001", "SYN002")
    )
    assert {r["symbol"] for r in lake.manifest.symbols("synthetic")} >= {"SYN001", "SYN002"}

    asked: list[str] = []

    def history(symbol, interval, start, end):
        asked.append(symbol)
        raise AssertionError("a bad symbols file must fail before any fetch")

    src = YFinanceSource(history_fn=history, sleep=lambda s: None)
    monkeypatch.setattr(manager_module, "make_source", lambda name: src)
    bad = tmp_path / "bad.txt"
    bad.write_text("AAPL\nMS FT/../x\n")
    argv = ("--data-dir", root, "ingest", "yfinance", "--symbols-file", str(bad))
    rc, _out, err = run(capsys, *argv)
    assert rc != 0 and "line 2" in err and "Traceback" not in err and asked == []
    rc, _out, err = run(capsys, "--data-dir", root, "ingest", "yfinance")
    assert rc != 0 and "--symbols-file" in err


# --- long files: one row per symbol and bar ----------------------------------------------


def long_file(path: Path, header: str = "Ticker") -> Path:
    """Three symbols' rows interleaved by date, as vendors export a universe, with one row
    whose symbol is missing and one bad price."""
    lines = [f"{header},Date,Open,High,Low,Close,Volume"]
    for day in range(2, 12):
        for k, sym in enumerate(("AAA", "BBB", "CCC")):
            px = 10.0 * (k + 1) + day
            close = "12.5x" if (sym, day) == ("BBB", 5) else f"{px}"
            lines.append(f"{sym},2024-01-{day:02d},{px},{px + 1},{px - 1},{close},{100 * day}")
    lines.append(",2024-01-12,1,1,1,1,1")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_long_file_splits_into_one_series_per_symbol(tmp_path: Path) -> None:
    path = long_file(tmp_path / "universe.csv")
    series, unusable = read_bar_files(path, timeframe="1d")
    assert list(series) == ["AAA", "BBB", "CCC"]
    assert [u[:2] for u in unusable] == [(30, "missing symbol")]
    for k, sym in enumerate(("AAA", "BBB", "CCC")):
        c = closes(series[sym].bars)
        assert c[date(2024, 1, 2)] == 10.0 * (k + 1) + 2
        assert len(c) == (9 if sym == "BBB" else 10)
    # the bad row is rejected under its own symbol, with its row number in the file
    (row, reason, text) = series["BBB"].rejects[0]
    assert row == 10 and "bad close '12.5x'" in reason and text.startswith("BBB,2024-01-05")
    # reading one symbol of it, or a mapped symbol column
    one = read_bar_file(path, timeframe="1d", symbol="CCC")
    assert one.bars.equals(series["CCC"].bars)
    mapped = long_file(tmp_path / "mapped.csv", header="instrument")
    got, _ = read_bar_files(mapped, timeframe="1d", mapping={"instrument": "symbol"})
    assert all(got[s].bars.equals(series[s].bars) for s in series)


def test_long_file_without_a_choice_of_symbol_is_a_clear_error(tmp_path: Path) -> None:
    path = long_file(tmp_path / "universe.csv")
    with pytest.raises(InvalidInputError, match=r"holds 3 symbols \(AAA, BBB, CCC\)"):
        read_bar_file(path, timeframe="1d")
    with pytest.raises(InvalidInputError, match="no rows for 'ZZZ'"):
        read_bar_file(path, timeframe="1d", symbol="ZZZ")


def test_ingest_csv_long_file_lands_each_symbol(tmp_path: Path, capsys) -> None:
    path = long_file(tmp_path / "universe.csv", header="tkr")
    root = str(tmp_path / "d")
    rc, out, err = run(
        capsys, "--data-dir", root, "ingest", "csv", str(path), "--map", "tkr=symbol",
        "--asset-class", "equity",
    )  # fmt: skip
    assert rc == 0, err
    assert "3 series of 3 symbol(s)" in out and "29 rows written" in out
    lake = Lake(root)
    assert lake.read_bars("csv", "BBB", "1d").num_rows == 9
    rejects = lake.read_rejects("bars", "csv").to_pylist()
    assert sorted((r["symbol"], r["key"]) for r in rejects) == [("", "line 30"), ("BBB", "line 10")]
    info = {r["symbol"]: r for r in lake.manifest.symbols("csv")}
    assert {s: info[s]["asset_class"] for s in ("AAA", "BBB", "CCC")} == dict.fromkeys(
        ("AAA", "BBB", "CCC"), "equity"
    )
    # the same import again changes nothing
    cols = ["ts", "open", "high", "low", "close", "volume"]
    before = {s: lake.read_bars("csv", s, "1d").select(cols) for s in ("AAA", "BBB", "CCC")}
    rc, _out, _ = run(capsys, "--data-dir", root, "ingest", "csv", str(path), "--map", "tkr=symbol")
    assert rc == 0
    after = Lake(root)
    assert all(after.read_bars("csv", s, "1d").select(cols).equals(t) for s, t in before.items())


# --- folders of per-symbol files ---------------------------------------------------------


def test_csvdir_folder_daily_and_minute(tmp_path: Path) -> None:
    rows = as_traded_rows()
    folder = tmp_path / "csvdir"
    write_csvdir_file(folder / "daily" / "AAPL.csv", rows)
    write_csvdir_file(folder / "daily" / "COPY.csv", rows)
    minute = folder / "minute" / "AAPL.csv"
    minute.parent.mkdir()
    minute.write_text(
        "date,open,high,low,close,volume\n"
        "2024-01-02T14:30:00Z,1,2,0.5,1.5,100\n2024-01-02T14:31:00Z,1.5,2,1,1.75,50\n"
    )
    (folder / "daily" / "notes.md").write_text("not data")
    dm = DataManager(tmp_path / "d")
    results = dm.import_files(folder)
    got = {(r.symbol, r.timeframe): r.rows for r in results}
    assert got == {("AAPL", "1d"): len(rows), ("COPY", "1d"): len(rows), ("AAPL", "1m"): 2}
    assert all(r.error is None for r in results)
    assert dm.lake.read_bars("csv", "AAPL", "1m").column("close").to_pylist() == [1.5, 1.75]
    only_minute = DataManager(tmp_path / "d2").import_files(folder, timeframe="1m")
    assert [(r.symbol, r.timeframe) for r in only_minute] == [("AAPL", "1m")]
    with pytest.raises(InvalidInputError, match="no 5m bars"):
        dm.import_files(folder, timeframe="5m")
    with pytest.raises(InvalidInputError, match="leave --symbol out"):
        dm.import_files(folder, symbol="AAPL")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInputError, match="no CSV or Parquet file"):
        dm.import_files(empty)


def test_a_bad_file_in_a_folder_does_not_stop_the_others(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "daily"
    write_csvdir_file(folder / "AAPL.csv", as_traded_rows())
    (folder / "BROKEN.csv").write_text("this is not,a price file\n1,2\n")
    root = str(tmp_path / "d")
    rc, _out, err = run(capsys, "--data-dir", root, "ingest", "csv", str(folder))
    assert rc == 2
    assert "BROKEN.csv: missing required column(s)" in err and "Traceback" not in err
    assert "the others are in the lake" in err
    assert Lake(root).read_bars("csv", "AAPL", "1d").num_rows == len(as_traded_rows())


# --- split-adjusted or as traded ---------------------------------------------------------


def test_as_traded_csvdir_prices_are_kept_as_they_are(tmp_path: Path) -> None:
    rows = as_traded_rows()
    path = write_csvdir_file(tmp_path / "AAPL.csv", rows)
    imp = read_bar_file(path, timeframe="1d")
    assert closes(imp.bars) == pytest.approx({r["date"]: r["close"] for r in rows}, rel=1e-9)
    assert any("as-traded: they fall by the split ratio" in n for n in imp.notes)
    splits = [(r["ex_date"], r["split_ratio"]) for r in actions(imp, "split")]
    assert splits == [(SPLIT_DAY, 4.0)]
    # the dividend of 2020-08-07 is as paid (0.82 before the split), not split-adjusted
    divs = {r["ex_date"]: r["cash_amount"] for r in actions(imp, "dividend")}
    assert divs[date(2020, 8, 7)] == pytest.approx(0.82)


def test_split_adjusted_prices_are_recognised_and_unadjusted(tmp_path: Path) -> None:
    rows = as_traded_rows()
    path = write_csvdir_file(tmp_path / "AAPL.csv", rows, adjusted=True)
    imp = read_bar_file(path, timeframe="1d")
    assert any("split-adjusted: they do not jump" in n for n in imp.notes)
    assert closes(imp.bars) == pytest.approx({r["date"]: r["close"] for r in rows}, rel=1e-9)
    vol = {r["ts"].date(): r["volume"] for r in imp.bars.to_pylist()}
    assert vol == pytest.approx({r["date"]: r["volume"] for r in rows}, rel=1e-9)
    # the user's word wins over the judgement
    forced = read_bar_file(path, timeframe="1d", split_adjusted=False)
    assert closes(forced.bars)[date(2020, 8, 28)] == pytest.approx(
        next(r["close"] for r in rows if r["date"] == date(2020, 8, 28)) / 4
    )


def test_prices_option_on_the_command_line(tmp_path: Path, capsys) -> None:
    path = write_csvdir_file(tmp_path / "AAPL.csv", as_traded_rows())
    root = str(tmp_path / "d")
    rc, out, err = run(
        capsys, "--data-dir", root, "ingest", "csv", str(path), "--prices", "split-adjusted"
    )
    assert rc == 0, err
    assert "AAPL.csv: 19 rows into csv/AAPL/1d" in out.replace("\n", " ") or "csv/AAPL/1d" in out
    c = closes(Lake(root).read_bars("csv", "AAPL", "1d"))
    want = next(r["close"] for r in as_traded_rows() if r["date"] == date(2020, 8, 28))
    assert c[date(2020, 8, 28)] == pytest.approx(want * 4)  # taken at its word: multiplied


def test_an_uninformative_split_falls_back_to_the_files_shape(tmp_path: Path) -> None:
    """A split whose day shows no clear move either way (here the prices are flat across
    it) cannot be judged: Yahoo-shaped files are split-adjusted, others as traded."""
    head = "Date,Open,High,Low,Close,Volume,{}\n"
    # a 2:1 split on the 3rd, the price falls by a factor of sqrt(2): half way either way
    body = "".join(
        f"2024-01-{d:02d},{p},{p},{p},{p},100,{2.0 if d == 3 else 0}\n"
        for d, p in ((2, 10.0), (3, 7.0711), (4, 7.0711), (5, 7.0711))
    )
    generic = tmp_path / "g.csv"
    generic.write_text(head.format("Splits") + body)
    yahoo = tmp_path / "y.csv"
    yahoo.write_text(head.format("Stock Splits") + body)
    g, y = read_bar_file(generic, timeframe="1d"), read_bar_file(yahoo, timeframe="1d")
    assert any("as-traded (the default)" in n for n in g.notes)
    assert any("split-adjusted (as Yahoo exports are)" in n for n in y.notes)
    assert pc.max(g.bars.column("close")).as_py() == 10.0
    assert np.isclose(closes(y.bars)[date(2024, 1, 2)], 20.0)


def test_a_file_named_by_its_symbol(tmp_path: Path) -> None:
    path = write_csvdir_file(tmp_path / "MSFT.csv", as_traded_rows())
    dm = DataManager(tmp_path / "d")
    (r,) = dm.import_files(path)
    assert (r.symbol, r.timeframe, r.error) == ("MSFT", "1d", None)
    (r,) = dm.import_files([path], symbol="OTHER")
    assert r.symbol == "OTHER"
    first = dm.lake.read_bars("csv", "OTHER", "1d").column("ts")[0].as_py()
    assert first == datetime(2020, 8, 4, tzinfo=UTC)
