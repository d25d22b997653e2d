{#- Each pair's two price series aligned on their common timestamps only.

    price_a / price_b are total-return prices chained forward from each symbol's first bar
    (close_adj divided by the adjustment factor of that first bar: equal to the as-traded
    close on the first bar, then compounding total returns). Unlike close_adj, whose level
    moves with every later corporate action, they depend only on bars and actions at or
    before ts, so every pairs mart is point in time. var('pairs_price_transform') = 'log'
    takes their logarithm. -#}
with

pairs as (

    select
        pair_id,
        symbol_a,
        symbol_b
    from {{ ref('pair_universe') }}

),

bars as (

    select
        symbol,
        timeframe,
        ts,
        close,
        close_adj,
        split_factor * dividend_factor as adjustment_factor
    from {{ ref('bars_adjusted') }}
    where timeframe = '{{ var("pairs_timeframe") }}'

),

first_factors as (

    select
        symbol,
        arg_min(adjustment_factor, ts) as first_adjustment_factor
    from bars
    group by symbol

),

bars_chained_forward as (

    select
        bars.symbol,
        bars.timeframe,
        bars.ts,
        bars.close,
        bars.close_adj / first_factors.first_adjustment_factor as close_tr
    from bars
    inner join first_factors on bars.symbol = first_factors.symbol

),

pairs_aligned as (

    select
        pairs.pair_id,
        pairs.symbol_a,
        pairs.symbol_b,
        bars_a.timeframe,
        bars_a.ts,
        bars_a.close as close_a,
        bars_b.close as close_b,
        bars_a.close_tr as close_tr_a,
        bars_b.close_tr as close_tr_b
    from pairs
    inner join bars_chained_forward as bars_a on pairs.symbol_a = bars_a.symbol
    inner join bars_chained_forward as bars_b
        on
            pairs.symbol_b = bars_b.symbol
            and bars_a.ts = bars_b.ts

),

prices_transformed as (

    select
        *,
        {% if var('pairs_price_transform') == 'log' -%}
        ln(close_tr_a) as price_a,
        ln(close_tr_b) as price_b,
        {%- else -%}
        close_tr_a as price_a,
        close_tr_b as price_b,
        {%- endif %}
        row_number() over (partition by pair_id order by ts) as bar_index
    from pairs_aligned

)

select * from prices_transformed
