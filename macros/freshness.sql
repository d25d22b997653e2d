{#- `dbt source freshness` on the lake. The lake's sources are read_parquet() globs: a
    dataset with no file yet (no ticks ever ingested, a lake without actions) makes the
    default query fail, so it reads as never loaded instead (max_loaded_at null, which dbt
    reports as older than any threshold). Other relations take dbt's default query. -#}
{% macro duckdb__collect_freshness(source, loaded_at_field, filter) -%}
    {%- if (source | string).startswith('read_parquet(') and not lake_has_files(source) -%}
        {% call statement('collect_freshness', fetch_result=True, auto_begin=False) -%}
            select
                null::timestamptz as max_loaded_at,
                {{ current_timestamp() }} as snapshotted_at
        {%- endcall %}
        {{ return(load_result('collect_freshness')) }}
    {%- endif -%}
    {{ return(default__collect_freshness(source, loaded_at_field, filter)) }}
{%- endmacro %}
