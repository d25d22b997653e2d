{{ config(tags=['portable'], contract={'enforced': target.type == 'duckdb'}) }}
{#- Corporate actions as applied: one per (symbol, ex_date, action_type), with the
    previous session's close, the adjustment step, validity and the ex-date jump check. -#}
with

actions as (

    select
        symbol,
        ex_date,
        action_type,
        source,
        split_ratio,
        cash_amount,
        currency,
        previous_session_date,
        previous_close,
        ex_session_date,
        ex_open,
        adjustment_step,
        expected_jump,
        observed_jump,
        is_valid,
        invalid_reason,
        has_jump_mismatch,
        ingested_at
    from {{ ref('int_corporate_actions_checked') }}

)

select * from actions
