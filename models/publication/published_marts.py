"""Publishes the marts as one set of Parquet files (warehouse/marts.py): the last node of
`dbt build`, because it refs every mart. A failed mart or test skips it, and readers keep
the previous set. Its table lists what the current set holds."""

import os

import pyarrow as pa

from ingest.paths import DataPaths
from warehouse.marts import PUBLISHED, publish


def model(dbt, session):
    dbt.config(materialized="table")
    paths = DataPaths.from_arg(os.environ.get("DUCKMARKET_DATA") or "data")
    published = publish(session, paths, PUBLISHED, schema=dbt.this.schema)
    names = sorted(published.marts)
    return pa.table(
        {
            "mart": names,
            "build_id": [published.build_id] * len(names),
            "published_at": pa.array([published.published_at] * len(names), pa.string()).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "row_count": pa.array([published.marts[n]["rows"] for n in names], pa.int64()),
            "file_bytes": pa.array([published.marts[n]["bytes"] for n in names], pa.int64()),
        }
    )


def depends_on(dbt):
    """Never called: dbt reads these refs to run this model after every mart."""
    return [
        dbt.ref("adjustment_factors"),
        dbt.ref("backtest_metrics"),
        dbt.ref("bars_adjusted"),
        dbt.ref("bars_bid_ask"),
        dbt.ref("bars_from_ticks"),
        dbt.ref("bars_resampled"),
        dbt.ref("corporate_actions"),
        dbt.ref("coverage_gaps"),
        dbt.ref("coverage_summary"),
        dbt.ref("feature_set_registry"),
        dbt.ref("features_technical_v1"),
        dbt.ref("pair_bars"),
        dbt.ref("pair_candidates"),
        dbt.ref("pair_cointegration"),
        dbt.ref("pair_kalman"),
        dbt.ref("pair_ou_parameters"),
        dbt.ref("pair_spreads"),
        dbt.ref("pair_universe"),
        dbt.ref("pairs_backtest_equity"),
        dbt.ref("pairs_backtest_fills"),
        dbt.ref("pairs_backtest_metrics"),
        dbt.ref("pairs_backtest_runs"),
        dbt.ref("pairs_backtest_signals"),
        dbt.ref("pairs_backtest_trades"),
        dbt.ref("perpetual_bars"),
        dbt.ref("quality_quarantine"),
        dbt.ref("total_return_factors"),
        dbt.ref("walk_forward_splits"),
    ]
