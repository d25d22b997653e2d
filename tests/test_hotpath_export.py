"""Exports: index correctness against DuckDB, records64 layout, filters, SQL, atomic replace."""

from __future__ import annotations

import json
import sqlite3
import struct
from pathlib import Path

import duckdb
import numpy as np
import pytest

import hotpath
from duckmarket.cli import main
from hotpath.synthetic import make_bars_mart
from ingest.errors import InvalidInputError
from ingest.paths import DataPaths

ROWS = {"AAPL": 2000, "BTC/USDT": 700, "EURUSD=X": 1, "^GSPC": 1200}


@pytest.fixture
def paths(tmp_path: Path) -> DataPaths:
    p = DataPaths(tmp_path / "data").ensure()
    make_bars_mart(p.marts / "bars_adjusted.parquet", list(ROWS), ROWS, row_group_size=500)
    return p


def _duck(paths: DataPaths, sql: str, params: list[object] | None = None) -> list[tuple]:
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    mart = paths.marts / "bars_adjusted.parquet"
    con.execute(f"create view bars_adjusted as select * from read_parquet('{mart}')")
    return con.execute(sql, params or []).fetchall()


@pytest.mark.parametrize("fmt", ["arrow", "records64"])
def test_every_symbol_and_range_equals_duckdb(paths: DataPaths, fmt: str) -> None:
    res = hotpath.export("bars_adjusted", data_dir=paths, format=fmt)
    price = "close_adj" if fmt == "records64" else "close"
    with hotpath.open(res.path, verify=True) as x:
        assert x.symbols == sorted(ROWS)
        assert len(x) == sum(ROWS.values())
        for sym in ROWS:
            expect = _duck(
                paths,
                f"select epoch_ns(ts), {price} from bars_adjusted where symbol = ? order by ts",
                [sym],
            )
            view = x.symbol(sym)
            assert view.ts_ns.tolist() == [r[0] for r in expect]
            assert view.col("close").tolist() == [r[1] for r in expect]
            assert set(view.col("symbol").tolist()) == {x.symbols.index(sym)}
            start, end = "2015-01-06T15:00:00Z", "2015-01-07T14:31:00+00:00"
            expect = _duck(
                paths,
                f"select epoch_ns(ts), {price} from bars_adjusted where symbol = ? "
                "and ts >= ?::timestamptz and ts < ?::timestamptz order by ts",
                [sym, start, end],
            )
            rng = x.range(sym, start, end)
            assert rng.ts_ns.tolist() == [r[0] for r in expect]
            assert rng.col("close").tolist() == [r[1] for r in expect]


def test_range_bounds_are_start_inclusive_end_exclusive(paths: DataPaths) -> None:
    x = hotpath.open(hotpath.export("bars_adjusted", data_dir=paths).path)
    ts = x.symbol("AAPL").col("ts")
    view = x.range("AAPL", ts[10], ts[20])
    assert view.col("ts")[0] == ts[10]
    assert len(view) == 10
    assert len(x.range("AAPL", ts[5], ts[5])) == 0
    assert len(x.range("AAPL")) == ROWS["AAPL"]
    with pytest.raises(KeyError, match="not in"):
        x.symbol("MSFT")


