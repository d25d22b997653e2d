"""``duckmarket report`` and ``duckmarket artifacts``: parse, call the warehouse, print.

:func:`add_report_commands` adds both commands to the top-level subparsers of
``duckmarket.cli.build_parser``; handlers read ``args.paths`` (the data root) as every
command does, and raise :class:`ingest.errors.DuckmarketError` for what a user can get
wrong (``cli.main`` prints those as one line).
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

out = Console(width=None if sys.stdout.isatty() else 120)

__all__ = ["add_report_commands"]


# --- report -------------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    from warehouse.report import write_report

    path = write_report(args.paths, args.out, symbol=args.symbol, pair=args.pair)
    size = path.stat().st_size / 1024 / 1024
    out.print(
        f"wrote {escape(str(path))} ({size:.1f} MiB, self-contained: open it in a browser, "
        "no network needed)",
        highlight=False,
    )
    return 0


# --- artifacts ------------------------------------------------------------------------------


def _when(ts: object) -> str:
    return f"{ts:%Y-%m-%d %H:%M}" if hasattr(ts, "strftime") else "-"


def cmd_artifacts_list(args: argparse.Namespace) -> int:
    from warehouse.artifacts import format_metrics, list_artifacts

    artifacts = list_artifacts(args.paths, name=getattr(args, "name", None))
    if args.json:
        print(json.dumps([a.to_dict() for a in artifacts], indent=1))
        return 0
    if not artifacts:
        out.print(
            "no model artifacts registered yet (duckmarket artifacts register FILE "
            "--model-type T --version V --feature-set technical --split N)",
            highlight=False,
        )
        return 0
    t = Table(show_lines=False)
    for col in ("id", "name", "version", "type", "feature set", "split", "files", "metrics",
                "sha256", "registered (UTC)"):  # fmt: skip
        t.add_column(col, overflow="fold")
    for a in artifacts:
        t.add_row(
            str(a.artifact_id),
            a.name,
            a.version,
            a.model_type,
            a.feature_set,
            str(a.split["split_id"]) if a.split else "-",
            str(len(a.files)),
            format_metrics(a.metrics),
            a.sha256[:12],
            _when(a.registered_at),
        )
    out.print(t)
    return 0


def cmd_artifacts_register(args: argparse.Namespace) -> int:
    from warehouse.artifacts import register_artifact

    a = register_artifact(
        args.paths,
        args.file,
        model_type=args.model_type,
        version=args.version,
        feature_set=args.feature_set,
        feature_version=args.feature_version,
        split_id=args.split,
        metrics=args.metrics,
        symbols=args.symbols,
        name=args.name,
        notes=args.notes,
    )
    if args.json:
        print(json.dumps(a.to_dict(), indent=1))
        return 0
    split = (
        f"split {a.split['split_id']} (train {str(a.split['train_start_ts'])[:10]} to "
        f"{str(a.split['train_end_ts'])[:10]}, validation to "
        f"{str(a.split['validation_end_ts'])[:10]})"
        if a.split
        else "no split"
    )
    out.print(
        f"registered artifact {a.artifact_id}: {escape(a.name)} {escape(a.version)} "
        f"({escape(a.model_type)}, sha256 {a.sha256[:12]}), {a.feature_set}, {split}, "
        f"trained on {len(a.files)} lake file(s) (fingerprint {a.data_files_fingerprint[:12]})",
        highlight=False,
    )
    newer = sum(f.superseded_at is not None for f in a.files)
    if newer:
        out.print(
            f"note: {newer} of those files have a newer version in the lake than the published "
            "features were built from (duckmarket build refreshes the features)",
            highlight=False,
        )
    return 0


def cmd_artifacts_show(args: argparse.Namespace) -> int:
    from warehouse.artifacts import check_artifact, get_artifact

    a = get_artifact(args.paths, args.artifact)
    problems = check_artifact(args.paths, a)
    if args.json:
        print(json.dumps({**a.to_dict(), "problems": problems}, indent=1))
        return 0
    facts = [
        ("artifact", f"{a.artifact_id}: {a.name} {a.version} ({a.model_type})"),
        ("file", f"{a.path} ({a.bytes:,} bytes)"),
        ("sha256", a.sha256),
        ("metrics", json.dumps(a.metrics, sort_keys=True)),
        ("feature set", f"{a.feature_set} (definition {a.feature_definition_sha256[:12]})"),
        (
            "split",
            (
                f"{a.split['split_id']} ({a.split.get('split_mode')}): train "
                f"{a.split['train_start_ts']} to {a.split['train_end_ts']}, validation "
                f"{a.split['validation_start_ts']} to {a.split['validation_end_ts']}"
            )
            if a.split
            else "-",
        ),
        ("marts set", a.marts_set or "-"),
        ("data files", f"{len(a.files)}, fingerprint {a.data_files_fingerprint}"),
        ("registered", f"{_when(a.registered_at)} UTC"),
    ]
    if a.notes:
        facts.append(("notes", a.notes))
    for k, v in facts:
        out.print(f"{k:>12}: {escape(v)}", highlight=False)
    t = Table(show_lines=False)
    for col in ("file", "dataset", "symbol", "rows", "from", "to", "sha256", "now"):
        t.add_column(col, overflow="fold")
    for f in a.files:
        t.add_row(
            str(f.file_id),
            f.dataset,
            f.symbol or "-",
            f"{f.rows:,}",
            _when(f.min_ts),
            _when(f.max_ts),
            f.sha256[:12],
            "live" if f.superseded_at is None else f"replaced {_when(f.superseded_at)}",
        )
    out.print(t)
    for p in problems:
        out.print(f"[yellow]changed:[/yellow] {escape(p)}", highlight=False)
    if not problems:
        out.print("unchanged: the artifact and every file it was trained on are as registered")
    return 0


# --- wiring ---------------------------------------------------------------------------------


def add_report_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``report`` and ``artifacts`` to the top-level subparsers."""
    rep = sub.add_parser(
        "report",
        help="one self-contained HTML page with charts: coverage, quality, prices, pairs, runs",
        description=(
            "Write the report: coverage heatmap, quality over time, a symbol's raw vs adjusted "
            "prices with its ex-dates, a pair's spread with its OU bands, recent update runs "
            "and revisions, model artifacts. One file that works offline (plotly.js inlined)."
        ),
    )
    rep.add_argument("--out", "-o", metavar="FILE", help="where (default: <data>/report.html)")
    rep.add_argument("--symbol", help="the price chart's symbol (default: most actions)")
    rep.add_argument(
        "--pair", metavar="PAIR_ID", help="the spread chart's pair, e.g. SYN000_SYN001"
    )
    rep.set_defaults(func=cmd_report)

    art = sub.add_parser(
        "artifacts",
        help="trained models traced to their features, split and lake files (list, register)",
        description=(
            "Without a subcommand: list the registered model artifacts. `register` records a "
            "trained model's file (SHA-256), type, version and metrics with the feature set, "
            "the walk-forward split and the lake files it was trained on; `show` traces one "
            "and says what changed since."
        ),
    )
    art.add_argument("--json", action="store_true", help="machine-readable")
    art.set_defaults(func=cmd_artifacts_list, name=None)
    asub = art.add_subparsers(dest="artifacts_command", metavar="SUBCOMMAND")

    ls = asub.add_parser("list", help="every registered model (the default)")
    ls.add_argument("--name", help="only this model's versions")
    ls.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    ls.set_defaults(func=cmd_artifacts_list)

    reg = asub.add_parser(
        "register",
        help="record a trained model with the data it was trained on",
        epilog="example: duckmarket artifacts register model.pkl --model-type lightgbm "
        "--version 3 --feature-set technical --split 12 --metrics '{\"auc\": 0.61}'",
    )
    reg.add_argument("file", help="the model artifact (a file, or a saved model's folder)")
    reg.add_argument("--model-type", required=True, help="e.g. lightgbm, sklearn, torch")
    reg.add_argument("--version", required=True, help="the model's version, e.g. 3 or 2024.06")
    reg.add_argument(
        "--feature-set",
        required=True,
        metavar="NAME",
        help="the feature set it read: technical, technical_v1 or features_technical_v1",
    )
    reg.add_argument(
        "--feature-version", type=int, metavar="N", help="the set's version (default newest)"
    )
    reg.add_argument(
        "--split", type=int, metavar="ID", help="walk_forward_splits.split_id it was trained on"
    )
    reg.add_argument("--metrics", metavar="JSON|FILE", help="e.g. '{\"auc\": 0.61}' or m.json")
    reg.add_argument(
        "--symbols", nargs="+", metavar="SYMBOL", help="only these symbols (default all)"
    )
    reg.add_argument("--name", help="the model's name (default: the file's name)")
    reg.add_argument("--notes", help="free text kept with the artifact")
    reg.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    reg.set_defaults(func=cmd_artifacts_register)

    sh = asub.add_parser("show", help="one artifact, its lake files, and what changed since")
    sh.add_argument("artifact", help="its id, or NAME / NAME@VERSION")
    sh.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    sh.set_defaults(func=cmd_artifacts_show)
