with

source as (

    select * from {{ lake_source('lake', 'symbols') }}

),

renamed as (

    select
        source::varchar as source,
        symbol::varchar as symbol,
        name::varchar as symbol_name,
        asset_class::varchar as asset_class,
        exchange::varchar as exchange,
        currency::varchar as currency,
        timezone::varchar as timezone,
        coalesce(calendar::varchar, 'XNYS') as calendar,
        ingested_at::timestamptz as ingested_at
    from source

)

select * from renamed
