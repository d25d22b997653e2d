with

source as (

    select * from {{ lake_source('lake', 'ticks') }}

),

renamed as (

    select
        source::varchar as source,
        symbol::varchar as symbol,
        period::varchar as period,
        ts::timestamptz as ts,
        seq::bigint as seq,
        price::double as price,
        size::double as size,
        side::varchar as side,
        venue::varchar as venue,
        ingested_at::timestamptz as ingested_at
    from source

)

select * from renamed
