"""Turning user-given instants into tz-aware UTC datetimes or int64 nanoseconds."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np

from .errors import InvalidInputError

TimeLike = datetime | date | str | np.datetime64 | int
"""An instant: aware datetime, date (midnight UTC), ISO string (UTC unless it says otherwise),
numpy datetime64 (UTC) or int nanoseconds since the epoch."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_datetime(value: TimeLike, name: str = "time") -> datetime:
    """Return ``value`` as an aware UTC datetime; naive datetimes are refused (they are bugs).

    ``name`` says which argument it was, for the error message."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise InvalidInputError(
                f"{name}: naive datetime {value.isoformat()} has no timezone and is ambiguous: "
                "pass a timezone-aware datetime (e.g. datetime(..., tzinfo=UTC)) or ISO text"
            )
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, np.datetime64):
        return _EPOCH + (value - np.datetime64(0, "ns")).astype("timedelta64[us]").item()
    if isinstance(value, bool):
        raise InvalidInputError(f"{name} is not an instant: {value!r}")
    if isinstance(value, int | np.integer):
        return datetime.fromtimestamp(int(value) / 1e9, tz=UTC)
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInputError(
                f"{name} {value!r} is not a date: cannot read it as ISO 8601; use e.g. "
                "2024-01-31 or 2024-01-31T14:30:00+00:00"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    raise InvalidInputError(f"{name} is not an instant: {value!r} ({type(value).__name__})")


def to_ns(value: TimeLike) -> int:
    """Return ``value`` as int nanoseconds since the epoch (UTC), exactly."""
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[ns]").astype(np.int64))
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    dt = to_datetime(value)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
