"""The raw lake's datasets: columns, keys, partitioning and symbol encoding.

Raw data is stored as traded and never adjusted. Every timestamp is UTC; ``ts`` is the
bar's open time (for daily and weekly bars, the session date at 00:00 UTC).

Partition layout (hive style, partition columns live in the path, not in the files)::

    bars/source=S/timeframe=TF/symbol=SYM/period=P/data.parquet
        P = calendar year (``2023``) for intraday timeframes, ``all`` for 1d and 1w
    ticks/source=S/symbol=SYM/period=YYYY-MM/data.parquet
    funding_rates/source=S/symbol=SYM/data.parquet
    corporate_actions/source=S/symbol=SYM/data.parquet
    symbols/source=S/data.parquet
    rejects/dataset=D/source=S/data.parquet      rows refused at ingest, with a reason
    backtest_runs/run_id=R/data.parquet           one row per recorded backtest (written last)
    signals|fills|trades|equity/run_id=R/data.parquet   a run's results (ingest/backtests.py)

A point query (one symbol, one month) opens one file; a full scan opens one file per
symbol and year of intraday bars and one per symbol of daily bars (see the README for the
measurement behind the yearly granularity).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from .errors import InvalidSymbolError
from .timeframes import is_intraday

TS_TYPE = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Dataset:
    name: str
    #: partition columns, outermost first (they are not stored inside the files)
    partition_by: tuple[str, ...]
    #: key columns stored inside the files; with the partition columns they form the key
    file_key: tuple[str, ...]
    #: required columns stored inside the files, in order
    schema: pa.Schema
    #: column used for ordering rows inside a file and for min/max in the manifest
    order_by: str


BARS = Dataset(
    name="bars",
    partition_by=("source", "timeframe", "symbol", "period"),
    file_key=("ts",),
    schema=pa.schema(
        [
            ("ts", TS_TYPE),
            ("open", pa.float64()),
            ("high", pa.float64()),
            ("low", pa.float64()),
            ("close", pa.float64()),
            ("volume", pa.float64()),
            ("is_final", pa.bool_()),
            ("ingested_at", TS_TYPE),
        ]
    ),
    order_by="ts",
)

TICKS = Dataset(
    name="ticks",
    partition_by=("source", "symbol", "period"),
    file_key=("ts", "seq"),
    schema=pa.schema(
        [
            ("ts", TS_TYPE),
            ("seq", pa.int64()),
            ("price", pa.float64()),
            ("size", pa.float64()),
            ("side", pa.string()),
            ("venue", pa.string()),
            ("ingested_at", TS_TYPE),
        ]
    ),
    order_by="ts",
)

FUNDING_RATES = Dataset(
    name="funding_rates",
    partition_by=("source", "symbol"),
    file_key=("ts",),
    schema=pa.schema(
        [
            ("ts", TS_TYPE),  # when the funding was paid (exchange time, UTC)
            ("rate", pa.float64()),  # fraction of the position's notional: 0.0001 = 1 bp
            ("interval_hours", pa.float64()),  # time since the previous payment (8.0)
            ("ingested_at", TS_TYPE),
        ]
    ),
    order_by="ts",
)

CORPORATE_ACTIONS = Dataset(
    name="corporate_actions",
    partition_by=("source", "symbol"),
    file_key=("ex_date", "action_type"),
    schema=pa.schema(
        [
            ("ex_date", pa.date32()),
            ("action_type", pa.string()),  # 'split' | 'dividend'
            ("split_ratio", pa.float64()),  # new shares per old: 4.0 = 4-for-1
            ("cash_amount", pa.float64()),  # per share, as-traded basis
            ("currency", pa.string()),
            ("ingested_at", TS_TYPE),
        ]
    ),
    order_by="ex_date",
)

SYMBOLS = Dataset(
    name="symbols",
    partition_by=("source",),
    file_key=("symbol",),
    schema=pa.schema(
        [
            ("symbol", pa.string()),
            ("name", pa.string()),
            ("asset_class", pa.string()),  # equity | etf | index | crypto | fx | future
            ("exchange", pa.string()),  # MIC, e.g. XNYS
            ("currency", pa.string()),
            ("timezone", pa.string()),
            ("calendar", pa.string()),  # exchange_calendars name, '24/7' or 'FX'
            ("ingested_at", TS_TYPE),
        ]
    ),
    order_by="symbol",
)

REJECTS = Dataset(
    name="rejects",
    partition_by=("dataset", "source"),
    file_key=("symbol", "key", "reason"),
    schema=pa.schema(
        [
            ("symbol", pa.string()),
            ("timeframe", pa.string()),
            ("key", pa.string()),  # the row's key as text (its ts, or ts/seq, or ex_date)
            ("reason", pa.string()),
            ("row", pa.string()),  # the offending row as JSON
            ("rejected_at", TS_TYPE),
        ]
    ),
    order_by="rejected_at",
)

# --- backtests (written by ingest/backtests.py; a run is visible once its runs row is) ---

BACKTEST_RUNS = Dataset(
    name="backtest_runs",
    partition_by=("run_id",),
    file_key=("strategy",),  # one row per file
    schema=pa.schema(
        [
            ("strategy", pa.string()),
            ("universe", pa.string()),  # the pair or universe traded, e.g. 'KO/PEP'
            ("start_ts", TS_TYPE),  # first equity period
            ("end_ts", TS_TYPE),  # last equity period
            ("config", pa.string()),  # canonical JSON (sorted keys, no spaces)
            ("engine", pa.string()),  # 'vectorbt', 'backtesting.py', 'duckmarket', ...
            ("code_version", pa.string()),
            ("lake_state", pa.string()),  # SHA-256 of the (path, sha256) of the files read
            ("lake_file_ids", pa.string()),  # JSON list of the data_files ids read
            ("build_run_id", pa.int64()),  # the warehouse build read, if any
            ("periods_per_year", pa.float64()),
            ("results_sha256", pa.string()),  # of signals, fills, trades and equity
            ("created_at", TS_TYPE),
        ]
    ),
    order_by="created_at",
)

SIGNALS = Dataset(
    name="signals",
    partition_by=("run_id",),
    file_key=("signal_id",),
    schema=pa.schema(
        [
            ("signal_id", pa.int64()),
            ("ts", TS_TYPE),
            ("direction", pa.string()),  # long_spread | short_spread | flat (or long/short)
            ("legs", pa.string()),  # JSON list of symbols, e.g. '["KO","PEP"]'
            ("hedge_ratio", pa.float64()),
            ("size", pa.float64()),
            ("inputs_as_of", TS_TYPE),  # latest ts of any input the signal used
        ]
    ),
    order_by="ts",
)

FILLS = Dataset(
    name="fills",
    partition_by=("run_id",),
    file_key=("fill_id",),
    schema=pa.schema(
        [
            ("fill_id", pa.int64()),
            ("signal_id", pa.int64()),
            ("ts", TS_TYPE),
            ("symbol", pa.string()),
            ("side", pa.string()),  # buy | sell
            ("quantity", pa.float64()),  # > 0; the side gives the sign
            ("price", pa.float64()),
            ("commission", pa.float64()),
            ("slippage_bps", pa.float64()),
        ]
    ),
    order_by="ts",
)

TRADES = Dataset(
    name="trades",
    partition_by=("run_id",),
    file_key=("trade_id",),
    schema=pa.schema(
        [
            ("trade_id", pa.int64()),
            ("symbol", pa.string()),
            ("direction", pa.string()),  # long | short
            ("entry_ts", TS_TYPE),
            ("exit_ts", TS_TYPE),
            ("entry_price", pa.float64()),  # quantity-weighted
            ("exit_price", pa.float64()),
            ("quantity", pa.float64()),
            ("commission", pa.float64()),
            ("pnl", pa.float64()),  # net of commission
            ("trade_return", pa.float64()),  # pnl / entry notional
            ("bars_held", pa.int64()),
        ]
    ),
    order_by="entry_ts",
)

EQUITY = Dataset(
    name="equity",
    partition_by=("run_id",),
    file_key=("ts",),
    schema=pa.schema(
        [
            ("ts", TS_TYPE),
            ("equity", pa.float64()),
            ("cash", pa.float64()),
            ("positions_value", pa.float64()),
            ("gross_exposure", pa.float64()),  # sum |position value| / equity
            ("net_exposure", pa.float64()),  # sum position value / equity
            ("period_return", pa.float64()),
        ]
    ),
    order_by="ts",
)

#: a run's result tables, written before its ``backtest_runs`` row
BACKTEST_RESULTS = (SIGNALS, FILLS, TRADES, EQUITY)

#: what a source hands the writer: bars without the writer's own ``ingested_at``
SOURCE_BARS_SCHEMA = pa.schema([f for f in BARS.schema if f.name != "ingested_at"])
#: funding rates as a source hands them over
SOURCE_FUNDING_SCHEMA = pa.schema([f for f in FUNDING_RATES.schema if f.name != "ingested_at"])
#: corporate actions as a source hands them over
SOURCE_ACTIONS_SCHEMA = pa.schema([f for f in CORPORATE_ACTIONS.schema if f.name != "ingested_at"])

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        BARS,
        TICKS,
        FUNDING_RATES,
        CORPORATE_ACTIONS,
        SYMBOLS,
        REJECTS,
        BACKTEST_RUNS,
        *BACKTEST_RESULTS,
    )
}

ACTION_TYPES = ("split", "dividend")

#: columns that live in partition paths; a batch that carries them is refused
PARTITION_COLUMNS = frozenset({"source", "symbol", "timeframe", "period", "dataset"})
#: what a run id looks like in a path: the first 20 hex digits of a SHA-256
RUN_ID = re.compile(r"[0-9a-f]{20}")
#: what an extra vendor column may be called (vwap, trade_count, adj_close, ...)
EXTRA_COLUMN_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


# --- symbols in paths -------------------------------------------------------------------

_SAFE = re.compile(r"[A-Za-z0-9_.\-]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_SYMBOL_LENGTH = 64


def _symbol_problem(s: str) -> str | None:
    """Why ``s`` cannot be a symbol in the lake, or None."""
    if not s:
        return "symbol is empty; pass a ticker such as AAPL"
    if len(s) > MAX_SYMBOL_LENGTH:
        return f"symbol {s[:20]!r}... is longer than {MAX_SYMBOL_LENGTH}"
    if _CONTROL.search(s) or any(c.isspace() for c in s):
        return f"symbol {s!r} contains white space or control characters"
    if ".." in s or s.startswith(("/", "\\", ".")) or "\\" in s:
        return (
            f"symbol {s!r} looks like a file path, not a ticker; "
            "tickers may contain letters, digits and . - _ ^ = / : but not '..'"
        )
    return None


def validate_symbol(symbol: str) -> str:
    """Return ``symbol`` stripped, or raise :class:`InvalidSymbolError` saying why.

    Called once, where a symbol enters (the DataManager's methods, the server's routes);
    the layers below take the symbol as given. Any printable ticker is accepted (``^GSPC``,
    ``BTC/USDT``, ``EURUSD=X``, ``BRK.B``); what is refused is what only a path trick or a
    typo produces.
    """
    if not isinstance(symbol, str):
        raise InvalidSymbolError(f"symbol must be text, got {type(symbol).__name__}")
    s = symbol.strip()
    problem = _symbol_problem(s)
    if problem:
        raise InvalidSymbolError(problem)
    return s


def encode_symbol(symbol: str) -> str:
    """Percent-encode a symbol for a hive path segment, as DuckDB's reader decodes it.

    The lake's guard, not a second validation: whatever reached the storage layer without
    passing :func:`validate_symbol` (a direct ``Lake`` call) still cannot name a path
    outside the lake, so the symbol is refused here rather than normalised."""
    problem = (
        f"symbol must be text, got {type(symbol).__name__}"
        if not isinstance(symbol, str)
        else _symbol_problem(symbol)
    )
    if problem:
        raise InvalidSymbolError(problem)
    return "".join(
        ch if _SAFE.fullmatch(ch) else "".join(f"%{b:02X}" for b in ch.encode("utf-8"))
        for ch in symbol
    )


def decode_symbol(segment: str) -> str:
    from urllib.parse import unquote

    return unquote(segment)


def validate_name(kind: str, value: str) -> str:
    """Source and timeframe names: short lowercase identifiers."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_\-]{0,31}", value or ""):
        raise InvalidSymbolError(f"{kind} {value!r} must be a short lowercase name like 'yfinance'")
    return value


def bar_period(timeframe: str, ts: datetime) -> str:
    return str(ts.year) if is_intraday(timeframe) else "all"


def partition_dir(dataset: Dataset, values: dict[str, str]) -> str:
    """Relative directory of a partition: ``bars/source=x/timeframe=1m/symbol=A/period=2023``."""
    parts = [dataset.name]
    for col in dataset.partition_by:
        v = values[col]
        if col == "symbol":
            v = encode_symbol(v)
        elif col in ("source", "timeframe", "dataset"):
            v = validate_name(col, v)
        elif not re.fullmatch(r"[A-Za-z0-9\-]+", v):
            raise InvalidSymbolError(f"bad partition value {col}={v!r}")
        parts.append(f"{col}={v}")
    return "/".join(parts)


DATA_FILE = "data.parquet"
