"""``duckmarket export``: parses arguments and calls :func:`hotpath.export` (nothing else)."""

from __future__ import annotations

import argparse

from .export import FORMATS, export
from .formats import PRICE_BASES


def register_cli(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``export`` command to the ``duckmarket`` CLI."""
    p = subparsers.add_parser(
        "export",
        help="export a mart or a SQL query to a memory-mappable file",
        description=(
            "Export a mart (data/marts/<mart>.parquet) or any SQL query yielding symbol and ts "
            "columns to one uncompressed Arrow IPC file sorted by (symbol, ts) with a symbol "
            "index, or to the 64-byte records64 layout. Marts are views in --sql. The file is "
            "written beside its target, renamed into place and recorded in the manifest."
        ),
    )
    p.add_argument("mart", nargs="?", help="mart name, e.g. bars_adjusted")
    p.add_argument("--sql", help="a query instead of a mart, e.g. 'select * from bars_adjusted'")
    p.add_argument("--symbols", nargs="+", metavar="SYMBOL", help="only these symbols")
    p.add_argument("--start", help="first instant, inclusive (ISO 8601; UTC unless stated)")
    p.add_argument("--end", help="last instant, exclusive (ISO 8601; UTC unless stated)")
    p.add_argument("--format", choices=list(FORMATS), default="arrow", help="default: arrow")
    p.add_argument("--columns", nargs="+", metavar="COLUMN", help="arrow: only these columns")
    p.add_argument(
        "--prices",
        choices=list(PRICE_BASES),
        help="records64 price basis: raw, split-adjusted or total-return (default: total)",
    )
    p.add_argument("--out", help="output file or directory (default: data/export/<mart>.<format>)")
    p.add_argument(
        "--no-checksum", action="store_true", help="skip the SHA-256 recorded in the manifest"
    )
    p.set_defaults(func=handle_export)


def handle_export(args: argparse.Namespace) -> int:
    """Run ``duckmarket export``; DuckmarketError propagates to the CLI, which prints it."""
    result = export(
        args.mart,
        sql=args.sql,
        out=args.out,
        format=args.format,
        symbols=args.symbols,
        start=args.start,
        end=args.end,
        columns=args.columns,
        prices=args.prices,
        data_dir=args.paths,
        checksum=not args.no_checksum,
    )
    print(
        f"exported {result.rows:,} rows of {len(result.symbols)} symbol(s) to {result.path} "
        f"({result.format}, {result.bytes / 1e6:,.1f} MB) in {result.seconds:.2f} s"
    )
    if result.missing_symbols:
        print(f"no rows for: {' '.join(result.missing_symbols)}")
    return 0
