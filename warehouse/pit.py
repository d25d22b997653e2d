"""Point-in-time adjusted bars from the Parquet marts (no DuckDB file lock involved).

``bars_as_of(paths, as_of)`` returns the bars up to ``as_of`` adjusted only by the
corporate actions with an ex-date on or before ``as_of``: what a backtest running on
that day could have known. Same rule as the ``bars_as_of(as_of)`` table macro the build
creates in the warehouse for the DuckDB shell.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from ingest.errors import InvalidInputError
from ingest.paths import DataPaths

from .layout import mart_files, mart_location

#: bars up to an as-of date, adjusted by the factors known on it; {bars}, {factors} and
#: {as_of} are SQL (a relation, a relation, a date expression)
AS_OF_SELECT = """
select
    bars.symbol, bars.source, bars.timeframe, bars.ts,
    bars.open, bars.high, bars.low, bars.close, bars.volume,
    coalesce(factors.split_factor, 1.0) as split_factor,
    coalesce(factors.dividend_factor, 1.0) as dividend_factor,
    bars.open * coalesce(factors.split_factor * factors.dividend_factor, 1.0) as open_adj,
    bars.high * coalesce(factors.split_factor * factors.dividend_factor, 1.0) as high_adj,
    bars.low * coalesce(factors.split_factor * factors.dividend_factor, 1.0) as low_adj,
    bars.close * coalesce(factors.split_factor * factors.dividend_factor, 1.0) as close_adj,
    bars.volume / coalesce(factors.split_factor, 1.0) as volume_adj,
    bars.is_final, bars.is_invalid, bars.is_outlier, bars.is_suspect, bars.quality_flags
from {bars} as bars
left join {factors} as factors
    on bars.symbol = factors.symbol
    and bars.ts >= factors.valid_from_at and bars.ts < factors.valid_to_at
    and {as_of}::date >= factors.known_from and {as_of}::date < factors.known_to
where bars.ts < ({as_of}::date + 1)::timestamptz
"""

_SQL = (
    AS_OF_SELECT.format(
        bars="read_parquet($bars)", factors="read_parquet($factors)", as_of="$as_of"
    )
    + "    {filters}\norder by bars.symbol, bars.timeframe, bars.ts\n"
)


def as_of_macro(bars: str = "bars_adjusted", factors: str = "adjustment_factors") -> str:
    """``create macro bars_as_of(as_of) as table ...`` over two relations: the same table
    macro the build creates in the warehouse, for any DuckDB connection over the marts."""
    return "create or replace macro bars_as_of(as_of) as table " + AS_OF_SELECT.format(
        bars=bars, factors=factors, as_of="as_of"
    )


def bars_as_of(
    paths: DataPaths | str | os.PathLike[str] | None,
    as_of: date | datetime | str,
    *,
    symbols: Sequence[str] | None = None,
    timeframe: str | None = None,
) -> pa.Table:
    """Bars up to ``as_of`` (inclusive), adjusted as seen on ``as_of``.

    ``paths`` is the data root (a path, or None for ``$DUCKMARKET_DATA`` / ./data)::

        bars_as_of("data", "2023-06-30", symbols=["SYN000"], timeframe="1d")
    """
    if not isinstance(paths, DataPaths):
        paths = DataPaths.from_arg(paths)
    if isinstance(as_of, datetime):
        as_of = as_of.date()
    marts = Path(os.path.realpath(paths.marts))  # both marts from one published set
    located = {}
    for name in ("bars_adjusted", "adjustment_factors"):
        located[name] = mart_location(marts, name)
        if located[name] is None:
            raise InvalidInputError(
                f"point in time needs the {name} mart, which is not under {paths.marts}; "
                "build the warehouse first (duckmarket build)"
            )
    params: dict[str, object] = {
        "bars": [str(f) for f in mart_files(located["bars_adjusted"])],
        "factors": [str(f) for f in mart_files(located["adjustment_factors"])],
        "as_of": str(as_of),
    }
    filters = ""
    if symbols is not None:
        filters += " and bars.symbol in (select unnest($symbols::varchar[]))"
        params["symbols"] = list(symbols)
    if timeframe is not None:
        filters += " and bars.timeframe = $timeframe"
        params["timeframe"] = timeframe
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        return con.execute(_SQL.format(filters=filters), params).to_arrow_table()
    finally:
        con.close()
