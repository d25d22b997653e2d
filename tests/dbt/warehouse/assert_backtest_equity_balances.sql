{#- Equity is cash plus positions value in every period (to a millionth of the equity,
    the tolerance record_backtest checks with). -#}
with

equity as (

    select
        run_id,
        ts,
        equity,
        cash,
        positions_value
    from {{ ref('stg_backtests__equity') }}

),

unbalanced as (

    select *
    from equity
    where abs(equity - (cash + positions_value)) > 1e-6 * greatest(1.0, abs(equity))

)

select * from unbalanced
