{{ config(tags=['portable']) }}
{#- One bar per (symbol, timeframe, ts) across sources: the source ranked first in
    var('source_precedence') wins. Series that only one source delivers (found from the
    lake's file names at compile time) skip the window entirely. -#}
{%- set multi_source = multi_source_series() -%}
{%- set columns = [
    'source', 'symbol', 'timeframe', 'period', 'ts', 'open', 'high', 'low', 'close',
    'volume', 'is_final', 'ingested_at',
] -%}

with

bars as (

    select
        {{ columns | join(',\n        ') }}
    from {{ ref('stg_lake__bars') }}

),

{% if multi_source %}
single_source_bars as (

    select *
    from bars
    where timeframe || '|' || symbol not in ({{ sql_list(multi_source) }})

),

multi_source_bars_ranked as (

    select
        {{ columns | join(',\n        ') }}
    from (
        select
            *,
            row_number() over (
                partition by symbol, timeframe, ts
                order by {{ source_rank('source') }}, source
            ) as source_rank
        from bars
        where timeframe || '|' || symbol in ({{ sql_list(multi_source) }})
    ) as ranked
    where source_rank = 1

),

deduplicated as (

    select * from single_source_bars
    union all
    select * from multi_source_bars_ranked

)
{% else %}
deduplicated as (

    select * from bars

)
{% endif %}

select * from deduplicated
