{#- What the quality models need spelled per engine (see macros/portable.sql): a
    timestamp as DuckDB writes it, a row per element of a list, and a JSON object. -#}

{#- a TIMESTAMPTZ as DuckDB casts it to text with the session time zone at UTC:
    2024-03-07 14:30:00+00, the fraction of a second only when there is one, without
    trailing zeros (2024-03-07 14:30:00.5+00) -#}
{% macro timestamp_text(ts) -%}
    {{ return(adapter.dispatch('timestamp_text', 'duckmarket')(ts)) }}
{%- endmacro %}

{% macro duckdb__timestamp_text(ts) -%}
    {{ ts }}::varchar
{%- endmacro %}

{% macro spark__timestamp_text(ts) -%}
    case
        when {{ ts }} is not null
            then concat(
                date_format({{ ts }}, 'yyyy-MM-dd HH:mm:ss'),
                case
                    when unix_micros({{ ts }}) % 1000000 != 0
                        then concat(
                            '.',
                            regexp_replace(
                                lpad(cast(pmod(unix_micros({{ ts }}), 1000000) as string), 6, '0'),
                                '0+$',
                                ''
                            )
                        )
                    else ''
                end,
                '+00'
            )
    end
{%- endmacro %}


{#- a select-list item that turns each row into one row per element of a list column -#}
{% macro each_element(list_column) -%}
    {{ return(adapter.dispatch('each_element', 'duckmarket')(list_column)) }}
{%- endmacro %}

{% macro duckdb__each_element(list_column) -%}
    unnest({{ list_column }})
{%- endmacro %}

{% macro spark__each_element(list_column) -%}
    explode({{ list_column }})
{%- endmacro %}


{#- a JSON object of the named columns, as text, nulls included. The engines spell some
    doubles differently (DuckDB 0.0005, Spark 5.0E-4): the same JSON values, not the
    same text. -#}
{% macro json_object(columns) -%}
    {{ return(adapter.dispatch('json_object', 'duckmarket')(columns)) }}
{%- endmacro %}

{% macro duckdb__json_object(columns) -%}
    to_json({
        {%- for column in columns %}
        {{ column }}: {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    })::varchar
{%- endmacro %}

{% macro spark__json_object(columns) -%}
    to_json(
        named_struct(
            {%- for column in columns %}
            '{{ column }}', {{ column }}{{ ',' if not loop.last }}
            {%- endfor %}
        ),
        map('ignoreNullFields', 'false')
    )
{%- endmacro %}
