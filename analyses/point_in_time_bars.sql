-- What a backtest running on 2023-06-30 could have known: bars up to that day, adjusted
-- only by the splits and dividends with an ex-date on or before it (the table macro
-- bars_as_of is created by every build). Compare with today's adjustment.
select
    as_of.symbol,
    as_of.ts,
    as_of.close,
    as_of.close_adj as close_adj_as_of,
    today.close_adj as close_adj_today
from bars_as_of(date '2023-06-30') as as_of
inner join bars_adjusted as today
    on
        as_of.symbol = today.symbol
        and as_of.timeframe = today.timeframe
        and as_of.ts = today.ts
where as_of.timeframe = '1d'
order by as_of.symbol, as_of.ts
