with

source as (

    select * from {{ backtest_source('equity') }}

),

registered_runs as (

    select run_id from {{ backtest_source('backtest_runs') }}

),

renamed as (

    select
        source.run_id::varchar as run_id,
        source.ts::timestamptz as ts,
        source.equity::double as equity,
        source.cash::double as cash,
        source.positions_value::double as positions_value,
        source.gross_exposure::double as gross_exposure,
        source.net_exposure::double as net_exposure,
        source.period_return::double as period_return
    from source
    semi join registered_runs on source.run_id = registered_runs.run_id

)

select * from renamed
