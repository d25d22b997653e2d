{#- Keys are unique and increasing: within each partition, `column_name` strictly
    increases in storage order is not a SQL notion, so this checks that no two rows share
    a key (the previous value by key order is always smaller). -#}
{% test strictly_increasing(model, column_name, partition_by) %}

with

ordered as (

    select
        {{ column_name }} as key_value,
        lag({{ column_name }}) over (
            partition by {{ partition_by | join(', ') }} order by {{ column_name }}
        ) as previous_key_value
    from {{ model }}

)

select *
from ordered
where previous_key_value >= key_value

{% endtest %}
