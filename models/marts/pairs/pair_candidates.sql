{#- Candidate pairs: symbols of one asset class whose one-bar log returns (total-return
    adjusted) correlate at least var('pairs_screen_min_correlation') over each symbol's last
    var('pairs_screen_lookback') bars. A screen as of the latest data, not point in time. -#}
with

bars as (

    select
        symbol,
        ts,
        log_return
    from {{ ref('bars_adjusted') }}
    where
        timeframe = '{{ var("pairs_timeframe") }}'
        and log_return is not null
    qualify
        row_number() over (partition by symbol order by ts desc)
        <= {{ var('pairs_screen_lookback') }}

),

symbols as (

    select
        symbol,
        asset_class
    from {{ ref('int_symbols_deduplicated') }}

),

bars_with_asset_class as (

    select
        bars.symbol,
        bars.ts,
        bars.log_return,
        symbols.asset_class
    from bars
    inner join symbols on bars.symbol = symbols.symbol

),

returns_paired as (

    select
        bars_a.asset_class,
        bars_a.symbol as symbol_a,
        bars_b.symbol as symbol_b,
        count(*) as n_obs,
        min(bars_a.ts) as window_start_ts,
        max(bars_a.ts) as window_end_ts,
        corr(bars_a.log_return, bars_b.log_return) as return_correlation
    from bars_with_asset_class as bars_a
    inner join bars_with_asset_class as bars_b
        on
            bars_a.asset_class = bars_b.asset_class
            and bars_a.ts = bars_b.ts
            and bars_a.symbol < bars_b.symbol
    group by all

),

candidates as (

    select
        symbol_a,
        symbol_b,
        asset_class,
        n_obs,
        window_start_ts,
        window_end_ts,
        return_correlation,
        symbol_a || '_' || symbol_b as pair_id,
        row_number() over (
            partition by asset_class order by return_correlation desc
        ) as correlation_rank
    from returns_paired
    where
        n_obs >= {{ var('pairs_screen_lookback') }} // 2
        and return_correlation >= {{ var('pairs_screen_min_correlation') }}

)

select * from candidates
