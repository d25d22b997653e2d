with

source as (

    select * from {{ lake_source('lake', 'bars') }}

),

renamed as (

    select
        source::varchar as source,
        symbol::varchar as symbol,
        timeframe::varchar as timeframe,
        period::varchar as period,
        ts::timestamptz as ts,
        open::double as open,
        high::double as high,
        low::double as low,
        close::double as close,
        volume::double as volume,
        coalesce(is_final::boolean, true) as is_final,
        ingested_at::timestamptz as ingested_at
    from source

)

select * from renamed
