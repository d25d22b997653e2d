{#- Every row that failed a check, with its reason: bars flagged in bars_adjusted (they
    stay there, flagged), rows the ingest writer refused (never in the lake), and
    corporate actions that are invalid or whose ex-date jump disagrees with the bars. -#}
with

suspect_bars as (

    select
        symbol,
        source,
        timeframe,
        ts,
        open,
        high,
        low,
        close,
        volume,
        log_return,
        quality_flags
    from {{ ref('bars_adjusted') }}
    where is_suspect

),

rejects as (

    select
        dataset,
        source,
        symbol,
        timeframe,
        row_key,
        reason,
        row_json,
        rejected_at
    from {{ ref('stg_lake__rejects') }}

),

actions as (

    select
        symbol,
        source,
        ex_date,
        action_type,
        split_ratio,
        cash_amount,
        previous_close,
        ex_open,
        expected_jump,
        observed_jump,
        invalid_reason,
        has_jump_mismatch
    from {{ ref('corporate_actions') }}
    where not is_valid or has_jump_mismatch

),

suspect_bar_reasons as (

    select
        'bars' as dataset,
        'flagged' as disposition,
        source,
        symbol,
        timeframe,
        ts,
        ts::varchar as row_key,
        unnest(quality_flags) as reason,
        to_json({
            open: open, high: high, low: low, close: close, volume: volume, log_return: log_return
        })::varchar as row_json
    from suspect_bars

),

rejected_rows as (

    select
        dataset,
        'rejected_at_ingest' as disposition,
        source,
        symbol,
        timeframe,
        try_cast(row_key as timestamptz) as ts,
        row_key,
        reason,
        row_json
    from rejects

),

action_reasons as (

    select
        'corporate_actions' as dataset,
        case when invalid_reason is null then 'applied_and_flagged' else 'not_applied' end as disposition,
        source,
        symbol,
        null::varchar as timeframe,
        ex_date::timestamptz as ts,
        ex_date::varchar || '/' || action_type as row_key,
        coalesce(invalid_reason, 'ex_date_jump_mismatch') as reason,
        to_json({
            action_type: action_type, split_ratio: split_ratio, cash_amount: cash_amount,
            previous_close: previous_close, ex_open: ex_open,
            expected_jump: expected_jump, observed_jump: observed_jump
        })::varchar as row_json
    from actions

),

unioned as (

    select * from suspect_bar_reasons
    union all
    select * from rejected_rows
    union all
    select * from action_reasons

)

select * from unioned
