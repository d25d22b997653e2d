"""Reference implementations of the bar marts for benchmarks/bench_warehouse.py.

Each computes, from the same raw lake, what a bar mart computes, so that the mart's time
can be stated as a ratio of a hand-written plain query measured in the same run:

* ``adjusted_sql``: one plain DuckDB statement for ``bars_adjusted`` (dedup across sources
  when the lake has several for a series, adjustment factors from the corporate actions
  and the previous session's close, an ASOF join of the bars to them, split-only and total
  return adjusted OHLCV, the hard quality checks and, while the mart carries it, the
  outlier screen);
* ``resampled_sql``: a DuckDB cascade on integer buckets (epoch microseconds) for
  ``bars_resampled``: 1m -> 5m on the clock, sessions joined once to the 5m bars,
  15m/30m/1h/4h anchored at the session open, sessions -> 1d -> 1w, the sessions' minutes
  joined once at the end for expected_bar_count;
* ``polars_adjusted`` / ``polars_resampled``: the same with polars in memory (read and
  sort included; ``group_by_dynamic`` for the resampling).

They cover the bench lake's shape: exchange calendars whose trading day is the UTC date,
previous closes from daily bars. ``compare`` reports how far a reference's output is from
the published mart's, key by key, column by column.

The published marts are read with ``mart_relation`` / ``mart_files``, through the
package's own layout module (warehouse/layout.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from warehouse import layout

REPO = Path(__file__).resolve().parents[1]
DAY_US = 86_400_000_000
MINUTE_US = 60_000_000
#: the first segment of the adjustment factors starts here (as in the model)
FIRST_VALID_DAY = -25_567  # 1900-01-01
#: intraday levels of the resampling cascade: (timeframe, width in minutes, input level)
CASCADE = (("15m", 15, "5m"), ("30m", 30, "15m"), ("1h", 60, "30m"), ("4h", 240, "1h"))

ADJUSTED_COLUMNS = (
    "symbol",
    "source",
    "timeframe",
    "period",
    "ts",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "split_factor",
    "dividend_factor",
    "open_split_adj",
    "high_split_adj",
    "low_split_adj",
    "close_split_adj",
    "volume_split_adj",
    "open_adj",
    "high_adj",
    "low_adj",
    "close_adj",
    "volume_adj",
    "log_return",
    "outlier_score",
    "is_final",
    "is_invalid",
    "is_outlier",
    "is_suspect",
    "quality_mask",
    "quality_flags",
    "ingested_at",
)
#: the columns of the outlier screen (computed only when the mart has one of them)
SCREEN_COLUMNS = frozenset({"log_return", "outlier_score", "is_outlier"})
#: what the resampling step reads from the adjusted bars, whatever the mart keeps
RESAMPLE_INPUTS = ("split_factor", "dividend_factor")
RESAMPLED_COLUMNS = (
    "symbol",
    "source",
    "timeframe",
    "ts",
    "session_date",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "open_adj",
    "high_adj",
    "low_adj",
    "close_adj",
    "volume_adj",
    "bar_count",
    "expected_bar_count",
    "is_partial",
    "ingested_at",
)
QUALITY_FLAGS = (
    (1, "non_positive_price"),
    (2, "high_below_open_close"),
    (4, "low_above_open_close"),
    (8, "negative_volume"),
    (16, "missing_value"),
    (32, "misaligned_ts"),
    (64, "action_jump_mismatch"),
    (128, "outlier"),
)


# --- the project's parameters and the lake ---------------------------------------------


@dataclass(frozen=True)
class Params:
    """The dbt vars the bar marts use (dbt_project.yml), so references use the same."""

    source_precedence: tuple[str, ...]
    half_window: int
    threshold: float
    min_scale: float
    jump_tolerance: float

    @classmethod
    def from_project(cls) -> Params:
        v = yaml.safe_load((REPO / "dbt_project.yml").read_text())["vars"]
        return cls(
            tuple(v["source_precedence"]),
            int(v["outlier_half_window"]),
            float(v["outlier_threshold"]),
            float(v["outlier_min_scale"]),
            float(v["action_jump_tolerance"]),
        )

    def rank_sql(self, column: str = "source") -> str:
        names = ", ".join(f"'{s}'" for s in self.source_precedence)
        return f"coalesce(list_position([{names}]::varchar[], {column}), 1000)"


def multi_source_series(lake: Path) -> set[tuple[str, str]]:
    """(timeframe, symbol) series that more than one source delivers (file names only)."""
    seen: dict[tuple[str, str], set[str]] = {}
    for f in lake.glob("bars/*/*/*/*/data.parquet"):
        src, tf, sym = (p.split("=", 1)[1] for p in f.parts[-5:-2])
        seen.setdefault((tf, sym), set()).add(src)
    return {k for k, v in seen.items() if len(v) > 1}


def _lit(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def lake_scan(lake: Path, dataset: str, pattern: str) -> str:
    return (
        f"read_parquet({_lit(lake / dataset / pattern)}, hive_partitioning = true, "
        "hive_types_autocast = false, union_by_name = true)"
    )


# --- reading the published marts --------------------------------------------------------


def mart_files(set_dir: Path, name: str) -> list[Path]:
    """The Parquet files of a published mart (none when the set lacks it)."""
    location = layout.mart_location(set_dir, name)
    return layout.mart_files(location) if location is not None else []


def mart_relation(set_dir: Path, name: str) -> str | None:
    """A DuckDB ``read_parquet(...)`` over the mart's files (None if the set lacks it)."""
    location = layout.mart_location(set_dir, name)
    return layout.parquet_scan(location) if location is not None else None


