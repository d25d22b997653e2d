with

source as (

    select * from {{ backtest_source('backtest_runs') }}

),

renamed as (

    select
        run_id::varchar as run_id,
        strategy::varchar as strategy,
        universe::varchar as universe,
        start_ts::timestamptz as start_ts,
        end_ts::timestamptz as end_ts,
        config::json as config,
        engine::varchar as engine,
        code_version::varchar as code_version,
        lake_state::varchar as lake_state,
        lake_file_ids::json as lake_file_ids,
        build_run_id::bigint as build_run_id,
        periods_per_year::double as periods_per_year,
        results_sha256::varchar as results_sha256,
        created_at::timestamptz as created_at
    from source

)

select * from renamed
