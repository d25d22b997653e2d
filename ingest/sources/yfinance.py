"""Yahoo Finance through the ``yfinance`` package, delivered to the lake *as traded*.

Yahoo's ``Close`` (and Open/High/Low, Volume and the Dividends column) are split-adjusted
as of fetch time; ``Adj Close`` is split- and dividend-adjusted. This adapter undoes the
split adjustment with the symbol's full split history (fetched once per symbol per
instance), so that a bar stored today and a bar stored after a later split agree:

* cumulative split factor ``C(t)`` = product of split ratios whose ex-date is after the
  bar's exchange-local session date;
* as-traded price = Yahoo price x ``C(t)``; as-traded volume = Yahoo volume / ``C(t)``;
* as-traded dividend cash = Yahoo dividend x ``C(ex_date)``.

Yahoo's ``Adj Close`` is kept unchanged in the ``adj_close`` column as a cross-check.

All network access goes through two injectable callables (``history_fn`` and
``actions_fn``); tests replace them with functions returning real-shaped frames.
"""

from __future__ import annotations

import functools
import logging
import random
import socket
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

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
from ..schema import SOURCE_ACTIONS_SCHEMA, SOURCE_BARS_SCHEMA, TS_TYPE
from ..timeframes import SESSION_TIMEFRAMES, bar_length, normalize_timeframe
from .base import Capabilities, FetchResult, Source, TimeframeLimits

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ACTIONS_SCHEMA",
    "BARS_SCHEMA",
    "CAPABILITIES",
    "YFINANCE_INTERVALS",
    "YFinanceSource",
    "actions_table",
    "chunk_range",
    "split_factors",
    "unadjust_splits",
]

log = logging.getLogger(__name__)


#: canonical timeframe -> yfinance ``interval``
YFINANCE_INTERVALS: dict[str, str] = {
    "1m": "1m",
    "2m": "2m",
    "5m": "5m",
    "15m": "15m",
    "30m": "30m",
    "1h": "60m",
    "90m": "90m",
    "1d": "1d",
    "1w": "1wk",
}

_60D = TimeframeLimits(lookback=timedelta(days=60), max_span=timedelta(days=60))
CAPABILITIES = Capabilities(
    timeframes={
        "1m": TimeframeLimits(lookback=timedelta(days=30), max_span=timedelta(days=7)),
        "2m": _60D,
        "5m": _60D,
        "15m": _60D,
        "30m": _60D,
        "90m": _60D,
        "1h": TimeframeLimits(lookback=timedelta(days=730), max_span=timedelta(days=730)),
        "1d": TimeframeLimits(),
        "1w": TimeframeLimits(),
    },
    split_adjusted=True,
    needs_network=True,
    trailing_refetch=timedelta(days=3),
    has_actions=True,
)

#: columns of the bars table this module (and csv.py) produce
BARS_SCHEMA = SOURCE_BARS_SCHEMA.append(pa.field("adj_close", pa.float64()))

ACTIONS_SCHEMA = SOURCE_ACTIONS_SCHEMA

#: a request may start this much before the lookback limit (clocks of caller and source
#: differ by the time the planner took)
_LOOKBACK_GRACE = timedelta(minutes=5)

_PRICE_COLUMNS = ("Open", "High", "Low", "Close")

HistoryFn = Callable[[str, str, datetime, datetime], "pd.DataFrame"]
ActionsFn = Callable[[str], "pd.DataFrame"]


# --- split un-adjustment (shared with csv.py) -------------------------------------------


def split_factors(
    bar_dates: np.ndarray | Sequence[date],
    split_dates: np.ndarray | Sequence[date],
    split_ratios: np.ndarray | Sequence[float],
) -> np.ndarray:
    """Cumulative split factor ``C`` for each bar date: the product of the ratios of all
    splits whose ex-date is strictly after the bar's (exchange-local) session date.

    Dates may be ``datetime.date`` objects or ``datetime64[D]`` values. Ratios are new
    shares per old (4.0 = 4-for-1, 0.1 = 1-for-10); zero, NaN and 1.0 ratios are ignored.
    """
    bd = np.asarray(bar_dates, dtype="datetime64[D]")
    sd = np.asarray(split_dates, dtype="datetime64[D]")
    r = np.asarray(split_ratios, dtype=np.float64)
    keep = np.isfinite(r) & (r > 0) & (r != 1.0)
    sd, r = sd[keep], r[keep]
    if sd.size == 0:
        return np.ones(bd.shape, dtype=np.float64)
    order = np.argsort(sd, kind="stable")
    sd, r = sd[order], r[order]
    # suffix[i] = product of r[i:], suffix[n] = 1
    suffix = np.append(np.cumprod(r[::-1])[::-1], 1.0)
    # first split whose ex-date is > bar date
    idx = np.searchsorted(sd, bd, side="right")
    return suffix[idx]


