{#- 1m -> 5m -> 1h (what bars_resampled does) equals 1m -> 1h directly through the same
    macro, over the last week of data (the whole history would cost a full scan). -#}
with

since as (

    select (max(ts) - interval 7 day)::date::timestamptz as since_at
    from {{ ref('bars_adjusted') }}
    where timeframe = '1m'

),

recent_minute_bars as (

    select
        bars.symbol,
        bars.source,
        bars.ts,
        bars.open,
        bars.high,
        bars.low,
        bars.close,
        bars.volume,
        bars.ingested_at,
        1 as bar_count,
        sessions.calendar,
        coalesce(sessions.session_date, bars.ts::date) as session_date,
        sessions.open_at as session_open_at,
        sessions.close_at as session_close_at
    from {{ ref('bars_adjusted') }} as bars
    left join {{ ref('int_symbols_deduplicated') }} as symbols
        on bars.symbol = symbols.symbol
    left join {{ ref('int_sessions_unioned') }} as sessions
        on
            sessions.calendar = coalesce(
                symbols.calendar, case when bars.symbol like '%/%' then '24/7' else 'XNYS' end
            )
            and bars.ts::date = sessions.session_date
    where
        bars.timeframe = '1m'
        and bars.ts >= (select since.since_at from since)

),

direct_hourly as (

    {{ resample_bars('recent_minute_bars', '1h') }}

),

cascaded_hourly as (

    select
        symbol,
        ts,
        open,
        high,
        low,
        close,
        volume,
        bar_count
    from {{ ref('bars_resampled') }}
    where
        timeframe = '1h'
        and ts >= (select since.since_at from since)

)

select
    coalesce(direct_hourly.symbol, cascaded_hourly.symbol) as symbol,
    coalesce(direct_hourly.ts, cascaded_hourly.ts) as ts,
    direct_hourly.close,
    cascaded_hourly.close as cascaded_close
from direct_hourly
full outer join cascaded_hourly
    on direct_hourly.symbol = cascaded_hourly.symbol and direct_hourly.ts = cascaded_hourly.ts
where
    direct_hourly.ts is null
    or cascaded_hourly.ts is null
    or direct_hourly.open != cascaded_hourly.open
    or direct_hourly.high != cascaded_hourly.high
    or direct_hourly.low != cascaded_hourly.low
    or direct_hourly.close != cascaded_hourly.close
    or direct_hourly.bar_count != cascaded_hourly.bar_count
    or abs(direct_hourly.volume - cascaded_hourly.volume) > 1e-6 * greatest(1, abs(direct_hourly.volume))
