"""duckmarket warehouse: dbt over the raw lake, and the Parquet marts it publishes.

* :mod:`warehouse.build`: run ``dbt build`` as a subprocess and record the run;
* :mod:`warehouse.marts`: the published set of marts under ``<data>/marts``, and a summary;
* :mod:`warehouse.remote`: the lake and the marts on S3-compatible object storage;
* :mod:`warehouse.calendars`: exchange sessions written for the coverage models;
* :mod:`warehouse.pit`: point-in-time adjusted bars read from the marts;
* :mod:`warehouse.features`: the feature-set registry the feature models build;
* :mod:`warehouse.kernels`: compiled (numba) kernels the dbt Python models call;
* :mod:`warehouse.artifacts`: trained models registered with the data they were trained on;
* :mod:`warehouse.report`: the HTML report (coverage, quality, prices, pairs, runs);
* :mod:`warehouse.backtest_metrics`: metrics of recorded backtests, and comparing runs.

>>> from warehouse import run_build, bars_as_of                     # doctest: +SKIP
>>> run_build(DataPaths.from_arg("data"))                          # doctest: +SKIP
>>> bars_as_of(DataPaths.from_arg("data"), "2023-06-30")          # doctest: +SKIP
"""

from __future__ import annotations

from .artifacts import get_artifact, list_artifacts, register_artifact
from .backtest_metrics import compare_runs, run_metrics
from .build import BuildError, BuildResult, WarehouseLockedError, run_build
from .marts import current_set, publish_marts, summary
from .pit import bars_as_of
from .remote import RemoteStore, pull, push
from .report import render_report, write_report

__all__ = [
    "BuildError",
    "BuildResult",
    "RemoteStore",
    "WarehouseLockedError",
    "bars_as_of",
    "compare_runs",
    "current_set",
    "get_artifact",
    "list_artifacts",
    "publish_marts",
    "pull",
    "push",
    "register_artifact",
    "render_report",
    "run_build",
    "run_metrics",
    "summary",
    "write_report",
]
