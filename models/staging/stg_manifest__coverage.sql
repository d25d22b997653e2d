with

source as (

    select * from {{ lake_source('manifest', 'coverage') }}

),

renamed as (

    select
        source::varchar as source,
        symbol::varchar as symbol,
        timeframe::varchar as timeframe,
        start_ts::timestamptz as start_at,
        end_ts::timestamptz as end_at,
        status::varchar as status,
        updated_at::timestamptz as updated_at
    from source

)

select * from renamed
