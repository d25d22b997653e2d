"""One row per recorded backtest run: its metrics, computed by warehouse.backtest_metrics.

The formulas are in that module's docstring and in _backtests__models.yml; the Python API
(``warehouse.backtest_metrics.run_metrics``) calls the same ``metrics_frame``, so the mart
and the API cannot disagree.
"""

import polars as pl

from warehouse.backtest_metrics import metrics_frame


def _frame(relation, columns):
    out = pl.from_arrow(relation.select(columns).to_arrow_table())
    return out if out.height else None


def model(dbt, session):
    runs = dbt.ref("stg_backtests__runs")
    equity = dbt.ref("stg_backtests__equity")
    trades = dbt.ref("stg_backtests__trades")
    fills = dbt.ref("stg_backtests__fills")
    table = metrics_frame(
        pl.from_arrow(
            runs.select("run_id, strategy, engine, created_at, periods_per_year").to_arrow_table()
        ),
        _frame(equity, "run_id, ts, equity, gross_exposure, period_return"),
        _frame(trades, "run_id, trade_id, pnl"),
        _frame(fills, "run_id, fill_id, quantity, price"),
        risk_free=float(dbt.config.get("risk_free")),
        target=float(dbt.config.get("sortino_target")),
    )
    return table.to_arrow()
