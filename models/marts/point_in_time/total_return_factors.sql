{{ config(tags=['portable'], contract={'enforced': target.type == 'duckdb'}) }}
{#- Forward (point-in-time) total-return factors, as segments of constant factor per
    symbol: rows of `symbol` with valid_from <= UTC date < valid_to get
        total_return_factor = product over the valid actions with ex_date <= valid_from of
                              their adjustment step (1 / split ratio, 1 - D / close_prev)
    multiplied in ex-date order (then action_type) from the first, one step at a time.
    close / total_return_factor is a total-return price that compounds forward: its value
    on day d depends only on bars and actions up to d, bit for bit, whatever comes later
    (unlike close_adj, which later actions rescale). Mathematically the backward factors
    of int_adjustment_factors_computed are its complement: split_factor * dividend_factor
    = total_return_factor(latest) / total_return_factor. Symbols without a valid action
    have no rows (factor 1). -#}
with

valid_actions as (

    select
        symbol,
        ex_date,
        action_type,
        adjustment_step
    from {{ ref('corporate_actions') }}
    where is_valid

),

steps_numbered as (

    select
        symbol,
        ex_date,
        adjustment_step,
        row_number() over (partition by symbol order by ex_date, action_type)::bigint as step_number
    from valid_actions

),

steps_listed as (

    select
        symbol,
        {{ list_in_order('adjustment_step', 'step_number') }} as steps
    from steps_numbered
    group by symbol

),

ex_dates_numbered as (

    select
        symbol,
        ex_date,
        max(step_number) as step_number
    from steps_numbered
    group by symbol, ex_date

),

{# a left fold over the first step_number steps: the same multiplications in the same
   order whatever actions follow (a window product may associate them differently) #}
factors_cumulated as (

    select
        ex_dates_numbered.symbol,
        ex_dates_numbered.ex_date,
        ex_dates_numbered.step_number,
        {{ product_of_first('steps_listed.steps', 'ex_dates_numbered.step_number') }} as total_return_factor
    from ex_dates_numbered
    inner join steps_listed
        on ex_dates_numbered.symbol = steps_listed.symbol

),

segments_from_each_ex_date as (

    select
        symbol,
        ex_date as valid_from,
        coalesce(
            lead(ex_date) over (partition by symbol order by ex_date), date '9999-12-31'
        ) as valid_to,
        step_number as action_count,
        total_return_factor
    from factors_cumulated

),

segments_before_the_first_ex_date as (

    select
        symbol,
        date '1900-01-01' as valid_from,
        min(ex_date) as valid_to,
        0::bigint as action_count,
        1.0::double as total_return_factor
    from factors_cumulated
    group by symbol

),

segments as (

    select * from segments_before_the_first_ex_date
    union all
    select * from segments_from_each_ex_date

),

final as (

    select
        symbol,
        valid_from,
        valid_to,
        {{ date_to_utc('valid_from') }} as valid_from_at,
        {{ date_to_utc('valid_to') }} as valid_to_at,
        action_count,
        total_return_factor
    from segments

)

select * from final
