{#- Every backtest run beside its metrics and what sets its configuration apart: the runs
    recorded from any engine (record_backtest -> stg_backtests__runs, backtest_metrics)
    and the reference pairs runs of the last build (pairs_backtest_runs,
    pairs_backtest_metrics). Configurations are compared within a strategy, leaf by leaf
    (nested keys as JSON paths, e.g. `$.costs.bps`, array items as `$.legs[0]`): a run's
    config_differences holds its values that differ from the most common value of that
    key among the strategy's runs (a key a run lacks counts as null; ties go to the
    smallest value), config_most_common those most common values. Compile it with
    `dbt compile --select compare_backtest_runs` and run
    target/compiled/duckmarket/analyses/compare_backtest_runs.sql in
    `duckdb -readonly data/warehouse.duckdb`. -#}
with

recorded_runs as (

    select
        run_id,
        strategy,
        engine,
        universe,
        start_ts,
        end_ts,
        created_at,
        config
    from {{ ref('stg_backtests__runs') }}

),

recorded_metrics as (

    select * exclude (strategy, engine, created_at)
    from {{ ref('backtest_metrics') }}

),

reference_runs as (

    select
        run_id,
        strategy,
        engine,
        pair_id as universe,
        start_ts,
        ts as end_ts,
        created_at,
        config::json as config
    from {{ ref('pairs_backtest_runs') }}

),

reference_metrics as (

    select * exclude (strategy, engine, created_at)
    from {{ ref('pairs_backtest_metrics') }}

),

runs as (

    select
        'recorded' as origin,
        recorded_runs.*,
        recorded_metrics.* exclude (recorded_metrics.run_id)
    from recorded_runs
    left join recorded_metrics on recorded_runs.run_id = recorded_metrics.run_id

    union all by name

    select
        'reference' as origin,
        reference_runs.*,
        reference_metrics.* exclude (reference_metrics.run_id)
    from reference_runs
    left join reference_metrics on reference_runs.run_id = reference_metrics.run_id

),

config_leaves as (

    select
        runs.run_id,
        runs.strategy,
        leaves.fullkey as config_key,
        leaves.value::varchar as config_value
    from runs
    cross join json_tree(runs.config) as leaves
    where leaves.type not in ('OBJECT', 'ARRAY')

),

strategy_keys as (

    select distinct
        strategy,
        config_key
    from config_leaves

),

run_values as (

    select
        runs.run_id,
        runs.strategy,
        strategy_keys.config_key,
        config_leaves.config_value
    from runs
    inner join strategy_keys on runs.strategy = strategy_keys.strategy
    left join config_leaves
        on
            runs.run_id = config_leaves.run_id
            and strategy_keys.config_key = config_leaves.config_key

),

most_common_values as (

    select
        strategy,
        config_key,
        config_value as most_common_value
    from run_values
    group by strategy, config_key, config_value
    qualify row_number() over (
            partition by strategy, config_key
            order by count(*) desc, config_value asc nulls first
        ) = 1

),

differences as (

    select
        run_values.run_id,
        count(*) as n_config_differences,
        json_group_object(run_values.config_key, run_values.config_value::json)
            as config_differences,
        json_group_object(run_values.config_key, most_common_values.most_common_value::json)
            as config_most_common
    from run_values
    inner join most_common_values
        on
            run_values.strategy = most_common_values.strategy
            and run_values.config_key = most_common_values.config_key
    where run_values.config_value is distinct from most_common_values.most_common_value
    group by run_values.run_id

),

runs_compared as (

    select
        runs.*,
        coalesce(differences.n_config_differences, 0) as n_config_differences,
        coalesce(differences.config_differences, '{}'::json) as config_differences,
        coalesce(differences.config_most_common, '{}'::json) as config_most_common
    from runs
    left join differences on runs.run_id = differences.run_id

)

select * from runs_compared
order by strategy asc, sharpe desc nulls last, run_id asc
