{#- Column lists for the Hampel filter in bars_adjusted: the closes from k + 1 bars
    before to k bars after a bar (one window pass), and the 2k + 1 log returns they give. -#}

{% macro hampel_close_names(k) -%}
    {%- set names = [] -%}
    {%- for i in range(k + 1, 0, -1) -%}{%- do names.append('close_back_' ~ i) -%}{%- endfor -%}
    {%- do names.append('close_adj') -%}
    {%- for i in range(1, k + 1) -%}{%- do names.append('close_ahead_' ~ i) -%}{%- endfor -%}
    {{ return(names) }}
{%- endmacro %}


{% macro hampel_closes_around(k, window_name) -%}
    {%- for i in range(k + 1, 0, -1) -%}
        lag(close_adj, {{ i }}) over {{ window_name }} as close_back_{{ i }}{{ ",\n        " if not loop.last or k > 0 }}
    {%- endfor -%}
    {%- for i in range(1, k + 1) -%}
        lead(close_adj, {{ i }}) over {{ window_name }} as close_ahead_{{ i }}{{ ",\n        " if not loop.last }}
    {%- endfor -%}
{%- endmacro %}


{% macro hampel_returns_around(k) -%}
    {%- set closes = hampel_close_names(k) -%}
    {%- for j in range(1, closes | length) -%}
        ln({{ closes[j] }} / {{ closes[j - 1] }}) as return_{{ j }}{{ ",\n        " if not loop.last }}
    {%- endfor -%}
{%- endmacro %}


{#- [expr(return_1), ..., expr(return_2k+1)] with `template` using {r} for each return -#}
{% macro hampel_returns_list(k, template='{r}') -%}
    [
    {%- for j in range(1, 2 * k + 2) -%}
        {{ template | replace('{r}', 'return_' ~ j) }}{{ ", " if not loop.last }}
    {%- endfor -%}
    ]
{%- endmacro %}
