"""Marts as one request sees them: every mart of a request from one published set.

The warehouse publishes marts as immutable sets: ``<data>/marts`` is a symbolic link to
``<data>/.marts/<build_id>/``, swapped in one rename per build (warehouse/marts.py). A
request resolves the link once, when its :class:`Snapshot` is made, and reads every mart
by its real path inside that set directory; the set never changes, so the request sees
all marts of one build, whatever is published meanwhile.

A set is removed by the publication after next (the previous set is kept, so a request
that resolved the link just before a swap can finish). A request can therefore only lose
its set if two builds publish while it runs, and only before DuckDB has opened the files:
once open, an unlinked file stays readable (POSIX), and DuckDB keeps a scan's files open
until the scan ends. Callers close that window (``app.on_current_set``): a request that
fails while its set is no longer the current one (:meth:`Snapshot.is_stale`), or that
ends with its set no longer whole (:meth:`Snapshot.is_intact`: a missing mart may have
been skipped rather than failed), starts again on the new set; the retried request
again reads one consistent set. A set that is still current at the end of a request was
never swept, so nearly every request needs no check beyond one ``realpath``.

Files are named by path, never by ``/proc/self/fd/N``: DuckDB resolves such a name to the
file's current path, which a rebuild may have renamed or removed.

A plain ``marts`` directory (files put there by hand, or a data root from before sets) is
read as it is: each file is replaced atomically, but two marts may come from two builds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import stat
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.errors import InvalidInputError
from warehouse.layout import mart_files, mart_location
from warehouse.marts import SET_FILE

__all__ = ["MART_NAME", "MartNotFoundError", "Snapshot", "list_marts"]

log = logging.getLogger("duckmarket.server")

MART_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

#: (directory, file name) of the stray files already logged: one line each, not one per
#: request
_LOGGED: set[tuple[str, str]] = set()
_LOGGED_LOCK = threading.Lock()


class MartNotFoundError(InvalidInputError):
    """A mart the request needs has not been built (or the name is not a mart's)."""


def log_ignored(marts_dir: Path | str, name: str, why: str) -> None:
    """Log, once per file, that a file in the marts directory is not served and why."""
    key = (str(marts_dir), name)
    with _LOGGED_LOCK:
        if key in _LOGGED:
            return
        if len(_LOGGED) > 10_000:  # a directory that keeps filling with junk
            _LOGGED.clear()
        _LOGGED.add(key)
    log.warning("ignoring %s in the marts directory: %s", name, why)


def list_marts(marts_dir: Path) -> list[str]:
    """Names of the Parquet marts under ``marts_dir``: regular files named
    ``<name>.parquet`` and the directories of partitioned marts (``<name>/``, as the
    publication writes them). Hidden and temporary files are skipped silently; symbolic
    links, directories named ``*.parquet`` and other odd entries named like marts are
    skipped with a log line."""
    try:
        entries = list(os.scandir(marts_dir))
    except OSError:  # no marts yet, or the set was swept after the link was resolved
        return []
    names = []
    for entry in entries:
        if entry.name.startswith((".", "_")):
            continue
        if not entry.name.endswith(".parquet"):
            # a partitioned mart: a real directory (never a link) named like a mart
            with contextlib.suppress(OSError):
                if MART_NAME.match(entry.name) and stat.S_ISDIR(
                    entry.stat(follow_symlinks=False).st_mode
                ):
                    names.append(entry.name)
            continue
        stem = entry.name.removesuffix(".parquet")
        if not MART_NAME.match(stem):
            log_ignored(marts_dir, entry.name, "not a mart name")
            continue
        try:
            # lstat: a symbolic link could lead anywhere on the machine; only files the
            # publication wrote are served
            if not stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
                log_ignored(marts_dir, entry.name, "not a regular file (a link or directory)")
                continue
        except OSError:
            continue
        names.append(stem)
    return sorted(names)


class Snapshot:
    """The published set of marts one request reads (see the module's docstring).

    ``close()`` is kept for the callers' ``with`` blocks; a snapshot holds no resources."""

    def __init__(self, marts_dir: Path) -> None:
        self.link = Path(marts_dir)
        # the set the marts link names now: every mart of the request from it
        self.marts_dir = Path(os.path.realpath(marts_dir))

    def is_stale(self) -> bool:
        """True once the marts link names another set than this snapshot's (a build has
        published since): a failure may then come from this set being swept."""
        return os.path.realpath(self.link) != str(self.marts_dir)

    def is_intact(self) -> bool:
        """True while every mart the set's publication wrote is still there (checked
        after a request: files do not come back, so intact at the end means intact
        throughout). A set without its ``_set.json`` (a plain directory moved aside by
        the first publication) cannot be checked and counts as not intact."""
        try:
            written = json.loads((self.marts_dir / SET_FILE).read_text())["marts"]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return all(mart_location(self.marts_dir, name) is not None for name in written)

    def open_file(self, path: Path) -> str:
        """The path of ``path`` for DuckDB or pyarrow, once checked to be a regular file
        (never a symbolic link); FileNotFoundError otherwise."""
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            log_ignored(path.parent, path.name, "not a regular file (a link or directory)")
            raise FileNotFoundError(path.name)
        return str(path)

    def mart(self, name: str) -> str | list[str]:
        """What DuckDB's ``read_parquet`` reads for mart ``name``: its file's path, or the
        list of a partitioned mart's files (every file holds every column);
        :class:`MartNotFoundError` if it is not built."""
        if not MART_NAME.match(name):
            raise MartNotFoundError(f"{name[:60]!r} is not a mart name")
        location = mart_location(self.marts_dir, name)
        try:
            if location is None:
                raise FileNotFoundError(name)
            if location.is_dir():
                files = [self.open_file(f) for f in mart_files(location)]
                if not files:
                    raise FileNotFoundError(name)
                return files
            return self.open_file(location)
        except OSError:
            raise MartNotFoundError(
                f"mart {name!r} is not built (yet); run `dbt build` to materialise the marts"
            ) from None

    def files(self, name: str) -> list[str]:
        """The Parquet files of mart ``name`` (one, or a partitioned mart's)."""
        found = self.mart(name)
        return [found] if isinstance(found, str) else found

    def has(self, name: str) -> bool:
        try:
            self.mart(name)
        except MartNotFoundError:
            return False
        return True

    def schema(self, name: str) -> pa.Schema:
        path = self.files(name)[0]
        try:
            return pq.read_schema(path)
        except (OSError, pa.ArrowException) as exc:  # a file named .parquet that is not
            if not self.is_stale():
                log_ignored(self.marts_dir, f"{name}.parquet", f"not readable as Parquet ({exc})")
            raise MartNotFoundError(
                f"mart {name!r} cannot be read; rebuild the marts (dbt build)"
            ) from None

    def close(self) -> None:
        """Nothing to release (kept so callers read the same with or without resources)."""

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
