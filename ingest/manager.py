"""The DataManager: fetch what is missing, land it in the lake, read it back."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from .errors import (
    DuckmarketError,
    InvalidInputError,
    SourceUnreachableError,
    UnsupportedRequestError,
)
from .lake import Lake, VerifyReport, WriteReport
from .manifest import from_us
from .paths import DataPaths
from .planner import plan
from .schema import SOURCE_FUNDING_SCHEMA, TS_TYPE, validate_symbol
from .sources import lake_source_name
from .sources import make as make_source
from .sources.base import FetchResult, Source
from .timeframes import (
    FUNDING,
    SESSION_TIMEFRAMES,
    TICK,
    dataset_of,
    normalize_timeframe,
    parse_timeframe,
)
from .timeutil import TimeLike, to_datetime

#: how far back ``start=None`` reaches when the source has no limit of its own
DEFAULT_HISTORY = {"intraday": timedelta(days=30), "daily": timedelta(days=365 * 5)}


def to_utc(value: TimeLike | None, name: str) -> datetime | None:
    """A user-supplied bound as aware UTC (see :func:`ingest.timeutil.to_datetime`)."""
    return None if value is None else to_datetime(value, name)


@dataclass
class SymbolResult:
    symbol: str
    status: str  # ok | empty | cached | failed
    rows: int = 0
    api_calls: int = 0
    rejected: int = 0
    error: str | None = None


@dataclass
class IngestReport:
    source: str
    timeframe: str
    results: list[SymbolResult] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def failed(self) -> list[SymbolResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def rows(self) -> int:
        return sum(r.rows for r in self.results)

    @property
    def api_calls(self) -> int:
        return sum(r.api_calls for r in self.results)

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class ImportResult:
    """One series imported from a file (or the file's failure, with ``error`` set)."""

    path: str
    symbol: str
    timeframe: str
    rows: int = 0
    rejected: int = 0
    notes: list[str] = field(default_factory=list)
    error: str | None = None


ProgressFn = Callable[[str, int, int], None]

#: what a folder's files may be
_IMPORTABLE = (".csv", ".txt", ".parquet", ".pq", ".parq")
#: zipline csvdir's sub-folders and their timeframes
_CSVDIR = {"daily": "1d", "minute": "1m"}


class DataManager:
    """Fetch-once access to market data kept in a local lake.

    >>> dm = DataManager("data")                                      # doctest: +SKIP
    >>> dm.get_ohlcv("SYN000", "1d", "2023-01-01", "2023-03-01", source="synthetic")
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | DataPaths | None = None,
        *,
        sources: Mapping[str, Source] | None = None,
        default_source: str = "yfinance",
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.paths = data_dir if isinstance(data_dir, DataPaths) else DataPaths.from_arg(data_dir)
        self.paths.ensure()
        self.lake = Lake(self.paths)
        self._sources: dict[str, Source] = dict(sources or {})
        self.default_source = default_source
        self._now = now or (lambda: datetime.now(UTC))

    def close(self) -> None:
        self.lake.close()

    def __enter__(self) -> DataManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sources -------------------------------------------------------------------------

    def source(self, name: str | None = None) -> Source:
        """The source of that name (``ccxt:binance`` and its lake name ``ccxt_binance``
        are one source), built on first use."""
        name = lake_source_name(name or self.default_source)
        if name not in self._sources:
            self._sources[name] = make_source(name)
        return self._sources[name]

    def add_source(self, source: Source) -> None:
        self._sources[source.name] = source

    def _holder(self, symbols: Sequence[str], timeframe: str, source: str | None) -> str | None:
        """The source to read ``symbols`` from when none is named: the one the lake already
        holds them from (never the network for what is held), else the default source."""
        if source is not None or not symbols:
            return source
        marks = ", ".join("?" * len(symbols))
        held = [
            r["source"]
            for r in self.lake.manifest.query(
                f"""select distinct source from coverage
                    where timeframe = ? and symbol in ({marks}) and status != 'unrecoverable'
                    order by source""",
                (timeframe, *symbols),
            )
        ]
        if len(held) > 1:
            raise InvalidInputError(
                f"{', '.join(symbols)} {timeframe} is held from several sources "
                f"({', '.join(held)}); say which with source="
            )
        return held[0] if held else None

    # -- fetching ------------------------------------------------------------------------

    def _bounds(
        self,
        src: Source,
        timeframe: str,
        start: str | date | datetime | None,
        end: str | date | datetime | None,
    ) -> tuple[datetime, datetime]:
        now = self._now()
        e = to_utc(end, "end") or now
        s = to_utc(start, "start")
        if s is None:
            limits = src.capabilities.limits(timeframe)
            default = DEFAULT_HISTORY["daily" if timeframe in SESSION_TIMEFRAMES else "intraday"]
            s = min(e, now) - ((limits.lookback if limits else None) or default)
        if e <= s:
            raise InvalidInputError(f"end ({e:%Y-%m-%d %H:%M}) must be after start ({s:%Y-%m-%d})")
        return s, e

    def ingest(
        self,
        symbols: Sequence[str],
        timeframe: str,
        start: str | date | datetime | None = None,
        end: str | date | datetime | None = None,
        *,
        source: str | None = None,
        force_refresh: bool = False,
        progress: ProgressFn | None = None,
    ) -> IngestReport:
        """Fetch the missing ranges of every symbol into the lake.

        A symbol that fails (the source raises) is recorded as a failed fetch run and the
        others go on; what was committed before the failure stays committed.
        """
        src, timeframe = self._series(source, parse_timeframe(timeframe))
        symbols = [validate_symbol(s) for s in symbols]
        s, e = self._bounds(src, timeframe, start, end)
        return self._ingest(src, symbols, timeframe, s, e, force_refresh, progress)

    def _series(self, source: str | None, timeframe: str) -> tuple[Source, str]:
        """The source asked for, once it is known to serve ``timeframe`` (parsed)."""
        src = self.source(source)
        if not src.capabilities.supports(timeframe):
            what = {TICK: "tick data", FUNDING: "funding rates"}.get(timeframe, f"{timeframe} bars")
            raise UnsupportedRequestError(
                f"source {src.name!r} has no {what}; it serves {', '.join(src.capabilities.served)}"
            )
        return src, timeframe

    def _ingest(
        self,
        src: Source,
        symbols: Sequence[str],
        timeframe: str,
        s: datetime,
        e: datetime,
        force_refresh: bool = False,
        progress: ProgressFn | None = None,
    ) -> IngestReport:
        """:meth:`ingest` once its arguments are checked (symbols validated, timeframe
        parsed and served, bounds in UTC)."""
        report = IngestReport(src.name, timeframe)
        t0 = time.perf_counter()
        infos: dict[str, dict[str, Any]] = {}
        with self.lake.writer():
            try:
                for i, sym in enumerate(symbols):
                    if progress:
                        progress(sym, i, len(symbols))
                    res = self._ingest_symbol(src, sym, timeframe, s, e, force_refresh, infos)
                    report.results.append(res)
            finally:  # a source that cannot be reached stops the run: keep what landed
                if infos:
                    self.lake.write_symbols(src.name, infos)
                self.lake.manifest.write_mirror(self.paths.lake / "_manifest")
        if progress:
            progress("", len(symbols), len(symbols))
        report.duration_s = time.perf_counter() - t0
        return report

    def _ingest_symbol(
        self,
        src: Source,
        symbol: str,
        timeframe: str,
        start: datetime,
        end: datetime,
        force_refresh: bool,
        infos: dict[str, dict[str, Any]],
    ) -> SymbolResult:
        m = self.lake.manifest
        now = self._now()
        covered = m.coverage(src.name, symbol, timeframe)
        p = plan(src.capabilities, timeframe, start, end, covered, now, force_refresh)
        for us, ue in p.unreachable:
            m.add_coverage(src.name, symbol, timeframe, from_us(us), from_us(ue), "unrecoverable")
        result = SymbolResult(symbol, "cached")
        for cs, ce in p.fetch_ranges:
            run = m.start_fetch_run(src.name, symbol, timeframe, cs, ce)
            t0 = time.perf_counter()
            try:
                fr, w, forming_from = self._fetch_and_write(src, symbol, timeframe, cs, ce, run)
                if fr.actions is not None and fr.actions.num_rows:
                    self.lake.write_actions(src.name, symbol, fr.actions, fetch_run_id=run)
            except Exception as exc:
                msg = (
                    str(exc) if isinstance(exc, DuckmarketError) else f"{type(exc).__name__}: {exc}"
                )
                attempts = getattr(exc, "attempts", 0) or 1
                m.finish_fetch_run(
                    run,
                    "failed",
                    api_calls=attempts,
                    duration_s=time.perf_counter() - t0,
                    error=msg[:2000],
                )
                if isinstance(exc, SourceUnreachableError):
                    raise
                result.status, result.error = "failed", msg
                result.api_calls += attempts
                return result
            if fr.symbol_info:
                infos[symbol] = fr.symbol_info
            status = "fetched" if w.rows_written else "empty"
            # a bar still forming is held but not covered: the next run fetches it again
            cover_end = ce if forming_from is None else max(cs, min(ce, forming_from))
            if cover_end > cs:
                m.add_coverage(src.name, symbol, timeframe, cs, cover_end, status, run)
            m.finish_fetch_run(
                run,
                "ok" if w.rows_written else "empty",
                rows=w.rows_written,
                api_calls=fr.api_calls,
                duration_s=time.perf_counter() - t0,
            )
            result.rows += w.rows_written
            result.rejected += w.rejected
            result.api_calls += fr.api_calls
            result.status = "ok" if result.rows else "empty"
        return result

    def _fetch_and_write(
        self, src: Source, symbol: str, timeframe: str, start: datetime, end: datetime, run: int
    ) -> tuple[FetchResult, WriteReport, datetime | None]:
        """One source call for one range, landed in the dataset the timeframe belongs to;
        also the open time of the first bar still forming (None when every bar is final)."""
        if dataset_of(timeframe) == "ticks":
            fr = src.fetch_ticks(symbol, start, end)
            ticks = fr.ticks if fr.ticks is not None else fr.bars.slice(0, 0)
            return fr, self.lake.write_ticks(src.name, symbol, ticks, fetch_run_id=run), None
        if dataset_of(timeframe) == "funding_rates":
            fr = src.fetch_funding(symbol, start, end)
            funding = fr.funding if fr.funding is not None else SOURCE_FUNDING_SCHEMA.empty_table()
            return fr, self.lake.write_funding(src.name, symbol, funding, fetch_run_id=run), None
        fr = src.fetch_bars(symbol, timeframe, start, end)
        w = self.lake.write_bars(src.name, symbol, timeframe, fr.bars, fetch_run_id=run)
        forming_from = None
        if w.rows_written and "is_final" in fr.bars.column_names:
            pending = fr.bars.filter(pc.invert(pc.fill_null(fr.bars.column("is_final"), True)))
            if pending.num_rows:
                forming_from = pc.min(pc.cast(pending.column("ts"), TS_TYPE)).as_py()
        return fr, w, forming_from

    def import_file(
        self,
        path: str | os.PathLike[str],
        *,
        symbol: str,
        timeframe: str = "1d",
        mapping: dict[str, str] | None = None,
        timezone: str | None = None,
        source: str = "csv",
        symbol_info: Mapping[str, str] | None = None,
        split_adjusted: bool | None = None,
        date_format: str | None = None,
    ) -> WriteReport:
        """Import a local CSV or Parquet file (yfinance export or generic shape).

        Prices are converted to as-traded, dividends and splits go to corporate_actions,
        unparsable lines are quarantined with their reason, and the file's span is recorded
        as coverage of ``source``. ``symbol_info`` describes the symbol (name, asset_class,
        exchange, currency, timezone, calendar), which no file says. A file with a symbol
        column contributes its rows for ``symbol``; :meth:`import_files` imports every
        symbol of a long file, or a folder of files. ``split_adjusted`` overrides the
        reader's judgement of whether prices are split-adjusted (see
        :func:`ingest.sources.csv.read_bar_file`)."""
        from .sources.csv import read_bar_file

        symbol = validate_symbol(symbol)
        tf = normalize_timeframe(timeframe)
        imported = read_bar_file(
            path,
            timeframe=tf,
            mapping=mapping,
            timezone=timezone,
            split_adjusted=split_adjusted,
            symbol=symbol,
            date_format=date_format,
        )
        with self.lake.writer():
            report = self._land_imported(source, symbol, tf, imported)
            self.lake.write_symbols(source, {symbol: dict(symbol_info or {})})
            self.lake.manifest.write_mirror(self.paths.lake / "_manifest")
        return report

    def import_files(
        self,
        paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        symbol: str | None = None,
        timeframe: str | None = None,
        mapping: dict[str, str] | None = None,
        timezone: str | None = None,
        source: str = "csv",
        symbol_info: Mapping[str, str] | None = None,
        split_adjusted: bool | None = None,
        date_format: str | None = None,
        progress: ProgressFn | None = None,
    ) -> list[ImportResult]:
        """Import files and folders of bars, one series per symbol and timeframe.

        * a file with a symbol column (``symbol``/``ticker``, or mapped with
          ``{"Ticker": "symbol"}``) holds many symbols: each becomes its own series;
        * a file without one is the series of ``symbol``, else of its file name
          (``AAPL.csv`` -> ``AAPL``);
        * a folder is its CSV and Parquet files; a folder laid out as zipline's ``csvdir``
          (``daily/AAPL.csv``, ``minute/AAPL.csv``) gives 1d and 1m series.

        ``timeframe`` defaults to 1d (or the csvdir folder's). A file that cannot be read
        is reported in its :class:`ImportResult` (``error``) and the others go on; bad
        input as a whole (no such path, an empty folder, ``symbol`` with a folder) raises
        :class:`InvalidInputError` before anything is written."""
        from .sources.csv import read_bar_file, read_bar_files

        items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        if not items:
            raise InvalidInputError("no file or folder to import")
        tf = normalize_timeframe(timeframe) if timeframe is not None else None
        jobs = [job for item in items for job in _import_jobs(Path(item).expanduser(), tf)]
        if symbol is not None:
            symbol = validate_symbol(symbol)
            if any(job[2] for job in jobs):
                raise InvalidInputError(
                    "--symbol names the series of one file; the files of a folder are named "
                    "by their file names (or their symbol column): leave --symbol out"
                )
        results: list[ImportResult] = []
        info = dict(symbol_info or {})
        try:
            for i, (path, job_tf, _in_folder) in enumerate(jobs):
                if progress is not None:
                    progress(path.name, i, len(jobs))
                try:
                    if symbol is not None:
                        series = {
                            symbol: read_bar_file(
                                path,
                                timeframe=job_tf,
                                mapping=mapping,
                                timezone=timezone,
                                split_adjusted=split_adjusted,
                                symbol=symbol,
                                date_format=date_format,
                            )
                        }
                        unusable: list[tuple[int, str, str]] = []
                    else:
                        series, unusable = read_bar_files(
                            path,
                            timeframe=job_tf,
                            mapping=mapping,
                            timezone=timezone,
                            split_adjusted=split_adjusted,
                            date_format=date_format,
                        )
                        if "" in series:  # no symbol column: the file's name
                            series = {_symbol_of_file(path): series.pop("")}
                except DuckmarketError as exc:
                    results.append(ImportResult(str(path), "", job_tf, error=str(exc)))
                    continue
                with self.lake.writer():
                    if unusable:
                        self.lake.write_rejected_lines("bars", source, "", job_tf, unusable)
                        results.append(
                            ImportResult(
                                str(path),
                                "",
                                job_tf,
                                rejected=len(unusable),
                                notes=[f"{len(unusable)} row(s) name no usable symbol"],
                            )
                        )
                    for sym, imported in series.items():
                        rep = self._land_imported(source, sym, job_tf, imported)
                        results.append(
                            ImportResult(
                                str(path),
                                sym,
                                job_tf,
                                rows=rep.rows_written,
                                rejected=rep.rejected,
                                notes=list(imported.notes),
                            )
                        )
                    self.lake.write_symbols(source, {sym: dict(info) for sym in series})
            if progress is not None:
                progress("", len(jobs), len(jobs))
        finally:
            if any(r.symbol for r in results):
                with self.lake.writer():
                    self.lake.manifest.write_mirror(self.paths.lake / "_manifest")
        return results

    def _land_imported(self, source: str, symbol: str, tf: str, imported: Any) -> WriteReport:
        """Write one imported series (bars, actions, quarantined rows) with its fetch run
        and coverage. The caller holds the writer lock."""
        m = self.lake.manifest
        bars = imported.bars
        lo, hi = _span(bars, tf)
        run = m.start_fetch_run(source, symbol, tf, lo, hi)
        t0 = time.perf_counter()
        report = self.lake.write_bars(source, symbol, tf, bars, fetch_run_id=run)
        if imported.actions is not None and imported.actions.num_rows:
            self.lake.write_actions(source, symbol, imported.actions, fetch_run_id=run)
        if imported.rejects:
            self.lake.write_rejected_lines("bars", source, symbol, tf, imported.rejects)
            report.rejected += len(imported.rejects)
        if report.rows_written:
            m.add_coverage(source, symbol, tf, lo, hi, "fetched", run)
        m.finish_fetch_run(
            run,
            "ok" if report.rows_written else "empty",
            rows=report.rows_written,
            api_calls=0,
            duration_s=time.perf_counter() - t0,
        )
        return report

    # -- reading -------------------------------------------------------------------------

    def get_ohlcv(
        self,
        symbol: str,
        timeframe: str = "1d",
        start: str | date | datetime | None = None,
        end: str | date | datetime | None = None,
        force_refresh: bool = False,
        source: str | None = None,
    ) -> pl.DataFrame:
        """Raw (as-traded) bars of one symbol, fetching whatever is not yet held.

        Without ``source``, the source the lake holds the series from (else the default
        source). Raises the source's error when the fetch fails; use :meth:`ingest` to
        collect failures instead."""
        symbol = validate_symbol(symbol)
        tf = normalize_timeframe(timeframe)
        src, tf = self._series(self._holder([symbol], tf, source), tf)
        s, e = self._bounds(src, tf, start, end)
        report = self._ingest(src, [symbol], tf, s, e, force_refresh)
        if report.failed:
            raise_for(report.failed[0])
        return _frame(self.lake.read_bars(src.name, symbol, tf, s, e), symbol)

    def get_ohlcv_multi(
        self,
        symbols: Iterable[str],
        timeframe: str = "1d",
        start: str | date | datetime | None = None,
        end: str | date | datetime | None = None,
        force_refresh: bool = False,
        source: str | None = None,
    ) -> pl.DataFrame:
        """Raw bars of several symbols in one long frame (symbol, ts, ...), sorted."""
        syms = [validate_symbol(s) for s in symbols]
        tf = normalize_timeframe(timeframe)
        src, tf = self._series(self._holder(syms, tf, source), tf)
        s, e = self._bounds(src, tf, start, end)
        report = self._ingest(src, syms, tf, s, e, force_refresh)
        if report.failed:
            raise_for(report.failed[0], more=len(report.failed) - 1)
        frames = [_frame(self.lake.read_bars(src.name, sym, tf, s, e), sym) for sym in syms]
        return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()

    def get_ticks(
        self,
        symbol: str,
        start: str | date | datetime,
        end: str | date | datetime,
        force_refresh: bool = False,
        source: str | None = None,
    ) -> pl.DataFrame:
        """Trades of one symbol (ts, seq, price, size, side, venue), fetching what is missing."""
        symbol = validate_symbol(symbol)
        src, tf = self._series(self._holder([symbol], TICK, source), TICK)
        s, e = self._bounds(src, tf, start, end)
        report = self._ingest(src, [symbol], tf, s, e, force_refresh)
        if report.failed:
            raise_for(report.failed[0])
        return _frame(self.lake.read_ticks(src.name, symbol, s, e), symbol)

    def get_funding(
        self,
        symbol: str,
        start: str | date | datetime | None = None,
        end: str | date | datetime | None = None,
        force_refresh: bool = False,
        source: str | None = None,
    ) -> pl.DataFrame:
        """Funding payments of one perpetual swap (ts, rate, interval_hours, ...), fetching
        what is missing."""
        symbol = validate_symbol(symbol)
        src, tf = self._series(self._holder([symbol], FUNDING, source), FUNDING)
        s, e = self._bounds(src, tf, start, end)
        report = self._ingest(src, [symbol], tf, s, e, force_refresh)
        if report.failed:
            raise_for(report.failed[0])
        return _frame(self.lake.read_funding(src.name, symbol, s, e), symbol)

    # -- housekeeping --------------------------------------------------------------------

    def get_cache_stats(
        self,
        *,
        source: str | None = None,
        symbol: str | None = None,
        timeframe: str | None = None,
    ) -> dict[str, Any]:
        """What the lake holds: totals and one row per (dataset, source, timeframe), for
        every series or those of ``source``, ``symbol`` and ``timeframe``."""
        clauses, params = ["superseded_at is null"], []
        tf = None if timeframe is None else parse_timeframe(timeframe)
        dataset = None if tf is None else dataset_of(tf)
        for column, value in (
            ("source", None if source is None else lake_source_name(source)),
            ("symbol", None if symbol is None else validate_symbol(symbol)),
            ("timeframe", tf if dataset == "bars" else None),
            # tick and funding files carry no timeframe
            ("dataset", dataset if dataset not in (None, "bars") else None),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = " and ".join(clauses)
        rows = self.lake.manifest.query(
            f"""select dataset, source, timeframe, count(distinct symbol) as symbols,
                      count(*) as files, sum(rows) as rows, sum(bytes) as bytes,
                      min(min_us) as min_us, max(max_us) as max_us
               from data_files where {where} and dataset != 'rejects'
               group by dataset, source, timeframe order by dataset, source, timeframe""",
            params,
        )
        groups = []
        for r in rows:
            g = dict(r)
            g["first"] = from_us(g.pop("min_us")) if r["min_us"] is not None else None
            g["last"] = from_us(g.pop("max_us")) if r["max_us"] is not None else None
            groups.append(g)
        runs = self.lake.manifest.query(
            "select status, count(*) as n, sum(api_calls) as calls from fetch_runs group by 1"
        )
        rejects = self.lake.manifest.query(
            "select coalesce(sum(rows), 0) as n from data_files "
            "where superseded_at is null and dataset = 'rejects'"
        )[0]["n"]
        return {
            "data_dir": str(self.paths.root),
            "symbols": self.lake.manifest.query(
                f"""select count(*) as n from (select distinct source, symbol from data_files
                   where {where} and dataset = 'bars')""",
                params,
            )[0]["n"],
            "files": sum(g["files"] for g in groups),
            "rows": sum(g["rows"] for g in groups if g["dataset"] == "bars"),
            "bytes": sum(g["bytes"] for g in groups),
            "rejected_rows": rejects,
            "fetch_runs": {r["status"]: r["n"] for r in runs},
            "api_calls": sum(r["calls"] or 0 for r in runs),
            "groups": groups,
            "last_build": self._last_build(),
        }

    def _last_build(self) -> dict[str, Any] | None:
        """The latest warehouse build: status (running, ok, failed, killed), when, how long,
        its error. A build recorded as running whose process is gone was killed."""
        run = self.lake.manifest.last_build_run(None)
        if run is None:
            return None
        status = str(run["status"])
        if status == "running" and not _process_alive(run.get("pid")):
            status = "killed"
        error = run["error"]
        if status == "killed" and not error:
            error = "the build process died before it finished (killed or crashed)"
        return {
            "build_id": run["build_id"],
            "status": status,
            "started_at": from_us(int(run["started_at"])),
            "duration_s": run["duration_s"],
            "error": error,
            "pid": run.get("pid"),
        }

    def clear_cache(
        self,
        symbol: str | None = None,
        timeframe: str | None = None,
        source: str | None = None,
        *,
        dry_run: bool = False,
    ) -> int:
        """Remove everything, one symbol, or one symbol's timeframe (``tick`` for its trades);
        returns the files removed (with ``dry_run``, the files that would be: see
        :meth:`files_to_clear` for their paths). A symbol the lake does not hold is an
        error, not a silent no-op."""
        symbol = None if symbol is None else validate_symbol(symbol)
        timeframe = None if timeframe is None else parse_timeframe(timeframe)
        source = None if source is None else lake_source_name(source)
        if symbol is not None:
            held = self.lake.manifest.query(
                "select 1 from coverage where symbol = ? union all "
                "select 1 from data_files where symbol = ? and superseded_at is null limit 1",
                (symbol, symbol),
            )
            if not held:
                known = [
                    r["symbol"]
                    for r in self.lake.manifest.query(
                        "select distinct symbol from data_files where superseded_at is null "
                        "and symbol is not null order by 1 limit 20"
                    )
                ]
                raise InvalidInputError(
                    f"the lake holds nothing for {symbol!r} (it holds "
                    f"{', '.join(known) or 'no symbol yet'})"
                )
        if dry_run:
            return len(self.lake.files_to_clear(symbol, timeframe, source))
        n = self.lake.clear(symbol=symbol, timeframe=timeframe, source=source)
        with self.lake.writer():
            self.lake.manifest.write_mirror(self.paths.lake / "_manifest")
        return n

    def files_to_clear(
        self, symbol: str | None = None, timeframe: str | None = None, source: str | None = None
    ) -> list[str]:
        """Paths (relative to the lake) that :meth:`clear_cache` would remove."""
        return [
            f.path
            for f in self.lake.files_to_clear(
                None if symbol is None else validate_symbol(symbol),
                timeframe,
                None if source is None else lake_source_name(source),
            )
        ]

    def verify(self, repair: bool = True) -> VerifyReport:
        report = self.lake.verify(repair=repair)
        if repair:
            with self.lake.writer():
                self.lake.manifest.write_mirror(self.paths.lake / "_manifest")
        return report


def _import_jobs(path: Path, timeframe: str | None) -> list[tuple[Path, str, bool]]:
    """(file, timeframe, came from a folder) for each file a path stands for."""
    if path.is_file():
        return [(path, timeframe or "1d", False)]
    if not path.is_dir():
        raise InvalidInputError(f"{path}: no such file or folder")

    def files(folder: Path) -> list[Path]:
        return sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in _IMPORTABLE
        )

    subs = {tf: path / name for name, tf in _CSVDIR.items() if (path / name).is_dir()}
    if subs:  # zipline csvdir layout
        if timeframe is not None:
            if timeframe not in subs:
                raise InvalidInputError(
                    f"{path} is a csvdir folder with {', '.join(sorted(_CSVDIR))} sub-folders;"
                    f" it has no {timeframe} bars (found: {', '.join(subs)})"
                )
            subs = {timeframe: subs[timeframe]}
        jobs = [(f, tf, True) for tf, folder in subs.items() for f in files(folder)]
    else:
        jobs = [(f, timeframe or "1d", True) for f in files(path)]
    if not jobs:
        raise InvalidInputError(
            f"{path}: no CSV or Parquet file in this folder (looked for "
            f"{', '.join('*' + e for e in _IMPORTABLE)}"
            + (", in daily/ and minute/)" if subs else ")")
        )
    return jobs


def _process_alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return True  # not recorded: cannot tell, so not called dead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _symbol_of_file(path: Path) -> str:
    """The symbol a per-symbol file is named after (``AAPL.csv`` -> ``AAPL``)."""
    try:
        return validate_symbol(path.stem)
    except DuckmarketError as exc:
        raise InvalidInputError(
            f"{path}: the file name {path.stem!r} is not a usable symbol ({exc}); "
            "rename the file or say --symbol"
        ) from None


def _span(bars: pa.Table, timeframe: str) -> tuple[datetime, datetime]:
    """[first bar, end of the last bar) of a batch."""
    from .timeframes import bar_length

    if bars.num_rows == 0:
        now = datetime.now(UTC)
        return now, now
    ts = pc.cast(bars.column("ts"), TS_TYPE)
    lo, hi = pc.min(ts).as_py(), pc.max(ts).as_py()
    return lo, hi + bar_length(timeframe)


def raise_for(failure: SymbolResult, more: int = 0) -> None:
    from .errors import SourceError

    extra = f" (and {more} more symbol(s) failed)" if more > 0 else ""
    raise SourceError(f"fetching {failure.symbol} failed: {failure.error}{extra}")


def _frame(table: pa.Table, symbol: str) -> pl.DataFrame:
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    return df.select(pl.lit(symbol).alias("symbol"), pl.all())
