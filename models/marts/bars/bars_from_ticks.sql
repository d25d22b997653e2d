{#- Ticks aggregated to 1m bars (epoch-aligned minutes) through the same resample_bars
    macro as the bar marts: each trade is a one-trade bar, ordered by (ts, seq). -#}
with

ticks as (

    select
        source,
        symbol,
        ts,
        seq,
        price,
        size,
        ingested_at
    from {{ ref('stg_lake__ticks') }}
    where price > 0 and size >= 0

),

ticks_as_bars as (

    select
        symbol,
        source,
        ts,
        seq,
        price as open,
        price as high,
        price as low,
        price as close,
        size as volume,
        1 as bar_count,
        ingested_at
    from ticks

),

minute_bars as ({{ resample_bars('ticks_as_bars', '1m', sessions=false, order_by='(ts, seq)') }}
),

final as (

    select
        symbol,
        source,
        timeframe,
        ts,
        open,
        high,
        low,
        close,
        volume,
        bar_count as trade_count,
        ingested_at
    from minute_bars

)

select * from final
