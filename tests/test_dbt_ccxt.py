"""The warehouse builds what the ccxt source lands: a real ``dbt build`` (subprocess) on a
lake ingested from the offline Binance (tests/ccxt_binance.py), then the marts.

24/7 sessions (resampled days of 1,440 minutes, complete coverage), trades aggregated to
1m bars equal to the exchange's own candles, and perpetual_bars: funding paid per bar and
the funding-adjusted return.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from ingest.manager import DataManager
from ingest.paths import DataPaths
from tests.ccxt_binance import FakeBinance, ms, trades_between
from warehouse.build import run_build
from warehouse.layout import read_table

pytestmark = pytest.mark.slow

NOW = datetime(2024, 6, 1, 12, 30, 20, tzinfo=UTC)
DAY0, DAY3 = datetime(2024, 5, 28, tzinfo=UTC), datetime(2024, 5, 31, tzinfo=UTC)
W0 = datetime(2024, 5, 31, 9, tzinfo=UTC)  # the window with trades
SELECT = (
    "path:models/staging path:models/intermediate path:models/marts/bars "
    "path:models/marts/coverage path:models/marts/quality path:seeds/source_limits.csv "
    "path:tests/dbt/warehouse"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    paths = DataPaths(tmp_path_factory.mktemp("ccxt") / "data").ensure()
    fake = FakeBinance(NOW)
    fake.add_trades("api", "BTCUSDT", trades_between(ms(W0) + 1234, 1800, 997))
    src = fake.source()
    with DataManager(paths, sources={src.name: src}, now=fake.now) as dm:
        for symbol, tf in (("BTC/USDT:USDT", "1m"), ("ETH/USDT:USDT", "1h")):
            report = dm.ingest([symbol], tf, DAY0, DAY3, source="ccxt:binance")
            assert report.ok, report.failed
            report = dm.ingest([symbol], "funding", DAY0, DAY3, source="ccxt:binance")
            assert report.ok, report.failed
        end = W0 + timedelta(minutes=30)
        assert dm.ingest(["BTC/USDT"], "1m", W0, end, source="ccxt:binance").ok
        assert dm.ingest(["BTC/USDT"], "tick", W0, end, source="ccxt:binance").ok
    result = run_build(paths, select=SELECT, quiet=True, extra=("--indirect-selection", "cautious"))
    assert result.ok, result.error + "\n" + result.output[-4000:]
    return {"paths": paths, "fake": fake}


def mart(built: dict, name: str) -> pd.DataFrame:
    return read_table(built["paths"].marts, name).to_pandas()


def test_days_of_a_crypto_market_are_utc_days_of_1440_minutes(built: dict) -> None:
    days = mart(built, "bars_resampled").query("symbol == 'BTC/USDT:USDT' and timeframe == '1d'")
    assert days["ts"].dt.strftime("%Y-%m-%d %H:%M").tolist() == [
        "2024-05-28 00:00",
        "2024-05-29 00:00",
        "2024-05-30 00:00",
    ]
    assert days["bar_count"].tolist() == [1440] * 3
    assert not days["is_partial"].any()


def test_coverage_of_a_crypto_market_is_complete_on_the_24_7_calendar(built: dict) -> None:
    cov = mart(built, "coverage_summary").query("symbol == 'BTC/USDT:USDT' and timeframe == '1m'")
    assert len(cov) == 1
    row = cov.iloc[0]
    assert row["calendar"] == "24/7"
    assert row["row_count"] == row["expected_rows"] == 3 * 1440
    assert row["completeness"] == 1.0
    assert row["gap_count"] == 0
    gaps = mart(built, "coverage_gaps").query("symbol == 'BTC/USDT:USDT'")
    assert gaps.empty


def test_trades_aggregate_to_the_exchanges_own_minutes(built: dict) -> None:
    from_ticks = mart(built, "bars_from_ticks").query("symbol == 'BTC/USDT'").sort_values("ts")
    exchange = (
        mart(built, "bars_adjusted")
        .query("symbol == 'BTC/USDT' and timeframe == '1m'")
        .sort_values("ts")
    )
    assert len(from_ticks) == len(exchange) == 30
    assert from_ticks["ts"].tolist() == exchange["ts"].tolist()
    for c in ("open", "high", "low", "close"):
        assert from_ticks[c].tolist() == exchange[c].tolist(), c
    np.testing.assert_allclose(from_ticks["volume"], exchange["volume"], rtol=1e-9)


def test_perpetual_bars_carry_the_funding_paid_during_each(built: dict) -> None:
    perps = mart(built, "perpetual_bars")
    assert set(perps["symbol"]) == {"BTC/USDT:USDT", "ETH/USDT:USDT"}  # spot has no funding
    fake = built["fake"]
    # ETH: 1h bars from the lake; a payment at 00:00, 08:00 and 16:00 (+ a few ms)
    eth = perps.query("symbol == 'ETH/USDT:USDT' and timeframe == '1h'").sort_values("ts")
    assert len(eth) == 72
    paid = eth[eth["funding_payments"] == 1]
    assert paid["ts"].dt.hour.tolist() == [0, 8, 16] * 3
    for ts, rate in zip(paid["ts"], paid["funding_rate"], strict=True):
        assert rate == float(fake.funding_at("ETHUSDT", ms(ts.to_pydatetime()))["fundingRate"])
    assert (eth.loc[eth["funding_payments"] == 0, "funding_rate"] == 0).all()
    np.testing.assert_allclose(eth["cumulative_funding"].iloc[-1], paid["funding_rate"].sum())
    # BTC: 1m in the lake, 1d resampled from it; three payments a day
    btc = perps.query("symbol == 'BTC/USDT:USDT' and timeframe == '1d'").sort_values("ts")
    assert btc["funding_payments"].tolist() == [3, 3, 3]
    minute = perps.query("symbol == 'BTC/USDT:USDT' and timeframe == '1m'")
    assert minute["funding_payments"].sum() == 9
    np.testing.assert_allclose(btc["funding_rate"].sum(), minute["funding_rate"].sum())
    # a perpetual's return is its price move plus funding
    closes = btc["close"].to_numpy()
    np.testing.assert_allclose(btc["price_return"].iloc[1:], closes[1:] / closes[:-1] - 1)
    np.testing.assert_allclose(
        btc["total_return"].iloc[1:], btc["price_return"].iloc[1:] - btc["funding_rate"].iloc[1:]
    )
    assert pd.isna(btc["total_return"].iloc[0])
    # the one bucket its 1m bars do not fill: the week of 2024-05-27 (four days of seven)
    assert perps.loc[~perps["is_final"], "timeframe"].tolist() == ["1w"]
