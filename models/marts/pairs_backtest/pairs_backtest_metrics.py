"""One row per reference pairs run: its metrics, computed by the same
warehouse.backtest_metrics.metrics_frame as the backtest_metrics mart (formulas in
models/marts/backtests/_backtests__models.yml)."""

from warehouse.backtest_metrics import metrics_frame
from warehouse.pairs_backtest import from_dbt


def run(dbt):
    config = {
        "pairs_timeframe": dbt.config.get("pairs_timeframe"),
        "backtest_entry_z": dbt.config.get("backtest_entry_z"),
        "backtest_exit_z": dbt.config.get("backtest_exit_z"),
        "backtest_stop_z": dbt.config.get("backtest_stop_z"),
        "backtest_commission_bps": dbt.config.get("backtest_commission_bps"),
        "backtest_slippage_bps": dbt.config.get("backtest_slippage_bps"),
        "backtest_notional": dbt.config.get("backtest_notional"),
    }
    return from_dbt(
        config,
        dbt.ref("pair_spreads"),
        dbt.ref("pair_bars"),
        dbt.ref("pair_cointegration"),
        dbt.ref("bars_adjusted"),
    )


def _rows(frame):
    return frame if frame.height else None


def model(dbt, session):
    result = run(dbt)
    table = metrics_frame(
        result["runs"].select("run_id", "strategy", "engine", "created_at", "periods_per_year"),
        _rows(result["equity"].select("run_id", "ts", "equity", "gross_exposure", "period_return")),
        _rows(result["trades"].drop_nulls("pnl")),
        _rows(result["fills"].select("run_id", "fill_id", "quantity", "price")),
        risk_free=float(dbt.config.get("risk_free")),
        target=float(dbt.config.get("sortino_target")),
    )
    return table.to_arrow()
