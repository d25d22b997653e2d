"""Paths of the server's machine never reach a client: error texts are scrubbed here.

DuckDB, pyarrow and the operating system name files in their messages (the marts' set
directory, the working directory, a home directory). Every message the server sends is
passed through :func:`scrub_paths`, which replaces the server's own directories and any
other absolute path with ``<path>``. API routes (``/v1/...``, ``/docs``) are kept: they
are what a message tells the client to call.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["machine_prefixes", "scrub_paths"]

#: an absolute (or ``~/``) path: a slash not inside a word, a URL or a relative path,
#: followed by at least one name
_PATH = re.compile(r"""(?<![\w/:.~\-])~?(?:/[^\s'"`/,;()\[\]{}<>|]+)+/?""")
_REST = r"""(?:/[^\s'"`,;()\[\]{}<>|]*)?"""
_ROUTE = re.compile(r"^/(?:v1(?:/|$)|docs(?:/|$)|openapi\.json$)")


def machine_prefixes(*extra: Path | str | None) -> list[str]:
    """Directories of this machine worth naming even where the regex would miss them
    (inside a word, after a colon): the working and home directories, the interpreter's
    prefix, the temporary directory and ``extra`` (e.g. the data root), each as given
    and resolved; longest first, so a nested one is replaced whole."""
    found: set[str] = set()
    candidates: list[Path | str | None] = [
        os.getcwd(),
        os.path.expanduser("~"),
        sys.prefix,
        tempfile.gettempdir(),
        *extra,
    ]
    for c in candidates:
        if not c:
            continue
        for p in (str(c), os.path.realpath(c)):
            p = p.rstrip("/")
            if len(p) > 1:  # never "/" itself: it would swallow every slash
                found.add(p)
    return sorted(found, key=len, reverse=True)


def scrub_paths(text: str, prefixes: Iterable[str] = ()) -> str:
    """``text`` with every path of the machine replaced by ``<path>``."""
    for prefix in prefixes:
        # the prefix and the rest of the path after it
        text = re.sub(re.escape(prefix) + _REST, "<path>", text)

    def keep_routes(m: re.Match[str]) -> str:
        return m.group(0) if _ROUTE.match(m.group(0)) else "<path>"

    return _PATH.sub(keep_routes, text)
