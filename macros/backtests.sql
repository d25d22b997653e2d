{#- Reading the backtest store (ingest/backtests.py).

    `backtest_source(table_name)` renders the read_parquet() call of a backtest dataset,
    or, when no run has been recorded yet, an empty relation with its columns (as
    lake_source does for the raw datasets). run_id is the hive partition, read as text. -#}

{% macro backtest_columns(table_name) -%}
    {%- set columns = {
        'backtest_runs': [
            ('run_id', 'varchar'), ('strategy', 'varchar'), ('universe', 'varchar'),
            ('start_ts', 'timestamptz'), ('end_ts', 'timestamptz'), ('config', 'varchar'),
            ('engine', 'varchar'), ('code_version', 'varchar'), ('lake_state', 'varchar'),
            ('lake_file_ids', 'varchar'), ('build_run_id', 'bigint'),
            ('periods_per_year', 'double'), ('results_sha256', 'varchar'),
            ('created_at', 'timestamptz'),
        ],
        'signals': [
            ('run_id', 'varchar'), ('signal_id', 'bigint'), ('ts', 'timestamptz'),
            ('direction', 'varchar'), ('legs', 'varchar'), ('hedge_ratio', 'double'),
            ('size', 'double'), ('inputs_as_of', 'timestamptz'),
        ],
        'fills': [
            ('run_id', 'varchar'), ('fill_id', 'bigint'), ('signal_id', 'bigint'),
            ('ts', 'timestamptz'), ('symbol', 'varchar'), ('side', 'varchar'),
            ('quantity', 'double'), ('price', 'double'), ('commission', 'double'),
            ('slippage_bps', 'double'),
        ],
        'trades': [
            ('run_id', 'varchar'), ('trade_id', 'bigint'), ('symbol', 'varchar'),
            ('direction', 'varchar'), ('entry_ts', 'timestamptz'), ('exit_ts', 'timestamptz'),
            ('entry_price', 'double'), ('exit_price', 'double'), ('quantity', 'double'),
            ('commission', 'double'), ('pnl', 'double'), ('trade_return', 'double'),
            ('bars_held', 'bigint'),
        ],
        'equity': [
            ('run_id', 'varchar'), ('ts', 'timestamptz'), ('equity', 'double'),
            ('cash', 'double'), ('positions_value', 'double'), ('gross_exposure', 'double'),
            ('net_exposure', 'double'), ('period_return', 'double'),
        ],
    } -%}
    {{ return(columns[table_name]) }}
{%- endmacro %}


{% macro backtest_source(table_name) -%}
    {%- set relation = source('backtests', table_name) -%}
    {%- if lake_has_files(relation) -%}
        {{ relation }}
    {%- else -%}
        (
            select
                {%- for name, type in backtest_columns(table_name) %}
                    null::{{ type }} as {{ adapter.quote(name) }}{{ "," if not loop.last }}
                {%- endfor %}
            where false
        )
    {%- endif -%}
{%- endmacro %}
