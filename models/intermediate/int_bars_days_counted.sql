{{
    config(
        tags=['portable'],
        materialized='incremental' if target.type == 'duckdb' else 'table',
        incremental_strategy='replace_range',
        unique_key=['source', 'symbol', 'timeframe'],
        range_column='bar_date',
        on_schema_change='fail',
    )
}}
-- depends_on: {{ ref('stg_lake__bars') }}
{#- Observed bars per source, symbol, timeframe and trading day (coverage's raw material).
    A bar's day is its UTC date, except for a symbol whose calendar has its own trading
    days (FX: 17:00 to 17:00 New York), where it is the session whose day holds the bar
    (a bar outside every such day keeps its UTC date). Incremental: days from the first
    new lake row of each series on (read from the UTC day before, where a trading day may
    start). On Spark (tag `portable`) a table, built in full. -#}
{%- if is_incremental() -%}
{%- set plan = incremental_plan(this, by_source=true) -%}
{%- set since = "'" ~ (plan['series'] | map(attribute='min_ts') | min) ~ "'" if plan['series'] else "'infinity'" -%}
{%- endif %}

with

bars as (

    select
        source,
        symbol,
        timeframe,
        ts,
        ingested_at
    from {{ ref('stg_lake__bars') }}
    {%- if is_incremental() %}
    where
        ts >= {{ since }}::timestamptz::date::timestamptz - interval 1 day
        and (
            {%- for s in plan['series'] %}
            (
                source = '{{ s.source }}'
                and symbol = '{{ s.symbol | replace("'", "''") }}'
                and timeframe = '{{ s.timeframe }}'
                and ts >= '{{ s.min_ts }}'::timestamptz::date::timestamptz - interval 1 day
            ) or
            {%- endfor %}
            false
        )
    {%- endif %}

),

symbol_calendars as (

    select
        symbol,
        calendar
    from {{ ref('int_symbols_deduplicated') }}

),

sessions as (

    select
        calendar,
        session_date,
        day_start_at,
        day_end_at
    from {{ ref('int_sessions_unioned') }}

),

{# only sessions whose trading day is not their UTC date: the join below is empty (and
   free) for a lake without such calendars #}
symbol_shifted_days as (

    select
        symbol_calendars.symbol,
        sessions.session_date,
        sessions.day_start_at,
        sessions.day_end_at,
        {{ each_integer(
            integer_divide(epoch_microseconds('sessions.day_start_at'), '86400000000'),
            integer_divide('(' ~ epoch_microseconds('sessions.day_end_at') ~ ' - 1)', '86400000000') ~ ' + 1'
        ) }} as utc_day_number
    from symbol_calendars
    inner join sessions
        on symbol_calendars.calendar = sessions.calendar
    where
        sessions.day_start_at != {{ date_to_utc('sessions.session_date') }}
        or sessions.day_end_at != {{ date_to_utc('sessions.session_date + 1') }}

),

bars_dated as (

    select
        bars.source,
        bars.symbol,
        bars.timeframe,
        bars.ts,
        bars.ingested_at,
        coalesce(symbol_shifted_days.session_date, {{ utc_date('bars.ts') }}) as bar_date
    from bars
    left join symbol_shifted_days
        on
            bars.symbol = symbol_shifted_days.symbol
            and {{ utc_day_number('bars.ts') }} = symbol_shifted_days.utc_day_number
            and bars.ts >= symbol_shifted_days.day_start_at
            and bars.ts < symbol_shifted_days.day_end_at

),

counted as (

    select
        source,
        symbol,
        timeframe,
        bar_date,
        count(*) as row_count,
        min(ts) as first_ts,
        max(ts) as last_ts,
        max(ingested_at) as ingested_at
    from bars_dated
    {%- if is_incremental() %}
    where
    {%- for s in plan['series'] %}
        (
            source = '{{ s.source }}'
            and symbol = '{{ s.symbol | replace("'", "''") }}'
            and timeframe = '{{ s.timeframe }}'
            and bar_date >= '{{ s.min_ts }}'::timestamptz::date
        ) or
        {%- endfor %}
        false
    {%- endif %}
    group by all

)

select * from counted
