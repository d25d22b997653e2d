"""`duckmarket update`: keep the universe file's series up to date, for cron.

One run: for every series of the universe, fetch what is missing (the manifest knows what is
held), re-fetch the trailing window, and once a week (or with ``backfill_days``) re-download
the last days and keep every bar the vendor changed (the manifest's ``revisions``); then an
incremental build, skipped when nothing new landed since the last good one, and the refresh
of the configured exports. One lock for the whole run; the run is recorded in the manifest's
``update_runs`` with its report.

Exit codes (:attr:`UpdateReport.exit_code`): 0 all good, 2 partial (some series or the
build failed; what landed is kept), 3 another update or build is running, 4 a source could
not be reached at all (the run stopped), 1 a usage or universe-file error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from ingest.errors import DuckmarketError, InvalidInputError, SourceUnreachableError
from ingest.locks import exclusive
from ingest.manager import DataManager
from ingest.manifest import Manifest, from_us, to_us
from ingest.paths import DataPaths
from ingest.sources import make as make_source
from ingest.timeframes import FUNDING, TICK, bar_length, dataset_of

from .config import CONFIG_NAME, WEEKDAYS, Config, Series

log = logging.getLogger(__name__)

__all__ = ["SeriesOutcome", "UpdateReport", "UpdateRunningError", "run_update"]

#: bar values compared to find revisions
_COMPARED = ("open", "high", "low", "close", "volume", "rate")


class UpdateRunningError(DuckmarketError):
    """Another `duckmarket update` holds the data root."""

    exit_code = 3


@dataclass
class SeriesOutcome:
    source: str
    symbol: str
    timeframe: str
    status: str  # ok | empty | cached | failed
    rows: int = 0
    api_calls: int = 0
    #: bars downloaded again (trailing window, weekly backfill)
    refetched: int = 0
    revised: int = 0
    error: str | None = None
    #: what looks like a vendor regression: history that shrank, data that stopped
    regression: str | None = None
    last_bar: datetime | None = None


@dataclass
class UpdateReport:
    run_id: int | None
    started_at: datetime
    status: str = "running"  # ok | partial | failed
    series: list[SeriesOutcome] = field(default_factory=list)
    backfill_days: int = 0
    build: dict[str, Any] | None = None
    exports: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    duration_s: float = 0.0
    exit_code: int = 0

    @property
    def fetched_rows(self) -> int:
        return sum(s.rows for s in self.series)

    @property
    def refetched_rows(self) -> int:
        return sum(s.refetched for s in self.series)

    @property
    def revised_rows(self) -> int:
        return sum(s.revised for s in self.series)

    @property
    def api_calls(self) -> int:
        return sum(s.api_calls for s in self.series)

    @property
    def failed(self) -> list[SeriesOutcome]:
        return [s for s in self.series if s.status == "failed"]

    @property
    def regressions(self) -> list[SeriesOutcome]:
        return [s for s in self.series if s.regression]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(
            fetched_rows=self.fetched_rows,
            refetched_rows=self.refetched_rows,
            revised_rows=self.revised_rows,
            api_calls=self.api_calls,
            backfill=self.backfill_days > 0,
        )
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=_json_default, indent=1)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _update_lock(paths: DataPaths) -> contextlib.AbstractContextManager[None]:
    return exclusive(
        paths.root / ".update.lock",
        lambda pid, since: UpdateRunningError(
            f"an update is already running on {paths.root}: PID {pid}, started {since}"
        ),
    )


def backfill_due(manifest: Manifest, config: Config, now: datetime) -> bool:
    """The weekly re-download: on the configured weekday, unless one ran in the last 6 days."""
    if config.backfill_weekday is None or config.backfill_days <= 0:
        return False
    if WEEKDAYS[now.weekday()] != config.backfill_weekday:
        return False
    last = manifest.query(
        """select max(started_at) as t from update_runs
           where status in ('ok', 'partial') and json_extract(report_json, '$.backfill')"""
    )[0]["t"]
    return last is None or now - from_us(int(last)) > timedelta(days=6)


def run_update(
    paths: DataPaths,
    config: Config,
    *,
    backfill_days: int | None = None,
    build: bool | None = None,
    now: Callable[[], datetime] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> UpdateReport:
    """One update run (see the module docstring). ``backfill_days`` forces a re-download of
    that many days; ``build=False`` skips the build and exports; ``now`` fixes the clock."""
    clock = now or _wall_clock
    paths.ensure()
    t0 = time.perf_counter()
    with _update_lock(paths):
        manifest = Manifest(paths.manifest)
        try:
            at = clock()
            if backfill_days is None:
                backfill_days = config.backfill_days if backfill_due(manifest, config, at) else 0
            run_id = manifest.start_update_run(str(config.path), pid=os.getpid())
            report = UpdateReport(run_id=run_id, started_at=at, backfill_days=backfill_days)
            try:
                _fetch_all(paths, config, report, clock, manifest, progress)
                if report.status != "failed" and (config.build if build is None else build):
                    _build_and_export(paths, config, report, manifest)
            except DuckmarketError as exc:
                report.status, report.error = "failed", str(exc)
                report.exit_code = exc.exit_code
            finally:
                _conclude(report, t0)
                manifest.finish_update_run(
                    run_id,
                    report.status,
                    series=len(report.series),
                    fetched_rows=report.fetched_rows,
                    revised_rows=report.revised_rows,
                    build_id=(report.build or {}).get("build_id"),
                    report_json=report.to_json(),
                )
        finally:
            manifest.close()
    return report


def _conclude(report: UpdateReport, t0: float) -> None:
    report.duration_s = time.perf_counter() - t0
    build_failed = report.build is not None and report.build.get("status") == "failed"
    export_failed = any("error" in e for e in report.exports)
    if report.status != "failed":
        report.status = "partial" if report.failed or build_failed or export_failed else "ok"
    if report.status == "partial" and not report.exit_code:
        report.exit_code = 2
    elif report.status == "failed" and not report.exit_code:
        report.exit_code = 1


def _fetch_all(
    paths: DataPaths,
    config: Config,
    report: UpdateReport,
    clock: Callable[[], datetime],
    manifest: Manifest,
    progress: Callable[[str, int, int], None] | None,
) -> None:
    todo = [(s, tf) for s in config.series for tf in s.timeframes]
    for i, (series, tf) in enumerate(todo):
        if progress:
            progress(f"{series.source} {tf}", i, len(todo))
        try:
            source = make_source(series.source, **series.options)
        except TypeError as exc:
            raise InvalidInputError(
                f"{config.path}: the options of source {series.source!r} do not fit ({exc})"
            ) from None
        with DataManager(paths, sources={source.name: source}, now=clock) as dm:
            try:
                _update_series(dm, series, tf, report, clock, manifest)
            except SourceUnreachableError as exc:
                report.status, report.error = "failed", str(exc)
                report.exit_code = exc.exit_code
                return
    if progress:
        progress("", len(todo), len(todo))


def _update_series(
    dm: DataManager,
    series: Series,
    tf: str,
    report: UpdateReport,
    clock: Callable[[], datetime],
    manifest: Manifest,
) -> None:
    now = _settled(clock(), tf)
    start = series.start_at(now)
    if start >= now:
        raise InvalidInputError(f"{series.source} {tf}: start {start:%Y-%m-%d} is in the future")
    src = dm.source(series.source).name  # as the lake stores it (ccxt:binance -> ccxt_binance)
    outcomes = {
        r.symbol: SeriesOutcome(src, r.symbol, tf, r.status, r.rows, r.api_calls, error=r.error)
        for r in dm.ingest(list(series.symbols), tf, start, now, source=src).results
    }
    windows = []
    if series.trailing_days:
        windows.append(max(start, now - timedelta(days=series.trailing_days)))
    if report.backfill_days:
        windows.append(max(start, now - timedelta(days=report.backfill_days)))
    if windows:
        ws = min(windows)
        held = {s: _bars(dm, src, s, tf, ws, now) for s in series.symbols}
        again = dm.ingest(list(series.symbols), tf, ws, now, source=src, force_refresh=True)
        for r in again.results:
            o = outcomes[r.symbol]
            o.api_calls += r.api_calls
            o.refetched += r.rows
            if r.status == "failed":
                o.status, o.error = "failed", r.error
                continue
            new = _bars(dm, src, r.symbol, tf, ws, now)
            changed = _revisions(held[r.symbol], new)
            if changed:
                o.revised = manifest.record_revisions(
                    report.run_id or 0, src, r.symbol, tf, changed
                )
            old_n = held[r.symbol].num_rows
            if r.rows < old_n:
                o.regression = (
                    f"the vendor sent {r.rows} bar(s) for {ws:%Y-%m-%d} onwards where "
                    f"the lake holds {old_n}: its history shrank"
                )
    for sym, o in outcomes.items():
        last = _last_bar(dm, src, sym, tf)
        o.last_bar = last
        if o.status != "failed" and o.regression is None and last is not None:
            quiet = max(timedelta(days=5), 3 * _length(tf))
            if now - last > quiet and now - start > quiet:
                o.regression = f"no new data since {last:%Y-%m-%d %H:%M} UTC"
        report.series.append(o)


def _settled(now: datetime, tf: str) -> datetime:
    """The end of what a run asks for: ``now`` on the whole minute (bars open on whole
    minutes), so a second run within the minute finds everything covered and calls nobody;
    the bar opening at that minute is still forming and comes with the next run."""
    us = to_us(now)
    return from_us(us - us % 60_000_000)


def _length(tf: str) -> timedelta:
    if tf == TICK:
        return timedelta(minutes=1)
    if tf == FUNDING:
        return timedelta(hours=8)  # the usual funding interval of perpetual swaps
    return bar_length(tf)


def _bars(dm: DataManager, source: str, symbol: str, tf: str, s: datetime, e: datetime) -> pa.Table:
    if tf == TICK:
        return dm.lake.read_ticks(source, symbol, s, e)
    if tf == FUNDING:
        return dm.lake.read_funding(source, symbol, s, e)
    return dm.lake.read_bars(source, symbol, tf, s, e)


def _last_bar(dm: DataManager, source: str, symbol: str, tf: str) -> datetime | None:
    dataset, timeframe = dataset_of(tf), (None if tf in (TICK, FUNDING) else tf)
    clauses = "dataset = ? and source = ? and symbol = ? and superseded_at is null"
    params: list[object] = [dataset, source, symbol]
    if timeframe is not None:
        clauses += " and timeframe = ?"
        params.append(timeframe)
    rows = dm.lake.manifest.query(
        f"select max(max_us) as t from data_files where {clauses}", params
    )
    t = rows[0]["t"] if rows else None
    return None if t is None else from_us(int(t))


def _revisions(old: pa.Table, new: pa.Table) -> list[tuple[int, str | None, str | None]]:
    """Bars whose compared values differ (or that vanished): (ts us, old JSON, new JSON)."""
    if old.num_rows == 0:
        return []
    cols = [c for c in _COMPARED if c in old.column_names and c in new.column_names]
    before = {
        to_us(r["ts"]): {c: r[c] for c in cols} for r in old.select(["ts", *cols]).to_pylist()
    }
    after = {to_us(r["ts"]): {c: r[c] for c in cols} for r in new.select(["ts", *cols]).to_pylist()}
    out = []
    for ts, was in before.items():
        now = after.get(ts)
        if now != was:
            out.append((ts, json.dumps(was), None if now is None else json.dumps(now)))
    return out


def _build_and_export(
    paths: DataPaths, config: Config, report: UpdateReport, manifest: Manifest
) -> None:
    from hotpath import export
    from warehouse.build import run_build
    from warehouse.marts import current_set

    live = sorted(f.file_id for f in manifest.live_files())
    last = manifest.last_build_run("ok")
    held = json.loads(str(last["data_files"])) if last else None
    if last is not None and held == live and current_set(paths) is not None:
        report.build = {
            "status": "skipped",
            "reason": f"nothing new since build {last['build_id']}",
            "build_id": last["build_id"],
        }
        return
    # the data root's universe file reaches dbt through every build
    # (warehouse.build.universe_pairs); one given with --config elsewhere is passed here
    extra: list[str] = []
    if config.pairs and config.path.resolve() != (paths.root / CONFIG_NAME).resolve():
        pairs = [{"symbol_a": a, "symbol_b": b} for a, b in config.pairs]
        extra = ["--vars", json.dumps({"universe_pairs": pairs})]
    try:
        result = run_build(paths, quiet=True, extra=extra)
    except DuckmarketError as exc:
        report.build = {"status": "failed", "error": str(exc)}
        if exc.exit_code == 3:
            report.exit_code = 3
        return
    report.build = {
        "status": "ok" if result.ok else "failed",
        "build_id": result.build_run_id,
        "duration_s": round(result.duration_s, 1),
        "error": result.error,
    }
    if not result.ok:
        return
    for e in config.exports:
        try:
            res = export(e.mart, data_dir=paths, timeframe=e.timeframe)
            report.exports.append({"mart": e.mart, "path": str(res.path), "rows": res.rows})
        except DuckmarketError as exc:
            report.exports.append({"mart": e.mart, "error": str(exc)})
