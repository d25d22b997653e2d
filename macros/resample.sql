{#- The one resampling macro: aggregates bars (or ticks shaped as one-trade bars) of
    `input` into `timeframe` buckets: first open, max high, min low, last close, summed
    volume and bar_count, for each price set in `suffixes` ('' = as traded, '_adj' = total
    return adjusted), plus any `carry` aggregates ("max(x) as x"). Resampling composes
    (1m -> 5m -> 1h equals 1m -> 1h) because every output is an associative aggregate of
    its input and keeps the session columns.

    `input` must have: symbol, source, ts, open, high, low, close, volume, bar_count,
    ingested_at, and when `sessions` is true: calendar, session_date, session_open_at,
    session_close_at. Intraday buckets are anchored at the session's open (09:30 New York
    gives 09:30, 10:30, ... hourly bars) or, without sessions, at midnight UTC; daily
    buckets are sessions (ts = session date 00:00 UTC); weekly buckets start on Monday.

    expected_bar_count counts base bars of `base_minutes` the bucket could hold inside its
    session (null for weekly: the caller knows the calendar's weeks). -#}
{% macro resample_bars(input, timeframe, sessions=true, order_by='ts', suffixes=[''], carry=[], base_minutes=1) -%}
    {%- set minutes = timeframe_minutes(timeframe) -%}
    {%- set width_us = minutes * 60 * 1000000 -%}
    {#- buckets are integers (epoch microseconds of the bucket start), computed with integer
        arithmetic (floor division written out: integer_divide truncates toward zero) -#}
    {%- set ts_us = epoch_microseconds('ts') -%}
    {%- if timeframe == '1d' -%}
        {%- set bucket_us = days_since_epoch('session_date') ~ " * 86400000000" -%}
    {%- elif timeframe == '1w' -%}
        {%- set bucket_us = days_since_epoch("date_trunc('week', session_date)::date") ~ " * 86400000000" -%}
    {%- elif sessions -%}
        {%- set anchor = "coalesce(" ~ epoch_microseconds('session_open_at') ~ ", "
            ~ integer_divide(ts_us, 86400000000) ~ " * 86400000000)" -%}
        {%- set offset = "(" ~ ts_us ~ " - " ~ anchor ~ ")" -%}
        {%- set bucket_us = "(" ~ anchor ~ " + " ~ offset ~ " - ((" ~ offset ~ " % " ~ width_us ~ ") + "
            ~ width_us ~ ") % " ~ width_us ~ ")" -%}
    {%- else -%}
        {%- set bucket_us = "(" ~ integer_divide(ts_us, width_us) ~ " * " ~ width_us ~ ")" -%}
    {%- endif -%}
    {%- set bucket = timestamp_from_microseconds(bucket_us) -%}
    select
        symbol,
        '{{ timeframe }}' as timeframe,
        {{ bucket }} as ts,
        {%- if sessions %}
            {%- if timeframe == '1w' %}
                {{ any_non_null('calendar') }} as calendar,
                min(session_date) as session_date,
                min(session_open_at) as session_open_at,
                max(session_close_at) as session_close_at,
            {%- else %}
                {{ any_non_null('calendar') }} as calendar,
                {{ any_non_null('session_date') }} as session_date,
                {{ any_non_null('session_open_at') }} as session_open_at,
                {{ any_non_null('session_close_at') }} as session_close_at,
            {%- endif %}
        {%- endif %}
        {{ any_non_null('source') }} as source,
        {%- for s in suffixes %}
            {{ first_by('open' ~ s, order_by) }} as open{{ s }},
            max(high{{ s }}) as high{{ s }},
            min(low{{ s }}) as low{{ s }},
            {{ last_by('close' ~ s, order_by) }} as close{{ s }},
            sum(volume{{ s }}) as volume{{ s }},
        {%- endfor %}
        {%- for c in carry %}
            {{ c }},
        {%- endfor %}
        sum(bar_count)::bigint as bar_count,
        max(ingested_at) as ingested_at,
        {%- if timeframe == '1w' or not sessions %}
            null::bigint as expected_bar_count
        {%- else %}
            {{ expected_bar_count(bucket, timeframe, base_minutes,
                any_non_null('session_open_at'), any_non_null('session_close_at')) }} as expected_bar_count
        {%- endif %}
    from {{ input }}
    group by
        symbol,
        {#- a bucket never spans two sessions: the session columns need no grouping -#}
        {{ bucket_us }}
{%- endmacro %}


{#- base bars a bucket starting at `bucket` can hold inside [open_at, close_at) -#}
{% macro expected_bar_count(bucket, timeframe, base_minutes, open_at, close_at) -%}
    {%- if timeframe == '1d' -%}
        {{ integer_divide(
            '(' ~ epoch_seconds(close_at) ~ ' - ' ~ epoch_seconds(open_at) ~ ')::bigint', base_minutes * 60
        ) }}
    {%- else -%}
        {{ integer_divide(
            'greatest(0, (least(' ~ epoch_seconds(bucket) ~ ' + ' ~ timeframe_minutes(timeframe) * 60 ~ ', '
            ~ epoch_seconds(close_at) ~ ') - greatest(' ~ epoch_seconds(bucket) ~ ', '
            ~ epoch_seconds(open_at) ~ '))::bigint)',
            base_minutes * 60
        ) }}
    {%- endif -%}
{%- endmacro %}
