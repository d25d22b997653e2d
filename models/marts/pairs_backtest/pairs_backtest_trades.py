"""The reference pairs strategy's round trips, one run per pair: warehouse/pairs_backtest.py
(the rule in its docstring and in _pairs_backtest__models.yml), configured by the
backtest_* dbt vars."""

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


def model(dbt, session):
    return run(dbt)["trades"].to_arrow()
