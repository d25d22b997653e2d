"""Load benchmark of the data server: the real server (``duckmarket serve``) on loopback,
driven by a bounded number of concurrent clients asking for bars of random symbol-months,
as JSON and as an Arrow IPC stream. Prints requests/s and p50/p99 latency per scenario.

    python benchmarks/bench_server.py                 # synthetic marts in a temporary root
    python benchmarks/bench_server.py --requests 400 --concurrency 8
    python benchmarks/bench_server.py --data-dir data # a built warehouse (its bars_adjusted)

Bounded in count (--requests per scenario) and time (--time-limit per scenario); it only
ever talks to 127.0.0.1 and uses a temporary keys file.
"""

from __future__ import annotations

import argparse
import io
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
TS = pa.timestamp("us", tz="UTC")


def make_marts(root: Path, n_symbols: int, days: int) -> None:
    """bars_adjusted with 1m bars (390 a session) and 1d bars, sorted by (symbol, ts)."""
    marts = root / "marts"
    marts.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    sessions = [datetime(2024, 1, 2, tzinfo=UTC) + timedelta(days=i) for i in range(days * 7 // 5)]
    sessions = [s for s in sessions if s.weekday() < 5][:days]
    minute_offsets = np.arange(390) * 60_000_000 + (14 * 60 + 30) * 60_000_000
    day_us = np.array([int(s.timestamp() * 1e6) for s in sessions], dtype=np.int64)
    writer = None
    try:
        for i in range(n_symbols):
            sym = f"S{i:03d}"
            parts = []
            for tf, ts in (("1d", day_us), ("1m", (day_us[:, None] + minute_offsets).ravel())):
                n = len(ts)
                close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
                cols = {
                    "symbol": pa.array([sym] * n),
                    "source": pa.array(["synthetic"] * n),
                    "timeframe": pa.array([tf] * n),
                    "ts": pa.array(ts, TS),
                    "open": close * 0.999,
                    "high": close * 1.002,
                    "low": close * 0.998,
                    "close": close,
                    "volume": rng.integers(100, 10_000, n).astype(float),
                    "split_factor": np.ones(n),
                    "dividend_factor": np.ones(n),
                }
                for k in ("open", "high", "low", "close"):
                    cols[f"{k}_split_adj"] = cols[k]
                    cols[f"{k}_adj"] = cols[k]
                cols["volume_split_adj"] = cols["volume"]
                cols["volume_adj"] = cols["volume"]
                cols["is_final"] = np.ones(n, bool)
                cols["is_suspect"] = np.zeros(n, bool)
                parts.append(pa.table(cols))
            table = pa.concat_tables(parts).sort_by(
                [("timeframe", "ascending"), ("ts", "ascending")]
            )
            if writer is None:
                writer = pq.ParquetWriter(marts / "bars_adjusted.parquet", table.schema)
            writer.write_table(table, row_group_size=122_880)
    finally:
        if writer is not None:
            writer.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def symbol_months(data_dir: Path) -> list[tuple[str, str, datetime]]:
    con = duckdb.connect()
    rows = con.execute(
        "select symbol, timeframe, date_trunc('month', ts) as month from read_parquet(?)"
        " where timeframe in ('1m', '1d') group by all",
        [str(data_dir / "marts" / "bars_adjusted.parquet")],
    ).fetchall()
    return [(s, tf, m if m.tzinfo else m.replace(tzinfo=UTC)) for s, tf, m in rows]


def run_scenario(
    url: str, key: str, targets: list, fmt: str, n: int, concurrency: int, time_limit: float
) -> dict[str, float]:
    rng = random.Random(42)
    jobs = [rng.choice(targets) for _ in range(n)]
    lat: list[float] = []
    rows = 0
    errors = 0
    lock = threading.Lock()
    local = threading.local()
    deadline = time.monotonic() + time_limit

    def one(job) -> None:
        nonlocal rows, errors
        if time.monotonic() > deadline:
            return
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(headers={"X-API-Key": key}, timeout=60)
        sym, tf, month = job
        nxt = (month + timedelta(days=32)).replace(day=1)
        params = {
            "timeframe": tf,
            "start": month.isoformat(),
            "end": nxt.isoformat(),
            "format": fmt,
            "limit": 100_000,
            "adjustment": "total",
        }
        t0 = time.perf_counter()
        r = client.get(f"{url}/v1/bars/{sym}", params=params)
        body = r.content
        dt = time.perf_counter() - t0
        got = 0
        if r.status_code == 200:
            if fmt == "arrow":
                got = ipc.open_stream(io.BytesIO(body)).read_all().num_rows
            else:
                got = r.json()["count"]
        with lock:
            if r.status_code != 200:
                errors += 1
            lat.append(dt)
            rows += got

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, jobs))
    wall = time.perf_counter() - t0
    lat.sort()
    return {
        "requests": len(lat),
        "errors": errors,
        "rps": len(lat) / wall if wall else 0.0,
        "p50_ms": 1000 * statistics.median(lat) if lat else float("nan"),
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan"),
        "rows_per_request": rows / len(lat) if lat else 0.0,
        "rows_per_s": rows / wall if wall else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, help="a built data root (default: synthetic)")
    ap.add_argument("--symbols", type=int, default=20)
    ap.add_argument("--days", type=int, default=42, help="sessions of 1m bars per symbol")
    ap.add_argument("--requests", type=int, default=200, help="per scenario (bounded)")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--time-limit", type=float, default=60.0, help="seconds per scenario")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_server_") as tmp:
        tmp_path = Path(tmp)
        data_dir = args.data_dir
        if data_dir is None:
            data_dir = tmp_path / "data"
            t0 = time.perf_counter()
            make_marts(data_dir, args.symbols, args.days)
            print(
                f"synthetic bars_adjusted: {args.symbols} symbols x {args.days} sessions of "
                f"1m bars, in {time.perf_counter() - t0:.1f} s"
            )
        keys = tmp_path / "keys.json"
        cli = [
            sys.executable,
            "-m",
            "duckmarket",
            "--data-dir",
            str(data_dir),
            "serve",
            "--keys-file",
            str(keys),
        ]
        key = subprocess.run(
            [*cli, "--add-key", "bench"], capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout.strip()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([*cli, "--port", str(port), "--log-level", "warning"], cwd=ROOT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not start")
                time.sleep(0.1)
            targets = symbol_months(data_dir)
            print(
                f"server on {url}; {len(targets)} symbol-month-timeframes; "
                f"{args.requests} requests per scenario, {args.concurrency} concurrent"
            )
            run_scenario(url, key, targets, "json", 10, 2, 30)  # warm up
            print(
                f"{'scenario':<16}{'req':>6}{'err':>5}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
                f"{'rows/req':>10}{'rows/s':>12}"
            )
            for tf in ("1d", "1m"):
                subset = [t for t in targets if t[1] == tf]
                if not subset:
                    continue
                for fmt in ("json", "arrow"):
                    res = run_scenario(
                        url, key, subset, fmt, args.requests, args.concurrency, args.time_limit
                    )
                    print(
                        f"{tf + ' ' + fmt:<16}{res['requests']:>6}{res['errors']:>5}"
                        f"{res['rps']:>9.1f}{res['p50_ms']:>9.1f}{res['p99_ms']:>9.1f}"
                        f"{res['rows_per_request']:>10.0f}{res['rows_per_s']:>12,.0f}"
                    )
        finally:
            server.terminate()
            server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
