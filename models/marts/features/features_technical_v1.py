"""Feature set `technical` version 1, declared in warehouse/features.py (point in time)."""

from warehouse.features import compute_features, feature_set
from warehouse.kernels import row_groups


def model(dbt, session):
    fs = feature_set("technical", 1)
    bars = (
        dbt.ref("bars_adjusted")
        .filter(f"timeframe = '{fs.timeframe}'")
        .select("symbol, ts, close, high, low")
        .set_alias("bars")
    )
    # each bar's forward total-return factor: actions with ex-date up to the bar only
    factors = (
        dbt.ref("total_return_factors")
        .select("symbol, valid_from_at, valid_to_at, total_return_factor")
        .set_alias("factors")
    )
    bars = bars.join(
        factors,
        "bars.symbol = factors.symbol and bars.ts >= factors.valid_from_at "
        "and bars.ts < factors.valid_to_at",
        how="left",
    ).select(
        "bars.symbol, bars.ts, bars.close, bars.high, bars.low, "
        "coalesce(factors.total_return_factor, 1.0) as total_return_factor"
    )
    # row-group sized batches: DuckDB writes them on all its threads
    return row_groups(compute_features(fs, bars.to_arrow_table()))
