"""``duckmarket ingest dukascopy`` and ``ingest oanda``, against the offline fakes."""

from __future__ import annotations

import argparse

import pytest

from duckmarket import cli_forex
from duckmarket.cli_forex import add_forex_commands
from ingest.errors import InvalidInputError, UnsupportedRequestError
from ingest.manifest import Manifest
from ingest.sources.dukascopy import tick_path

from .test_dukascopy_source import FakeFeed, d, hour_of_ticks
from .test_oanda_source import FakeOanda


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="duckmarket")
    sub = p.add_subparsers(dest="command", required=True)
    add_forex_commands(sub.add_parser("ingest").add_subparsers(dest="source", required=True))
    return p


def run(paths, *argv: str) -> int:
    args = parser().parse_args(argv)
    args.paths = paths
    return args.func(args)


@pytest.fixture
def feed(monkeypatch) -> FakeFeed:
    feed = FakeFeed()
    monkeypatch.setattr(cli_forex, "make_dukascopy", feed.source)
    return feed


@pytest.fixture
def oanda(monkeypatch) -> FakeOanda:
    fake = FakeOanda()
    hosts: list[bool] = []
    fake.hosts = hosts  # type: ignore[attr-defined]

    def make(practice: bool):
        hosts.append(practice)
        return fake.source(practice=practice)

    monkeypatch.setattr(cli_forex, "make_oanda", make)
    return fake


def test_the_options_parse():
    a = parser().parse_args(["ingest", "dukascopy", "EURUSD", "USDJPY", "-t", "tick"])
    assert (a.symbols, a.timeframe, a.func) == (
        ["EURUSD", "USDJPY"],
        "tick",
        cli_forex.cmd_ingest_dukascopy,
    )
    assert parser().parse_args(["ingest", "oanda", "EUR_USD"]).live is False
    assert parser().parse_args(["ingest", "oanda", "EUR_USD", "--live"]).live is True
    assert parser().parse_args(["ingest", "oanda", "EUR_USD", "--practice"]).live is False
    with pytest.raises(SystemExit):
        parser().parse_args(["ingest", "oanda", "EUR_USD", "--live", "--practice"])


def test_dukascopy_ticks_land_and_the_same_command_asks_nothing(paths, feed, capsys):
    feed.files[tick_path("EURUSD", d(2019, 1, 4, 0))] = hour_of_ticks(d(2019, 1, 4, 0))
    argv = ["ingest", "dukascopy", "EURUSD", "-t", "tick"]
    argv += ["--start", "2019-01-04T00:00", "--end", "2019-01-04T02:00"]
    assert run(paths, *argv) == 0
    assert "dukascopy tick" in capsys.readouterr().out
    n = len(feed.requests)
    assert n == 2
    assert run(paths, *argv) == 0
    assert len(feed.requests) == n
    with Manifest(paths.manifest) as m:
        assert m.coverage("dukascopy", "EURUSD", "tick")


def test_dukascopy_ticks_need_a_start_and_a_timeframe_it_serves(paths, feed):
    with pytest.raises(InvalidInputError, match="--start"):
        run(paths, "ingest", "dukascopy", "EURUSD", "-t", "tick")
    with pytest.raises(UnsupportedRequestError, match="serves 1m, tick"):
        run(paths, "ingest", "dukascopy", "EURUSD", "-t", "1h", "--start", "2019-01-04")
    with pytest.raises(InvalidInputError, match="name the instruments"):
        run(paths, "ingest", "dukascopy")
    assert feed.requests == []


def test_oanda_lands_bars_on_the_host_asked_for(paths, oanda):
    argv = ["ingest", "oanda", "EUR_USD", "-t", "1h", "--start", "2024-05-01"]
    assert run(paths, *argv, "--end", "2024-05-02", "--live") == 0
    assert oanda.hosts == [False]
    assert oanda.requests[0].url.host == "api-fxtrade.oanda.com"
    assert run(paths, *argv, "--end", "2024-05-03") == 0
    assert oanda.hosts == [False, True]
