"""Dukascopy's public historical files: every bid/ask tick, and 1m candles per side.

Files live under ``{base}/{SYMBOL}/{YYYY}/{MM}/{DD}/`` with the month counted from 00
(January = ``00``):

* ``{HH}h_ticks.bi5`` - one hour of ticks; a 20-byte big-endian record per tick: ms since
  the hour (uint32), ask and bid in integer points (uint32), ask and bid volume (float32,
  millions);
* ``BID_candles_min_1.bi5`` and ``ASK_candles_min_1.bi5`` - one UTC day of 1m candles per
  side; a 24-byte big-endian record: seconds since the day (uint32), open, close, low,
  high in integer points (uint32, in that order), volume (float32, millions).

Each file is LZMA in the "alone" format. Prices are points x the instrument's point size
(``seeds/forex_point_sizes.csv``). An empty body or a 404 is an hour (or a day) without
data, not an error: Dukascopy publishes nothing for closed markets.

In the lake a tick is a quote: ``side = 'quote'``, ``price`` the mid, ``size`` bid plus ask
volume, and the extra columns ``bid``, ``ask``, ``bid_size``, ``ask_size``. A 1m bar is the
mid of the two sides' candles (open, high, low, close each averaged), volume the sum, and
the extra columns ``bid_open`` ... ``ask_close`` keep each side; flat zero-volume
candles (a closed market) are dropped.

All network access goes through one ``httpx.Client`` (tests pass one built on
``httpx.MockTransport``).
"""

from __future__ import annotations

import csv
import logging
import lzma
import random
import struct
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import (
    InvalidInputError,
    RateLimitedError,
    SourceError,
    SourceUnreachableError,
    SymbolNotFoundError,
    UnsupportedRequestError,
)
from ..schema import SOURCE_BARS_SCHEMA, TS_TYPE
from ..timeframes import TICK, normalize_timeframe
from .base import Capabilities, FetchResult, Source, TimeframeLimits

__all__ = [
    "BASE_URL",
    "CANDLE",
    "CAPABILITIES",
    "TICK_RECORD",
    "DukascopySource",
    "candle_path",
    "decode_candles",
    "decode_ticks",
    "point_size",
    "point_sizes",
    "tick_path",
]

log = logging.getLogger(__name__)

BASE_URL = "https://datafeed.dukascopy.com/datafeed"

#: ms since the hour, ask, bid (points), ask volume, bid volume (millions)
TICK_RECORD = struct.Struct(">3I2f")
#: seconds since the day, open, close, low, high (points), volume (millions)
CANDLE = struct.Struct(">5If")

CAPABILITIES = Capabilities(
    timeframes={"1m": TimeframeLimits(max_span=timedelta(days=7))},
    needs_network=True,
    trailing_refetch=timedelta(hours=2),
    ticks=TimeframeLimits(max_span=timedelta(days=1)),
)

_SEED = Path(__file__).resolve().parents[2] / "seeds" / "forex_point_sizes.csv"
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


@cache
def point_sizes(path: Path = _SEED) -> dict[str, float]:
    """The seed table: instrument -> price of one integer point."""
    with open(path, newline="") as f:
        return {row["symbol"].upper(): float(row["point_size"]) for row in csv.DictReader(f)}


def point_size(symbol: str) -> float:
    """The point size of a Dukascopy instrument, or SymbolNotFoundError."""
    sizes = point_sizes()
    try:
        return sizes[symbol.upper()]
    except KeyError:
        raise SymbolNotFoundError(
            f"dukascopy: no point size for {symbol!r} in seeds/forex_point_sizes.csv "
            f"(known: {', '.join(sorted(sizes))})"
        ) from None


def tick_path(symbol: str, hour: datetime) -> str:
    """``EURUSD/2019/00/04/00h_ticks.bi5`` for 2019-01-04 00:00 UTC (month from 00)."""
    return f"{symbol.upper()}/{hour:%Y}/{hour.month - 1:02d}/{hour:%d}/{hour:%H}h_ticks.bi5"


def candle_path(symbol: str, day: datetime, side: str) -> str:
    """``EURUSD/2019/00/04/BID_candles_min_1.bi5`` (side BID or ASK; month from 00)."""
    return f"{symbol.upper()}/{day:%Y}/{day.month - 1:02d}/{day:%d}/{side}_candles_min_1.bi5"


def _decompress(body: bytes, what: str, record: struct.Struct) -> bytes:
    if not body:
        return b""
    try:
        raw = lzma.decompress(body, format=lzma.FORMAT_ALONE)
    except (lzma.LZMAError, EOFError) as exc:
        raise SourceError(f"dukascopy: {what} is not a valid LZMA file ({exc})") from exc
    if len(raw) % record.size:
        raise SourceError(
            f"dukascopy: {what} holds {len(raw)} bytes, not a whole number of "
            f"{record.size}-byte records"
        )
    return raw


