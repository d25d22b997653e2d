{{ config(tags=['portable'], contract={'enforced': target.type == 'duckdb'}) }}
{#- Each gap in a series: a run of consecutive sessions with fewer bars than the calendar
    expects (between the series' first and last bar), with its start, end, length and
    class:
      vendor_returned_nothing  the manifest records the range as fetched and empty
                               (or unrecoverable): asking again will not help;
      beyond_reach             older than the source serves for this timeframe;
      fetchable                inside the vendor's reach: `duckmarket update` can fill it.
    A gap overlapping ranges of both statuses takes the first by name ('empty'). -#}
with

sessions_compared as (

    select
        source,
        symbol,
        timeframe,
        calendar,
        session_date,
        session_number,
        open_at,
        close_at,
        expected_rows,
        observed_rows
    from {{ ref('int_coverage_sessions_compared') }}
    where not is_outside_sessions

),

manifest_coverage as (

    select
        source,
        symbol,
        timeframe,
        start_at,
        end_at,
        status
    from {{ ref('stg_manifest__coverage') }}
    where status in ('empty', 'unrecoverable')

),

source_limits as (

    select
        source,
        timeframe,
        lookback_days
    from {{ ref('source_limits') }}

),

short_sessions as (

    select
        *,
        session_number - row_number() over (
            partition by source, symbol, timeframe order by session_number
        ) as gap_group
    from sessions_compared
    where observed_rows < expected_rows

),

gaps as (

    select
        source,
        symbol,
        timeframe,
        gap_group,
        {{ any_non_null('calendar') }} as calendar,
        min(open_at) as gap_start_at,
        max(close_at) as gap_end_at,
        min(session_date) as first_session_date,
        max(session_date) as last_session_date,
        count(*) as sessions,
        sum(expected_rows - observed_rows)::bigint as missing_rows,
        bool_and(observed_rows = 0) as is_whole_sessions
    from short_sessions
    group by source, symbol, timeframe, gap_group

),

gaps_covered as (

    select
        gaps.source,
        gaps.symbol,
        gaps.timeframe,
        gaps.gap_group,
        min(manifest_coverage.status) as coverage_status
    from gaps
    inner join manifest_coverage
        on
            gaps.source = manifest_coverage.source
            and gaps.symbol = manifest_coverage.symbol
            and gaps.timeframe = manifest_coverage.timeframe
            and gaps.gap_end_at > manifest_coverage.start_at
            and gaps.gap_start_at < manifest_coverage.end_at
    group by gaps.source, gaps.symbol, gaps.timeframe, gaps.gap_group

),

gaps_classified as (

    select
        gaps.*,
        gaps_covered.coverage_status,
        source_limits.lookback_days
    from gaps
    left join gaps_covered
        on
            gaps.source = gaps_covered.source
            and gaps.symbol = gaps_covered.symbol
            and gaps.timeframe = gaps_covered.timeframe
            and gaps.gap_group = gaps_covered.gap_group
    left join source_limits
        on gaps.source = source_limits.source and gaps.timeframe = source_limits.timeframe

),

final as (

    select
        source,
        symbol,
        timeframe,
        calendar,
        gap_start_at,
        gap_end_at,
        first_session_date,
        last_session_date,
        sessions,
        missing_rows,
        is_whole_sessions,
        coverage_status,
        case
            when coverage_status is not null then 'vendor_returned_nothing'
            when gap_end_at < {{ days_before_now('lookback_days') }} then 'beyond_reach'
            else 'fetchable'
        end as gap_class
    from gaps_classified

)

select * from final