def unadjust_splits(
    bars: pa.Table,
    bar_dates: np.ndarray | Sequence[date],
    split_dates: np.ndarray | Sequence[date],
    split_ratios: np.ndarray | Sequence[float],
) -> pa.Table:
    """Turn split-adjusted OHLCV into as-traded OHLCV.

    ``bars`` has float columns open, high, low, close, volume (other columns, such as
    ``adj_close``, are left untouched); ``bar_dates`` gives each row's exchange-local
    session date. Prices are multiplied by ``C`` and volume divided by ``C`` (see
    :func:`split_factors`). The one place this conversion is done.
    """
    factor = split_factors(bar_dates, split_dates, split_ratios)
    if bars.num_rows != factor.size:
        raise ValueError("bar_dates must have one date per row of bars")
    if np.all(factor == 1.0):
        return bars
    out = bars
    for col in ("open", "high", "low", "close"):
        if col in out.column_names:
            vals = out.column(col).to_numpy(zero_copy_only=False).astype(np.float64)
            i = out.column_names.index(col)
            out = out.set_column(i, col, pa.array(vals * factor, pa.float64()))
    if "volume" in out.column_names:
        vals = out.column("volume").to_numpy(zero_copy_only=False).astype(np.float64)
        i = out.column_names.index("volume")
        out = out.set_column(i, "volume", pa.array(vals / factor, pa.float64()))
    return out


def actions_table(
    dividend_dates: np.ndarray | Sequence[date],
    dividend_amounts: np.ndarray | Sequence[float],
    split_dates: np.ndarray | Sequence[date],
    split_ratios: np.ndarray | Sequence[float],
    currency: str | None,
    *,
    dividends_split_adjusted: bool = True,
) -> pa.Table:
    """Build the actions table (sorted by ex_date). Dividend amounts that are
    split-adjusted (Yahoo's) are converted to as-traded cash: amount x ``C(ex_date)``."""
    dd = np.asarray(dividend_dates, dtype="datetime64[D]")
    da = np.asarray(dividend_amounts, dtype=np.float64)
    sd = np.asarray(split_dates, dtype="datetime64[D]")
    sr = np.asarray(split_ratios, dtype=np.float64)
    dkeep = np.isfinite(da) & (da != 0)
    dd, da = dd[dkeep], da[dkeep]
    skeep = np.isfinite(sr) & (sr > 0) & (sr != 1.0)
    sd, sr = sd[skeep], sr[skeep]
    if dividends_split_adjusted and dd.size:
        da = da * split_factors(dd, sd, sr)
    n_div, n_split = dd.size, sd.size
    ex = np.concatenate([dd, sd])
    order = np.argsort(ex, kind="stable")
    ex_dates = pa.array(ex[order], pa.date32())
    types = np.array(["dividend"] * n_div + ["split"] * n_split, dtype=object)[order]
    ratio = np.concatenate([np.full(n_div, np.nan), sr])[order]
    cash = np.concatenate([da, np.full(n_split, np.nan)])[order]
    return pa.table(
        {
            "ex_date": ex_dates,
            "action_type": pa.array(list(types), pa.string()),
            "split_ratio": pa.array(ratio, pa.float64(), from_pandas=True),
            "cash_amount": pa.array(cash, pa.float64(), from_pandas=True),
            "currency": pa.array([currency] * (n_div + n_split), pa.string()),
        },
        schema=ACTIONS_SCHEMA,
    )


# --- ranges -----------------------------------------------------------------------------


