{{ config(tags=['portable']) }}
{#- Every session of every calendar the build knows: exchange and FX sessions written by
    warehouse/calendars.py, plus the 24/7 calendar (one session per UTC day) generated
    here. day_start_at and day_end_at bound the session's trading day (the bars that
    belong to it): the UTC date for exchange calendars and 24/7, the session itself
    (17:00 to 17:00 New York) for FX. -#}
with

exchange_sessions as (

    select
        calendar,
        session_date,
        open_at,
        close_at,
        is_half_day,
        day_start_at,
        day_end_at
    from {{ ref('stg_lake__calendars') }}

),

continuous_days as (

    select
        '24/7' as calendar,
        generated.day::date as session_date,
        generated.day::{{ type_name('timestamptz') }} as open_at,
        (generated.day + interval 1 day)::{{ type_name('timestamptz') }} as close_at,
        false as is_half_day,
        generated.day::{{ type_name('timestamptz') }} as day_start_at,
        (generated.day + interval 1 day)::{{ type_name('timestamptz') }} as day_end_at
    from
        {{ each_day_from(
            "timestamp '2000-01-01'", "current_date::timestamp + interval 7 day", 'generated', 'day'
        ) }}

),

unioned as (

    select * from exchange_sessions
    union all
    select * from continuous_days

),

measured as (

    select
        *,
        {{ integer_divide(
            '(' ~ epoch_seconds('close_at') ~ ' - ' ~ epoch_seconds('open_at') ~ ')::bigint', 60
        ) }} as session_minutes
    from unioned

)

select * from measured
