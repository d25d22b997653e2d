with

source as (

    select * from {{ lake_source('lake', 'corporate_actions') }}

),

renamed as (

    select
        source::varchar as source,
        symbol::varchar as symbol,
        ex_date::date as ex_date,
        lower(action_type)::varchar as action_type,
        split_ratio::double as split_ratio,
        cash_amount::double as cash_amount,
        currency::varchar as currency,
        ingested_at::timestamptz as ingested_at
    from source

)

select * from renamed