def decode_ticks(body: bytes, hour: datetime, point: float, what: str = "tick file") -> pa.Table:
    """One hour file -> ts, seq, price (mid), size, side, venue, bid, ask, bid_size,
    ask_size; sizes in millions of units. Empty body -> empty table."""
    raw = _decompress(body, what, TICK_RECORD)
    rec = np.frombuffer(
        raw,
        dtype=np.dtype(
            [("ms", ">u4"), ("ask", ">u4"), ("bid", ">u4"), ("av", ">f4"), ("bv", ">f4")]
        ),
    )
    hour_us = int(hour.timestamp()) * 1_000_000
    ts = hour_us + rec["ms"].astype(np.int64) * 1000
    ask = rec["ask"].astype(np.float64) * point
    bid = rec["bid"].astype(np.float64) * point
    av = rec["av"].astype(np.float64)
    bv = rec["bv"].astype(np.float64)
    n = ts.size
    return pa.table(
        {
            "ts": pa.array(ts, pa.int64()).cast(TS_TYPE),
            # unique within the hour, stable across fetches
            "seq": pa.array(hour_us // 3_600_000_000 * 1_000_000 + np.arange(n), pa.int64()),
            "price": pa.array(np.round((ask + bid) / 2, 10), pa.float64()),
            "size": pa.array(av + bv, pa.float64()),
            "side": pa.array(["quote"] * n, pa.string()),
            "venue": pa.array(["dukascopy"] * n, pa.string()),
            "bid": pa.array(np.round(bid, 10), pa.float64()),
            "ask": pa.array(np.round(ask, 10), pa.float64()),
            "bid_size": pa.array(bv, pa.float64()),
            "ask_size": pa.array(av, pa.float64()),
        }
    )


def decode_candles(body: bytes, day: datetime, point: float, what: str = "candle file") -> pa.Table:
    """One side's day file -> ts, open, high, low, close, volume (records hold open, close,
    low, high in that order)."""
    raw = _decompress(body, what, CANDLE)
    rec = np.frombuffer(
        raw,
        dtype=np.dtype(
            [("s", ">u4"), ("o", ">u4"), ("c", ">u4"), ("l", ">u4"), ("h", ">u4"), ("v", ">f4")]
        ),
    )
    day_us = int(day.timestamp()) * 1_000_000
    return pa.table(
        {
            "ts": pa.array(day_us + rec["s"].astype(np.int64) * 1_000_000, pa.int64()).cast(
                TS_TYPE
            ),
            **{
                name: pa.array(np.round(rec[k].astype(np.float64) * point, 10), pa.float64())
                for name, k in (("open", "o"), ("high", "h"), ("low", "l"), ("close", "c"))
            },
            "volume": pa.array(rec["v"].astype(np.float64), pa.float64()),
        }
    )


def _require_aware(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def _floor(value: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((value - epoch) // step) * step


class DukascopySource(Source):
    """Dukascopy's datafeed files over HTTP (no account needed)."""

    name = "dukascopy"
    capabilities = CAPABILITIES

    def __init__(
        self,
        *,
        client: httpx.Client | None = None,
        base_url: str = BASE_URL,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] | datetime | None = None,
        max_retries: int = 4,
        base_delay: float = 1.0,
        timeout: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client or httpx.Client(timeout=timeout, follow_redirects=True)
        self.base_url = base_url.rstrip("/")
        self._sleep = sleep
        self._now = now
        self.max_retries = max_retries
        self.base_delay = base_delay
        self._rng = rng or random.Random()
        #: HTTP requests sent (retries included)
        self.requests = 0

    def _utcnow(self) -> datetime:
        if isinstance(self._now, datetime):
            return self._now
        return self._now() if self._now else datetime.now(UTC)

    def get(self, path: str) -> bytes:
        """The body of one file; ``b""`` for a 404 (no data published). Retries 429, 5xx
        and network errors; SourceUnreachableError when the host cannot be reached."""
        url = f"{self.base_url}/{path}"
        attempt = 0
        while True:
            self.requests += 1
            try:
                resp = self.client.get(url)
            except (httpx.ConnectError, httpx.TimeoutException, httpx.NetworkError) as exc:
                if attempt >= self.max_retries:
                    raise SourceUnreachableError(
                        f"dukascopy: cannot reach {self.base_url} ({exc})"
                    ) from exc
                error: Exception = exc
            else:
                if resp.status_code == 404:
                    return b""
                if resp.status_code < 300:
                    return resp.content
                if resp.status_code not in _RETRY_STATUS:
                    raise SourceError(f"dukascopy: HTTP {resp.status_code} for {path}")
                if attempt >= self.max_retries:
                    if resp.status_code == 429:
                        raise RateLimitedError(f"dukascopy: rate limited on {path}")
                    raise SourceError(
                        f"dukascopy: HTTP {resp.status_code} for {path} after "
                        f"{attempt + 1} attempts"
                    )
                error = SourceError(f"HTTP {resp.status_code}")
            delay = self.base_delay * (2**attempt) * (1.0 + 0.5 * self._rng.random())
            log.warning("dukascopy %s: %s; retrying in %.1fs", path, error, delay)
            self._sleep(delay)
            attempt += 1

    def fetch_ticks(self, symbol: str, start: datetime, end: datetime) -> FetchResult:
        start = _require_aware("start", start)
        end = _require_aware("end", end)
        point = point_size(symbol)
        n0 = self.requests
        hour = _floor(start, timedelta(hours=1))
        last = min(end, self._utcnow())
        tables = []
        while hour < last:
            path = tick_path(symbol, hour)
            tables.append(decode_ticks(self.get(path), hour, point, path))
            hour += timedelta(hours=1)
        ticks = _concat(tables, _TICK_SCHEMA)
        lo, hi = pa.scalar(start, TS_TYPE), pa.scalar(end, TS_TYPE)
        ts = ticks.column("ts")
        keep = pc.and_(pc.greater_equal(ts, lo), pc.less(ts, hi))
        return FetchResult(
            bars=SOURCE_BARS_SCHEMA.empty_table(),
            ticks=ticks.filter(keep),
            symbol_info=_info(symbol),
            api_calls=self.requests - n0,
        )

    def fetch_bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> FetchResult:
        tf = normalize_timeframe(timeframe)
        if tf == TICK or tf not in CAPABILITIES.timeframes:
            raise UnsupportedRequestError(
                f"dukascopy serves timeframe 1m (and ticks), not {timeframe!r}"
            )
        start = _require_aware("start", start)
        end = _require_aware("end", end)
        point = point_size(symbol)
        n0 = self.requests
        now = self._utcnow()
        day = _floor(start, timedelta(days=1))
        tables = []
        while day < min(end, now):
            sides = {}
            for side in ("BID", "ASK"):
                path = candle_path(symbol, day, side)
                sides[side] = decode_candles(self.get(path), day, point, path)
            tables.append(_mid_bars(sides["BID"], sides["ASK"], symbol, day, now))
            day += timedelta(days=1)
        bars = _concat(tables, _BARS_SCHEMA)
        ts = bars.column("ts")
        keep = pc.and_(
            pc.greater_equal(ts, pa.scalar(start, TS_TYPE)),
            pc.less(ts, pa.scalar(end, TS_TYPE)),
        )
        return FetchResult(
            bars=bars.filter(keep), symbol_info=_info(symbol), api_calls=self.requests - n0
        )


_SIDE_COLUMNS = [f"{s}_{c}" for s in ("bid", "ask") for c in ("open", "high", "low", "close")]
_BARS_SCHEMA = pa.schema([*SOURCE_BARS_SCHEMA, *(pa.field(c, pa.float64()) for c in _SIDE_COLUMNS)])
_TICK_SCHEMA = decode_ticks(b"", datetime(1970, 1, 1, tzinfo=UTC), 1.0).schema


def _concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    tables = [t.cast(schema) for t in tables if t.num_rows]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def _mid_bars(bid: pa.Table, ask: pa.Table, symbol: str, day: datetime, now: datetime) -> pa.Table:
    """Bars whose OHLC is the mean of the two sides' (only minutes both sides have).
    Minutes without a quote on either side (Dukascopy fills a closed market with flat
    zero-volume candles) are dropped, as the ticks -> 1m path would have no bar there."""
    if bid.num_rows == 0 or ask.num_rows == 0:
        return _BARS_SCHEMA.empty_table()
    joined = bid.join(ask, "ts", join_type="inner", left_suffix="_bid", right_suffix="_ask")
    joined = joined.sort_by("ts")
    if joined.num_rows != max(bid.num_rows, ask.num_rows):
        log.warning("dukascopy %s %s: bid and ask candles disagree on minutes", symbol, day)
    quoted = pc.greater(pc.add(joined.column("volume_bid"), joined.column("volume_ask")), 0)
    joined = joined.filter(quoted)
    cols: dict[str, Any] = {"ts": joined.column("ts")}
    for c in ("open", "high", "low", "close"):
        b = joined.column(f"{c}_bid").to_numpy()
        a = joined.column(f"{c}_ask").to_numpy()
        cols[c] = pa.array(np.round((a + b) / 2, 10), pa.float64())
    cols["volume"] = pa.array(
        joined.column("volume_bid").to_numpy() + joined.column("volume_ask").to_numpy(),
        pa.float64(),
    )
    ts_us = joined.column("ts").cast(pa.int64()).to_numpy()
    cols["is_final"] = pa.array(ts_us + 60_000_000 <= int(now.timestamp() * 1e6), pa.bool_())
    for side in ("bid", "ask"):
        for c in ("open", "high", "low", "close"):
            cols[f"{side}_{c}"] = joined.column(f"{c}_{side}")
    return pa.table(cols).cast(_BARS_SCHEMA)


def _info(symbol: str) -> dict[str, Any]:
    s = symbol.upper()
    return {
        "name": s,
        "asset_class": "fx",
        "exchange": "DUKASCOPY",
        "currency": s[3:6] if len(s) == 6 else None,
        "timezone": "UTC",
        # the forex calendar: sessions from 17:00 to 17:00 New York, Sunday to Friday
        # (warehouse/calendars.py writes it)
        "calendar": "FX",
    }
