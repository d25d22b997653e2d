"""Shared by the report and artifact tests: one demo warehouse per session (built by
`duckmarket demo --universe 4`, the real producer), copied per test module so each module
may add runs and artifacts of its own; the command line with `report` and `artifacts`; and
a headless Chromium from the system packages."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from unittest import mock

import pytest

from ingest.paths import DataPaths

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def demo_copy(tmp_path_factory: pytest.TempPathFactory, name: str) -> DataPaths:
    """A private copy of the session's demo data root (built on first use)."""
    from duckmarket.cli import main

    pristine = tmp_path_factory.getbasetemp() / "demo4-pristine"
    if not (pristine / "data" / ".built").exists():
        shutil.rmtree(pristine, ignore_errors=True)
        pristine.mkdir()
        root = pristine / "data"
        assert main(["--data-dir", str(root), "demo", "--universe", "4"]) == 0
        (root / ".built").touch()
    target = tmp_path_factory.mktemp(name) / "data"
    # the marts link is relative to the root, so the copy reads its own marts
    shutil.copytree(pristine / "data", target, symlinks=True)
    return DataPaths(target)


def cli(argv: list[str]) -> int:
    """``duckmarket ARGV`` through cli.main, with ``report`` and ``artifacts`` added when
    cli.build_parser does not wire them (yet)."""
    from duckmarket import cli as cli_module
    from duckmarket.cli_report import add_report_commands

    parser = cli_module.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "report" not in sub.choices:
        add_report_commands(sub)
    with mock.patch.object(cli_module, "build_parser", return_value=parser):
        return cli_module.main(argv)


def chromium_or_skip() -> Path:
    """The system Chromium; on CI (CI set) its absence is a failure, elsewhere a skip."""
    if CHROMIUM.exists():
        return CHROMIUM
    message = f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError  # unreachable
