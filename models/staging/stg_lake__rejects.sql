with

source as (

    select * from {{ lake_source('lake', 'rejects') }}

),

renamed as (

    select
        dataset::varchar as dataset,
        source::varchar as source,
        symbol::varchar as symbol,
        timeframe::varchar as timeframe,
        key::varchar as row_key,
        reason::varchar as reason,
        row::varchar as row_json,
        rejected_at::timestamptz as rejected_at
    from source

)

select * from renamed
