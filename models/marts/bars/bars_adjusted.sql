{{
    config(
        tags=['portable'],
        materialized='incremental' if target.type == 'duckdb' else 'table',
        contract={'enforced': target.type == 'duckdb'},
        incremental_strategy='replace_range',
        unique_key=['symbol', 'timeframe'],
        range_column='ts',
        on_schema_change='fail',
        change_log=true,
        pre_hook=["{{ record_test_scope(this) }}", "{{ open_change_log(this) }}"],
        post_hook=["{{ record_adjustment_versions(this) }}"],
    )
}}
-- depends_on: {{ ref('stg_lake__bars') }}
-- depends_on: {{ ref('int_adjustment_factors_computed') }}
{#- Every bar of every timeframe, raw (as traded) beside its backward adjustment factors
    and adjusted prices (DESIGN §4), with quality flags: suspect rows are flagged, never
    dropped. Incremental: new lake rows (by ingested_at) are rebuilt from a few bars before
    them (the outlier screen's reach); a symbol whose adjustment factors changed is rebuilt
    entirely. On Spark (tag `portable`) it is a table, built in full, without the contract
    (its data types in _bars__models.yml are DuckDB's) or the hooks. -#}
{% set half_window = var('outlier_half_window') | int %}
{% set bar_columns = [
    'symbol', 'source', 'timeframe', 'period', 'ts', 'open', 'high', 'low', 'close', 'volume',
    'is_final', 'ingested_at',
] %}
{#- quality_mask's bits and the names quality_flags lists them by -#}
{% set flag_cases = [] %}
{% for bit, flag in [
    (1, 'non_positive_price'), (2, 'high_below_open_close'), (4, 'low_above_open_close'),
    (8, 'negative_volume'), (16, 'missing_value'), (32, 'misaligned_ts'),
    (64, 'action_jump_mismatch'), (128, 'outlier'),
] %}
{% do flag_cases.append("case when quality_mask & " ~ bit ~ " != 0 then '" ~ flag ~ "' end") %}
{% endfor %}
{% set adjusted_columns = bar_columns + [
    'split_factor', 'dividend_factor', 'is_on_mismatched_ex_date',
    'open_split_adj', 'high_split_adj', 'low_split_adj', 'close_split_adj', 'volume_split_adj',
    'open_adj', 'high_adj', 'low_adj', 'close_adj', 'volume_adj',
] %}
{#- a bar's score reads the returns k bars either side of it and the next bar's close -#}
{% set plan = bar_mart_plan(this, lookback_rows=half_window + 1) %}

with

bars as (

    {{ bar_mart_scan(ref('int_bars_deduplicated'), plan) }}

),

{# The factor segment of a bar is the last one with valid_from <= its UTC date. Rather than
   an ASOF join (which sorts every bar), segments are expanded to one row per day over the
   days the symbol's bars span (a few thousand rows per symbol) and hash-joined on
   (symbol, day number). #}
bar_days as (

    select
        symbol,
        min({{ utc_day_number('ts') }}) as first_day,
        max({{ utc_day_number('ts') }}) as last_day
    from ({{ bar_mart_scan(ref('int_bars_deduplicated'), plan) }}) as recomputed_bars
    group by symbol

),

factor_segments as (

    select
        symbol,
        {{ days_since_epoch('valid_from') }} as valid_from_day,
        {{ days_since_epoch('lead(valid_from) over (partition by symbol order by valid_from)') }}
            as valid_to_day,
        split_factor,
        dividend_factor,
        starts_with_jump_mismatch
    from {{ ref('int_adjustment_factors_computed') }}

),

segment_day_ranges as (

    select
        factor_segments.symbol,
        factor_segments.valid_from_day,
        factor_segments.split_factor,
        factor_segments.dividend_factor,
        factor_segments.starts_with_jump_mismatch,
        greatest(factor_segments.valid_from_day, bar_days.first_day) as from_day,
        least(
            coalesce(factor_segments.valid_to_day, bar_days.last_day + 1), bar_days.last_day + 1
        ) as to_day
    from factor_segments
    inner join bar_days
        on factor_segments.symbol = bar_days.symbol

),

segment_days as (

    select
        *,
        {{ each_integer('from_day', 'to_day') }} as day_number
    from segment_day_ranges

),

factor_days as (

    select
        symbol,
        day_number,
        split_factor,
        dividend_factor,
        coalesce(starts_with_jump_mismatch and day_number = valid_from_day, false)
            as is_on_mismatched_ex_date
    from segment_days

),

bars_joined_to_factors as (

    select
        {%- for column in bar_columns %}
        bars.{{ column }},
        {%- endfor %}
        coalesce(factor_days.split_factor, 1.0) as split_factor,
        coalesce(factor_days.dividend_factor, 1.0) as dividend_factor,
        coalesce(factor_days.is_on_mismatched_ex_date, false) as is_on_mismatched_ex_date
    from bars
    left join factor_days
        on
            bars.symbol = factor_days.symbol
            and {{ utc_day_number('bars.ts') }} = factor_days.day_number

),

{# Adjusted prices are stored bit-rounded (macros/bit_round.sql: relative error under
   1e-11) except where no action adjusts the bar, where they equal the raw prices exactly.
   Everything below (returns, the screen) reads the rounded, published values. #}
bars_adjusted as (

    select
        *,
        {%- for price in ['open', 'high', 'low', 'close'] %}
        {{ price }} * split_factor as {{ price }}_split_adj_unrounded,
        {{ price }} * split_factor * dividend_factor as {{ price }}_adj_unrounded,
        {%- endfor %}
        volume / split_factor as volume_split_adj,
        volume / split_factor as volume_adj
    from bars_joined_to_factors

),

bars_adjusted_rounded as (

    select
        {{ bar_columns | join(',\n        ') }},
        split_factor,
        dividend_factor,
        is_on_mismatched_ex_date,
        {%- for price in ['open', 'high', 'low', 'close'] %}
        case
            when split_factor = 1 then {{ price }} else {{ bit_round(price ~ '_split_adj_unrounded') }}
        end as {{ price }}_split_adj,
        case
            when split_factor = 1 and dividend_factor = 1 then {{ price }}
            else {{ bit_round(price ~ '_adj_unrounded') }}
        end as {{ price }}_adj,
        {%- endfor %}
        volume_split_adj,
        volume_adj
    from bars_adjusted

),

{# The outlier screen looks for bad prints: a close that jumps away and comes straight
   back. A bar's score is the smaller of its log return into the bar and the one out of it
   when the two have opposite signs (zero otherwise), in units of the mean absolute return
   of the 2k bars around it (those two returns left out, so a spike cannot hide in its own
   scale; the scale is floored at outlier_min_scale so a flat, illiquid stretch does not
   turn a one-tick bounce into an outlier). A move that holds is never an outlier,
   whatever its size; a bar without a next bar scores zero until that bar arrives. #}
returns_around as (

    select
        *,
        ln(close_adj / lag(close_adj) over series_in_time) as log_return,
        ln(lead(close_adj) over series_in_time / close_adj) as next_log_return
    from bars_adjusted_rounded
    window series_in_time as (partition by symbol, timeframe order by ts)

),

return_scales as (

    select
        *,
        sum(abs(log_return)) over nearby_bars as nearby_abs_return_sum,
        count(log_return) over nearby_bars as nearby_return_count
    from returns_around
    window nearby_bars as (
        partition by symbol, timeframe
        order by ts
        rows between {{ half_window }} preceding and {{ half_window }} following
    )

),

outlier_scores as (

    select
        *,
        case
            when sign(log_return) = -sign(next_log_return) and nearby_return_count > 2
                then
                    least(abs(log_return), abs(next_log_return)) / greatest(
                        (nearby_abs_return_sum - abs(log_return) - abs(next_log_return))
                        / (nearby_return_count - 2),
                        {{ var('outlier_min_scale') }}
                    )
            else 0.0
        end as outlier_score
    from return_scales

),

screen_rounded as (

    select
        {{ adjusted_columns | join(',\n        ') }},
        {{ bit_round('log_return') }} as log_return,
        {{ bit_round('outlier_score') }} as outlier_score
    from outlier_scores

),

quality_checked as (

    select
        *,
        cast((
            case when coalesce(least(open, high, low, close) <= 0, false) then 1 else 0 end
            + case when high < greatest(open, close) then 2 else 0 end
            + case when low > least(open, close) then 4 else 0 end
            + case when volume < 0 then 8 else 0 end
            + case
                when
                    open is null or high is null or low is null or close is null or volume is null
                    or isnan(open) or isnan(high) or isnan(low) or isnan(close) or isnan(volume)
                    then 16
                else 0
            end
            + case
                when timeframe in ('1d', '1w') and {{ epoch_microseconds('ts') }} % 86400000000 != 0 then 32
                when {{ epoch_microseconds('ts') }} % 60000000 != 0 then 32
                else 0
            end
            + case when is_on_mismatched_ex_date then 64 else 0 end
            + case when outlier_score > {{ var('outlier_threshold') }} then 128 else 0 end
        ) as {{ type_name('utinyint') }}) as quality_mask
    from screen_rounded

),

flagged as (

    select
        symbol,
        source,
        timeframe,
        period,
        ts,
        open,
        high,
        low,
        close,
        volume,
        split_factor,
        dividend_factor,
        open_split_adj,
        high_split_adj,
        low_split_adj,
        close_split_adj,
        volume_split_adj,
        open_adj,
        high_adj,
        low_adj,
        close_adj,
        volume_adj,
        log_return,
        outlier_score,
        is_final,
        quality_mask & 127 != 0 as is_invalid,
        quality_mask & 128 != 0 as is_outlier,
        quality_mask != 0 as is_suspect,
        quality_mask,
        case
            when quality_mask = 0 then {{ empty_text_list() }}
            else {{ text_list_without_nulls(flag_cases) }}
        end as quality_flags,
        ingested_at
    from quality_checked
    where {{ plan['keep'] }}

)

select * from flagged
