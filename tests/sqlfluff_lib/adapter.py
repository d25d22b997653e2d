"""``adapter`` for sqlfluff's Jinja templater (.sqlfluff: library_path), which lints the
models without dbt: ``adapter.dispatch(name, ...)`` returns a stand-in for the DuckDB
implementation of the engine-specific macros (macros/portable.sql, lake.sql, dedup.sql),
rendering SQL of the same shape, which is all a linter needs."""

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
}


def dispatch(macro_name: str, macro_namespace: str | None = None) -> Callable[..., Any]:
    return _STAND_INS[macro_name]


def quote(name: str) -> str:
    return f'"{name}"'
