{#- Ticks aggregated to 1m bars (epoch-aligned minutes) through the same resample_bars
    macro as the bar marts, each tick a one-tick bar ordered by (ts, seq). A trade counts
    at its price and size; a quote (tick_type 'quote', Dukascopy's ticks) at its mid and
    its bid plus ask size, and also gives the minute's bid and ask OHLC. A source delivers
    one kind or the other, so a minute's OHLC is of trades or of mids, never a mix. -#}
{%- set sides = [] -%}
{%- for side in ['bid', 'ask'] -%}
    {%- do sides.extend([
        "arg_min(" ~ side ~ ", (ts, seq)) filter (where tick_type = 'quote') as " ~ side ~ "_open",
        "max(" ~ side ~ ") filter (where tick_type = 'quote') as " ~ side ~ "_high",
        "min(" ~ side ~ ") filter (where tick_type = 'quote') as " ~ side ~ "_low",
        "arg_max(" ~ side ~ ", (ts, seq)) filter (where tick_type = 'quote') as " ~ side ~ "_close",
    ]) -%}
{%- endfor -%}
{%- set counts = [
    "count(*) filter (where tick_type = 'trade') as trade_count",
    "count(*) filter (where tick_type = 'quote') as quote_count",
] -%}
with

ticks as (

    select
        source,
        symbol,
        ts,
        seq,
        tick_type,
        price,
        size,
        bid,
        ask,
        ingested_at
    from {{ ref('stg_lake__ticks') }}
    where
        price > 0
        and size >= 0
        and (tick_type = 'trade' or (bid > 0 and ask > 0))

),

ticks_as_bars as (

    select
        symbol,
        source,
        ts,
        seq,
        tick_type,
        price as open,
        price as high,
        price as low,
        price as close,
        size as volume,
        bid,
        ask,
        1 as bar_count,
        ingested_at
    from ticks

),

minute_bars as ({{ resample_bars('ticks_as_bars', '1m', sessions=false, order_by='(ts, seq)', carry=sides + counts) }}
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
        trade_count,
        quote_count,
        bid_open,
        bid_high,
        bid_low,
        bid_close,
        ask_open,
        ask_high,
        ask_low,
        ask_close,
        ingested_at
    from minute_bars

)

select * from final
