"""Build the warehouse: calendars -> manifest mirror -> ``dbt build`` (a subprocess) ->
published Parquet marts (:mod:`warehouse.marts`).

dbt runs in its own process because an in-process run keeps DuckDB's file lock (DESIGN
§7). The run is recorded in the manifest's build_runs with the live data files it read.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.errors import DuckmarketError, InvalidInputError
from ingest.locks import exclusive
from ingest.paths import ENV_VAR, DataPaths

from .marts import current_set

log = logging.getLogger(__name__)

#: the dbt project (dbt_project.yml, profiles.yml) lives at the repository root
REPO = Path(__file__).resolve().parents[1]
#: dbt's console entry point, run with this interpreter (the venv's dbt)
_DBT_MAIN = "import sys; from dbt.cli.main import cli; sys.argv[0] = 'dbt'; sys.exit(cli())"
#: the model that publishes the marts (models/publication/published_marts.py)
PUBLICATION_MODEL = "published_marts"
_LOCK_RE = re.compile(r"Conflicting lock is held in (?P<exe>.+?) \(PID (?P<pid>\d+)\)")


class WarehouseLockedError(DuckmarketError):
    """Another process holds the warehouse file (DuckDB allows one writer, no readers then)."""

    exit_code = 3


class BuildError(DuckmarketError):
    """dbt build failed."""


@dataclass
class BuildResult:
    ok: bool
    returncode: int
    duration_s: float
    command: list[str]
    exported: dict[str, Path] = field(default_factory=dict)
    build_run_id: int | None = None
    error: str | None = None
    output: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)
    #: dbt's unit tests were left out: they passed on this data root for the same project
    unit_tests_skipped: bool = False

    @property
    def timings(self) -> dict[str, float]:
        """Seconds per dbt node (models, tests), from run_results.json."""
        return {r["unique_id"]: float(r.get("execution_time") or 0.0) for r in self.results}


def dbt_command(
    paths: DataPaths,
    command: str = "build",
    *,
    select: str | None = None,
    exclude: str | None = None,
    full_refresh: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """The dbt invocation for a data root (artifacts under ``<data>/.dbt``)."""
    dbt_dir = paths.root / ".dbt"
    cmd = [
        sys.executable,
        "-c",
        _DBT_MAIN,
        command,
        "--project-dir",
        str(REPO),
        "--profiles-dir",
        str(REPO),
        "--target-path",
        str(dbt_dir / "target"),
        "--log-path",
        str(dbt_dir / "logs"),
    ]
    if select:
        cmd += ["--select", *select.split()]
    if exclude:
        cmd += ["--exclude", *exclude.split()]
    if full_refresh and command in ("build", "run", "seed"):
        cmd.append("--full-refresh")
    cmd += list(extra)
    return cmd


def dbt_env(paths: DataPaths) -> dict[str, str]:
    env = dict(os.environ)
    env[ENV_VAR] = str(paths.root)
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    env.setdefault("DBT_USE_COLORS", "false")
    return env


def lock_holder(text: str) -> tuple[str, int] | None:
    """(executable, pid) of the process holding the warehouse, from DuckDB's error text."""
    m = _LOCK_RE.search(text)
    return (m.group("exe"), int(m.group("pid"))) if m else None


def _lock_message(paths: DataPaths, holder: tuple[str, int]) -> str:
    exe, pid = holder
    running = _process_description(pid)
    if running and "dbt" in running[0]:
        return (
            f"a dbt build is running on {paths.warehouse}: PID {pid}, started {running[1]} "
            f"({running[0][:80]}); wait for it to finish (or stop it) and build again"
        )
    return (
        f"the warehouse {paths.warehouse} is open in another process: {exe} (PID {pid}). "
        "DuckDB allows only one process on the file while dbt writes it; close that "
        "DuckDB shell or notebook connection (Python readers should read the Parquet "
        f"marts under {paths.marts} instead) and run the build again"
    )


def _process_description(pid: int) -> tuple[str, str] | None:
    """(command line, start time) of a live process, from /proc; None if unknown."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: start time in ticks
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    started = boot + ticks / os.sysconf("SC_CLK_TCK")
    return cmdline.strip(), _when(started)


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def build_lock(paths: DataPaths) -> contextlib.AbstractContextManager[None]:
    """One ``duckmarket build`` at a time on a data root (``<data>/.build.lock``); a second
    build is told the running one's PID and start time."""
    return exclusive(
        paths.root / ".build.lock",
        lambda pid, since: WarehouseLockedError(
            f"a build is already running on {paths.root}: PID {pid}, started {since}; "
            "wait for it to finish (or stop it) and build again"
        ),
    )