def columns_of(con: Any, relation: str) -> dict[str, str]:
    """{column: type} of a relation."""
    return {r[0]: r[1] for r in con.execute(f"describe select * from {relation}").fetchall()}


# --- DuckDB: bars_adjusted ---------------------------------------------------------------


def adjusted_output(mart_columns: Iterable[str]) -> tuple[list[str], list[str]]:
    """(columns the reference writes, mart columns it cannot compute). The reference
    writes the mart's columns it knows, plus the factors the resampling step reads."""
    mart = list(mart_columns)
    out = [c for c in ADJUSTED_COLUMNS if c in mart or c in RESAMPLE_INPUTS]
    return out, [c for c in mart if c not in ADJUSTED_COLUMNS]


def _flags_sql() -> str:
    items = ",\n".join(
        f"                case when quality_mask & {bit} != 0 then '{name}' end"
        for bit, name in QUALITY_FLAGS
    )
    return (
        "case when quality_mask = 0 then []::varchar[] else list_filter([\n"
        f"{items}\n            ], flag -> flag is not null) end"
    )


def _sql_bit_round(column: str) -> str:
    """macros/bit_round.sql: ``column`` rounded to 37 significant bits."""
    return (
        f"case when abs({column}) < 1e300 "
        f"then {column} * 65537.0 - ({column} * 65537.0 - {column}) else {column} end"
    )


def _sql_adjusted(price: str, *factors: str) -> str:
    """An adjusted price as the model stores it: the raw price where every factor is 1,
    else the product bit-rounded."""
    product = " * ".join((price, *factors))
    unadjusted = " and ".join(f"{f} = 1" for f in factors)
    return f"case when {unadjusted} then {price} else {_sql_bit_round(f'({product})')} end"


