"""The ``duckmarket`` command: parses arguments, calls the layers' libraries, prints.

It sits above every layer (ingest, warehouse, hotpath, server) and may import any of
them; none of them imports it. Layers are imported inside the handlers, so ``--help``
stays fast and a command loads only what it uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from ingest.errors import DuckmarketError, InvalidInputError
from ingest.paths import ENV_VAR, DataPaths

from .console import err, ingest_summary, out, progress, symbols_from


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _fmt_ts(ts: datetime | None) -> str:
    if ts is None:
        return "-"
    if ts.hour == ts.minute == ts.second == 0:
        return f"{ts:%Y-%m-%d}"
    return f"{ts:%Y-%m-%d %H:%M}"


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _manager(args: argparse.Namespace):  # -> DataManager, imported lazily for a fast --help
    from ingest.manager import DataManager

    return DataManager(args.paths)


def _run_ingest(args: argparse.Namespace, source: str, symbols: list[str], **opts: object) -> int:
    from ingest.manager import DataManager

    dm = DataManager(args.paths)
    if opts:
        from ingest.sources import make

        dm.add_source(make(source, **opts))
    with progress() as bar:
        task = bar.add_task(f"ingest {source} {args.timeframe}", total=len(symbols), symbol="")

        def tick(sym: str, i: int, n: int) -> None:
            bar.update(task, completed=i, symbol=sym)

        report = dm.ingest(
            symbols,
            args.timeframe,
            args.start,
            args.end,
            source=source,
            force_refresh=args.force_refresh,
            progress=tick,
        )
    return ingest_summary(source, report)


def cmd_ingest_synthetic(args: argparse.Namespace) -> int:
    from ingest.sources.synthetic import SyntheticSource

    if args.symbols and all(s.isdigit() for s in args.symbols):
        raise InvalidInputError(
            f"--symbols takes symbols (SYN000 SYN001 ...); for a universe of "
            f"{args.symbols[0]} symbols say --universe {args.symbols[0]}"
        )
    universe = SyntheticSource(seed=args.seed, n_symbols=args.universe)
    symbols = symbols_from(args.symbols, args.symbols_file) or universe.list_symbols()
    return _run_ingest(
        args, "synthetic", list(symbols or []), seed=args.seed, n_symbols=args.universe
    )


def cmd_ingest_yfinance(args: argparse.Namespace) -> int:
    symbols = symbols_from(args.tickers, args.symbols_file)
    if not symbols:
        raise InvalidInputError(
            "name the symbols to fetch (duckmarket ingest yfinance AAPL MSFT) or give a "
            "file of them (--symbols-file universe.txt)"
        )
    return _run_ingest(args, "yfinance", symbols)


def cmd_ingest_csv(args: argparse.Namespace) -> int:
    from ingest.manager import DataManager

    mapping: dict[str, str] = {}
    for item in args.map or []:
        if "=" not in item:
            raise InvalidInputError(f"--map {item!r}: use FILE_COLUMN=FIELD, e.g. --map o=open")
        k, v = (x.strip() for x in item.split("=", 1))
        if k in mapping and mapping[k] != v:
            raise InvalidInputError(
                f"--map maps column {k!r} twice (to {mapping[k]!r} and to {v!r}); a column "
                "can stand for one field"
            )
        twice = [c for c, f in mapping.items() if f == v and c != k]
        if twice:
            raise InvalidInputError(
                f"--map maps columns {twice[0]!r} and {k!r} both to {v!r}; say which one"
            )
        mapping[k] = v
    dm = DataManager(args.paths)
    info = {
        "name": args.name,
        "asset_class": args.asset_class,
        "exchange": args.exchange,
        "currency": args.currency,
        "calendar": args.calendar,
    }
    with progress() as bar:
        task = bar.add_task("import", total=None, symbol="")

        def tick(name: str, i: int, n: int) -> None:
            bar.update(task, total=n, completed=i, symbol=name)

        results = dm.import_files(
            args.files,
            symbol=args.symbol,
            timeframe=args.timeframe,
            mapping=mapping or None,
            timezone=args.timezone,
            source=args.source_name,
            symbol_info={k: v for k, v in info.items() if v is not None},
            split_adjusted={"as-traded": False, "split-adjusted": True}.get(args.prices),
            date_format=args.date_format,
            progress=tick,
        )
    failed = [r for r in results if r.error]
    landed = [r for r in results if not r.error and r.symbol]
    many = len(results) > 20
    for r in results:
        if r.error:
            err.print(f"[red]error:[/red] {escape(r.error)}", highlight=False)
        elif not many or r.rejected:
            where = f"{args.source_name}/{r.symbol}/{r.timeframe}" if r.symbol else "-"
            out.print(
                f"{r.path}: {r.rows:,} rows into {where}, {r.rejected} row(s) quarantined",
                markup=False,
            )
        if not r.error and not many:
            for note in r.notes:
                out.print(f"  {note}", markup=False)
    if landed or len(results) > 1:
        out.print(
            f"csv: {len(landed)} series of {len({r.symbol for r in landed})} symbol(s) from "
            f"{len({r.path for r in results})} file(s), {sum(r.rows for r in landed):,} rows "
            f"written, {sum(r.rejected for r in results):,} row(s) quarantined"
            + ("; files with quarantined rows listed above" if many else "")
        )
    if failed and landed:
        err.print(
            f"{len(failed)} file(s) could not be read; the others are in the lake. "
            "Fix those and re-run the same command: files already imported are not duplicated."
        )
    if failed:
        return 2 if landed else 1  # some files in, or none
    return 0


def _config_path(args: argparse.Namespace) -> Path:
    from .config import default_path

    return Path(args.config).expanduser() if args.config else default_path(args.paths)


def cmd_init(args: argparse.Namespace) -> int:
    from .config import write_example

    path = write_example(_config_path(args), force=args.force)
    out.print(
        f"wrote {path}: the demo universe (synthetic, offline); edit it, then `duckmarket update`"
    )
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    from .config import load_config
    from .update import run_update

    config = load_config(_config_path(args))
    with progress() as bar:
        task = bar.add_task("update", total=None, symbol="")

        def tick(what: str, i: int, n: int) -> None:
            bar.update(task, total=n, completed=i, symbol=what)

        report = run_update(
            args.paths,
            config,
            backfill_days=args.backfill,
            build=False if args.no_build else None,
            progress=tick,
        )
    if args.json:
        print(report.to_json())
        return report.exit_code
    by_status: dict[str, int] = {}
    for s in report.series:
        by_status[s.status] = by_status.get(s.status, 0) + 1
    counts = ", ".join(f"{n} {k}" for k, n in sorted(by_status.items())) or "none"
    out.print(
        f"update {report.status}: {len(report.series)} series ({counts}), "
        f"{report.fetched_rows:,} rows fetched in {report.api_calls} source call(s)"
        + (
            f", {report.refetched_rows:,} re-fetched"
            + (
                f" (backfill of {report.backfill_days} days: {report.revised_rows} bar(s) "
                "revised by the vendor)"
                if report.backfill_days
                else ""
            )
            if report.refetched_rows or report.backfill_days
            else ""
        )
        + f", {report.duration_s:.1f} s",
        highlight=False,
    )
    for s in report.failed:
        err.print(f"[red]failed[/red] {escape(s.source)} {escape(s.symbol)} {s.timeframe}: "
                  f"{escape(s.error or '')}")  # fmt: skip
    for s in report.regressions:
        err.print(f"[yellow]vendor regression?[/yellow] {escape(s.source)} {escape(s.symbol)} "
                  f"{s.timeframe}: {escape(s.regression or '')}")  # fmt: skip
    if report.build is not None:
        b = report.build
        detail = b.get("reason") or b.get("error") or f"{b.get('duration_s', 0)} s"
        out.print(f"build {b['status']}: {escape(str(detail))}", highlight=False)
    for e in report.exports:
        out.print(f"export {e['mart']}: " + (escape(e["error"]) if "error" in e else e["path"]))
    if report.error:
        err.print(f"[red]error:[/red] {escape(report.error)}", highlight=False)
    return report.exit_code


def cmd_status(args: argparse.Namespace) -> int:
    dm = _manager(args)
    stats = dm.get_cache_stats(source=args.source, symbol=args.symbol, timeframe=args.timeframe)
    if args.json:
        print(json.dumps(stats, default=_json_default, indent=1))
        return 0
    if not stats["groups"]:
        out.print(f"the lake at {stats['data_dir']} is empty; try `duckmarket demo`")
        return 0
    t = Table(title=f"duckmarket lake: {stats['data_dir']}")
    for col in ("dataset", "source", "timeframe", "symbols", "files", "rows", "size", "from", "to"):
        t.add_column(
            col, justify="right" if col in ("symbols", "files", "rows", "size") else "left"
        )
    for g in stats["groups"]:
        t.add_row(
            g["dataset"],
            g["source"] or "-",
            g["timeframe"] or "-",
            f"{g['symbols']:,}" if g["dataset"] != "symbols" else "-",
            f"{g['files']:,}",
            f"{g['rows']:,}",
            _fmt_bytes(g["bytes"]),
            _fmt_ts(g["first"]),
            _fmt_ts(g["last"]),
        )
    out.print(t)
    runs = ", ".join(f"{k} {v}" for k, v in sorted(stats["fetch_runs"].items())) or "none"
    out.print(
        f"{stats['symbols']} symbol(s), {stats['rows']:,} bars, {_fmt_bytes(stats['bytes'])}; "
        f"quarantined rows: {stats['rejected_rows']:,}; fetch runs: {runs}"
    )
    build = stats["last_build"]
    if build is None:
        out.print("last build: none yet (duckmarket build)")
    else:
        took = f", {build['duration_s']:.0f} s" if build["duration_s"] is not None else ""
        color = {"ok": "green", "running": "yellow"}.get(build["status"], "red")
        out.print(
            f"last build: [{color}]{build['status']}[/{color}], started "
            f"{build['started_at']:%Y-%m-%d %H:%M:%S} UTC{took}"
            + (f" ({escape(str(build['error']))})" if build["error"] else ""),
            highlight=False,
        )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    dm = _manager(args)
    report = dm.verify(repair=not args.no_repair)
    for p in report.problems:
        state = "repaired" if p.repaired else "found"
        err.print(f"[yellow]{state}[/yellow] {p.kind}: {p.path}: {p.detail}")
    if report.orphans_swept:
        out.print(f"swept {report.orphans_swept} orphaned temporary file(s)")
    if report.ok:
        out.print(f"verify: {report.files_checked} file(s) checked, all match the manifest")
        return 0
    unrepaired = [p for p in report.problems if not p.repaired]
    out.print(
        f"verify: {report.files_checked} file(s) checked, {len(report.problems)} problem(s), "
        f"{len(report.problems) - len(unrepaired)} repaired"
    )
    if unrepaired:
        err.print("run `duckmarket verify` without --no-repair to repair the manifest")
        return 1
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    if args.timeframe and not args.symbol:
        raise InvalidInputError("--timeframe needs --symbol (or clear everything with --all)")
    if not (args.symbol or args.all):
        raise InvalidInputError("say what to clear: --all, or --symbol SYM [--timeframe TF]")
    if args.all and args.symbol:
        raise InvalidInputError("--all clears everything: leave out --symbol, or --all")
    dm = _manager(args)
    what = (
        "everything" if args.all else args.symbol + (f" {args.timeframe}" if args.timeframe else "")
    )
    if args.dry_run:
        files = dm.files_to_clear(symbol=args.symbol, timeframe=args.timeframe, source=args.source)
        dm.clear_cache(args.symbol, args.timeframe, args.source, dry_run=True)  # checks symbol
        for path in files:
            out.print(f"would remove {path}", highlight=False)
        out.print(f"clear {what}: {len(files)} file(s) would be removed (dry run)")
        return 0
    if args.all and not args.yes:
        if not sys.stdin.isatty():
            raise InvalidInputError(
                f"--all removes every file of the lake at {args.paths.lake}; add --yes to confirm"
            )
        answer = input(f"remove every file of the lake at {args.paths.lake}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            out.print("nothing removed")
            return 1
    n = dm.clear_cache(symbol=args.symbol, timeframe=args.timeframe, source=args.source)
    out.print(f"cleared {what}: {n} file(s) removed")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Synthetic universe -> lake -> warehouse, offline; then status and verify."""
    from ingest.manager import DataManager
    from ingest.sources.synthetic import SyntheticSource

    dm = DataManager(args.paths)
    src = SyntheticSource(seed=42, n_symbols=args.universe)
    dm.add_source(src)
    symbols = src.list_symbols() or []
    out.print(f"[bold]1. ingest[/bold] {len(symbols)} synthetic symbols into {args.paths.lake}")
    for tf, start, end in (("1d", "2008-01-01", "2024-01-01"), ("1m", "2023-10-01", "2024-01-01")):
        ns = argparse.Namespace(**vars(args))
        ns.timeframe, ns.start, ns.end, ns.force_refresh = tf, start, end, False
        rc = _run_ingest(ns, "synthetic", symbols)
        if rc:
            return rc
    ns = argparse.Namespace(**vars(args))
    ns.timeframe, ns.start, ns.end, ns.force_refresh = "tick", "2023-12-28", "2023-12-29", False
    rc = _run_ingest(ns, "synthetic", symbols[:2])
    if rc:
        return rc
    cmd_status(
        argparse.Namespace(
            **{**vars(args), "source": None, "symbol": None, "timeframe": None, "json": False}
        )
    )
    if cmd_verify(argparse.Namespace(**{**vars(args), "no_repair": False})):
        return 1
    from warehouse import run_build, summary

    out.print("[bold]2. build[/bold] the warehouse: dbt build as a subprocess, then Parquet marts")
    result = run_build(args.paths, quiet=True)
    kinds: dict[str, int] = {}
    for r in result.results:
        kind = r["unique_id"].split(".", 1)[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    done = ", ".join(f"{n} {k}s" for k, n in sorted(kinds.items()))
    if not result.ok:
        err.print(f"[red]dbt build failed[/red]: {result.error}")
        err.print(result.output[-3000:], markup=False, highlight=False)
        return 1
    out.print(f"dbt build: {done}, all passed in {result.duration_s:.0f} s")
    out.print("[bold]3. summary[/bold]")
    for k, v in summary(args.paths).items():
        out.print(f"  {k}: {v}", highlight=False)
    out.print(
        "\nnext: `duckmarket sql analyses/coverage_report.sql` (or `duckdb -readonly "
        "data/warehouse.duckdb`) for SQL, `duckmarket export bars_adjusted --timeframe 1m` "
        "for the hot path, `duckmarket report` to look, `duckmarket serve` for the API"
    )
    return 0


# --- warehouse --------------------------------------------------------------------------


def cmd_build(args: argparse.Namespace) -> int:
    from warehouse import run_build

    result = run_build(
        args.paths, select=args.select, full_refresh=args.full_refresh, quiet=args.quiet
    )
    if not result.ok:
        print(f"error: {result.error}", file=sys.stderr)
        return 1
    print(f"built in {result.duration_s:.1f}s; {len(result.exported)} marts in {args.paths.marts}")
    if result.unit_tests_skipped and not args.quiet:
        print(
            "(dbt's unit tests were left out: they passed for this version of the project; "
            "--full-refresh runs them again)"
        )
    return 0


def add_build_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("build", help="build the warehouse with dbt and export the marts")
    p.add_argument("--select", "-s", help="dbt node selection, e.g. 'bars_adjusted+'")
    p.add_argument("--full-refresh", action="store_true", help="rebuild incremental marts")
    p.add_argument("--quiet", "-q", action="store_true", help="do not echo dbt's output")
    p.set_defaults(func=cmd_build)


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    from warehouse.marts import connect_marts

    text = args.query
    path = Path(text)
    if text.endswith(".sql") or (len(text) < 4096 and path.is_file()):
        try:
            text = path.read_text()
        except OSError as exc:
            raise InvalidInputError(f"cannot read {args.query}: {exc.strerror}") from None
    if args.source is not None:
        from warehouse.remote import RemoteStore

        con = RemoteStore(args.source, args.endpoint_url).connect()
    else:
        con = connect_marts(args.paths)
    try:
        try:
            table = con.execute(text).to_arrow_table()
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0]
            raise InvalidInputError(f"the query failed: {first}") from None
    finally:
        con.close()
    if args.format == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, sys.stdout.buffer)
        return 0
    if args.format == "json":
        print(json.dumps(table.to_pylist(), default=str))
        return 0
    t = Table(show_lines=False)
    for name in table.column_names:
        t.add_column(name, overflow="fold")
    for row in table.slice(0, args.max_rows).to_pylist():
        t.add_row(*("" if v is None else str(v) for v in row.values()))
    out.print(t)
    more = table.num_rows - args.max_rows
    out.print(
        f"{table.num_rows:,} row(s)"
        + (f"; {more:,} not shown (--max-rows N, or --format csv for all)" if more > 0 else "")
    )
    return 0


