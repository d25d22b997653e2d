{{ config(tags=['portable']) }}
{%- set present = lake_file_columns('lake', 'calendars') %}
with

source as (

    select * from {{ lake_source('lake', 'calendars') }}

),

renamed as (

    select
        calendar::{{ type_name('varchar') }} as calendar,
        session_date::date as session_date,
        open_at::{{ type_name('timestamptz') }} as open_at,
        close_at::{{ type_name('timestamptz') }} as close_at,
        coalesce(is_half_day::boolean, false) as is_half_day,
        {#- files written before the trading day was recorded: the session's UTC date #}
        coalesce(
            {{ lake_optional_column(present, 'day_start_at', 'timestamptz') }},
            {{ date_to_utc('session_date::date') }}
        ) as day_start_at,
        coalesce(
            {{ lake_optional_column(present, 'day_end_at', 'timestamptz') }},
            {{ date_to_utc('session_date::date + 1') }}
        ) as day_end_at
    from source

)

select * from renamed
