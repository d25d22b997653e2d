"""Process locks on a data root: one build, one update at a time."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["exclusive"]


@contextlib.contextmanager
def exclusive(path: Path, refuse: Callable[[str, str], Exception]) -> Iterator[None]:
    """Hold an ``flock`` on ``path`` (released by the kernel when the holder dies, so a
    killed process never leaves it locked). The file holds the holder's PID and start time;
    a second process gets ``refuse(pid, started)`` raised at once instead of waiting."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = os.pread(fd, 200, 0).decode(errors="replace").split()
            pid = holder[0] if holder else "?"
            raise refuse(pid, " ".join(holder[1:]) or "at an unknown time") from None
        os.ftruncate(fd, 0)
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        os.pwrite(fd, f"{os.getpid()} {now}".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
