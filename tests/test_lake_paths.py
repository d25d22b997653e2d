"""Symbols are percent-encoded in paths exactly as DuckDB's hive reader decodes them."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.errors import InvalidSymbolError
from ingest.schema import decode_symbol, encode_symbol, validate_symbol

from .conftest import T0, make_bars

TRICKY = ["^GSPC", "BTC/USDT", "EURUSD=X", "BRK.B", "ES=F", "a/b", "100%", "X:Y", "é-ü"]


@pytest.mark.parametrize("symbol", TRICKY)
def test_symbol_round_trips_through_duckdb_hive_reader(lake, symbol):
    with lake.writer():
        lake.write_bars("synthetic", symbol, "1m", make_bars(T0, 3))
    got = duckdb.sql(
        f"""select distinct symbol from read_parquet('{lake.root}/bars/*/*/*/*/*.parquet',
                hive_partitioning = true)"""
    ).fetchall()
    assert got == [(symbol,)]
    # the partition directory is a single path segment below the timeframe
    files = list((lake.root / "bars").rglob("data.parquet"))
    assert len(files) == 1
    assert files[0].relative_to(lake.root).parts[3] == f"symbol={encode_symbol(symbol)}"


@pytest.mark.parametrize(
    "bad",
    [
        "../../etc",
        "..",
        "../x",
        "/etc/passwd",
        "",
        "  ",
        "a\nb",
        "a b",
        ".hidden",
        "x" * 65,
        "a\\b",
    ],
)
def test_path_like_or_malformed_symbols_are_refused(lake, bad):
    with pytest.raises(InvalidSymbolError), lake.writer():
        lake.write_bars("synthetic", bad, "1d", make_bars(T0, 1))
    assert (
        not any((lake.root / "bars").rglob("*.parquet")) if (lake.root / "bars").exists() else True
    )


def test_slash_symbol_stays_inside_the_lake(lake):
    with lake.writer():
        lake.write_bars("synthetic", "a/b", "1d", make_bars(T0, 2))
    for p in lake.root.rglob("*.parquet"):
        assert p.resolve().is_relative_to(lake.root.resolve())
        assert "a/b" not in str(p.relative_to(lake.root))


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=20)
)
def test_encode_decode_round_trip_property(sym):
    try:
        s = validate_symbol(sym)
    except InvalidSymbolError:
        return
    enc = encode_symbol(s)
    for forbidden in ("/", "=", "..", "\\"):
        assert forbidden not in enc
    assert decode_symbol(enc) == s


def test_a_symbol_is_normalised_where_it_enters_and_refused_below(tmp_path, fake_source):
    from ingest.manager import DataManager

    dm = DataManager(tmp_path / "d", sources={"fake": fake_source}, default_source="fake")
    df = dm.get_ohlcv("  AAA ", "1d", T0, T0 + timedelta(days=3))
    assert df["symbol"].unique().to_list() == ["AAA"]
    assert fake_source.calls[0][0] == "AAA"
    # the storage layer does not normalise what it is handed: it refuses it
    with pytest.raises(InvalidSymbolError, match="white space"), dm.lake.writer():
        dm.lake.write_bars("fake", " AAA", "1d", make_bars(T0, 1))
