"""duckmarket ingest: sources, the raw Parquet lake, its SQLite manifest, and the DataManager."""

from __future__ import annotations

__all__: list[str] = []
