"""Market-data sources. Each adapter hands the lake writer as-traded data."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInputError
from .base import Capabilities, FetchResult, Source, TimeframeLimits

__all__ = ["SOURCE_NAMES", "Capabilities", "FetchResult", "Source", "TimeframeLimits", "make"]

SOURCE_NAMES = ("synthetic", "yfinance", "csv")


def make(name: str, **options: Any) -> Source:
    """Build a source by name (imported lazily: yfinance is only loaded when asked for)."""
    if name == "synthetic":
        from .synthetic import SyntheticSource

        return SyntheticSource(**options)
    if name == "yfinance":
        from .yfinance import YFinanceSource

        return YFinanceSource(**options)
    if name == "csv":
        from .csv import CsvSource

        return CsvSource(**options)
    raise InvalidInputError(f"unknown source {name!r}; use one of {', '.join(SOURCE_NAMES)}")
