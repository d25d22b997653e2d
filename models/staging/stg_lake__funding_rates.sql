with

source as (

    select * from {{ lake_source('lake', 'funding_rates') }}

),

renamed as (

    select
        source::varchar as source,
        symbol::varchar as symbol,
        ts::timestamptz as ts,
        rate::double as funding_rate,
        interval_hours::double as funding_interval_hours,
        ingested_at::timestamptz as ingested_at
    from source

)

select * from renamed
