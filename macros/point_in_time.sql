{#- A DuckDB table macro for the shell: `select * from bars_as_of(date '2024-03-01')`
    gives every bar up to that date adjusted only by the actions known on that date. -#}
{% macro create_bars_as_of_macro() -%}
    {%- set bars = adapter.get_relation(target.database, target.schema, 'bars_adjusted') if execute else none -%}
    {%- set factors = adapter.get_relation(target.database, target.schema, 'adjustment_factors') if execute else none -%}
    {#- a DuckDB table macro: on Spark (the portable models) the factor marts are tables
        to join, and there is no bars_as_of -#}
    {%- if target.type == 'duckdb' and bars is not none and factors is not none -%}
        create or replace macro {{ target.schema }}.bars_as_of(as_of) as table
        select
            bars.symbol,
            bars.source,
            bars.timeframe,
            bars.ts,
            bars.open,
            bars.high,
            bars.low,
            bars.close,
            bars.volume,
            coalesce(factors.split_factor, 1.0) as split_factor,
            coalesce(factors.dividend_factor, 1.0) as dividend_factor,
            bars.open * coalesce(factors.split_factor * factors.dividend_factor, 1.0) as open_adj,
            bars.high * coalesce(factors.split_factor * factors.dividend_factor, 1.0) as high_adj,
            bars.low * coalesce(factors.split_factor * factors.dividend_factor, 1.0) as low_adj,
            bars.close * coalesce(factors.split_factor * factors.dividend_factor, 1.0) as close_adj,
            bars.volume / coalesce(factors.split_factor, 1.0) as volume_adj,
            bars.is_final,
            bars.is_invalid,
            bars.is_outlier,
            bars.is_suspect,
            bars.quality_flags
        from {{ target.schema }}.bars_adjusted as bars
        left join {{ target.schema }}.adjustment_factors as factors
            on
                bars.symbol = factors.symbol
                and bars.ts >= factors.valid_from_at
                and bars.ts < factors.valid_to_at
                and as_of::date >= factors.known_from
                and as_of::date < factors.known_to
        where bars.ts < (as_of::date + 1)::timestamptz
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
