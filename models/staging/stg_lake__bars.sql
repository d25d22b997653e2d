{{ config(tags=['portable']) }}
{%- set present = lake_file_columns('lake', 'bars') %}
with

source as (

    select * from {{ lake_source('lake', 'bars') }}

),

renamed as (

    select
        source::{{ type_name('varchar') }} as source,
        symbol::{{ type_name('varchar') }} as symbol,
        timeframe::{{ type_name('varchar') }} as timeframe,
        period::{{ type_name('varchar') }} as period,
        ts::{{ type_name('timestamptz') }} as ts,
        open::double as open,
        high::double as high,
        low::double as low,
        close::double as close,
        volume::double as volume,
        coalesce(is_final::boolean, true) as is_final,
        ingested_at::{{ type_name('timestamptz') }} as ingested_at,
        {#- each side's OHLC where the source quotes both (Dukascopy, OANDA); files written
            without them (every other source, older lakes) read as null #}
        {{ lake_optional_column(present, 'bid_open', 'double') }} as bid_open,
        {{ lake_optional_column(present, 'bid_high', 'double') }} as bid_high,
        {{ lake_optional_column(present, 'bid_low', 'double') }} as bid_low,
        {{ lake_optional_column(present, 'bid_close', 'double') }} as bid_close,
        {{ lake_optional_column(present, 'ask_open', 'double') }} as ask_open,
        {{ lake_optional_column(present, 'ask_high', 'double') }} as ask_high,
        {{ lake_optional_column(present, 'ask_low', 'double') }} as ask_low,
        {{ lake_optional_column(present, 'ask_close', 'double') }} as ask_close
    from source

)

select * from renamed
