"""Files a user really has: too big, binary, UTF-16, misdated, ambiguous; never a traceback."""

from __future__ import annotations

import gzip
import io
import random
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from duckmarket.cli import main
from ingest.errors import InvalidInputError
from ingest.lake import Lake
from ingest.sources.csv import read_bar_file

GOOD_DAILY = "Date,Open,High,Low,Close,Volume\n" + "".join(
    f"2024-01-{d:02d},{100 + d},{101 + d},{99 + d},{100.5 + d},{1000 * d}\n" for d in range(2, 30)
)
GOOD_MINUTE = "ts,open,high,low,close,volume\n" + "".join(
    f"2024-01-02T14:{m:02d}:00Z,10,11,9,10.5,{m + 1}\n" for m in range(30, 60)
)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    return path


# --- what the file is --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (GOOD_DAILY.encode("utf-16"), "is UTF-16 text"),
        (GOOD_DAILY.encode("utf-16-le"), "is UTF-16 text"),
        (bytes(range(256)) * 16, "is binary data"),
        (b"PK\x03\x04" + b"\x00" * 200, "Excel .xlsx workbook"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 200, "Excel .xls workbook"),
        (gzip.compress(GOOD_DAILY.encode()), "gzip-compressed"),
    ],
)
def test_what_is_not_csv_text_is_named(tmp_path: Path, capsys, content, message) -> None:
    path = write(tmp_path, "prices.csv", content)
    with pytest.raises(InvalidInputError, match=message):
        read_bar_file(path, timeframe="1d")
    rc, _out, err = run(capsys, "--data-dir", str(tmp_path / "d"), "ingest", "csv", str(path))
    assert rc == 1 and message in " ".join(err.split())
    assert "\x00" not in err and "\ufffd" not in err


def test_control_characters_in_a_header_are_escaped_in_messages(tmp_path: Path) -> None:
    path = write(tmp_path, "odd.csv", "Da\x07te,O\x1bpen\n2024-01-02,1\n")
    with pytest.raises(InvalidInputError, match=r"columns found: Da\\x07te, O\\x1bpen"):
        read_bar_file(path, timeframe="1d")


def test_a_field_beyond_the_csv_modules_limit_is_one_rejected_row(tmp_path: Path, capsys):
    lines = GOOD_DAILY.splitlines()
    lines[3] = lines[3].rsplit(",", 2)[0] + ',"' + "9" * 200_000 + '",5'
    path = write(tmp_path, "big.csv", "\n".join(lines) + "\n")
    root = str(tmp_path / "d")
    rc, out, err = run(capsys, "--data-dir", root, "ingest", "csv", str(path), "--symbol", "B")
    assert rc == 0, err
    assert "27 rows written, 1 row(s) quarantined" in " ".join(out.split())
    lake = Lake(root)
    assert lake.read_bars("csv", "B", "1d").num_rows == 27
    assert lake.read_rejects("bars", "csv").num_rows == 1


