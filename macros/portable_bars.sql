{#- What the bar marts need spelled per engine (see macros/portable.sql for the others):
    microseconds since the epoch, a date as a day number, a row per day of a range, and a
    text list without its NULLs. -#}

{#- microseconds since 1970-01-01 UTC of a timestamp (an instant on both engines) -#}
{% macro epoch_microseconds(ts) -%}
    {{ return(adapter.dispatch('epoch_microseconds', 'duckmarket')(ts)) }}
{%- endmacro %}

{% macro duckdb__epoch_microseconds(ts) -%}
    epoch_us({{ ts }})
{%- endmacro %}

{% macro spark__epoch_microseconds(ts) -%}
    unix_micros({{ ts }})
{%- endmacro %}


{#- days from 1970-01-01 to a DATE, as a BIGINT -#}
{% macro days_since_epoch(day) -%}
    {{ return(adapter.dispatch('days_since_epoch', 'duckmarket')(day)) }}
{%- endmacro %}

{% macro duckdb__days_since_epoch(day) -%}
    ({{ day }} - date '1970-01-01')::bigint
{%- endmacro %}

{% macro spark__days_since_epoch(day) -%}
    cast(unix_date({{ day }}) as bigint)
{%- endmacro %}


{#- a select-list item that turns each row into one row per integer of [first, stop):
    none when stop <= first (Spark's sequence() would count down) -#}
{% macro each_integer(first, stop) -%}
    {{ return(adapter.dispatch('each_integer', 'duckmarket')(first, stop)) }}
{%- endmacro %}

{% macro duckdb__each_integer(first, stop) -%}
    unnest(range({{ first }}, {{ stop }}))
{%- endmacro %}

{% macro spark__each_integer(first, stop) -%}
    explode(
        case
            when {{ stop }} > {{ first }} then sequence({{ first }}, {{ stop }} - 1)
            else array()
        end
    )
{%- endmacro %}


{#- a list of the non-NULL values of `items` (SQL text expressions) -#}
{% macro text_list_without_nulls(items) -%}
    {{ return(adapter.dispatch('text_list_without_nulls', 'duckmarket')(items)) }}
{%- endmacro %}

{% macro duckdb__text_list_without_nulls(items) -%}
    list_filter(
        [
            {{ items | join(',\n            ') }}
        ],
        flag -> flag is not null
    )
{%- endmacro %}

{% macro spark__text_list_without_nulls(items) -%}
    filter(
        array(
            {{ items | join(',\n            ') }}
        ),
        flag -> flag is not null
    )
{%- endmacro %}


{#- an empty list of text -#}
{% macro empty_text_list() -%}
    {{ return(adapter.dispatch('empty_text_list', 'duckmarket')()) }}
{%- endmacro %}

{% macro duckdb__empty_text_list() -%}
    []::varchar[]
{%- endmacro %}

{% macro spark__empty_text_list() -%}
    cast(array() as array<string>)
{%- endmacro %}
