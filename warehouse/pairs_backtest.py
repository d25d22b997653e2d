"""The reference pairs strategy run by ``dbt build`` (models/marts/pairs_backtest).

Rule, per pair and bar t of ``pair_spreads`` (the pair's common bars, in ts order), with
z_t its rolling-OLS z-score and C_t the ``is_cointegrated`` of the pair's latest
``pair_cointegration`` test with test_ts <= t (both known at t's close):

- flat (0): enter short_spread (-1) when entry_z <= z_t < stop_z, long_spread (+1) when
  -stop_z < z_t <= -entry_z, and only if C_t is true;
- long_spread (+1): exit (0) when z_t >= -exit_z (back at the mean), when z_t <= -stop_z
  (stop), when C_t is not true or z_t is null; short_spread (-1) symmetrically;
- a signal never flips a position in one bar (exit first, enter on a later bar).

A target position that differs from the one held is filled at the next common bar's open
(t + 1): long_spread buys notional / open_a of A and sells hedge_ratio * notional / open_b
of B, with hedge_ratio the OLS beta at t; an exit closes the quantities held. Prices are
the total-return prices of pair_bars (as-traded prices chained forward from each symbol's
first bar, so a split never moves a position's value); a buy pays open * (1 + slippage_bps
/ 1e4), a sell receives open * (1 - slippage_bps / 1e4), and every fill pays commission_bps
/ 1e4 of its traded value. Equity at t = cash + positions value (quantities times t's
close), starting from cash = notional; period_return = equity_t / equity_{t-1} - 1.

A trade is one round trip: the entry fills (both legs), then the exit fills, with the
exit signal's reason (exit_mean, exit_stop, exit_not_cointegrated, exit_no_zscore; a trade
still open after the last bar is ``open``). Its pnl is the cash it made net of slippage and
commissions, which is also the change in equity over it (the run is flat before and after);
trade_return is pnl over the gross value entered.

Every value at t depends on bars at or before t only (the fill at t uses t's open and the
signal at t - 1), so deleting later bars changes nothing up to t, bit for bit.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import threading
from typing import Any

import polars as pl

STRATEGY = "pairs_zscore_reference"
ENGINE = "dbt"
#: the dbt vars (dbt_project.yml) that configure the run, in the run's config JSON
CONFIG_KEYS = (
    "entry_z",
    "exit_z",
    "stop_z",
    "commission_bps",
    "slippage_bps",
    "notional",
)
PERIODS_PER_YEAR = {"1d": 252.0, "1w": 52.0}

DIRECTIONS = {1: "long_spread", -1: "short_spread", 0: "flat"}


def config_of(get: Any, timeframe: str) -> dict[str, Any]:
    """The run's config from a model's config (``dbt.config.get``), floats throughout."""
    cfg: dict[str, Any] = {k: float(get(f"backtest_{k}")) for k in CONFIG_KEYS}
    if not 0 <= cfg["exit_z"] < cfg["entry_z"] < cfg["stop_z"]:
        raise ValueError(f"backtest bands must satisfy 0 <= exit < entry < stop: {cfg}")
    cfg["timeframe"] = timeframe
    cfg["zscore"] = "ols"
    return cfg


def run_id_of(pair_id: str, config: dict[str, Any]) -> str:
    """The run: SHA-256 of strategy, pair, config (canonical JSON) and engine, 20 hex
    digits. It does not name the data, so a run keeps its id as bars are appended."""
    key = json.dumps(
        {"strategy": STRATEGY, "pair_id": pair_id, "config": config, "engine": ENGINE},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def _target(held: int, z: float | None, coint: bool | None, cfg: dict[str, Any]) -> tuple[int, str]:
    entry, exit_, stop = cfg["entry_z"], cfg["exit_z"], cfg["stop_z"]
    if z is None or (isinstance(z, float) and math.isnan(z)):
        return (0, "exit_no_zscore") if held else (0, "none")
    if held == 0:
        if not coint:
            return 0, "none"
        if entry <= z < stop:
            return -1, "entry"
        if -stop < z <= -entry:
            return 1, "entry"
        return 0, "none"
    if not coint:
        return 0, "exit_not_cointegrated"
    s = held * z  # negative while the spread is still away from the mean
    if s >= -exit_:
        return 0, "exit_mean"
    if s <= -stop:
        return 0, "exit_stop"
    return held, "hold"


def simulate(bars: pl.DataFrame, cfg: dict[str, Any]) -> dict[str, pl.DataFrame]:
    """Signals, fills, equity, trades and runs of every pair in ``bars`` (columns pair_id,
    symbol_a, symbol_b, timeframe, ts, zscore, hedge_ratio, is_cointegrated, coint_test_ts,
    open_tr_a, open_tr_b, close_tr_a, close_tr_b)."""
    comm = cfg["commission_bps"] / 1e4
    slip = cfg["slippage_bps"] / 1e4
    notional = cfg["notional"]
    signals: list[dict] = []
    fills: list[dict] = []
    equity: list[dict] = []
    trades: list[dict] = []
    runs: list[dict] = []
    config_json = json.dumps(cfg, sort_keys=True, separators=(",", ":"))
    for (pair_id,), g in bars.sort("pair_id", "ts").group_by("pair_id", maintain_order=True):
        rows = g.to_dicts()
        run_id = run_id_of(pair_id, cfg)
        sym = (rows[0]["symbol_a"], rows[0]["symbol_b"])
        cash = notional
        qty = [0.0, 0.0]
        held = 0
        # (target, signal_id, signal ts, reason)
        pending: tuple[int, int, Any, str] | None = None
        prev_equity = notional
        trade: dict | None = None
        trade_id = 0
        fill_id = 0
        for i, r in enumerate(rows):
            opens = (r["open_tr_a"], r["open_tr_b"])
            closes = (r["close_tr_a"], r["close_tr_b"])
            # 1. the previous bar's signal fills at this bar's open
            if pending is not None and pending[0] != held:
                target, sid, sts, why = pending
                beta = rows[i - 1]["hedge_ratio"]
                if target == 0:
                    new = [0.0, 0.0]
                else:
                    new = [target * notional / opens[0], -target * beta * notional / opens[1]]
                cash_before = cash
                prices = [math.nan, math.nan]
                paid = 0.0
                for leg in (0, 1):
                    dq = new[leg] - qty[leg]
                    if dq == 0:
                        continue
                    side = "buy" if dq > 0 else "sell"
                    price = opens[leg] * (1 + slip if dq > 0 else 1 - slip)
                    commission = abs(dq * price) * comm
                    cash -= dq * price + commission
                    prices[leg] = price
                    paid += commission
                    fills.append(
                        {
                            "run_id": run_id,
                            "pair_id": pair_id,
                            "fill_id": fill_id,
                            "signal_id": sid,
                            "signal_ts": sts,
                            "ts": r["ts"],
                            "symbol": sym[leg],
                            "side": side,
                            "quantity": dq,
                            "open_price": opens[leg],
                            "price": price,
                            "commission": commission,
                            "slippage_bps": cfg["slippage_bps"],
                        }
                    )
                    fill_id += 1
                if target == 0 and trade is not None:
                    _close_trade(trade, r["ts"], sid, prices, paid, why, i, cash)
                    trades.append(trade)
                    trade = None
                if target != 0:
                    trade = _open_trade(run_id, pair_id, trade_id, target, sid, r["ts"], i)
                    trade.update(
                        quantity_a=new[0],
                        quantity_b=new[1],
                        entry_price_a=prices[0],
                        entry_price_b=prices[1],
                        commission=paid,
                        entry_cash=cash_before,
                    )
                    trade_id += 1
                qty = new
                held = target
            pending = None
            # 2. equity at this bar's close
            positions_value = qty[0] * closes[0] + qty[1] * closes[1]
            eq = cash + positions_value
            equity.append(
                {
                    "run_id": run_id,
                    "pair_id": pair_id,
                    "ts": r["ts"],
                    "position": held,
                    "quantity_a": qty[0],
                    "quantity_b": qty[1],
                    "cash": cash,
                    "positions_value": positions_value,
                    "equity": eq,
                    "gross_exposure": abs(qty[0] * closes[0]) + abs(qty[1] * closes[1]),
                    "net_exposure": positions_value,
                    "period_return": eq / prev_equity - 1.0 if i else 0.0,
                }
            )
            prev_equity = eq
            # 3. the signal at this bar's close, from z and cointegration known at ts
            z = r["zscore"]
            target, reason = _target(held, z, r["is_cointegrated"], cfg)
            asof = r["ts"] if r["coint_test_ts"] is None else max(r["ts"], r["coint_test_ts"])
            signals.append(
                {
                    "run_id": run_id,
                    "pair_id": pair_id,
                    "signal_id": i,
                    "ts": r["ts"],
                    "zscore": z,
                    "hedge_ratio": r["hedge_ratio"],
                    "is_cointegrated": r["is_cointegrated"],
                    "coint_test_ts": r["coint_test_ts"],
                    "inputs_as_of": asof,
                    "held_position": held,
                    "target_position": target,
                    "direction": DIRECTIONS[target],
                    "reason": reason,
                }
            )
            if target != held:
                pending = (target, i, r["ts"], reason)
        if trade is not None:  # still open after the last bar: no exit, no realised pnl
            trade["bars_held"] = len(rows) - trade["entry_bar"]
            trades.append(trade)
        runs.append(
            {
                "run_id": run_id,
                "pair_id": pair_id,
                "strategy": STRATEGY,
                "engine": ENGINE,
                "symbol_a": sym[0],
                "symbol_b": sym[1],
                "timeframe": rows[0]["timeframe"],
                "start_ts": rows[0]["ts"],
                "ts": rows[-1]["ts"],
                "n_bars": len(rows),
                "n_fills": fill_id,
                "config": config_json,
                "periods_per_year": PERIODS_PER_YEAR.get(rows[0]["timeframe"], 252.0),
                "created_at": rows[-1]["ts"],
            }
        )
    return {
        "signals": _frame(signals, SIGNALS_SCHEMA),
        "fills": _frame(fills, FILLS_SCHEMA),
        "equity": _frame(equity, EQUITY_SCHEMA),
        "trades": _frame([{k: t.get(k) for k in TRADES_SCHEMA} for t in trades], TRADES_SCHEMA),
        "runs": _frame(runs, RUNS_SCHEMA),
    }


def _open_trade(
    run_id: str, pair_id: str, trade_id: int, target: int, signal_id: int, ts: Any, bar: int
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "pair_id": pair_id,
        "trade_id": trade_id,
        "direction": DIRECTIONS[target],
        "entry_signal_id": signal_id,
        "entry_ts": ts,
        "entry_bar": bar,
        "exit_reason": "open",
    }


def _close_trade(
    trade: dict[str, Any],
    ts: Any,
    signal_id: int,
    prices: list[float],
    paid: float,
    reason: str,
    bar: int,
    cash: float,
) -> None:
    """The round trip closed at ``ts``: pnl is the cash it made net of both fills' costs
    (flat before and after, so it is also the change in equity)."""
    entry_value = abs(trade["quantity_a"] * trade["entry_price_a"]) + abs(
        trade["quantity_b"] * trade["entry_price_b"]
    )
    trade.update(
        exit_signal_id=signal_id,
        exit_ts=ts,
        exit_price_a=prices[0],
        exit_price_b=prices[1],
        exit_reason=reason,
        bars_held=bar - trade["entry_bar"],
        commission=trade["commission"] + paid,
        pnl=cash - trade["entry_cash"],
    )
    trade["trade_return"] = trade["pnl"] / entry_value


TS = pl.Datetime("us", "UTC")
SIGNALS_SCHEMA = {
    "run_id": pl.String(),
    "pair_id": pl.String(),
    "signal_id": pl.Int64(),
    "ts": TS,
    "zscore": pl.Float64(),
    "hedge_ratio": pl.Float64(),
    "is_cointegrated": pl.Boolean(),
    "coint_test_ts": TS,
    "inputs_as_of": TS,
    "held_position": pl.Int64(),
    "target_position": pl.Int64(),
    "direction": pl.String(),
    "reason": pl.String(),
}
FILLS_SCHEMA = {
    "run_id": pl.String(),
    "pair_id": pl.String(),
    "fill_id": pl.Int64(),
    "signal_id": pl.Int64(),
    "signal_ts": TS,
    "ts": TS,
    "symbol": pl.String(),
    "side": pl.String(),
    "quantity": pl.Float64(),
    "open_price": pl.Float64(),
    "price": pl.Float64(),
    "commission": pl.Float64(),
    "slippage_bps": pl.Float64(),
}
EQUITY_SCHEMA = {
    "run_id": pl.String(),
    "pair_id": pl.String(),
    "ts": TS,
    "position": pl.Int64(),
    "quantity_a": pl.Float64(),
    "quantity_b": pl.Float64(),
    "cash": pl.Float64(),
    "positions_value": pl.Float64(),
    "equity": pl.Float64(),
    "gross_exposure": pl.Float64(),
    "net_exposure": pl.Float64(),
    "period_return": pl.Float64(),
}
TRADES_SCHEMA = {
    "run_id": pl.String(),
    "pair_id": pl.String(),
    "trade_id": pl.Int64(),
    "direction": pl.String(),
    "entry_signal_id": pl.Int64(),
    "entry_ts": TS,
    "exit_signal_id": pl.Int64(),
    "exit_ts": TS,
    "quantity_a": pl.Float64(),
    "quantity_b": pl.Float64(),
    "entry_price_a": pl.Float64(),
    "entry_price_b": pl.Float64(),
    "exit_price_a": pl.Float64(),
    "exit_price_b": pl.Float64(),
    "commission": pl.Float64(),
    "pnl": pl.Float64(),
    "trade_return": pl.Float64(),
    "bars_held": pl.Int64(),
    "exit_reason": pl.String(),
}
RUNS_SCHEMA = {
    "run_id": pl.String(),
    "pair_id": pl.String(),
    "strategy": pl.String(),
    "engine": pl.String(),
    "symbol_a": pl.String(),
    "symbol_b": pl.String(),
    "timeframe": pl.String(),
    "start_ts": TS,
    "ts": TS,
    "n_bars": pl.Int64(),
    "n_fills": pl.Int64(),
    "config": pl.String(),
    "periods_per_year": pl.Float64(),
    "created_at": TS,
}


def _frame(rows: list[dict], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


def from_dbt(
    config: dict[str, Any], spreads: Any, pair_bars: Any, coint: Any, bars: Any
) -> dict[str, pl.DataFrame]:
    """The run of a dbt Python model (models/marts/pairs_backtest) from its config (the
    backtest_* vars and pairs_timeframe) and its refs: pair_spreads, pair_bars,
    pair_cointegration and bars_adjusted (the model calls dbt.ref so that dbt sees them)."""
    timeframe = str(config["pairs_timeframe"])

    def frame(rel: Any, columns: str) -> pl.DataFrame:
        return pl.from_arrow(rel.select(columns).to_arrow_table())  # type: ignore[return-value]

    opens = bars.filter(f"timeframe = '{timeframe}'")
    table = inputs(
        frame(
            spreads,
            "pair_id, symbol_a, symbol_b, timeframe, ts, close_a, close_b, ols_zscore, ols_beta",
        ).join(frame(pair_bars, "pair_id, ts, close_tr_a, close_tr_b"), on=["pair_id", "ts"]),
        frame(coint, "pair_id, test_ts, is_cointegrated"),
        frame(opens, "symbol, ts, open"),
    )
    cfg = config_of(config.__getitem__, timeframe)
    # the six pairs_backtest_* models of one build read the same inputs: simulate once
    # per process and configuration, keyed by the exact bytes of the inputs
    sink = io.BytesIO()
    table.write_ipc(sink, compression="uncompressed")
    key = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode() + sink.getvalue()).hexdigest()
    with _LAST_RUN_LOCK:  # dbt may run two of the models at once, in threads
        if _LAST_RUN[0] != key:
            _LAST_RUN[:] = [key, simulate(table, cfg)]
        return {name: frame.clone() for name, frame in _LAST_RUN[1].items()}


#: the last simulation of this process: [key of its config and inputs, its frames]
_LAST_RUN: list[Any] = [None, {}]
_LAST_RUN_LOCK = threading.Lock()


def inputs(spreads: pl.DataFrame, coint: pl.DataFrame, opens: pl.DataFrame) -> pl.DataFrame:
    """The per-bar inputs of :func:`simulate` from pair_spreads (pair_id, symbol_a, symbol_b,
    timeframe, ts, close_a, close_b, ols_zscore, ols_beta, close_tr_a, close_tr_b),
    pair_cointegration (pair_id, test_ts, is_cointegrated) and the pair timeframe's
    as-traded opens (symbol, ts, open)."""
    coint = coint.select(
        "pair_id", pl.col("test_ts").alias("coint_test_ts"), "is_cointegrated"
    ).sort("pair_id", "coint_test_ts")
    out = (
        spreads.sort("pair_id", "ts")
        .join_asof(
            coint,
            left_on="ts",
            right_on="coint_test_ts",
            by="pair_id",
            strategy="backward",
            check_sortedness=False,
        )
        .join(
            opens.rename({"symbol": "symbol_a", "open": "open_a"}),
            on=["symbol_a", "ts"],
            how="left",
        )
        .join(
            opens.rename({"symbol": "symbol_b", "open": "open_b"}),
            on=["symbol_b", "ts"],
            how="left",
        )
    )
    return out.select(
        "pair_id",
        "symbol_a",
        "symbol_b",
        "timeframe",
        "ts",
        pl.col("ols_zscore").alias("zscore"),
        pl.col("ols_beta").alias("hedge_ratio"),
        "is_cointegrated",
        "coint_test_ts",
        # total-return opens: the as-traded open in the units of the chained close
        (pl.col("open_a") * pl.col("close_tr_a") / pl.col("close_a")).alias("open_tr_a"),
        (pl.col("open_b") * pl.col("close_tr_b") / pl.col("close_b")).alias("open_tr_b"),
        "close_tr_a",
        "close_tr_b",
    ).sort("pair_id", "ts")
