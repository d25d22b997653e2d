{#- The reference pairs backtest's round trips reconcile with its books: a closed trade's
    pnl is the change in equity from the bar before its entry to its exit (the run is flat
    on both), and pairs_backtest_metrics counts the closed trades. -#}
with

trades as (

    select
        run_id,
        trade_id,
        entry_ts,
        exit_ts,
        pnl,
        exit_reason
    from {{ ref('pairs_backtest_trades') }}

),

equity as (

    select
        run_id,
        ts,
        equity,
        lag(equity) over (partition by run_id order by ts) as previous_equity
    from {{ ref('pairs_backtest_equity') }}

),

metrics as (

    select
        run_id,
        n_trades
    from {{ ref('pairs_backtest_metrics') }}

),

pnl_not_the_change_in_equity as (

    select
        trades.run_id,
        trades.trade_id,
        'pnl is not the change in equity over the trade' as failure
    from trades
    inner join equity as at_entry
        on trades.run_id = at_entry.run_id and trades.entry_ts = at_entry.ts
    inner join equity as at_exit
        on trades.run_id = at_exit.run_id and trades.exit_ts = at_exit.ts
    where
        trades.exit_reason != 'open'
        and abs(trades.pnl - (at_exit.equity - at_entry.previous_equity))
        > 1e-9 * greatest(1.0, abs(at_exit.equity))

),

closed_trades_per_run as (

    select
        run_id,
        count(*) filter (where exit_reason != 'open') as n_closed
    from trades
    group by run_id

),

n_trades_not_the_closed_trades as (

    select
        metrics.run_id,
        null::bigint as trade_id,
        'n_trades is not the number of closed trades' as failure
    from metrics
    left join closed_trades_per_run on metrics.run_id = closed_trades_per_run.run_id
    where metrics.n_trades != coalesce(closed_trades_per_run.n_closed, 0)

),

failures as (

    select * from pnl_not_the_change_in_equity
    union all
    select * from n_trades_not_the_closed_trades

)

select * from failures