def test_unknown_timezone_is_a_message(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", GOOD_MINUTE.replace("Z,", ","))
    with pytest.raises(InvalidInputError, match="unknown timezone 'Mars/Olympus'"):
        read_bar_file(path, timeframe="1m", timezone="Mars/Olympus")


# --- when: implausible and ambiguous dates ----------------------------------------------


def test_implausible_timestamps_are_rejected_with_their_reason(tmp_path: Path) -> None:
    text = GOOD_DAILY + "1700-01-02,1,1,1,1,1\n2300-01-02,1,1,1,1,1\n"
    imp = read_bar_file(write(tmp_path, "d.csv", text), timeframe="1d")
    reasons = {r[0]: r[1] for r in imp.rejects}
    assert reasons == {
        28: "implausible timestamp 1700-01-02 (before 1900)",
        29: "implausible timestamp 2300-01-02 (in the future)",
    }
    minute = GOOD_MINUTE + "9999-12-31T23:59:00Z,1,1,1,1,1\n"
    imp = read_bar_file(write(tmp_path, "m.csv", minute), timeframe="1m")
    assert imp.bars.num_rows == 30
    assert imp.rejects[0][1] == "implausible timestamp 9999-12-31 23:59:00+00:00 (in the future)"


def test_numeric_dates_in_an_unknown_order_are_refused(tmp_path: Path, capsys) -> None:
    ambiguous = "Date,Open,High,Low,Close,Volume\n03/01/2023,1,1,1,1,1\n04/01/2023,1,1,1,1,1\n"
    path = write(tmp_path, "amb.csv", ambiguous)
    with pytest.raises(InvalidInputError, match="could be day/month or month/day"):
        read_bar_file(path, timeframe="1d")
    day_first = read_bar_file(path, timeframe="1d", date_format="%d/%m/%Y")
    assert [t.date() for t in day_first.bars["ts"].to_pylist()] == [
        date(2023, 1, 3),
        date(2023, 1, 4),
    ]
    root = str(tmp_path / "d")
    rc, _out, err = run(capsys, "--data-dir", root, "ingest", "csv", str(path), "--symbol", "A")
    assert rc == 1 and "--date-format" in err
    rc, _out, err = run(
        capsys, "--data-dir", root, "ingest", "csv", str(path), "--symbol", "A",
        "--date-format", "%m/%d/%Y",
    )  # fmt: skip
    assert rc == 0, err
    got = Lake(root).read_bars("csv", "A", "1d")["ts"].to_pylist()
    assert [t.date() for t in got] == [date(2023, 3, 1), date(2023, 4, 1)]


def test_numeric_dates_whose_order_the_file_proves(tmp_path: Path) -> None:
    text = "Date,Open,High,Low,Close,Volume\n03/01/2023,1,1,1,1,1\n25/01/2023,1,1,1,1,1\n"
    imp = read_bar_file(write(tmp_path, "dmy.csv", text), timeframe="1d")
    assert [t.date() for t in imp.bars["ts"].to_pylist()] == [date(2023, 1, 3), date(2023, 1, 25)]
    assert any("dates read day first" in n for n in imp.notes)
    mixed = text + "01/13/2023,1,1,1,1,1\n"
    with pytest.raises(InvalidInputError, match="mix day-first and month-first"):
        read_bar_file(write(tmp_path, "mixed.csv", mixed), timeframe="1d")
    two_digit = "Date,Open,High,Low,Close,Volume\n25/01/23,1,1,1,1,1\n"
    with pytest.raises(InvalidInputError, match="two-digit years"):
        read_bar_file(write(tmp_path, "yy.csv", two_digit), timeframe="1d")
    intraday = "ts,open,high,low,close,volume\n25.01.2023 14:30,1,1,1,1,1\n"
    imp = read_bar_file(
        write(tmp_path, "i.csv", intraday), timeframe="1m", timezone="America/New_York"
    )
    assert imp.bars["ts"][0].as_py().isoformat() == "2023-01-25T19:30:00+00:00"


# --- the mapping -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("maps", "message"),
    [
        (["Open=open", "Open=high"], "maps column 'Open' twice"),
        (["Open=open", "High=open"], "maps columns 'Open' and 'High' both to 'open'"),
    ],
)
def test_a_mapping_that_contradicts_itself_is_refused(tmp_path: Path, capsys, maps, message):
    path = write(tmp_path, "d.csv", GOOD_DAILY)
    argv = ("--data-dir", str(tmp_path / "d"), "ingest", "csv", str(path), "--symbol", "A")
    rc, _out, err = run(capsys, *argv, "--map", *maps)
    assert rc == 1 and message in err


# --- fuzz: a few dozen malformed files ---------------------------------------------------


