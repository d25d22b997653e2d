{{ config(tags=['portable'], contract={'enforced': target.type == 'duckdb'}) }}
{#- One row per source, symbol and timeframe: first and last bar, rows, the rows the
    calendar expects between them, completeness, gaps by class, and rows on days that are
    not sessions of the symbol's calendar (a calendar mismatch). -#}
with

days_counted as (

    select
        source,
        symbol,
        timeframe,
        row_count,
        first_ts,
        last_ts
    from {{ ref('int_bars_days_counted') }}

),

sessions_compared as (

    select
        source,
        symbol,
        timeframe,
        calendar,
        expected_rows,
        observed_rows,
        is_outside_sessions
    from {{ ref('int_coverage_sessions_compared') }}

),

gaps as (

    select
        source,
        symbol,
        timeframe,
        gap_class
    from {{ ref('coverage_gaps') }}

),

observed as (

    select
        source,
        symbol,
        timeframe,
        min(first_ts) as first_ts,
        max(last_ts) as last_ts,
        sum(row_count)::bigint as row_count
    from days_counted
    group by all

),

expected as (

    select
        source,
        symbol,
        timeframe,
        {{ any_non_null('calendar') }} as calendar,
        sum(expected_rows)::bigint as expected_rows,
        sum(least(observed_rows, expected_rows))::bigint as rows_in_sessions,
        count(*) filter (where not is_outside_sessions) as sessions_expected,
        count(*) filter (where not is_outside_sessions and observed_rows >= expected_rows) as sessions_complete,
        count(*) filter (where not is_outside_sessions and observed_rows = 0) as sessions_missing,
        coalesce(sum(observed_rows) filter (where is_outside_sessions), 0)::bigint as rows_outside_sessions
    from sessions_compared
    group by all

),

gaps_counted as (

    select
        source,
        symbol,
        timeframe,
        count(*) as gap_count,
        count(*) filter (where gap_class = 'fetchable') as fetchable_gaps,
        count(*) filter (where gap_class = 'beyond_reach') as beyond_reach_gaps,
        count(*) filter (where gap_class = 'vendor_returned_nothing') as vendor_empty_gaps
    from gaps
    group by all

),

final as (

    select
        observed.source,
        observed.symbol,
        observed.timeframe,
        expected.calendar,
        observed.first_ts,
        observed.last_ts,
        observed.row_count,
        expected.expected_rows,
        case
            when expected.expected_rows > 0
                then round(expected.rows_in_sessions / expected.expected_rows, 6)
        end as completeness,
        expected.sessions_expected,
        expected.sessions_complete,
        expected.sessions_missing,
        coalesce(expected.rows_outside_sessions, 0) as rows_outside_sessions,
        coalesce(gaps_counted.gap_count, 0) as gap_count,
        coalesce(gaps_counted.fetchable_gaps, 0) as fetchable_gaps,
        coalesce(gaps_counted.beyond_reach_gaps, 0) as beyond_reach_gaps,
        coalesce(gaps_counted.vendor_empty_gaps, 0) as vendor_empty_gaps
    from observed
    left join expected
        on
            observed.source = expected.source
            and observed.symbol = expected.symbol
            and observed.timeframe = expected.timeframe
    left join gaps_counted
        on
            observed.source = gaps_counted.source
            and observed.symbol = gaps_counted.symbol
            and observed.timeframe = gaps_counted.timeframe

)

select * from final
