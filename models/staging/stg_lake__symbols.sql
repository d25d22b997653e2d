{{ config(tags=['portable']) }}
with

source as (

    select * from {{ lake_source('lake', 'symbols') }}

),

renamed as (

    select
        source::{{ type_name('varchar') }} as source,
        symbol::{{ type_name('varchar') }} as symbol,
        name::{{ type_name('varchar') }} as symbol_name,
        asset_class::{{ type_name('varchar') }} as asset_class,
        exchange::{{ type_name('varchar') }} as exchange,
        currency::{{ type_name('varchar') }} as currency,
        timezone::{{ type_name('varchar') }} as timezone,
        coalesce(calendar::{{ type_name('varchar') }}, 'XNYS') as calendar,
        ingested_at::{{ type_name('timestamptz') }} as ingested_at
    from source

)

select * from renamed
