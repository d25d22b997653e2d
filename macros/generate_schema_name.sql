{#- Marts land in the target schema (main) so `select * from bars_adjusted` works in the
    DuckDB shell; staging and intermediate models get their folder's schema as is. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
