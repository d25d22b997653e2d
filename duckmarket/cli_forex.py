"""The ``duckmarket`` commands for forex sources: parse, call, print.

* ``duckmarket ingest dukascopy EURUSD GBPUSD --timeframe tick|1m --start 2019-01-04``:
  Dukascopy's public files, bid/ask ticks (the ticks dataset) or 1m bars (mid OHLC with
  each side kept), fetched once like every source;
* ``duckmarket ingest oanda EUR_USD GBP_USD --timeframe 1m [--practice | --live]``: OANDA
  v20 candles (mid OHLC, bid/ask kept); the token from ``OANDA_TOKEN`` or
  ``~/.config/duckmarket/oanda.toml``.

:func:`add_forex_commands` adds both to the ``ingest`` subparsers of :mod:`duckmarket.cli`.
"""

from __future__ import annotations

import argparse
from typing import Any

from ingest.errors import InvalidInputError, UnsupportedRequestError

from .console import ingest_summary, progress, symbols_from

__all__ = ["add_forex_commands", "cmd_ingest_dukascopy", "cmd_ingest_oanda"]


def make_dukascopy() -> Any:  # -> DukascopySource; tests replace it
    from ingest.sources.dukascopy import DukascopySource

    return DukascopySource()


def make_oanda(practice: bool) -> Any:  # -> OandaSource; tests replace it
    from ingest.sources.oanda import OandaSource

    return OandaSource(practice=practice)


def _ingest(args: argparse.Namespace, src: Any, example: str) -> int:
    from ingest.manager import DataManager
    from ingest.timeframes import TICK, parse_timeframe

    symbols = symbols_from(args.symbols, args.symbols_file)
    if not symbols:
        raise InvalidInputError(
            f"name the instruments to fetch ({example}) or give a file of them "
            "(--symbols-file pairs.txt)"
        )
    timeframe = parse_timeframe(args.timeframe)
    if timeframe == TICK and args.start is None:
        raise InvalidInputError(
            "say where ticks start (--start 2024-06-03T00:00): a pair quotes tens of "
            "thousands of times an hour"
        )
    if not src.capabilities.supports(timeframe):  # refused before any request
        raise UnsupportedRequestError(
            f"{src.name} has no {timeframe} data; it serves {', '.join(src.capabilities.served)}"
        )
    dm = DataManager(args.paths)
    dm.add_source(src)
    with progress() as bar:
        task = bar.add_task(f"ingest {src.name} {timeframe}", total=len(symbols), symbol="")

        def tick(sym: str, i: int, n: int) -> None:
            bar.update(task, completed=i, symbol=sym)

        report = dm.ingest(
            symbols,
            timeframe,
            args.start,
            args.end,
            source=src.name,
            force_refresh=args.force_refresh,
            progress=tick,
        )
    return ingest_summary(src.name, report)


def cmd_ingest_dukascopy(args: argparse.Namespace) -> int:
    return _ingest(args, make_dukascopy(), "duckmarket ingest dukascopy EURUSD USDJPY")


def cmd_ingest_oanda(args: argparse.Namespace) -> int:
    return _ingest(args, make_oanda(not args.live), "duckmarket ingest oanda EUR_USD GBP_USD")


def _common(q: argparse.ArgumentParser, default_tf: str, help_tf: str) -> None:
    q.add_argument(
        "--symbols-file", metavar="FILE", help="instruments from a file: one per line, # comments"
    )
    q.add_argument("--timeframe", "-t", default=default_tf, help=help_tf)
    q.add_argument("--start", help="first date (UTC, ISO), inclusive")
    q.add_argument("--end", help="last date (UTC, ISO), exclusive; default now")
    q.add_argument("--force-refresh", action="store_true", help="re-fetch held ranges too")


def add_forex_commands(isub: Any) -> None:
    """Add ``ingest dukascopy`` and ``ingest oanda`` to the ``ingest`` subparsers."""
    du = isub.add_parser(
        "dukascopy", help="Dukascopy's public bid/ask ticks and 1m candles (needs the network)"
    )
    du.add_argument("symbols", nargs="*", metavar="SYMBOL", help="e.g. EURUSD USDJPY XAUUSD")
    _common(du, "1m", "tick (bid/ask quotes) or 1m (default 1m)")
    du.set_defaults(func=cmd_ingest_dukascopy)

    oa = isub.add_parser("oanda", help="OANDA v20 candles with bid/ask (needs a token)")
    oa.add_argument("symbols", nargs="*", metavar="INSTRUMENT", help="e.g. EUR_USD GBP_USD")
    _common(oa, "1m", "1m 2m 5m 15m 30m 1h 4h 1d 1w (default 1m)")
    host = oa.add_mutually_exclusive_group()
    host.add_argument(
        "--practice",
        dest="live",
        action="store_false",
        help="the fxPractice host (default)",
    )
    host.add_argument("--live", dest="live", action="store_true", help="the fxTrade host")
    oa.set_defaults(func=cmd_ingest_oanda, live=False)