def _require_aware(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def _limits(timeframe: str) -> TimeframeLimits:
    tf = normalize_timeframe(timeframe)
    if tf not in CAPABILITIES.timeframes:
        raise UnsupportedRequestError(
            f"yfinance does not serve timeframe {timeframe!r}; "
            f"use one of {', '.join(CAPABILITIES.timeframes)}"
        )
    return CAPABILITIES.timeframes[tf]


def chunk_range(timeframe: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Split ``[start, end)`` into consecutive pieces no wider than the timeframe's
    ``max_span`` (one piece when unlimited). Lookback is not checked here: a range
    beyond it cannot be served at all, chunked or not."""
    limits = _limits(timeframe)
    start = _require_aware("start", start)
    end = _require_aware("end", end)
    if end <= start:
        return []
    if limits.max_span is None:
        return [(start, end)]
    out: list[tuple[datetime, datetime]] = []
    lo = start
    while lo < end:
        hi = min(lo + limits.max_span, end)
        out.append((lo, hi))
        lo = hi
    return out


# --- exchange sessions (to tell a legit empty answer from a bad symbol) ------------------


@functools.lru_cache(maxsize=1)
def _xnys() -> Any:
    import warnings

    import exchange_calendars as xcals

    with warnings.catch_warnings():
        # exchange_calendars' own pandas deprecations, nothing the user can act on
        warnings.simplefilter("ignore")
        return xcals.get_calendar("XNYS", start="1980-01-01")


def has_expected_session(timeframe: str, start: datetime, end: datetime) -> bool:
    """Whether ``[start, end)`` contains at least one XNYS session (for session timeframes:
    a session date in range; intraday: trading minutes overlapping the range). Outside the
    calendar's bounds, weekdays count as sessions."""
    import pandas as pd

    cal = _xnys()
    first = cal.first_session.date()
    last = cal.last_session.date()
    tf = normalize_timeframe(timeframe)
    lo_d = start.date() - timedelta(days=1)
    hi_d = end.date() + timedelta(days=1)
    if lo_d < first or hi_d > last:
        d = start.date()
        while datetime(d.year, d.month, d.day, tzinfo=UTC) < end:
            if d.weekday() < 5:
                return True
            d += timedelta(days=1)
        return False
    sessions = cal.sessions_in_range(pd.Timestamp(lo_d), pd.Timestamp(hi_d))
    for s in sessions:
        if tf in SESSION_TIMEFRAMES:
            ts = datetime(s.year, s.month, s.day, tzinfo=UTC)
            hit = start <= ts < end
        else:
            hit = cal.session_open(s) < end and cal.session_close(s) > start
        if hit:
            return True
    return False


# --- the default (real) boundary --------------------------------------------------------


def _yf_history(symbol: str, interval: str, start: datetime, end: datetime) -> pd.DataFrame:
    """The one real yfinance price call (never used by tests)."""
    import inspect

    import yfinance as yf

    ticker = yf.Ticker(symbol)
    if interval in ("1d", "1wk"):
        # dates are interpreted in the exchange timezone: [start date, end date)
        s: Any = start.date()
        e: Any = end.date() if end.time() == datetime.min.time() else end.date() + timedelta(1)
    else:
        s, e = start, end
    kwargs: dict[str, Any] = {
        "start": s,
        "end": e,
        "interval": interval,
        "auto_adjust": False,
        "actions": True,
        "prepost": False,
    }
    debug = getattr(getattr(yf, "config", None), "debug", None)
    restore: bool | None = None
    if debug is not None and hasattr(debug, "hide_exceptions"):
        restore = debug.hide_exceptions
        debug.hide_exceptions = False
    elif "raise_errors" in inspect.signature(ticker.history).parameters:
        kwargs["raise_errors"] = True
    try:
        frame = ticker.history(**kwargs)
    except Exception as exc:
        if _is_no_data_error(exc):
            import pandas as pd

            frame = pd.DataFrame()
        else:
            raise
    finally:
        if restore is not None:
            debug.hide_exceptions = restore
    # metadata already fetched with the prices: read it without another request
    ph = getattr(ticker, "_price_history", None)
    meta = getattr(ph, "_history_metadata", None) if ph is not None else None
    if isinstance(meta, dict):
        frame.attrs["history_metadata"] = {
            k: meta.get(k)
            for k in (
                "currency",
                "exchangeName",
                "fullExchangeName",
                "instrumentType",
                "exchangeTimezoneName",
                "longName",
                "shortName",
            )
        }
    return frame


def _yf_actions(symbol: str) -> pd.DataFrame:
    import yfinance as yf

    return yf.Ticker(symbol).actions


def _is_no_data_error(exc: BaseException) -> bool:
    name = type(exc).__name__
    if name in ("YFPricesMissingError", "YFTzMissingError", "YFTickerMissingError"):
        return True
    msg = str(exc).lower()
    return "no price data found" in msg or "possibly delisted" in msg


def _is_rate_limit_error(exc: BaseException) -> bool:
    try:
        from yfinance.exceptions import YFRateLimitError
    except ImportError:  # older yfinance: fall back on the message
        YFRateLimitError = None
    if YFRateLimitError is not None and isinstance(exc, YFRateLimitError):
        return True
    msg = str(exc).lower()
    return "too many requests" in msg or "rate limit" in msg or " 429" in f" {msg}"


_UNREACHABLE = (
    "could not resolve host",
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname",
    "getaddrinfo failed",
    "failed to resolve",
    "connection refused",
    "failed to connect",
    "network is unreachable",
    "no route to host",
)


def _is_unreachable_error(exc: BaseException) -> bool:
    """No name resolution or no connection at all: retrying cannot help in this run."""
    if isinstance(exc, socket.gaierror | ConnectionRefusedError):
        return True
    msg = str(exc).lower()
    return any(s in msg for s in _UNREACHABLE)


def _is_server_error(exc: BaseException) -> bool:
    """An HTTP 5xx from Yahoo: transient, retried."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int):
        return 500 <= status < 600
    msg = str(exc).lower()
    return any(
        s in msg
        for s in (
            "internal server error",
            "bad gateway",
            "service unavailable",
            "gateway timeout",
            " 500 ",
            " 502 ",
            " 503 ",
            " 504 ",
        )
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _is_network_error(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError | OSError):
        return True
    mod = type(exc).__module__ or ""
    return mod.startswith(("requests", "urllib3", "curl_cffi", "http.client", "socket"))


# --- the source -------------------------------------------------------------------------

_MIC = {
    "NMS": "XNAS",
    "NGM": "XNAS",
    "NCM": "XNAS",
    "NAS": "XNAS",
    "NYQ": "XNYS",
    "NYS": "XNYS",
    "PCX": "ARCX",
    "ASE": "XASE",
    "BTS": "BATS",
}
_ASSET_CLASS = {
    "EQUITY": "equity",
    "ETF": "etf",
    "MUTUALFUND": "etf",
    "INDEX": "index",
    "CRYPTOCURRENCY": "crypto",
    "CURRENCY": "fx",
    "FUTURE": "future",
}


class YFinanceSource(Source):
    """Yahoo Finance bars and corporate actions, un-adjusted to as-traded values.

    ``history_fn(symbol, interval, start, end)`` returns ``Ticker.history(...)``'s frame
    (``interval`` is yfinance's spelling: ``60m``, ``1wk``; start/end are UTC datetimes);
    ``actions_fn(symbol)`` returns the full ``Ticker.actions`` frame. Both default to the
    real yfinance calls, imported lazily.
    """

    name = "yfinance"
    capabilities = CAPABILITIES

    def __init__(
        self,
        history_fn: HistoryFn | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] | datetime | None = None,
        max_retries: int = 4,
        base_delay: float = 1.0,
        *,
        actions_fn: ActionsFn | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._history_fn: HistoryFn = history_fn or _yf_history
        self._actions_fn: ActionsFn = actions_fn or _yf_actions
        self._sleep = sleep
        self._now = now
        self.max_retries = max_retries
        self.base_delay = base_delay
        self._rng = rng or random.Random()
        #: symbol -> (split dates, ratios, dividend dates, amounts) from the full history
        self._action_cache: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

    # -- helpers --

    def now(self) -> datetime:
        if self._now is None:
            return datetime.now(UTC)
        value = self._now() if callable(self._now) else self._now
        return _require_aware("now", value)

    def _call(self, what: str, fn: Callable[[], Any], counter: list[int]) -> Any:
        """Call ``fn``, retrying with exponential backoff and jitter on rate limits and
        server errors (5xx) only. A host that cannot be reached (no name resolution,
        connection refused) fails at once with :class:`SourceUnreachableError`; other
        network errors fail this request. Every attempt counts as an API call, and the
        error raised carries the count."""
        attempt = 0
        while True:
            counter[0] += 1
            try:
                return fn()
            except (SourceError, InvalidInputError) as exc:
                exc.attempts = counter[0]  # type: ignore[union-attr]
                raise
            except Exception as exc:
                error = self._classify(what, exc, attempt)
                if error is not None:
                    error.attempts = counter[0]
                    raise error from exc
                delay = self.base_delay * (2**attempt) * (1.0 + 0.5 * self._rng.random())
                log.warning(
                    "yfinance %s on %s; retrying in %.1fs",
                    "rate limit" if _is_rate_limit_error(exc) else "server error",
                    what,
                    delay,
                )
                self._sleep(delay)
                attempt += 1

    def _classify(self, what: str, exc: BaseException, attempt: int) -> SourceError | None:
        """The error to raise for a failed attempt, or None to retry it."""
        if _is_unreachable_error(exc):
            return SourceUnreachableError(
                f"Yahoo Finance cannot be reached ({_first_line(exc)}): no network, or no "
                "name resolution. Nothing more is fetched in this run; what was fetched "
                "before is kept"
            )
        rate_limited = _is_rate_limit_error(exc)
        if not (rate_limited or _is_server_error(exc)):
            if _is_network_error(exc):
                return SourceError(
                    f"network error on {what}: {type(exc).__name__}: {_first_line(exc)}; "
                    "check the connection and retry"
                )
            return SourceError(f"yfinance failed on {what}: {type(exc).__name__}: {exc}")
        if attempt < self.max_retries:
            return None
        if rate_limited:
            return RateLimitedError(
                f"Yahoo Finance rate-limited {what} and still refused after "
                f"{attempt + 1} attempts; wait a few minutes (or request fewer "
                "symbols at a time) and run the command again. Ranges already "
                "fetched are kept."
            )
        return SourceError(
            f"Yahoo Finance answered {what} with a server error {attempt + 1} times "
            f"({_first_line(exc)}); try again later"
        )

    def _full_actions(
        self, symbol: str, counter: list[int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if symbol not in self._action_cache:
            frame = self._call(
                f"the actions of {symbol!r}", lambda: self._actions_fn(symbol), counter
            )
            self._action_cache[symbol] = _actions_arrays(frame)
        return self._action_cache[symbol]

    def _check_request(self, timeframe: str, start: datetime, end: datetime) -> None:
        limits = _limits(timeframe)
        if end <= start:
            raise UnsupportedRequestError(f"empty range: start {start} is not before end {end}")
        if limits.max_span is not None and end - start > limits.max_span:
            raise UnsupportedRequestError(
                f"yfinance serves at most {limits.max_span.days} days of {timeframe} bars per "
                f"request; {start:%Y-%m-%d %H:%M} -> {end:%Y-%m-%d %H:%M} is wider "
                "(split it with chunk_range)"
            )
        if limits.lookback is not None:
            oldest = self.now() - limits.lookback
            if start < oldest - _LOOKBACK_GRACE:
                raise UnsupportedRequestError(
                    f"yfinance keeps {timeframe} bars for the last {limits.lookback.days} days "
                    f"only (since {oldest:%Y-%m-%d %H:%M} UTC); {start:%Y-%m-%d %H:%M} is "
                    "older. Use a longer timeframe for older data."
                )

    # -- the interface --

    def fetch_bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> FetchResult:
        start = _require_aware("start", start)
        end = _require_aware("end", end)
        tf = normalize_timeframe(timeframe)
        self._check_request(tf, start, end)
        interval = YFINANCE_INTERVALS[tf]
        counter = [0]
        notes: list[str] = []
        frame = self._call(
            f"{symbol!r} {tf} {start:%Y-%m-%d %H:%M} -> {end:%Y-%m-%d %H:%M}",
            lambda: self._history_fn(symbol, interval, start, end),
            counter,
        )
        fetched_at = self.now()
        if frame is None or len(frame) == 0:
            return self._empty(symbol, tf, start, end, counter, notes, None)

        meta = frame.attrs.get("history_metadata") if hasattr(frame, "attrs") else None
        meta = meta if isinstance(meta, dict) else {}
        index = frame.index
        tz = getattr(index, "tz", None)
        currency = meta.get("currency")

        conv = _frame_to_arrays(frame, tf)
        ts, local_dates = conv["ts"], conv["local_dates"]

        # actions inside the frame (the split/dividend rows) and from the full history
        s_dates, s_ratios, d_dates, d_amounts = self._full_actions(symbol, counter)
        f_split = conv["splits"]
        f_div = conv["dividends"]
        fs_mask = np.isfinite(f_split) & (f_split > 0) & (f_split != 1.0)
        s_dates, s_ratios = _merge_events(s_dates, s_ratios, local_dates[fs_mask], f_split[fs_mask])
        fd_mask = np.isfinite(f_div) & (f_div != 0)
        d_dates, d_amounts = _merge_events(d_dates, d_amounts, local_dates[fd_mask], f_div[fd_mask])

        # rows without any price (e.g. an intraday dividend row) are not bars
        prices = conv["prices"]
        all_nan = np.all(np.isnan(prices), axis=1)
        ts_us = ts.astype("datetime64[us]")
        lo = np.datetime64(start.replace(tzinfo=None), "us")
        hi = np.datetime64(end.replace(tzinfo=None), "us")
        in_range = (ts_us >= lo) & (ts_us < hi)
        n_nan = int(np.count_nonzero(all_nan & in_range))
        if n_nan:
            notes.append(f"dropped {n_nan} row(s) without prices")
        keep = in_range & ~all_nan
        n_out = int(np.count_nonzero(~in_range & ~all_nan))
        if n_out:
            notes.append(f"dropped {n_out} row(s) outside the requested range")

        # is_final: the bar's period has ended at fetch time
        bar_end = _bar_ends(tf, ts_us, local_dates, tz)
        is_final = bar_end <= np.datetime64(fetched_at.replace(tzinfo=None), "us")

        bars = pa.table(
            {
                "ts": pa.array(ts_us[keep], TS_TYPE),
                "open": pa.array(prices[keep, 0], pa.float64()),
                "high": pa.array(prices[keep, 1], pa.float64()),
                "low": pa.array(prices[keep, 2], pa.float64()),
                "close": pa.array(prices[keep, 3], pa.float64()),
                "volume": pa.array(conv["volume"][keep], pa.float64()),
                "is_final": pa.array(is_final[keep], pa.bool_()),
                "adj_close": pa.array(conv["adj_close"][keep], pa.float64()),
            },
            schema=BARS_SCHEMA,
        )
        bars = unadjust_splits(bars, local_dates[keep], s_dates, s_ratios)
        if bars.num_rows == 0:
            return self._empty(symbol, tf, start, end, counter, notes, meta)
        order = np.argsort(ts_us[keep], kind="stable")
        if not np.all(order[:-1] < order[1:]):
            bars = bars.take(pa.array(order))

        # actions whose ex-date falls in the requested range (dividend cash as traded:
        # scaled with every split known, not only those in range)
        first_day = np.datetime64(start.date(), "D")
        last_ts = np.datetime64(end.replace(tzinfo=None), "us")
        d_sel = (d_dates >= first_day) & (d_dates.astype("datetime64[us]") < last_ts)
        s_sel = (s_dates >= first_day) & (s_dates.astype("datetime64[us]") < last_ts)
        cash = d_amounts[d_sel] * split_factors(d_dates[d_sel], s_dates, s_ratios)
        actions = actions_table(
            d_dates[d_sel],
            cash,
            s_dates[s_sel],
            s_ratios[s_sel],
            currency,
            dividends_split_adjusted=False,
        )

        info = _symbol_info(meta, tz)
        return FetchResult(
            bars=bars,
            actions=actions,
            symbol_info=info,
            api_calls=counter[0],
            notes=notes,
        )

    def _empty(
        self,
        symbol: str,
        tf: str,
        start: datetime,
        end: datetime,
        counter: list[int],
        notes: list[str],
        meta: dict[str, Any] | None,
    ) -> FetchResult:
        if has_expected_session(tf, start, end):
            raise SymbolNotFoundError(
                f"yfinance returned no data for {symbol!r} between {start:%Y-%m-%d %H:%M} and "
                f"{end:%Y-%m-%d %H:%M} UTC ({tf}), although the range holds at least one "
                "XNYS session: the symbol may be misspelt or delisted (check it on "
                "finance.yahoo.com; indices need a '^', e.g. ^GSPC)"
            )
        notes.append("no session in the requested range")
        return FetchResult(
            bars=BARS_SCHEMA.empty_table(),
            actions=ACTIONS_SCHEMA.empty_table(),
            symbol_info=_symbol_info(meta or {}, None) if meta else None,
            api_calls=counter[0],
            notes=notes,
        )


# --- frame conversion -------------------------------------------------------------------


def _col(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name in frame.columns:
        return frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
    return np.full(len(frame), np.nan)


def _frame_to_arrays(frame: pd.DataFrame, tf: str) -> dict[str, np.ndarray]:
    import pandas as pd

    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        index = pd.DatetimeIndex(index)
    # wall-clock (exchange-local) times, naive
    local = index.tz_localize(None) if index.tz is not None else index
    local_dates = local.normalize().to_numpy().astype("datetime64[D]")
    if tf in SESSION_TIMEFRAMES:
        ts = local_dates.astype("datetime64[us]")
    else:
        if index.tz is None:
            raise InvalidInputError("yfinance returned intraday bars without a timezone")
        ts = index.tz_convert("UTC").tz_localize(None).to_numpy().astype("datetime64[us]")
    prices = np.column_stack([_col(frame, c) for c in _PRICE_COLUMNS])
    zeros = np.zeros(len(frame))
    splits = _col(frame, "Stock Splits") if "Stock Splits" in frame.columns else zeros
    divs = _col(frame, "Dividends") if "Dividends" in frame.columns else zeros
    return {
        "ts": ts,
        "local_dates": local_dates,
        "prices": prices,
        "volume": _col(frame, "Volume"),
        "adj_close": _col(frame, "Adj Close"),
        "splits": np.nan_to_num(splits),
        "dividends": np.nan_to_num(divs),
    }


def _actions_arrays(
    frame: pd.DataFrame | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    empty_d = np.array([], dtype="datetime64[D]")
    empty_f = np.array([], dtype=np.float64)
    if frame is None or len(frame) == 0:
        return empty_d, empty_f, empty_d, empty_f
    import pandas as pd

    index = pd.DatetimeIndex(frame.index)
    local = index.tz_localize(None) if index.tz is not None else index
    dates = local.normalize().to_numpy().astype("datetime64[D]")
    splits = np.nan_to_num(_col(frame, "Stock Splits"))
    divs = np.nan_to_num(_col(frame, "Dividends"))
    sm = (splits > 0) & (splits != 1.0)
    dm = divs != 0
    return dates[sm], splits[sm], dates[dm], divs[dm]


def _merge_events(
    dates_a: np.ndarray, vals_a: np.ndarray, dates_b: np.ndarray, vals_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Union of two event lists keyed by date (the first list wins on a clash)."""
    if dates_b.size == 0:
        return dates_a, vals_a
    have = set(dates_a.tolist())
    extra = np.array([d not in have for d in dates_b.tolist()], dtype=bool)
    dates = np.concatenate([dates_a, dates_b[extra]])
    vals = np.concatenate([vals_a, vals_b[extra]])
    order = np.argsort(dates, kind="stable")
    return dates[order], vals[order]


def _bar_ends(tf: str, ts_us: np.ndarray, local_dates: np.ndarray, tz: Any) -> np.ndarray:
    """UTC (naive datetime64[us]) end of each bar's period.

    Intraday: ts + bar length. Daily: midnight after the session date in the exchange
    timezone (conservative: the bar is final once the local day is over). Weekly: the
    midnight seven days after the week's first day."""
    if tf not in SESSION_TIMEFRAMES:
        return ts_us + np.timedelta64(bar_length(tf))
    import pandas as pd

    days = 7 if tf == "1w" else 1
    next_local = pd.DatetimeIndex(local_dates.astype("datetime64[ns]") + np.timedelta64(days, "D"))
    if tz is not None:
        next_local = next_local.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
        next_local = next_local.tz_convert("UTC").tz_localize(None)
    return next_local.to_numpy().astype("datetime64[us]")


def _symbol_info(meta: dict[str, Any], tz: Any) -> dict[str, Any] | None:
    info: dict[str, Any] = {}
    if meta.get("currency"):
        info["currency"] = meta["currency"]
    name = meta.get("longName") or meta.get("shortName")
    if name:
        info["name"] = name
    exch = meta.get("exchangeName")
    if exch in _MIC:
        info["exchange"] = _MIC[exch]
        info["calendar"] = (
            "XNYS" if _MIC[exch] in ("XNAS", "XNYS", "ARCX", "XASE", "BATS") else None
        )
    klass = _ASSET_CLASS.get(str(meta.get("instrumentType") or "").upper())
    if klass:
        info["asset_class"] = klass
        if klass == "crypto":
            info["calendar"] = "24/7"
    tzname = meta.get("exchangeTimezoneName") or (str(tz) if tz is not None else None)
    if tzname:
        info["timezone"] = tzname
    return {k: v for k, v in info.items() if v is not None} or None
