"""duckmarket: a DuckDB-centric SQL warehouse for market data.

The layers, lowest first (each imports only those below it):

* :mod:`ingest`: sources, the raw Parquet lake and its SQLite manifest, the DataManager;
* :mod:`warehouse`: dbt builds over the lake, the published Parquet marts, point in time;
* :mod:`hotpath`: memory-mapped exports of marts and their zero-copy readers;
* :mod:`server`: the read-only HTTP server over the marts;
* :mod:`duckmarket.cli`: the ``duckmarket`` command, above them all.

The most used entry points are re-exported here, loaded on first use::

    from duckmarket import DataManager, run_build, bars_as_of, export, open_export
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it
_EXPORTS = {
    "DataManager": "ingest",
    "DataPaths": "ingest",
    "DuckmarketError": "ingest",
    "run_build": "warehouse",
    "bars_as_of": "warehouse",
    "push": "warehouse",
    "pull": "warehouse",
    "RemoteStore": "warehouse",
    "export": "hotpath",
    "open_export": "hotpath",
    "read_mart": "hotpath",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'duckmarket' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
