{{ config(tags=['portable']) }}
{#- Backward adjustment factors (DESIGN §4), base = latest date, as segments of constant
    factor per symbol: rows with valid_from <= date < valid_to get
        split_factor    = product over splits    e >= valid_to of 1 / ratio_e
        dividend_factor = product over dividends e >= valid_to of (1 - D_e / close_prev(e))
    so an action on day e adjusts the rows strictly before e. The last segment of a
    symbol (from its latest ex-date on) has both factors 1. adjustment_version hashes a
    symbol's segments: when it changes, the symbol's whole history is restated. It is the
    md5 of DuckDB's text of each segment's valid_from and factors, which Spark spells
    alike: the engines agree on it when they compute the same factors to the bit (Spark
    multiplies in ex-date order; DuckDB too over at most 31 ex-dates of a symbol, beyond
    which its window product may round differently). Each engine only ever compares it
    with the versions it recorded itself. -#}
with

valid_actions as (

    select
        symbol,
        ex_date,
        action_type,
        adjustment_step,
        has_jump_mismatch
    from {{ ref('int_corporate_actions_checked') }}
    where is_valid

),

steps_per_ex_date as (

    select
        symbol,
        ex_date,
        {{ product_of("case when action_type = 'split' then adjustment_step else 1.0 end") }} as split_step,
        {{ product_of("case when action_type = 'dividend' then adjustment_step else 1.0 end") }} as dividend_step,
        bool_or(has_jump_mismatch) as has_jump_mismatch
    from valid_actions
    group by symbol, ex_date

),

factors_cumulated as (

    select
        symbol,
        ex_date,
        has_jump_mismatch,
        lag(ex_date) over (partition by symbol order by ex_date) as previous_ex_date,
        lag(has_jump_mismatch) over (partition by symbol order by ex_date) as previous_has_jump_mismatch,
        {{ product_of('split_step', over='later_or_same_ex_dates') }} as split_factor,
        {{ product_of('dividend_step', over='later_or_same_ex_dates') }} as dividend_factor
    from steps_per_ex_date
    window later_or_same_ex_dates as (
        partition by symbol
        order by ex_date desc
        rows between unbounded preceding and current row
    )

),

segments_before_each_ex_date as (

    select
        symbol,
        coalesce(previous_ex_date, date '1900-01-01') as valid_from,
        ex_date as valid_to,
        split_factor,
        dividend_factor,
        coalesce(previous_has_jump_mismatch, false) as starts_with_jump_mismatch
    from factors_cumulated

),

latest_segments as (

    select
        symbol,
        max(ex_date) as valid_from,
        date '9999-12-31' as valid_to,
        cast(1.0 as double) as split_factor,
        cast(1.0 as double) as dividend_factor,
        max_by(has_jump_mismatch, ex_date) as starts_with_jump_mismatch
    from factors_cumulated
    group by symbol

),

segments as (

    select * from segments_before_each_ex_date
    union all
    select * from latest_segments

),

segments_described as (

    {#- the text adjustment_version hashes: DuckDB's spelling of the date and factors -#}
    select
        *,
        cast(valid_from as {{ type_name('varchar') }})
        || ':' || {{ double_text('split_factor') }}
        || ':' || {{ double_text('dividend_factor') }} as segment_text
    from segments

),

segments_versioned as (

    select
        symbol,
        row_number() over (partition by symbol order by valid_from) as segment_number,
        valid_from,
        valid_to,
        cast(valid_from as {{ type_name('timestamptz') }}) as valid_from_at,
        split_factor,
        dividend_factor,
        starts_with_jump_mismatch,
        md5(
            {{ string_agg_ordered('segment_text', ';', 'valid_from') }} over (partition by symbol)
        ) as adjustment_version
    from segments_described

)

select * from segments_versioned