def add_sql_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "sql",
        help="run SQL (or a file such as analyses/coverage_report.sql) over the marts",
        description=(
            "Run one query over the published marts (each a view named after its mart, plus "
            "bars_as_of(date)), in memory: the warehouse file is never opened, so it runs "
            "while a build does."
        ),
    )
    p.add_argument("query", help="a SELECT, or a .sql file")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--max-rows", type=int, default=50, metavar="N", help="table: rows shown")
    p.add_argument(
        "--from",
        dest="source",
        metavar="S3_URL",
        help="read the marts of the snapshot `duckmarket push` made at s3://bucket/prefix",
    )
    p.add_argument("--endpoint-url", metavar="URL", help="with --from: an S3-compatible service")
    p.set_defaults(func=cmd_sql)


# --- hot path ---------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    from hotpath import export

    result = export(
        args.mart,
        sql=args.sql,
        out=args.out,
        format=args.format,
        symbols=args.symbols,
        start=args.start,
        end=args.end,
        columns=args.columns,
        prices=args.prices,
        timeframe=args.timeframe,
        data_dir=args.paths,
        checksum=not args.no_checksum,
    )
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    tf = f", timeframe {result.timeframe}" if result.timeframe else ""
    print(
        f"exported {result.rows:,} rows of {len(result.symbols)} symbol(s) to {result.path} "
        f"({result.format}{tf}, {result.bytes / 1e6:,.1f} MB) in {result.seconds:.2f} s"
    )
    if result.missing_symbols:
        print(f"no rows for: {' '.join(result.missing_symbols)}")
    return 0