def test_records64_layout_is_64_byte_little_endian_records(paths: DataPaths) -> None:
    res = hotpath.export("bars_adjusted", data_dir=paths, format="records64", prices="raw")
    dt = hotpath.RECORD_DTYPE
    assert dt.itemsize == 64
    offsets = {n: dt.fields[n][1] for n in dt.names}
    assert offsets == {
        "ts": 0, "open": 8, "high": 16, "low": 24, "close": 32, "volume": 40,
        "symbol_id": 48, "flags": 52,
    }  # fmt: skip
    raw = res.path.read_bytes()
    magic, version, size, rows, data_off, meta_off, meta_len = struct.unpack_from("<8sIIQQQQ", raw)
    assert (magic, version, size, data_off) == (b"DMREC64\x00", 1, 64, 64)
    assert rows == sum(ROWS.values()) and meta_off == 64 + 64 * rows
    assert len(raw) == meta_off + meta_len + 16 and raw[-8:] == b"DMR64END"
    meta = json.loads(raw[meta_off : meta_off + meta_len])
    assert meta["symbols"] == sorted(ROWS) and meta["prices"] == "raw"
    # what a C reader would do: read the first record by offsets
    ts, o, h, lo, c, v, sym_id, flags = struct.unpack_from("<q5dii", raw, 64)
    first = _duck(
        paths,
        "select epoch_ns(ts), open, high, low, close, volume, is_final::int from bars_adjusted "
        "order by symbol, ts limit 1",
    )[0]
    assert (ts, o, h, lo, c, v, sym_id, flags & 1) == (*first[:6], 0, first[6])
    assert raw[64 + 56 : 64 + 64] == bytes(8)


def test_records64_price_basis_selects_columns(paths: DataPaths) -> None:
    out = paths.export
    for basis, col in [("raw", "close"), ("split", "close_split_adj"), ("total", "close_adj")]:
        res = hotpath.export(
            "bars_adjusted", data_dir=paths, format="records64", prices=basis, out=out / basis
        )
        x = hotpath.open(res.path)
        expect = [r[0] for r in _duck(paths, f"select {col} from bars_adjusted")]
        assert x.col("close").tolist() == expect
        assert x.metadata["prices"] == basis
    default = hotpath.export("bars_adjusted", data_dir=paths, format="records64")
    assert hotpath.open(default.path).metadata["prices"] == "total"


def test_records64_flags_carry_is_final_and_is_suspect(paths: DataPaths) -> None:
    x = hotpath.open(hotpath.export("bars_adjusted", data_dir=paths, format="records64").path)
    expect = _duck(paths, "select is_final::int + 2 * is_suspect::int from bars_adjusted")
    assert x.col("flags").tolist() == [r[0] for r in expect]


def test_sql_export_is_sorted_filtered_and_projected(paths: DataPaths) -> None:
    sql = "select symbol, ts, close * 2 as c2, volume from bars_adjusted order by ts desc"
    res = hotpath.export(
        sql=sql, data_dir=paths, symbols=["^GSPC", "AAPL", "NOPE"], start="2015-01-06"
    )
    assert res.missing_symbols == ["NOPE"]
    x = hotpath.open(res.path)
    assert x.names == ["symbol", "ts", "c2", "volume"]
    expect = _duck(
        paths,
        "select symbol, epoch_ns(ts), close * 2 from bars_adjusted where symbol in "
        "('AAPL', '^GSPC') and ts >= '2015-01-06'::timestamptz order by symbol, ts",
    )
    assert x.ts_ns.tolist() == [r[1] for r in expect]
    assert x.col("c2").tolist() == [r[2] for r in expect]
    assert [x.symbols[i] for i in x.col("symbol")] == [r[0] for r in expect]


def test_unsorted_mart_is_sorted_on_export(paths: DataPaths) -> None:
    src = paths.marts / "bars_adjusted.parquet"
    shuffled = paths.marts / "shuffled.parquet"
    con = duckdb.connect()
    con.execute(f"copy (select * from '{src}' order by random()) to '{shuffled}'")
    x = hotpath.open(hotpath.export("shuffled", data_dir=paths).path)
    assert x.symbols == sorted(ROWS)
    for sym in ROWS:
        assert np.all(np.diff(x.symbol(sym).ts_ns) > 0)
        assert len(x.symbol(sym)) == ROWS[sym]


def test_export_is_recorded_in_the_manifest(paths: DataPaths) -> None:
    res = hotpath.export("bars_adjusted", data_dir=paths)
    with sqlite3.connect(paths.manifest) as db:
        rows = db.execute("select path, mart, format, rows, bytes, sha256 from exports").fetchall()
    assert rows == [(str(res.path), "bars_adjusted", "arrow", res.rows, res.bytes, res.sha256)]
    assert res.bytes == res.path.stat().st_size


