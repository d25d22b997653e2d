with

source as (

    select * from {{ lake_source('manifest', 'fetch_runs') }}

),

renamed as (

    select
        run_id::bigint as run_id,
        source::varchar as source,
        symbol::varchar as symbol,
        timeframe::varchar as timeframe,
        start_ts::timestamptz as start_at,
        end_ts::timestamptz as end_at,
        status::varchar as status,
        rows::bigint as row_count,
        api_calls::bigint as api_calls,
        duration_s::double as duration_s,
        error::varchar as error,
        started_at::timestamptz as started_at
    from source

)

select * from renamed
