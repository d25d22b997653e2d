"""SQL queries run in worker processes the server can kill.

Inside one process, DuckDB's limits do not hold for every query: a scalar function
building a huge string (``repeat``, ``lpad``) neither checks for interruption nor counts
against ``memory_limit``, so one query could run for a minute and take gigabytes from
the server. Each query therefore runs in a worker process (``python -m server.workers``)
with:

- a kernel limit on its data memory (``RLIMIT_DATA``): an allocation past it fails and
  DuckDB reports "out of memory", which the worker answers as a clear error;
- DuckDB's own ``memory_limit`` and an interrupt after ``timeout_s`` (the worker survives
  and serves the next query), and a SIGKILL from the server a second later if the query
  still runs (a new worker is started for the next one);
- at most ``max_concurrent`` queries at once: one more is refused at once with
  :class:`~server.sql.SqlBusyError` (503 with Retry-After) rather than queued behind
  long queries.

So the server's memory is bounded by ``max_concurrent`` times (``memory_limit`` plus a
worker's interpreter), and its own threads only wait on pipes: ``/v1/health`` and the
REST routes stay fast whatever the SQL does.

The protocol on the worker's stdin and stdout: a 4-byte big-endian length and a JSON
document each way; an answer's document says how many bytes of Arrow IPC stream follow.
A worker exits when its stdin closes (the server is gone), when its parent changes, or
after ``worker_idle_s`` without work.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import select
import struct
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from .redact import scrub_paths
from .sql import (
    SqlBusyError,
    SqlLimits,
    SqlMemoryError,
    SqlRejectedError,
    SqlResult,
    SqlTimeoutError,
    memory_error,
    parse_bytes,
    run_sql,
    timeout_error,
)

__all__ = ["SqlWorkers"]

log = logging.getLogger("duckmarket.server")

_LEN = struct.Struct("!I")
#: the server kills a worker this long after the query's own interrupt should have fired
KILL_GRACE_S = 1.0
#: how long a new worker may take to start (import DuckDB and pyarrow) before the query
#: is refused as busy; a query's own time limit starts only once its worker is ready
WORKER_START_S = 60.0
#: memory of a worker's interpreter and libraries (python, duckdb, pyarrow: ~200 MB of
#: data measured), allowed on top of the query's own limit
INTERPRETER_BYTES = 320 * 2**20
_KINDS = {"timeout": SqlTimeoutError, "memory": SqlMemoryError, "rejected": SqlRejectedError}


class _WorkerGone(Exception):
    """The worker died or broke the protocol."""


class _Worker:
    """One worker process and its pipes (used by one request at a time)."""

    def __init__(self, limits: SqlLimits) -> None:
        package_parent = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
        data_limit = parse_bytes(limits.memory_limit) + INTERPRETER_BYTES
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.workers", str(data_limit), str(limits.worker_idle_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd="/",  # nothing relative resolves to the server's directory
            close_fds=True,
        )
        self.queries = 0
        self._ready = False

    def wait_ready(self, deadline: float) -> None:
        """Wait for the worker's ready frame (sent once it has imported its libraries)."""
        if self._ready:
            return
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        (n,) = _LEN.unpack(_read_exact(fd, _LEN.size, deadline))
        if n > 1_000 or not json.loads(_read_exact(fd, n, deadline)).get("ready"):
            raise _WorkerGone("the worker did not say it was ready")
        self._ready = True

    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, request: dict, deadline: float, max_payload: int) -> tuple[dict, bytes]:
        """Send ``request``, wait for the answer until ``deadline`` (TimeoutError)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        data = json.dumps(request).encode()
        try:
            self.proc.stdin.write(_LEN.pack(len(data)) + data)
            self.proc.stdin.flush()
        except OSError:
            raise _WorkerGone("the worker's stdin is closed") from None
        fd = self.proc.stdout.fileno()
        (n,) = _LEN.unpack(_read_exact(fd, _LEN.size, deadline))
        if n > 1_000_000:
            raise _WorkerGone("answer header too long")
        header = json.loads(_read_exact(fd, n, deadline))
        size = int(header.get("ipc_bytes", 0))
        if size > max_payload:
            raise _WorkerGone("answer larger than allowed")
        payload = _read_exact(fd, size, deadline) if size else b""
        self.queries += 1
        return header, payload

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.proc.wait(5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()

    def rss(self) -> int:
        try:
            with open(f"/proc/{self.proc.pid}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0


def _read_exact(fd: int, n: int, deadline: float) -> bytes:
    """``n`` bytes from ``fd``; TimeoutError past ``deadline``, _WorkerGone at EOF."""
    chunks: list[bytes] = []
    while n > 0:
        wait = deadline - time.monotonic()
        if wait <= 0:
            raise TimeoutError
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            continue
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise _WorkerGone("the worker exited")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


class SqlWorkers:
    """The pool of SQL workers of one server: ``run`` one query, ``close`` them all."""

    #: a worker that holds more than this after a query is retired (allocators keep
    #: what a large query took)
    RETIRE_RSS = 512 * 2**20
    RETIRE_QUERIES = 200

    def __init__(self, limits: SqlLimits) -> None:
        self.limits = limits
        self._slots = threading.BoundedSemaphore(max(1, limits.max_concurrent))
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    def run(self, set_dir: Path, sql: str, limits: SqlLimits) -> SqlResult:
        """Run ``sql`` over the marts in ``set_dir`` in a worker, within ``limits``."""
        if not self._slots.acquire(blocking=False):
            raise SqlBusyError(
                f"{self.limits.max_concurrent} SQL queries are running, the most this server "
                f"runs at once; retry in {SqlBusyError.retry_after_s} s"
            )
        try:
            return self._run(set_dir, sql, limits)
        finally:
            self._slots.release()

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
                worker.kill()  # exited while idle: reap it
        return _Worker(self.limits)

    def _give_back(self, worker: _Worker) -> None:
        retire = (
            self._closed or worker.queries >= self.RETIRE_QUERIES or worker.rss() > self.RETIRE_RSS
        )
        if retire:
            worker.kill()
            return
        with self._lock:
            self._idle.append(worker)

    def _run(self, set_dir: Path, sql: str, limits: SqlLimits) -> SqlResult:
        worker = self._take()
        try:
            worker.wait_ready(time.monotonic() + WORKER_START_S)
        except (TimeoutError, _WorkerGone, OSError, ValueError) as exc:
            worker.kill()
            log.warning("SQL worker did not start (%s)", exc)
            raise SqlBusyError(
                f"no SQL worker could be started; retry in {SqlBusyError.retry_after_s} s"
            ) from None
        request = {"set_dir": str(set_dir), "sql": sql, "limits": asdict(limits)}
        deadline = time.monotonic() + limits.timeout_s + KILL_GRACE_S
        try:
            header, payload = worker.call(request, deadline, 2 * limits.max_bytes + (1 << 20))
        except TimeoutError:
            worker.kill()  # a query DuckDB could not interrupt (a long scalar function)
            raise timeout_error(limits) from None
        except (_WorkerGone, OSError, ValueError) as exc:
            code = worker.proc.poll()
            worker.kill()
            log.warning("SQL worker failed (%s, exit code %s)", exc, code)
            # an allocation that failed where no error could be raised ends the process
            raise SqlMemoryError(
                f"the query stopped its worker process; it may need more memory than the "
                f"{limits.memory_limit} one query may use: narrow it or aggregate"
            ) from None
        self._give_back(worker)
        if not header.get("ok"):
            error = _KINDS.get(header.get("kind"), SqlRejectedError)
            raise error(str(header.get("message") or "the query failed"))
        table = ipc.open_stream(payload).read_all() if payload else pa.table({})
        ignored = [(str(n), str(why)) for n, why in header.get("ignored", [])]
        return SqlResult(
            table, bool(header["truncated"]), header["marts"], header.get("truncated_by"), ignored
        )

    def close(self) -> None:
        """Stop the idle workers (busy ones stop when their query ends)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


