with

symbols as (

    select
        source,
        symbol,
        symbol_name,
        asset_class,
        exchange,
        currency,
        timezone,
        calendar
    from {{ ref('stg_lake__symbols') }}

),

ranked as (

    select *
    from symbols
    qualify row_number() over (
            partition by symbol order by {{ source_rank('source') }}, source
        ) = 1

)

select * from ranked
