"""A Binance that answers ccxt offline, through ccxt's own HTTP layer.

:class:`FakeBinance` is a ``requests`` transport adapter mounted on the ccxt exchange's
session, so every request runs ccxt's whole path (signing the URL, throttling, ``fetch``,
JSON parsing, ``handle_errors``, the parsers) and only the socket is replaced. It answers
as Binance does:

* ``exchangeInfo`` (spot, USD-M, COIN-M) from recorded bodies in ``fixtures/ccxt/``
  (trimmed to a few markets, fields as Binance sends them);
* klines: 12-field rows with numbers as strings, from the listing on (a ``startTime``
  before it answers from the listing), none in a maintenance gap (a ``startTime`` inside
  one answers from its end), the candle still forming included; recorded pages are served
  verbatim;
* aggregate trades (``a p q f l T m M``), by ``startTime``/``endTime`` (a window of at
  most one hour) or by ``fromId``; the 1m klines of a minute with trades are built from
  them, as Binance builds its candles;
* funding rates every eight hours (a few ms after the hour) from the contract's onboard;
* errors as Binance sends them: ``{"code":-1121,"msg":"Invalid symbol."}`` with HTTP 400,
  HTTP 429 with ``Retry-After``, 503, or a connection that cannot be opened.

Time is a fake: :attr:`now_ms` (the exchange's clock) and :meth:`clock`/:meth:`sleep`
(what the source paces itself with: sleeping advances the clock).
"""

from __future__ import annotations

import json
import math
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import ccxt
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from ingest.sources.ccxt import CcxtSource

FIXTURES = Path(__file__).parent / "fixtures" / "ccxt"
MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
STEPS = {
    "1m": MINUTE,
    "3m": 3 * MINUTE,
    "5m": 5 * MINUTE,
    "15m": 15 * MINUTE,
    "30m": 30 * MINUTE,
    "1h": HOUR,
    "4h": 4 * HOUR,
    "1d": DAY,
    "1w": 7 * DAY,
}
REASONS = {200: "OK", 400: "Bad Request", 418: "I'm a teapot", 429: "Too Many Requests"}
REASONS |= {500: "Internal Server Error", 503: "Service Unavailable"}

#: first candle of each market (ms): BTCUSDT spot opened on 2017-08-17 04:00 UTC
LISTINGS = {
    ("api", "BTCUSDT"): 1502942400000,
    ("api", "ETHUSDT"): 1502942400000,
    ("api", "ETHBTC"): 1500004800000,
    ("api", "LUNAUSDT"): 1597046400000,
    ("fapi", "BTCUSDT"): 1568102400000,
    ("fapi", "ETHUSDT"): 1574251200000,
    ("fapi", "BTCUSDT_240628"): 1711699200000,
    ("dapi", "BTCUSD_PERP"): 1597042800000,
}
BASE_PRICE = {"BTC": 42_000.0, "ETH": 2_300.0, "LUNA": 0.0001}


def ms(dt: datetime) -> int:
    return int(dt.astimezone(UTC).timestamp() * 1000)


def fmt(x: float) -> str:
    return f"{x:.8f}"


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    api: str  # api (spot), fapi, dapi
    endpoint: str  # klines, aggTrades, fundingRate, exchangeInfo
    params: dict[str, str]
    at: float  # the fake clock when it was sent

    def int(self, name: str) -> int | None:
        v = self.params.get(name)
        return None if v is None else int(v)


