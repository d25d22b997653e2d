{{ config(tags=['portable']) }}
{#- Corporate actions, one per (symbol, ex_date, action_type) across sources, typed and
    checked: an invalid action (non-positive ratio or cash, a dividend not below the
    previous close, no previous close) is kept with its reason and never applied; a valid
    action whose ex-date jump in the bars disagrees with it is applied and flagged. -#}
{%- set action_columns = [
    'source', 'symbol', 'ex_date', 'action_type', 'split_ratio', 'cash_amount', 'currency',
    'ingested_at',
] -%}
with

actions as (

    select
        {{ action_columns | join(',\n        ') }}
    from {{ ref('stg_lake__corporate_actions') }}

),

daily_prices as (

    select
        symbol,
        session_date,
        open,
        close
    from {{ ref('int_daily_prices_collected') }}

),

actions_deduplicated as (

    select
        {{ action_columns | join(',\n        ') }}
    from (
        select
            *,
            row_number() over (
                partition by symbol, ex_date, action_type
                order by {{ source_rank('source') }}, source
            ) as action_rank
        from actions
    ) as ranked
    where action_rank = 1

),

actions_with_sessions as (

    {#- previous_session_date, previous_close: the last session before the ex-date;
        ex_session_date, ex_open: the first session on or after it (ASOF joins on DuckDB) -#}
    {{ with_sessions_around_ex_date('actions_deduplicated', 'daily_prices') }}

),

actions_with_same_day_split as (

    {#- a dividend paid on a split's ex-date is per new share: per old share it is
        cash_amount * split_ratio, which is what the previous close is comparable to -#}
    select
        *,
        coalesce(
            {{ product_of(
                'split_ratio',
                where="action_type = 'split' and split_ratio > 0",
                over='(partition by symbol, ex_date)'
            ) }},
            1.0
        ) as same_day_split_ratio
    from actions_with_sessions

),

actions_validated as (

    select
        *,
        case
            when action_type not in ('split', 'dividend')
                then 'unknown_action_type'
            when action_type = 'split' and (split_ratio is null or isnan(split_ratio) or split_ratio <= 0)
                then 'invalid_split_ratio'
            when action_type = 'dividend' and (cash_amount is null or isnan(cash_amount) or cash_amount <= 0)
                then 'invalid_cash_amount'
            when action_type = 'dividend' and previous_close is null
                then 'no_previous_close'
            when action_type = 'dividend' and cash_amount * same_day_split_ratio >= previous_close
                then 'dividend_not_below_previous_close'
        end as invalid_reason
    from actions_with_same_day_split

),

actions_measured as (

    select
        *,
        invalid_reason is null as is_valid,
        case
            when invalid_reason is not null then null
            when action_type = 'split' then 1.0 / split_ratio
            else 1.0 - cash_amount * same_day_split_ratio / previous_close
        end as adjustment_step,
        case
            when invalid_reason is null and action_type = 'split' then -ln(split_ratio)
            when invalid_reason is null then ln(1.0 - cash_amount * same_day_split_ratio / previous_close)
        end as expected_jump,
        ln(ex_open / previous_close) as observed_jump
    from actions_validated

),

actions_checked as (

    select
        *,
        coalesce(
            is_valid
            and abs(
                observed_jump
                - sum(expected_jump) over (partition by symbol, ex_date)
            ) > {{ var('action_jump_tolerance') }},
            false
        ) as has_jump_mismatch
    from actions_measured

)

select * from actions_checked
