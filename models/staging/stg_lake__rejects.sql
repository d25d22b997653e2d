{{ config(tags=['portable']) }}
with

source as (

    select * from {{ lake_source('lake', 'rejects') }}

),

renamed as (

    select
        cast(dataset as {{ type_name('varchar') }}) as dataset,
        cast(source as {{ type_name('varchar') }}) as source,
        cast(symbol as {{ type_name('varchar') }}) as symbol,
        cast(timeframe as {{ type_name('varchar') }}) as timeframe,
        cast(key as {{ type_name('varchar') }}) as row_key,
        cast(reason as {{ type_name('varchar') }}) as reason,
        cast(row as {{ type_name('varchar') }}) as row_json,
        cast(rejected_at as {{ type_name('timestamptz') }}) as rejected_at
    from source

)

select * from renamed
