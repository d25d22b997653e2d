{#- The reference pairs backtest's equity is cash plus positions value in every bar, and
    its positions value is the quantities held times the bar's total-return closes. -#}
with

equity as (

    select
        run_id,
        pair_id,
        ts,
        equity,
        cash,
        positions_value,
        quantity_a,
        quantity_b
    from {{ ref('pairs_backtest_equity') }}

),

pair_bars as (

    select
        pair_id,
        ts,
        close_tr_a,
        close_tr_b
    from {{ ref('pair_bars') }}

),

unbalanced as (

    select
        equity.run_id,
        equity.ts
    from equity
    inner join pair_bars
        on equity.pair_id = pair_bars.pair_id and equity.ts = pair_bars.ts
    where
        abs(equity.equity - (equity.cash + equity.positions_value))
        > 1e-9 * greatest(1.0, abs(equity.equity))
        or abs(
            equity.positions_value
            - (equity.quantity_a * pair_bars.close_tr_a + equity.quantity_b * pair_bars.close_tr_b)
        ) > 1e-9 * greatest(1.0, abs(equity.equity))

)

select * from unbalanced
