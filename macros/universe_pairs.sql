{#- The universe file's pairs (var('universe_pairs'): a list of {symbol_a, symbol_b},
    passed by `duckmarket update`) as a DuckDB list of structs; an empty list when unset. -#}
{% macro universe_pairs() -%}
    {%- set items = [] -%}
    {%- for p in var('universe_pairs', []) -%}
        {%- set a = (p['symbol_a'] | string) | replace("'", "''") -%}
        {%- set b = (p['symbol_b'] | string) | replace("'", "''") -%}
        {%- do items.append("{'symbol_a': '" ~ a ~ "', 'symbol_b': '" ~ b ~ "'}") -%}
    {%- endfor -%}
    [{{ items | join(', ') }}]::struct(symbol_a varchar, symbol_b varchar)[]
{%- endmacro %}
