{#- Series (timeframe|symbol) that more than one source delivers, from the lake's file
    names alone (no data is read). Only these need the cross-source window. -#}
{% macro multi_source_series() -%}
    {{ return(adapter.dispatch('multi_source_series', 'duckmarket')()) }}
{%- endmacro %}


{% macro spark__multi_source_series() -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set query -%}
        select timeframe || '|' || symbol as series
        from (select distinct source, timeframe, symbol from {{ spark__lake_source('lake', 'bars') }})
        group by timeframe, symbol
        having count(distinct source) > 1
        order by 1
    {%- endset -%}
    {{ return(run_query(query).columns[0].values() | list) }}
{%- endmacro %}


{% macro duckdb__multi_source_series() -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set query -%}
        with files as (
            select
                regexp_extract(file, '/source=([^/]+)/', 1) as source,
                regexp_extract(file, '/timeframe=([^/]+)/', 1) as timeframe,
                url_decode(regexp_extract(file, '/symbol=([^/]+)/', 1)) as symbol
            from glob('{{ lake_root() }}/bars/*/*/*/*/data.parquet')
        )
        select timeframe || '|' || symbol as series
        from files
        group by timeframe, symbol
        having count(distinct source) > 1
        order by 1
    {%- endset -%}
    {{ return(run_query(query).columns[0].values() | list) }}
{%- endmacro %}


{#- Symbols with intraday bars but no daily bars in any source (file names only). -#}
{% macro symbols_without_daily_bars() -%}
    {{ return(adapter.dispatch('symbols_without_daily_bars', 'duckmarket')()) }}
{%- endmacro %}


{% macro spark__symbols_without_daily_bars() -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set query -%}
        select symbol
        from (select distinct timeframe, symbol from {{ spark__lake_source('lake', 'bars') }})
        group by symbol
        having count_if(timeframe = '1d') = 0
        order by 1
    {%- endset -%}
    {{ return(run_query(query).columns[0].values() | list) }}
{%- endmacro %}


{% macro duckdb__symbols_without_daily_bars() -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set query -%}
        with files as (
            select
                regexp_extract(file, '/timeframe=([^/]+)/', 1) as timeframe,
                url_decode(regexp_extract(file, '/symbol=([^/]+)/', 1)) as symbol
            from glob('{{ lake_root() }}/bars/*/*/*/*/data.parquet')
        )
        select symbol
        from files
        group by symbol
        having count(*) filter (where timeframe = '1d') = 0
        order by 1
    {%- endset -%}
    {{ return(run_query(query).columns[0].values() | list) }}
{%- endmacro %}
