"""Crypto exchanges through ``ccxt``: OHLCV bars, trades and funding rates, fetched once.

One source per exchange. Users name it ``ccxt:<exchange>`` (``ccxt:binance``); the lake
stores it as ``ccxt_<exchange>``, because a source is a partition path segment
(``source=ccxt_binance``) and ``:`` has no place there. Symbols are ccxt's unified
symbols, which carry the market type: ``BTC/USDT`` (spot), ``BTC/USDT:USDT`` (linear
perpetual swap, settled in USDT), ``BTC/USD:BTC`` (inverse perpetual),
``BTC/USDT:USDT-240628`` (dated future).

Everything the source can do comes from the exchange object itself: ``has`` says which
series exist (``fetchOHLCV``, ``fetchTrades``, ``fetchFundingRateHistory``), ``timeframes``
which bar lengths, ``features`` the page size, ``rateLimit`` the pace. A request the
exchange cannot serve is refused before anything is sent.

* **Bars** are paged forward from the range's start (``since``, open times in ms UTC)
  until its end. The candle still forming is kept with ``is_final = false`` (the manager
  fetches it again next time); an empty page inside the range is a gap the exchange
  really has and is stepped over, never retried forever. The first candle the exchange
  has (``since=0``) is probed once when a range starts before any data, so a request
  "from 2010" pages from the listing, and ranges before it cost no request. Binance's
  extra kline fields become optional columns: ``quote_volume``, ``trade_count``,
  ``taker_buy_volume``, ``taker_buy_quote_volume``.
* **Trades** go to the ticks dataset (``seq`` = the trade id when it is a number;
  ``trade_id`` keeps it as text). Pages are walked by time, and on Binance, once a page is
  full, by trade id (``fromId``), so a busy second is never cut.
* **Funding rates** of perpetual swaps (ts, rate, interval_hours since the previous
  payment; Binance adds ``mark_price``).

Errors: ccxt's ``RateLimitExceeded`` and ``DDoSProtection`` (siblings under
``NetworkError`` in ccxt 4, not parent and child) and the other network errors are retried
with exponential back-off (honouring ``Retry-After``), then reported; a host that cannot
be reached at all fails the whole run at once (:class:`SourceUnreachableError`);
``BadSymbol`` or a symbol not in the exchange's markets is a per-symbol
:class:`SymbolNotFoundError` naming the markets that look alike. Requests never run past
the exchange's rate limit: each keeps the next one waiting ``rateLimit`` ms times its
endpoint's cost in ccxt (Binance's request weights), paced by this source's own clock and
sleep so that tests can watch it.

All traffic goes through ccxt's own HTTP layer (``exchange.fetch``, a ``requests``
session); tests mount a transport on that session that answers with recorded exchange
bodies, so ccxt's parsing and error mapping run as they do against the exchange.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import random
import re
import socket
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import ccxt
import numpy as np
import pyarrow as pa

from ..errors import (
    InvalidInputError,
    RateLimitedError,
    SourceError,
    SourceUnreachableError,
    SymbolNotFoundError,
    UnsupportedRequestError,
)
from ..schema import SOURCE_BARS_SCHEMA, SOURCE_FUNDING_SCHEMA, TS_TYPE
from ..timeframes import TIMEFRAMES, bar_length, normalize_timeframe
from .base import Capabilities, FetchResult, Source, TimeframeLimits

__all__ = [
    "BARS_PER_REQUEST",
    "KLINE_EXTRAS",
    "MARKET_TYPES",
    "CcxtSource",
    "exchange_ids",
]

log = logging.getLogger(__name__)

#: the most bars one planned request covers (10 to 20 pages): a long history lands, and
#: is recorded as covered, chunk by chunk
BARS_PER_REQUEST = 10_000
#: trades and funding rates, per planned request
TRADES_SPAN = timedelta(days=1)
FUNDING_SPAN = timedelta(days=365)
#: ccxt's market types a user may ask for
MARKET_TYPES = ("spot", "swap", "future", "option")
#: optional bar columns kept from Binance's klines
KLINE_EXTRAS = ("quote_volume", "trade_count", "taker_buy_volume", "taker_buy_quote_volume")

_BINANCE = frozenset({"binance", "binanceus", "binanceusdm", "binancecoinm"})
#: Binance serves aggregate trades by time windows of at most one hour
_BINANCE_TRADES_WINDOW_MS = 3_600_000
_BINANCE_TRADES_LIMIT = 1000
#: a page size when the exchange declares none (small enough for any exchange)
_DEFAULT_PAGE = 100
#: a Retry-After longer than this is a ban, not a pause: reported, not waited for
_MAX_RETRY_AFTER_S = 120.0
#: how far before a range funding payments are read to know the first one's interval
_FUNDING_LOOKBACK_MS = 24 * 3_600_000

_UNREACHABLE = (
    "failed to resolve",
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname",
    "getaddrinfo failed",
    "name resolution",
    "connection refused",
    "network is unreachable",
    "no route to host",
)


def exchange_ids() -> list[str]:
    """Every exchange ccxt knows (``binance``, ``bybit``, ``okx``, ...)."""
    return list(ccxt.exchanges)


def _require_aware(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def _ms(value: datetime) -> int:
    delta = value.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _dt(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def _ts_array(ms: Iterable[int]) -> pa.Array:
    return pa.array(np.asarray(list(ms), dtype=np.int64) * 1000, pa.int64()).cast(TS_TYPE)


def _unreachable(exc: BaseException) -> bool:
    """No name resolution or no connection at all, anywhere in the exception's chain:
    retrying cannot help in this run."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, socket.gaierror | ConnectionRefusedError):
            return True
        msg = str(e).lower()
        if any(s in msg for s in _UNREACHABLE):
            return True
        e = e.__cause__ or e.__context__
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


