{#- Ornstein-Uhlenbeck parameters per pair and cointegration window (pair_cointegration):
    the window's spread price_a - hedge_beta * price_b - hedge_alpha fitted as an AR(1)
    s[t] = c + phi s[t-1] + u[t] by OLS (in pair_cointegration, which holds the window).
    With one bar as the time unit: theta = -ln(phi), mu = c / (1 - phi),
    sigma = sd(u) sqrt(2 theta / (1 - phi^2)), the equilibrium sd sd(u) / sqrt(1 - phi^2),
    half-life ln(2) / theta bars; bands are mu +- var('ou_entry_z') (entry) and
    var('ou_exit_z') (exit) equilibrium sds. theta and what follows are null when phi is
    not in (0, 1) (no mean reversion). -#}
with

ar1_fits as (

    select
        pair_id,
        symbol_a,
        symbol_b,
        timeframe,
        test_date,
        test_ts,
        window_start_ts,
        n_obs,
        hedge_beta,
        hedge_alpha,
        is_cointegrated,
        spread_ar_nobs as ar_nobs,
        spread_ar_phi as ar_phi,
        spread_ar_const as ar_const,
        spread_at_test,
        sqrt(spread_ar_residual_var) as ar_residual_sd,
        coalesce(spread_ar_phi > 0 and spread_ar_phi < 1, false) as is_mean_reverting
    from {{ ref('pair_cointegration') }}

),

ou_parameters as (

    select
        *,
        case when is_mean_reverting then -ln(ar_phi) end as theta,
        case when is_mean_reverting then ar_const / (1 - ar_phi) end as mu,
        case
            when is_mean_reverting
                then ar_residual_sd * sqrt(-2 * ln(ar_phi) / (1 - ar_phi ** 2))
        end as sigma,
        case
            when is_mean_reverting then ar_residual_sd / sqrt(1 - ar_phi ** 2)
        end as sigma_equilibrium
    from ar1_fits

),

bands as (

    select
        *,
        ln(2) / theta as half_life_bars,
        (spread_at_test - mu) / sigma_equilibrium as zscore_at_test,
        mu + {{ var('ou_entry_z') }} * sigma_equilibrium as entry_upper,
        mu - {{ var('ou_entry_z') }} * sigma_equilibrium as entry_lower,
        mu + {{ var('ou_exit_z') }} * sigma_equilibrium as exit_upper,
        mu - {{ var('ou_exit_z') }} * sigma_equilibrium as exit_lower
    from ou_parameters

)

select * from bands
