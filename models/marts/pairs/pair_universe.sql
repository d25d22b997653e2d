{#- The pairs the pairs marts compute: the seeded universe, the universe file's pairs
    (var('universe_pairs'), set by duckmarket update), plus the screened candidates
    when var('pairs_include_candidates') is true; pairs of symbols the lake does not hold
    are left out (the seed's relationships tests report them). -#}
with

seeded_pairs as (

    select
        pair_id,
        symbol_a,
        symbol_b,
        'seed' as pair_origin
    from {{ ref('pairs') }}

),

screened_pairs as (

    select
        pair_id,
        symbol_a,
        symbol_b,
        'screen' as pair_origin
    from {{ ref('pair_candidates') }}
    where {{ 'true' if var('pairs_include_candidates') else 'false' }}

),

{# pairs of the universe file (duckmarket update passes them as var('universe_pairs')) #}
configured_pairs as (

    select
        configured.pair.symbol_a || '_' || configured.pair.symbol_b as pair_id,
        configured.pair.symbol_a,
        configured.pair.symbol_b,
        'universe' as pair_origin
    from (select unnest({{ universe_pairs() }}) as pair) as configured

),

pairs_unioned as (

    select * from seeded_pairs
    union all
    select * from screened_pairs
    union all
    select * from configured_pairs

),

all_pairs as (

    select *
    from pairs_unioned
    qualify row_number() over (partition by pair_id order by pair_origin desc) = 1

),

symbols as (

    select
        symbol,
        asset_class
    from {{ ref('int_symbols_deduplicated') }}

),

pairs_described as (

    select
        all_pairs.pair_id,
        all_pairs.symbol_a,
        all_pairs.symbol_b,
        symbols_a.asset_class as asset_class_a,
        symbols_b.asset_class as asset_class_b,
        all_pairs.pair_origin
    from all_pairs
    inner join symbols as symbols_a on all_pairs.symbol_a = symbols_a.symbol
    inner join symbols as symbols_b on all_pairs.symbol_b = symbols_b.symbol

)

select * from pairs_described