class CcxtSource(Source):
    """OHLCV, trades and funding rates of one exchange, through ccxt.

    ``exchange`` is a ccxt exchange id (``"binance"``) or a ready ccxt exchange object
    (proxies, keys, options as you set them); ``config`` goes to the exchange's
    constructor. ``sleep`` and ``clock`` pace requests and back-offs, ``now`` tells which
    candle is still forming; all default to the real ones.
    """

    def __init__(
        self,
        exchange: str | Any = "binance",
        *,
        config: dict[str, Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | datetime | None = None,
        max_retries: int = 4,
        base_delay: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        if isinstance(exchange, str):
            exchange = _build_exchange(exchange, config)
        elif config:
            raise InvalidInputError("config applies to an exchange id, not to an exchange object")
        self.exchange = exchange
        self.name = f"ccxt_{exchange.id}"
        self._sleep = sleep
        self._clock = clock
        self._now = now
        self.max_retries = max_retries
        self.base_delay = base_delay
        self._rng = rng or random.Random()
        #: HTTP requests sent (retries included); api_calls are differences of it
        self.requests = 0
        self._next_request_at: float | None = None
        #: (symbol, timeframe) -> open time (ms) of the first candle, None if it has none
        self._listing: dict[tuple[str, str], int | None] = {}
        self._install_hooks()
        self.capabilities = _capabilities(exchange)

    # -- the exchange object ---------------------------------------------------------------

    def _install_hooks(self) -> None:
        """Count every HTTP request, pace them by the exchange's rate limit, and keep the
        raw body of the last answer (the kline fields ccxt's parser drops)."""
        ex = self.exchange
        ex.enableRateLimit = True
        ex.enableLastJsonResponse = True
        ex.enableLastResponseHeaders = True
        send = ex.fetch

        def counted_fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None):
            self.requests += 1
            return send(url, method, headers, body)

        ex.fetch = counted_fetch
        ex.throttle = self._throttle

    def _throttle(self, cost: float | None = None) -> None:
        """Pacing by the exchange's rate limit, on this source's clock (a leaky bucket):
        a request of ccxt's ``cost`` for its endpoint keeps the next one waiting
        ``rateLimit x cost`` ms. Called by ccxt before every request."""
        gap = float(self.exchange.rateLimit) * (1.0 if cost is None else float(cost)) / 1000.0
        now = self._clock()
        if self._next_request_at is not None and self._next_request_at > now:
            self._sleep(self._next_request_at - now)
            now = self._next_request_at
        self._next_request_at = now + gap

    def now(self) -> datetime:
        if self._now is None:
            return datetime.now(UTC)
        value = self._now() if callable(self._now) else self._now
        return _require_aware("now", value)

    @property
    def label(self) -> str:
        return str(getattr(self.exchange, "name", None) or self.exchange.id)

    # -- requests --------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Call ccxt, retrying rate limits and network errors with exponential back-off and
        jitter; map ccxt's errors to the lake's. The error raised carries the number of
        HTTP requests made (``attempts``)."""
        n0 = self.requests
        attempt = 0
        while True:
            try:
                return fn()
            except (SourceError, InvalidInputError) as exc:
                exc.attempts = self.requests - n0  # type: ignore[union-attr]
                raise
            except Exception as exc:
                error, delay = self._classify(what, exc, attempt)
                if error is not None:
                    error.attempts = max(self.requests - n0, 1)
                    raise error from exc
                log.warning("%s on %s: %s; retrying in %.1fs", self.label, what, exc, delay)
                self._sleep(delay)
                attempt += 1

    def _backoff(self, attempt: int) -> float:
        return self.base_delay * (2**attempt) * (1.0 + 0.5 * self._rng.random())

    def _retry_after(self) -> float | None:
        headers = getattr(self.exchange, "last_response_headers", None) or {}
        value = None
        for k, v in dict(headers).items():
            if str(k).lower() == "retry-after":
                value = v
        return _float(value)

    def _classify(
        self, what: str, exc: BaseException, attempt: int
    ) -> tuple[SourceError | None, float]:
        """The error to raise for a failed attempt, or (None, seconds to wait) to retry."""
        label = self.label
        if isinstance(exc, ccxt.BadSymbol):
            return SymbolNotFoundError(
                f"{label} refused {what} as an unknown symbol ({_first_line(exc)}); list its "
                f"markets with `duckmarket symbols ccxt:{self.exchange.id}`"
            ), 0
        if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
            wait = self._retry_after()
            if wait is not None and wait > _MAX_RETRY_AFTER_S:
                return RateLimitedError(
                    f"{label} refuses requests for {wait:.0f} s more (Retry-After) after "
                    f"{what}: the rate limit was exceeded or the address is banned; wait, "
                    "then run the command again. Ranges already fetched are kept."
                ), 0
            if attempt < self.max_retries:
                return None, max(self._backoff(attempt), wait or 0.0)
            return RateLimitedError(
                f"{label} rate-limited {what} and still refused after {attempt + 1} "
                "attempts; wait a few minutes (or ask for fewer symbols at a time) and run "
                "the command again. Ranges already fetched are kept."
            ), 0
        if isinstance(exc, ccxt.NetworkError) or _unreachable(exc):
            if _unreachable(exc):
                return SourceUnreachableError(
                    f"{label} cannot be reached ({_first_line(exc)}): no network, or no name "
                    "resolution. Nothing more is fetched in this run; what was fetched "
                    "before is kept"
                ), 0
            if attempt < self.max_retries:
                return None, self._backoff(attempt)
            return SourceError(
                f"{label} failed on {what} {attempt + 1} times ({type(exc).__name__}: "
                f"{_first_line(exc)}); try again later"
            ), 0
        if isinstance(exc, ccxt.NotSupported):
            return UnsupportedRequestError(f"{label} cannot serve {what}: {_first_line(exc)}"), 0
        if isinstance(exc, ccxt.BaseError):
            return SourceError(f"{label} refused {what}: {_first_line(exc)}"), 0
        return SourceError(f"{label} failed on {what}: {type(exc).__name__}: {exc}"), 0

    # -- markets ---------------------------------------------------------------------------

    def markets(self) -> dict[str, dict[str, Any]]:
        """The exchange's markets by unified symbol (loaded once per source)."""
        if not self.exchange.markets:
            self._call("the list of markets", lambda: self.exchange.load_markets())
        return self.exchange.markets

    def market(self, symbol: str) -> dict[str, Any]:
        """One market, or :class:`SymbolNotFoundError` naming the markets that look alike."""
        markets = self.markets()
        found = markets.get(symbol)
        if found is None:
            raise SymbolNotFoundError(self._unknown(symbol, markets))
        return found

    def _unknown(self, symbol: str, markets: dict[str, dict[str, Any]]) -> str:
        def squash(s: str) -> str:
            return re.sub(r"[^A-Z0-9]", "", s.upper())

        want = squash(symbol)
        alike = [
            s
            for s, m in markets.items()
            if squash(f"{m.get('base')}/{m.get('quote')}") == want
            or squash(str(m.get("id") or "")) == want
        ]
        alike = sorted(alike)[:6] or difflib.get_close_matches(symbol, list(markets), n=4)
        hint = f"; did you mean {' or '.join(alike)}?" if alike else ""
        return (
            f"{self.label} has no market {symbol!r}{hint} Symbols are ccxt's unified ones: "
            "BTC/USDT (spot), BTC/USDT:USDT (linear perpetual); list them with "
            f"`duckmarket symbols ccxt:{self.exchange.id}`"
        )

    def resolve(self, symbols: Iterable[str], market_type: str | None = None) -> list[str]:
        """Unified symbols for what a user typed: with ``market_type`` ``swap``, ``BTC/USDT``
        is the perpetual ``BTC/USDT:USDT`` (settled in the quote when that exists, else the
        inverse one); ``future`` picks the one dated future of the pair or asks which.
        Symbols found as they are, or not found at all, are returned unchanged (the fetch
        reports the latter, symbol by symbol)."""
        if market_type is not None and market_type not in MARKET_TYPES:
            raise InvalidInputError(
                f"market type {market_type!r} is not one of {', '.join(MARKET_TYPES)}"
            )
        markets = self.markets()
        out = []
        for sym in symbols:
            m = markets.get(sym)
            if market_type is None or (m is not None and m.get("type") == market_type):
                out.append(sym)
                continue
            if "/" not in sym or ":" in sym:
                out.append(sym)
                continue
            base, quote = sym.split("/", 1)
            same = [
                s
                for s, mk in markets.items()
                if mk.get("type") == market_type
                and mk.get("base") == base
                and mk.get("quote") == quote
            ]
            linear = [s for s in same if markets[s].get("settle") == quote]
            pick = linear if len(linear) == 1 else same
            if len(pick) == 1:
                out.append(pick[0])
            elif len(pick) > 1:
                raise InvalidInputError(
                    f"{self.label} has several {market_type} markets for {sym}: "
                    f"{', '.join(sorted(pick))}; name one"
                )
            else:
                raise SymbolNotFoundError(
                    f"{self.label} has no {market_type} market for {sym}"
                    + (f" (it has {sym} as {m.get('type')})" if m is not None else "")
                )
        return out

    def list_markets(
        self,
        market_type: str | None = None,
        quote: str | None = None,
        *,
        active_only: bool = True,
    ) -> list[dict[str, Any]]:
        """Markets with their metadata (symbol, base, quote, settle, type, active,
        contract_size, tick_size, amount_step, min_amount, listed_at), sorted by symbol."""
        if market_type is not None and market_type not in MARKET_TYPES:
            raise InvalidInputError(
                f"market type {market_type!r} is not one of {', '.join(MARKET_TYPES)}"
            )
        rows = []
        for sym, m in sorted(self.markets().items()):
            if market_type is not None and m.get("type") != market_type:
                continue
            if quote is not None and str(m.get("quote") or "").upper() != quote.upper():
                continue
            if active_only and m.get("active") is False:
                continue
            rows.append({"symbol": sym, **self._market_fields(m)})
        return rows

    def _market_fields(self, m: dict[str, Any]) -> dict[str, Any]:
        precision = m.get("precision") or {}
        limits = (m.get("limits") or {}).get("amount") or {}
        listed = m.get("created")
        return {
            "base": m.get("base"),
            "quote": m.get("quote"),
            "settle": m.get("settle"),
            "market_type": m.get("type"),
            "is_active": m.get("active"),
            "is_linear": m.get("linear"),
            "contract_size": _float(m.get("contractSize")),
            "tick_size": self._step(precision.get("price")),
            "amount_step": self._step(precision.get("amount")),
            "min_amount": _float(limits.get("min")),
            "listed_at": _dt(int(listed)).isoformat() if isinstance(listed, int) else None,
            "expires_at": _dt(int(m["expiry"])).isoformat()
            if isinstance(m.get("expiry"), int)
            else None,
        }

    def _step(self, value: Any) -> float | None:
        """A precision as a step: ccxt gives a tick size, or a number of decimals."""
        v = _float(value)
        if v is None:
            return None
        mode = getattr(self.exchange, "precisionMode", ccxt.TICK_SIZE)
        if mode == ccxt.TICK_SIZE:
            return v
        if mode == ccxt.DECIMAL_PLACES:
            return 10.0 ** (-v)
        return None

    def symbol_info(self, market: dict[str, Any]) -> dict[str, Any]:
        """What the symbols dataset stores: crypto, traded around the clock (24/7), priced
        in the quote currency, and the market's own fields as extra columns."""
        kind = {"spot": "spot", "swap": "perpetual", "future": "future", "option": "option"}
        fields = self._market_fields(market)
        fields.pop("is_active")
        name = (
            f"{market.get('base')}/{market.get('quote')} "
            f"{kind.get(str(market.get('type')), str(market.get('type')))} on {self.label}"
        )
        info: dict[str, Any] = {
            "name": name,
            "asset_class": "crypto",
            "exchange": self.exchange.id,
            "currency": market.get("quote"),
            "timezone": "UTC",
            "calendar": "24/7",
            **fields,
        }
        return {k: v for k, v in info.items() if v is not None}

    def _page_limit(self, symbol: str, method: str, default: int | None) -> int | None:
        try:
            value = self.exchange.feature_value(symbol, method, "limit", None)
        except Exception:  # an exchange without features for that market type
            value = None
        return int(value) if isinstance(value, int | float) and value > 0 else default

    # -- bars ------------------------------------------------------------------------------

    def fetch_bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> FetchResult:
        start = _require_aware("start", start)
        end = _require_aware("end", end)
        tf = normalize_timeframe(timeframe)
        if tf not in self.capabilities.timeframes:
            raise UnsupportedRequestError(self._no_timeframe(tf))
        if end <= start:
            raise UnsupportedRequestError(f"empty range: start {start} is not before end {end}")
        n0 = self.requests
        market = self.market(symbol)
        step = int(bar_length(tf).total_seconds() * 1000)
        limit = self._page_limit(symbol, "fetchOHLCV", _DEFAULT_PAGE) or _DEFAULT_PAGE
        lo, hi = _ms(start), _ms(end)
        notes: list[str] = []
        rows: dict[int, list[Any]] = {}
        extras: dict[int, tuple[Any, ...]] = {}
        key = (symbol, tf)
        since = lo
        if key in self._listing:
            first = self._listing[key]
            if first is None or first >= hi:
                notes.append(f"{symbol} has no {tf} candle before {_dt(hi):%Y-%m-%d %H:%M}")
                return self._bars_result(market, rows, extras, n0, notes)
            since = max(since, first)
        first_page = True
        while since < hi:
            page = self._call(
                f"{symbol} {tf} candles from {_dt(since):%Y-%m-%d %H:%M}",
                lambda s=since: self.exchange.fetch_ohlcv(symbol, tf, s, limit),
            )
            raw = self.exchange.last_json_response
            page = [r for r in page or [] if r and r[0] is not None and int(r[0]) >= since]
            if not page:
                if key not in self._listing and self._probe_listing(symbol, tf) is None:
                    notes.append(f"{symbol} has no {tf} candle at all")
                    break
                first = self._listing.get(key)
                if first is not None and first > since:
                    since = first  # nothing before the listing
                else:
                    since += limit * step  # a gap the exchange really has
                first_page = False
                continue
            if first_page and int(page[0][0]) > since and key not in self._listing:
                # a hole at the start: learn the listing so earlier ranges cost nothing
                self._probe_listing(symbol, tf)
            first_page = False
            extras.update(_kline_extras(self.exchange.id, raw, market))
            for r in page:
                t = int(r[0])
                if t < hi:
                    rows[t] = r
            following = int(page[-1][0]) + step
            if following >= hi or following > _ms(self.now()):
                break  # the range's end, or the candle still forming
            if following <= since:
                raise SourceError(
                    f"{self.label} ignored the start time of {symbol} {tf} candles "
                    f"({_dt(since):%Y-%m-%d %H:%M}); cannot page forward"
                )
            since = following
        return self._bars_result(market, rows, extras, n0, notes, step)

    def _probe_listing(self, symbol: str, tf: str) -> int | None:
        """The open time of the first candle the exchange has (``since=0``), cached."""
        key = (symbol, tf)
        if key not in self._listing:
            page = self._call(
                f"the first {symbol} {tf} candle",
                lambda: self.exchange.fetch_ohlcv(symbol, tf, 0, 1),
            )
            firsts = [int(r[0]) for r in page or [] if r and r[0] is not None]
            self._listing[key] = min(firsts) if firsts else None
        return self._listing[key]

    def listing(self, symbol: str, timeframe: str = "1d") -> datetime | None:
        """When ``symbol``'s first candle opened (None: it has none)."""
        self.market(symbol)
        first = self._probe_listing(symbol, normalize_timeframe(timeframe))
        return None if first is None else _dt(first)

    def _bars_result(
        self,
        market: dict[str, Any],
        rows: dict[int, list[Any]],
        extras: dict[int, tuple[Any, ...]],
        n0: int,
        notes: list[str],
        step: int = 0,
    ) -> FetchResult:
        ts = sorted(rows)
        fetched_at = _ms(self.now())

        def col(i: int) -> pa.Array:
            return pa.array([_float(rows[t][i]) for t in ts], pa.float64())

        columns: dict[str, pa.Array] = {
            "ts": _ts_array(ts),
            "open": col(1),
            "high": col(2),
            "low": col(3),
            "close": col(4),
            "volume": col(5),
            "is_final": pa.array([t + step <= fetched_at for t in ts], pa.bool_()),
        }
        fields = list(SOURCE_BARS_SCHEMA)
        if extras and ts:
            for i, name in enumerate(KLINE_EXTRAS):
                typ = pa.int64() if name == "trade_count" else pa.float64()
                columns[name] = pa.array([extras.get(t, (None,) * 4)[i] for t in ts], typ)
                fields.append(pa.field(name, typ))
        bars = pa.table(columns, schema=pa.schema(fields))
        return FetchResult(
            bars=bars,
            symbol_info=self.symbol_info(market),
            api_calls=self.requests - n0,
            notes=notes,
        )

    def _no_timeframe(self, tf: str) -> str:
        if not self.exchange.has.get("fetchOHLCV"):
            return f"{self.label} has no candles (has['fetchOHLCV'] is false)"
        return (
            f"{self.label} has no {tf} candles; it serves "
            f"{', '.join(self.capabilities.timeframes) or 'none of ours'}"
        )

    # -- trades ----------------------------------------------------------------------------

    def fetch_ticks(self, symbol: str, start: datetime, end: datetime) -> FetchResult:
        """Trades with ``start <= ts < end``: ts, seq, price, size, side, venue, trade_id."""
        start = _require_aware("start", start)
        end = _require_aware("end", end)
        if not self.exchange.has.get("fetchTrades"):
            raise UnsupportedRequestError(f"{self.label} has no trades (has['fetchTrades'])")
        n0 = self.requests
        market = self.market(symbol)
        lo, hi = _ms(start), _ms(end)
        binance = self.exchange.id in _BINANCE
        limit = _BINANCE_TRADES_LIMIT if binance else self._page_limit(symbol, "fetchTrades", None)
        window = _BINANCE_TRADES_WINDOW_MS if binance else None
        trades: dict[str, dict[str, Any]] = {}
        cursor, from_id = lo, None
        while True:
            what = f"{symbol} trades from {_dt(cursor):%Y-%m-%d %H:%M:%S}"
            if from_id is not None:
                page = self._call(
                    what,
                    lambda f=from_id: self.exchange.fetch_trades(
                        symbol, None, limit, {"fromId": f}
                    ),
                )
            else:
                params = {"until": min(cursor + window, hi) - 1} if window else {}
                page = self._call(
                    what,
                    lambda c=cursor, p=params: self.exchange.fetch_trades(symbol, c, limit, p),
                )
            page = [t for t in page or [] if t.get("timestamp") is not None]
            fresh = 0
            for t in page:
                k = _trade_key(t)
                if k not in trades and lo <= int(t["timestamp"]) < hi:
                    trades[k] = t
                    fresh += 1
            last = max((int(t["timestamp"]) for t in page), default=None)
            full = limit is not None and len(page) >= limit
            if last is not None and last >= hi:
                break
            if from_id is not None:  # walking by id
                if not full:
                    break  # caught up with the present
                from_id = _next_id(page)
                continue
            if window is not None:  # Binance: one time window at a time
                if full and _next_id(page) is not None:
                    from_id = _next_id(page)  # a busy window: walk it by id
                    continue
                cursor = min(cursor + window, hi)
                if cursor >= hi:
                    break
                continue
            if not page or (not fresh and last is not None and last <= cursor):
                break
            cursor = last if fresh else cursor + 1
        return self._ticks_result(market, list(trades.values()), n0)

    def _ticks_result(
        self, market: dict[str, Any], trades: list[dict[str, Any]], n0: int
    ) -> FetchResult:
        trades.sort(key=lambda t: (int(t["timestamp"]), _seq(t)))
        venue = self.exchange.id
        ticks = pa.table(
            {
                "ts": _ts_array(int(t["timestamp"]) for t in trades),
                "seq": pa.array([_seq(t) for t in trades], pa.int64()),
                "price": pa.array([_float(t.get("price")) for t in trades], pa.float64()),
                "size": pa.array([_float(t.get("amount")) for t in trades], pa.float64()),
                "side": pa.array([t.get("side") for t in trades], pa.string()),
                "venue": pa.array([venue] * len(trades), pa.string()),
                "trade_id": pa.array(
                    [None if t.get("id") is None else str(t["id"]) for t in trades], pa.string()
                ),
            }
        )
        return FetchResult(
            bars=SOURCE_BARS_SCHEMA.empty_table(),
            ticks=ticks,
            symbol_info=self.symbol_info(market),
            api_calls=self.requests - n0,
        )

    # -- funding ---------------------------------------------------------------------------

    def fetch_funding(self, symbol: str, start: datetime, end: datetime) -> FetchResult:
        """Funding payments with ``start <= ts < end``: ts, rate, interval_hours (the time
        since the previous payment), and ``mark_price`` when the exchange sends it."""
        start = _require_aware("start", start)
        end = _require_aware("end", end)
        if not self.exchange.has.get("fetchFundingRateHistory"):
            raise UnsupportedRequestError(
                f"{self.label} has no funding rate history (has['fetchFundingRateHistory'])"
            )
        n0 = self.requests
        market = self.market(symbol)
        if not market.get("swap"):
            raise UnsupportedRequestError(
                f"{symbol} is a {market.get('type')} market on {self.label}: funding is paid on "
                f"perpetual swaps, such as {market.get('base')}/{market.get('quote')}:"
                f"{market.get('quote')}"
            )
        lo, hi = _ms(start), _ms(end)
        binance = self.exchange.id in _BINANCE
        limit = 1000 if binance else None
        paid: dict[int, dict[str, Any]] = {}
        cursor = lo - _FUNDING_LOOKBACK_MS
        while cursor < hi:
            params = {"until": hi - 1} if binance else {}
            page = self._call(
                f"{symbol} funding rates from {_dt(max(cursor, lo)):%Y-%m-%d}",
                lambda c=cursor, p=params: self.exchange.fetch_funding_rate_history(
                    symbol, c, limit, p
                ),
            )
            page = [
                p
                for p in page or []
                if p.get("timestamp") is not None and int(p["timestamp"]) >= cursor
            ]
            if not page:
                break
            for p in page:
                if int(p["timestamp"]) < hi:
                    paid[int(p["timestamp"])] = p
            last = max(int(p["timestamp"]) for p in page)
            if last + 1 >= hi or (limit is not None and len(page) < limit):
                break
            cursor = last + 1
        return self._funding_result(market, paid, lo, n0)

    def _funding_result(
        self, market: dict[str, Any], paid: dict[int, dict[str, Any]], lo: int, n0: int
    ) -> FetchResult:
        ts = sorted(paid)
        hours: list[float | None] = []
        for i, t in enumerate(ts):
            if i > 0:
                gap = t - ts[i - 1]
            elif len(ts) > 1:
                gap = ts[1] - t
            else:
                gap = None
            # payments land a few ms after the hour: round to the minute
            hours.append(None if gap is None else round(gap / 60_000) / 60)
        keep = [i for i, t in enumerate(ts) if t >= lo]
        marks = [_float((paid[ts[i]].get("info") or {}).get("markPrice")) for i in keep]
        columns: dict[str, pa.Array] = {
            "ts": _ts_array(ts[i] for i in keep),
            "rate": pa.array([_float(paid[ts[i]].get("fundingRate")) for i in keep], pa.float64()),
            "interval_hours": pa.array([hours[i] for i in keep], pa.float64()),
        }
        fields = list(SOURCE_FUNDING_SCHEMA)
        if any(m is not None for m in marks):
            columns["mark_price"] = pa.array(marks, pa.float64())
            fields.append(pa.field("mark_price", pa.float64()))
        funding = pa.table(columns, schema=pa.schema(fields))
        return FetchResult(
            bars=SOURCE_BARS_SCHEMA.empty_table(),
            funding=funding,
            symbol_info=self.symbol_info(market),
            api_calls=self.requests - n0,
        )


# --- helpers ------------------------------------------------------------------------------


def _build_exchange(exchange_id: str, config: dict[str, Any] | None) -> Any:
    eid = exchange_id.strip().lower()
    if eid not in ccxt.exchanges:
        close = difflib.get_close_matches(eid, ccxt.exchanges, n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise InvalidInputError(
            f"ccxt knows no exchange {exchange_id!r}{hint} ({len(ccxt.exchanges)} exchanges, "
            "e.g. binance, bybit, okx, kraken, coinbase)"
        )
    return getattr(ccxt, eid)({"enableRateLimit": True, **(config or {})})


def _capabilities(exchange: Any) -> Capabilities:
    """What the exchange object says it serves, in this project's timeframes."""
    has = exchange.has or {}
    served = exchange.timeframes or {}
    bars = (
        {
            tf: TimeframeLimits(max_span=length * BARS_PER_REQUEST)
            for tf, length in TIMEFRAMES.items()
            if tf in served
        }
        if has.get("fetchOHLCV")
        else {}
    )
    return Capabilities(
        timeframes=bars,
        needs_network=True,
        ticks=TimeframeLimits(max_span=TRADES_SPAN) if has.get("fetchTrades") else None,
        funding=TimeframeLimits(max_span=FUNDING_SPAN)
        if has.get("fetchFundingRateHistory")
        else None,
    )


def _kline_extras(exchange_id: str, raw: Any, market: dict[str, Any]) -> dict[int, tuple[Any, ...]]:
    """Binance's kline fields beyond OHLCV, by open time: (quote_volume, trade_count,
    taker_buy_volume, taker_buy_quote_volume). Inverse contracts count volume in contracts
    of ``contractSize`` quote units (ccxt's volume is then the base volume, field 7)."""
    if exchange_id not in _BINANCE or not isinstance(raw, list):
        return {}
    out: dict[int, tuple[Any, ...]] = {}
    inverse = bool(market.get("inverse"))
    size = _float(market.get("contractSize")) or 1.0
    for row in raw:
        if not isinstance(row, list) or len(row) < 11:
            continue
        try:
            t = int(row[0])
            trades = int(row[8])
        except (TypeError, ValueError):
            continue
        if inverse:
            quote, buy_quote = _float(row[5]), _float(row[9])
            out[t] = (
                None if quote is None else quote * size,
                trades,
                _float(row[10]),
                None if buy_quote is None else buy_quote * size,
            )
        else:
            out[t] = (_float(row[7]), trades, _float(row[9]), _float(row[10]))
    return out


def _trade_key(trade: dict[str, Any]) -> str:
    if trade.get("id") is not None:
        return str(trade["id"])
    return "|".join(str(trade.get(k)) for k in ("timestamp", "price", "amount", "side"))


def _seq(trade: dict[str, Any]) -> int:
    """The trade id when it is a number, else a stable 63-bit hash of the trade's key."""
    tid = trade.get("id")
    if tid is not None and str(tid).isdigit() and int(tid) < 2**63:
        return int(tid)
    digest = hashlib.blake2b(_trade_key(trade).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def _next_id(page: list[dict[str, Any]]) -> int | None:
    ids = [int(t["id"]) for t in page if t.get("id") is not None and str(t["id"]).isdigit()]
    return max(ids) + 1 if ids else None
