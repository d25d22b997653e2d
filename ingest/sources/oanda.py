"""OANDA's v20 REST API: candles with bid, ask and mid, for account holders.

``GET /v3/instruments/{instrument}/candles`` with ``price=BAM`` and ``granularity`` mapped
from the project's timeframes (1m -> M1 ... 1w -> W). A request covers at most 5,000
candles, so a range is walked in ``from``/``to`` windows of fewer candles than that.
Prices arrive as strings and times as RFC 3339 with nanoseconds. A bar's OHLC is the mid
candle; ``bid_open`` ... ``ask_close`` keep each side; ``volume`` is OANDA's tick count;
``complete: false`` (the forming candle) lands with ``is_final = false``.

Daily and weekly candles are asked for on the forex day (``dailyAlignment=17``,
``alignmentTimezone=America/New_York``, weeks from Sunday's open) and keyed, like every
session timeframe in the lake, by their session date at 00:00 UTC: the day that ends at
17:00 New York on date D is session D.

The token comes from the ``token`` option, else the ``OANDA_TOKEN`` environment variable,
else ``token = "..."`` in ``~/.config/duckmarket/oanda.toml`` (``OANDA_CONFIG`` names
another file). ``practice=True`` (the default) uses the fxPractice host, ``False`` fxTrade.

The HTTP client is a thin ``httpx`` one: the maintained OANDA libraries (``oandapyV20``,
``v20``) wrap ``requests`` without an injectable transport or typed errors, and one
endpoint does not justify them; tests pass an ``httpx.Client`` on ``httpx.MockTransport``.

Errors: 401/403 -> :class:`OandaAuthError` (stops the run: every instrument would fail
alike); 400/404 -> :class:`~ingest.errors.SymbolNotFoundError` with OANDA's message; 429
and 5xx are retried with back-off (``Retry-After`` honoured), then
:class:`~ingest.errors.RateLimitedError` / :class:`~ingest.errors.SourceError`; a host
that cannot be reached -> :class:`~ingest.errors.SourceUnreachableError`.
"""

from __future__ import annotations

import logging
import os
import random
import time
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pyarrow as pa

from ..errors import (
    InvalidInputError,
    RateLimitedError,
    SourceError,
    SourceUnreachableError,
    SymbolNotFoundError,
    UnsupportedRequestError,
)
from ..schema import SOURCE_BARS_SCHEMA
from ..timeframes import bar_length, normalize_timeframe
from .base import Capabilities, FetchResult, Source, TimeframeLimits

__all__ = [
    "CAPABILITIES",
    "GRANULARITIES",
    "HOSTS",
    "MAX_CANDLES",
    "OandaAuthError",
    "OandaSource",
    "load_token",
    "parse_time",
]

log = logging.getLogger(__name__)

HOSTS = {"practice": "https://api-fxpractice.oanda.com", "live": "https://api-fxtrade.oanda.com"}
MAX_CANDLES = 5000
#: candles per request: under the cap, with room for the daily alignment's shift
_PAGE = 4800

#: canonical timeframe -> v20 granularity
GRANULARITIES: dict[str, str] = {
    "1m": "M1",
    "2m": "M2",
    "5m": "M5",
    "15m": "M15",
    "30m": "M30",
    "1h": "H1",
    "4h": "H4",
    "1d": "D",
    "1w": "W",
}

CAPABILITIES = Capabilities(
    timeframes={tf: TimeframeLimits(max_span=_PAGE * bar_length(tf) * 5) for tf in GRANULARITIES},
    needs_network=True,
)

_NY = ZoneInfo("America/New_York")
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_SIDE_COLUMNS = [f"{s}_{c}" for s in ("bid", "ask") for c in ("open", "high", "low", "close")]
BARS_SCHEMA = pa.schema([*SOURCE_BARS_SCHEMA, *(pa.field(c, pa.float64()) for c in _SIDE_COLUMNS)])


class OandaAuthError(SourceUnreachableError):
    """OANDA refused the token (401/403): no instrument can be fetched with it, so the run
    stops at once, as for an unreachable host."""


def load_token(environ: dict[str, str] | None = None) -> str | None:
    """``OANDA_TOKEN``, else ``token`` in the config file (``OANDA_CONFIG`` or
    ``~/.config/duckmarket/oanda.toml``), else None."""
    env = os.environ if environ is None else environ
    if env.get("OANDA_TOKEN"):
        return env["OANDA_TOKEN"].strip()
    path = Path(env.get("OANDA_CONFIG") or Path.home() / ".config" / "duckmarket" / "oanda.toml")
    if path.is_file():
        with open(path, "rb") as f:
            token = tomllib.load(f).get("token")
        return str(token).strip() if token else None
    return None


