{#- Perpetual swaps' bars with the funding paid during each: a perpetual's return is its
    price move plus funding (a long pays a positive rate, a short receives it). A bar's
    funding is the sum of the rates its source paid at instants inside [ts, ts + timeframe):
    the position held from the previous close to this close was open then. Bars of every
    timeframe the lake holds (bars_adjusted) and of every timeframe resampled from 1m
    (bars_resampled) that the lake does not hold itself; perpetuals are the symbols with
    funding rates. -#}
with

funding as (

    select
        source,
        symbol,
        epoch_us(ts) as paid_us,
        funding_rate
    from {{ ref('stg_lake__funding_rates') }}

),

perpetuals as (

    select distinct
        source,
        symbol
    from funding

),

lake_bars as (

    select
        bars.symbol,
        bars.source,
        bars.timeframe,
        bars.ts,
        bars.open,
        bars.high,
        bars.low,
        bars.close,
        bars.volume,
        bars.is_final
    from {{ ref('bars_adjusted') }} as bars
    semi join perpetuals
        on bars.source = perpetuals.source and bars.symbol = perpetuals.symbol

),

lake_series as (

    select distinct
        symbol,
        timeframe
    from lake_bars

),

resampled_bars as (

    select
        resampled.symbol,
        resampled.source,
        resampled.timeframe,
        resampled.ts,
        resampled.open,
        resampled.high,
        resampled.low,
        resampled.close,
        resampled.volume,
        not resampled.is_partial as is_final
    from {{ ref('bars_resampled') }} as resampled
    semi join perpetuals
        on resampled.source = perpetuals.source and resampled.symbol = perpetuals.symbol
    anti join lake_series
        on resampled.symbol = lake_series.symbol and resampled.timeframe = lake_series.timeframe

),

perpetual_bars as (

    select * from lake_bars
    union all
    select * from resampled_bars

),

bar_spans as (

    select
        *,
        epoch_us(ts) as start_us,
        epoch_us(ts) + {{ timeframe_microseconds('timeframe') }} as end_us
    from perpetual_bars

),

funding_per_bar as (

    select
        bar_spans.source,
        bar_spans.symbol,
        bar_spans.timeframe,
        bar_spans.ts,
        sum(funding.funding_rate) as funding_rate,
        count(*) as funding_payments
    from bar_spans
    inner join funding
        on
            bar_spans.source = funding.source
            and bar_spans.symbol = funding.symbol
            and bar_spans.start_us <= funding.paid_us
            and bar_spans.end_us > funding.paid_us
    group by all

),

bars_with_funding as (

    select
        bar_spans.symbol,
        bar_spans.source,
        bar_spans.timeframe,
        bar_spans.ts,
        bar_spans.open,
        bar_spans.high,
        bar_spans.low,
        bar_spans.close,
        bar_spans.volume,
        bar_spans.is_final,
        coalesce(funding_per_bar.funding_rate, 0.0) as funding_rate,
        coalesce(funding_per_bar.funding_payments, 0) as funding_payments
    from bar_spans
    left join funding_per_bar
        on
            bar_spans.source = funding_per_bar.source
            and bar_spans.symbol = funding_per_bar.symbol
            and bar_spans.timeframe = funding_per_bar.timeframe
            and bar_spans.ts = funding_per_bar.ts

),

returns_computed as (

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
        funding_rate,
        funding_payments::bigint as funding_payments,
        close / lag(close) over symbol_series - 1 as price_return,
        close / lag(close) over symbol_series - 1 - funding_rate as total_return,
        sum(funding_rate) over (
            symbol_series rows between unbounded preceding and current row
        ) as cumulative_funding,
        is_final
    from bars_with_funding
    window symbol_series as (partition by symbol, timeframe order by ts)

)

select * from returns_computed
