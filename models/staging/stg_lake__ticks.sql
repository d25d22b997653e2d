{%- set present = lake_file_columns('lake', 'ticks') %}
with

source as (

    select * from {{ lake_source('lake', 'ticks') }}

),

renamed as (

    select
        source::varchar as source,
        symbol::varchar as symbol,
        period::varchar as period,
        ts::timestamptz as ts,
        seq::bigint as seq,
        price::double as price,
        size::double as size,
        side::varchar as side,
        venue::varchar as venue,
        ingested_at::timestamptz as ingested_at,
        {#- quote columns: only sources that deliver quotes (Dukascopy) write them #}
        {{ lake_optional_column(present, 'bid', 'double') }} as bid,
        {{ lake_optional_column(present, 'ask', 'double') }} as ask,
        {{ lake_optional_column(present, 'bid_size', 'double') }} as bid_size,
        {{ lake_optional_column(present, 'ask_size', 'double') }} as ask_size
    from source

),

typed as (

    select
        source,
        symbol,
        period,
        ts,
        seq,
        case when side = 'quote' then 'quote' else 'trade' end as tick_type,
        case
            when side = 'quote' then coalesce(price, (bid + ask) / 2)
            else price
        end as price,
        size,
        side,
        venue,
        bid,
        ask,
        bid_size,
        ask_size,
        ingested_at
    from renamed

)

select * from typed
