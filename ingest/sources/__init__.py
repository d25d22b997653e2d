"""Market-data sources. Each adapter hands the lake writer as-traded data."""

from __future__ import annotations

import re
from typing import Any

from ..errors import InvalidInputError
from .base import Capabilities, FetchResult, Source, TimeframeLimits

__all__ = [
    "SOURCE_NAMES",
    "Capabilities",
    "FetchResult",
    "Source",
    "TimeframeLimits",
    "lake_source_name",
    "make",
]

SOURCE_NAMES = ("synthetic", "yfinance", "csv", "ccxt:<exchange>", "dukascopy", "oanda")

#: ``ccxt:binance`` (as users write it) or ``ccxt_binance`` (as the lake stores it)
_CCXT_NAME = re.compile(r"ccxt[:_]([a-z0-9]+)")


def lake_source_name(name: str) -> str:
    """The name a source has in the lake: ``ccxt:binance`` -> ``ccxt_binance`` (a ':' has
    no place in a partition path); every other name unchanged."""
    m = _CCXT_NAME.fullmatch(name.strip().lower()) if isinstance(name, str) else None
    return f"ccxt_{m.group(1)}" if m else name


def make(name: str, **options: Any) -> Source:
    """Build a source by name (imported lazily: yfinance and ccxt are only loaded when
    asked for). ``ccxt:<exchange>`` (or ``ccxt_<exchange>``) is any exchange ccxt knows."""
    if name == "synthetic":
        from .synthetic import SyntheticSource

        return SyntheticSource(**options)
    if name == "yfinance":
        from .yfinance import YFinanceSource

        return YFinanceSource(**options)
    if name == "csv":
        from .csv import CsvSource

        return CsvSource(**options)
    if name == "dukascopy":
        from .dukascopy import DukascopySource

        return DukascopySource(**options)
    if name == "oanda":
        from .oanda import OandaSource

        return OandaSource(**options)
    m = _CCXT_NAME.fullmatch(name.strip().lower()) if isinstance(name, str) else None
    if m:
        from .ccxt import CcxtSource

        return CcxtSource(m.group(1), **options)
    raise InvalidInputError(f"unknown source {name!r}; use one of {', '.join(SOURCE_NAMES)}")
