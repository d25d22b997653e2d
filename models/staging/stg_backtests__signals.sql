with

source as (

    select * from {{ backtest_source('signals') }}

),

registered_runs as (

    select run_id from {{ backtest_source('backtest_runs') }}

),

renamed as (

    select
        source.run_id::varchar as run_id,
        source.signal_id::bigint as signal_id,
        source.ts::timestamptz as ts,
        source.direction::varchar as direction,
        source.legs::json as legs,
        source.hedge_ratio::double as hedge_ratio,
        source.size::double as size,
        source.inputs_as_of::timestamptz as inputs_as_of
    from source
    semi join registered_runs on source.run_id = registered_runs.run_id

)

select * from renamed