def add_export_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from hotpath import FORMATS, PRICE_BASES

    p = sub.add_parser(
        "export",
        help="export a mart or a SQL query to a memory-mappable file",
        description=(
            "Export a mart (under data/marts/) or any SQL query yielding symbol and ts "
            "columns to one uncompressed Arrow IPC file sorted by (symbol, ts) with a symbol "
            "index, or to the 64-byte records64 layout. Marts are views in --sql. The file is "
            "written beside its target, renamed into place and recorded in the manifest."
        ),
    )
    p.add_argument("mart", nargs="?", help="mart name, e.g. bars_adjusted")
    p.add_argument("--sql", help="a query instead of a mart, e.g. 'select * from bars_adjusted'")
    p.add_argument("--symbols", nargs="+", metavar="SYMBOL", help="only these symbols")
    p.add_argument(
        "--timeframe",
        "-t",
        help="the bars' timeframe, e.g. 1m (needed when the mart holds several)",
    )
    p.add_argument("--start", help="first instant, inclusive (ISO 8601; UTC unless stated)")
    p.add_argument("--end", help="last instant, exclusive (ISO 8601; UTC unless stated)")
    p.add_argument("--format", choices=list(FORMATS), default="arrow", help="default: arrow")
    p.add_argument("--columns", nargs="+", metavar="COLUMN", help="arrow: only these columns")
    p.add_argument(
        "--prices",
        choices=list(PRICE_BASES),
        help="records64 price basis: raw, split-adjusted or total-return (default: total)",
    )
    p.add_argument("--out", help="output file or directory (default: data/export/<mart>.<format>)")
    p.add_argument(
        "--no-checksum", action="store_true", help="skip the SHA-256 recorded in the manifest"
    )
    p.set_defaults(func=cmd_export)


