with

source as (

    select * from {{ backtest_source('trades') }}

),

registered_runs as (

    select run_id from {{ backtest_source('backtest_runs') }}

),

renamed as (

    select
        source.run_id::varchar as run_id,
        source.trade_id::bigint as trade_id,
        source.symbol::varchar as symbol,
        source.direction::varchar as direction,
        source.entry_ts::timestamptz as entry_ts,
        source.exit_ts::timestamptz as exit_ts,
        source.entry_price::double as entry_price,
        source.exit_price::double as exit_price,
        source.quantity::double as quantity,
        source.commission::double as commission,
        source.pnl::double as pnl,
        source.trade_return::double as trade_return,
        source.bars_held::bigint as bars_held
    from source
    semi join registered_runs on source.run_id = registered_runs.run_id

)

select * from renamed
