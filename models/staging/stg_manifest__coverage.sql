{{ config(tags=['portable']) }}
with

source as (

    select * from {{ lake_source('manifest', 'coverage') }}

),

renamed as (

    select
        source::{{ type_name('varchar') }} as source,
        symbol::{{ type_name('varchar') }} as symbol,
        timeframe::{{ type_name('varchar') }} as timeframe,
        start_ts::{{ type_name('timestamptz') }} as start_at,
        end_ts::{{ type_name('timestamptz') }} as end_at,
        status::{{ type_name('varchar') }} as status,
        updated_at::{{ type_name('timestamptz') }} as updated_at
    from source

)

select * from renamed
