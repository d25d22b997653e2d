{#- Incremental planning for the large bar marts.

    The lake stamps every row with ingested_at (a rewritten partition keeps the stamps of
    rows it already had), so the rows a build has not seen yet are those newer than the
    newest ingested_at in the target. For each series (symbol, timeframe[, source]) this
    returns the earliest ts among those rows; the model then recomputes from there (minus
    whatever look-back its windows need) to the end of the series.

    Backward adjustment restates all of a symbol's history when an action changes, so a
    symbol whose adjustment version (a hash of its factor segments) differs from the one
    recorded after the last build is rebuilt entirely ("stale").

    Everything is resolved at compile time into literals, so DuckDB prunes Parquet row
    groups and table row groups by their min/max statistics. -#}

{% macro versions_relation(model_relation) -%}
    {{ model_relation.database }}.{{ model_relation.schema }}.{{ model_relation.identifier }}__versions
{%- endmacro %}


{#- The change log of a published incremental mart, <model>__changes: one row per series
    (symbol, timeframe) a build rewrote, from which ts on, numbered by build (seq); a row
    with no symbol means the whole mart was rebuilt. Row 0 holds the log's identity, a
    UUID drawn when the table is created. Publication (warehouse/marts.py) fingerprints
    only the partitions the log names since the published set's mark, and links the rest.
    A logged change that then rolls back only costs a fingerprint; a change that is not
    logged would publish a stale partition, so every write path logs: a full build in the
    pre-hook, an incremental one in the strategy, inside the model's transaction. -#}
{% macro changes_relation(model_relation) -%}
    {{ model_relation.database }}.{{ model_relation.schema }}.{{ model_relation.identifier }}__changes
{%- endmacro %}


{% macro open_change_log(model_relation) -%}
    {%- if target.type != 'duckdb' -%}{{ return('') }}{%- endif -%}
    {%- set log = changes_relation(model_relation) -%}
    create table if not exists {{ log }} (
        log_id varchar,
        seq bigint,
        symbol varchar,
        timeframe varchar,
        from_ts timestamptz,
        recorded_at timestamptz
    );
    insert into {{ log }}
    select uuid()::varchar, 0, null, null, null, now()
    where not exists (select 1 from {{ log }});
    {%- if not (execute and is_incremental()) %}
    insert into {{ log }}
    select any_value(log_id) filter (where seq = 0), max(seq) + 1, null, null, null, now()
    from {{ log }};
    {%- endif %}
{%- endmacro %}


{% macro record_adjustment_versions(model_relation) -%}
    {%- if target.type != 'duckdb' -%}{{ return('') }}{%- endif -%}
    create or replace table {{ versions_relation(model_relation) }} as
    select symbol, adjustment_version
    from {{ ref('int_adjustment_factors_computed') }}
    where segment_number = 1
{%- endmacro %}


{% macro incremental_plan(model_relation, by_source=false, timeframes=none) -%}
    {#- returns {'series': [{source?, symbol, timeframe, min_ts}], 'stale': [symbol]} -#}
    {%- set plan = {'series': [], 'stale': []} -%}
    {%- if not execute -%}
        {{ return(plan) }}
    {%- endif -%}
    {%- set keys = 'source, symbol, timeframe' if by_source else 'symbol, timeframe' -%}
    {%- set watermark = run_query(
        "select coalesce(max(ingested_at)::varchar, '-infinity') from " ~ model_relation
    ).columns[0].values()[0] -%}
    {%- set series_sql -%}
        select {{ keys }}, min(ts)::varchar as min_ts
        from {{ ref('stg_lake__bars') }}
        where ingested_at > '{{ watermark }}'::timestamptz
        {%- if timeframes %}
            and timeframe in ({{ "'" ~ timeframes | join("', '") ~ "'" }})
        {%- endif %}
        group by all
        order by all
    {%- endset -%}
    {%- for row in run_query(series_sql).rows -%}
        {%- set item = {'symbol': row['symbol'], 'timeframe': row['timeframe'], 'min_ts': row['min_ts']} -%}
        {%- if by_source -%}{%- do item.update({'source': row['source']}) -%}{%- endif -%}
        {%- do plan['series'].append(item) -%}
    {%- endfor -%}
    {%- set versions = versions_relation(model_relation) -%}
    {%- set has_versions = run_query(
        "select count(*) from information_schema.tables where table_schema = '"
        ~ model_relation.schema ~ "' and table_name = '" ~ model_relation.identifier ~ "__versions'"
    ).columns[0].values()[0] > 0 -%}
    {%- if has_versions -%}
        {%- set stale_sql -%}
            select coalesce(current_versions.symbol, applied_versions.symbol) as symbol
            from (
                select symbol, adjustment_version
                from {{ ref('int_adjustment_factors_computed') }}
                where segment_number = 1
            ) as current_versions
            full outer join {{ versions }} as applied_versions
                on current_versions.symbol = applied_versions.symbol
            where current_versions.adjustment_version
                is distinct from applied_versions.adjustment_version
            order by 1
        {%- endset -%}
        {%- for row in run_query(stale_sql).rows -%}
            {%- do plan['stale'].append(row['symbol']) -%}
        {%- endfor -%}
    {%- else -%}
        {%- do plan.update({'stale': none}) -%}
    {%- endif -%}
    {{ return(plan) }}
{%- endmacro %}


{% macro sql_list(values) -%}
    {%- if values -%}
        {%- for v in values -%}'{{ v | replace("'", "''") }}'{{ ", " if not loop.last }}{%- endfor -%}
    {%- else -%}
        null
    {%- endif -%}
{%- endmacro %}


{#- For each dirty series, where to start rewriting and where to start reading so that
    windows reaching `write_back` rows back (and `read_back` rows for their inputs) give
    the same values as a full build. Looks back in the target itself. Returns a list of
    {symbol, timeframe, write_from, read_from} (timestamps as text, '-infinity' when the
    series has fewer rows before its first new row). -#}
{% macro lookback_bounds(model_relation, series, write_back, read_back) -%}
    {%- set bounds = [] -%}
    {%- if not execute or not series -%}
        {{ return(bounds) }}
    {%- endif -%}
    {%- set query -%}
        with dirty (symbol, timeframe, min_ts) as (
            values
            {%- for s in series %}
                ('{{ s.symbol | replace("'", "''") }}', '{{ s.timeframe }}', '{{ s.min_ts }}'::timestamptz){{ "," if not loop.last }}
            {%- endfor %}
        ),
        dirty_with_margin as (
            select
                *,
                min_ts - greatest(interval 14 day, {{ timeframe_interval('timeframe') }} * {{ 3 * read_back + 3 }}) as search_from
            from dirty
        ),
        earlier_rows as (
            select
                target.symbol,
                target.timeframe,
                target.ts,
                row_number() over (
                    partition by target.symbol, target.timeframe order by target.ts desc
                ) as rows_back
            from {{ model_relation }} as target
            inner join dirty_with_margin
                on
                    target.symbol = dirty_with_margin.symbol
                    and target.timeframe = dirty_with_margin.timeframe
                    and target.ts < dirty_with_margin.min_ts
                    and target.ts >= dirty_with_margin.search_from
            where target.ts >= (select min(search_from) from dirty_with_margin)
        ),
        counted as (
            select
                symbol,
                timeframe,
                count(*) filter (where rows_back <= {{ write_back }}) as write_rows,
                min(ts) filter (where rows_back <= {{ write_back }}) as write_ts,
                count(*) filter (where rows_back <= {{ read_back }}) as read_rows,
                min(ts) filter (where rows_back <= {{ read_back }}) as read_ts
            from earlier_rows
            group by all
        )
        select
            dirty.symbol,
            dirty.timeframe,
            case
                when {{ write_back }} = 0 then dirty.min_ts
                when counted.write_rows >= {{ write_back }} then counted.write_ts
                else '-infinity'::timestamptz
            end::varchar as write_from,
            case
                when {{ read_back }} = 0 then dirty.min_ts
                when counted.read_rows >= {{ read_back }} then counted.read_ts
                else '-infinity'::timestamptz
            end::varchar as read_from
        from dirty
        left join counted
            on dirty.symbol = counted.symbol and dirty.timeframe = counted.timeframe
        order by 1, 2
    {%- endset -%}
    {%- for row in run_query(query).rows -%}
        {%- do bounds.append({'symbol': row['symbol'], 'timeframe': row['timeframe'],
                              'write_from': row['write_from'], 'read_from': row['read_from']}) -%}
    {%- endfor -%}
    {{ return(bounds) }}
{%- endmacro %}


{#- SQL predicate: rows of the listed series from their bound on, or of stale symbols. -#}
{% macro series_predicate(bounds, bound_key, stale, ts_column='ts', prefix='', wrap='{}') -%}
    {%- if not bounds and not stale -%}
        false
    {%- else -%}
        (
        {%- for b in bounds %}
            ({{ prefix }}symbol = '{{ b.symbol | replace("'", "''") }}' and {{ prefix }}timeframe = '{{ b.timeframe }}' and {{ prefix }}{{ ts_column }} >= {{ wrap | replace('{}', "'" ~ b[bound_key] ~ "'::timestamptz") }}) or
        {%- endfor %}
            {{ prefix }}symbol in ({{ sql_list(stale) }})
        )
    {%- endif -%}
{%- endmacro %}


{#- The earliest bound, as a constant filter DuckDB can prune row groups with. -#}
{% macro earliest_bound(bounds, bound_key) -%}
    {%- set values = bounds | map(attribute=bound_key) | list -%}
    {%- if '-infinity' in values or not values -%}
        '-infinity'::timestamptz
    {%- else -%}
        '{{ values | min }}'::timestamptz
    {%- endif -%}
{%- endmacro %}


{#- Custom incremental strategy `replace_range`: the new rows of a model cover, for each
    series (the columns in unique_key), everything from their first row to the end of the
    series. Delete the target's rows of those series from that point on, then insert. -#}
{% macro get_incremental_replace_range_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set temp = arg_dict['temp_relation'] -%}
    {%- set keys = arg_dict['unique_key'] -%}
    {%- set keys = [keys] if keys is string else keys -%}
    {%- set range_column = config.get('range_column', 'ts') -%}
    {%- set columns = arg_dict['dest_columns'] | map(attribute='quoted') | join(', ') -%}
    {%- if config.get('change_log') %}
    insert into {{ changes_relation(target) }}
    select
        (select any_value(log_id) from {{ changes_relation(target) }} where seq = 0),
        (select max(seq) + 1 from {{ changes_relation(target) }}),
        symbol,
        timeframe,
        min({{ range_column }}),
        now()
    from {{ temp }}
    group by all;
    {%- endif %}
    delete from {{ target }} as target_rows
    using (
        select {{ keys | join(', ') }}, min({{ range_column }}) as range_start
        from {{ temp }}
        group by all
    ) as replaced_ranges
    where
        {%- for key in keys %}
        target_rows.{{ key }} = replaced_ranges.{{ key }} and
        {%- endfor %}
        target_rows.{{ range_column }} >= replaced_ranges.range_start;

    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ temp }}
{%- endmacro %}


{#- The read and write ranges of an incremental bar mart, as SQL:
      plan.scan(relation)  a select over `relation` of the rows to recompute from;
      plan.keep            the predicate on output rows to (re)write.
    `lookback_rows` is how many earlier bars a row's windows reach (0: none), and
    `week_aligned` recomputes each series from the Monday before its first new bar
    (resampling): it reads from the day before that Monday, since a trading week may open
    on it (FX: Sunday 17:00 New York), and keeps the output rows whose session_date is
    on or after the Monday. Outside an incremental run both are "everything". -#}
{% macro bar_mart_plan(model_relation, lookback_rows=0, week_aligned=false, timeframes=none) -%}
    {%- set out = {'read': none, 'keep': 'true', 'stale': none, 'since': "'-infinity'"} -%}
    {%- if not (execute and is_incremental()) -%}
        {{ return(out) }}
    {%- endif -%}
    {%- set plan = incremental_plan(model_relation, timeframes=timeframes) -%}
    {%- set stale = plan['stale'] -%}
    {%- if stale is none -%}
        {{ return(out) }}
    {%- endif -%}
    {%- set series = [] -%}
    {%- for s in plan['series'] if s.symbol not in stale -%}
        {%- do series.append(s) -%}
    {%- endfor -%}
    {%- if week_aligned -%}
        {%- set bounds = [] -%}
        {%- for s in series -%}
            {%- do bounds.append({'symbol': s.symbol, 'timeframe': s.timeframe,
                                  'read_from': s.min_ts, 'write_from': s.min_ts}) -%}
        {%- endfor -%}
        {%- set wrap = "(date_trunc('week', {}) - interval 1 day)" -%}
    {%- else -%}
        {%- set bounds = lookback_bounds(model_relation, series, lookback_rows, 2 * lookback_rows + 1 if lookback_rows else 0) -%}
        {%- set wrap = "{}" -%}
    {%- endif -%}
    {%- set read_filter = series_predicate(bounds, 'read_from', [], wrap=wrap) -%}
    {%- if week_aligned -%}
        {#- resampling recomputes whole weeks: all it outputs from the Monday on is new -#}
        {%- set keep_filter -%}
            (
            {%- for b in bounds %}
                (symbol = '{{ b.symbol | replace("'", "''") }}' and session_date >= date_trunc('week', '{{ b.write_from }}'::timestamptz)::date) or
            {%- endfor %}
                symbol in ({{ sql_list(stale) }})
            )
        {%- endset -%}
    {%- else -%}
        {%- set keep_filter = series_predicate(bounds, 'write_from', stale) -%}
    {%- endif -%}
    {%- set since = wrap | replace('{}', earliest_bound(bounds, 'read_from')) -%}
    {%- do out.update({
        'read': '(ts >= ' ~ since ~ ' and ' ~ read_filter ~ ')',
        'keep': keep_filter,
        'stale': stale,
    }) -%}
    {{ return(out) }}
{%- endmacro %}


{#- select * from `relation`, limited to what `plan` says must be recomputed -#}
{% macro bar_mart_scan(relation, plan, where='true') -%}
    {%- if plan['read'] is none -%}
        select * from {{ relation }} where {{ where }}
    {%- else -%}
        select * from {{ relation }} where {{ where }} and {{ plan['read'] }}
        union all
        select * from {{ relation }} where {{ where }} and symbol in ({{ sql_list(plan['stale']) }})
    {%- endif -%}
{%- endmacro %}


{#- Data tests on the large incremental bar marts check what the last build wrote, not the
    whole mart. A pre-hook (before the model's rows change) creates the DuckDB macro
    <schema>.<model>_in_test_scope(ingested_at, symbol): after a full build it is true;
    after an incremental one it keeps rows with ingested_at newer than the target's
    watermark before the build (a constant: DuckDB skips the older row groups by their
    min/max) plus every row of symbols rebuilt because their adjustment changed. This is
    sound for the tests on these marts: replace_range deletes each series from its first
    new row before inserting, so a duplicate key can only arise among inserted rows, and
    rows rewritten around new ones (look-back windows, earlier buckets of the week) keep
    the values the previous build tested (OHLC, factors, keys), except for the rebuilt
    symbols, tested in full. The tests' `where` config calls this macro. -#}
{% macro record_test_scope(model_relation) -%}
    {%- if target.type != 'duckdb' -%}{{ return('') }}{%- endif -%}
    {%- set scope = 'true' -%}
    {%- if execute and is_incremental() -%}
        {%- set plan = incremental_plan(model_relation) -%}
        {%- if plan['stale'] is not none -%}
            {%- set watermark = run_query(
                "select coalesce(max(ingested_at)::varchar, '-infinity') from " ~ model_relation
            ).columns[0].values()[0] -%}
            {%- set scope = "ingested_at > '" ~ watermark ~ "'::timestamptz" -%}
            {%- if plan['stale'] -%}
                {%- set scope = scope ~ " or symbol in (" ~ sql_list(plan['stale']) ~ ")" -%}
            {%- endif -%}
        {%- endif -%}
    {%- endif -%}
    create or replace macro {{ model_relation.schema }}.{{ model_relation.identifier }}_in_test_scope(ingested_at, symbol) as
    ({{ scope }})
{%- endmacro %}
