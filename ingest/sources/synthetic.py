"""A deterministic synthetic market: equities on the real XNYS calendar and 24/7 crypto.

``SyntheticSource(seed, n_symbols)`` generates bars, corporate actions and symbol metadata
without the network. Every number is a pure function of ``(seed, symbol, ts)``: the value
of a bar never depends on the range it was requested with, so fetching ``[a, b)`` and then
``[b, c)`` gives exactly the rows of ``[a, c)`` (incremental ingest relies on this).

Symbols
    ``SYN000``, ``SYN001``, ... are equities (XNYS sessions, 09:30-16:00 New York, half days
    honoured); the last ~10 % of the universe (at least one when ``n_symbols >= 5``) are
    ``SYNC00/USD``, ``SYNC01/USD``, ... crypto pairs trading every minute of every UTC day
    (the slash is deliberate: it exercises path encoding). A symbol's properties depend on
    ``(seed, symbol)`` only, never on ``n_symbols``; any name matching the two patterns can
    be fetched, whether listed or not.

The model
    1. An *economic* (total-return) log close ``log E`` per session, generated once per
       symbol over the whole epoch (2000-01-01 .. 2030-12-31) and cached.
       Equities come in *families* of 2-4 consecutive symbols (see :meth:`families`) that
       share a common stochastic trend ``c`` (a random walk with drift and a very weak pull
       back to its trend line, which keeps 30-year prices in a sane range)::

           log E_i = a_i + b_i * c + u_i,    u_i stationary AR(1), phi in [0.90, 0.98]

       so members are cointegrated. Crypto is a single trend, ``log E = a + c``.
    2. Corporate actions (equities only): ~70 % pay quarterly dividends (0.2-1.5 % of the
       price a quarter, in cents) and ~45 % may split every 3-7 years (2, 3 or 4-for-1
       when the price is high, 1-for-5 or 1-for-10 when it is low). The as-traded close is
       ``A = E * Dfac / S`` where ``S`` is the product of split ratios with ex-date <= t and
       ``Dfac`` the product over dividends with ex-date <= t of ``1 - D_e / A_prev(e)``
       (``A_prev(e)`` the as-traded close of the session before e). Hence a total-return
       backward adjustment of the as-traded closes is exactly proportional to ``E``
       (:meth:`SyntheticSource.economic_close` exposes ``E`` for that check).
    3. 1m bars: each session is a Brownian bridge (in log space) from the previous close
       plus a small overnight gap to the session's close, so the last 1m close *is* the 1d
       close. Family members share 60 % of their minute shocks. Minute open = previous
       minute close; high/low widen max/min(open, close) by a small positive noise;
       volumes are lognormal around a per-symbol dollar volume with a U-shaped profile.
    4. 1d bars: open and close are the session's first 1m open and last 1m close; high,
       low and volume are drawn cheaply (they satisfy the OHLC invariants but are not the
       aggregate of the 1m bars).
    5. Data faults (so quality checks have something to find), all deterministic: about
       1 in 200,000 1m bars and 1 in 5,000 1d bars are bad prints (close multiplied or
       divided by 1.5-3; the high/low follows the spike, except for about one in three
       where it is left slightly on the wrong side of the close), and about 0.05 % of 1m
       bars are missing. The last minute of a session is never faulty, and no daily bad
       print falls on the session before an ex-date. :meth:`SyntheticSource.faults` lists
       them for a range.

Per-minute and per-day randomness comes from a counter-based hash (splitmix64) of the
symbol's key and the bar's timestamp, so arrays are generated vectorised for any range.
"""

from __future__ import annotations

import functools
import hashlib
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from ..errors import InvalidInputError, SymbolNotFoundError, UnsupportedRequestError
from ..schema import SOURCE_ACTIONS_SCHEMA, SOURCE_BARS_SCHEMA, TS_TYPE
from ..timeframes import normalize_timeframe
from .base import Capabilities, FetchResult, Source, TimeframeLimits
from .randomness import normals, splitmix64, stable_key, uniform32_pair, uniform53

__all__ = ["EPOCH_END", "EPOCH_START", "SyntheticSource"]

#: First instant the synthetic market covers (inclusive), UTC.
EPOCH_START = datetime(2000, 1, 1, tzinfo=UTC)
#: Last instant the synthetic market covers (exclusive), UTC.
EPOCH_END = datetime(2031, 1, 1, tzinfo=UTC)