def parse_time(value: str) -> datetime:
    """``2024-05-01T00:00:00.000000000Z`` (nanoseconds) -> an aware UTC datetime (us)."""
    s = value.rstrip("Z")
    if "." in s:
        head, frac = s.split(".", 1)
        s = f"{head}.{frac[:6].ljust(6, '0')}"
    return datetime.fromisoformat(s).replace(tzinfo=UTC)


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _require_aware(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def _session_key(open_utc: datetime, tf: str) -> datetime:
    """A forex-day candle's session date at 00:00 UTC (daily: the day ending at 17:00 New
    York; weekly: the Monday of the week)."""
    session = (open_utc.astimezone(_NY) + timedelta(hours=7)).date()
    if tf == "1w":
        session += timedelta(days=(7 - session.weekday()) % 7)  # Sunday open -> Monday
    return datetime(session.year, session.month, session.day, tzinfo=UTC)


class OandaSource(Source):
    """OANDA v20 candles (an account's API token required)."""

    name = "oanda"
    capabilities = CAPABILITIES

    def __init__(
        self,
        token: str | None = None,
        *,
        practice: bool = True,
        client: httpx.Client | None = None,
        host: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] | datetime | None = None,
        max_retries: int = 4,
        base_delay: float = 1.0,
        timeout: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        token = token or load_token()
        if not token:
            raise InvalidInputError(
                'no OANDA token: set OANDA_TOKEN or put token = "..." in '
                "~/.config/duckmarket/oanda.toml (or the file OANDA_CONFIG names)"
            )
        self.host = (host or HOSTS["practice" if practice else "live"]).rstrip("/")
        self.client = client or httpx.Client(timeout=timeout)
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept-Datetime-Format": "RFC3339",
        }
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

    def get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        """One JSON answer, with the retries and the error mapping of the module doc."""
        url = f"{self.host}{path}"
        attempt = 0
        while True:
            self.requests += 1
            retry_after = None
            try:
                resp = self.client.get(url, params=params, headers=self._headers)
            except (httpx.ConnectError, httpx.TimeoutException, httpx.NetworkError) as exc:
                if attempt >= self.max_retries:
                    raise SourceUnreachableError(
                        f"oanda: cannot reach {self.host} ({exc})"
                    ) from exc
                why = str(exc)
            else:
                code = resp.status_code
                if code < 300:
                    return resp.json()
                message = _message(resp)
                if code in (401, 403):
                    raise OandaAuthError(
                        f"oanda: the token was refused (HTTP {code}: {message}); check "
                        f"OANDA_TOKEN and that it belongs to the "
                        f"{'practice' if 'fxpractice' in self.host else 'live'} host"
                    )
                if code in (400, 404):
                    raise SymbolNotFoundError(f"oanda: HTTP {code} for {path}: {message}")
                if code not in _RETRY_STATUS:
                    raise SourceError(f"oanda: HTTP {code} for {path}: {message}")
                if attempt >= self.max_retries:
                    if code == 429:
                        raise RateLimitedError(
                            f"oanda: rate limited on {path} after {attempt + 1} attempts"
                        )
                    raise SourceError(
                        f"oanda: HTTP {code} for {path} after {attempt + 1} attempts: {message}"
                    )
                why = f"HTTP {code}"
                try:
                    retry_after = float(resp.headers.get("Retry-After", ""))
                except ValueError:
                    retry_after = None
            delay = self.base_delay * (2**attempt) * (1.0 + 0.5 * self._rng.random())
            delay = max(delay, retry_after or 0.0)
            log.warning("oanda %s: %s; retrying in %.1fs", path, why, delay)
            self._sleep(delay)
            attempt += 1

    def fetch_bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> FetchResult:
        tf = normalize_timeframe(timeframe)
        if tf not in GRANULARITIES:
            raise UnsupportedRequestError(
                f"oanda does not serve timeframe {timeframe!r}; use one of "
                f"{', '.join(GRANULARITIES)}"
            )
        start = _require_aware("start", start)
        end = _require_aware("end", end)
        n0 = self.requests
        session = tf in ("1d", "1w")
        step = bar_length(tf)
        # session candles open up to a day before their session date
        lo = start - timedelta(days=1) if session else start
        hi = min(end, self._utcnow())
        params = {"price": "BAM", "granularity": GRANULARITIES[tf]}
        if session:
            params |= {"dailyAlignment": "17", "alignmentTimezone": "America/New_York"}
            if tf == "1w":
                params["weeklyAlignment"] = "Sunday"
        rows: dict[datetime, dict[str, Any]] = {}
        path = f"/v3/instruments/{symbol}/candles"
        while lo < hi:
            to = min(lo + _PAGE * step, hi)
            answer = self.get(path, params | {"from": _rfc3339(lo), "to": _rfc3339(to)})
            for c in answer.get("candles") or []:
                ts = parse_time(c["time"])
                key = _session_key(ts, tf) if session else ts
                if start <= key < end:
                    rows[key] = c
            lo = to
        bars = _bars(rows)
        return FetchResult(
            bars=bars,
            symbol_info=_info(symbol),
            api_calls=self.requests - n0,
        )


def _message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200]
    return str(body.get("errorMessage") or body)[:200]


def _bars(rows: dict[datetime, dict[str, Any]]) -> pa.Table:
    keys = sorted(rows)
    cols: dict[str, list[Any]] = {f.name: [] for f in BARS_SCHEMA}
    for k in keys:
        c = rows[k]
        cols["ts"].append(k)
        for name, short in (("open", "o"), ("high", "h"), ("low", "l"), ("close", "c")):
            cols[name].append(float(c["mid"][short]))
            for side in ("bid", "ask"):
                cols[f"{side}_{name}"].append(float(c[side][short]) if side in c else None)
        cols["volume"].append(float(c.get("volume", 0)))
        cols["is_final"].append(bool(c.get("complete", True)))
    return pa.table(cols, schema=BARS_SCHEMA)


def _info(symbol: str) -> dict[str, Any]:
    quote = symbol.partition("_")[2]
    return {
        "name": symbol,
        "asset_class": "fx",
        "exchange": "OANDA",
        "currency": quote or None,
        "timezone": "America/New_York",
        # the forex calendar: sessions from 17:00 to 17:00 New York, Sunday to Friday
        # (warehouse/calendars.py writes it)
        "calendar": "FX",
    }
