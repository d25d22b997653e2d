-- What failed which check, per symbol: start here before trusting a series.
select
    dataset,
    disposition,
    reason,
    symbol,
    count(*) as row_count,
    min(ts) as first_at,
    max(ts) as last_at
from quality_quarantine
group by all
order by row_count desc