_NS_PER_MIN = 60_000_000_000
_NS_PER_DAY = 86_400_000_000_000
_EQUITY_RE = re.compile(r"SYN(\d{3})")
_CRYPTO_RE = re.compile(r"SYNC(\d{2})/USD")
_MAX_EQUITIES = 1000
_MAX_CRYPTO = 100

# fault rates
_P_MISSING_1M = 5e-4
_P_BAD_1M = 1 / 200_000
_P_BAD_1D = 1 / 5_000
# share of a family member's minute shocks that is common to the family
_FAMILY_RHO = 0.6

# hash streams (any distinct constants)
_S_Z, _S_HILO, _S_FAULT, _S_FAULT2, _S_FZ = 11, 13, 14, 15, 21
_S_D_HILO, _S_D_VOL, _S_D_GAP, _S_D_FAULT, _S_D_FAULT2 = 31, 32, 33, 34, 35

_ACTIONS_SCHEMA = SOURCE_ACTIONS_SCHEMA
_BARS_SCHEMA = SOURCE_BARS_SCHEMA


def _ar1(phi: float, eps: np.ndarray) -> np.ndarray:
    """x_0 = eps_0, x_k = phi * x_{k-1} + eps_k."""
    out = np.empty(len(eps))
    x = 0.0
    for i, e in enumerate(eps.tolist()):
        x = phi * x + e
        out[i] = x
    return out


# --- calendars --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Grid:
    """Sessions of one calendar over the epoch (int64 arrays, one entry per session)."""

    day: np.ndarray  # session date as days since 1970-01-01
    opens: np.ndarray  # first minute's open, ns since the Unix epoch (UTC)
    closes: np.ndarray  # end of the last minute, ns
    nmin: np.ndarray  # minutes in the session

    @property
    def day_ns(self) -> np.ndarray:
        return self.day * _NS_PER_DAY


