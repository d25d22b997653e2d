"""Shared pieces of the server tests: small marts in a temporary data root, shaped like the
warehouse's, and the real server (uvicorn) running on a loopback port in a thread."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.paths import DataPaths
from ingest.schema import TS_TYPE

#: DESIGN §4 worked example: raw closes D1..D6, a 1.02 dividend ex D3, a 2-for-1 split ex D5
DAYS = [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4), date(2024, 1, 5)]
DAYS += [date(2024, 1, 8), date(2024, 1, 9)]
CLOSES = [100.0, 102.0, 101.0, 104.0, 52.5, 53.0]
ACTIONS = [(DAYS[2], "dividend", 1.02), (DAYS[4], "split", 2.0)]
MINUTE_BARS = 2500


def _utc(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _steps(actions, closes_by_day: dict[date, float]) -> list[tuple[date, float, float]]:
    """(ex_date, split step, dividend step) per ex-date, as int_corporate_actions_checked."""
    out = []
    days = sorted(closes_by_day)
    for ex, kind, value in sorted(actions):
        prev = max(d for d in days if d < ex)
        if kind == "split":
            out.append((ex, 1.0 / value, 1.0))
        else:
            out.append((ex, 1.0, 1.0 - value / closes_by_day[prev]))
    return out


def factor_segments(steps) -> list[dict]:
    """int_adjustment_factors_computed: segments of constant (current) factors."""
    segs = []
    bounds = [date(1900, 1, 1)] + [s[0] for s in steps] + [date(9999, 12, 31)]
    for i in range(len(bounds) - 1):
        later = steps[i:]
        segs.append(
            {
                "valid_from": bounds[i],
                "valid_to": bounds[i + 1],
                "split_factor": float(np.prod([s[1] for s in later])) if later else 1.0,
                "dividend_factor": float(np.prod([s[2] for s in later])) if later else 1.0,
            }
        )
    return segs


def adjustment_factors_rows(symbol: str, segs: list[dict]) -> list[dict]:
    """The adjustment_factors mart: each row segment as seen from each later as-of segment."""
    rows = []
    for k, known in enumerate(segs):
        for seg in segs[: k + 1]:
            rows.append(
                {
                    "symbol": symbol,
                    "valid_from": seg["valid_from"],
                    "valid_to": seg["valid_to"],
                    "valid_from_at": _utc(seg["valid_from"]),
                    "valid_to_at": _utc(seg["valid_to"]),
                    "known_from": known["valid_from"],
                    "known_to": known["valid_to"],
                    "split_factor": seg["split_factor"] / known["split_factor"],
                    "dividend_factor": seg["dividend_factor"] / known["dividend_factor"],
                    "is_current": known["valid_to"] == date(9999, 12, 31),
                    "adjustment_version": "v1",
                }
            )
    return rows


def _bars(symbol: str, timeframe: str, ts: list[datetime], close, split, div) -> pa.Table:
    close = np.asarray(close, float)
    split = np.asarray(split, float)
    div = np.asarray(div, float)
    n = len(ts)
    open_ = close * 0.995
    high, low = close * 1.01, close * 0.99
    volume = np.full(n, 1000.0)
    cols = {
        "symbol": pa.array([symbol] * n),
        "source": pa.array(["synthetic"] * n),
        "timeframe": pa.array([timeframe] * n),
        "ts": pa.array(ts, TS_TYPE),
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
        "split_factor": split,
        "dividend_factor": div,
    }
    for name, v in (("open", open_), ("high", high), ("low", low), ("close", close)):
        cols[f"{name}_split_adj"] = v * split
    cols["volume_split_adj"] = volume / split
    for name, v in (("open", open_), ("high", high), ("low", low), ("close", close)):
        cols[f"{name}_adj"] = v * split * div
    cols["volume_adj"] = volume / split
    cols["is_final"] = pa.array([True] * n)
    cols["is_suspect"] = pa.array([False] * n)
    cols["quality_flags"] = pa.array([0] * n, pa.int32())
    return pa.table(cols)


def bars_table(extra_symbol: str | None = None) -> pa.Table:
    segs = factor_segments(_steps(ACTIONS, dict(zip(DAYS, CLOSES, strict=True))))

    def seg_of(d: date) -> dict:
        return next(s for s in segs if s["valid_from"] <= d < s["valid_to"])

    parts = [
        _bars(
            "AAA",
            "1d",
            [_utc(d) for d in DAYS],
            CLOSES,
            [seg_of(d)["split_factor"] for d in DAYS],
            [seg_of(d)["dividend_factor"] for d in DAYS],
        )
    ]
    btc_days = [_utc(date(2024, 1, 1)) + timedelta(days=i) for i in range(10)]
    parts.append(_bars("BTC/USDT", "1d", btc_days, np.linspace(40e3, 45e3, 10), [1] * 10, [1] * 10))
    t0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    mins = [t0 + timedelta(minutes=i) for i in range(MINUTE_BARS)]
    walk = 370 + np.cumsum(np.random.default_rng(1).normal(0, 0.1, MINUTE_BARS))
    parts.append(_bars("MSFT", "1m", mins, walk, [1] * MINUTE_BARS, [1] * MINUTE_BARS))
    if extra_symbol:
        parts.append(_bars(extra_symbol, "1d", btc_days[:3], [10, 11, 12], [1] * 3, [1] * 3))
    return pa.concat_tables(parts).sort_by([("symbol", "ascending"), ("ts", "ascending")])


def write_atomically(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, row_group_size=1000)
    os.replace(tmp, path)


def build_data_root(root: Path) -> DataPaths:
    paths = DataPaths(root).ensure()
    write_atomically(bars_table(), paths.marts / "bars_adjusted.parquet")
    segs = factor_segments(_steps(ACTIONS, dict(zip(DAYS, CLOSES, strict=True))))
    factors = pa.Table.from_pylist(adjustment_factors_rows("AAA", segs))
    write_atomically(factors, paths.marts / "adjustment_factors.parquet")
    coverage = pa.Table.from_pylist(
        [
            {
                "symbol": "AAA",
                "source": "synthetic",
                "timeframe": "1d",
                "first_ts": _utc(DAYS[0]),
                "last_ts": _utc(DAYS[-1]),
                "rows": 6,
                "expected_rows": 6,
                "completeness": 1.0,
            },
            {
                "symbol": "MSFT",
                "source": "synthetic",
                "timeframe": "1m",
                "first_ts": datetime(2024, 1, 2, 14, 30, tzinfo=UTC),
                "last_ts": datetime(2024, 1, 4, 8, 9, tzinfo=UTC),
                "rows": MINUTE_BARS,
                "expected_rows": 2730,
                "completeness": MINUTE_BARS / 2730,
            },
        ]
    )
    write_atomically(coverage, paths.marts / "coverage_summary.parquet")
    feats = []
    for sym in ("AAA", "MSFT", "ZZZ"):
        for i in range(30):
            feats.append(
                {
                    "symbol": sym,
                    "ts": _utc(date(2024, 1, 1)) + timedelta(days=i),
                    "ret_1d": 0.001 * i,
                    "mom_5d": float("nan") if i < 5 else 0.01 * i,
                }
            )
    write_atomically(pa.Table.from_pylist(feats), paths.marts / "features_momentum_v1.parquet")
    sym_dir = paths.lake / "symbols" / "source=synthetic"
    sym_dir.mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist(
            [
                {
                    "symbol": s,
                    "name": f"{s} Inc.",
                    "asset_class": "equity",
                    "exchange": "XNYS",
                    "currency": "USD",
                    "timezone": "America/New_York",
                    "calendar": "XNYS",
                }
                for s in ("AAA", "BTC/USDT", "MSFT")
            ]
        ),
        sym_dir / "data.parquet",
    )
    (root / "secret.txt").write_text("top secret\n")
    (paths.lake / "not_a_mart.csv").write_text("a,b\n1,2\n")
    return paths


def publish_set(paths: DataPaths, changes: dict[str, pa.Table] | None = None) -> Path:
    """Publish the marts being served, with ``changes`` (mart -> new table), as a new set,
    through the warehouse's own publication (``marts`` -> ``.marts/<build_id>``, older
    sets swept); returns the new set's directory. The first call turns the plain
    ``marts`` directory of :func:`build_data_root` into a set."""
    import duckdb

    from warehouse.layout import list_marts, read_table
    from warehouse.marts import publish

    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        tables = dict(changes or {})
        served = Path(os.path.realpath(paths.marts))
        for name in list_marts(served):  # files, and marts a publication partitioned
            if name not in tables:
                try:
                    tables[name] = read_table(served, name)
                except pa.ArrowException:  # a stray file a test put there: not a mart
                    continue
        for name, table in tables.items():
            con.register("incoming", table)
            con.execute(f'create table "{name}" as select * from incoming')
            con.unregister("incoming")
        return publish(con, paths, {name: () for name in tables}).path
    finally:
        con.close()


@dataclass
class RunningServer:
    url: str
    server: object
    thread: threading.Thread
    app: object = None

    def stop(self) -> None:
        self.server.should_exit = True  # type: ignore[attr-defined]
        self.thread.join(10)
        if self.app is not None:  # lifespan is off here: stop the SQL workers ourselves
            self.app.state.sql_workers.close()  # type: ignore[attr-defined]


def start_server(paths: DataPaths, keys_file: Path, **config: object) -> RunningServer:
    import uvicorn

    from server import ServerConfig, create_app

    app = create_app(ServerConfig(paths=paths, keys_file=keys_file, **config))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return RunningServer(f"http://127.0.0.1:{port}", server, thread, app)
