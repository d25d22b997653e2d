{{
    config(
        materialized='incremental',
        incremental_strategy='replace_range',
        unique_key=['source', 'symbol', 'timeframe'],
        range_column='ts',
        on_schema_change='fail',
        change_log=true,
        pre_hook=["{{ open_change_log(this) }}"],
    )
}}
-- depends_on: {{ ref('stg_lake__bars') }}
{#- Each side's OHLC of the lake bars whose source quotes bid and ask (Dukascopy, OANDA),
    one row per (source, symbol, timeframe, ts): quotes are a venue's own, so every source
    keeps its rows (no precedence). The bars' own OHLC (bars_adjusted) is the mid. Empty
    when no lake file has the columns. Incremental: each series from its first new row. -#}
{#- the rows to (re)compute: all, or in an incremental run each series from its first new row -#}
{%- set new_rows = 'true' -%}
{%- if is_incremental() -%}
{%- set series = [] -%}
{%- for s in incremental_plan(this, by_source=true)['series'] -%}
{%- do series.append(
    "(source = '" ~ s.source ~ "' and symbol = '" ~ (s.symbol | replace("'", "''"))
    ~ "' and timeframe = '" ~ s.timeframe ~ "' and ts >= '" ~ s.min_ts ~ "'::timestamptz)"
) -%}
{%- endfor -%}
{%- set new_rows = '(' ~ (series + ['false']) | join(' or ') ~ ')' -%}
{%- endif %}

with

quoted_bars as (

    select
        source,
        symbol,
        timeframe,
        ts,
        bid_open,
        bid_high,
        bid_low,
        bid_close,
        ask_open,
        ask_high,
        ask_low,
        ask_close,
        is_final,
        ingested_at
    from {{ ref('stg_lake__bars') }}
    where
        (bid_open is not null or ask_open is not null)
        and {{ new_rows }}

),

final as (

    select
        symbol,
        source,
        timeframe,
        ts,
        bid_open,
        bid_high,
        bid_low,
        bid_close,
        ask_open,
        ask_high,
        ask_low,
        ask_close,
        ask_close - bid_close as spread_close,
        is_final,
        ingested_at
    from quoted_bars

)

select * from final