class FakeBinance(BaseAdapter):
    def __init__(self, now: datetime) -> None:
        super().__init__()
        self.now_ms = ms(now)
        self.t = 0.0  # the source's clock, seconds
        self.sleeps: list[float] = []
        self.requests: list[Request] = []
        #: answers given instead of the next requests, in order (errors)
        self.queued: list[Answer | BaseException] = []
        #: (api, symbol) -> [(start ms, end ms)] without any candle
        self.gaps: dict[tuple[str, str], list[tuple[int, int]]] = {}
        #: (api, symbol) answered with -1121 (a market ccxt lists, the exchange refuses)
        self.invalid: set[tuple[str, str]] = set()
        #: (api, symbol, interval) -> recorded kline rows served verbatim
        self.recorded: dict[tuple[str, str, str], list[list[Any]]] = {}
        #: (api, symbol) -> aggregate trades, sorted by id
        self.trades: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.markets = {
            "api": json.loads((FIXTURES / "binance_spot_exchange_info.json").read_text()),
            "fapi": json.loads((FIXTURES / "binance_usdm_exchange_info.json").read_text()),
            "dapi": json.loads((FIXTURES / "binance_coinm_exchange_info.json").read_text()),
        }

    # -- the source's time -----------------------------------------------------------------

    def clock(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ms / 1000, UTC)

    def source(self, **options: Any) -> CcxtSource:
        """A ccxt source on a ccxt ``binance`` object whose socket is this fake."""
        exchange = ccxt.binance()
        exchange.session.mount("https://", self)
        return CcxtSource(exchange, sleep=self.sleep, clock=self.clock, now=self.now, **options)

    def calls(self, endpoint: str) -> list[Request]:
        return [r for r in self.requests if r.endpoint == endpoint]

    # -- transport -------------------------------------------------------------------------

    def close(self) -> None:
        pass

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = urlparse(request.url or "")
        parts = url.path.strip("/").split("/")  # api/v3/klines, fapi/v1/klines
        api, endpoint = parts[0], parts[-1]
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.requests.append(Request(api, endpoint, params, self.t))
        if self.queued:
            answer = self.queued.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return self._response(request, answer)
        return self._response(request, self._route(api, endpoint, params))

    def _response(self, request: requests.PreparedRequest, answer: Answer) -> requests.Response:
        r = requests.Response()
        r.status_code = answer.status
        body = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
        r._content = body.encode()
        r.headers = CaseInsensitiveDict(
            {"Content-Type": "application/json;charset=UTF-8", **answer.headers}
        )
        r.reason = REASONS.get(answer.status, "")
        r.url = request.url or ""
        r.request = request
        r.encoding = "utf-8"
        return r

    def _route(self, api: str, endpoint: str, params: dict[str, str]) -> Answer:
        if endpoint == "exchangeInfo":
            return Answer(200, self.markets[api])
        symbol = params.get("symbol", "")
        known = {s["symbol"] for s in self.markets.get(api, {}).get("symbols", [])}
        if symbol not in known or (api, symbol) in self.invalid:
            return Answer(400, {"code": -1121, "msg": "Invalid symbol."})
        if endpoint == "klines":
            return Answer(200, self._klines(api, symbol, params))
        if endpoint == "aggTrades":
            return self._agg_trades(api, symbol, params)
        if endpoint == "fundingRate":
            return Answer(200, self._funding(api, symbol, params))
        return Answer(404, {"code": -5000, "msg": f"Path /{api}/{endpoint}, Method GET is invalid"})

    # -- klines ----------------------------------------------------------------------------

    def _klines(self, api: str, symbol: str, params: dict[str, str]) -> list[list[Any]]:
        interval = params["interval"]
        step = STEPS[interval]
        limit = min(int(params.get("limit", 500)), 1500 if api != "api" else 1000)
        start, end = params.get("startTime"), params.get("endTime")
        recorded = self.recorded.get((api, symbol, interval))
        if recorded is not None:
            rows = [
                r
                for r in recorded
                if (start is None or r[0] >= int(start)) and (end is None or r[0] <= int(end))
            ]
            return rows[:limit]
        first = -(-LISTINGS[(api, symbol)] // step) * step
        last = (self.now_ms // step) * step  # the candle forming now
        t = last - (limit - 1) * step if start is None else -(-int(start) // step) * step
        t = max(t, first)
        out: list[list[Any]] = []
        while t <= last and len(out) < limit and (end is None or t <= int(end)):
            gap = self._gap(api, symbol, t)
            if gap is not None:
                t = -(-gap // step) * step
                continue
            out.append(self.kline(api, symbol, interval, t))
            t += step
        return out

    def _gap(self, api: str, symbol: str, t: int) -> int | None:
        for a, b in self.gaps.get((api, symbol), []):
            if a <= t < b:
                return b
        return None

    def kline(self, api: str, symbol: str, interval: str, t: int) -> list[Any]:
        """The candle opening at ``t``: from the trades of that minute when there are
        (1m), else a smooth deterministic path; the forming one is partial."""
        step = STEPS[interval]
        if interval == "1m":
            minute = [x for x in self.trades.get((api, symbol), []) if t <= x["T"] < t + step]
            if minute:
                return _kline_from_trades(t, step, minute)
        base = next((p for b, p in BASE_PRICE.items() if symbol.startswith(b)), 100.0)
        frac = min(1.0, (self.now_ms - t) / step)

        def path(x: int) -> float:
            h = x / HOUR
            return base * (1 + 0.02 * math.sin(h / 17.0) + 0.005 * math.sin(h * 1.3))

        o = path(t)
        c = path(int(t + step * frac))
        hi, lo = max(o, c) * 1.0007, min(o, c) * 0.9993
        n = t // step
        v = (5.0 + n % 11) * frac
        qv = v * (o + c) / 2
        return [
            t,
            fmt(o),
            fmt(hi),
            fmt(lo),
            fmt(c),
            fmt(v),
            t + step - 1,
            fmt(qv),
            int((30 + n % 17) * frac),
            fmt(v * 0.46),
            fmt(qv * 0.46),
            "0",
        ]

    # -- trades ----------------------------------------------------------------------------

    def add_trades(self, api: str, symbol: str, trades: list[tuple[int, float, float, bool]]):
        """Aggregate trades (time ms, price, quantity, buyer is maker), ids from 26129."""
        rows = self.trades.setdefault((api, symbol), [])
        next_id = rows[-1]["a"] + 1 if rows else 26129
        first = rows[-1]["l"] + 1 if rows else 27781
        for i, (t, p, q, m) in enumerate(trades):
            fills = 1 + i % 3
            row = {"a": next_id + i, "p": fmt(p), "q": fmt(q), "f": first, "l": first + fills - 1}
            row |= {"T": t, "m": m}
            if api == "api":
                row["M"] = True
            rows.append(row)
            first += fills

    def _agg_trades(self, api: str, symbol: str, params: dict[str, str]) -> Answer:
        rows = self.trades.get((api, symbol), [])
        limit = min(int(params.get("limit", 500)), 1000)
        start, end, from_id = params.get("startTime"), params.get("endTime"), params.get("fromId")
        if from_id is not None and (start is not None or end is not None):
            return Answer(
                400, {"code": -1128, "msg": "Combination of optional parameters invalid."}
            )
        if start is not None and end is not None and int(end) - int(start) > HOUR:
            return Answer(
                400, {"code": -1127, "msg": "More than 1 hours between startTime and endTime."}
            )
        if from_id is not None:
            out = [r for r in rows if r["a"] >= int(from_id)][:limit]
        elif start is not None:
            hi = int(end) if end is not None else int(start) + HOUR
            out = [r for r in rows if int(start) <= r["T"] <= hi][:limit]
        else:
            out = rows[-limit:]
        return Answer(200, out)

    # -- funding ---------------------------------------------------------------------------

    def funding_at(self, symbol: str, t: int) -> dict[str, str | int]:
        n = t // (8 * HOUR)
        rate = 0.0001 + 0.00005 * math.sin(n / 3.0)
        mark = BASE_PRICE["BTC" if symbol.startswith("BTC") else "ETH"] * (1 + 0.01 * (n % 5))
        return {
            "symbol": symbol,
            "fundingTime": t + n % 7,  # Binance stamps payments a few ms after the hour
            "fundingRate": f"{rate:.8f}",
            "markPrice": f"{mark:.8f}",
        }

    def _funding(self, api: str, symbol: str, params: dict[str, str]) -> list[dict[str, Any]]:
        limit = min(int(params.get("limit", 100)), 1000)
        period = 8 * HOUR
        first = -(-LISTINGS[(api, symbol)] // period) * period
        last = (self.now_ms // period) * period
        start = params.get("startTime")
        end = params.get("endTime")
        t = last - (limit - 1) * period if start is None else -(-int(start) // period) * period
        t = max(t, first)
        out = []
        while t <= last and len(out) < limit:
            row = self.funding_at(symbol, t)
            if start is not None and int(row["fundingTime"]) < int(start):
                t += period
                continue
            if end is not None and int(row["fundingTime"]) > int(end):
                break
            out.append(row)
            t += period
        return out

    # -- failures --------------------------------------------------------------------------

    def rate_limited(self, retry_after: int = 1) -> Answer:
        return Answer(
            429,
            {
                "code": -1003,
                "msg": "Too many requests; current limit is 6000 request weight "
                "per 1 MINUTE. Please use the websocket for live updates to avoid polling the API.",
            },
            {"Retry-After": str(retry_after)},
        )

    @staticmethod
    def unreachable() -> BaseException:
        cause = socket.gaierror(-3, "Temporary failure in name resolution")
        exc = requests.exceptions.ConnectionError(
            "HTTPSConnectionPool(host='api.binance.com', port=443): Max retries exceeded "
            "(Caused by NameResolutionError(\"Failed to resolve 'api.binance.com' ([Errno -3] "
            'Temporary failure in name resolution)"))'
        )
        exc.__cause__ = cause
        return exc


def _kline_from_trades(t: int, step: int, trades: list[dict[str, Any]]) -> list[Any]:
    """A 1m candle exactly as Binance builds it from the minute's trades."""
    prices = [float(x["p"]) for x in trades]
    qty = [float(x["q"]) for x in trades]
    taker_buy = [q for q, x in zip(qty, trades, strict=True) if not x["m"]]
    taker_buy_quote = [q * p for q, p, x in zip(qty, prices, trades, strict=True) if not x["m"]]
    return [
        t,
        trades[0]["p"],
        fmt(max(prices)),
        fmt(min(prices)),
        trades[-1]["p"],
        fmt(sum(qty)),
        t + step - 1,
        fmt(sum(q * p for q, p in zip(qty, prices, strict=True))),
        sum(x["l"] - x["f"] + 1 for x in trades),
        fmt(sum(taker_buy)),
        fmt(sum(taker_buy_quote)),
        "0",
    ]


def trades_between(start_ms: int, n: int, every_ms: int, base: float = 42_000.0) -> list[tuple]:
    """``n`` trades, one every ``every_ms`` from ``start_ms``: (T, price, qty, is maker)."""
    out = []
    for i in range(n):
        price = round(base * (1 + 0.001 * math.sin(i / 37.0)), 2)
        out.append((start_ms + i * every_ms, price, round(0.001 + (i % 9) * 0.0137, 5), i % 3 == 0))
    return out
