{{ config(tags=['portable']) }}
with

source as (

    select * from {{ lake_source('lake', 'corporate_actions') }}

),

renamed as (

    select
        source::{{ type_name('varchar') }} as source,
        symbol::{{ type_name('varchar') }} as symbol,
        ex_date::date as ex_date,
        lower(action_type)::{{ type_name('varchar') }} as action_type,
        split_ratio::double as split_ratio,
        cash_amount::double as cash_amount,
        currency::{{ type_name('varchar') }} as currency,
        ingested_at::{{ type_name('timestamptz') }} as ingested_at
    from source

)

select * from renamed
