{#- Generic tests for pair universes: `pair_id` is `<symbol_a>_<symbol_b>` with
    symbol_a < symbol_b (one spelling per pair, so a pair is never listed twice). -#}
{% test pair_id_is_canonical(model, column_name, symbol_a='symbol_a', symbol_b='symbol_b') %}

select *
from {{ model }}
where
    {{ column_name }} is distinct from {{ symbol_a }} || '_' || {{ symbol_b }}
    or not ({{ symbol_a }} < {{ symbol_b }})

{% endtest %}


{#- Walk-forward windows: training ends before validation starts, both non-empty. -#}
{% test walk_forward_is_ordered(model) %}

select *
from {{ model }}
where not (
    train_start_ts <= train_end_ts
    and train_end_ts < validation_start_ts
    and validation_start_ts <= validation_end_ts
)

{% endtest %}
