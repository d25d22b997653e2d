{#- A derived float rounded to 37 significant bits (relative error at most 2^-37, about
    7e-12: a hundred-millionth of a basis point), by Veltkamp's split: x * (2^16 + 1) minus
    (that minus x) keeps x's top 37 bits, rounded to nearest. The low two bytes of the
    mantissa become zero, which the Parquet writer's byte-stream-split + zstd encoding then
    stores in almost nothing: an adjusted price costs about 4 bytes a bar instead of 6. This
    is the "bit rounding" netCDF-4 and zarr offer for derived data; raw prices, which are
    data rather than arithmetic, are never rounded. `column` is a column name (it appears
    several times); NaN, infinities and values beyond 1e300 pass unchanged. -#}
{% macro bit_round(column) -%}
    case
        when abs({{ column }}) < 1e300
            then {{ column }} * 65537.0 - ({{ column }} * 65537.0 - {{ column }})
        else {{ column }}
    end
{%- endmacro %}
