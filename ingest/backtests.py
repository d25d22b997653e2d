"""Recording backtests from any engine into the lake: runs, signals, fills, trades, equity.

>>> from ingest.backtests import record_backtest
>>> run = record_backtest(                                                 # doctest: +SKIP
...     "data", strategy="pairs_z", config={"entry": 2.0, "exit": 0.0},
...     engine="notebook", fills=fills_df, equity=equity_df, universe="KO/PEP")
>>> run.run_id, run.created                                                # doctest: +SKIP
('3f1c...', True)

Runs are immutable. ``run_id`` is the first 20 hex digits of the SHA-256 of the strategy,
the configuration as canonical JSON (sorted keys, no spaces), the engine and the lake
state read (the SHA-256 of the sorted (path, sha256) of the live lake files the run read):
the same configuration on the same data gives the same run_id, and recording it again is
a no-op (recording *different* results under the same run_id is refused).

Atomicity: each table is one Parquet file per run (``<table>/run_id=R/data.parquet``)
written by the lake's atomic swap and registered in the manifest. The result tables are
written first and the ``backtest_runs`` row last, so a run exists only once its runs row
does; readers (``read_runs``, ``read_run_table`` and the dbt staging models) see only
registered runs. Files a killed recording left behind are replaced when it is re-run.

Input frames (polars or pandas; a pandas index such as vectorbt's DatetimeIndex is reset
into a column) are renamed with a column mapping ``{our name: their name}``; timestamps
must be timezone-aware (``df.tz_localize("UTC")``); naive ones are refused.

fills: ``ts, symbol, side ('buy'/'sell', any case), quantity (> 0, or signed with no side
column), price`` required; ``commission, slippage_bps, signal_id, fill_id`` optional.
equity: ``ts, equity`` required; ``cash, positions_value, gross_exposure, net_exposure,
period_return`` optional (cash is derived from ``initial_cash`` and the fills, positions
value as equity - cash, net exposure as positions value / equity and gross as its absolute
value -- exact only for one-sided books, so pass both exposures for a long/short book).
signals: ``ts, direction`` required; ``signal_id, legs, hedge_ratio, size,
inputs_as_of`` optional.

vectorbt (``pf = vbt.Portfolio.from_signals(...)``, price columns named by symbol, several
symbols as one portfolio with ``cash_sharing=True`` so that ``pf.value()`` is one curve)::

    fills = pf.orders.records_readable          # one row per order fill
    fill_columns = VECTORBT_FILLS               # Timestamp->ts, Column->symbol, Size->
                                                # quantity, Price->price, Fees->commission,
                                                # Side->side, Order Id->fill_id
    equity = pd.DataFrame({"equity": pf.value(), "cash": pf.cash(),
                           "positions_value": pf.asset_value()})
    equity_columns = {"ts": "Date"}             # the index becomes a column: ``ts`` when
                                                # unnamed, else map its name (here Date)

backtesting.py (``stats = Backtest(...).run()``): it keeps trades, not fills; turn each
trade into its entry and exit fills with :func:`fills_from_round_trips`::

    fills = fills_from_round_trips(stats._trades, symbol="KO",
                                   columns=BACKTESTING_PY_TRADES)  # EntryTime, ExitTime,
                                                # Size (signed), EntryPrice, ExitPrice
    equity = stats._equity_curve[["Equity"]]    # its DatetimeIndex becomes ``ts``
    equity_columns = {"equity": "Equity"}       # cash derived from initial_cash and fills

Round-trip trades are derived from fills per symbol: a trade opens when the position
leaves zero and closes when it returns to zero (a fill that crosses zero closes one trade
and opens the next, its commission split in proportion). Entry and exit prices are
quantity-weighted, ``pnl`` is net of commission, ``trade_return = pnl / entry notional``
and ``bars_held`` counts the equity periods from entry (inclusive) to exit (exclusive).
A position still open at the end is not a trade.

Validation fails with one line naming the first offending row: a fill at or before its
signal, equity that is not cash + positions value within ``tolerance`` (relative to
max(1, |equity|)), unsorted or duplicated equity timestamps, non-positive prices or
quantities, unknown sides, naive timestamps.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from .errors import InvalidInputError
from .lake import Lake, _order_columns, _read_live
from .paths import DataPaths
from .schema import (
    BACKTEST_RESULTS,
    BACKTEST_RUNS,
    EQUITY,
    FILLS,
    RUN_ID,
    SIGNALS,
    TRADES,
)

#: lake datasets whose files a run's data state is taken from by default
INPUT_DATASETS = ("bars", "corporate_actions", "funding_rates", "symbols")

#: ``pf.orders.records_readable`` of vectorbt
VECTORBT_FILLS: dict[str, str] = {
    "fill_id": "Order Id",
    "ts": "Timestamp",
    "symbol": "Column",
    "quantity": "Size",
    "price": "Price",
    "commission": "Fees",
    "side": "Side",
}
#: ``stats._trades`` of backtesting.py, for :func:`fills_from_round_trips`
BACKTESTING_PY_TRADES: dict[str, str] = {
    "entry_ts": "EntryTime",
    "exit_ts": "ExitTime",
    "quantity": "Size",
    "entry_price": "EntryPrice",
    "exit_price": "ExitPrice",
}

FILL_COLUMNS = FILLS.schema.names
EQUITY_COLUMNS = EQUITY.schema.names
SIGNAL_COLUMNS = SIGNALS.schema.names


@dataclass(frozen=True)
class RecordedRun:
    run_id: str
    #: False when the same run was already recorded (nothing was written)
    created: bool
    trades: int
    fills: int
    periods: int


# --- the public calls -------------------------------------------------------------------


def run_id_for(strategy: str, config: Mapping[str, Any], engine: str, lake_state: str) -> str:
    """The id of a run: a hash of what determines it, never of when it ran."""
    doc = json.dumps(
        {
            "strategy": strategy,
            "config": canonical_config(config),
            "engine": engine,
            "lake_state": lake_state,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(doc.encode()).hexdigest()[:20]


def canonical_config(config: Mapping[str, Any]) -> str:
    """``config`` as canonical JSON: sorted keys, no spaces, NaN refused."""
    try:
        return json.dumps(
            config, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"backtest config must be plain JSON (dicts, lists, str, finite numbers): {exc}"
        ) from None


def lake_state(
    lake: Lake,
    *,
    symbols: Sequence[str] | None = None,
    datasets: Sequence[str] = INPUT_DATASETS,
    file_ids: Sequence[int] | None = None,
) -> tuple[str, list[int]]:
    """(SHA-256 of the sorted (path, sha256) of the live files read, their file ids).

    By default every live file of ``datasets``; ``symbols`` narrows it to those symbols'
    files (and the per-source ``symbols`` files); ``file_ids`` names the files exactly."""
    files = [f for d in datasets for f in lake.manifest.live_files(d)]
    if symbols is not None:
        wanted = set(symbols)
        files = [f for f in files if f.symbol is None or f.symbol in wanted]
    if file_ids is not None:
        ids = set(file_ids)
        files = [f for f in lake.manifest.live_files() if f.file_id in ids]
        missing = ids - {f.file_id for f in files}
        if missing:
            raise InvalidInputError(
                f"lake files {sorted(missing)} are not live in the manifest; "
                "pass the ids of files the run actually read"
            )
    files.sort(key=lambda f: f.path)
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.path}\0{f.sha256}\n".encode())
    return h.hexdigest(), [f.file_id for f in files]


def record_backtest(
    data: Lake | DataPaths | str | os.PathLike[str] | None,
    *,
    strategy: str,
    config: Mapping[str, Any],
    engine: str,
    fills: Any,
    equity: Any,
    signals: Any = None,
    universe: str | Sequence[str] | None = None,
    fill_columns: Mapping[str, str] | None = None,
    equity_columns: Mapping[str, str] | None = None,
    signal_columns: Mapping[str, str] | None = None,
    initial_cash: float | None = None,
    periods_per_year: float = 252.0,
    code_version: str | None = None,
    lake_files: Sequence[int] | None = None,
    build_run_id: int | None = None,
    tolerance: float = 1e-6,
    created_at: datetime | None = None,
) -> RecordedRun:
    """Validate a run's fills, equity and signals, derive its trades, write it atomically.

    ``data`` is a :class:`Lake` or a data root. The run's lake state is taken from the
    live files of ``universe``'s symbols (all input files without one) unless
    ``lake_files`` names them. See the module docstring for columns and mappings."""
    if not strategy or not engine:
        raise InvalidInputError("record_backtest needs a strategy name and an engine name")
    own = not isinstance(data, Lake)
    lake = Lake(data) if own else data
    assert isinstance(lake, Lake)
    try:
        symbols = _universe_symbols(universe)
        fills_t = prepare_fills(fills, fill_columns)
        signals_t = prepare_signals(signals, signal_columns)
        equity_t = prepare_equity(equity, equity_columns, fills_t, initial_cash, tolerance)
        check_fills_after_signals(fills_t, signals_t)
        trades_t = derive_trades(fills_t, equity_t.column("ts"))
        results = {
            SIGNALS.name: signals_t,
            FILLS.name: fills_t,
            TRADES.name: trades_t,
            EQUITY.name: equity_t,
        }
        state, file_ids = lake_state(
            lake,
            symbols=symbols if lake_files is None else None,
            file_ids=lake_files,
        )
        config_json = canonical_config(config)
        run_id = run_id_for(strategy, config, engine, state)
        digest = _results_digest(results)
        ts = equity_t.column("ts")
        runs_row = pa.table(
            {
                "strategy": [strategy],
                "universe": ["/".join(symbols) if symbols else None],
                "start_ts": pa.array([ts[0].as_py() if len(ts) else None], ts.type),
                "end_ts": pa.array([ts[-1].as_py() if len(ts) else None], ts.type),
                "config": [config_json],
                "engine": [engine],
                "code_version": [code_version],
                "lake_state": [state],
                "lake_file_ids": [json.dumps(file_ids)],
                "build_run_id": pa.array([build_run_id], pa.int64()),
                "periods_per_year": [float(periods_per_year)],
                "results_sha256": [digest],
                "created_at": pa.array([created_at or datetime.now(UTC)], ts.type),
            },
            schema=BACKTEST_RUNS.schema,
        )
        with lake.writer():
            existing = _read_live(lake.file_path(BACKTEST_RUNS, {"run_id": run_id}))
            if existing is not None and existing.num_rows:
                if existing.column("results_sha256")[0].as_py() != digest:
                    raise InvalidInputError(
                        f"run {run_id} is already recorded with different results; runs are "
                        "immutable: change the config (e.g. a 'seed' or 'note' key) for a new run"
                    )
                return RecordedRun(
                    run_id, False, trades_t.num_rows, fills_t.num_rows, equity_t.num_rows
                )
            _remove_unregistered(lake, run_id)
            for dataset in BACKTEST_RESULTS:
                lake.upsert_partition(dataset, {"run_id": run_id}, results[dataset.name])
            lake.upsert_partition(BACKTEST_RUNS, {"run_id": run_id}, runs_row)  # last
        return RecordedRun(run_id, True, trades_t.num_rows, fills_t.num_rows, equity_t.num_rows)
    finally:
        if own:
            lake.close()


def read_runs(data: Lake | DataPaths | str | os.PathLike[str] | None) -> pl.DataFrame:
    """Every registered run, one row each, with its ``run_id``, oldest first."""
    lake, own = _open(data)
    try:
        frames = []
        for f in lake.manifest.live_files(BACKTEST_RUNS.name):
            t = _read_live(lake.root / f.path)
            if t is not None:
                run_id = f.path.split("/")[1].split("=", 1)[1]
                df = pl.from_arrow(t)
                assert isinstance(df, pl.DataFrame)
                frames.append(df.with_columns(pl.lit(run_id).alias("run_id")))
        if not frames:
            return pl.DataFrame(schema={"run_id": pl.String})
        return pl.concat(frames).select("run_id", pl.exclude("run_id")).sort("created_at")
    finally:
        if own:
            lake.close()


def read_run_table(
    data: Lake | DataPaths | str | os.PathLike[str] | None, table: str, run_id: str
) -> pl.DataFrame:
    """One result table (signals, fills, trades, equity) of a registered run."""
    datasets = {d.name: d for d in BACKTEST_RESULTS}
    if table not in datasets:
        raise InvalidInputError(f"unknown backtest table {table!r}; use one of {sorted(datasets)}")
    if not RUN_ID.fullmatch(run_id or ""):
        raise InvalidInputError(f"{run_id!r} is not a run id (20 lowercase hex digits)")
    lake, own = _open(data)
    try:
        if _read_live(lake.file_path(BACKTEST_RUNS, {"run_id": run_id})) is None:
            raise InvalidInputError(f"no recorded run {run_id}; list runs with read_runs()")
        t = _read_live(lake.file_path(datasets[table], {"run_id": run_id}))
        df = pl.from_arrow(t if t is not None else datasets[table].schema.empty_table())
        assert isinstance(df, pl.DataFrame)
        return df
    finally:
        if own:
            lake.close()


def fills_from_round_trips(
    trades: Any, *, symbol: str, columns: Mapping[str, str] | None = None
) -> pl.DataFrame:
    """Entry and exit fills of round-trip trades (backtesting.py's ``stats._trades``).

    ``quantity`` is signed (> 0 long); each trade gives a fill at entry and one at exit."""
    df = _rename(_to_polars(trades, "trades"), columns, "trades")
    _require(df, ("entry_ts", "exit_ts", "quantity", "entry_price", "exit_price"), "trades")
    q = pl.col("quantity").cast(pl.Float64)
    entry = df.select(
        pl.col("entry_ts").alias("ts"),
        pl.lit(symbol).alias("symbol"),
        pl.when(q > 0).then(pl.lit("buy")).otherwise(pl.lit("sell")).alias("side"),
        q.abs().alias("quantity"),
        pl.col("entry_price").cast(pl.Float64).alias("price"),
    )
    exit_ = df.select(
        pl.col("exit_ts").alias("ts"),
        pl.lit(symbol).alias("symbol"),
        pl.when(q > 0).then(pl.lit("sell")).otherwise(pl.lit("buy")).alias("side"),
        q.abs().alias("quantity"),
        pl.col("exit_price").cast(pl.Float64).alias("price"),
    )
    return pl.concat([entry, exit_]).sort("ts", maintain_order=True)


# --- preparing the tables ---------------------------------------------------------------


def prepare_fills(fills: Any, columns: Mapping[str, str] | None) -> pa.Table:
    df = _rename(_to_polars(fills, "fills"), columns, "fills")
    _require(df, ("ts", "symbol", "quantity", "price"), "fills")
    _check_ts(df, "ts", "fills")
    n = df.height
    qty = df["quantity"].cast(pl.Float64)
    if "side" in df.columns:
        side = df["side"].cast(pl.String).str.to_lowercase()
        bad = ~side.is_in(["buy", "sell"]) | side.is_null()
        if bad.any():
            i = int(bad.arg_true()[0])
            raise InvalidInputError(f"fill row {i}: side {side[i]!r} is not 'buy' or 'sell'")
        # vectorbt sizes are positive with a side; a signed size with a side is a sign error
        if (qty <= 0).any():
            i = int((qty <= 0).arg_true()[0])
            raise InvalidInputError(
                f"fill row {i}: quantity {qty[i]} must be > 0 when a side column is given"
            )
    else:
        if (qty == 0).any():
            i = int((qty == 0).arg_true()[0])
            raise InvalidInputError(f"fill row {i}: quantity is 0")
        side = pl.Series(np.where(qty.to_numpy() > 0, "buy", "sell"))
        qty = qty.abs()
    price = df["price"].cast(pl.Float64)
    if not (price > 0).all():
        i = int((~(price > 0)).arg_true()[0])
        raise InvalidInputError(f"fill row {i}: price {price[i]} must be > 0")
    out = pl.DataFrame(
        {
            "fill_id": _opt(df, "fill_id", pl.Int64, pl.Series(np.arange(n, dtype=np.int64))),
            "signal_id": _opt(df, "signal_id", pl.Int64, pl.Series([None] * n, dtype=pl.Int64)),
            "ts": df["ts"],
            "symbol": df["symbol"].cast(pl.String),
            "side": side,
            "quantity": qty,
            "price": price,
            "commission": _opt(df, "commission", pl.Float64, pl.Series(np.zeros(n))),
            "slippage_bps": _opt(df, "slippage_bps", pl.Float64, pl.Series(np.zeros(n))),
        }
    )
    if out["fill_id"].is_duplicated().any():
        raise InvalidInputError("fills: fill_id values repeat; give each fill its own id")
    out = out.sort(["ts", "fill_id"])
    return _order_columns(out.to_arrow(), FILLS)


def prepare_signals(signals: Any, columns: Mapping[str, str] | None) -> pa.Table:
    if signals is None:
        return SIGNALS.schema.empty_table()
    df = _rename(_to_polars(signals, "signals"), columns, "signals")
    _require(df, ("ts", "direction"), "signals")
    _check_ts(df, "ts", "signals")
    n = df.height
    legs = pl.Series([None] * n, dtype=pl.String)
    if "legs" in df.columns:
        legs = pl.Series(
            [
                v if v is None or isinstance(v, str) else json.dumps(list(v))
                for v in df["legs"].to_list()
            ],
            dtype=pl.String,
        )
    as_of = df["inputs_as_of"] if "inputs_as_of" in df.columns else df["ts"]
    if "inputs_as_of" in df.columns:
        _check_ts(df, "inputs_as_of", "signals")
        late = (as_of > df["ts"]).fill_null(False)
        if late.any():
            i = int(late.arg_true()[0])
            raise InvalidInputError(
                f"signal row {i}: an input as of {as_of[i]} is later than the signal at "
                f"{df['ts'][i]} (look-ahead)"
            )
    out = pl.DataFrame(
        {
            "signal_id": _opt(df, "signal_id", pl.Int64, pl.Series(np.arange(n, dtype=np.int64))),
            "ts": df["ts"],
            "direction": df["direction"].cast(pl.String),
            "legs": legs,
            "hedge_ratio": _opt(
                df, "hedge_ratio", pl.Float64, pl.Series([None] * n, dtype=pl.Float64)
            ),
            "size": _opt(df, "size", pl.Float64, pl.Series([None] * n, dtype=pl.Float64)),
            "inputs_as_of": as_of,
        }
    )
    if out["signal_id"].is_duplicated().any():
        raise InvalidInputError("signals: signal_id values repeat; give each signal its own id")
    return _order_columns(out.sort(["ts", "signal_id"]).to_arrow(), SIGNALS)


def prepare_equity(
    equity: Any,
    columns: Mapping[str, str] | None,
    fills: pa.Table,
    initial_cash: float | None,
    tolerance: float,
) -> pa.Table:
    df = _rename(_to_polars(equity, "equity"), columns, "equity")
    _require(df, ("ts", "equity"), "equity")
    _check_ts(df, "ts", "equity")
    if df.height == 0:
        raise InvalidInputError("equity is empty: a run needs at least one period")
    ts_us = df["ts"].dt.epoch("us").to_numpy()
    steps = np.diff(ts_us)
    if (steps <= 0).any():
        i = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise InvalidInputError(
            f"equity row {i}: ts {df['ts'][i]} is not after the previous row's; "
            "equity needs one row per period, sorted by ts"
        )
    eq = df["equity"].cast(pl.Float64).to_numpy()
    if "cash" in df.columns:
        cash = df["cash"].cast(pl.Float64).to_numpy()
    else:
        if initial_cash is None:
            raise InvalidInputError(
                "equity has no cash column: pass initial_cash so cash can be derived from fills"
            )
        cash = _cash_from_fills(float(initial_cash), fills, ts_us)
    if "positions_value" in df.columns:
        pos = df["positions_value"].cast(pl.Float64).to_numpy()
    else:
        pos = eq - cash
    off = np.abs(eq - (cash + pos)) > tolerance * np.maximum(1.0, np.abs(eq))
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise InvalidInputError(
            f"equity row {i} at {df['ts'][i]}: equity {eq[i]!r} != cash {cash[i]!r} + "
            f"positions value {pos[i]!r} (tolerance {tolerance:g})"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        net = df["net_exposure"].to_numpy() if "net_exposure" in df.columns else pos / eq
        gross = df["gross_exposure"].to_numpy() if "gross_exposure" in df.columns else np.abs(net)
        if "period_return" in df.columns:
            ret = df["period_return"].cast(pl.Float64).to_numpy()
        else:
            first = eq[0] / initial_cash - 1.0 if initial_cash else 0.0
            ret = np.concatenate([[first], eq[1:] / eq[:-1] - 1.0])
    out = pl.DataFrame(
        {
            "ts": df["ts"],
            "equity": eq,
            "cash": cash,
            "positions_value": pos,
            "gross_exposure": np.asarray(gross, dtype=np.float64),
            "net_exposure": np.asarray(net, dtype=np.float64),
            "period_return": ret,
        }
    )
    return _order_columns(out.to_arrow(), EQUITY)


def check_fills_after_signals(fills: pa.Table, signals: pa.Table) -> None:
    """Every fill that names a signal is strictly after it, and the signal exists."""
    f = pl.from_arrow(fills)
    s = pl.from_arrow(signals)
    assert isinstance(f, pl.DataFrame) and isinstance(s, pl.DataFrame)
    named = f.filter(pl.col("signal_id").is_not_null())
    if named.height == 0:
        return
    joined = named.join(
        s.select("signal_id", pl.col("ts").alias("signal_ts")), on="signal_id", how="left"
    )
    orphan = joined.filter(pl.col("signal_ts").is_null())
    if orphan.height:
        r = orphan.row(0, named=True)
        raise InvalidInputError(
            f"fill {r['fill_id']} names signal {r['signal_id']}, which is not in signals"
        )
    early = joined.filter(pl.col("ts") <= pl.col("signal_ts"))
    if early.height:
        r = early.row(0, named=True)
        raise InvalidInputError(
            f"fill {r['fill_id']} at {r['ts']} is not after its signal {r['signal_id']} "
            f"at {r['signal_ts']} (look-ahead)"
        )


def derive_trades(fills: pa.Table, periods: pa.ChunkedArray | pa.Array) -> pa.Table:
    """Round trips from fills sorted by (ts, fill_id); see the module docstring."""
    period_us = np.asarray(periods.cast(pa.int64()).to_numpy(zero_copy_only=False))
    f = pl.from_arrow(fills)
    assert isinstance(f, pl.DataFrame)
    rows: list[dict[str, Any]] = []
    open_: dict[str, dict[str, Any]] = {}
    position: dict[str, float] = {}
    for r in f.iter_rows(named=True):
        sym = r["symbol"]
        signed = r["quantity"] if r["side"] == "buy" else -r["quantity"]
        pos = position.get(sym, 0.0)
        remaining = signed
        commission_left = r["commission"]
        while remaining != 0.0:
            if pos == 0.0:  # open a trade with all that remains
                open_[sym] = {
                    "ts": r["ts"],
                    "sign": 1.0 if remaining > 0 else -1.0,
                    "open_qty": 0.0,
                    "open_notional": 0.0,
                    "close_qty": 0.0,
                    "close_notional": 0.0,
                    "commission": 0.0,
                }
            t = open_[sym]
            if (remaining > 0) == (t["sign"] > 0):  # adds to the position
                q, part = abs(remaining), commission_left
                t["open_qty"] += q
                t["open_notional"] += q * r["price"]
                pos += remaining
                remaining = 0.0
            else:  # reduces it, possibly through zero
                q = min(abs(remaining), abs(pos))
                part = commission_left * q / abs(remaining)
                t["close_qty"] += q
                t["close_notional"] += q * r["price"]
                step = q if remaining > 0 else -q
                pos += step
                remaining -= step
                if abs(pos) <= 1e-12 * max(1.0, t["open_qty"]):
                    pos = 0.0
            t["commission"] += part
            commission_left -= part
            if pos == 0.0:
                rows.append(_close_trade(sym, t, r["ts"], period_us))
                del open_[sym]
        position[sym] = pos
    if not rows:
        return TRADES.schema.empty_table()
    for i, row in enumerate(sorted(rows, key=lambda x: (x["entry_ts"], x["symbol"]))):
        row["trade_id"] = i
    out = pa.Table.from_pylist(rows)
    return _order_columns(out.sort_by("trade_id"), TRADES)


def _close_trade(sym: str, t: dict[str, Any], exit_ts: datetime, period_us: np.ndarray) -> dict:
    entry_price = t["open_notional"] / t["open_qty"]
    exit_price = t["close_notional"] / t["close_qty"]
    gross = t["sign"] * (t["close_notional"] - t["open_notional"])
    pnl = gross - t["commission"]
    entry_us = _us(t["ts"])
    exit_us = _us(exit_ts)
    bars = int(np.searchsorted(period_us, exit_us, "left") - np.searchsorted(period_us, entry_us))
    return {
        "symbol": sym,
        "direction": "long" if t["sign"] > 0 else "short",
        "entry_ts": t["ts"],
        "exit_ts": exit_ts,
        "entry_price": entry_price,
        "exit_price": exit_price,
        "quantity": t["open_qty"],
        "commission": t["commission"],
        "pnl": pnl,
        "trade_return": pnl / t["open_notional"],
        "bars_held": bars,
    }


# --- helpers ----------------------------------------------------------------------------


def _open(data: Lake | DataPaths | str | os.PathLike[str] | None) -> tuple[Lake, bool]:
    return (data, False) if isinstance(data, Lake) else (Lake(data), True)


def _universe_symbols(universe: str | Sequence[str] | None) -> list[str] | None:
    if universe is None:
        return None
    if isinstance(universe, str):
        return [s for s in universe.split("/") if s] if "/" in universe else [universe]
    return list(universe)


def _to_polars(df: Any, what: str) -> pl.DataFrame:
    if isinstance(df, pl.DataFrame):
        return df
    if isinstance(df, pa.Table):
        out = pl.from_arrow(df)
        assert isinstance(out, pl.DataFrame)
        return out
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(df, pd.Series):
        df = df.to_frame()
    if pd is not None and isinstance(df, pd.DataFrame):
        if not isinstance(df.index, pd.RangeIndex):
            df = df.reset_index()
            if "index" in df.columns and "ts" not in df.columns:
                df = df.rename(columns={"index": "ts"})
        return pl.from_pandas(df)
    raise InvalidInputError(f"{what} must be a polars or pandas DataFrame, got {type(df).__name__}")


def _rename(df: pl.DataFrame, columns: Mapping[str, str] | None, what: str) -> pl.DataFrame:
    if not columns:
        return df
    missing = [theirs for theirs in columns.values() if theirs not in df.columns]
    if missing:
        raise InvalidInputError(
            f"{what}: mapped column(s) {missing} not in the frame (it has {df.columns})"
        )
    keep = [c for c in df.columns if c not in columns.values() and c not in columns]
    return df.select(*[pl.col(theirs).alias(ours) for ours, theirs in columns.items()], *keep)


def _require(df: pl.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InvalidInputError(
            f"{what} lacks column(s) {missing} (it has {df.columns}); map yours with "
            f"{what.rstrip('s')}_columns={{'our name': 'your name'}}"
        )


def _check_ts(df: pl.DataFrame, col: str, what: str) -> None:
    dtype = df.schema[col]
    if not isinstance(dtype, pl.Datetime):
        raise InvalidInputError(f"{what}.{col} must be timestamps, got {dtype}")
    if dtype.time_zone is None:
        raise InvalidInputError(
            f"{what}.{col} has naive timestamps; make them UTC first "
            "(pandas: .dt.tz_localize('UTC'), polars: .dt.replace_time_zone('UTC'))"
        )
    if df[col].null_count():
        raise InvalidInputError(f"{what}.{col} has missing timestamps")


def _opt(df: pl.DataFrame, col: str, dtype: pl.DataType, default: pl.Series) -> pl.Series:
    return df[col].cast(dtype) if col in df.columns else default.cast(dtype)


def _us(ts: datetime) -> int:
    return int(pa.scalar(ts, pa.timestamp("us", tz="UTC")).cast(pa.int64()).as_py())


def _cash_from_fills(initial: float, fills: pa.Table, ts_us: np.ndarray) -> np.ndarray:
    """Cash after every fill at or before each period: initial - Σ signed qty·price - fees."""
    f = pl.from_arrow(fills)
    assert isinstance(f, pl.DataFrame)
    sign = np.where(f["side"].to_numpy() == "buy", 1.0, -1.0)
    flow = -(sign * f["quantity"].to_numpy() * f["price"].to_numpy()) - f["commission"].to_numpy()
    fill_us = f["ts"].dt.epoch("us").to_numpy()
    cum = np.concatenate([[0.0], np.cumsum(flow)])
    return initial + cum[np.searchsorted(fill_us, ts_us, side="right")]


def _results_digest(tables: Mapping[str, pa.Table]) -> str:
    h = hashlib.sha256()
    for name in sorted(tables):
        t = tables[name]
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, t.schema) as w:
            w.write_table(t)
        h.update(name.encode() + b"\0")
        h.update(memoryview(sink.getvalue()))
    return h.hexdigest()


def _remove_unregistered(lake: Lake, run_id: str) -> None:
    """Delete the result files a killed recording of ``run_id`` left (no runs row yet)."""
    for dataset in BACKTEST_RESULTS:
        path = lake.file_path(dataset, {"run_id": run_id})
        if path.exists():
            path.unlink()
            lake.manifest.retire_file(lake.rel(path))