def _mutations(seed: int = 7) -> list[tuple[str, str, bytes]]:
    """(name, timeframe, bytes): damaged copies of good files, deterministic."""
    rng = random.Random(seed)
    daily, minute = GOOD_DAILY.encode(), GOOD_MINUTE.encode()
    out: list[tuple[str, str, bytes]] = []
    for k in range(6):
        base = daily if k % 2 else minute
        out.append((f"truncated{k}", "1d" if k % 2 else "1m", base[: rng.randrange(1, len(base))]))
    for k in range(6):
        b = bytearray(daily)
        for _ in range(rng.randrange(1, 12)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        out.append((f"flipped{k}", "1d", bytes(b)))
    text = GOOD_DAILY
    lines = text.splitlines()
    variants = {
        "header_only": lines[0] + "\n",
        "no_header": "\n".join(lines[1:]) + "\n",
        "blank_lines": "\n\n".join(lines) + "\n\n\n",
        "crlf": "\r\n".join(lines) + "\r\n",
        "ragged_long": "\n".join(
            line + ",x,y" if i % 3 == 0 else line for i, line in enumerate(lines)
        ),
        "ragged_short": "\n".join(
            line.rsplit(",", 2)[0] if i % 4 == 2 else line for i, line in enumerate(lines)
        ),
        "unbalanced_quote": text.replace("2024-01-05", '"2024-01-05'),
        "thousands": text.replace(",1000", ',"1,000"'),
        "latin1_header": "Dáte,Öpen,High,Low,Close,Volume\n" + "\n".join(lines[1:]),
        "duplicate_header": lines[0].replace("High", "Open") + "\n" + "\n".join(lines[1:]),
        "empty_ts": text.replace("2024-01-03", ""),
        "negative_prices": text.replace(",103,", ",-103,"),
        "high_below_low": text.replace("2024-01-04,104,105,103", "2024-01-04,104,90,103"),
        "nan_inf": text.replace(",106,", ",nan,").replace(",107,", ",inf,"),
        "semicolons": text.replace(",", ";"),
        "all_garbage": "a,b,c\n" + "x,y,z\n" * 20,
        "nul_in_middle": text[:200] + "\x00" + text[200:],
        "bom_twice": "\ufeff\ufeff" + text,
        "future_and_past": text + "1066-10-14,1,1,1,1,1\n2999-01-01,1,1,1,1,1\n",
        "ambiguous": text.replace("2024-01-1", "01/1"),
    }
    out += [(name, "1d", body.encode("utf-8", "replace")) for name, body in variants.items()]
    out.append(("latin1_body", "1d", text.replace("Close", "Clôture").encode("latin-1")))
    return out


def _parquet_mutations(tmp_path: Path) -> list[tuple[str, str, bytes]]:
    good = pa.table(
        {
            "ts": pa.array([1_704_205_800_000_000 + 60_000_000 * i for i in range(30)],
                           pa.timestamp("us", "UTC")),
            "open": [10.0] * 30, "high": [11.0] * 30, "low": [9.0] * 30,
            "close": [10.5] * 30, "volume": [1.0] * 30,
        }
    )  # fmt: skip

    def blob(table: pa.Table) -> bytes:
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()

    full = blob(good)
    return [
        ("pq_truncated", "1m", full[: len(full) // 2]),
        ("pq_footer_only", "1m", full[-64:]),
        ("pq_naive", "1m", blob(good.set_column(0, "ts", good["ts"].cast(pa.timestamp("us"))))),
        ("pq_text_prices", "1m", blob(good.set_column(4, "close", pa.array(["x"] * 30)))),
        ("pq_missing_close", "1m", blob(good.drop_columns(["close"]))),
        ("pq_list_close", "1m", blob(good.set_column(4, "close", pa.array([[1.0]] * 30)))),
        (
            "pq_null_ts",
            "1m",
            blob(good.set_column(0, "ts", pa.nulls(30, pa.timestamp("us", "UTC")))),
        ),
        ("pq_unordered", "1m", blob(good.take(list(reversed(range(30)))))),
    ]


def test_fuzz_malformed_files_never_show_a_traceback(tmp_path: Path, capsys) -> None:
    root = str(tmp_path / "d")
    cases = _mutations() + _parquet_mutations(tmp_path)
    assert len(cases) >= 40
    outcomes = {}
    for name, tf, body in cases:
        ext = ".parquet" if name.startswith("pq_") else ".csv"
        path = write(tmp_path, name + ext, body)
        argv = ("--data-dir", root, "ingest", "csv", str(path), "--symbol", "F", "-t", tf)
        argv += ("--timezone", "UTC") if tf == "1m" else ()
        rc, out, err = run(capsys, *argv)  # an exception here fails the test
        assert "Traceback" not in out + err, name
        if rc == 0:
            assert "rows into csv/F/" in out, (name, out)
        else:
            assert rc in (1, 2) and err.strip().startswith("error:"), (name, rc, err)
        outcomes[name] = rc
    # both kinds occur: some damage is survivable (rows quarantined), some is not
    assert 0 in outcomes.values() and 1 in outcomes.values()
    rc, out, _ = run(capsys, "--data-dir", root, "verify", "--no-repair")
    assert rc == 0 and "all match the manifest" in out
    lake = Lake(root)
    for tf in ("1d", "1m"):
        bars = lake.read_bars("csv", "F", tf)
        assert bars.num_rows > 0
        ts = bars["ts"].to_pylist()
        assert ts == sorted(set(ts))
