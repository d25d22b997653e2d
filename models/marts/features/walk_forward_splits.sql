{#- Walk-forward train/validation windows over the bars of var('walk_forward_timeframe').

    Validation windows of var('walk_forward_validation_months') calendar months start
    var('walk_forward_train_months') after the first bar's month and every
    var('walk_forward_step_months') after that. Training ends var('walk_forward_embargo_bars')
    bars before validation starts (the embargo keeps labels that look forward out of
    training) and starts at the first bar (`expanding`) or var('walk_forward_train_months')
    before validation (`rolling`). Bounds are inclusive timestamps: join any feature set on
    `features.ts between train_start_ts and train_end_ts` (or the validation pair). -#}
{%- set mode = var('walk_forward_mode') -%}
{%- set train_months = var('walk_forward_train_months') | int -%}
{%- set validation_months = var('walk_forward_validation_months') | int -%}
{%- set step_months = var('walk_forward_step_months') | int -%}
{%- set embargo_bars = var('walk_forward_embargo_bars') | int -%}
with

calendar as (

    select distinct ts
    from {{ ref('bars_adjusted') }}
    where timeframe = '{{ var("walk_forward_timeframe") }}'

),

calendar_numbered as (

    select
        ts,
        row_number() over (order by ts) as bar_number
    from calendar

),

calendar_bounds as (

    select
        min(ts) as first_ts,
        max(ts) as last_ts
    from calendar

),

validation_windows as (

    select
        split_numbers.split_number,
        date_trunc('month', calendar_bounds.first_ts)
        + to_months(
            {{ train_months }} + split_numbers.split_number * {{ step_months }}
        ) as validation_from,
        date_trunc('month', calendar_bounds.first_ts)
        + to_months(
            {{ train_months + validation_months }}
            + split_numbers.split_number * {{ step_months }}
        ) as validation_to
    from calendar_bounds
    cross join
        unnest(
            generate_series(
                0, datediff('month', calendar_bounds.first_ts, calendar_bounds.last_ts)
            )
        ) as split_numbers (split_number)

),

validation_bars as (

    select
        validation_windows.split_number,
        validation_windows.validation_from,
        min(calendar_numbered.bar_number) as validation_first_bar,
        max(calendar_numbered.bar_number) as validation_last_bar
    from validation_windows
    inner join calendar_numbered
        on
            validation_windows.validation_from <= calendar_numbered.ts
            and validation_windows.validation_to > calendar_numbered.ts
    group by all

),

train_bars as (

    select
        validation_bars.*,
        validation_bars.validation_first_bar - {{ embargo_bars }} - 1 as train_last_bar,
        {% if mode == 'rolling' -%}
        (
            select min(calendar_numbered.bar_number)
            from calendar_numbered
            where
                calendar_numbered.ts
                >= validation_bars.validation_from - to_months({{ train_months }})
        )
        {%- else -%}
        1
        {%- endif %} as train_first_bar
    from validation_bars

),

splits as (

    select
        train_bars.split_number + 1 as split_id,
        '{{ mode }}' as split_mode,
        '{{ var("walk_forward_timeframe") }}' as timeframe,
        train_start.ts as train_start_ts,
        train_end.ts as train_end_ts,
        validation_start.ts as validation_start_ts,
        validation_end.ts as validation_end_ts,
        train_bars.train_last_bar - train_bars.train_first_bar + 1 as train_bars,
        {{ embargo_bars }} as embargo_bars,
        train_bars.validation_last_bar - train_bars.validation_first_bar + 1 as validation_bars
    from train_bars
    inner join calendar_numbered as train_start
        on train_bars.train_first_bar = train_start.bar_number
    inner join calendar_numbered as train_end
        on train_bars.train_last_bar = train_end.bar_number
    inner join calendar_numbered as validation_start
        on train_bars.validation_first_bar = validation_start.bar_number
    inner join calendar_numbered as validation_end
        on train_bars.validation_last_bar = validation_end.bar_number
    where train_bars.train_last_bar >= train_bars.train_first_bar

)

select * from splits
