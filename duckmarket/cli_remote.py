"""The ``duckmarket`` commands for object storage: parse, call, print.

* ``duckmarket push s3://bucket/prefix``: the lake and the current mart set as one
  snapshot (only changed files are uploaded; ``CURRENT`` is replaced last);
* ``duckmarket pull s3://bucket/prefix``: the snapshot's lake into this data root, to
  build here;
* ``duckmarket sql --from s3://bucket/prefix "select ..."`` (in :mod:`duckmarket.cli`):
  the marts straight from the bucket, through DuckDB's httpfs.

Credentials come from the AWS variables; ``--endpoint-url`` (or ``AWS_ENDPOINT_URL``) names
an S3-compatible service other than AWS.
"""

from __future__ import annotations

import argparse

from .console import out, progress

__all__ = ["add_remote_commands"]


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def cmd_push(args: argparse.Namespace) -> int:
    from warehouse.remote import push

    with progress() as bar:
        task = bar.add_task("push", total=None, symbol="")
        report = push(
            args.paths,
            args.url,
            args.endpoint_url,
            keep=args.keep,
            on_file=lambda rel: bar.update(task, advance=1, symbol=rel),
        )
    out.print(
        f"pushed snapshot {report.snapshot_id} to {report.url}: "
        f"{report.uploaded:,} file(s) uploaded ({_mb(report.uploaded_bytes)}), "
        f"{report.copied:,} unchanged copied in the bucket ({_mb(report.copied_bytes)})"
        + (
            f", {report.deleted_snapshots} old snapshot(s) deleted"
            if report.deleted_snapshots
            else ""
        )
    )
    if report.build_id is None:
        out.print("no mart set was published here yet: the snapshot holds the lake only")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from warehouse.remote import pull

    with progress() as bar:
        task = bar.add_task("pull", total=None, symbol="")
        report = pull(
            args.paths,
            args.url,
            args.endpoint_url,
            on_file=lambda rel: bar.update(task, advance=1, symbol=rel),
        )
    out.print(
        f"pulled the lake of snapshot {report.snapshot_id} from {report.url}: "
        f"{report.downloaded:,} file(s) downloaded ({_mb(report.downloaded_bytes)}), "
        f"{report.unchanged:,} already here, {report.removed:,} removed"
    )
    out.print("next: `duckmarket build` builds the marts from it")
    return 0


def add_remote_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for name, func, text in (
        ("push", cmd_push, "publish the lake and the current marts to S3-compatible storage"),
        ("pull", cmd_pull, "make this lake the lake of a bucket's current snapshot"),
    ):
        p = sub.add_parser(name, help=text, description=(__doc__ or "").split("\n\n")[0])
        p.add_argument("url", help="s3://bucket/prefix")
        p.add_argument(
            "--endpoint-url",
            metavar="URL",
            help="an S3-compatible service, e.g. http://127.0.0.1:9000 "
            "(default: AWS_ENDPOINT_URL, else AWS)",
        )
        if name == "push":
            p.add_argument(
                "--keep", type=int, default=2, metavar="N", help="snapshots kept (default 2)"
            )
        p.set_defaults(func=func)
