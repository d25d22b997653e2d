"""Canonical timeframes and their durations."""

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


def normalize_timeframe(timeframe: str) -> str:
    """Return the canonical name of ``timeframe`` or raise a clear error."""
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