def adjusted_sql(lake: Path, columns: Sequence[str], params: Params, table: str) -> str:
    """``create table <table>`` of the adjusted bars, from the lake, in one statement."""
    screen = bool(SCREEN_COLUMNS & set(columns))
    multi = multi_source_series(lake)
    rank = params.rank_sql()
    dedup = (
        f"qualify row_number() over (partition by symbol, timeframe, ts order by {rank}, "
        "source) = 1"
        if multi
        else ""
    )
    k = params.half_window
    outlier_bit = (
        f"+ case when outlier_score > {params.threshold!r} then 128 else 0 end" if screen else ""
    )
    screen_ctes = f"""
returns_around as (
    select
        *,
        ln(close_adj / lag(close_adj) over series_in_time) as log_return,
        ln(lead(close_adj) over series_in_time / close_adj) as next_log_return
    from adjusted
    window series_in_time as (partition by symbol, timeframe order by ts)
),
return_scales as (
    select
        *,
        sum(abs(log_return)) over nearby_bars as nearby_abs_return_sum,
        count(log_return) over nearby_bars as nearby_return_count
    from returns_around
    window nearby_bars as (
        partition by symbol, timeframe order by ts
        rows between {k} preceding and {k} following
    )
),
scored as (
    select
        *,
        case
            when sign(log_return) = -sign(next_log_return) and nearby_return_count > 2
                then least(abs(log_return), abs(next_log_return)) / greatest(
                    (nearby_abs_return_sum - abs(log_return) - abs(next_log_return))
                    / (nearby_return_count - 2),
                    {params.min_scale!r}
                )
            else 0.0
        end as outlier_score
    from return_scales
),
screened as (
    select
        * replace (
            {_sql_bit_round("log_return")} as log_return,
            {_sql_bit_round("outlier_score")} as outlier_score
        )
    from scored
),"""
    expressions = {
        "is_invalid": "quality_mask & 127 != 0",
        "is_outlier": "quality_mask & 128 != 0",
        "is_suspect": "quality_mask != 0",
        "quality_flags": _flags_sql(),
    }
    select = ",\n    ".join(f"{expressions.get(c, c)} as {c}" for c in columns)
    return f"""
create table {table} as
with
bars as (
    select
        source::varchar as source, symbol::varchar as symbol,
        timeframe::varchar as timeframe, period::varchar as period, ts,
        open::double as open, high::double as high, low::double as low,
        close::double as close, volume::double as volume,
        coalesce(is_final::boolean, true) as is_final, ingested_at
    from {lake_scan(lake, "bars", "*/*/*/*/data.parquet")}
    {dedup}
),
daily_prices as (
    select
        symbol::varchar as symbol,
        epoch_us(ts) // {DAY_US} as day_number,
        open::double as open,
        close::double as close
    from {lake_scan(lake, "bars", "*/timeframe=1d/*/*/data.parquet")}
    {dedup.replace("timeframe, ", "")}
),
actions as (
    select
        symbol::varchar as symbol,
        (ex_date::date - date '1970-01-01')::bigint as ex_day,
        lower(action_type) as action_type,
        split_ratio::double as split_ratio,
        cash_amount::double as cash_amount
    from {lake_scan(lake, "corporate_actions", "*/*/data.parquet")}
    qualify row_number() over (
        partition by symbol, ex_date, lower(action_type) order by {rank}, source
    ) = 1
),
actions_with_previous_close as (
    select actions.*, previous_session.close as previous_close
    from actions
    asof left join daily_prices as previous_session
        on actions.symbol = previous_session.symbol
        and actions.ex_day > previous_session.day_number
),
actions_priced as (
    select actions_with_previous_close.*, ex_session.open as ex_open
    from actions_with_previous_close
    asof left join daily_prices as ex_session
        on actions_with_previous_close.symbol = ex_session.symbol
        and actions_with_previous_close.ex_day <= ex_session.day_number
),
actions_valid as (
    select
        *,
        coalesce(
            product(split_ratio) filter (where action_type = 'split' and split_ratio > 0)
                over (partition by symbol, ex_day),
            1.0
        ) as same_day_split
    from actions_priced
    where
        (action_type = 'split' and split_ratio > 0 and not isnan(split_ratio))
        or (action_type = 'dividend' and cash_amount > 0 and not isnan(cash_amount))
),
actions_measured as (
    select
        *,
        case when action_type = 'split' then 1.0 / split_ratio
            else 1.0 - cash_amount * same_day_split / previous_close end as step,
        case when action_type = 'split' then -ln(split_ratio)
            else ln(1.0 - cash_amount * same_day_split / previous_close) end as expected_jump,
        ln(ex_open / previous_close) as observed_jump
    from actions_valid
    where action_type = 'split'
        or (previous_close is not null and cash_amount * same_day_split < previous_close)
),
ex_date_steps as (
    select
        symbol,
        ex_day,
        product(case when action_type = 'split' then step else 1.0 end) as split_step,
        product(case when action_type = 'dividend' then step else 1.0 end) as dividend_step,
        bool_or(coalesce(abs(observed_jump - expected_sum) > {params.jump_tolerance!r}, false))
            as has_jump_mismatch
    from (
        select *, sum(expected_jump) over (partition by symbol, ex_day) as expected_sum
        from actions_measured
    )
    group by all
),
segments as (
    select
        symbol,
        ex_day as from_day,
        coalesce(product(split_step) over later_ex_dates, 1.0) as split_factor,
        coalesce(product(dividend_step) over later_ex_dates, 1.0) as dividend_factor,
        has_jump_mismatch as starts_with_jump_mismatch
    from ex_date_steps
    window later_ex_dates as (
        partition by symbol order by ex_day rows between 1 following and unbounded following
    )
    union all
    select symbol, {FIRST_VALID_DAY}, product(split_step), product(dividend_step), false
    from ex_date_steps
    group by symbol
),
segments_from as (
    select *, make_timestamptz(from_day * {DAY_US}) as from_ts from segments
),
bars_with_factors as (
    select
        bars.*,
        coalesce(segments_from.split_factor, 1.0) as split_factor,
        coalesce(segments_from.dividend_factor, 1.0) as dividend_factor,
        coalesce(
            segments_from.starts_with_jump_mismatch
            and segments_from.from_day = epoch_us(bars.ts) // {DAY_US},
            false
        ) as is_on_mismatched_ex_date
    from bars
    asof left join segments_from
        on bars.symbol = segments_from.symbol and bars.ts >= segments_from.from_ts
),
adjusted as (
    select
        *,
        {_sql_adjusted("open", "split_factor")} as open_split_adj,
        {_sql_adjusted("high", "split_factor")} as high_split_adj,
        {_sql_adjusted("low", "split_factor")} as low_split_adj,
        {_sql_adjusted("close", "split_factor")} as close_split_adj,
        volume / split_factor as volume_split_adj,
        {_sql_adjusted("open", "split_factor", "dividend_factor")} as open_adj,
        {_sql_adjusted("high", "split_factor", "dividend_factor")} as high_adj,
        {_sql_adjusted("low", "split_factor", "dividend_factor")} as low_adj,
        {_sql_adjusted("close", "split_factor", "dividend_factor")} as close_adj,
        volume / split_factor as volume_adj
    from bars_with_factors
),{screen_ctes if screen else ""}
checked as (
    select
        *,
        (
            case when coalesce(least(open, high, low, close) <= 0, false) then 1 else 0 end
            + case when high < greatest(open, close) then 2 else 0 end
            + case when low > least(open, close) then 4 else 0 end
            + case when volume < 0 then 8 else 0 end
            + case when open is null or high is null or low is null or close is null
                or volume is null or isnan(open) or isnan(high) or isnan(low)
                or isnan(close) or isnan(volume) then 16 else 0 end
            + case
                when timeframe in ('1d', '1w') and epoch_us(ts) % {DAY_US} != 0 then 32
                when epoch_us(ts) % {MINUTE_US} != 0 then 32
                else 0
            end
            + case when is_on_mismatched_ex_date then 64 else 0 end
            {outlier_bit}
        )::utinyint as quality_mask
    from {"screened" if screen else "adjusted"}
)
select
    {select}
from checked
"""


# --- DuckDB: bars_resampled --------------------------------------------------------------


def _level_sql(source: str, timeframe: str, width_min: int) -> str:
    """One level of the cascade: buckets anchored at the session open (anchor_us)."""
    w = width_min * MINUTE_US
    offset = "(ts_us - anchor_us)"
    bucket = f"anchor_us + {offset} - (({offset} % {w}) + {w}) % {w}"
    return f"""
    select
        symbol, session_day, anchor_us, bucket_us as ts_us, '{timeframe}' as timeframe,
        {w}::bigint as width_us,
        any_value(source) as source,
        arg_min(open, ts_us) as open, max(high) as high, min(low) as low,
        arg_max(close, ts_us) as close, sum(volume) as volume,
        sum(bar_count)::bigint as bar_count,
        max(price_factor) as price_factor, max(split_factor) as split_factor,
        max(ingested_at) as ingested_at
    from (select *, {bucket} as bucket_us from {source})
    group by symbol, session_day, anchor_us, bucket_us"""


