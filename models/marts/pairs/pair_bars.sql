{#- Each pair's two price series aligned on their common timestamps only.

    price_a / price_b are total-return prices chained forward from each symbol's first bar:
    close_tr = close / (total_return_factor / the first bar's total_return_factor), with
    total_return_factor the product of the adjustment steps of the actions with ex-date up
    to the bar (total_return_factors). Equal to the as-traded close until the first action
    after the first bar, then compounding total returns; the same number as close_adj over
    the first bar's adjustment factor, but computed from bars and actions at or before ts
    only, so every pairs mart is point in time to the bit (close_adj moves with every later
    action). var('pairs_price_transform') = 'log' takes their logarithm. -#}
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
        close
    from {{ ref('bars_adjusted') }}
    where timeframe = '{{ var("pairs_timeframe") }}'

),

total_return_factors as (

    select
        symbol,
        valid_from_at,
        valid_to_at,
        total_return_factor
    from {{ ref('total_return_factors') }}

),

bars_joined_to_factors as (

    select
        bars.symbol,
        bars.timeframe,
        bars.ts,
        bars.close,
        coalesce(total_return_factors.total_return_factor, 1.0) as total_return_factor
    from bars
    left join total_return_factors
        on
            bars.symbol = total_return_factors.symbol
            and bars.ts >= total_return_factors.valid_from_at
            and bars.ts < total_return_factors.valid_to_at

),

first_factors as (

    select
        symbol,
        arg_min(total_return_factor, ts) as first_total_return_factor
    from bars_joined_to_factors
    group by symbol

),

bars_chained_forward as (

    select
        bars_joined_to_factors.symbol,
        bars_joined_to_factors.timeframe,
        bars_joined_to_factors.ts,
        bars_joined_to_factors.close,
        bars_joined_to_factors.close / (
            bars_joined_to_factors.total_return_factor / first_factors.first_total_return_factor
        ) as close_tr
    from bars_joined_to_factors
    inner join first_factors on bars_joined_to_factors.symbol = first_factors.symbol

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
