"""What every command module prints with: the two consoles, the progress bar, the symbol
lists of ``--symbols-file``, and the summary of an ingest run."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["err", "ingest_summary", "out", "progress", "symbols_from"]

out = Console(width=None if sys.stdout.isatty() else 120)
#: off a terminal (logs, cron mail, pipes) a message stays on one line, never wrapped
#: in the middle of a path or a command
err = Console(
    stderr=True,
    width=None if sys.stderr.isatty() else 120,
    soft_wrap=not sys.stderr.isatty(),
)


def progress() -> Progress:
    """A progress bar on stderr, shown only on a terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[symbol]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def symbols_from(given: list[str] | None, path: str | None) -> list[str]:
    """Symbols named on the command line, then those of --symbols-file, each once."""
    from ingest.universe import read_symbols_file

    listed = read_symbols_file(path) if path else []
    return list(dict.fromkeys([*(given or []), *listed]))


def ingest_summary(source: str, report: Any) -> int:
    """Print an :class:`ingest.manager.IngestReport`; the exit code (2 when some failed)."""
    fetched = sum(1 for r in report.results if r.status in ("ok", "empty"))
    cached = sum(1 for r in report.results if r.status == "cached")
    rejected = sum(r.rejected for r in report.results)
    out.print(
        f"{source} {report.timeframe}: {len(report.results)} symbol(s), {report.rows:,} rows "
        f"written, {report.api_calls} source call(s), {fetched} fetched, {cached} already "
        f"held, {rejected} row(s) quarantined, {report.duration_s:.1f} s",
        markup=False,
    )
    for r in report.failed:
        err.print(f"[red]failed[/red] {escape(r.symbol)}: {escape(r.error or '')}")
    if report.failed:
        err.print(
            f"{len(report.failed)} symbol(s) failed; what was fetched is kept. "
            "Re-run the same command to retry only what is missing."
        )
        return 2
    return 0