# -- the worker process ------------------------------------------------------------------
def _read_frame(stream: io.BufferedReader, idle_s: float) -> dict | None:
    ready, _, _ = select.select([stream], [], [], idle_s)
    if not ready:
        return None  # idle too long: exit; the server starts another when needed
    head = stream.read(_LEN.size)
    if len(head) < _LEN.size:
        return None
    (n,) = _LEN.unpack(head)
    body = stream.read(n)
    return json.loads(body) if len(body) == n else None


def _answer(request: dict) -> tuple[dict, bytes]:
    from .snapshots import Snapshot

    limits = SqlLimits(**request["limits"])
    try:
        result = run_sql(Snapshot(Path(request["set_dir"])), request["sql"], limits)
    except SqlTimeoutError as exc:
        return {"ok": False, "kind": "timeout", "message": str(exc)}, b""
    except SqlMemoryError as exc:
        return {"ok": False, "kind": "memory", "message": str(exc)}, b""
    except SqlRejectedError as exc:
        return {"ok": False, "kind": "rejected", "message": str(exc)}, b""
    except MemoryError:
        return {"ok": False, "kind": "memory", "message": str(memory_error(limits))}, b""
    except Exception as exc:  # a bug: say so without details, log them on stderr
        print(f"duckmarket SQL worker: {type(exc).__name__}: {exc}", file=sys.stderr)
        return {"ok": False, "kind": "rejected", "message": "the query failed"}, b""
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, result.table.schema) as writer:
        writer.write_table(result.table)
    payload = sink.getvalue().to_pybytes()
    header = {
        "ok": True,
        "truncated": result.truncated,
        "truncated_by": result.truncated_by,
        "marts": result.marts,
        "ignored": [(n, scrub_paths(why)) for n, why in result.ignored],
        "ipc_bytes": len(payload),
    }
    return header, payload


def _watch_parent(parent: int) -> None:
    """Exit when the server is gone, even in the middle of a query."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


def main(argv: list[str]) -> None:
    import resource

    data_limit, idle_s = int(argv[0]), float(argv[1])
    # the kernel refuses the worker's data allocations past the limit: DuckDB and
    # pyarrow then report out of memory instead of the machine running out
    resource.setrlimit(resource.RLIMIT_DATA, (data_limit, data_limit))
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print cannot break the protocol
    stdin = sys.stdin.buffer
    ready = json.dumps({"ready": True}).encode()
    out.write(_LEN.pack(len(ready)) + ready)
    out.flush()
    while True:
        request = _read_frame(stdin, idle_s)
        if request is None:
            return
        header, payload = _answer(request)
        data = json.dumps(header).encode()
        out.write(_LEN.pack(len(data)) + data)
        out.write(payload)
        out.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
