"""Backtest metrics, one row per run, computed here and nowhere else (numpy).

Notation: ``r_1..r_n`` the run's period returns (``equity.period_return``), ``P`` its
periods per year (``backtest_runs.periods_per_year``), ``W_0 = 1`` and
``W_k = Π_{i≤k} (1 + r_i)`` its wealth index. Annual rates (risk free ``rf``, Sortino
target ``T``) become per-period ones as ``x_p = (1 + x)^(1/P) - 1``.

==========================  ==============================================================
total_return                ``W_n - 1``
cagr                        ``W_n^(P/n) - 1``
volatility                  ``std(r, ddof=1) · √P``
sharpe                      ``mean(e) / std(e, ddof=1) · √P`` with ``e_i = r_i - rf_p``
sortino                     ``mean(d) / √(Σ min(d_i, 0)² / n) · √P`` with ``d_i = r_i - T_p``
                            (downside deviation over *all* n periods, as empyrical)
max_drawdown                ``max_k (1 - W_k / max_{j≤k} W_j)``, a positive fraction
max_drawdown_duration       periods from the peak before the deepest trough to the first
                            period back at that peak (or to the last period if never)
calmar                      ``cagr / max_drawdown``
n_trades                    round trips closed (``trades`` rows)
hit_rate_trades             ``#(pnl > 0) / n_trades``
hit_rate_periods            ``#(r > 0) / #(r ≠ 0)`` (flat periods left out)
profit_factor               ``Σ pnl⁺ / |Σ pnl⁻|`` (inf with wins and no losses)
avg_win, avg_loss           mean pnl of winning, of losing trades (avg_loss ≤ 0)
exposure                    ``#(gross_exposure ≠ 0) / n``, the share of periods invested
turnover                    ``Σ |quantity · price| of fills / mean(equity) · P / n``, the
                            book traded per year
==========================  ==============================================================

Undefined values (a zero deviation, no trades, no losses) are NaN, never an error.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from ingest.backtests import read_run_table, read_runs
from ingest.errors import InvalidInputError
from ingest.lake import Lake
from ingest.paths import DataPaths

METRICS = (
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "max_drawdown_duration",
    "calmar",
    "n_trades",
    "hit_rate_trades",
    "hit_rate_periods",
    "profit_factor",
    "avg_win",
    "avg_loss",
    "exposure",
    "turnover",
)


def per_period(annual: float, periods_per_year: float) -> float:
    """An annual rate as the per-period rate that compounds to it."""
    return (1.0 + annual) ** (1.0 / periods_per_year) - 1.0


def compute_metrics(
    returns: Sequence[float] | np.ndarray,
    *,
    periods_per_year: float = 252.0,
    risk_free: float = 0.0,
    target: float = 0.0,
    trade_pnl: Sequence[float] | np.ndarray = (),
    gross_exposure: Sequence[float] | np.ndarray | None = None,
    equity: Sequence[float] | np.ndarray | None = None,
    traded_notional: float = 0.0,
) -> dict[str, float]:
    """Every metric of the module docstring for one run (``risk_free``, ``target`` annual)."""
    r = np.asarray(returns, dtype=np.float64)
    pnl = np.asarray(trade_pnl, dtype=np.float64)
    n = r.size
    p = float(periods_per_year)
    nan = math.nan
    out: dict[str, float] = dict.fromkeys(METRICS, nan)
    out["n_trades"] = float(pnl.size)
    if n == 0:
        return out
    wealth = np.concatenate([[1.0], np.cumprod(1.0 + r)])
    total = wealth[-1] - 1.0
    out["total_return"] = total
    out["cagr"] = wealth[-1] ** (p / n) - 1.0 if wealth[-1] > 0 else -1.0
    root = math.sqrt(p)
    if n > 1:
        out["volatility"] = float(np.std(r, ddof=1)) * root
        excess = r - per_period(risk_free, p)
        sd = float(np.std(excess, ddof=1))
        out["sharpe"] = float(np.mean(excess)) / sd * root if sd > 0 else nan
    d = r - per_period(target, p)
    downside = math.sqrt(float(np.mean(np.minimum(d, 0.0) ** 2)))
    out["sortino"] = float(np.mean(d)) / downside * root if downside > 0 else nan
    peaks = np.maximum.accumulate(wealth)
    drawdown = 1.0 - wealth / peaks
    trough = int(np.argmax(drawdown))
    out["max_drawdown"] = float(drawdown[trough])
    if drawdown[trough] > 0:
        peak = int(np.flatnonzero(wealth[: trough + 1] == peaks[trough])[0])
        back = np.flatnonzero(wealth[trough:] >= peaks[trough])
        end = trough + int(back[0]) if back.size else n
        out["max_drawdown_duration"] = float(end - peak)
        out["calmar"] = out["cagr"] / out["max_drawdown"]
    else:
        out["max_drawdown_duration"] = 0.0
    moving = np.count_nonzero(r != 0.0)
    out["hit_rate_periods"] = np.count_nonzero(r > 0.0) / moving if moving else nan
    if pnl.size:
        wins, losses = pnl[pnl > 0], pnl[pnl < 0]
        out["hit_rate_trades"] = wins.size / pnl.size
        gained, lost = float(wins.sum()), float(-losses.sum())
        out["profit_factor"] = gained / lost if lost > 0 else (math.inf if gained > 0 else nan)
        out["avg_win"] = float(wins.mean()) if wins.size else nan
        out["avg_loss"] = float(losses.mean()) if losses.size else nan
    if gross_exposure is not None:
        g = np.asarray(gross_exposure, dtype=np.float64)
        out["exposure"] = np.count_nonzero(g != 0.0) / n
    if equity is not None:
        mean_equity = float(np.mean(np.asarray(equity, dtype=np.float64)))
        if mean_equity > 0:
            out["turnover"] = traded_notional / mean_equity * p / n
    return out


def run_metrics(
    data: Lake | DataPaths | str | os.PathLike[str] | None,
    *,
    risk_free: float = 0.0,
    target: float = 0.0,
    include_reference: bool = False,
) -> pl.DataFrame:
    """One row per recorded run: run_id, strategy, engine, created_at and every metric.

    ``include_reference`` adds the warehouse's reference pairs runs (the published
    ``pairs_backtest_*`` marts of the last build), their metrics computed here the same
    way and with the same ``risk_free`` and ``target``."""
    lake = data if isinstance(data, Lake) else Lake(data)
    if include_reference:
        recorded = run_metrics(lake, risk_free=risk_free, target=target)
        reference = _reference(lake.paths)
        if reference is None:
            if lake is not data:
                lake.close()
            return recorded
        runs, equity, trades, fills = reference
        if lake is not data:
            lake.close()
        return pl.concat(
            [recorded, metrics_frame(runs, equity, trades, fills, risk_free, target)]
        ).sort("created_at", "run_id")
    try:
        runs = read_runs(lake)
        tables = {
            name: [read_run_table(lake, name, rid) for rid in runs["run_id"].to_list()]
            for name in ("equity", "trades", "fills")
        }
    finally:
        if lake is not data:
            lake.close()
    ids = runs["run_id"].to_list()
    frames = {
        name: pl.concat(
            [t.with_columns(pl.lit(rid).alias("run_id")) for rid, t in zip(ids, ts, strict=True)]
        )
        if ts
        else None
        for name, ts in tables.items()
    }
    return metrics_frame(
        runs, frames["equity"], frames["trades"], frames["fills"], risk_free, target
    )


#: the columns of :func:`metrics_frame`, in order, with their types
METRICS_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "strategy": pl.String(),
    "engine": pl.String(),
    "created_at": pl.Datetime("us", "UTC"),
    **{m: (pl.Int64() if m == "n_trades" else pl.Float64()) for m in METRICS},
}


def metrics_frame(
    runs: pl.DataFrame,
    equity: pl.DataFrame | None,
    trades: pl.DataFrame | None,
    fills: pl.DataFrame | None,
    risk_free: float = 0.0,
    target: float = 0.0,
) -> pl.DataFrame:
    """Metrics of every run in ``runs`` from its rows (by ``run_id``) of the result tables:
    what :func:`run_metrics` and the dbt mart ``backtest_metrics`` both call."""
    if runs.height == 0:
        return pl.DataFrame(schema=METRICS_SCHEMA)
    if runs.height == 0:
        return pl.DataFrame(schema=METRICS_SCHEMA)
    rows = []
    for run in runs.sort("created_at").iter_rows(named=True):
        rid = run["run_id"]
        eq = _rows_of(equity, rid, "ts")
        tr = _rows_of(trades, rid, "trade_id")
        fi = _rows_of(fills, rid, "fill_id")
        m = compute_metrics(
            eq["period_return"].to_numpy() if eq is not None else [],
            periods_per_year=run["periods_per_year"],
            risk_free=risk_free,
            target=target,
            trade_pnl=tr["pnl"].to_numpy() if tr is not None else [],
            gross_exposure=eq["gross_exposure"].to_numpy() if eq is not None else None,
            equity=eq["equity"].to_numpy() if eq is not None else None,
            traded_notional=float((fi["quantity"] * fi["price"]).abs().sum())
            if fi is not None
            else 0.0,
        )
        m["n_trades"] = int(m["n_trades"])
        m["n_trades"] = int(m["n_trades"])
        rows.append({k: run[k] for k in ("run_id", "strategy", "engine", "created_at")} | m)
    return pl.DataFrame(rows, schema=METRICS_SCHEMA)


def _rows_of(table: pl.DataFrame | None, run_id: str, order: str) -> pl.DataFrame | None:
    if table is None:
        return None
    return table.filter(pl.col("run_id") == run_id).sort(order)


def compare_runs(
    data: Lake | DataPaths | str | os.PathLike[str] | None,
    run_ids: Sequence[str] | None = None,
    *,
    risk_free: float = 0.0,
    target: float = 0.0,
    include_reference: bool = False,
) -> tuple[pl.DataFrame, dict[str, dict[str, Any]]]:
    """(metrics of the runs, oldest first; the config keys whose values differ between them).

    Run ids may be abbreviated to a unique prefix. The differences map each differing key
    (nested keys joined with dots) to ``{run_id: value}``, a missing key as None."""
    table = run_metrics(
        data, risk_free=risk_free, target=target, include_reference=include_reference
    )
    if run_ids:
        chosen = [_unique_prefix(table["run_id"].to_list(), r) for r in run_ids]
        table = table.filter(pl.col("run_id").is_in(chosen))
    runs = read_runs(data)
    runs = (
        runs.select("run_id", "config")
        if "config" in runs.columns
        else pl.DataFrame(schema={"run_id": pl.String(), "config": pl.String()})
    )
    if include_reference:
        paths = data.paths if isinstance(data, Lake) else _paths_of(data)
        reference = _reference(paths)
        if reference is not None:
            runs = pl.concat([runs, reference[0].select("run_id", "config")])
    configs = {
        r["run_id"]: _flatten(json.loads(r["config"]))
        for r in runs.iter_rows(named=True)
        if r["run_id"] in set(table["run_id"].to_list())
    }
    keys = sorted({k for c in configs.values() for k in c})
    diff = {
        k: {rid: c.get(k) for rid, c in configs.items()}
        for k in keys
        if len({json.dumps(c.get(k), sort_keys=True) for c in configs.values()}) > 1
    }
    return table.sort("created_at"), diff


def _paths_of(data: DataPaths | str | os.PathLike[str] | None) -> DataPaths:
    return data if isinstance(data, DataPaths) else DataPaths.from_arg(data)


def _reference(
    paths: DataPaths,
) -> tuple[pl.DataFrame, pl.DataFrame | None, pl.DataFrame | None, pl.DataFrame | None] | None:
    """The reference pairs runs of the last published build (runs, equity, closed trades,
    fills), or None when no build published them."""
    names = ("runs", "equity", "trades", "fills")
    files = {n: paths.marts / f"pairs_backtest_{n}.parquet" for n in names}
    if not all(f.exists() for f in files.values()):
        return None
    runs = pl.read_parquet(files["runs"])
    if runs.height == 0:
        return None
    equity = pl.read_parquet(
        files["equity"], columns=["run_id", "ts", "equity", "gross_exposure", "period_return"]
    )
    trades = pl.read_parquet(files["trades"]).drop_nulls("pnl")  # closed round trips
    fills = pl.read_parquet(files["fills"], columns=["run_id", "fill_id", "quantity", "price"])
    return (
        runs.select("run_id", "strategy", "engine", "created_at", "periods_per_year", "config"),
        equity if equity.height else None,
        trades if trades.height else None,
        fills if fills.height else None,
    )


def _unique_prefix(run_ids: list[str], prefix: str) -> str:
    found = [r for r in run_ids if r.startswith(prefix)]
    if len(found) != 1:
        what = "no recorded run" if not found else f"{len(found)} runs"
        raise InvalidInputError(f"{what} with an id starting {prefix!r}; list them first")
    return found[0]


def _flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(config, dict) and config:
        out: dict[str, Any] = {}
        for k, v in config.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): config}
