{{ config(tags=['portable']) }}
{#- One row of metadata per symbol. The source first in var('source_precedence') wins,
    field by field: a field the preferred source left empty comes from the next source
    that has it. A symbol no source describes (a CSV import without --asset-class) still
    gets a row, its asset class 'unknown', so every mart works with it. A forex symbol
    (asset class fx or forex) trades on the FX calendar (17:00 New York days) whatever
    its source wrote (lakes written before that calendar existed say 24/7). -#}
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
        calendar,
        {{ source_rank('source') }} as source_rank
    from {{ ref('stg_lake__symbols') }}

),

fields_by_precedence as (

    select
        symbol,
        min_by(source, source_rank) as source,
        min_by(symbol_name, source_rank) filter (where symbol_name is not null) as symbol_name,
        min_by(asset_class, source_rank) filter (where asset_class is not null) as asset_class,
        min_by(exchange, source_rank) filter (where exchange is not null) as exchange,
        min_by(currency, source_rank) filter (where currency is not null) as currency,
        min_by(timezone, source_rank) filter (where timezone is not null) as timezone,
        min_by(calendar, source_rank) filter (where calendar is not null) as calendar
    from symbols
    group by symbol

),

described as (

    select
        source,
        symbol,
        symbol_name,
        coalesce(asset_class, 'unknown') as asset_class,
        exchange,
        currency,
        timezone,
        case
            when lower(asset_class) in ('fx', 'forex') then 'FX'
            else calendar
        end as calendar
    from fields_by_precedence

)

select * from described
