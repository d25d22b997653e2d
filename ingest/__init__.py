"""duckmarket ingest: sources, the raw Parquet lake, its SQLite manifest, and the DataManager.

>>> from ingest import DataManager
>>> dm = DataManager("data")                                              # doctest: +SKIP
>>> dm.get_ohlcv("SYN000", "1d", "2023-01-01", "2023-06-01", source="synthetic")  # +SKIP
"""

from __future__ import annotations

from .backtests import record_backtest
from .errors import (
    DuckmarketError,
    InvalidInputError,
    InvalidSymbolError,
    LakeLockedError,
    RateLimitedError,
    SourceError,
    SymbolNotFoundError,
    UnsupportedRequestError,
)
from .lake import Lake
from .manager import DataManager, IngestReport
from .manifest import Manifest
from .paths import DataPaths
from .sources import Source
from .sources import make as make_source

__all__ = [
    "DataManager",
    "DataPaths",
    "DuckmarketError",
    "IngestReport",
    "InvalidInputError",
    "InvalidSymbolError",
    "Lake",
    "LakeLockedError",
    "Manifest",
    "RateLimitedError",
    "Source",
    "SourceError",
    "SymbolNotFoundError",
    "UnsupportedRequestError",
    "make_source",
    "record_backtest",
]