def resampled_sql(lake: Path, adjusted: str, columns: Sequence[str], table: str) -> str:
    """``create table <table>`` of the resampled bars, from the adjusted 1m bars in the
    relation ``adjusted`` and the lake's sessions: an integer-bucket cascade."""
    levels = ",\n".join(
        f"bars_{tf} as ({_level_sql(f'bars_{src}', tf, width)}\n)" for tf, width, src in CASCADE
    )
    daily = f"""
    select
        symbol, session_day, any_value(anchor_us) as anchor_us,
        session_day * {DAY_US} as ts_us, '1d' as timeframe, null::bigint as width_us,
        any_value(source) as source,
        arg_min(open, ts_us) as open, max(high) as high, min(low) as low,
        arg_max(close, ts_us) as close, sum(volume) as volume,
        sum(bar_count)::bigint as bar_count,
        max(price_factor) as price_factor, max(split_factor) as split_factor,
        max(ingested_at) as ingested_at
    from bars_1h
    group by symbol, session_day"""
    union = "\n    union all by name ".join(
        f"select * exclude (anchor_us) from bars_{tf}"
        for tf in ("5m", *(c[0] for c in CASCADE), "1d")
    )
    week = "(session_day - (session_day + 3) % 7)"  # the Monday on or before (day 0: Thu)
    select = ",\n    ".join(columns)
    return f"""
create table {table} as
with
minute_bars as (
    select
        symbol, source, epoch_us(ts) as ts_us, open, high, low, close, volume,
        split_factor * dividend_factor as price_factor, split_factor, ingested_at
    from {adjusted}
    where timeframe = '1m'
),
symbol_calendars as (
    select symbol::varchar as symbol, any_value(calendar) as calendar
    from {lake_scan(lake, "symbols", "*/data.parquet")}
    group by all
),
sessions as (
    select
        calendar::varchar as calendar,
        (session_date::date - date '1970-01-01')::bigint as session_day,
        epoch_us(open_at) as open_us,
        epoch_us(close_at) as close_us,
        epoch_us(day_start_at) as start_us,
        epoch_us(day_end_at) as end_us
    from {lake_scan(lake, "calendars", "*/data.parquet")}
),
symbol_sessions as (
    select symbol_calendars.symbol, symbol_calendars.calendar, sessions.*  exclude (calendar)
    from symbol_calendars
    inner join sessions
        on sessions.calendar = coalesce(symbol_calendars.calendar, 'XNYS')
),
symbol_session_days as (
    select
        *,
        unnest(range(start_us // {DAY_US}, (end_us - 1) // {DAY_US} + 1)) as utc_day
    from symbol_sessions
),
bars_5m_on_clock as (
    select
        symbol, ts_us // 300000000 * 300000000 as bucket_us,
        any_value(source) as source,
        arg_min(open, ts_us) as open, max(high) as high, min(low) as low,
        arg_max(close, ts_us) as close, sum(volume) as volume, count(*) as bar_count,
        max(price_factor) as price_factor, max(split_factor) as split_factor,
        max(ingested_at) as ingested_at
    from minute_bars
    group by symbol, bucket_us
),
bars_5m as (
    select
        bars_5m_on_clock.symbol,
        coalesce(days.session_day, bars_5m_on_clock.bucket_us // {DAY_US}) as session_day,
        coalesce(days.open_us, bars_5m_on_clock.bucket_us // {DAY_US} * {DAY_US})
            as anchor_us,
        bars_5m_on_clock.bucket_us as ts_us,
        '5m' as timeframe,
        300000000::bigint as width_us,
        bars_5m_on_clock.* exclude (symbol, bucket_us)
    from bars_5m_on_clock
    left join symbol_session_days as days
        on bars_5m_on_clock.symbol = days.symbol
        and bars_5m_on_clock.bucket_us // {DAY_US} = days.utc_day
        and bars_5m_on_clock.bucket_us >= days.start_us
        and bars_5m_on_clock.bucket_us < days.end_us
),
{levels},
bars_1d as ({daily}
),
intraday_and_daily as (
    {union}
),
adjusted as (
    select
        * exclude (price_factor, split_factor),
        open * price_factor as open_adj,
        high * price_factor as high_adj,
        low * price_factor as low_adj,
        close * price_factor as close_adj,
        volume / split_factor as volume_adj
    from intraday_and_daily
),
bars_1w as (
    select
        symbol, {week} as week_day, any_value(source) as source,
        arg_min(open, session_day) as open, max(high) as high, min(low) as low,
        arg_max(close, session_day) as close, sum(volume) as volume,
        arg_min(open_adj, session_day) as open_adj, max(high_adj) as high_adj,
        min(low_adj) as low_adj, arg_max(close_adj, session_day) as close_adj,
        sum(volume_adj) as volume_adj,
        sum(bar_count)::bigint as bar_count,
        min(session_day) as session_day,
        max(ingested_at) as ingested_at
    from adjusted
    where timeframe = '1d'
    group by symbol, week_day
),
weekly_minutes as (
    select calendar, {week} as week_day, sum((close_us - open_us) // {MINUTE_US}) as minutes
    from sessions
    group by all
),
intraday_and_daily_expected as (
    select
        adjusted.*,
        case
            when adjusted.timeframe = '1d'
                then (symbol_sessions.close_us - symbol_sessions.open_us) // {MINUTE_US}
            else greatest(
                0,
                least(adjusted.ts_us + adjusted.width_us, symbol_sessions.close_us)
                - greatest(adjusted.ts_us, symbol_sessions.open_us)
            ) // {MINUTE_US}
        end::bigint as expected_bar_count
    from adjusted
    left join symbol_sessions
        on adjusted.symbol = symbol_sessions.symbol
        and adjusted.session_day = symbol_sessions.session_day
),
weekly_expected as (
    select
        bars_1w.* exclude (week_day),
        bars_1w.week_day * {DAY_US} as ts_us,
        '1w' as timeframe,
        weekly_minutes.minutes::bigint as expected_bar_count
    from bars_1w
    left join symbol_calendars on bars_1w.symbol = symbol_calendars.symbol
    left join weekly_minutes
        on weekly_minutes.calendar = coalesce(symbol_calendars.calendar, 'XNYS')
        and bars_1w.week_day = weekly_minutes.week_day
),
unioned as (
    select * exclude (width_us) from intraday_and_daily_expected
    union all by name
    select * from weekly_expected
),
final as (
    select
        *,
        make_timestamptz(ts_us) as ts,
        date '1970-01-01' + session_day::integer as session_date,
        coalesce(bar_count < expected_bar_count, false) as is_partial
    from unioned
)
select
    {select}
from final
"""


