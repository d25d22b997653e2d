{{ config(tags=['portable']) }}
{#- One open and close per symbol and session date, as traded: from daily bars, or for
    symbols without daily bars from their intraday bars (first open, last close of the
    UTC day). The previous session's close is what a dividend is measured against. -#}
{%- set without_daily = symbols_without_daily_bars() -%}

with

daily_bars as (

    select
        symbol,
        {{ utc_date('ts') }} as session_date,
        open,
        close
    from {{ ref('int_bars_deduplicated') }}
    where timeframe = '1d'

),

{% if without_daily %}
intraday_bars as (

    select
        symbol,
        timeframe,
        ts,
        open,
        close
    from {{ ref('int_bars_deduplicated') }}
    where
        symbol in ({{ sql_list(without_daily) }})
        and timeframe not in ('1d', '1w')

),

finest_intraday_timeframe as (

    select
        symbol,
        min_by(timeframe, {{ timeframe_interval('timeframe') }}) as timeframe
    from (
        select distinct
            symbol,
            timeframe
        from intraday_bars
    ) as intraday_timeframes
    group by symbol

),

intraday_days as (

    select
        intraday_bars.symbol,
        {{ utc_date('intraday_bars.ts') }} as session_date,
        min_by(intraday_bars.open, intraday_bars.ts) as open,
        max_by(intraday_bars.close, intraday_bars.ts) as close
    from intraday_bars
    inner join finest_intraday_timeframe
        on
            intraday_bars.symbol = finest_intraday_timeframe.symbol
            and intraday_bars.timeframe = finest_intraday_timeframe.timeframe
    group by all

),

collected as (

    select * from daily_bars
    union all
    select * from intraday_days

)
{% else %}
collected as (

    select * from daily_bars

)
{% endif %}

select * from collected