def test_reader_survives_a_concurrent_reexport(paths: DataPaths) -> None:
    out = paths.export / "bars.arrow"
    hotpath.export("bars_adjusted", data_dir=paths, out=out)
    old = hotpath.open(out)
    old_close = old.col("close").copy()
    view = old.col("close")
    hotpath.export("bars_adjusted", data_dir=paths, out=out, symbols=["AAPL"], columns=["open"])
    assert old.symbols == sorted(ROWS)  # the old reader still sees the old file, whole
    np.testing.assert_array_equal(view, old_close)
    np.testing.assert_array_equal(old.col("close"), old_close)
    new = hotpath.open(out)
    assert new.symbols == ["AAPL"] and new.names == ["symbol", "ts", "open"]
    assert not list(out.parent.glob(".*.tmp"))


def test_failed_export_leaves_the_old_file_and_no_temporary(paths: DataPaths) -> None:
    out = paths.export / "bars.arrow"
    hotpath.export("bars_adjusted", data_dir=paths, out=out)
    before = out.read_bytes()
    with pytest.raises(InvalidInputError, match="no 'ts' column"):
        hotpath.export(sql="select symbol, close from bars_adjusted", data_dir=paths, out=out)
    failing = (
        "select symbol, ts, open, high, low, volume, "
        "case when symbol = '^GSPC' then error('boom') else close end as close from bars_adjusted"
    )
    with pytest.raises(InvalidInputError, match="boom"):
        hotpath.export(sql=failing, data_dir=paths, out=out, format="records64", prices="raw")
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["bars.arrow"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mart": "nope"}, "no mart 'nope'"),
        ({"mart": "../etc"}, "invalid mart name"),
        ({}, "exactly one"),
        ({"sql": "select * from nowhere"}, "query failed"),
        ({"mart": "bars_adjusted", "format": "csv"}, "unknown format"),
        ({"mart": "bars_adjusted", "columns": ["nope"]}, "unknown column"),
        ({"mart": "bars_adjusted", "prices": "total"}, "applies to records64"),
        ({"sql": "select 'a' as symbol, 1 as ts"}, "ts must be a timestamp"),
        (
            {"sql": "select 'a' as symbol, now() as ts, [1] as l", "columns": ["l"]},
            "no fixed-width view",
        ),
        ({"mart": "bars_adjusted", "start": "yesterday"}, "cannot read"),
    ],
)
def test_bad_requests_get_clear_errors(paths: DataPaths, kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        hotpath.export(data_dir=paths, **kwargs)


def test_records64_needs_price_columns(paths: DataPaths) -> None:
    with pytest.raises(InvalidInputError, match="--prices split needs"):
        hotpath.export(
            sql="select symbol, ts, open, high, low, close, volume from bars_adjusted",
            data_dir=paths,
            format="records64",
            prices="split",
        )


def test_cli_export_command(paths: DataPaths, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        ["--data-dir", str(paths.root), "export", "bars_adjusted", "--symbols", "AAPL",
         "--format", "records64", "--prices", "split", "--start", "2015-01-06",
         "--end", "2015-01-07"]
    )  # fmt: skip
    assert rc == 0
    assert "exported 390 rows of 1 symbol(s)" in capsys.readouterr().out
    x = hotpath.open(paths.export / "bars_adjusted.records64")
    assert x.symbols == ["AAPL"] and len(x) == 390


def test_a_column_with_no_fixed_width_view_is_left_out_with_a_note(paths: DataPaths) -> None:
    r = hotpath.export(sql="select 'a' as symbol, now() as ts, [1] as l, 2.5 as x", data_dir=paths)
    assert any("left out column 'l'" in n and "no fixed-width view" in n for n in r.notes)
    with hotpath.open(r.path) as x:
        assert x.names == ["symbol", "ts", "x"]