@functools.cache
def _xnys_grid() -> _Grid:
    import exchange_calendars as xcals

    with warnings.catch_warnings():
        # exchange_calendars trips a pandas 3 deprecation warning while it builds itself
        warnings.filterwarnings("ignore", message="Series.values returning")
        cal = xcals.get_calendar("XNYS", start="2000-01-01", end="2030-12-31")
    day = np.asarray(cal.sessions.values).astype("datetime64[D]").astype(np.int64)
    opens = cal.opens.dt.tz_convert(None).to_numpy().astype("datetime64[ns]").astype(np.int64)
    closes = cal.closes.dt.tz_convert(None).to_numpy().astype("datetime64[ns]").astype(np.int64)
    return _Grid(day, opens, closes, (closes - opens) // _NS_PER_MIN)


@functools.cache
def _daily_grid() -> _Grid:
    first = (EPOCH_START - datetime(1970, 1, 1, tzinfo=UTC)).days
    last = (EPOCH_END - datetime(1970, 1, 1, tzinfo=UTC)).days
    day = np.arange(first, last, dtype=np.int64)
    opens = day * _NS_PER_DAY
    return _Grid(day, opens, opens + _NS_PER_DAY, np.full(len(day), 1440, dtype=np.int64))


# --- per-symbol latent state ------------------------------------------------------------


@dataclass(frozen=True)
class _Action:
    session: int
    kind: Literal["split", "dividend"]
    ratio: float | None
    cash: float | None


@dataclass(frozen=True)
class _Latent:
    symbol: str
    crypto: bool
    grid: _Grid
    sym_key: int
    fam_key: int | None
    log_e: np.ndarray  # economic log close per session
    log_open_e: np.ndarray  # economic log open per session
    dfac: np.ndarray  # cumulative dividend factor per session
    split: np.ndarray  # cumulative split product per session
    close: np.ndarray  # as-traded close per session
    open: np.ndarray  # as-traded open per session
    sigma_d: float  # daily log volatility
    sigma_min: float  # intraday per-minute bridge volatility
    dollar_vol_min: float  # dollar volume per minute
    actions: tuple[_Action, ...]
    bad_daily: np.ndarray  # bool per session


@dataclass(frozen=True)
class _MinuteGrid:
    """The minutes of sessions k0..k1-1 as a (session, minute) grid, padded to the longest."""

    k0: int
    k1: int
    nmin: np.ndarray
    col: np.ndarray
    valid: np.ndarray
    ts: np.ndarray
    counter: np.ndarray
    in_range: np.ndarray


@dataclass(frozen=True)
class _Common:
    log_c: np.ndarray  # common trend per session, index 0 = the day before the epoch
    sigma_d: float


def _common_trend(
    rng: np.random.Generator, n: int, sigma_ann: float, mu_ann: float, periods: int
) -> _Common:
    sigma_d = sigma_ann / np.sqrt(periods)
    mu_d = mu_ann / periods
    kappa = 1.0 / (periods * 8.0)  # pull back to the trend line, half-life ~5.5 years
    eps = np.concatenate([[0.0], sigma_d * rng.standard_normal(n)])
    x = _ar1(1.0 - kappa, eps)
    return _Common(mu_d * np.arange(n + 1) + x, sigma_d)


class SyntheticSource(Source):
    """Deterministic synthetic bars and corporate actions (see the module docstring)."""

    name = "synthetic"
    capabilities = Capabilities(
        timeframes={
            "1m": TimeframeLimits(lookback=None, max_span=None),
            "1d": TimeframeLimits(lookback=None, max_span=None),
        },
        split_adjusted=False,
        needs_network=False,
        trailing_refetch=timedelta(0),
        has_actions=True,
        ticks=TimeframeLimits(lookback=None, max_span=timedelta(days=7)),
    )

    def __init__(self, seed: int = 42, n_symbols: int = 50, revision: int = 0) -> None:
        if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
            raise InvalidInputError(f"revision must be a non-negative integer, got {revision!r}")
        #: a vendor's later edition of the same history: with revision k > 0, about one bar
        #: in 50 comes back changed (volume up k %, close moved half way to the high), as
        #: vendors revise consolidated volume and late prints (see duckmarket update)
        self.revision = revision
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise InvalidInputError(f"seed must be an integer, got {seed!r}")
        if not isinstance(n_symbols, int) or n_symbols < 0:
            raise InvalidInputError(f"n_symbols must be a non-negative integer, got {n_symbols!r}")
        n_crypto = max(1, round(n_symbols * 0.1)) if n_symbols >= 5 else 0
        n_equity = n_symbols - n_crypto
        if n_equity > _MAX_EQUITIES or n_crypto > _MAX_CRYPTO:
            raise InvalidInputError(
                f"n_symbols={n_symbols} is too many: the synthetic market has at most "
                f"{_MAX_EQUITIES} equities and {_MAX_CRYPTO} crypto pairs"
            )
        self.seed = seed
        self.n_symbols = n_symbols
        self._symbols = [f"SYN{i:03d}" for i in range(n_equity)] + [
            f"SYNC{i:02d}/USD" for i in range(n_crypto)
        ]
        self._seed_key = seed % (1 << 64)
        sizes = np.random.default_rng([self._seed_key, 0xFA]).integers(2, 5, size=_MAX_EQUITIES)
        self._family_ends = np.cumsum(sizes)
        self._latent: dict[str, _Latent] = {}
        self._commons: dict[int, _Common] = {}

    # --- universe -----------------------------------------------------------------------

    def list_symbols(self) -> list[str]:
        return list(self._symbols)

    def families(self) -> list[list[str]]:
        """Cointegrated families among the listed equities (2-4 consecutive symbols each).

        A family cut short by ``n_symbols`` keeps its listed members; one left with a
        single listed member is omitted.
        """
        groups: dict[int, list[str]] = {}
        for s in self._symbols:
            m = _EQUITY_RE.fullmatch(s)
            if m:
                groups.setdefault(self._family_of(int(m.group(1))), []).append(s)
        return [g for _, g in sorted(groups.items()) if len(g) >= 2]

    def _family_of(self, index: int) -> int:
        return int(np.searchsorted(self._family_ends, index, side="right"))

    def symbol_info(self, symbol: str) -> dict[str, Any]:
        crypto = self._parse(symbol)[0]
        if crypto:
            return {
                "name": f"Synthetic Coin {symbol[4:6]} / US Dollar",
                "asset_class": "crypto",
                "exchange": "SYNX",
                "currency": "USD",
                "timezone": "UTC",
                "calendar": "24/7",
            }
        return {
            "name": f"Synthetic Equity {symbol[3:]}",
            "asset_class": "equity",
            "exchange": "XNYS",
            "currency": "USD",
            "timezone": "America/New_York",
            "calendar": "XNYS",
        }

    def generate_universe(
        self, timeframe: str, start: datetime, end: datetime
    ) -> Iterator[tuple[str, FetchResult]]:
        """Yield ``(symbol, fetch_bars(symbol, ...))`` for every listed symbol."""
        for s in self._symbols:
            yield s, self.fetch_bars(s, timeframe, start, end)

    # --- fetching -----------------------------------------------------------------------

    def fetch_bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> FetchResult:
        tf = self._timeframe(timeframe)
        start_ns, end_ns = self._range(start, end)
        lat = self._get_latent(symbol)
        if tf == "1m":
            cols = self._minutes(lat, start_ns, end_ns)
        else:
            cols = self._days(lat, start_ns, end_ns)
        if self.revision:
            cols = self._revise(cols)
        n = len(cols["ts"])
        bars = pa.Table.from_arrays(
            [
                pa.array(cols["ts"] // 1000, type=TS_TYPE),
                pa.array(cols["open"], type=pa.float64()),
                pa.array(cols["high"], type=pa.float64()),
                pa.array(cols["low"], type=pa.float64()),
                pa.array(cols["close"], type=pa.float64()),
                pa.array(cols["volume"], type=pa.float64()),
                pa.array(np.ones(n, dtype=bool), type=pa.bool_()),
            ],
            schema=_BARS_SCHEMA,
        )
        return FetchResult(
            bars=bars,
            actions=self._actions_table(lat, start_ns, end_ns),
            symbol_info=self.symbol_info(symbol),
            api_calls=1,
        )

    def _revise(self, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """This revision's changes to some bars (deterministic in the bar's time)."""
        x = (np.asarray(cols["ts"]) // 60_000_000_000).astype(np.uint64)
        x = x + np.full_like(x, 0x9E3779B97F4A7C15) * np.uint64(self.revision)  # splitmix64
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
        hit = x % np.uint64(50) == 0
        if not hit.any():
            return cols
        out = dict(cols)
        out["volume"] = np.where(
            hit, np.round(cols["volume"] * (1 + 0.01 * self.revision)), cols["volume"]
        )
        out["close"] = np.where(
            hit, cols["close"] + 0.5 * (cols["high"] - cols["close"]), cols["close"]
        )
        return out

    def fetch_ticks(self, symbol: str, start: datetime, end: datetime) -> FetchResult:
        """Trades whose 1m aggregation is exactly this source's 1m bars (first price the
        open, last the close, extremes the high and low, sizes summing to the volume)."""
        from .ticks import ticks_from_bars

        start_ns, end_ns = self._range(start, end)
        minute_start = start - timedelta(microseconds=(start_ns // 1000) % 60_000_000)
        bars = self.fetch_bars(symbol, "1m", minute_start, end).bars
        key = int.from_bytes(hashlib.sha256(f"{self.seed}:{symbol}:ticks".encode()).digest()[:8])
        ticks = ticks_from_bars(bars, key)
        us = ticks.column("ts").cast(pa.int64()).to_numpy()
        keep = (us >= start_ns // 1000) & (us < end_ns // 1000)
        return FetchResult(
            bars=bars.slice(0, 0),
            ticks=ticks.filter(pa.array(keep)),
            symbol_info=self.symbol_info(symbol),
            api_calls=1,
        )

    def economic_close(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> pa.Table:
        """The economic (total-return) close ``E`` behind the as-traded bars: (ts, close).

        For every bar without a fault, ``as-traded close = E * Dfac / S``; total-return
        backward adjustment of the as-traded closes is proportional to ``E``. Rows cover
        every minute (1m, missing bars included) or session (1d) in ``[start, end)``.
        """
        tf = self._timeframe(timeframe)
        start_ns, end_ns = self._range(start, end)
        lat = self._get_latent(symbol)
        if tf == "1m":
            cols = self._minutes(lat, start_ns, end_ns, economic=True)
        else:
            k0, k1 = self._day_span(lat, start_ns, end_ns)
            cols = {"ts": lat.grid.day_ns[k0:k1], "close": np.exp(lat.log_e[k0:k1])}
        return pa.table(
            {
                "ts": pa.array(cols["ts"] // 1000, type=TS_TYPE),
                "close": pa.array(cols["close"], type=pa.float64()),
            }
        )

    def faults(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> dict[str, list[datetime]]:
        """The designed faults in ``[start, end)``: ``bad_print`` and ``missing`` bar times."""
        tf = self._timeframe(timeframe)
        start_ns, end_ns = self._range(start, end)
        lat = self._get_latent(symbol)
        if tf == "1m":
            m = self._minute_grid(lat, start_ns, end_ns)
            if m is None:
                bad = missing = np.empty(0, dtype=np.int64)
            else:
                missing_mask, bad_mask = self._minute_faults(lat, m)
                bad = m.ts[bad_mask & m.in_range]
                missing = m.ts[missing_mask & m.in_range]
        else:
            k0, k1 = self._day_span(lat, start_ns, end_ns)
            bad = lat.grid.day_ns[k0:k1][lat.bad_daily[k0:k1]]
            missing = np.empty(0, dtype=np.int64)

        def conv(a: np.ndarray) -> list[datetime]:
            return [datetime.fromtimestamp(int(v) // 10**9, tz=UTC) for v in a]

        return {"bad_print": conv(bad), "missing": conv(missing)}

    # --- validation ---------------------------------------------------------------------

    def _timeframe(self, timeframe: str) -> str:
        supported = ", ".join(self.capabilities.timeframes)
        try:
            tf = normalize_timeframe(timeframe)
        except (InvalidInputError, AttributeError):
            tf = None
        if tf is None or not self.capabilities.supports(tf):
            raise UnsupportedRequestError(
                f"the synthetic source has no {timeframe!r} bars; use one of {supported} "
                "(other timeframes are resampled from 1m in the warehouse)"
            )
        return tf

    @staticmethod
    def _range(start: datetime, end: datetime) -> tuple[int, int]:
        for label, v in (("start", start), ("end", end)):
            if not isinstance(v, datetime):
                raise InvalidInputError(f"{label} must be a datetime, got {type(v).__name__}")
            if v.tzinfo is None or v.utcoffset() is None:
                raise InvalidInputError(
                    f"{label}={v.isoformat()} is a naive datetime; pass a timezone-aware "
                    "UTC datetime, e.g. datetime(2024, 1, 2, tzinfo=UTC)"
                )
        if end < start:
            raise InvalidInputError(f"end {end.isoformat()} is before start {start.isoformat()}")
        if start < EPOCH_START or end > EPOCH_END:
            raise UnsupportedRequestError(
                f"the synthetic market covers {EPOCH_START.date()} to "
                f"{(EPOCH_END - timedelta(days=1)).date()}; requested "
                f"{start.isoformat()} to {end.isoformat()}"
            )
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return _td_ns(start - epoch), _td_ns(end - epoch)

    def _parse(self, symbol: str) -> tuple[bool, int]:
        if isinstance(symbol, str):
            m = _EQUITY_RE.fullmatch(symbol)
            if m:
                return False, int(m.group(1))
            m = _CRYPTO_RE.fullmatch(symbol)
            if m:
                return True, int(m.group(1))
        raise SymbolNotFoundError(
            f"the synthetic source has no symbol {symbol!r}; its symbols are equities "
            "SYN000..SYN999 and crypto pairs SYNC00/USD..SYNC99/USD "
            "(list_symbols() gives the configured universe)"
        )

    # --- latent process -----------------------------------------------------------------

    def _get_latent(self, symbol: str) -> _Latent:
        lat = self._latent.get(symbol)
        if lat is None:
            crypto, index = self._parse(symbol)
            lat = self._build_crypto(symbol) if crypto else self._build_equity(symbol, index)
            self._latent[symbol] = lat
        return lat

    def _family_common(self, fam: int, n: int) -> _Common:
        common = self._commons.get(fam)
        if common is None:
            rng = np.random.default_rng([self._seed_key, stable_key("family", fam)])
            common = _common_trend(
                rng,
                n,
                sigma_ann=float(rng.uniform(0.13, 0.42)),
                mu_ann=float(rng.uniform(0.03, 0.10)),
                periods=252,
            )
            self._commons[fam] = common
        return common

    def _build_equity(self, symbol: str, index: int) -> _Latent:
        grid = _xnys_grid()
        n = len(grid.day)
        sym_key = stable_key(self._seed_key, symbol)
        fam = self._family_of(index)
        fam_key = stable_key(self._seed_key, "family", fam)
        common = self._family_common(fam, n)
        rng = np.random.default_rng([self._seed_key, sym_key])
        p0 = float(np.exp(rng.uniform(np.log(12.0), np.log(400.0))))
        beta = float(rng.uniform(0.8, 1.25))
        phi = float(rng.uniform(0.90, 0.98))
        u_sd = float(rng.uniform(0.015, 0.04))
        sigma_u = u_sd * np.sqrt(1.0 - phi * phi)
        u = _ar1(phi, np.concatenate([[0.0], sigma_u * rng.standard_normal(n)]))
        log_full = np.log(p0) + beta * common.log_c + u  # index 0 = before the epoch
        sigma_d = float(np.hypot(beta * common.sigma_d, sigma_u))
        log_e = log_full[1:]
        gap = 0.3 * sigma_d * normals(sym_key, grid.day, _S_D_GAP)[0]
        log_open_e = log_full[:-1] + gap
        dollar_vol_min = float(np.exp(rng.uniform(np.log(5e6), np.log(5e8)))) / 390.0

        # corporate actions, from the symbol's own generator
        exp_e = np.exp(log_e)
        events: dict[int, tuple[str, float]] = {}
        if rng.random() < 0.7:
            y_q = float(rng.uniform(0.002, 0.015))
            first_year = 2000 + int(rng.integers(0, 12))
            month0 = int(rng.integers(1, 4))
            dom = int(rng.integers(1, 26))
            for year in range(first_year, 2031):
                for month in range(month0, 13, 3):
                    target = (date(year, month, dom) - date(1970, 1, 1)).days
                    k = int(np.searchsorted(grid.day, target, side="left"))
                    if 1 <= k < n:
                        events[k] = ("dividend", y_q * float(rng.uniform(0.9, 1.1)))
        split_candidates: list[int] = []
        if rng.random() < 0.45:
            k = int(rng.integers(250, 1250))
            while k < n:
                while k in events:
                    k += 1
                if k < n:
                    split_candidates.append(k)
                k += int(rng.integers(750, 1750))
        split_draws = rng.random(len(split_candidates)).tolist()
        for k, draw in zip(split_candidates, split_draws, strict=True):
            events[k] = ("split", draw)

        div_f = np.ones(n)
        split_r = np.ones(n)
        actions: list[_Action] = []
        dfac_cur = 1.0
        s_cur = 1.0
        for k in sorted(events):
            kind, x = events[k]
            close_prev = exp_e[k - 1] * dfac_cur / s_cur
            if kind == "dividend":
                cash = round(x * close_prev, 2)
                if cash <= 0:
                    continue
                f = 1.0 - cash / close_prev
                div_f[k] = f
                dfac_cur *= f
                actions.append(_Action(k, "dividend", None, cash))
            else:
                if close_prev > 60.0:
                    options = [r for r in (2.0, 3.0, 4.0) if close_prev / r >= 15.0]
                    ratio = options[min(int(x * len(options)), len(options) - 1)]
                elif close_prev < 8.0:
                    ratio = 0.2 if close_prev >= 2.0 else 0.1
                else:
                    continue
                split_r[k] = ratio
                s_cur *= ratio
                actions.append(_Action(k, "split", ratio, None))
        dfac = np.cumprod(div_f)
        split = np.cumprod(split_r)
        close = exp_e * dfac / split
        open_ = np.exp(log_open_e) * dfac / split

        # daily bad prints, never on the session before an ex-date
        u_bad = uniform53(splitmix64(sym_key, grid.day, _S_D_FAULT))
        bad = u_bad < _P_BAD_1D
        for a in actions:
            bad[a.session - 1] = False
        return _Latent(
            symbol=symbol,
            crypto=False,
            grid=grid,
            sym_key=sym_key,
            fam_key=fam_key,
            log_e=log_e,
            log_open_e=log_open_e,
            dfac=dfac,
            split=split,
            close=close,
            open=open_,
            sigma_d=sigma_d,
            sigma_min=0.8 * sigma_d / np.sqrt(390.0),
            dollar_vol_min=dollar_vol_min,
            actions=tuple(actions),
            bad_daily=bad,
        )

    def _build_crypto(self, symbol: str) -> _Latent:
        grid = _daily_grid()
        n = len(grid.day)
        sym_key = stable_key(self._seed_key, symbol)
        rng = np.random.default_rng([self._seed_key, sym_key])
        p0 = float(np.exp(rng.uniform(np.log(12.0), np.log(400.0))))
        common = _common_trend(
            rng,
            n,
            sigma_ann=float(rng.uniform(0.35, 0.6)),
            mu_ann=float(rng.uniform(0.0, 0.08)),
            periods=365,
        )
        log_full = np.log(p0) + common.log_c
        log_e = log_full[1:]
        log_open_e = log_full[:-1]  # trades around the clock: no overnight gap
        ones = np.ones(n)
        exp_e = np.exp(log_e)
        bad = uniform53(splitmix64(sym_key, grid.day, _S_D_FAULT)) < _P_BAD_1D
        return _Latent(
            symbol=symbol,
            crypto=True,
            grid=grid,
            sym_key=sym_key,
            fam_key=None,
            log_e=log_e,
            log_open_e=log_open_e,
            dfac=ones,
            split=ones,
            close=exp_e * ones / ones,
            open=np.exp(log_open_e) * ones / ones,
            sigma_d=common.sigma_d,
            sigma_min=0.8 * common.sigma_d / np.sqrt(1440.0),
            dollar_vol_min=float(np.exp(rng.uniform(np.log(1e6), np.log(1e8)))) / 1440.0,
            actions=(),
            bad_daily=bad,
        )

    # --- bars ---------------------------------------------------------------------------

    @staticmethod
    def _day_span(lat: _Latent, start_ns: int, end_ns: int) -> tuple[int, int]:
        day_ns = lat.grid.day_ns
        k0 = int(np.searchsorted(day_ns, start_ns, side="left"))
        k1 = int(np.searchsorted(day_ns, end_ns, side="left"))
        return k0, k1

    def _days(self, lat: _Latent, start_ns: int, end_ns: int) -> dict[str, np.ndarray]:
        k0, k1 = self._day_span(lat, start_ns, end_ns)
        day = lat.grid.day[k0:k1]
        o = lat.open[k0:k1]
        c = lat.close[k0:k1].copy()
        u_hi, u_lo = uniform32_pair(splitmix64(lat.sym_key, day, _S_D_HILO))
        spread = 0.4 * lat.sigma_d
        h = np.maximum(o, c) * np.exp(-spread * np.log(u_hi))
        lo = np.minimum(o, c) * np.exp(spread * np.log(u_lo))
        z_vol = normals(lat.sym_key, day, _S_D_VOL)[0]
        vol = lat.dollar_vol_min * lat.grid.nmin[k0:k1] / c * np.exp(0.4 * z_vol - 0.08)
        if not lat.crypto:
            vol = np.maximum(np.round(vol), 1.0)
        bad = lat.bad_daily[k0:k1]
        if bad.any():
            _apply_bad_prints(lat.sym_key, day[bad], _S_D_FAULT2, c, h, lo, bad)
        return {
            "ts": lat.grid.day_ns[k0:k1],
            "open": o,
            "high": h,
            "low": lo,
            "close": c,
            "volume": vol,
        }

    @staticmethod
    def _minute_grid(lat: _Latent, start_ns: int, end_ns: int) -> _MinuteGrid | None:
        """Every minute of the sessions overlapping ``[start, end)``, one row per session."""
        g = lat.grid
        k0 = int(np.searchsorted(g.closes, start_ns, side="right"))
        k1 = int(np.searchsorted(g.opens, end_ns, side="left"))
        if k1 <= k0:
            return None
        nmin = g.nmin[k0:k1]
        col = np.arange(int(nmin.max()), dtype=np.int64)
        valid = col[None, :] < nmin[:, None]
        ts = g.opens[k0:k1, None] + col[None, :] * _NS_PER_MIN
        return _MinuteGrid(
            k0=k0,
            k1=k1,
            nmin=nmin,
            col=col,
            valid=valid,
            ts=ts,
            counter=ts // _NS_PER_MIN,
            in_range=valid & (ts >= start_ns) & (ts < end_ns),
        )

    @staticmethod
    def _minute_faults(lat: _Latent, m: _MinuteGrid) -> tuple[np.ndarray, np.ndarray]:
        """(missing, bad print) masks; the last minute of a session is never faulty."""
        u_fault = uniform53(splitmix64(lat.sym_key, m.counter, _S_FAULT))
        eligible = m.valid & (m.col[None, :] < (m.nmin - 1)[:, None])
        missing = eligible & (u_fault <= _P_MISSING_1M)
        bad = eligible & (u_fault > _P_MISSING_1M) & (u_fault <= _P_MISSING_1M + _P_BAD_1M)
        return missing, bad

    def _minutes(
        self, lat: _Latent, start_ns: int, end_ns: int, *, economic: bool = False
    ) -> dict[str, np.ndarray]:
        m = self._minute_grid(lat, start_ns, end_ns)
        if m is None:
            empty = np.empty(0)
            return {c: empty for c in ("open", "high", "low", "close", "volume")} | {
                "ts": np.empty(0, dtype=np.int64)
            }
        k0, k1, nmin, col = m.k0, m.k1, m.nmin, m.col
        rows = np.arange(k1 - k0)
        z, z_vol = normals(lat.sym_key, m.counter, _S_Z)
        if lat.fam_key is not None:
            z_fam = normals(lat.fam_key, m.counter, _S_FZ)[0]
            z = np.sqrt(_FAMILY_RHO) * z_fam + np.sqrt(1.0 - _FAMILY_RHO) * z
        z[~m.valid] = 0.0
        w = np.cumsum(z, axis=1)
        w *= lat.sigma_min
        w_end = w[rows, nmin - 1]
        frac = (col[None, :] + 1.0) / nmin[:, None]
        o_e = lat.log_open_e[k0:k1, None]
        c_e = lat.log_e[k0:k1, None]
        x = o_e + frac * (c_e - o_e) + (w - frac * w_end[:, None])
        if economic:
            econ = np.exp(x)
            econ[rows, nmin - 1] = np.exp(lat.log_e[k0:k1])
            return {"ts": m.ts[m.in_range], "close": econ[m.in_range]}

        factor = (lat.dfac[k0:k1] / lat.split[k0:k1])[:, None]
        close = np.exp(x) * factor
        close[rows, nmin - 1] = lat.close[k0:k1]
        open_ = np.empty_like(close)
        open_[:, 0] = lat.open[k0:k1]
        open_[:, 1:] = close[:, :-1]
        u_hi, u_lo = uniform32_pair(splitmix64(lat.sym_key, m.counter, _S_HILO))
        spread = 0.3 * lat.sigma_min
        high = np.maximum(open_, close) * np.exp(-spread * np.log(u_hi))
        low = np.minimum(open_, close) * np.exp(spread * np.log(u_lo))
        profile = 0.7 + 1.2 * (2.0 * frac - 1.0) ** 2
        volume = (lat.dollar_vol_min / lat.close[k0:k1])[:, None] * profile
        volume *= np.exp(0.5 * z_vol - 0.125)
        if not lat.crypto:
            volume = np.maximum(np.round(volume), 1.0)

        missing, bad = self._minute_faults(lat, m)
        if bad.any():
            _apply_bad_prints(lat.sym_key, m.counter[bad], _S_FAULT2, close, high, low, bad)
        keep = m.in_range & ~missing
        return {
            "ts": m.ts[keep],
            "open": open_[keep],
            "high": high[keep],
            "low": low[keep],
            "close": close[keep],
            "volume": volume[keep],
        }

    @staticmethod
    def _actions_table(lat: _Latent, start_ns: int, end_ns: int) -> pa.Table:
        """Actions whose ex-date (a UTC day) overlaps ``[start, end)``."""
        rows = [
            a
            for a in lat.actions
            if start_ns < (int(lat.grid.day[a.session]) + 1) * _NS_PER_DAY
            and int(lat.grid.day[a.session]) * _NS_PER_DAY < end_ns
        ]
        return pa.table(
            {
                "ex_date": pa.array(
                    [int(lat.grid.day[a.session]) for a in rows], type=pa.int32()
                ).cast(pa.date32()),
                "action_type": pa.array([a.kind for a in rows], type=pa.string()),
                "split_ratio": pa.array([a.ratio for a in rows], type=pa.float64()),
                "cash_amount": pa.array([a.cash for a in rows], type=pa.float64()),
                "currency": pa.array(["USD"] * len(rows), type=pa.string()),
            },
            schema=_ACTIONS_SCHEMA,
        )


def _apply_bad_prints(
    key: int,
    counter: np.ndarray,
    stream: int,
    close: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    mask: np.ndarray,
) -> None:
    """Spike the close of the masked bars in place (multiply or divide by 1.5-3).

    The high (or, for a downward spike, the low) follows the spike, except for about one
    bar in three where it is left slightly on the wrong side of the close, as a vendor's
    bad print would.
    """
    h = splitmix64(key, counter, stream)
    u_f, u_v = uniform32_pair(h)
    up = (h & np.uint64(1)) == 0
    factor = 1.5 + 1.5 * u_f
    violate = u_v < 1.0 / 3.0
    c = close[mask]
    hi = high[mask]
    lo = low[mask]
    c = np.where(up, c * factor, c / factor)
    off = 1.0 + 0.001 * (1.0 + u_f)
    hi = np.where(up, np.where(violate, c / off, np.maximum(hi, c)), hi)
    lo = np.where(~up, np.where(violate, c * off, np.minimum(lo, c)), lo)
    close[mask] = c
    high[mask] = hi
    low[mask] = lo


def _td_ns(td: timedelta) -> int:
    return (td.days * 86_400 + td.seconds) * 1_000_000_000 + td.microseconds * 1000
