"""Feature set `technical` version 1, declared in warehouse/features.py (point in time)."""

from warehouse.features import compute_features, feature_set
from warehouse.kernels import row_groups


def model(dbt, session):
    fs = feature_set("technical", 1)
    bars = (
        dbt.ref("bars_adjusted")
        .filter(f"timeframe = '{fs.timeframe}'")
        .select("symbol, ts, close, close_adj, high_adj, low_adj, split_factor, dividend_factor")
        .to_arrow_table()
    )
    # row-group sized batches: DuckDB writes them on all its threads
    return row_groups(compute_features(fs, bars))
