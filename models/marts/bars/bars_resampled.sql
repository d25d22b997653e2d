{{
    config(
        tags=['portable'],
        materialized='incremental' if target.type == 'duckdb' else 'table',
        contract={'enforced': target.type == 'duckdb'},
        incremental_strategy='replace_range',
        unique_key=['symbol', 'timeframe'],
        range_column='ts',
        on_schema_change='fail',
        change_log=true,
        pre_hook=["{{ record_test_scope(this) }}", "{{ open_change_log(this) }}"],
        post_hook=["{{ record_adjustment_versions(this) }}"],
    )
}}
-- depends_on: {{ ref('stg_lake__bars') }}
-- depends_on: {{ ref('int_adjustment_factors_computed') }}
{#- 1m bars resampled to 5m, 15m, 30m, 1h, 4h (anchored at the session open), daily bars
    on the sessions of the symbol's calendar (an FX day runs 17:00 to 17:00 New York) and
    weekly bars, as traded and total-return adjusted, through the
    one macro resample_bars (cascaded: 1m -> 5m -> 15m -> 30m -> 1h -> 4h, 1h -> 1d -> 1w: each level
    reads the 3 to 12x fewer bars of the level below; the
    composition test shows this equals resampling 1m directly). is_partial marks buckets
    with fewer 1m bars than their session could hold. Incremental: from the start of the
    week of the first new 1m bar; a symbol whose adjustment changed is rebuilt. On Spark
    (tag `portable`) it is a table, built in full, without the contract (its data types in
    _bars__models.yml are DuckDB's) or the hooks. -#}
{% set factor_columns = ['max(price_factor) as price_factor', 'max(split_factor) as split_factor'] %}
{#- the columns the levels pass on, written once (Spark has neither `* exclude` nor
    `union all by name`) -#}
{% set bar_columns = [
    'symbol', 'source', 'timeframe', 'ts', 'open', 'high', 'low', 'close', 'volume', 'bar_count',
    'ingested_at',
] %}
{% set session_columns = ['calendar', 'session_date', 'session_open_at', 'session_close_at'] %}
{% set factors = ['price_factor', 'split_factor'] %}
{% set unioned_columns = bar_columns + [
    'session_date', 'expected_bar_count', 'open_adj', 'high_adj', 'low_adj', 'close_adj', 'volume_adj',
] %}
{% set plan = bar_mart_plan(this, week_aligned=true, timeframes=['1m']) %}

with

minute_bars as (

    select
        symbol,
        source,
        ts,
        open,
        high,
        low,
        close,
        volume,
        split_factor * dividend_factor as price_factor,
        split_factor,
        1 as bar_count,
        ingested_at
    from ({{ bar_mart_scan(ref('bars_adjusted'), plan, where="timeframe = '1m'") }}) as recomputed_minute_bars

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
        open_at,
        close_at,
        day_start_at,
        day_end_at,
        session_minutes
    from {{ ref('int_sessions_unioned') }}

),

symbol_sessions as (

    select
        symbols.symbol,
        sessions.calendar,
        sessions.session_date,
        sessions.open_at,
        sessions.close_at,
        sessions.day_start_at,
        sessions.day_end_at
    {#- symbols from a second (symbol-only) scan: reading them from minute_bars would make
        DuckDB materialise all the 1m rows for the two readers #}
    from (
        select distinct symbol
        from ({{ bar_mart_scan(ref('bars_adjusted'), plan, where="timeframe = '1m'") }}) as recomputed_symbols
    ) as symbols
    left join symbol_calendars
        on symbols.symbol = symbol_calendars.symbol
    inner join sessions
        on
            sessions.calendar = coalesce(
                symbol_calendars.calendar,
                case when symbols.symbol like '%/%' then '24/7' else 'XNYS' end
            )

),

{# A bar belongs to the session whose trading day [day_start_at, day_end_at) holds it:
    the session's UTC date for exchange calendars, the session itself for FX (17:00 to
    17:00 New York, across UTC midnight). Each session is listed under every UTC day its
    trading day touches (one for exchange calendars, two for FX), so bars find theirs by
    an equality join on the UTC day, then the exact bounds. #}
symbol_session_days as (

    select
        symbol,
        calendar,
        session_date,
        open_at,
        close_at,
        day_start_at,
        day_end_at,
        {{ each_integer(
            integer_divide(epoch_microseconds('day_start_at'), 86400000000),
            integer_divide('(' ~ epoch_microseconds('day_end_at') ~ ' - 1)', 86400000000) ~ ' + 1'
        ) }} as utc_day_number
    from symbol_sessions

),

{# The first level buckets 1m bars into 5m on the UTC clock (no join on 50M rows): the
    same buckets as anchoring at the session open for every exchange opening on a
    5-minute mark. Sessions are joined to the 5x fewer 5m bars. Adjustment factors are
    constant within a session (ex-dates start at 00:00 UTC), so adjusted intraday and
    daily prices are the raw ones times the bucket's factor. #}
bars_5m_on_clock as (

    {{ resample_bars('minute_bars', '5m', sessions=false, carry=factor_columns) }}

),

bars_5m as (

    select
        {%- for column in bar_columns + factors %}
        bars_5m_on_clock.{{ column }},
        {%- endfor %}
        symbol_session_days.calendar,
        coalesce(symbol_session_days.session_date, {{ utc_date('bars_5m_on_clock.ts') }}) as session_date,
        symbol_session_days.open_at as session_open_at,
        symbol_session_days.close_at as session_close_at,
        {{ expected_bar_count(
            'bars_5m_on_clock.ts', '5m', 1, 'symbol_session_days.open_at', 'symbol_session_days.close_at'
        ) }} as expected_bar_count
    from bars_5m_on_clock
    left join symbol_session_days
        on
            bars_5m_on_clock.symbol = symbol_session_days.symbol
            and {{ utc_day_number('bars_5m_on_clock.ts') }} = symbol_session_days.utc_day_number
            and bars_5m_on_clock.ts >= symbol_session_days.day_start_at
            and bars_5m_on_clock.ts < symbol_session_days.day_end_at

),

bars_15m as (

    {{ resample_bars('bars_5m', '15m', carry=factor_columns) }}

),

bars_30m as (

    {{ resample_bars('bars_15m', '30m', carry=factor_columns) }}

),

bars_1h as (

    {{ resample_bars('bars_30m', '1h', carry=factor_columns) }}

),

bars_4h as (

    {{ resample_bars('bars_1h', '4h', carry=factor_columns) }}

),

bars_1d as (

    {{ resample_bars('bars_1h', '1d', carry=factor_columns) }}

),

intraday_and_daily as (

    {%- for level in ['bars_5m', 'bars_15m', 'bars_30m', 'bars_1h', 'bars_4h', 'bars_1d'] %}
    select
        {{ (bar_columns + factors + ['session_date', 'expected_bar_count']) | join(',\n        ') }}
    from {{ level }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

),

intraday_and_daily_adjusted as (

    select
        {{ (bar_columns + ['session_date', 'expected_bar_count']) | join(',\n        ') }},
        open * price_factor as open_adj,
        high * price_factor as high_adj,
        low * price_factor as low_adj,
        close * price_factor as close_adj,
        volume / split_factor as volume_adj
    from intraday_and_daily

),

{# weeks span ex-dates: their adjusted prices aggregate the daily adjusted ones (from
   bars_1d, so that the large intraday_and_daily_adjusted has one reader) #}
bars_1d_adjusted as (

    select
        {{ (bar_columns + session_columns) | join(',\n        ') }},
        open * price_factor as open_adj,
        high * price_factor as high_adj,
        low * price_factor as low_adj,
        close * price_factor as close_adj,
        volume / split_factor as volume_adj
    from bars_1d

),

bars_1w as (

    {{ resample_bars('bars_1d_adjusted', '1w', suffixes=['', '_adj']) }}

),

weekly_session_minutes as (

    select
        calendar,
        {{ date_to_utc("date_trunc('week', session_date)::date") }} as ts,
        sum(session_minutes)::bigint as expected_bar_count
    from sessions
    group by all

),

bars_1w_expected as (

    select
        {%- for column in unioned_columns if column != 'expected_bar_count' %}
        bars_1w.{{ column }},
        {%- endfor %}
        weekly_session_minutes.expected_bar_count
    from bars_1w
    left join weekly_session_minutes
        on
            bars_1w.calendar = weekly_session_minutes.calendar
            and bars_1w.ts = weekly_session_minutes.ts

),

unioned as (

    select
        {{ unioned_columns | join(',\n        ') }}
    from intraday_and_daily_adjusted
    union all
    select
        {{ unioned_columns | join(',\n        ') }}
    from bars_1w_expected

),

final as (

    select
        symbol,
        source,
        timeframe,
        ts,
        session_date,
        open,
        high,
        low,
        close,
        volume,
        open_adj,
        high_adj,
        low_adj,
        close_adj,
        volume_adj,
        bar_count,
        expected_bar_count,
        coalesce(bar_count < expected_bar_count, false) as is_partial,
        ingested_at
    from unioned
    where {{ plan['keep'] }}

)

select * from final
