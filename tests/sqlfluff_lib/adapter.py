"""``adapter`` for sqlfluff's Jinja templater (.sqlfluff: library_path), which lints the
models without dbt: ``adapter.dispatch(name, ...)`` returns a stand-in for the DuckDB
implementation of the engine-specific macros (macros/portable.sql, portable_bars.sql,
lake.sql, dedup.sql), rendering SQL of the same shape, which is all a linter needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_STAND_INS: dict[str, Callable[..., Any]] = {
    "type_name": lambda name: name,
    "lake_has_files": lambda relation: True,
    "lake_source": lambda source_name, table_name: (
        f"read_parquet('lake/{table_name}/**/*.parquet')"
    ),
    "lake_file_columns": lambda source_name, table_name: [],
    "source_rank": lambda column: f"coalesce(list_position(['csv'], {column}), 1000)",
    "utc_date": lambda ts: f"({ts})::date",
    "multi_source_series": lambda: [],
    "symbols_without_daily_bars": lambda: [],
    "product_of": lambda expr, where=None, over=None: (
        f"product({expr})"
        + (f" filter (where {where})" if where else "")
        + (f" over {over}" if over else "")
    ),
    "string_agg_ordered": lambda expr, separator, order_by: (
        f"string_agg({expr}, '{separator}' order by {order_by})"
    ),
    "double_text": lambda x: f"{x}::varchar",
    "with_sessions_around_ex_date": lambda actions, sessions: (
        f"select {actions}.*, previous_session.session_date as previous_session_date,"
        " previous_session.close as previous_close,"
        " ex_session.session_date as ex_session_date, ex_session.open as ex_open"
        f" from {actions}"
        f" asof left join {sessions} as previous_session"
        f" on {actions}.symbol = previous_session.symbol"
        f" and {actions}.ex_date > previous_session.session_date"
        f" asof left join {sessions} as ex_session"
        f" on {actions}.symbol = ex_session.symbol and {actions}.ex_date <= ex_session.session_date"
    ),
    "utc_day_number": lambda ts: f"(epoch_us({ts}) // 86400000000)",
    "epoch_microseconds": lambda ts: f"epoch_us({ts})",
    "days_since_epoch": lambda day: f"({day} - date '1970-01-01')::bigint",
    "each_integer": lambda first, stop: f"unnest(range({first}, {stop}))",
    "text_list_without_nulls": lambda items: (
        "list_filter([" + ", ".join(items) + "], flag -> flag is not null)"
    ),
    "empty_text_list": lambda: "[]::varchar[]",
    "timestamp_text": lambda ts: f"{ts}::varchar",
    "each_element": lambda column: f"unnest({column})",
    "json_object": lambda columns: (
        "to_json({" + ", ".join(f"{c}: {c}" for c in columns) + "})::varchar"
    ),
    "integer_divide": lambda dividend, divisor: f"({dividend} // {divisor})",
    "epoch_seconds": lambda ts: f"epoch({ts})",
    "timestamp_from_microseconds": lambda us: f"make_timestamptz({us})",
    "first_by": lambda value, ordering: f"arg_min({value}, {ordering})",
    "last_by": lambda value, ordering: f"arg_max({value}, {ordering})",
    "any_non_null": lambda value: f"any_value({value})",
    "days_before_now": lambda days: f"(now() - to_days({days}))",
    "list_in_order": lambda expr, order_by: f"list({expr} order by {order_by})",
    "product_of_first": lambda lst, n: f"list_reduce({lst}[1:{n}], (a, b) -> a * b)",
    "each_day_from": lambda first, last, alias, column: (
        f"generate_series({first}, {last}, interval 1 day) as {alias} ({column})"
    ),
}


def dispatch(macro_name: str, macro_namespace: str | None = None) -> Callable[..., Any]:
    return _STAND_INS[macro_name]


def quote(name: str) -> str:
    return f'"{name}"'
