"""``duckmarket ingest ccxt`` and ``duckmarket symbols``, against the offline Binance."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

import pytest

from duckmarket import cli, cli_ccxt
from duckmarket.cli_ccxt import add_ccxt_commands
from ingest.errors import InvalidInputError, UnsupportedRequestError
from ingest.manifest import Manifest

from .ccxt_binance import FakeBinance

NOW = datetime(2024, 6, 1, 12, 30, 20, tzinfo=UTC)


@pytest.fixture
def fake(monkeypatch) -> FakeBinance:
    fake = FakeBinance(NOW)
    monkeypatch.setattr(cli_ccxt, "make_source", lambda exchange: fake.source())
    return fake


def run(paths, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="duckmarket")
    sub = parser.add_subparsers(dest="command", required=True)
    ingest = sub.add_parser("ingest").add_subparsers(dest="source", required=True)
    add_ccxt_commands(ingest, sub)
    args = parser.parse_args(argv)
    args.paths = paths
    return args.func(args)


def coverage(paths, symbol: str, timeframe: str) -> list[str]:
    with Manifest(paths.manifest) as m:
        return [c.status for c in m.coverage("ccxt_binance", symbol, timeframe)]


def test_ingest_lands_bars_and_the_same_command_again_asks_nothing(paths, fake, capsys):
    argv = ["ingest", "ccxt", "--exchange", "binance", "BTC/USDT", "ETH/USDT"]
    argv += ["--timeframe", "1h", "--start", "2024-05-01", "--end", "2024-05-08"]
    assert run(paths, *argv) == 0
    first = capsys.readouterr().out
    assert "ccxt_binance 1h: 2 symbol(s), 336 rows written" in first
    assert coverage(paths, "ETH/USDT", "1h") == ["fetched"]
    n = len(fake.requests)
    assert run(paths, *argv) == 0
    assert "0 rows written, 0 source call(s), 0 fetched, 2 already held" in capsys.readouterr().out
    assert len(fake.requests) == n


def test_type_swap_reads_a_pair_as_its_perpetual(paths, fake):
    argv = ["ingest", "ccxt", "-e", "binance", "BTC/USDT", "--type", "swap"]
    assert run(paths, *argv, "--timeframe", "1d", "--start", "2024-05-01") == 0
    assert coverage(paths, "BTC/USDT:USDT", "1d") == ["fetched"]
    assert {r.api for r in fake.calls("klines")} == {"fapi"}


def test_funding_and_trades_are_timeframes_of_the_command(paths, fake):
    fake.add_trades(
        "api", "BTCUSDT", [(1717146000000 + i * 1000, 42000.0, 0.01, False) for i in range(50)]
    )
    base = ["ingest", "ccxt", "--exchange", "binance"]
    argv = [*base, "BTC/USDT:USDT", "-t", "funding", "--start", "2024-05-01"]
    assert run(paths, *argv, "--end", "2024-06-01") == 0
    assert coverage(paths, "BTC/USDT:USDT", "funding") == ["fetched"]
    argv = [*base, "BTC/USDT", "-t", "tick", "--start", "2024-05-31T09:00:00+00:00"]
    assert run(paths, *argv, "--end", "2024-05-31T10:00:00+00:00") == 0
    assert coverage(paths, "BTC/USDT", "tick") == ["fetched"]


def test_trades_need_a_start(paths, fake):
    with pytest.raises(InvalidInputError, match="--start"):
        run(paths, "ingest", "ccxt", "-e", "binance", "BTC/USDT", "-t", "tick")
    assert fake.requests == []


def test_a_timeframe_the_exchange_lacks_is_refused_before_any_request(paths, fake):
    with pytest.raises(UnsupportedRequestError, match="has no 2m data"):
        run(paths, "ingest", "ccxt", "-e", "binance", "BTC/USDT", "-t", "2m")
    assert fake.requests == []


def test_a_failing_symbol_exits_2_and_the_others_land(paths, fake, capsys, tmp_path):
    universe = tmp_path / "markets.txt"
    universe.write_text("# majors\nBTC/USDT\nBTCUSDT  # an exchange id, not a ccxt symbol\n")
    argv = ["ingest", "ccxt", "-e", "binance", "--symbols-file", str(universe)]
    assert run(paths, *argv, "--start", "2024-05-01", "--end", "2024-05-03") == 2
    errors = capsys.readouterr().err
    assert "failed BTCUSDT" in errors
    assert "did you mean BTC/USDT or BTC/USDT:USDT" in errors
    assert coverage(paths, "BTC/USDT", "1d") == ["fetched"]


def test_no_symbol_at_all_says_how_to_name_them(paths, fake):
    with pytest.raises(InvalidInputError, match="--symbols-file"):
        run(paths, "ingest", "ccxt", "--exchange", "binance")


def test_symbols_lists_the_markets_with_their_metadata(paths, fake, capsys):
    assert run(paths, "symbols", "ccxt:binance", "--type", "swap", "--quote", "USDT") == 0
    text = capsys.readouterr().out
    assert "Binance: 2 market(s)" in text
    assert "BTC/USDT:USDT" in text and "ETH/USDT:USDT" in text
    assert "2019-09-25" in text  # listed
    assert run(paths, "symbols", "ccxt_binance", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["symbol"] for r in rows] == [
        "BTC/USD:BTC",
        "BTC/USDT",
        "BTC/USDT:USDT",
        "BTC/USDT:USDT-240628",
        "ETH/BTC",
        "ETH/USDT",
        "ETH/USDT:USDT",
    ]
    assert rows[0]["contract_size"] == 100.0


def test_symbols_of_a_source_that_is_not_an_exchange_is_a_usage_error(paths, fake):
    with pytest.raises(InvalidInputError, match="ccxt:<exchange>"):
        run(paths, "symbols", "yfinance")


def test_the_commands_through_duckmarket_main(tmp_path, fake, monkeypatch, capsys):
    root = str(tmp_path / "data")
    argv = ["--data-dir", root, "ingest", "ccxt", "--exchange", "binance", "ETH/USDT"]
    assert cli.main([*argv, "-t", "4h", "--start", "2024-05-01", "--end", "2024-05-02"]) == 0
    assert "ccxt_binance 4h: 1 symbol(s), 6 rows written" in capsys.readouterr().out
    assert cli.main(["--data-dir", root, "symbols", "ccxt:binance", "--type", "future"]) == 0
    assert "BTC/USDT:USDT-240628" in capsys.readouterr().out
    assert cli.main([*argv, "-t", "2m"]) == 1  # a clear one-line error, no traceback
    assert "has no 2m data" in capsys.readouterr().err
    fake.queued = [fake.unreachable()]
    assert cli.main([*argv, "-t", "1h", "--start", "2024-05-01", "--end", "2024-05-02"]) == 4
    assert "cannot be reached" in capsys.readouterr().err
