"""``duckmarket backtests list|compare``: parse, call the warehouse, print.

:func:`add_backtest_commands` adds ``backtests`` to the top-level subparsers of
``duckmarket.cli.build_parser``; handlers read ``args.paths`` (the data root) as every
command does and raise :class:`ingest.errors.DuckmarketError` for what a user can get
wrong. Runs are recorded from Python with ``ingest.backtests.record_backtest``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    import polars as pl

out = Console(width=None if sys.stdout.isatty() else 160)

__all__ = ["add_backtest_commands"]

#: (column, header, format) of the metrics shown in a table (--json has them all)
SHOWN = (
    ("total_return", "return", "{:.2%}"),
    ("cagr", "CAGR", "{:.2%}"),
    ("sharpe", "Sharpe", "{:.2f}"),
    ("sortino", "Sortino", "{:.2f}"),
    ("max_drawdown", "max DD", "{:.2%}"),
    ("n_trades", "trades", "{:d}"),
    ("hit_rate_trades", "hit", "{:.0%}"),
    ("profit_factor", "PF", "{:.2f}"),
    ("exposure", "exposure", "{:.0%}"),
    ("turnover", "turnover/yr", "{:.1f}"),
)


def _fmt(value: object, pattern: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return pattern.format(value)


def _json_rows(table: pl.DataFrame) -> list[dict[str, object]]:
    rows = table.to_dicts()
    for r in rows:
        for k, v in r.items():
            if isinstance(v, float) and not math.isfinite(v):
                r[k] = None if math.isnan(v) else ("inf" if v > 0 else "-inf")
            elif hasattr(v, "isoformat"):
                r[k] = v.isoformat()
    return rows


def _print_metrics(table: pl.DataFrame) -> None:
    t = Table(box=box.SIMPLE_HEAD)
    for col in ("run", "strategy", "engine"):
        t.add_column(col, no_wrap=True)
    for _col, header, _f in SHOWN:
        t.add_column(header, justify="right", no_wrap=True)
    for r in table.iter_rows(named=True):
        t.add_row(
            r["run_id"][:12],
            escape(r["strategy"]),
            escape(r["engine"]),
            *(_fmt(r[col], f) for col, _h, f in SHOWN),
        )
    out.print(t)


def cmd_backtests_list(args: argparse.Namespace) -> int:
    from warehouse.backtest_metrics import run_metrics

    table = run_metrics(args.paths, risk_free=args.risk_free, include_reference=True)
    if args.json:
        print(json.dumps(_json_rows(table), indent=1))
        return 0
    if table.height == 0:
        out.print(
            "no backtests yet: record one from Python with ingest.backtests.record_backtest, "
            "or build the warehouse for its reference pairs runs",
            highlight=False,
        )
        return 0
    _print_metrics(table)
    return 0


def cmd_backtests_compare(args: argparse.Namespace) -> int:
    from warehouse.backtest_metrics import compare_runs

    table, diff = compare_runs(
        args.paths, args.run_ids, risk_free=args.risk_free, include_reference=True
    )
    if args.json:
        print(json.dumps({"runs": _json_rows(table), "config_differences": diff}, indent=1))
        return 0
    _print_metrics(table)
    if not diff:
        out.print("the runs' configurations are identical", highlight=False)
        return 0
    t = Table(title="configuration differences")
    t.add_column("key")
    ids = table["run_id"].to_list()
    for rid in ids:
        t.add_column(rid[:12])
    for key, values in diff.items():
        t.add_row(escape(key), *(escape(json.dumps(values.get(rid))) for rid in ids))
    out.print(t)
    return 0


def add_backtest_commands(sub: argparse._SubParsersAction) -> None:
    """``backtests list`` and ``backtests compare RUN...`` under the top-level command."""
    bt = sub.add_parser("backtests", help="recorded backtest runs, their metrics and configs")
    bsub = bt.add_subparsers(dest="backtests_command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        p.add_argument(
            "--risk-free",
            type=float,
            default=0.0,
            metavar="RATE",
            help="annual risk-free rate for the Sharpe ratio (default 0)",
        )

    ls = bsub.add_parser(
        "list",
        help="every recorded run and the warehouse's reference pairs runs, with their "
        "metrics, oldest first",
    )
    common(ls)
    ls.set_defaults(func=cmd_backtests_list)
    cmp = bsub.add_parser("compare", help="runs side by side, and how their configs differ")
    cmp.add_argument("run_ids", nargs="*", metavar="RUN", help="run ids or unique prefixes")
    common(cmp)
    cmp.set_defaults(func=cmd_backtests_compare)