# --- polars -------------------------------------------------------------------------------


def _pl():
    import polars as pl

    return pl


def _scan_lake(lake: Path, dataset: str, pattern: str, keys: Sequence[str]):
    pl = _pl()
    return pl.scan_parquet(
        str(lake / dataset / pattern),
        hive_partitioning=True,
        hive_schema={k: pl.String for k in keys},
        missing_columns="insert",
        extra_columns="ignore",
    )


def _dedup(frame, keys: Sequence[str], params: Params):
    pl = _pl()
    rank = pl.col("source").replace_strict(
        {s: i for i, s in enumerate(params.source_precedence)}, default=1000, return_dtype=pl.Int64
    )
    return (
        frame.with_columns(_rank=rank)
        .sort([*keys, "_rank", "source"])
        .unique(subset=list(keys), keep="first", maintain_order=True)
        .drop("_rank")
    )


def polars_adjusted(
    lake: Path, symbols: Sequence[str], columns: Sequence[str], params: Params
) -> Any:
    """bars_adjusted for ``symbols`` with polars (lake read, sorted, computed, collected)."""
    pl = _pl()
    bar_keys = ("source", "timeframe", "symbol", "period")
    multi = bool(multi_source_series(lake))
    scan = _scan_lake(lake, "bars", "*/*/*/*/data.parquet", bar_keys).filter(
        pl.col("symbol").is_in(list(symbols))
    )
    bars = scan.select(
        "source",
        "symbol",
        "timeframe",
        "period",
        "ts",
        *(pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume")),
        pl.col("is_final").cast(pl.Boolean).fill_null(True),
        "ingested_at",
    )
    if multi:
        bars = _dedup(bars, ("symbol", "timeframe", "ts"), params)
    bars = bars.sort("symbol", "timeframe", "ts")

    daily = (
        bars.filter(pl.col("timeframe") == "1d")
        .select(
            "symbol",
            day=pl.col("ts").dt.epoch("d").cast(pl.Int64),
            open=pl.col("open"),
            close=pl.col("close"),
        )
        .sort("day")
    )
    actions = _scan_lake(lake, "corporate_actions", "*/*/data.parquet", ("source", "symbol"))
    actions = actions.filter(pl.col("symbol").is_in(list(symbols))).select(
        "source",
        "symbol",
        "ex_date",
        ex_day=pl.col("ex_date").cast(pl.Date).cast(pl.Int32).cast(pl.Int64),
        action_type=pl.col("action_type").str.to_lowercase(),
        split_ratio=pl.col("split_ratio").cast(pl.Float64),
        cash_amount=pl.col("cash_amount").cast(pl.Float64),
    )
    actions = _dedup(actions, ("symbol", "ex_date", "action_type"), params).sort("ex_day")
    is_split = pl.col("action_type") == "split"
    is_dividend = pl.col("action_type") == "dividend"
    priced = (
        actions.join_asof(
            daily.select("symbol", "day", previous_close="close"),
            left_on="ex_day",
            right_on="day",
            by="symbol",
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
        .drop("day")
        .join_asof(
            daily.select("symbol", "day", ex_open="open"),
            left_on="ex_day",
            right_on="day",
            by="symbol",
            strategy="forward",
            check_sortedness=False,
        )
        .with_columns(
            same_day_split=pl.when(is_split & (pl.col("split_ratio") > 0))
            .then(pl.col("split_ratio"))
            .otherwise(1.0)
            .product()
            .over("symbol", "ex_day")
        )
    )
    cash = pl.col("cash_amount") * pl.col("same_day_split")
    valid = priced.filter(
        (is_split & (pl.col("split_ratio") > 0) & pl.col("split_ratio").is_not_nan())
        | (
            is_dividend
            & (pl.col("cash_amount") > 0)
            & pl.col("cash_amount").is_not_nan()
            & pl.col("previous_close").is_not_null()
            & (cash < pl.col("previous_close"))
        )
    )
    dividend_step = 1.0 - cash / pl.col("previous_close")
    measured = valid.with_columns(
        step=pl.when(is_split).then(1.0 / pl.col("split_ratio")).otherwise(dividend_step),
        expected_jump=pl.when(is_split)
        .then(-pl.col("split_ratio").log())
        .otherwise(dividend_step.log()),
        observed_jump=(pl.col("ex_open") / pl.col("previous_close")).log(),
    ).with_columns(expected_sum=pl.col("expected_jump").sum().over("symbol", "ex_day"))
    steps = (
        measured.group_by("symbol", "ex_day")
        .agg(
            split_step=pl.when(is_split).then(pl.col("step")).otherwise(1.0).product(),
            dividend_step=pl.when(is_dividend).then(pl.col("step")).otherwise(1.0).product(),
            has_jump_mismatch=(
                (pl.col("observed_jump") - pl.col("expected_sum")).abs() > params.jump_tolerance
            )
            .fill_null(False)
            .any(),
        )
        .sort("symbol", "ex_day")
    )
    later = [
        pl.col(c).cum_prod(reverse=True).shift(-1).over("symbol").fill_null(1.0).alias(f)
        for c, f in (("split_step", "split_factor"), ("dividend_step", "dividend_factor"))
    ]
    segments = pl.concat(
        [
            steps.select(
                "symbol",
                *later,
                from_day=pl.col("ex_day"),
                starts_with_jump_mismatch=pl.col("has_jump_mismatch"),
            ),
            steps.group_by("symbol").agg(
                from_day=pl.lit(FIRST_VALID_DAY, pl.Int64),
                split_factor=pl.col("split_step").product(),
                dividend_factor=pl.col("dividend_step").product(),
                starts_with_jump_mismatch=pl.lit(False),
            ),
        ],
        how="diagonal",
    )
    timeframes = bars.select(pl.col("timeframe").unique())
    segments = (
        segments.with_columns(
            from_ts=(pl.col("from_day") * DAY_US).cast(pl.Datetime("us", "UTC")),
        )
        .join(timeframes, how="cross")
        .sort("symbol", "timeframe", "from_ts")
    )
    joined = bars.join_asof(
        segments,
        left_on="ts",
        right_on="from_ts",
        by=["symbol", "timeframe"],
        strategy="backward",
        check_sortedness=False,
    ).with_columns(
        pl.col("split_factor").fill_null(1.0),
        pl.col("dividend_factor").fill_null(1.0),
        is_on_mismatched_ex_date=(
            pl.col("starts_with_jump_mismatch") & (pl.col("from_day") == pl.col("ts").dt.epoch("d"))
        ).fill_null(False),
    )
    sf, df = pl.col("split_factor"), pl.col("dividend_factor")
    prices = ("open", "high", "low", "close")
    out = joined.with_columns(
        **{
            f"{c}_split_adj": pl.when(sf == 1)
            .then(pl.col(c))
            .otherwise(_polars_bit_round(pl.col(c) * sf))
            for c in prices
        },
        volume_split_adj=pl.col("volume") / sf,
        **{
            f"{c}_adj": pl.when((sf == 1) & (df == 1))
            .then(pl.col(c))
            .otherwise(_polars_bit_round(pl.col(c) * sf * df))
            for c in prices
        },
        volume_adj=pl.col("volume") / sf,
    )
    screen = bool(SCREEN_COLUMNS & set(columns))
    if screen:
        out = _polars_screen(out, params)
    return (
        out.with_columns(quality_mask=_polars_mask(screen, params))
        .with_columns(**_polars_flags())
        .select(columns)
        .collect()
    )


def _polars_screen(frame, params: Params):
    pl = _pl()
    series = ["symbol", "timeframe"]
    close = pl.col("close_adj")
    window = 2 * params.half_window + 1
    frame = frame.with_columns(
        log_return=(close / close.shift(1)).log().over(series),
        next_log_return=(close.shift(-1) / close).log().over(series),
    )
    lr, nlr = pl.col("log_return"), pl.col("next_log_return")
    frame = frame.with_columns(
        nearby_abs=lr.abs()
        .fill_null(0.0)
        .rolling_sum(window, center=True, min_samples=1)
        .over(series),
        nearby_count=lr.is_not_null()
        .cast(pl.Int64)
        .rolling_sum(window, center=True, min_samples=1)
        .over(series),
    )
    scale = pl.max_horizontal(
        (pl.col("nearby_abs") - lr.abs() - nlr.abs()) / (pl.col("nearby_count") - 2),
        pl.lit(params.min_scale),
    )
    return frame.with_columns(
        outlier_score=pl.when((lr.sign() == -nlr.sign()) & (pl.col("nearby_count") > 2))
        .then(pl.min_horizontal(lr.abs(), nlr.abs()) / scale)
        .otherwise(0.0)
    ).with_columns(
        log_return=_polars_bit_round(lr),
        outlier_score=_polars_bit_round(pl.col("outlier_score")),
    )


def _polars_bit_round(x):
    """macros/bit_round.sql in polars: ``x`` rounded to 37 significant bits."""
    pl = _pl()
    return pl.when(x.abs() < 1e300).then(x * 65537.0 - (x * 65537.0 - x)).otherwise(x)


def _polars_mask(screen: bool, params: Params):
    pl = _pl()
    o, h, lo, c, v = (pl.col(x) for x in ("open", "high", "low", "close", "volume"))
    micros = pl.col("ts").dt.epoch("us")

    def bit(cond, value: int):
        return pl.when(cond).then(value).otherwise(0)

    missing = pl.any_horizontal(*(x.is_null() | x.is_nan() for x in (o, h, lo, c, v)))
    misaligned = pl.when(pl.col("timeframe").is_in(["1d", "1w"])).then(micros % DAY_US != 0)
    mask = (
        bit(pl.min_horizontal(o, h, lo, c) <= 0, 1)
        + bit(h < pl.max_horizontal(o, c), 2)
        + bit(lo > pl.min_horizontal(o, c), 4)
        + bit(v < 0, 8)
        + bit(missing, 16)
        + bit(misaligned.otherwise(micros % MINUTE_US != 0), 32)
        + bit(pl.col("is_on_mismatched_ex_date"), 64)
    )
    if screen:
        mask = mask + bit(pl.col("outlier_score") > params.threshold, 128)
    return mask.cast(pl.UInt8)


def _polars_flags() -> dict[str, Any]:
    pl = _pl()
    mask = pl.col("quality_mask")
    return {
        "is_invalid": (mask & 127) != 0,
        "is_outlier": (mask & 128) != 0,
        "is_suspect": mask != 0,
        "quality_flags": pl.concat_list(
            [pl.when((mask & b) != 0).then(pl.lit(n)).otherwise(None) for b, n in QUALITY_FLAGS]
        ).list.drop_nulls(),
    }


def polars_resampled(
    set_dir: Path, lake: Path, symbols: Sequence[str], columns: Sequence[str]
) -> Any:
    """bars_resampled for ``symbols`` with polars: the published bars_adjusted 1m rows
    read and sorted, then ``group_by_dynamic`` level by level (5m on the clock, sessions
    joined to the 5m bars, 15m..4h and 1d on a clock shifted so that each session opens
    at its date's midnight, 1w from the adjusted daily bars)."""
    pl = _pl()
    files = mart_files(set_dir, "bars_adjusted")
    minutes = (
        pl.scan_parquet([str(f) for f in files])
        .filter((pl.col("timeframe") == "1m") & pl.col("symbol").is_in(list(symbols)))
        .select(
            "symbol",
            "source",
            "ts",
            "open",
            "high",
            "low",
            "close",
            "volume",
            "ingested_at",
            price_factor=pl.col("split_factor") * pl.col("dividend_factor"),
            split_factor=pl.col("split_factor"),
            bar_count=pl.lit(1, pl.Int64),
        )
        .sort("symbol", "ts")
        .collect()
    )
    calendars = (
        _scan_lake(lake, "symbols", "*/data.parquet", ("source",))
        .group_by("symbol")
        .agg(pl.col("calendar").first())
        .collect()
    )
    sessions = (
        _scan_lake(lake, "calendars", "*/data.parquet", ("calendar",))
        .select("calendar", "session_date", "open_at", "close_at")
        .collect()
    )
    symbol_sessions = calendars.with_columns(pl.col("calendar").fill_null("XNYS")).join(
        sessions, on="calendar"
    )

    def bars_of(frame, index: str, every: str, *keep: str):
        return frame.group_by_dynamic(index, every=every, group_by="symbol").agg(
            pl.col("source").first(),
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            pl.col("bar_count").sum(),
            pl.col("price_factor").max(),
            pl.col("split_factor").max(),
            pl.col("ingested_at").max(),
            *(pl.col(k).first() for k in keep),
        )

    midnight = pl.col("session_date").cast(pl.Datetime("us", "UTC"))
    bars_5m = (
        bars_of(minutes, "ts", "5m")
        .with_columns(utc_date=pl.col("ts").dt.date())
        .join(
            symbol_sessions.select("symbol", "session_date", "open_at"),
            left_on=["symbol", "utc_date"],
            right_on=["symbol", "session_date"],
            how="left",
        )
        .with_columns(
            session_date=pl.col("utc_date"),
            anchor=(
                pl.col("open_at") - pl.col("utc_date").cast(pl.Datetime("us", "UTC"))
            ).fill_null(pl.duration(microseconds=0)),
        )
        .with_columns(vts=pl.col("ts") - pl.col("anchor"))
        .drop("utc_date", "open_at")
    )
    levels = {"5m": bars_5m}
    for timeframe, _, below in CASCADE:
        levels[timeframe] = bars_of(
            levels[below], "vts", timeframe, "session_date", "anchor"
        ).with_columns(ts=pl.col("vts") + pl.col("anchor"))
    levels["1d"] = bars_of(levels["1h"], "vts", "1d", "session_date").with_columns(ts=midnight)
    adjusted = pl.concat(
        [
            frame.select(
                "symbol",
                "ts",
                "session_date",
                "source",
                "open",
                "high",
                "low",
                "close",
                "volume",
                "bar_count",
                "price_factor",
                "split_factor",
                "ingested_at",
                timeframe=pl.lit(tf),
            )
            for tf, frame in levels.items()
        ]
    ).with_columns(
        **{
            f"{c}_adj": pl.col(c) * pl.col("price_factor") for c in ("open", "high", "low", "close")
        },
        volume_adj=pl.col("volume") / pl.col("split_factor"),
    )
    width = {"5m": 5, **{tf: w for tf, w, _ in CASCADE}}
    minutes_us = pl.col("timeframe").replace_strict(
        {tf: w * MINUTE_US for tf, w in width.items()}, default=None, return_dtype=pl.Int64
    )
    micros = pl.col("ts").dt.epoch("us")
    open_us, close_us = pl.col("open_at").dt.epoch("us"), pl.col("close_at").dt.epoch("us")
    expected = (
        pl.when(pl.col("timeframe") == "1d")
        .then((close_us - open_us) // MINUTE_US)
        .otherwise(
            pl.max_horizontal(
                pl.lit(0),
                pl.min_horizontal(micros + minutes_us, close_us)
                - pl.max_horizontal(micros, open_us),
            )
            // MINUTE_US
        )
    )
    intraday_and_daily = adjusted.join(
        symbol_sessions.select("symbol", "session_date", "open_at", "close_at"),
        on=["symbol", "session_date"],
        how="left",
    ).with_columns(expected_bar_count=expected.cast(pl.Int64))
    daily = adjusted.filter(pl.col("timeframe") == "1d").sort("symbol", "ts")
    weekly_minutes = (
        sessions.with_columns(
            week=pl.col("session_date").dt.truncate("1w"),
            minutes=(pl.col("close_at") - pl.col("open_at")).dt.total_minutes(),
        )
        .group_by("calendar", "week")
        .agg(expected_bar_count=pl.col("minutes").sum().cast(pl.Int64))
    )
    weekly = (
        daily.group_by_dynamic("ts", every="1w", group_by="symbol")
        .agg(
            pl.col("source").first(),
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            pl.col("open_adj").first(),
            pl.col("high_adj").max(),
            pl.col("low_adj").min(),
            pl.col("close_adj").last(),
            pl.col("volume_adj").sum(),
            pl.col("bar_count").sum(),
            pl.col("session_date").min(),
            pl.col("ingested_at").max(),
        )
        .with_columns(timeframe=pl.lit("1w"), week=pl.col("ts").dt.date())
        .join(calendars.with_columns(pl.col("calendar").fill_null("XNYS")), on="symbol", how="left")
        .join(weekly_minutes, on=["calendar", "week"], how="left")
    )
    return (
        pl.concat([intraday_and_daily, weekly], how="diagonal_relaxed")
        .with_columns(
            is_partial=(pl.col("bar_count") < pl.col("expected_bar_count")).fill_null(False)
        )
        .select(columns)
    )


# --- agreement --------------------------------------------------------------------------


@dataclass
class Agreement:
    ref_rows: int
    mart_rows: int
    matched: int
    columns: list[str]
    differing: dict[str, tuple[int, float | None]] = field(default_factory=dict)
    error: str | None = None

    def summary(self) -> str:
        if self.error:
            return f"not compared: {self.error}"
        same = len(self.columns) - len(self.differing)
        rows = (
            f"rows {self.ref_rows:,} = mart"
            if self.ref_rows == self.mart_rows == self.matched
            else f"rows ref {self.ref_rows:,}, mart {self.mart_rows:,}, same keys {self.matched:,}"
        )
        text = f"{rows}; {same}/{len(self.columns)} columns equal to 1e-9"
        if self.differing:
            worst = ", ".join(
                f"{c} ({n:,} rows" + (f", max |diff| {d:.3g})" if d is not None else ")")
                for c, (n, d) in self.differing.items()
            )
            text += f"; differ: {worst}"
        return text


_NUMERIC = (
    "DOUBLE",
    "FLOAT",
    "DECIMAL",
    "BIGINT",
    "INTEGER",
    "SMALLINT",
    "TINYINT",
    "UTINYINT",
    "UBIGINT",
    "UINTEGER",
    "USMALLINT",
    "HUGEINT",
)


def _numeric(t: str) -> bool:
    return t.upper().startswith(_NUMERIC)


def compare(
    con: Any,
    ref: str,
    mart: str,
    keys: Sequence[str],
    symbols: Sequence[str] | None = None,
    tolerance: float = 1e-9,
) -> Agreement:
    """Compare two relations key by key: row counts, then each common column (numbers to
    ``tolerance``, relative, or absolute below 1; anything else exactly)."""
    try:
        rc, mc = columns_of(con, ref), columns_of(con, mart)
        cols = [c for c in rc if c in mc and c not in keys]
        where = "where symbol in (" + ", ".join(f"'{s}'" for s in symbols) + ")" if symbols else ""
        tests = []
        for i, c in enumerate(cols):
            r, m = f"r.c{i}", f"m.c{i}"
            if _numeric(rc[c]) and _numeric(mc[c]):
                r, m = f"{r}::double", f"{m}::double"
                bad = (
                    f"not ({r} is not distinct from {m} or "
                    f"abs({r} - {m}) <= {tolerance!r} * greatest(abs({m}), 1.0))"
                )
                diff = f"max(abs({r} - {m})) filter (where r.k_ and m.k_)"
            else:
                if rc[c] != mc[c]:
                    r, m = f"{r}::varchar", f"{m}::varchar"
                bad = f"{r} is distinct from {m}"
                diff = "null"
            tests.append(f"count(*) filter (where r.k_ and m.k_ and {bad}), {diff}")
        pick = ", ".join(f'"{c}" as c{i}' for i, c in enumerate(cols))
        on = " and ".join(f'r."{k}" = m."{k}"' for k in keys)
        key_list = ", ".join(f'"{k}"' for k in keys)
        row = con.execute(
            f"""
            select
                count(*) filter (where r.k_), count(*) filter (where m.k_),
                count(*) filter (where r.k_ and m.k_)
                {"".join(", " + t for t in tests)}
            from (select {key_list}, {pick}, true as k_ from {ref} {where}) as r
            full outer join (select {key_list}, {pick}, true as k_ from {mart} {where}) as m
                on {on}
            """
        ).fetchone()
    except Exception as exc:  # a mart of another shape: say so, never stop the benchmark
        return Agreement(0, 0, 0, [], error=f"{type(exc).__name__}: {str(exc)[:300]}")
    out = Agreement(int(row[0]), int(row[1]), int(row[2]), cols)
    for i, c in enumerate(cols):
        n, d = row[3 + 2 * i], row[4 + 2 * i]
        if n:
            out.differing[c] = (int(n), None if d is None or math.isnan(d) else float(d))
    return out
