{#- The reference pairs backtest trades only on what it knew: every input of a signal is
    as of its ts or earlier (the z-score's bar, the cointegration test's test_ts), and every
    fill executes its signal at the pair's next common bar after the signal (its open). -#}
with

signals as (

    select
        run_id,
        pair_id,
        signal_id,
        ts,
        coint_test_ts,
        inputs_as_of
    from {{ ref('pairs_backtest_signals') }}

),

fills as (

    select
        run_id,
        pair_id,
        fill_id,
        signal_id,
        signal_ts,
        ts
    from {{ ref('pairs_backtest_fills') }}

),

pair_bars as (

    select
        pair_id,
        ts,
        lead(ts) over (partition by pair_id order by ts) as next_ts
    from {{ ref('pair_bars') }}

),

next_bars as (

    {#- an equality join on the bar's own ts: linear, where "the first bar after" as an
        inequality join would pair every signal with every later bar -#}
    select
        signals.run_id,
        signals.signal_id,
        signals.ts,
        pair_bars.next_ts
    from signals
    inner join pair_bars
        on signals.pair_id = pair_bars.pair_id and signals.ts = pair_bars.ts

),

fills_not_at_the_next_bar as (

    select
        fills.run_id,
        'fill ' || fills.fill_id || ' not at the bar after its signal' as problem
    from fills
    left join next_bars
        on fills.run_id = next_bars.run_id and fills.signal_id = next_bars.signal_id
    where
        next_bars.next_ts is null
        or fills.ts <= next_bars.ts
        or fills.ts != next_bars.next_ts
        or fills.signal_ts != next_bars.ts

),

signals_with_later_inputs as (

    select
        run_id,
        'signal ' || signal_id || ' used an input as of a later time' as problem
    from signals
    where inputs_as_of > ts or coint_test_ts > ts

),

problems as (

    select * from fills_not_at_the_next_bar
    union all
    select * from signals_with_later_inputs

)

select * from problems
