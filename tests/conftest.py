"""Shared fixtures: temporary data roots and a controllable in-memory source."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from ingest.errors import SymbolNotFoundError
from ingest.paths import DataPaths
from ingest.schema import TS_TYPE
from ingest.sources.base import Capabilities, FetchResult, Source, TimeframeLimits

T0 = datetime(2023, 1, 2, tzinfo=UTC)


def make_bars(
    start: datetime,
    n: int,
    step: timedelta = timedelta(minutes=1),
    base: float = 100.0,
    seed: int = 0,
) -> pa.Table:
    """Valid bars at start, start+step, ... with a deterministic random walk."""
    rng = np.random.default_rng(seed)
    close = base * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.concatenate([[base], close[:-1]])
    high = np.maximum(open_, close) * 1.001
    low = np.minimum(open_, close) * 0.999
    ts = [start + i * step for i in range(n)]
    return pa.table(
        {
            "ts": pa.array(ts, TS_TYPE),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.integers(100, 10_000, n).astype(float),
        }
    )


class FakeSource(Source):
    """Daily bars every calendar day; a bar's values depend only on its date.

    Records every call; ``fail_on`` symbols raise; ``empty_symbols`` answer nothing
    (as Yahoo does for a delisted ticker)."""

    name = "fake"

    def __init__(
        self,
        *,
        lookback: timedelta | None = None,
        trailing: timedelta = timedelta(0),
        max_span: timedelta | None = None,
        fail_on: set[str] | None = None,
        empty_symbols: set[str] | None = None,
        not_final_after: datetime | None = None,
    ):
        self.capabilities = Capabilities(
            timeframes={
                "1d": TimeframeLimits(lookback=lookback, max_span=max_span),
                "1m": TimeframeLimits(lookback=lookback, max_span=max_span),
            },
            trailing_refetch=trailing,
            has_actions=True,
        )
        self.calls: list[tuple[str, str, datetime, datetime]] = []
        self.fail_on = fail_on or set()
        self.empty_symbols = empty_symbols or set()
        self.not_final_after = not_final_after
        self.version = 0  # bump to simulate a vendor revision

    def value(self, symbol: str, ts: datetime) -> float:
        day = (ts - datetime(2000, 1, 1, tzinfo=UTC)) / timedelta(days=1)
        return 100.0 + (hash(symbol) % 50) + day * 0.01 + self.version

    def fetch_bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> FetchResult:
        self.calls.append((symbol, timeframe, start, end))
        if symbol in self.fail_on:
            raise ConnectionError(f"simulated outage while fetching {symbol}")
        if symbol in self.empty_symbols:
            raise SymbolNotFoundError(f"no data for {symbol!r}: misspelt or delisted?")
        step = timedelta(days=1) if timeframe == "1d" else timedelta(minutes=1)
        first = (
            start if timeframe == "1m" else datetime(start.year, start.month, start.day, tzinfo=UTC)
        )
        if first < start:
            first += step
        ts = []
        t = first
        while t < end:
            ts.append(t)
            t += step
        closes = [self.value(symbol, x) for x in ts]
        final = [self.not_final_after is None or x < self.not_final_after for x in ts]
        bars = pa.table(
            {
                "ts": pa.array(ts, TS_TYPE),
                "open": closes,
                "high": [c + 1 for c in closes],
                "low": [c - 1 for c in closes],
                "close": closes,
                "volume": [1000.0] * len(ts),
                "is_final": final,
            }
        )
        return FetchResult(bars=bars, symbol_info={"asset_class": "equity", "currency": "USD"})


@pytest.fixture
def paths(tmp_path) -> DataPaths:
    return DataPaths(tmp_path / "data").ensure()


@pytest.fixture
def lake(paths):
    from ingest.lake import Lake

    lk = Lake(paths)
    yield lk
    lk.close()


@pytest.fixture
def fake_source() -> FakeSource:
    return FakeSource()
