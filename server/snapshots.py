"""Marts as one request sees them: each file opened once, so a rebuild cannot tear a read.

The warehouse replaces ``<data>/marts/<name>.parquet`` atomically (``os.replace``). A
request opens every mart it reads once and hands DuckDB the descriptor's
``/proc/self/fd/N`` path: every later read in the request (schema, row groups, a second
query) hits the same inode even if a rebuild swaps the file meanwhile, and the next
request opens the new one. Where ``/proc/self/fd`` does not exist the path is used as is.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.errors import InvalidInputError

__all__ = ["MART_NAME", "MartNotFoundError", "Snapshot", "list_marts"]

MART_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_FD_DIR = Path("/proc/self/fd")
_HAS_FD_DIR = _FD_DIR.is_dir()
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)


class MartNotFoundError(InvalidInputError):
    """A mart the request needs has not been built (or the name is not a mart's)."""


def list_marts(marts_dir: Path) -> list[str]:
    """Names of the Parquet marts under ``marts_dir`` (hidden and temporary files skipped)."""
    if not marts_dir.is_dir():
        return []
    return sorted(
        p.stem for p in marts_dir.glob("*.parquet") if MART_NAME.match(p.stem) and p.is_file()
    )


class Snapshot:
    """Files opened for one request; ``close()`` (idempotent) releases them."""

    def __init__(self, marts_dir: Path) -> None:
        # the published set the marts link names now: every mart of the request from it
        self.marts_dir = Path(os.path.realpath(marts_dir))
        self._fds: dict[Path, int] = {}
        self._lock = threading.Lock()
        self._closed = False

    def open_file(self, path: Path) -> str:
        """A path naming the version of ``path`` current now, for the rest of the request."""
        with self._lock:
            if self._closed:
                raise RuntimeError("snapshot closed")
            fd = self._fds.get(path)
            if fd is None:
                fd = os.open(path, _OPEN_FLAGS)
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    os.close(fd)
                    raise FileNotFoundError(path)
                self._fds[path] = fd
        return f"{_FD_DIR}/{fd}" if _HAS_FD_DIR else str(path)

    def mart(self, name: str) -> str:
        """The readable path of mart ``name``; :class:`MartNotFoundError` if it is not built."""
        if not MART_NAME.match(name):
            raise MartNotFoundError(f"{name!r} is not a mart name")
        try:
            return self.open_file(self.marts_dir / f"{name}.parquet")
        except (FileNotFoundError, NotADirectoryError, OSError):
            raise MartNotFoundError(
                f"mart {name!r} is not built (yet); run `dbt build` to materialise the marts"
            ) from None

    def has(self, name: str) -> bool:
        try:
            self.mart(name)
        except MartNotFoundError:
            return False
        return True

    def schema(self, name: str) -> pa.Schema:
        return pq.read_schema(self.mart(name))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            fds, self._fds = list(self._fds.values()), {}
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a response dropped before it streamed still frees its files
        self.close()
