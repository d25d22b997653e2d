{#- What the bar marts need spelled per engine (see macros/portable.sql for the others):
    microseconds and seconds since the epoch and back, a date as a day number, integer
    division, a row per integer or per day of a range, a text list without its NULLs, and
    a group's first and last value in an order and any one of its values. -#}

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


{#- integer division truncating toward zero (DuckDB's //, Spark's div); a dividend that is
    a sum goes in parentheses -#}
{% macro integer_divide(dividend, divisor) -%}
    {{ return(adapter.dispatch('integer_divide', 'duckmarket')(dividend, divisor)) }}
{%- endmacro %}

{% macro duckdb__integer_divide(dividend, divisor) -%}
    ({{ dividend }} // {{ divisor }})
{%- endmacro %}

{% macro spark__integer_divide(dividend, divisor) -%}
    ({{ dividend }} div {{ divisor }})
{%- endmacro %}


{#- seconds since 1970-01-01 UTC of a timestamp: DuckDB's epoch() is a DOUBLE with the
    microseconds as a fraction, Spark's unix_seconds() a BIGINT of whole seconds; the same
    for the whole-second instants of sessions and buckets -#}
{% macro epoch_seconds(ts) -%}
    {{ return(adapter.dispatch('epoch_seconds', 'duckmarket')(ts)) }}
{%- endmacro %}

{% macro duckdb__epoch_seconds(ts) -%}
    epoch({{ ts }})
{%- endmacro %}

{% macro spark__epoch_seconds(ts) -%}
    unix_seconds({{ ts }})
{%- endmacro %}


{#- the instant `us` microseconds after 1970-01-01 UTC (a BIGINT expression) -#}
{% macro timestamp_from_microseconds(us) -%}
    {{ return(adapter.dispatch('timestamp_from_microseconds', 'duckmarket')(us)) }}
{%- endmacro %}

{% macro duckdb__timestamp_from_microseconds(us) -%}
    make_timestamptz({{ us }})
{%- endmacro %}

{% macro spark__timestamp_from_microseconds(us) -%}
    timestamp_micros({{ us }})
{%- endmacro %}


{#- An aggregate: `value` of the row with the smallest (first_by) or largest (last_by)
    `ordering` among the rows whose value is not NULL, as DuckDB's arg_min and arg_max;
    Spark's min_by and max_by would return a NULL value when its row has the extreme
    ordering, so its rows with a NULL value get no ordering. -#}
{% macro first_by(value, ordering) -%}
    {{ return(adapter.dispatch('first_by', 'duckmarket')(value, ordering)) }}
{%- endmacro %}

{% macro duckdb__first_by(value, ordering) -%}
    arg_min({{ value }}, {{ ordering }})
{%- endmacro %}

{% macro spark__first_by(value, ordering) -%}
    min_by({{ value }}, case when {{ value }} is not null then {{ ordering }} end)
{%- endmacro %}


{% macro last_by(value, ordering) -%}
    {{ return(adapter.dispatch('last_by', 'duckmarket')(value, ordering)) }}
{%- endmacro %}

{% macro duckdb__last_by(value, ordering) -%}
    arg_max({{ value }}, {{ ordering }})
{%- endmacro %}

{% macro spark__last_by(value, ordering) -%}
    max_by({{ value }}, case when {{ value }} is not null then {{ ordering }} end)
{%- endmacro %}


{#- a FROM item: one row per day from the timestamp `first` to the timestamp `last`, both
    included, as `alias` (`column`); `last` must not precede `first` (Spark's sequence()
    would count down) -#}
{% macro each_day_from(first, last, alias, column) -%}
    {{ return(adapter.dispatch('each_day_from', 'duckmarket')(first, last, alias, column)) }}
{%- endmacro %}

{% macro duckdb__each_day_from(first, last, alias, column) -%}
    generate_series({{ first }}, {{ last }}, interval 1 day) as {{ alias }} ({{ column }})
{%- endmacro %}

{% macro spark__each_day_from(first, last, alias, column) -%}
    (select explode(sequence({{ first }}, {{ last }}, interval 1 day)) as {{ column }}) as {{ alias }}
{%- endmacro %}


{#- An aggregate: any one of the group's non-NULL values of `value` (DuckDB's any_value
    skips NULLs, Spark's only when asked to) -#}
{% macro any_non_null(value) -%}
    {{ return(adapter.dispatch('any_non_null', 'duckmarket')(value)) }}
{%- endmacro %}

{% macro duckdb__any_non_null(value) -%}
    any_value({{ value }})
{%- endmacro %}

{% macro spark__any_non_null(value) -%}
    any_value({{ value }}, true)
{%- endmacro %}


{#- the instant `days` (an integer expression, whole days of 24 hours) before the build's
    start -#}
{% macro days_before_now(days) -%}
    {{ return(adapter.dispatch('days_before_now', 'duckmarket')(days)) }}
{%- endmacro %}

{% macro duckdb__days_before_now(days) -%}
    (now() - to_days({{ days }}))
{%- endmacro %}

{% macro spark__days_before_now(days) -%}
    (current_timestamp() - make_dt_interval({{ days }}))
{%- endmacro %}
