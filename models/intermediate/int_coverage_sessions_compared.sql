{{ config(tags=['portable']) }}
{#- For every series (source, symbol, timeframe; weekly bars excepted), each session of
    its symbol's calendar from its first to its last bar, with the bars the calendar
    expects and the bars observed; plus the days with bars but no session (a calendar
    mismatch: shown here, never a build failure). -#}
with

days_counted as (

    select
        source,
        symbol,
        timeframe,
        bar_date,
        row_count
    from {{ ref('int_bars_days_counted') }}
    where timeframe != '1w'

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
        session_minutes,
        row_number() over (partition by calendar order by session_date) as session_number
    from {{ ref('int_sessions_unioned') }}

),

series as (

    select
        days_counted.source,
        days_counted.symbol,
        days_counted.timeframe,
        coalesce(
            {{ any_non_null('symbol_calendars.calendar') }},
            case when days_counted.symbol like '%/%' then '24/7' else 'XNYS' end
        ) as calendar,
        min(days_counted.bar_date) as first_date,
        max(days_counted.bar_date) as last_date
    from days_counted
    left join symbol_calendars
        on days_counted.symbol = symbol_calendars.symbol
    group by days_counted.source, days_counted.symbol, days_counted.timeframe

),

expected_sessions as (

    select
        series.source,
        series.symbol,
        series.timeframe,
        series.calendar,
        sessions.session_date,
        sessions.session_number,
        sessions.open_at,
        sessions.close_at,
        case
            when series.timeframe = '1d' then 1
            else
                ceil(
                    sessions.session_minutes
                    / ({{ timeframe_microseconds('series.timeframe') }} / 60000000)
                )::bigint
        end as expected_rows
    from series
    inner join sessions
        on
            series.calendar = sessions.calendar
            and sessions.session_date between series.first_date and series.last_date

),

sessions_compared as (

    select
        expected_sessions.*,
        coalesce(days_counted.row_count, 0) as observed_rows,
        false as is_outside_sessions
    from expected_sessions
    left join days_counted
        on
            expected_sessions.source = days_counted.source
            and expected_sessions.symbol = days_counted.symbol
            and expected_sessions.timeframe = days_counted.timeframe
            and expected_sessions.session_date = days_counted.bar_date

),

days_outside_sessions as (

    select
        days_counted.source,
        days_counted.symbol,
        days_counted.timeframe,
        series.calendar,
        days_counted.bar_date as session_date,
        null::bigint as session_number,
        null::{{ type_name('timestamptz') }} as open_at,
        null::{{ type_name('timestamptz') }} as close_at,
        0::bigint as expected_rows,
        days_counted.row_count as observed_rows,
        true as is_outside_sessions
    from days_counted
    inner join series
        on
            days_counted.source = series.source
            and days_counted.symbol = series.symbol
            and days_counted.timeframe = series.timeframe
    anti join sessions
        on
            series.calendar = sessions.calendar
            and days_counted.bar_date = sessions.session_date

),

unioned as (

    select * from sessions_compared
    union all
    select * from days_outside_sessions

)

select * from unioned
