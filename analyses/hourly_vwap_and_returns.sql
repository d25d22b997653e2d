-- Hourly bars (anchored at the session open) with a typical-price VWAP proxy and
-- total-return log returns, skipping partial hours.
select
    symbol,
    ts,
    close_adj,
    volume,
    (high + low + close) / 3 as typical_price,
    ln(close_adj / lag(close_adj) over (partition by symbol order by ts)) as log_return
from bars_resampled
where timeframe = '1h' and not is_partial
order by symbol, ts
