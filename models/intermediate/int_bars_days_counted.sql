{{
    config(
        materialized='incremental',
        incremental_strategy='replace_range',
        unique_key=['source', 'symbol', 'timeframe'],
        range_column='bar_date',
        on_schema_change='fail',
    )
}}
-- depends_on: {{ ref('stg_lake__bars') }}
{#- Observed bars per source, symbol, timeframe and UTC day (coverage's raw material).
    Incremental: days from the first new lake row of each series on. -#}
{%- if is_incremental() -%}
{%- set plan = incremental_plan(this, by_source=true) -%}
{%- set since = "'" ~ (plan['series'] | map(attribute='min_ts') | min) ~ "'" if plan['series'] else "'infinity'" -%}
{%- endif %}

with

bars as (

    select
        source,
        symbol,
        timeframe,
        ts,
        ingested_at
    from {{ ref('stg_lake__bars') }}
    {%- if is_incremental() %}
    where
        ts >= {{ since }}::timestamptz::date::timestamptz
        and (
            {%- for s in plan['series'] %}
            (
                source = '{{ s.source }}'
                and symbol = '{{ s.symbol | replace("'", "''") }}'
                and timeframe = '{{ s.timeframe }}'
                and ts >= '{{ s.min_ts }}'::timestamptz::date::timestamptz
            ) or
            {%- endfor %}
            false
        )
    {%- endif %}

),

counted as (

    select
        source,
        symbol,
        timeframe,
        {{ utc_date('ts') }} as bar_date,
        count(*) as row_count,
        min(ts) as first_ts,
        max(ts) as last_ts,
        max(ingested_at) as ingested_at
    from bars
    group by all

)

select * from counted
