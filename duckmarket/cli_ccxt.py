"""The ``duckmarket`` commands for crypto exchanges (through ccxt): parse, call, print.

* ``duckmarket ingest ccxt --exchange binance BTC/USDT ETH/USDT --timeframe 1m --start
  2024-01-01``: bars (any timeframe the exchange has), ``--timeframe tick`` for trades
  (the ticks dataset) or ``--timeframe funding`` for funding rates of perpetual swaps,
  fetched once like every source; ``--type swap`` reads ``BTC/USDT`` as the perpetual
  ``BTC/USDT:USDT``;
* ``duckmarket symbols ccxt:binance [--type swap] [--quote USDT] [--json]``: the
  exchange's active markets with their metadata.

:func:`add_ccxt_commands` adds both to the parser of :mod:`duckmarket.cli`; it prints with
the consoles of :mod:`duckmarket.console`, as the CLI does.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from rich.markup import escape
from rich.table import Table

from ingest.errors import InvalidInputError, UnsupportedRequestError

__all__ = ["add_ccxt_commands", "cmd_ingest_ccxt", "cmd_symbols"]

from .console import ingest_summary, out, progress, symbols_from

MARKET_TYPES = ("spot", "swap", "future")
_SOURCE = re.compile(r"ccxt[:_]([a-z0-9]+)")


def make_source(exchange: str) -> Any:  # -> CcxtSource; tests replace it
    from ingest.sources.ccxt import CcxtSource

    return CcxtSource(exchange)


def cmd_ingest_ccxt(args: argparse.Namespace) -> int:
    from ingest.manager import DataManager
    from ingest.timeframes import TICK, parse_timeframe

    symbols = symbols_from(args.symbols, args.symbols_file)
    if not symbols:
        raise InvalidInputError(
            "name the markets to fetch (duckmarket ingest ccxt --exchange binance BTC/USDT "
            "ETH/USDT) or give a file of them (--symbols-file markets.txt)"
        )
    timeframe = parse_timeframe(args.timeframe)
    if timeframe == TICK and args.start is None:
        raise InvalidInputError(
            "say where trades start (--start 2024-06-01T00:00): a busy market trades "
            "millions of times a day"
        )
    src = make_source(args.exchange)
    if not src.capabilities.supports(timeframe):  # refused before any request
        raise UnsupportedRequestError(
            f"{src.label} has no {timeframe} data through ccxt; it serves "
            f"{', '.join(src.capabilities.served) or 'nothing we store'}"
        )
    if args.type:
        symbols = src.resolve(symbols, args.type)
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


def cmd_symbols(args: argparse.Namespace) -> int:
    m = _SOURCE.fullmatch(args.source.strip().lower())
    if not m:
        raise InvalidInputError(
            f"{args.source!r}: symbols lists an exchange's markets; name it as "
            "ccxt:<exchange>, e.g. duckmarket symbols ccxt:binance"
        )
    src = make_source(m.group(1))
    rows = src.list_markets(args.type, args.quote, active_only=not args.all)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    table = Table(title=f"{src.label}: {len(rows)} market(s)", title_justify="left")
    columns = {
        "symbol": "symbol",
        "market_type": "type",
        "base": "base",
        "quote": "quote",
        "settle": "settle",
        "contract_size": "contract size",
        "tick_size": "tick size",
        "amount_step": "amount step",
        "min_amount": "min amount",
        "listed_at": "listed",
    }
    for key, title in columns.items():
        numeric = key in ("contract_size", "tick_size", "amount_step", "min_amount")
        table.add_column(
            title, justify="right" if numeric else "left", no_wrap=key in ("symbol", "listed_at")
        )
    for row in rows:
        cells = []
        for key in columns:
            v = row.get(key)
            if v is None:
                cells.append("-")
            elif key == "listed_at":
                cells.append(str(v)[:10])
            elif isinstance(v, float):
                cells.append(f"{v:g}")
            else:
                cells.append(str(v))
        if args.all and row.get("is_active") is False:
            cells[0] += " (inactive)"
        table.add_row(*(escape(c) for c in cells))
    out.print(table)
    return 0


def add_ccxt_commands(
    ingest_subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
    top_subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
) -> None:
    """Add ``ingest ccxt`` to the ingest sub-commands and ``symbols`` to the top level."""
    cc = ingest_subparsers.add_parser(
        "ccxt",
        help="crypto exchanges through ccxt: bars, trades, funding (needs the network)",
        description="Bars, trades (--timeframe tick) or funding rates (--timeframe "
        "funding) of markets of one exchange, fetched once: a re-run fetches only what the "
        "lake lacks. Markets are ccxt's unified symbols: BTC/USDT (spot), BTC/USDT:USDT "
        "(linear perpetual), BTC/USD:BTC (inverse). A --start before a market's listing "
        "fetches from the listing.",
    )
    cc.add_argument("symbols", nargs="*", metavar="SYMBOL", help="markets, e.g. BTC/USDT")
    cc.add_argument(
        "--exchange", "-e", required=True, help="a ccxt exchange id: binance, bybit, okx, ..."
    )
    cc.add_argument(
        "--symbols-file",
        metavar="FILE",
        help="symbols from a file: one per line, # comments, or a CSV's symbol column",
    )
    cc.add_argument(
        "--type",
        choices=MARKET_TYPES,
        help="read BTC/USDT as this market type's market (swap: BTC/USDT:USDT)",
    )
    cc.add_argument(
        "--timeframe",
        "-t",
        default="1d",
        help="a bar length the exchange has (1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w), tick for "
        "trades, funding for funding rates (default 1d)",
    )
    cc.add_argument("--start", help="first instant (UTC, ISO), inclusive")
    cc.add_argument("--end", help="last instant (UTC, ISO), exclusive; default now")
    cc.add_argument("--force-refresh", action="store_true", help="re-fetch held ranges too")
    cc.set_defaults(func=cmd_ingest_ccxt)

    sy = top_subparsers.add_parser(
        "symbols",
        help="list an exchange's markets (ccxt:binance) with their metadata",
        description="The active markets of an exchange with base, quote, type, contract "
        "size, tick size and amount step (needs the network). Markets you ingest are "
        "stored with this metadata in the lake's symbols dataset.",
    )
    sy.add_argument("source", metavar="SOURCE", help="ccxt:<exchange>, e.g. ccxt:binance")
    sy.add_argument("--type", choices=MARKET_TYPES, help="only markets of this type")
    sy.add_argument("--quote", help="only markets quoted in this currency, e.g. USDT")
    sy.add_argument("--all", action="store_true", help="inactive markets too")
    sy.add_argument("--json", action="store_true", help="machine-readable, for scripts")
    sy.set_defaults(func=cmd_symbols)
