with

source as (

    select * from {{ lake_source('lake', 'calendars') }}

),

renamed as (

    select
        calendar::varchar as calendar,
        session_date::date as session_date,
        open_at::timestamptz as open_at,
        close_at::timestamptz as close_at,
        coalesce(is_half_day::boolean, false) as is_half_day
    from source

)

select * from renamed
