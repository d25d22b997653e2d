"""The interface every source implements, and the capabilities it declares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from ..errors import UnsupportedRequestError
from ..timeframes import FUNDING, TICK


@dataclass(frozen=True)
class TimeframeLimits:
    """What a source can serve for one timeframe.

    lookback: how far back from *now* data exists (None = unlimited history).
    max_span: the largest ``end - start`` one request may cover (None = unlimited).
    """

    lookback: timedelta | None = None
    max_span: timedelta | None = None


@dataclass(frozen=True)
class Capabilities:
    timeframes: dict[str, TimeframeLimits]
    #: prices as the vendor delivers them are split-adjusted as of fetch time (the adapter
    #: un-adjusts them before they reach the lake)
    split_adjusted: bool = False
    #: the source needs the network (tests replace it at its boundary)
    needs_network: bool = False
    #: recent bars are revised by the vendor: re-fetch this much before *now* every time
    trailing_refetch: timedelta = timedelta(0)
    #: delivers corporate actions alongside bars
    has_actions: bool = False
    #: limits of ``fetch_ticks`` (None: the source has no ticks)
    ticks: TimeframeLimits | None = None
    #: limits of ``fetch_funding`` (None: the source has no funding rates)
    funding: TimeframeLimits | None = None

    def limits(self, timeframe: str) -> TimeframeLimits | None:
        """What the source can serve of one series: a bar timeframe, ``TICK`` or
        ``FUNDING``; None when it serves nothing of it."""
        if timeframe == TICK:
            return self.ticks
        if timeframe == FUNDING:
            return self.funding
        return self.timeframes.get(timeframe)

    def supports(self, timeframe: str) -> bool:
        return self.limits(timeframe) is not None

    @property
    def served(self) -> list[str]:
        """Every timeframe the source serves: bars first, then ``tick`` when it has trades
        and ``funding`` when it has funding rates."""
        return [
            *self.timeframes,
            *([TICK] if self.ticks is not None else []),
            *([FUNDING] if self.funding is not None else []),
        ]


@dataclass
class FetchResult:
    """What one request returns, as traded.

    bars: columns ts (UTC, bar open), open, high, low, close, volume, is_final, plus any
        vendor extras (adj_close, vwap, trade_count, ...). An empty table means the range
        legitimately had no bars (no session in it); a source that cannot explain an empty
        answer raises :class:`~ingest.errors.SymbolNotFoundError` instead.
    actions: corporate actions seen in the range (ex_date, action_type, split_ratio,
        cash_amount, currency), or None.
    symbol_info: name, asset_class, exchange, currency, timezone, calendar, when known.
    """

    bars: pa.Table
    actions: pa.Table | None = None
    symbol_info: dict[str, Any] | None = None
    api_calls: int = 1
    notes: list[str] = field(default_factory=list)
    #: trades, for ``fetch_ticks``
    ticks: pa.Table | None = None
    #: funding payments (ts, rate, interval_hours), for ``fetch_funding``
    funding: pa.Table | None = None


class Source(ABC):
    """A market-data source. Ranges are half-open ``[start, end)`` in tz-aware UTC."""

    name: str
    capabilities: Capabilities

    @abstractmethod
    def fetch_bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> FetchResult:
        """Return the bars with ``start <= ts < end``; at most ``max_span`` long."""

    def fetch_ticks(self, symbol: str, start: datetime, end: datetime) -> FetchResult:
        """Trades with ``start <= ts < end`` in ``FetchResult.ticks`` (ts, seq, price, size,
        side, venue); sources without ticks refuse."""
        raise UnsupportedRequestError(f"source {self.name!r} has no tick data")

    def fetch_funding(self, symbol: str, start: datetime, end: datetime) -> FetchResult:
        """Funding payments with ``start <= ts < end`` in ``FetchResult.funding`` (ts, rate,
        interval_hours); sources without perpetual swaps refuse."""
        raise UnsupportedRequestError(f"source {self.name!r} has no funding rates")

    def list_symbols(self) -> list[str] | None:
        """Symbols the source generates or holds, when it knows them (None otherwise)."""
        return None
