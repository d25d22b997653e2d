{#- A fill is strictly after the signal it executes (no fill acts on a signal it could
    not yet know), and every input a signal used is as of its ts or earlier. -#}
with

fills as (

    select
        run_id,
        fill_id,
        signal_id,
        ts
    from {{ ref('stg_backtests__fills') }}

),

signals as (

    select
        run_id,
        signal_id,
        ts,
        inputs_as_of
    from {{ ref('stg_backtests__signals') }}

),

fills_not_after_their_signal as (

    select
        fills.run_id,
        'fill ' || fills.fill_id || ' at or before its signal ' || fills.signal_id as problem
    from fills
    inner join signals
        on fills.run_id = signals.run_id and fills.signal_id = signals.signal_id
    where fills.ts <= signals.ts

),

signals_with_later_inputs as (

    select
        run_id,
        'signal ' || signal_id || ' used an input as of a later time' as problem
    from signals
    where inputs_as_of > ts

),

problems as (

    select * from fills_not_after_their_signal
    union all
    select * from signals_with_later_inputs

)

select * from problems
