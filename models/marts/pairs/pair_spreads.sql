{#- Hedge ratios and spreads per pair and bar, from bars at or before ts only.

    Rolling OLS of price_a on price_b over the last var('pairs_ols_window') common bars
    (null until the window is full): spread = price_a - ols_beta * price_b - ols_alpha,
    z-scored over its last var('pairs_zscore_window') values. The Kalman-filter hedge
    (pair_kalman) sits beside it. -#}
{%- set ols_window = var('pairs_ols_window') | int -%}
{%- set zscore_window = var('pairs_zscore_window') | int -%}
with

pair_bars as (

    select
        pair_id,
        symbol_a,
        symbol_b,
        timeframe,
        ts,
        bar_index,
        close_a,
        close_b,
        price_a,
        price_b
    from {{ ref('pair_bars') }}

),

kalman as (

    select
        pair_id,
        ts,
        kalman_beta,
        kalman_alpha,
        kalman_spread,
        kalman_spread_std,
        kalman_zscore
    from {{ ref('pair_kalman') }}

),

rolling_ols as (

    select
        *,
        count(*) over ols_window as ols_n_obs,
        regr_slope(price_a, price_b) over ols_window as ols_beta_unchecked,
        regr_intercept(price_a, price_b) over ols_window as ols_alpha_unchecked
    from pair_bars
    window ols_window as (
        partition by pair_id order by ts
        rows between {{ [ols_window - 1, 0] | max }} preceding and current row
    )

),

ols_spreads as (

    select
        * exclude (ols_n_obs, ols_beta_unchecked, ols_alpha_unchecked),
        case when ols_n_obs = {{ ols_window }} then ols_beta_unchecked end as ols_beta,
        case when ols_n_obs = {{ ols_window }} then ols_alpha_unchecked end as ols_alpha,
        case
            when ols_n_obs = {{ ols_window }}
                then price_a - ols_beta_unchecked * price_b - ols_alpha_unchecked
        end as ols_spread
    from rolling_ols

),

ols_zscores as (

    select
        *,
        case
            when count(ols_spread) over zscore_window = {{ zscore_window }}
                then
                    (ols_spread - avg(ols_spread) over zscore_window)
                    / nullif(stddev_samp(ols_spread) over zscore_window, 0)
        end as ols_zscore
    from ols_spreads
    window zscore_window as (
        partition by pair_id order by ts
        rows between {{ [zscore_window - 1, 0] | max }} preceding and current row
    )

),

spreads_joined_to_kalman as (

    select
        ols_zscores.*,
        kalman.kalman_beta,
        kalman.kalman_alpha,
        kalman.kalman_spread,
        kalman.kalman_spread_std,
        kalman.kalman_zscore
    from ols_zscores
    left join kalman
        on
            ols_zscores.pair_id = kalman.pair_id
            and ols_zscores.ts = kalman.ts

)

select * from spreads_joined_to_kalman