# --- data server ------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from server import KeyStore, SqlLimits, default_keys_file, is_loopback, serve

    keys_file = Path(args.keys_file) if args.keys_file else default_keys_file(args.paths.root)
    store = KeyStore(keys_file)
    if args.add_key:
        key = store.add(args.add_key, trusted=args.trusted)
        kind = "trusted (may run SQL)" if args.trusted else "read-only"
        print(f"created {kind} key {args.add_key!r} in {keys_file}", file=sys.stderr)
        print("it is shown once; send it as the X-API-Key header:", file=sys.stderr)
        print(key)
        return 0
    if args.revoke_key:
        if not store.revoke(args.revoke_key):
            raise InvalidInputError(f"no key named {args.revoke_key!r} in {keys_file}")
        print(f"revoked key {args.revoke_key!r}", file=sys.stderr)
        return 0
    if args.list_keys:
        for k in store.list():
            print(f"{k.name}\t{'trusted' if k.trusted else 'read-only'}\t{k.created_at}\t{k.id}")
        return 0
    if args.trusted:
        raise InvalidInputError("--trusted goes with --add-key NAME")
    if not (1 <= args.port <= 65535):
        raise InvalidInputError(f"--port {args.port}: use 1-65535")
    if not store.list():
        print(
            f"warning: no API keys in {keys_file}; every request will be refused. "
            "Create one with `duckmarket serve --add-key NAME`",
            file=sys.stderr,
        )
    if not is_loopback(args.host):
        print(
            f"warning: serving on {args.host}, reachable from other machines; API keys travel "
            "in clear text unless --ssl-certfile/--ssl-keyfile are given",
            file=sys.stderr,
        )
    from server import ServerConfig

    config = ServerConfig(
        paths=args.paths,
        keys_file=keys_file,
        sql=SqlLimits(timeout_s=args.sql_timeout, max_rows=args.sql_max_rows),
    )
    serve(
        config,
        args.host,
        args.port,
        log_level=args.log_level,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    return 0


def add_serve_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "serve",
        help="serve the marts over HTTP (REST + Arrow), read-only",
        description=(
            "Serve the Parquet marts read-only over HTTP on 127.0.0.1 (OpenAPI at /docs). "
            "Requests need an API key: create one with --add-key NAME."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--keys-file",
        metavar="PATH",
        help="API keys file (default <data>/server/api_keys.json)",
    )
    p.add_argument("--add-key", metavar="NAME", help="create a key, print it once, and exit")
    p.add_argument("--trusted", action="store_true", help="with --add-key: may use POST /v1/sql")
    p.add_argument("--revoke-key", metavar="NAME", help="delete a key and exit")
    p.add_argument("--list-keys", action="store_true", help="list key names and exit")
    p.add_argument("--sql-timeout", type=float, default=10.0, metavar="S", help="default 10")
    p.add_argument("--sql-max-rows", type=int, default=100_000, metavar="N", help="default 100000")
    p.add_argument("--ssl-certfile", metavar="PATH")
    p.add_argument("--ssl-keyfile", metavar="PATH")
    p.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    p.set_defaults(func=cmd_serve)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="duckmarket",
        description="A DuckDB-centric SQL warehouse for market data.",
    )
    p.add_argument(
        "--data-dir",
        metavar="PATH",
        help=f"data root (default: ${ENV_VAR}, else ./data)",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    ing = sub.add_parser("ingest", help="land market data in the lake (only what is missing)")
    isub = ing.add_subparsers(dest="source", metavar="SOURCE", required=True)

    def common(q: argparse.ArgumentParser, default_tf: str = "1d") -> None:
        q.add_argument("--timeframe", "-t", default=default_tf, help=f"default {default_tf}")
        q.add_argument("--start", help="first date (UTC, ISO), inclusive")
        q.add_argument("--end", help="last date (UTC, ISO), exclusive; default now")
        q.add_argument("--force-refresh", action="store_true", help="re-fetch held ranges too")

    syn = isub.add_parser("synthetic", help="deterministic synthetic universe (offline)")
    syn.add_argument(
        "--universe", type=int, default=30, metavar="N", help="universe size (default 30)"
    )
    syn.add_argument(
        "--symbols", nargs="+", metavar="SYMBOL", help="only these symbols of the universe"
    )
    syn.add_argument("--symbols-file", metavar="FILE", help="only the symbols listed in this file")
    syn.add_argument("--seed", type=int, default=42)
    common(syn, "1m")
    syn.epilog = "--timeframe tick lands trades that aggregate exactly to the 1m bars"
    syn.set_defaults(func=cmd_ingest_synthetic)

    yf = isub.add_parser("yfinance", help="Yahoo Finance via yfinance (needs the network)")
    yf.add_argument("tickers", nargs="*", metavar="SYMBOL")
    yf.add_argument(
        "--symbols-file",
        metavar="FILE",
        help="symbols from a file: one per line, # comments, or a CSV's symbol/ticker column",
    )
    common(yf)
    yf.set_defaults(func=cmd_ingest_yfinance)

    csv = isub.add_parser("csv", help="import CSV or Parquet files (yfinance or generic shape)")
    csv.add_argument(
        "files",
        nargs="+",
        metavar="PATH",
        help="files, or folders of per-symbol files (AAPL.csv; zipline csvdir daily/ minute/)",
    )
    csv.add_argument(
        "--symbol",
        help="the symbol of a one-symbol file (default: its symbol column, else its file name)",
    )
    csv.add_argument(
        "--timeframe", "-t", help="bar length (default 1d; csvdir folders: daily 1d, minute 1m)"
    )
    csv.add_argument(
        "--map",
        nargs="+",
        metavar="COL=FIELD",
        help="column mapping, e.g. o=open Ticker=symbol",
    )
    csv.add_argument(
        "--prices",
        choices=["auto", "as-traded", "split-adjusted"],
        default="auto",
        help="are the prices split-adjusted? auto: judged from the price move at each split "
        "(default)",
    )
    csv.add_argument("--timezone", help="timezone of naive timestamps, e.g. America/New_York")
    csv.add_argument(
        "--date-format",
        metavar="FORMAT",
        help="how the file writes dates, e.g. %%d/%%m/%%Y or '%%m/%%d/%%Y %%H:%%M' (strftime)",
    )
    csv.add_argument("--source-name", default="csv", help="source name in the lake (csv)")
    csv.add_argument("--name", help="the symbol's name, e.g. 'Cal-Maine Foods'")
    csv.add_argument(
        "--asset-class",
        choices=["equity", "etf", "index", "crypto", "fx", "future"],
        help="what the symbol is (pairs are screened within an asset class)",
    )
    csv.add_argument("--exchange", help="MIC of its exchange, e.g. XNAS")
    csv.add_argument("--currency", help="e.g. USD")
    csv.add_argument("--calendar", help="exchange_calendars name for coverage, e.g. XNYS, or 24/7")
    csv.set_defaults(func=cmd_ingest_csv)

    from .cli_ccxt import add_ccxt_commands

    add_ccxt_commands(isub, sub)  # ingest ccxt, and symbols

    from .cli_forex import add_forex_commands

    add_forex_commands(isub)  # ingest dukascopy, ingest oanda

    st = sub.add_parser("status", help="what the lake holds")
    st.add_argument("--source", help="only this source")
    st.add_argument("--symbol", help="only this symbol")
    st.add_argument("--timeframe", help="only this timeframe")
    st.add_argument("--json", action="store_true", help="machine-readable, for scripts")
    st.set_defaults(func=cmd_status)

    ve = sub.add_parser("verify", help="check every file against the manifest and repair it")
    ve.add_argument("--no-repair", action="store_true", help="only report")
    ve.set_defaults(func=cmd_verify)

    cl = sub.add_parser("clear", help="remove all data, one symbol, or a symbol's timeframe")
    cl.add_argument("--all", action="store_true", help="every file of the lake (asks first)")
    cl.add_argument("--symbol", help="one symbol the lake holds")
    cl.add_argument("--timeframe", help="with --symbol: only this timeframe (tick: its trades)")
    cl.add_argument("--source", help="only what came from this source")
    cl.add_argument("--dry-run", action="store_true", help="list what would be removed")
    cl.add_argument("--yes", "-y", action="store_true", help="with --all: do not ask")
    cl.set_defaults(func=cmd_clear)

    de = sub.add_parser("demo", help="synthetic data -> lake -> warehouse, offline")
    de.add_argument(
        "--universe", type=int, default=12, metavar="N", help="synthetic symbols (default 12)"
    )
    de.set_defaults(func=cmd_demo)

    ini = sub.add_parser("init", help="write an example universe file (duckmarket.toml)")
    ini.add_argument("--config", metavar="FILE", help="where (default: <data>/duckmarket.toml)")
    ini.add_argument("--force", action="store_true", help="replace an existing file")
    ini.set_defaults(func=cmd_init)

    up = sub.add_parser(
        "update",
        help="fetch what the universe file lacks, re-fetch recent days, build (for cron)",
        description="Exit codes: 0 all good; 2 partial (some series, the build or an export "
        "failed; what landed is kept); 3 another update or build is running; 4 a source "
        "cannot be reached; 1 a usage or universe-file error.",
    )
    up.add_argument(
        "--config", metavar="FILE", help="universe file (default: <data>/duckmarket.toml)"
    )
    up.add_argument(
        "--backfill",
        type=int,
        metavar="DAYS",
        help="re-download the last DAYS days now and count what the vendor revised",
    )
    up.add_argument("--no-build", action="store_true", help="fetch only")
    up.add_argument("--json", action="store_true", help="print the run report as JSON")
    up.set_defaults(func=cmd_update)

    add_build_command(sub)
    add_sql_command(sub)
    add_export_command(sub)
    add_serve_command(sub)

    from .cli_report import add_report_commands

    add_report_commands(sub)  # report, artifacts

    from .cli_remote import add_remote_commands

    add_remote_commands(sub)  # push, pull

    from .cli_backtests import add_backtest_commands

    add_backtest_commands(sub)  # backtests list, backtests compare
    _data_dir_everywhere(p)
    return p


def _data_dir_everywhere(parser: argparse.ArgumentParser) -> None:
    """``--data-dir`` is accepted after the command too (``duckmarket status --data-dir D``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.add_argument(
                    "--data-dir",
                    metavar="PATH",
                    default=argparse.SUPPRESS,
                    help=f"data root (default: ${ENV_VAR}, else ./data)",
                )
                _data_dir_everywhere(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.paths = DataPaths.from_arg(args.data_dir)
    try:
        return int(args.func(args) or 0)
    except DuckmarketError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted; committed data is kept, re-run to continue")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
