with

source as (

    select * from {{ backtest_source('fills') }}

),

registered_runs as (

    select run_id from {{ backtest_source('backtest_runs') }}

),

renamed as (

    select
        source.run_id::varchar as run_id,
        source.fill_id::bigint as fill_id,
        source.signal_id::bigint as signal_id,
        source.ts::timestamptz as ts,
        source.symbol::varchar as symbol,
        source.side::varchar as side,
        source.quantity::double as quantity,
        source.price::double as price,
        source.commission::double as commission,
        source.slippage_bps::double as slippage_bps
    from source
    semi join registered_runs on source.run_id = registered_runs.run_id

)

select * from renamed
