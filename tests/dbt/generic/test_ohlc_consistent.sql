{#- OHLC invariants: high >= max(open, close), low <= min(open, close), positive
    prices, non-negative volume. -#}
{% test ohlc_consistent(model, suffix='', volume_column='volume') %}

select *
from {{ model }}
where
    high{{ suffix }} < greatest(open{{ suffix }}, close{{ suffix }})
    or low{{ suffix }} > least(open{{ suffix }}, close{{ suffix }})
    or least(open{{ suffix }}, high{{ suffix }}, low{{ suffix }}, close{{ suffix }}) <= 0
    or {{ volume_column }} < 0

{% endtest %}
