{{ config(tags=['portable'], contract={'enforced': target.type == 'duckdb'}) }}
{#- Point-in-time adjustment factors: for rows of `symbol` with valid_from <= date <
    valid_to, as seen on any date in [known_from, known_to), multiply prices by
    split_factor * dividend_factor (and divide volume by split_factor). Only actions with
    ex-date <= the as-of date are applied, so a backtest on day T never sees a later action.
    The rows with known_to = 9999-12-31 are today's factors (those in bars_adjusted). -#}
with

segments as (

    select
        symbol,
        segment_number,
        valid_from,
        valid_to,
        split_factor,
        dividend_factor,
        adjustment_version
    from {{ ref('int_adjustment_factors_computed') }}

),

segments_as_known as (

    select
        row_segment.symbol,
        row_segment.valid_from,
        row_segment.valid_to,
        as_of_segment.valid_from as known_from,
        as_of_segment.valid_to as known_to,
        row_segment.split_factor / as_of_segment.split_factor as split_factor,
        row_segment.dividend_factor / as_of_segment.dividend_factor as dividend_factor,
        as_of_segment.valid_to = date '9999-12-31' as is_current,
        row_segment.adjustment_version
    from segments as row_segment
    inner join segments as as_of_segment
        on
            row_segment.symbol = as_of_segment.symbol
            and row_segment.segment_number <= as_of_segment.segment_number

),

final as (

    select
        symbol,
        valid_from,
        valid_to,
        valid_from::{{ type_name('timestamptz') }} as valid_from_at,
        valid_to::{{ type_name('timestamptz') }} as valid_to_at,
        known_from,
        known_to,
        split_factor,
        dividend_factor,
        is_current,
        adjustment_version
    from segments_as_known

)

select * from final
