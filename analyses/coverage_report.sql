-- The least complete series first, with their gaps and what can be done about them.
select
    coverage_summary.source,
    coverage_summary.symbol,
    coverage_summary.timeframe,
    coverage_summary.first_ts,
    coverage_summary.last_ts,
    coverage_summary.row_count,
    coverage_summary.expected_rows,
    coverage_summary.completeness,
    coverage_summary.rows_outside_sessions,
    coverage_gaps.gap_start_at,
    coverage_gaps.gap_end_at,
    coverage_gaps.missing_rows,
    coverage_gaps.gap_class
from coverage_summary as coverage_summary
left join coverage_gaps as coverage_gaps
    on
        coverage_summary.source = coverage_gaps.source
        and coverage_summary.symbol = coverage_gaps.symbol
        and coverage_summary.timeframe = coverage_gaps.timeframe
order by coverage_summary.completeness, coverage_gaps.gap_start_at
