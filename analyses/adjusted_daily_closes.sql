-- Daily closes of one symbol as traded, split-adjusted and total-return adjusted,
-- with the factors that link them.
select
    symbol,
    ts::date as session_date,
    close,
    split_factor,
    dividend_factor,
    close_split_adj,
    close_adj,
    volume,
    volume_adj,
    quality_flags
from bars_adjusted
where symbol = 'SYN000' and timeframe = '1d'
order by ts
