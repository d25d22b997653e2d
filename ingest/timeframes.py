"""Canonical timeframes and their durations, and the one timeframe that is not a bar.

A series in the lake is (source, symbol, timeframe). Bar timeframes (1m ... 1w) live in
the ``bars`` dataset; :data:`TICK` names the ``ticks`` dataset, every trade as it
happened, and :data:`FUNDING` the ``funding_rates`` dataset, the funding a perpetual swap
pays. Coverage, planning and clearing treat them alike; only the dataset differs.
"""

from __future__ import annotations

from datetime import timedelta

from .errors import InvalidInputError

#: Canonical timeframe names, shortest first, with their nominal bar length.
TIMEFRAMES: dict[str, timedelta] = {
    "1m": timedelta(minutes=1),
    "2m": timedelta(minutes=2),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "90m": timedelta(minutes=90),
    "4h": timedelta(hours=4),
    "1d": timedelta(days=1),
    "1w": timedelta(weeks=1),
}

#: Timeframes whose bars are keyed by a session date (ts = that date at 00:00 UTC).
SESSION_TIMEFRAMES = frozenset({"1d", "1w"})

_ALIASES = {"60m": "1h", "1wk": "1w", "1h": "1h", "d": "1d", "1day": "1d"}

#: The timeframe of the ticks dataset: trades, not bars (no bar length, no partition year).
TICK = "tick"
_TICK_ALIASES = frozenset({"tick", "ticks", "trades"})

#: The timeframe of the funding_rates dataset: a perpetual swap's funding payments.
FUNDING = "funding"
_FUNDING_ALIASES = frozenset({"funding", "funding_rate", "funding_rates"})


def normalize_timeframe(timeframe: str) -> str:
    """Return the canonical name of bar timeframe ``timeframe`` or raise a clear error."""
    if not isinstance(timeframe, str):
        raise InvalidInputError(f"timeframe must be text such as '1m', got {timeframe!r}")
    tf = _ALIASES.get(timeframe.strip().lower(), timeframe.strip().lower())
    if tf not in TIMEFRAMES:
        raise InvalidInputError(
            f"unknown timeframe {timeframe!r}; use one of {', '.join(TIMEFRAMES)}"
        )
    return tf


def is_intraday(timeframe: str) -> bool:
    return normalize_timeframe(timeframe) not in SESSION_TIMEFRAMES


def bar_length(timeframe: str) -> timedelta:
    return TIMEFRAMES[normalize_timeframe(timeframe)]


def parse_timeframe(timeframe: str) -> str:
    """A bar timeframe's canonical name, :data:`TICK` for ``tick``/``ticks``/``trades``, or
    :data:`FUNDING` for ``funding``."""
    if isinstance(timeframe, str):
        word = timeframe.strip().lower()
        if word in _TICK_ALIASES:
            return TICK
        if word in _FUNDING_ALIASES:
            return FUNDING
    return normalize_timeframe(timeframe)


def dataset_of(timeframe: str) -> str:
    """The lake dataset that holds a (parsed) timeframe's data: ``ticks``,
    ``funding_rates`` or ``bars``."""
    if timeframe == TICK:
        return "ticks"
    return "funding_rates" if timeframe == FUNDING else "bars"