def universe_pairs(paths: DataPaths) -> list[dict[str, str]]:
    """The ``pairs`` of the data root's universe file (``duckmarket.toml``), which every
    ``duckmarket build`` passes to dbt as var('universe_pairs'); checked by
    ``duckmarket update`` (a file that does not parse here adds nothing)."""
    import tomllib

    path = paths.root / "duckmarket.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    out = []
    for pair in raw.get("pairs", []) if isinstance(raw.get("pairs"), list) else []:
        if isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair):
            out.append({"symbol_a": pair[0].strip(), "symbol_b": pair[1].strip()})
    return out


def _prepare_inputs(paths: DataPaths) -> None:
    """Exchange sessions for the calendars in use; never fatal (coverage shows it)."""
    try:
        from .calendars import write_calendars

        write_calendars(paths)
    except Exception as exc:  # a calendar problem must not stop a build
        log.warning("could not write exchange calendars: %s", exc)


def _manifest(paths: DataPaths) -> Any | None:
    if not paths.manifest.exists():
        return None
    try:
        from ingest.manifest import Manifest

        return Manifest(paths.manifest)
    except Exception as exc:  # a build without a manifest still builds
        log.warning("manifest unavailable: %s", exc)
        return None


def run_build(
    paths: DataPaths,
    *,
    select: str | None = None,
    full_refresh: bool = False,
    quiet: bool = False,
    exclude: str | None = None,
    export: bool = True,
    extra: Sequence[str] = (),
) -> BuildResult:
    """Run ``dbt build`` on the data root; its last node publishes the marts (a selection
    always includes it, ``export=False`` leaves it out). Raises on a lock conflict."""
    paths.ensure()
    if next(paths.lake.glob("bars/*/*/*/*/*.parquet"), None) is None:
        raise InvalidInputError(
            f"the lake at {paths.lake} holds no bars yet, so there is nothing to build: land "
            "some first (`duckmarket demo`, or `duckmarket ingest synthetic|csv|yfinance ...`)"
        )
    with build_lock(paths):
        return _run_build_locked(paths, select, full_refresh, quiet, exclude, export, extra)


def _run_build_locked(
    paths: DataPaths,
    select: str | None,
    full_refresh: bool,
    quiet: bool,
    exclude: str | None,
    export: bool,
    extra: Sequence[str],
) -> BuildResult:
    _prepare_inputs(paths)
    manifest = _manifest(paths)
    run_id: int | None = None
    if not export:
        exclude = f"{exclude} {PUBLICATION_MODEL}" if exclude else PUBLICATION_MODEL
    elif select:
        select = f"{select} {PUBLICATION_MODEL}"
    pairs = universe_pairs(paths)
    if pairs and "--vars" not in extra:
        extra = [*extra, "--vars", json.dumps({"universe_pairs": pairs})]
    code = project_fingerprint()
    selection = " ".join(x or "" for x in (select, exclude)).strip()
    passed = _unit_tests_passed(paths, code)
    skip_unit_tests = not full_refresh and ("" in passed or selection in passed)
    if skip_unit_tests:
        extra = [*extra, "--exclude-resource-type", "unit_test"]
    cmd = dbt_command(paths, select=select, exclude=exclude, full_refresh=full_refresh, extra=extra)
    shown = (
        "dbt build"
        + (f" --select {select}" if select else "")
        + (" --full-refresh" if full_refresh else "")
    )
    if manifest is not None:
        try:
            manifest.write_mirror(paths.lake / "_manifest")
            killed = manifest.mark_killed_builds()  # we hold the build lock: none is live
            if killed:
                log.warning("%d earlier build(s) died before finishing: marked killed", killed)
            file_ids = [f.file_id for f in manifest.live_files()]
            run_id = manifest.start_build_run(shown, file_ids, pid=os.getpid())
        except Exception as exc:
            log.warning("could not record the build in the manifest: %s", exc)
    started = time.perf_counter()
    lines: list[str] = []
    with subprocess.Popen(
        cmd,
        cwd=REPO,
        env=dbt_env(paths),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        preexec_fn=functools.partial(_die_with_parent, os.getpid()),
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if not quiet:
                sys.stdout.write(line)
        rc = proc.wait()
    output = "".join(lines)
    result = BuildResult(
        ok=rc == 0,
        returncode=rc,
        duration_s=0.0,
        command=cmd,
        build_run_id=run_id,
        output=output,
        results=_run_results(paths),
    )
    result.unit_tests_skipped = skip_unit_tests
    if rc == 0 and not skip_unit_tests:
        # the selection's unit tests ran and passed: until the project changes they would
        # pass again (their inputs are fixed), so builds of it leave them out
        _record_unit_tests_passed(paths, code, passed | {selection})
    holder = lock_holder(output)
    if rc != 0:
        result.error = _lock_message(paths, holder) if holder else _first_error(output)
    elif export and (published := current_set(paths)) is not None:
        result.exported = {name: published.file(name) for name in published.marts}
    result.duration_s = time.perf_counter() - started
    if manifest is not None and run_id is not None:
        try:
            manifest.finish_build_run(
                run_id, "ok" if result.ok else "failed", result.duration_s, result.error
            )
        except Exception as exc:
            log.warning("could not record the build result: %s", exc)
        finally:
            close = getattr(manifest, "close", None)
            if close:
                close()
    if holder and not result.ok:
        raise WarehouseLockedError(result.error or "warehouse locked")
    return result


#: the file in ``<data>/.dbt`` naming the project whose unit tests last passed, and the
#: selections they passed for ("" for the whole project)
UNIT_TESTED = "unit_tests_passed.json"


def _unit_tests_passed(paths: DataPaths, code: str) -> set[str]:
    """The selections whose unit tests passed on this data root for project ``code``."""
    try:
        record = json.loads((paths.root / ".dbt" / UNIT_TESTED).read_text())
        if record.get("project") == code:
            return {str(s) for s in record.get("selections", [])}
    except (OSError, ValueError, AttributeError):
        pass
    return set()


def _record_unit_tests_passed(paths: DataPaths, code: str, selections: set[str]) -> None:
    path = paths.root / ".dbt" / UNIT_TESTED
    with contextlib.suppress(OSError):
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"project": code, "selections": sorted(selections)}))
        os.replace(tmp, path)


