with

source as (

    select * from {{ lake_source('manifest', 'data_files') }}

),

renamed as (

    select
        file_id::bigint as file_id,
        dataset::varchar as dataset,
        path::varchar as path,
        source::varchar as source,
        symbol::varchar as symbol,
        timeframe::varchar as timeframe,
        period::varchar as period,
        rows::bigint as row_count,
        min_ts::timestamptz as min_ts,
        max_ts::timestamptz as max_ts,
        bytes::bigint as byte_count,
        sha256::varchar as sha256,
        committed_at::timestamptz as committed_at
    from source

)

select * from renamed
