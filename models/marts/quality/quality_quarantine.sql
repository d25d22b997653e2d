{{ config(tags=['portable'], contract={'enforced': target.type == 'duckdb'}) }}
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
        {{ timestamp_text('ts') }} as row_key,
        {{ each_element('quality_flags') }} as reason,
        {{ json_object(['open', 'high', 'low', 'close', 'volume', 'log_return']) }} as row_json
    from suspect_bars

),

rejected_rows as (

    select
        dataset,
        'rejected_at_ingest' as disposition,
        source,
        symbol,
        timeframe,
        try_cast(row_key as {{ type_name('timestamptz') }}) as ts,
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
        cast(null as {{ type_name('varchar') }}) as timeframe,
        cast(ex_date as {{ type_name('timestamptz') }}) as ts,
        cast(ex_date as {{ type_name('varchar') }}) || '/' || action_type as row_key,
        coalesce(invalid_reason, 'ex_date_jump_mismatch') as reason,
        {{ json_object([
            'action_type', 'split_ratio', 'cash_amount', 'previous_close', 'ex_open',
            'expected_jump', 'observed_jump',
        ]) }} as row_json
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
