{#- Reading the raw lake.

    `lake_source(source_name, table_name)` renders the source's read_parquet() call, or,
    when no file of that dataset exists yet (no ticks ingested, no manifest mirror), an
    empty relation with the dataset's columns, so a missing dataset never fails a build.

    `lake_optional_column(present, name, type)` renders a column that older files (or
    every file) may lack: the column when some file has it (`present` is
    lake_file_columns(source_name, table_name), read once per model), else a typed null,
    so a lake written before the column existed still builds. -#}

{% macro lake_columns(table_name) -%}
    {%- set columns = {
        'bars': [
            ('source', 'varchar'), ('timeframe', 'varchar'), ('symbol', 'varchar'),
            ('period', 'varchar'), ('ts', 'timestamptz'), ('open', 'double'),
            ('high', 'double'), ('low', 'double'), ('close', 'double'),
            ('volume', 'double'), ('is_final', 'boolean'), ('ingested_at', 'timestamptz'),
            ('bid_open', 'double'), ('bid_high', 'double'), ('bid_low', 'double'),
            ('bid_close', 'double'), ('ask_open', 'double'), ('ask_high', 'double'),
            ('ask_low', 'double'), ('ask_close', 'double'),
        ],
        'ticks': [
            ('source', 'varchar'), ('symbol', 'varchar'), ('period', 'varchar'),
            ('ts', 'timestamptz'), ('seq', 'bigint'), ('price', 'double'),
            ('size', 'double'), ('side', 'varchar'), ('venue', 'varchar'),
            ('ingested_at', 'timestamptz'), ('bid', 'double'), ('ask', 'double'),
            ('bid_size', 'double'), ('ask_size', 'double'),
        ],
        'funding_rates': [
            ('source', 'varchar'), ('symbol', 'varchar'), ('ts', 'timestamptz'),
            ('rate', 'double'), ('interval_hours', 'double'), ('ingested_at', 'timestamptz'),
        ],
        'corporate_actions': [
            ('source', 'varchar'), ('symbol', 'varchar'), ('ex_date', 'date'),
            ('action_type', 'varchar'), ('split_ratio', 'double'),
            ('cash_amount', 'double'), ('currency', 'varchar'),
            ('ingested_at', 'timestamptz'),
        ],
        'symbols': [
            ('source', 'varchar'), ('symbol', 'varchar'), ('name', 'varchar'),
            ('asset_class', 'varchar'), ('exchange', 'varchar'), ('currency', 'varchar'),
            ('timezone', 'varchar'), ('calendar', 'varchar'), ('ingested_at', 'timestamptz'),
        ],
        'rejects': [
            ('dataset', 'varchar'), ('source', 'varchar'), ('symbol', 'varchar'),
            ('timeframe', 'varchar'), ('key', 'varchar'), ('reason', 'varchar'),
            ('row', 'varchar'), ('rejected_at', 'timestamptz'),
        ],
        'calendars': [
            ('calendar', 'varchar'), ('session_date', 'date'), ('open_at', 'timestamptz'),
            ('close_at', 'timestamptz'), ('is_half_day', 'boolean'),
            ('day_start_at', 'timestamptz'), ('day_end_at', 'timestamptz'),
        ],
        'coverage': [
            ('source', 'varchar'), ('symbol', 'varchar'), ('timeframe', 'varchar'),
            ('start_ts', 'timestamptz'), ('end_ts', 'timestamptz'), ('status', 'varchar'),
            ('updated_at', 'timestamptz'),
        ],
        'data_files': [
            ('file_id', 'bigint'), ('dataset', 'varchar'), ('path', 'varchar'),
            ('source', 'varchar'), ('symbol', 'varchar'), ('timeframe', 'varchar'),
            ('period', 'varchar'), ('rows', 'bigint'), ('min_ts', 'timestamptz'),
            ('max_ts', 'timestamptz'), ('bytes', 'bigint'), ('sha256', 'varchar'),
            ('committed_at', 'timestamptz'),
        ],
        'fetch_runs': [
            ('run_id', 'bigint'), ('source', 'varchar'), ('symbol', 'varchar'),
            ('timeframe', 'varchar'), ('start_ts', 'timestamptz'), ('end_ts', 'timestamptz'),
            ('status', 'varchar'), ('rows', 'bigint'), ('api_calls', 'bigint'),
            ('duration_s', 'double'), ('error', 'varchar'), ('started_at', 'timestamptz'),
        ],
    } -%}
    {{ return(columns[table_name]) }}
{%- endmacro %}


{% macro lake_has_files(relation) -%}
    {{ return(adapter.dispatch('lake_has_files', 'duckmarket')(relation)) }}
{%- endmacro %}


{#- Spark refuses a path that does not exist and its SQL cannot ask, so a dataset's files
    are looked up in the manifest's Parquet mirror of its live files; the exchange
    sessions, which the build writes outside the manifest, are taken to exist
    (`duckmarket build` writes them: warehouse/calendars.py) -#}
{% macro spark__lake_has_files(relation) -%}
    {%- if not execute or relation.identifier == 'calendars' -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set found = run_query(
        "select count(*) from parquet.`" ~ lake_root() ~ "/_manifest/data_files.parquet`"
        ~ " where dataset = '" ~ relation.identifier ~ "'"
    ) -%}
    {{ return(found.columns[0].values()[0] > 0) }}
{%- endmacro %}


{% macro duckdb__lake_has_files(relation) -%}
    {#- the glob inside read_parquet('<glob>', ...) of an external source -#}
    {%- if not execute -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set pattern = (relation | string).split("'")[1] -%}
    {%- set found = run_query("select count(*) from glob('" ~ pattern ~ "')") -%}
    {{ return(found.columns[0].values()[0] > 0) }}
{%- endmacro %}


{% macro lake_source(source_name, table_name) -%}
    {{ return(adapter.dispatch('lake_source', 'duckmarket')(source_name, table_name)) }}
{%- endmacro %}


{#- Spark reads a dataset's directory with partition discovery (source=, symbol=, ...
    become string columns: the profile turns type inference off), and a manifest table's
    Parquet mirror (lake/_manifest/<table>.parquet); a dataset with no file yet (a lake
    without refused rows) reads as empty, as on DuckDB (spark__lake_has_files). The
    source() call records the lineage. -#}
{% macro spark__lake_source(source_name, table_name) -%}
    {%- set relation = source(source_name, table_name) -%}
    {%- if source_name == 'manifest' -%}
        parquet.`{{ lake_root() }}/_manifest/{{ table_name }}.parquet`
    {%- elif lake_has_files(relation) -%}
        parquet.`{{ lake_root() }}/{{ table_name }}`
    {%- else -%}
        {{ empty_lake_relation(table_name) }}
    {%- endif -%}
{%- endmacro %}


{#- no rows, with the dataset's columns -#}
{% macro empty_lake_relation(table_name) -%}
    (
        select
            {%- for name, type in lake_columns(table_name) %}
                null::{{ type_name(type) }} as {{ adapter.quote(name) }}{{ "," if not loop.last }}
            {%- endfor %}
        where false
    )
{%- endmacro %}


{% macro duckdb__lake_source(source_name, table_name) -%}
    {%- set relation = source(source_name, table_name) -%}
    {%- if lake_has_files(relation) -%}
        {{ relation }}
    {%- else -%}
        {{ empty_lake_relation(table_name) }}
    {%- endif -%}
{%- endmacro %}


{% macro lake_file_columns(source_name, table_name) -%}
    {{ return(adapter.dispatch('lake_file_columns', 'duckmarket')(source_name, table_name)) }}
{%- endmacro %}


{% macro spark__lake_file_columns(source_name, table_name) -%}
    {%- if not execute -%}
        {{ return(lake_columns(table_name) | map(attribute=0) | list) }}
    {%- endif -%}
    {%- set found = run_query("select * from " ~ spark__lake_source(source_name, table_name) ~ " limit 0") -%}
    {{ return(found.column_names | map('lower') | list) }}
{%- endmacro %}


{% macro duckdb__lake_file_columns(source_name, table_name) -%}
    {#- names of the columns the dataset's files hold (all of lake_columns when none) -#}
    {%- set relation = source(source_name, table_name) -%}
    {%- if not execute or not lake_has_files(relation) -%}
        {{ return(lake_columns(table_name) | map(attribute=0) | list) }}
    {%- endif -%}
    {%- set described = run_query("describe select * from " ~ relation) -%}
    {{ return(described.columns[0].values() | map('lower') | list) }}
{%- endmacro %}


{% macro lake_optional_column(present, name, type) -%}
    {%- if name in present -%}
        {{ name }}::{{ type_name(type) }}
    {%- else -%}
        null::{{ type_name(type) }}
    {%- endif -%}
{%- endmacro %}


{% macro source_rank(source_column) -%}
    {{ return(adapter.dispatch('source_rank', 'duckmarket')(source_column)) }}
{%- endmacro %}


{% macro spark__source_rank(source_column) -%}
    coalesce(
        nullif(array_position(
            array({% for name in var('source_precedence') %}'{{ name }}'{{ ', ' if not loop.last }}{% endfor %}),
            {{ source_column }}
        ), 0),
        1000
    )
{%- endmacro %}


{% macro duckdb__source_rank(source_column) -%}
    {#- 1-based position in var('source_precedence'); unlisted sources rank after -#}
    coalesce(
        list_position({{ var('source_precedence') | tojson | replace('"', "'") }}::varchar[], {{ source_column }}),
        1000
    )
{%- endmacro %}


{% macro timeframe_interval(timeframe_column) -%}
    case {{ timeframe_column }}
        when '1m' then interval 1 minute
        when '2m' then interval 2 minute
        when '5m' then interval 5 minute
        when '15m' then interval 15 minute
        when '30m' then interval 30 minute
        when '1h' then interval 1 hour
        when '90m' then interval 90 minute
        when '4h' then interval 4 hour
        when '1d' then interval 1 day
        when '1w' then interval 7 day
    end
{%- endmacro %}


{#- a timeframe column's bar length in microseconds (integer arithmetic, no ICU) -#}
{% macro timeframe_microseconds(timeframe_column) -%}
    case {{ timeframe_column }}
        when '1m' then 60000000
        when '2m' then 120000000
        when '5m' then 300000000
        when '15m' then 900000000
        when '30m' then 1800000000
        when '1h' then 3600000000
        when '90m' then 5400000000
        when '4h' then 14400000000
        when '1d' then 86400000000
        when '1w' then 604800000000
    end
{%- endmacro %}


{% macro timeframe_minutes(timeframe) -%}
    {%- set minutes = {'1m': 1, '2m': 2, '5m': 5, '15m': 15, '30m': 30, '1h': 60,
                       '90m': 90, '4h': 240, '1d': 1440, '1w': 10080} -%}
    {{ return(minutes[timeframe]) }}
{%- endmacro %}


{% macro lake_root() -%}
    {{ return(var('lake_root', env_var('DUCKMARKET_DATA', 'data') ~ '/lake')) }}
{%- endmacro %}


{#- Fast UTC calendar arithmetic on TIMESTAMPTZ. A cast such as ts::date goes through
    ICU time zone conversion (about 10x slower than integer arithmetic on epoch_us); with
    the session TimeZone at UTC these give the same results. -#}
{% macro utc_date(ts) -%}
    {{ return(adapter.dispatch('utc_date', 'duckmarket')(ts)) }}
{%- endmacro %}


{#- Spark's TIMESTAMP is an instant: with the session time zone at UTC its date is the
    UTC date -#}
{% macro spark__utc_date(ts) -%}
    to_date({{ ts }})
{%- endmacro %}


{% macro duckdb__utc_date(ts) -%}
    (date '1970-01-01' + floor(epoch_us({{ ts }}) / 86400000000)::integer)
{%- endmacro %}


{#- days since 1970-01-01 of a timestamp's UTC date, in integer arithmetic (a floor
    division: DuckDB's // truncates toward zero) -#}
{% macro utc_day_number(ts) -%}
    {{ return(adapter.dispatch('utc_day_number', 'duckmarket')(ts)) }}
{%- endmacro %}


{% macro duckdb__utc_day_number(ts) -%}
    ((epoch_us({{ ts }}) - ((epoch_us({{ ts }}) % 86400000000) + 86400000000) % 86400000000) // 86400000000)
{%- endmacro %}


{#- the session time zone is UTC (profiles.yml), so to_date gives the UTC date -#}
{% macro spark__utc_day_number(ts) -%}
    cast(unix_date(to_date({{ ts }})) as bigint)
{%- endmacro %}


{#- 00:00 UTC of a DATE -#}
{% macro date_to_utc(day) -%}
    {{ timestamp_from_microseconds(days_since_epoch(day) ~ ' * 86400000000') }}
{%- endmacro %}