#: what dbt reads from the repository: a change to any of it runs the unit tests again
_PROJECT_FILES = ("models", "macros", "seeds", "tests/dbt", "warehouse")
_PROJECT_TOP = ("dbt_project.yml", "profiles.yml")


def project_fingerprint() -> str:
    """SHA-256 of the dbt project as this build runs it: models, macros, seeds, singular
    tests, the Python the models import (warehouse/), dbt_project.yml, profiles.yml, and
    the versions of dbt-core and dbt-duckdb."""
    import hashlib
    from importlib.metadata import version

    digest = hashlib.sha256()
    for name in ("dbt-core", "dbt-duckdb", "duckdb"):
        with contextlib.suppress(Exception):
            digest.update(f"{name}={version(name)}\n".encode())
    files = [REPO / f for f in _PROJECT_TOP]
    for folder in _PROJECT_FILES:
        files += sorted(
            p
            for p in (REPO / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        )
    for f in files:
        with contextlib.suppress(OSError):
            digest.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()


def _die_with_parent(parent_pid: int) -> None:
    """In the dbt child, before exec: ask Linux to kill it when the build process dies, so
    a killed build never leaves dbt running and holding the warehouse."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before the request took effect
            os._exit(1)


_PR_SET_PDEATHSIG = 1
#: prctl(2), looked up once in the parent (the child may only call it between fork and exec)
_PRCTL = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform == "linux" else None


_SCHEMA_CHANGED = re.compile(
    r"Compilation Error in model (?P<model>\w+).*?schemas on this incremental model are out "
    r"of sync",
    re.DOTALL,
)


def _first_error(output: str) -> str:
    changed = _SCHEMA_CHANGED.search(output)
    if changed:
        model = changed.group("model")
        return (
            f"the columns of {model} changed since the warehouse was last built (a new "
            f"version of its model); rebuild it once with `duckmarket build --full-refresh "
            f"--select {model}+`"
        )
    errors = [ln.strip() for ln in output.splitlines() if "Error" in ln or "FAIL" in ln]
    return errors[0] if errors else "dbt build failed (see its output above)"


def _run_results(paths: DataPaths) -> list[dict[str, Any]]:
    path = paths.root / ".dbt" / "target" / "run_results.json"
    try:
        return list(json.loads(path.read_text())["results"])
    except (OSError, ValueError, KeyError):
        return []
