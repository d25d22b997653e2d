"""duckmarket hot path: zero-copy memory-mapped exports of marts, and reads of Parquet marts.

>>> import hotpath
>>> hotpath.export("bars_adjusted")                       # -> data/export/bars_adjusted.arrow
>>> with hotpath.open("data/export/bars_adjusted.arrow") as x:
...     close = x.col("close")                            # numpy view over the mapped file
...     jan = x.range("AAPL", "2024-01-01", "2024-02-01")  # index + binary search on ts
...     for batch in x.batches(500_000): ...
>>> hotpath.read_mart("bars_adjusted", symbols=["AAPL"], columns=["ts", "close_adj"])
"""

from __future__ import annotations

from .export import FORMATS, ExportResult, export
from .formats import FLAG_BITS, LAYOUT_VERSION, PRICE_BASES, RECORD_DTYPE, BadExportError
from .kernels import PriceVolumeStats, grouped_price_volume_stats, price_volume_stats
from .marts import list_marts, mart_path, read_mart, scan_mart
from .reader import BATCH_ROWS, ExportReader, ExportView, open_export

open = open_export  # hotpath.open(path), by analogy with pa.memory_map

__all__ = [
    "BATCH_ROWS",
    "FLAG_BITS",
    "FORMATS",
    "LAYOUT_VERSION",
    "PRICE_BASES",
    "RECORD_DTYPE",
    "BadExportError",
    "ExportReader",
    "ExportResult",
    "ExportView",
    "PriceVolumeStats",
    "export",
    "grouped_price_volume_stats",
    "list_marts",
    "mart_path",
    "open",
    "open_export",
    "price_volume_stats",
    "read_mart",
    "scan_mart",
]
