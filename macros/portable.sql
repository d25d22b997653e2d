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


{#- The product of a column's values (an aggregate, or a window function when `over`
    names a window), optionally of the rows `where` holds: NULL when no value. Spark has
    no product(): it multiplies the collected values one by one in the window's order,
    which gives DuckDB's result to the bit over frames of up to 31 rows (beyond, DuckDB's
    window segment tree groups the multiplications differently: the last bits may
    differ); signs, zeros and NaN behave alike, unlike with exp(sum(ln(x))). -#}
{% macro product_of(expr, where=none, over=none) -%}
    {{ return(adapter.dispatch('product_of', 'duckmarket')(expr, where, over)) }}
{%- endmacro %}


{% macro duckdb__product_of(expr, where, over) -%}
    product({{ expr }})
    {%- if where %} filter (where {{ where }}){% endif %}
    {%- if over %} over {{ over }}{% endif %}
{%- endmacro %}


{#- Spark refuses FILTER on window aggregates: the rows `where` fails on become NULLs -#}
{% macro spark__product_of(expr, where, over) -%}
    {%- set value = 'case when ' ~ where ~ ' then ' ~ expr ~ ' end' if where else expr -%}
    {%- set window = ' over ' ~ over if over else '' -%}
    case
        when count({{ value }}){{ window }} > 0
            then aggregate(
                collect_list({{ value }}){{ window }},
                cast(1 as double),
                (product, factor) -> product * factor
            )
    end
{%- endmacro %}


{#- string_agg with its values in order (the `over` clause, if any, follows) -#}
{% macro string_agg_ordered(expr, separator, order_by) -%}
    {{ return(adapter.dispatch('string_agg_ordered', 'duckmarket')(expr, separator, order_by)) }}
{%- endmacro %}


{% macro duckdb__string_agg_ordered(expr, separator, order_by) -%}
    string_agg({{ expr }}, '{{ separator }}' order by {{ order_by }})
{%- endmacro %}


{% macro spark__string_agg_ordered(expr, separator, order_by) -%}
    string_agg({{ expr }}, '{{ separator }}') within group (order by {{ order_by }})
{%- endmacro %}


{#- A double as text, spelled as DuckDB casts it to varchar (the shortest digits that
    read back to the same double, as Python's repr: 0.5, 1.0, 0.0005, 12345678.0,
    1e-05, 2.5e+16), so a hash of such texts is the same on both engines when the
    doubles are. -#}
{% macro double_text(x) -%}
    {{ return(adapter.dispatch('double_text', 'duckmarket')(x)) }}
{%- endmacro %}


{% macro duckdb__double_text(x) -%}
    {{ x }}::varchar
{%- endmacro %}


{#- Spark prints Java's Double.toString: the same digits (Java 17 adds a digit to some
    values outside [1e-3, 1e7)), plain in [1e-3, 1e7) as DuckDB, else d.dddE<n>, which
    DuckDB spells plain for -4 <= n < 16 and as d.ddde-05 / d.ddde+16 otherwise. -#}
{% macro spark__double_text(x) -%}
    {%- set java = 'cast(' ~ x ~ ' as string)' -%}
    {%- set sign = "if(" ~ java ~ " like '-%', '-', '')" -%}
    {%- set digits = "regexp_replace(replace(replace(substring_index(" ~ java
        ~ ", 'E', 1), '-', ''), '.', ''), '0+$', '')" -%}
    {%- set exponent = 'cast(substring_index(' ~ java ~ ", 'E', -1) as int)" -%}
    case
        when {{ java }} = 'NaN' then 'nan'
        when {{ java }} = 'Infinity' then 'inf'
        when {{ java }} = '-Infinity' then '-inf'
        when {{ java }} not like '%E%' then {{ java }}
        when {{ exponent }} < -4 or {{ exponent }} >= 16
            then concat(
                {{ sign }},
                substr({{ digits }}, 1, 1),
                if(length({{ digits }}) > 1, concat('.', substr({{ digits }}, 2)), ''),
                if({{ exponent }} < 0, 'e-', 'e+'),
                if(abs({{ exponent }}) < 10, '0', ''),
                cast(abs({{ exponent }}) as string)
            )
        when {{ exponent }} < 0
            then concat({{ sign }}, '0.', repeat('0', -{{ exponent }} - 1), {{ digits }})
        when length({{ digits }}) <= {{ exponent }} + 1
            then concat({{ sign }}, rpad({{ digits }}, {{ exponent }} + 1, '0'), '.0')
        else concat(
            {{ sign }},
            substr({{ digits }}, 1, {{ exponent }} + 1),
            '.',
            substr({{ digits }}, {{ exponent }} + 2)
        )
    end
{%- endmacro %}


{#- Each action (every column of `actions`) with the last session before its ex-date
    (previous_session_date, previous_close: what a dividend is measured against) and the
    first session on or after it (ex_session_date, ex_open), from `sessions` (symbol,
    session_date, open, close). -#}
{% macro with_sessions_around_ex_date(actions, sessions) -%}
    {{ return(adapter.dispatch('with_sessions_around_ex_date', 'duckmarket')(actions, sessions)) }}
{%- endmacro %}


{% macro duckdb__with_sessions_around_ex_date(actions, sessions) -%}
    select
        actions_with_previous_close.*,
        ex_session.session_date as ex_session_date,
        ex_session.open as ex_open
    from (
        select
            {{ actions }}.*,
            previous_session.session_date as previous_session_date,
            previous_session.close as previous_close
        from {{ actions }}
        asof left join {{ sessions }} as previous_session
            on
                {{ actions }}.symbol = previous_session.symbol
                and {{ actions }}.ex_date > previous_session.session_date
    ) as actions_with_previous_close
    asof left join {{ sessions }} as ex_session
        on
            actions_with_previous_close.symbol = ex_session.symbol
            and actions_with_previous_close.ex_date <= ex_session.session_date
{%- endmacro %}


{#- Spark has no ASOF join: one timeline per symbol of the actions' ex-dates and the
    sessions; an ex-date row takes the last session before it in date order (a session of
    the same date comes after it) and the last before it in reverse date order (a session
    of the same date comes before it). Both frames start at the partition's first row, so
    Spark updates them row by row; a frame running to the partition's end would be
    recomputed at every row (quadratic in the sessions of a symbol). -#}
{% macro spark__with_sessions_around_ex_date(actions, sessions) -%}
    select
        {{ actions }}.*,
        located.previous_session.session_date as previous_session_date,
        located.previous_session.close as previous_close,
        located.ex_session.session_date as ex_session_date,
        located.ex_session.open as ex_open
    from {{ actions }}
    left join (
        select
            symbol,
            day as ex_date,
            previous_session,
            ex_session
        from (
            select
                symbol,
                day,
                is_ex_date,
                last(session, true) over (
                    partition by symbol order by day, is_ex_date desc
                    rows between unbounded preceding and 1 preceding
                ) as previous_session,
                last(session, true) over (
                    partition by symbol order by day desc, is_ex_date asc
                    rows between unbounded preceding and 1 preceding
                ) as ex_session
            from (
                select distinct
                    symbol,
                    ex_date as day,
                    true as is_ex_date,
                    cast(null as struct<session_date: date, open: double, close: double>) as session
                from {{ actions }}
                union all
                select
                    symbol,
                    session_date as day,
                    false as is_ex_date,
                    named_struct('session_date', session_date, 'open', open, 'close', close) as session
                from {{ sessions }}
            ) as timeline
        ) as timeline_located
        where is_ex_date
    ) as located
        on
            {{ actions }}.symbol = located.symbol
            and {{ actions }}.ex_date = located.ex_date
{%- endmacro %}


{#- An aggregate: the group's values of `expr` as a list, in the order of `order_by` (a
    column whose values are unique in the group) -#}
{% macro list_in_order(expr, order_by) -%}
    {{ return(adapter.dispatch('list_in_order', 'duckmarket')(expr, order_by)) }}
{%- endmacro %}


{% macro duckdb__list_in_order(expr, order_by) -%}
    list({{ expr }} order by {{ order_by }})
{%- endmacro %}


{% macro spark__list_in_order(expr, order_by) -%}
    transform(
        array_sort(collect_list(struct({{ order_by }} as k, {{ expr }} as v))),
        entry -> entry.v
    )
{%- endmacro %}


{#- The product of a list's first `n` doubles (n >= 1), multiplied one at a time from the
    first: the same bits on both engines (Spark starts from 1.0, and 1.0 * x = x) -#}
{% macro product_of_first(list, n) -%}
    {{ return(adapter.dispatch('product_of_first', 'duckmarket')(list, n)) }}
{%- endmacro %}


{% macro duckdb__product_of_first(list, n) -%}
    list_reduce({{ list }}[1:{{ n }}], (a, b) -> a * b)
{%- endmacro %}


{% macro spark__product_of_first(list, n) -%}
    aggregate(slice({{ list }}, 1, {{ n }}), cast(1 as double), (a, b) -> a * b)
{%- endmacro %}
