{#- The engine-specific pieces of the portable models: the models tagged `portable`
    (staging, deduplication, ...) build on DuckDB and on Spark (dbt-spark), and these
    macros render what the two engines spell differently. Everything else in those models
    is SQL both engines read alike (min_by/max_by, group by all, row_number windows,
    `expr::type` casts). -#}

{#- A DuckDB type name as the target spells it: Spark has no unbounded varchar and no
    TIMESTAMPTZ (its TIMESTAMP is an instant, shown in the session time zone, UTC). -#}
{% macro type_name(name) -%}
    {{ return(adapter.dispatch('type_name', 'duckmarket')(name)) }}
{%- endmacro %}

{% macro default__type_name(name) -%}
    {{ return(name) }}
{%- endmacro %}

{% macro spark__type_name(name) -%}
    {%- set spelled = {'varchar': 'string', 'timestamptz': 'timestamp', 'utinyint': 'smallint'} -%}
    {{ return(spelled.get(name, name)) }}
{%- endmacro %}
