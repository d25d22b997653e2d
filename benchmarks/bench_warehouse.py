"""Warehouse benchmark (issue 10, "Measure"): the bar marts against references measured in
the same run, build cost in proportion to the change, peak memory, bytes per bar and the
bad-print screen, all printed as ratios beside their targets (DESIGN §6).

Writes a lake straight to the Parquet layout (ingest/schema.py) with numpy: every symbol
gets full XNYS sessions of 1m bars (about ten years for 1M bars), daily bars, quarterly
dividends and a 2-for-1 split, and designed faults: bad prints as the synthetic source
designs them (one bar's close multiplied or divided by 1.5-3 and reverting on the next
bar, whose open is the true close; here the high or low always follows the spike, so the
OHLC invariants hold and only the screen can find it; never the first or last minute of
a session), about one per 200,000 1m bars, and as many level moves (x or / 1.1-3 from one
bar on) that hold and must not be flagged. Then, per run
(`--repeat N`, each on a fresh copy of the lake):

  1. T_full: `duckmarket build` (run_build over the warehouse models, data tests and the
     publication of the marts), wall time and each model's time from run_results.json;
  2. the references on the same lake: a plain DuckDB script (a fresh database file: one
     statement for the adjusted bars, an integer-bucket cascade for the resampled ones,
     see benchmarks/_warehouse_refs.py), the same with polars in memory (read, sort and
     compute; resampling with group_by_dynamic); their output compared with the marts;
  3. T_noop: the same build again with nothing new in the lake;
  4. T_incr: one more session of 1m bars for every symbol, and the build again.

Then, once: peak memory of a full build at two lake sizes, each in a fresh child process
(the peak RSS of the dbt process, from getrusage(RUSAGE_CHILDREN) in that child); bytes
per 1m bar of the published bars_adjusted against the lake's; precision and recall of
bars_adjusted.is_outlier against the designed bad prints.

    .venv/bin/python benchmarks/bench_warehouse.py                  # 50 x 1,000,000
    .venv/bin/python benchmarks/bench_warehouse.py --symbols 5 --bars 100000   # quick
    .venv/bin/python benchmarks/bench_warehouse.py --repeat 3 --memory-sizes 20x250000,20x1000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import exchange_calendars as xcals
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _warehouse_refs as refs  # noqa: E402

from ingest.paths import DataPaths  # noqa: E402
from ingest.schema import BARS, CORPORATE_ACTIONS, SYMBOLS  # noqa: E402
from warehouse.build import run_build  # noqa: E402
from warehouse.marts import current_set  # noqa: E402

if TYPE_CHECKING:
    from warehouse.marts import PublishedSet

WAREHOUSE = (
    "path:models/staging path:models/intermediate path:models/marts/bars "
    "path:models/marts/coverage path:models/marts/quality path:seeds/source_limits.csv "
    "path:tests/dbt/warehouse"
)
TS = pa.timestamp("us", tz="UTC")
T0 = datetime(2024, 7, 1, tzinfo=UTC)
T1 = datetime(2024, 7, 2, tzinfo=UTC)
US = 1_000_000
DAY_US = 86_400 * US
#: the first session the lake may start at (XNYS sessions from here: ~4.3M 1m bars)
CALENDAR_START = "1980-01-01"
#: bars around a designed fault that hold no other fault (the screen reads 10 either side)
FAULT_SPACING = 100
KEYS_ADJUSTED = ("symbol", "timeframe", "ts")
KEYS_RESAMPLED = ("symbol", "timeframe", "ts")


# --- the lake -----------------------------------------------------------------------------


@dataclass
class Lake:
    symbols: list[str]
    state: dict[str, np.ndarray]
    #: designed bad prints and level moves: (symbol, ts in epoch microseconds)
    bad_prints: set[tuple[str, int]] = field(default_factory=set)
    level_moves: set[tuple[str, int]] = field(default_factory=set)
    rows_1m: int = 0
    rows_1d: int = 0


def sessions(n_bars: int, extra: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Open and close (epoch us) of the XNYS sessions ending 2024-06-28 holding n_bars,
    plus `extra` sessions after it (the incremental day)."""
    cal = xcals.get_calendar("XNYS", start=CALENDAR_START)
    sched = cal.schedule.loc[CALENDAR_START:"2024-12-31"]
    opens = sched["open"].dt.tz_convert(None).to_numpy().astype("datetime64[us]").astype(np.int64)
    closes = sched["close"].dt.tz_convert(None).to_numpy().astype("datetime64[us]").astype(np.int64)
    last = int(
        np.searchsorted(
            closes, np.datetime64("2024-06-29").astype("datetime64[us]").astype(np.int64)
        )
    )
    minutes = (closes - opens) // (60 * US)
    total = np.cumsum(minutes[:last][::-1])
    if n_bars >= total[-1]:
        raise SystemExit(
            f"--bars {n_bars:,}: XNYS sessions since {CALENDAR_START} hold only "
            f"{int(total[-1]):,} 1m bars; use fewer bars and more symbols"
        )
    first = last - int(np.searchsorted(total, n_bars)) - 1
    return opens[first : last + extra], closes[first : last + extra]


def minute_ts(opens: np.ndarray, closes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every 1m bar's open time, its position in its session and its session's length."""
    minutes = ((closes - opens) // (60 * US)).astype(np.int64)
    starts = np.repeat(opens, minutes)
    offsets = np.arange(minutes.sum()) - np.repeat(np.cumsum(minutes) - minutes, minutes)
    return starts + offsets * 60 * US, offsets, np.repeat(minutes, minutes)


def bars_table(
    ts: np.ndarray,
    close: np.ndarray,
    rng: np.random.Generator,
    stamp: datetime,
    spikes: tuple[np.ndarray, np.ndarray] | None = None,
) -> pa.Table:
    """Bars from closes; `spikes` = (indices, factors) turns those bars into bad prints:
    the close is multiplied by the factor after open/high/low are drawn (so the next bar
    opens at the true close), and the high or low follows the spike."""
    n = len(ts)
    prev = np.r_[close[0], close[:-1]]
    open_ = prev * (1 + rng.normal(0, 1e-4, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 3e-4, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 3e-4, n)))
    if spikes is not None and len(spikes[0]):
        idx, factor = spikes
        close = close.copy()
        close[idx] *= factor
        high[idx] = np.maximum(high[idx], close[idx])
        low[idx] = np.minimum(low[idx], close[idx])
    return pa.table(
        {
            "ts": pa.array(ts, pa.int64()).cast(TS),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.integers(100, 100_000, n).astype(np.float64),
            "is_final": pa.array(np.ones(n, bool)),
            "ingested_at": pa.array(np.full(n, int(stamp.timestamp() * US)), pa.int64()).cast(TS),
        },
        schema=BARS.schema,
    )


def design_faults(
    pos: np.ndarray,
    length: np.ndarray,
    allowed: np.ndarray,
    n_bad: int,
    n_moves: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(bad-print indices, their factors, level-move indices, their factors): never the
    first or last minute of a session, at least FAULT_SPACING bars apart."""
    eligible = allowed & (pos > 0) & (pos < length - 1)
    eligible[:FAULT_SPACING] = False
    eligible[-FAULT_SPACING:] = False
    chosen: list[int] = []
    for i in rng.permutation(np.flatnonzero(eligible)):
        if all(abs(int(i) - j) >= FAULT_SPACING for j in chosen):
            chosen.append(int(i))
        if len(chosen) == n_bad + n_moves:
            break
    bad = np.sort(np.array(chosen[:n_bad], dtype=np.int64))
    moves = np.sort(np.array(chosen[n_bad:], dtype=np.int64))
    up = rng.random(len(bad)) < 0.5
    spike = 1.5 + 1.5 * rng.random(len(bad))
    move = np.exp(rng.uniform(np.log(1.1), np.log(3.0), len(moves)))
    return (
        bad,
        np.where(up, spike, 1 / spike),
        moves,
        np.where(rng.random(len(moves)) < 0.5, move, 1 / move),
    )


def write_lake(
    root: Path, n_symbols: int, n_bars: int, seed: int = 1, bad_rate: float = 1 / 200_000
) -> Lake:
    opens, closes = sessions(n_bars)
    lake_dir = root / "lake"
    lake = Lake([f"BEN{i:03d}" for i in range(n_symbols)], {})
    for k, sym in enumerate(lake.symbols):
        rng = np.random.default_rng(seed + k)
        ts, pos, length = minute_ts(opens[:-1], closes[:-1])
        close = 50 * np.exp(np.cumsum(rng.normal(0, 6e-4, len(ts))))
        # a 2-for-1 split halfway: as traded, prices halve from the ex-date on
        ex_split = len(opens) // 2
        split_at = opens[ex_split]
        close = np.where(ts >= split_at, close / 2, close)
        # designed faults (their own random stream: the rest of the lake does not change)
        n_bad = max(2, round(len(ts) * bad_rate))
        fault_rng = np.random.default_rng([seed + k, 0xFA])
        split_day = split_at // DAY_US
        bad, spike, moves, move = design_faults(
            pos, length, ts // DAY_US != split_day, n_bad, n_bad, fault_rng
        )
        for i, f in zip(moves, move, strict=True):
            close[i:] *= f
        lake.bad_prints |= {(sym, int(t)) for t in ts[bad]}
        lake.level_moves |= {(sym, int(t)) for t in ts[moves]}
        table = bars_table(ts, close, rng, T0, spikes=(bad, spike))
        lake.rows_1m += table.num_rows
        yr = np.asarray(pc.year(table.column("ts")))
        for y in np.unique(yr):
            part = table.filter(pa.array(yr == y))
            path = (
                lake_dir
                / "bars"
                / "source=synthetic"
                / "timeframe=1m"
                / f"symbol={sym}"
                / f"period={y}"
                / "data.parquet"
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(part, path, row_group_size=1 << 20)
        # daily bars from the minute bars (last close, first open of each session): the
        # last minute of a session never holds a bad print, so daily bars have none
        day = (ts // DAY_US) * DAY_US
        edges = np.r_[0, np.nonzero(np.diff(day))[0] + 1]
        d_close = close[np.r_[edges[1:] - 1, len(ts) - 1]]
        daily = bars_table(day[edges], d_close, rng, T0)
        lake.rows_1d += daily.num_rows
        path = (
            lake_dir
            / "bars"
            / "source=synthetic"
            / "timeframe=1d"
            / f"symbol={sym}"
            / "period=all"
            / "data.parquet"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(daily, path)
        # quarterly dividends of about 0.5 % and the split
        div_days = day[edges][::63][1:]
        prev_close = d_close[::63][1:] if len(d_close) > 63 else d_close[:0]
        n_div = min(len(div_days), len(prev_close))
        ex = [datetime.fromtimestamp(int(d) / US, UTC).date() for d in div_days[:n_div]]
        split_date = datetime.fromtimestamp(int(split_at) / US, UTC).date()
        actions = pa.table(
            {
                "ex_date": pa.array([*ex, split_date], pa.date32()),
                "action_type": ["dividend"] * n_div + ["split"],
                "split_ratio": pa.array([None] * n_div + [2.0], pa.float64()),
                "cash_amount": pa.array(
                    [*np.round(prev_close[:n_div] * 0.005, 4), None], pa.float64()
                ),
                "currency": ["USD"] * (n_div + 1),
                "ingested_at": pa.array([T0] * (n_div + 1), TS),
            },
            schema=CORPORATE_ACTIONS.schema,
        )
        path = (
            lake_dir / "corporate_actions" / "source=synthetic" / f"symbol={sym}" / "data.parquet"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(actions, path)
        lake.state[sym] = close[-1:]
    path = lake_dir / "symbols" / "source=synthetic" / "data.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(lake.symbols)
    pq.write_table(
        pa.table(
            {
                "symbol": lake.symbols,
                "name": lake.symbols,
                "asset_class": ["equity"] * n,
                "exchange": ["XNYS"] * n,
                "currency": ["USD"] * n,
                "timezone": ["America/New_York"] * n,
                "calendar": ["XNYS"] * n,
                "ingested_at": pa.array([T0] * n, TS),
            },
            schema=SYMBOLS.schema,
        ),
        path,
    )
    return lake


def append_day(root: Path, n_bars: int, state: dict[str, np.ndarray], seed: int = 99) -> int:
    """One more session of 1m bars for every symbol: the writer's merge (old rows keep their
    ingested_at, the partition file is rewritten)."""
    opens, closes = sessions(n_bars)
    ts = minute_ts(opens[-1:], closes[-1:])[0]
    added = 0
    for k, (sym, last) in enumerate(state.items()):
        rng = np.random.default_rng(seed + k)
        close = last[0] * np.exp(np.cumsum(rng.normal(0, 6e-4, len(ts))))
        new = bars_table(ts, close, rng, T1)
        year = datetime.fromtimestamp(int(ts[0]) / US, UTC).year
        path = (
            root
            / "lake"
            / "bars"
            / "source=synthetic"
            / "timeframe=1m"
            / f"symbol={sym}"
            / f"period={year}"
            / "data.parquet"
        )
        old = pq.read_table(path)
        tmp = path.with_name(".data.parquet.tmp")
        pq.write_table(pa.concat_tables([old, new]), tmp, row_group_size=1 << 20)
        tmp.replace(path)
        added += len(ts)
    return added


def copy_lake(src: Path, root: Path) -> DataPaths:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    shutil.copytree(src / "lake", root / "lake")
    return DataPaths(root)


# --- builds -------------------------------------------------------------------------------


def build(paths: DataPaths):
    """`duckmarket build` of the warehouse models, publication of the marts included."""
    result = run_build(
        paths,
        select=WAREHOUSE,
        quiet=True,
        export=True,
        extra=("--indirect-selection", "cautious"),
    )
    if not result.ok:
        print(result.output[-3000:])
        return None
    return result


def model_time(result, name: str) -> float:
    return sum(
        t
        for uid, t in result.timings.items()
        if uid.startswith("model.") and uid.endswith("." + name)
    )


def models_total(result) -> float:
    return sum(t for uid, t in result.timings.items() if uid.startswith(("model.", "seed.")))


def tests_total(result) -> float:
    return sum(t for uid, t in result.timings.items() if uid.startswith(("test.", "unit_test.")))


def upstream_models(root: Path, name: str) -> set[str]:
    """unique_ids of the models `name` depends on (transitively), from dbt's manifest."""
    try:
        nodes = json.loads((root / ".dbt" / "target" / "manifest.json").read_text())["nodes"]
    except (OSError, ValueError, KeyError):
        return set()
    start = [uid for uid in nodes if uid.startswith("model.") and uid.endswith("." + name)]
    seen: set[str] = set()
    todo = list(start)
    while todo:
        for parent in nodes.get(todo.pop(), {}).get("depends_on", {}).get("nodes", []):
            if parent.startswith("model.") and parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


# --- references ---------------------------------------------------------------------------


@dataclass
class Run:
    """One repetition's timings (seconds)."""

    full: Any
    noop: Any
    incr: Any
    added: int
    duckdb_adjusted: float
    duckdb_resampled: float
    duckdb_script: float
    duckdb_parquet: float
    polars_adjusted: float
    polars_resampled: float


@dataclass
class Checks:
    """What the first repetition found, beside its timings."""

    adjusted_columns: list[str]
    adjusted_missing: list[str]
    resampled_columns: list[str]
    resampled_missing: list[str]
    agreement: dict[str, refs.Agreement | str] = field(default_factory=dict)
    published: PublishedSet | None = None
    upstream: dict[str, set[str]] = field(default_factory=dict)


def duckdb_settings(con) -> None:
    """The settings the warehouse profile gives dbt (profiles.yml), for the references."""
    con.execute("set TimeZone = 'UTC'")
    con.execute(f"set memory_limit = '{os.environ.get('DUCKMARKET_MEMORY_LIMIT', '1GB')}'")
    con.execute("set preserve_insertion_order = false")


def run_duckdb_script(
    root: Path, lake: Path, params: refs.Params, checks: Checks, check: bool, symbols: list[str]
) -> tuple[float, float, float, float]:
    """The plain DuckDB script: adjusted then resampled bars into a fresh database file.
    Returns (adjusted, resampled, whole script, Parquet export of both) seconds."""
    import duckdb

    db = root / "reference.duckdb"
    for f in (db, db.with_name(db.name + ".wal")):
        f.unlink(missing_ok=True)
    started = time.perf_counter()
    con = duckdb.connect(str(db))
    duckdb_settings(con)
    t = time.perf_counter()
    con.execute(refs.adjusted_sql(lake, checks.adjusted_columns, params, "bars_adjusted_ref"))
    t_adj = time.perf_counter() - t
    t = time.perf_counter()
    con.execute(
        refs.resampled_sql(
            lake, "bars_adjusted_ref", checks.resampled_columns, "bars_resampled_ref"
        )
    )
    t_res = time.perf_counter() - t
    con.close()
    t_script = time.perf_counter() - started

    out = root / "reference_parquet"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    con = duckdb.connect(str(db))
    duckdb_settings(con)
    t = time.perf_counter()
    for table in ("bars_adjusted_ref", "bars_resampled_ref"):
        con.execute(f"copy {table} to '{out / table}.parquet' (format parquet, compression zstd)")
    t_parquet = time.perf_counter() - t
    if check and checks.published is not None:
        set_dir = checks.published.path
        for name, table, keys in (
            ("bars_adjusted", "bars_adjusted_ref", KEYS_ADJUSTED),
            ("bars_resampled", "bars_resampled_ref", KEYS_RESAMPLED),
        ):
            mart = refs.mart_relation(set_dir, name)
            checks.agreement[f"{name}/duckdb"] = (
                refs.compare(con, table, mart, keys, symbols) if mart else "mart not published"
            )
    con.close()
    shutil.rmtree(out, ignore_errors=True)
    return t_adj, t_res, t_script, t_parquet


def symbol_batches(symbols: list[str], bars: int, batch_rows: int) -> list[list[str]]:
    size = max(1, batch_rows // max(bars, 1))
    return [symbols[i : i + size] for i in range(0, len(symbols), size)]


def run_polars(
    lake: Path,
    params: refs.Params,
    checks: Checks,
    batches: list[list[str]],
    check_symbols: set[str] | None,
) -> tuple[float, float]:
    """polars in memory, batch by batch of symbols (so the 50 x 1M lake fits): (adjusted,
    resampled) seconds, read + sort + compute + collect."""
    import duckdb

    set_dir = checks.published.path if checks.published else None
    t_adj = t_res = 0.0
    con = duckdb.connect() if check_symbols is not None else None
    if con is not None:
        duckdb_settings(con)
    found: dict[str, list[refs.Agreement]] = {"bars_adjusted": [], "bars_resampled": []}
    for batch in batches:
        t = time.perf_counter()
        adjusted = refs.polars_adjusted(lake, batch, checks.adjusted_columns, params)
        t_adj += time.perf_counter() - t
        resampled = None
        if set_dir is not None:
            t = time.perf_counter()
            resampled = refs.polars_resampled(set_dir, lake, batch, checks.resampled_columns)
            t_res += time.perf_counter() - t
        checked = [s for s in batch if check_symbols is None or s in check_symbols]
        if con is not None and checked and set_dir is not None:
            for name, frame, keys in (
                ("bars_adjusted", adjusted, KEYS_ADJUSTED),
                ("bars_resampled", resampled, KEYS_RESAMPLED),
            ):
                mart = refs.mart_relation(set_dir, name)
                if frame is None or mart is None:
                    continue
                con.register("polars_ref", frame.to_arrow())
                found[name].append(refs.compare(con, "polars_ref", mart, keys, checked))
                con.unregister("polars_ref")
        del adjusted, resampled
    if con is not None:
        con.close()
        for name, parts in found.items():
            if parts:
                checks.agreement[f"{name}/polars"] = merge_agreements(parts)
    return t_adj, t_res


def merge_agreements(parts: list[refs.Agreement]) -> refs.Agreement:
    errors = [p.error for p in parts if p.error]
    if errors:
        return refs.Agreement(0, 0, 0, [], error=errors[0])
    out = refs.Agreement(
        sum(p.ref_rows for p in parts),
        sum(p.mart_rows for p in parts),
        sum(p.matched for p in parts),
        parts[0].columns,
    )
    for p in parts:
        for c, (n, d) in p.differing.items():
            n0, d0 = out.differing.get(c, (0, None))
            out.differing[c] = (n0 + n, max((x for x in (d0, d) if x is not None), default=None))
    return out


# --- measures on the published set ---------------------------------------------------------


def lake_bars_bytes(lake: Path, timeframe: str = "1m") -> tuple[int, int]:
    """(bytes, rows) of the lake's bar files of one timeframe."""
    files = list(lake.glob(f"bars/*/timeframe={timeframe}/*/*/*.parquet"))
    return (
        sum(f.stat().st_size for f in files),
        sum(pq.ParquetFile(f).metadata.num_rows for f in files),
    )


def mart_bars_bytes(published: PublishedSet, name: str) -> tuple[int, int, str]:
    """(bytes, rows, what was counted) of a published mart's 1m bars: the files of its
    `<symbol>/1m/` partitions when the mart is partitioned, else the whole mart (its
    bytes and rows from the set's _set.json)."""
    base = published.path / name  # <mart>/<symbol>/1m/<month>.parquet
    files = [
        f
        for f in refs.mart_files(published.path, name)
        if f.parent.name == "1m" and f.parent.parent.parent == base
    ]
    if files:
        return (
            sum(f.stat().st_size for f in files),
            sum(pq.ParquetFile(f).metadata.num_rows for f in files),
            "its 1m partitions",
        )
    meta = published.marts.get(name, {})
    return int(meta.get("bytes", 0)), int(meta.get("rows", 0)), "the whole mart (1m and 1d rows)"


@dataclass
class Screen:
    mart: str | None
    designed: int
    flagged: dict[str, int]
    hits: int
    moves: int
    moves_flagged: int

    @property
    def precision(self) -> float:
        total = sum(self.flagged.values())
        return self.hits / total if total else float("nan")

    @property
    def recall(self) -> float:
        return self.hits / self.designed if self.designed else float("nan")


def screen_scores(published: PublishedSet, lake: Lake) -> Screen:
    """is_outlier rows of bars_adjusted (or of the published mart that carries the flag)
    against the designed bad prints and level moves."""
    import duckdb

    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    wanted = {"symbol", "timeframe", "ts", "is_outlier"}
    names = ["bars_adjusted", *sorted(n for n in published.marts if n != "bars_adjusted")]
    for name in names:
        relation = refs.mart_relation(published.path, name)
        if relation is None or not wanted <= set(refs.columns_of(con, relation)):
            continue
        rows = con.execute(
            f"select symbol, timeframe, epoch_us(ts) from {relation} where is_outlier"
        ).fetchall()
        con.close()
        flagged: dict[str, int] = {}
        for _, tf, _ in rows:
            flagged[tf] = flagged.get(tf, 0) + 1
        found = {(s, int(t)) for s, tf, t in rows if tf == "1m"}
        return Screen(
            name,
            len(lake.bad_prints),
            flagged,
            len(found & lake.bad_prints),
            len(lake.level_moves),
            len(found & lake.level_moves),
        )
    con.close()
    return Screen(None, len(lake.bad_prints), {}, 0, len(lake.level_moves), 0)


# --- peak memory ----------------------------------------------------------------------------


def own_peak_rss() -> int:
    """This process's peak RSS since it started its program (VmHWM). Not RUSAGE_SELF:
    Linux carries ru_maxrss across exec, so a child spawned by the large benchmark
    process would report the parent's size."""
    try:
        for row in Path("/proc/self/status").read_text().splitlines():
            if row.startswith("VmHWM:"):
                return int(row.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def build_only(root: Path) -> int:
    """Child mode: one full build of the lake at `root`; prints the peaks as JSON. dbt is
    this process's only child (run_build's subprocess), so RUSAGE_CHILDREN's ru_maxrss is
    the dbt process's peak RSS (KiB on Linux; any process dbt waited for is included).
    dbt is forked from this small process, so its figure starts from this one's size at
    most, never from the benchmark's."""
    t = time.perf_counter()
    result = build(DataPaths(root))
    peak = {
        "ok": result is not None,
        "wall_s": time.perf_counter() - t,
        "dbt_peak": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
        "self_peak": own_peak_rss(),
    }
    print(json.dumps(peak))
    return 0 if result is not None else 1


def parse_sizes(text: str, symbols: int, bars: int) -> list[tuple[int, int]]:
    """'B1,B2' (bars per symbol) or 'S1xB1,S2xB2'; '' or 'none' for none."""
    if text.strip().lower() in ("", "none", "0"):
        return []
    out = []
    for item in text.split(","):
        s, _, b = item.strip().lower().rpartition("x")
        out.append((int(s) if s else symbols, int(b.replace("_", ""))))
    return out


def measure_memory(
    base: Path, pristine: Path, sizes: list[tuple[int, int]], main_size: tuple[int, int]
) -> list[dict[str, Any]]:
    out = []
    for n_symbols, n_bars in sizes:
        root = base / f"memory_{n_symbols}x{n_bars}"
        t = time.perf_counter()
        if (n_symbols, n_bars) == main_size:
            copy_lake(pristine, root)
        else:
            root.mkdir(parents=True, exist_ok=True)
            write_lake(root, n_symbols, n_bars)
        rows = sum(lake_bars_bytes(root / "lake", tf)[1] for tf in ("1m", "1d"))
        written = time.perf_counter() - t
        proc = subprocess.run(
            [sys.executable, __file__, "--_build-only", str(root)],
            capture_output=True,
            text=True,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)
        try:
            peak = json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            peak = {"ok": False}
        if not peak.get("ok"):
            print(proc.stdout[-2000:], proc.stderr[-2000:])
        peak.update(symbols=n_symbols, bars=n_bars, rows=rows, lake_s=written)
        print(
            f"  memory run {n_symbols} x {n_bars:,}: "
            + (f"dbt peak {peak['dbt_peak'] / 2**20:,.0f} MiB" if peak.get("ok") else "FAILED")
        )
        out.append(peak)
    return out


# --- the machine ------------------------------------------------------------------------------


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot (/proc/stat)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


def own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# --- printing --------------------------------------------------------------------------------


def line(label: str, measured: str, target: str = "", note: str = "") -> None:
    print(f"  {label:<46}{measured:>12}{target:>12}   {note}".rstrip())


def best(xs: Sequence[float]) -> float:
    return min(xs)


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def ratio_line(
    label: str,
    num: Sequence[float],
    den: Sequence[float],
    target: str,
    *,
    percent: bool = False,
    note: str = "",
) -> None:
    def fmt(x: float) -> str:
        return f"{x * 100:.1f} %" if percent else f"{x:.2f} x"

    b, m = best(num) / best(den), med(num) / med(den)
    repeat = f"median {fmt(m)}; " if len(num) > 1 else ""
    line(label, fmt(b), target, f"({repeat}{note})" if repeat or note else "")


def seconds(xs: Sequence[float]) -> str:
    return f"{best(xs):.2f} s" + (f" (median {med(xs):.2f})" if len(xs) > 1 else "")


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--symbols", type=int, default=50)
    ap.add_argument("--bars", type=int, default=1_000_000, help="1m bars per symbol")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs (best and median shown)")
    ap.add_argument(
        "--memory-sizes",
        default=None,
        help="lake sizes of the peak-memory builds, 'B1,B2' (bars per symbol) or "
        "'S1xB1,S2xB2' (default: the given size and 4x its bars; 'none' to skip)",
    )
    ap.add_argument(
        "--bad-print-rate", type=float, default=1 / 200_000, help="per 1m bar (min 2/symbol)"
    )
    ap.add_argument(
        "--check-symbols",
        type=int,
        default=5,
        help="symbols whose reference output is compared with the marts (0: all)",
    )
    ap.add_argument(
        "--polars-batch-rows",
        type=int,
        default=5_000_000,
        help="polars computes this many input rows at a time (whole symbols)",
    )
    ap.add_argument("--no-polars", action="store_true", help="skip the polars references")
    ap.add_argument("--root", type=Path, help="work directory (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--_build-only", dest="build_only", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build_only is not None:
        return build_only(args.build_only)

    import duckdb
    import polars as pl

    load_before = os.getloadavg()
    cpu_before, own_before, wall_before = cpu_ticks(), own_cpu(), time.perf_counter()
    base = args.root or Path(tempfile.mkdtemp(prefix="bench_warehouse_"))
    if base.exists() and any(base.iterdir()):
        shutil.rmtree(base)
    base.mkdir(parents=True, exist_ok=True)
    params = refs.Params.from_project()
    sizes = parse_sizes(
        args.memory_sizes or f"{args.symbols}x{args.bars},{args.symbols}x{4 * args.bars}",
        args.symbols,
        args.bars,
    )
    try:
        pristine = base / "pristine"
        t = time.perf_counter()
        lake = write_lake(pristine, args.symbols, args.bars, bad_rate=args.bad_print_rate)
        print(
            f"lake: {args.symbols} symbols x ~{args.bars:,} 1m bars ({lake.rows_1m:,} 1m + "
            f"{lake.rows_1d:,} 1d rows), {len(lake.bad_prints)} designed bad prints and "
            f"{len(lake.level_moves)} level moves, in {time.perf_counter() - t:.1f} s ({base})"
        )
        print(
            f"machine: {os.cpu_count()} cores, load average before "
            + " ".join(f"{x:.2f}" for x in load_before)
            + f"; duckdb {duckdb.__version__}, polars {pl.__version__}"
        )
        check_symbols = (
            lake.symbols if args.check_symbols <= 0 else lake.symbols[: args.check_symbols]
        )
        batches = symbol_batches(lake.symbols, args.bars, args.polars_batch_rows)
        runs: list[Run] = []
        checks: Checks | None = None
        screen: Screen | None = None
        bytes_lake = bytes_mart = (0, 0)
        mart_note = ""
        for rep in range(args.repeat):
            root = base / f"run{rep}"
            paths = copy_lake(pristine, root)
            full = build(paths)
            if full is None:
                return 1
            published = current_set(paths)
            if published is None:
                print("the build published no set of marts (no <data>/marts link)")
                return 1
            if checks is None:
                checks = first_checks(published, full, root)
                bytes_lake = lake_bars_bytes(paths.lake)
                *bytes_mart, mart_note = mart_bars_bytes(published, "bars_adjusted")
            checks.published = published
            first = rep == 0
            d_adj, d_res, d_script, d_parquet = run_duckdb_script(
                root, paths.lake, params, checks, first, check_symbols
            )
            p_adj = p_res = float("nan")
            if not args.no_polars:
                p_adj, p_res = run_polars(
                    paths.lake, params, checks, batches, set(check_symbols) if first else None
                )
            noop = build(paths)
            if noop is None:
                return 1
            added = append_day(root, args.bars, lake.state)
            incr = build(paths)
            if incr is None:
                return 1
            if first:
                final = current_set(paths)
                screen = screen_scores(final, lake) if final else None
            runs.append(
                Run(full, noop, incr, added, d_adj, d_res, d_script, d_parquet, p_adj, p_res)
            )
            print(
                f"run {rep + 1}/{args.repeat}: full build {full.duration_s:.1f} s, "
                f"DuckDB script {d_script:.1f} s, polars {p_adj + p_res:.1f} s, "
                f"no-op build {noop.duration_s:.1f} s, one more day {incr.duration_s:.1f} s"
            )
            if not (args.keep and rep == args.repeat - 1):
                shutil.rmtree(root, ignore_errors=True)
        assert checks is not None
        memory = measure_memory(base, pristine, sizes, (args.symbols, args.bars))
        load_after = os.getloadavg()
        cpu_after, own_after, wall_after = cpu_ticks(), own_cpu(), time.perf_counter()

        report(
            args,
            lake,
            runs,
            checks,
            screen,
            memory,
            bytes_lake,
            bytes_mart,
            mart_note,
            pristine / "lake",
        )
        hz = os.sysconf("SC_CLK_TCK")
        others = (cpu_after[0] - cpu_before[0]) / hz - (own_after - own_before)
        share = max(others, 0.0) / ((wall_after - wall_before) * (os.cpu_count() or 1))
        idle = load_before[0] < 0.5 and share < 0.1
        print()
        print("machine:")
        print(
            "  load average before "
            + " ".join(f"{x:.2f}" for x in load_before)
            + ", after "
            + " ".join(f"{x:.2f}" for x in load_after)
            + " (after includes this benchmark)"
        )
        print(f"  other processes used {share:.0%} of the {os.cpu_count()} cores during the run")
        print(
            "  looked idle: "
            + ("yes" if idle else "NO: figures are slower than on an idle machine")
        )
    finally:
        if not args.keep and args.root is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


def first_checks(published: PublishedSet, full, root: Path) -> Checks:
    """Which columns the references write: those of the published marts they know."""
    import duckdb

    con = duckdb.connect()
    cols = {}
    for name in ("bars_adjusted", "bars_resampled"):
        relation = refs.mart_relation(published.path, name)
        cols[name] = list(refs.columns_of(con, relation)) if relation else []
    con.close()
    adj, adj_missing = refs.adjusted_output(cols["bars_adjusted"])
    res = [c for c in refs.RESAMPLED_COLUMNS if c in cols["bars_resampled"]] or list(
        refs.RESAMPLED_COLUMNS
    )
    res_missing = [c for c in cols["bars_resampled"] if c not in refs.RESAMPLED_COLUMNS]
    checks = Checks(
        adj,
        list(adj_missing),
        res,
        list(res_missing),
        published=published,
    )
    adj_up = upstream_models(root, "bars_adjusted")
    checks.upstream = {
        "bars_adjusted": adj_up,
        "bars_resampled": {
            u
            for u in upstream_models(root, "bars_resampled")
            if u not in adj_up and not u.endswith(".bars_adjusted")
        },
    }
    return checks


def report(
    args: argparse.Namespace,
    lake: Lake,
    runs: list[Run],
    checks: Checks,
    screen: Screen | None,
    memory: list[dict[str, Any]],
    bytes_lake: tuple[int, int],
    bytes_mart: Sequence[int],
    mart_note: str,
    pristine_lake: Path,
) -> None:
    def each(f: Callable[[Run], float]) -> list[float]:
        return [f(r) for r in runs]

    n = len(runs)
    of = f"best of {n}" if n > 1 else "one run"
    full, noop, incr = (
        each(lambda r: r.full.duration_s),
        each(lambda r: r.noop.duration_s),
        each(lambda r: r.incr.duration_s),
    )
    last = runs[-1]
    n_adj = (
        int(checks.published.marts.get("bars_adjusted", {}).get("rows", 0))
        if checks.published
        else 0
    )

    print()
    print(f"builds (`duckmarket build` of the warehouse models, publication included; {of}):")
    line("figure", "measured", "target")
    line(
        "T_full, wall",
        f"{best(full):.2f} s",
        "",
        f"({f'median {med(full):.2f} s, ' if n > 1 else ''}{len(last.full.results)} nodes)",
    )
    line(
        "  models / data and unit tests",
        f"{models_total(last.full):.1f} s",
        "",
        f"tests {tests_total(last.full):.1f} s",
    )
    ratio_line(
        "T_noop / T_full", noop, full, "<= 25 %", percent=True, note=f"T_noop {seconds(noop)}"
    )
    ratio_line(
        "(T_incr - T_noop) / T_full",
        [i - o for i, o in zip(incr, noop, strict=True)],
        full,
        "<= 5 %",
        percent=True,
        note=f"T_incr {seconds(incr)}, {last.added:,} new 1m rows",
    )
    t_res = each(lambda r: model_time(r.full, "bars_resampled"))
    t_adj = each(lambda r: model_time(r.full, "bars_adjusted"))
    t_cnt = each(lambda r: model_time(r.full, "int_bars_days_counted"))
    line(
        "resampling (bars_resampled), 1m rows/s",
        f"{lake.rows_1m / best(t_res) / 1e6:.1f} M",
        ">= 30 M",
        f"({best(t_res):.2f} s)",
    )
    line(
        "windows (bars_adjusted), rows/s",
        f"{n_adj / best(t_adj) / 1e6:.1f} M",
        ">= 5 M",
        f"({best(t_adj):.2f} s)",
    )
    line(
        "coverage counts, rows/s",
        f"{n_adj / max(best(t_cnt), 1e-9) / 1e6:.1f} M",
        "",
        f"({best(t_cnt):.2f} s)",
    )
    for name in ("quality_quarantine", "coverage_gaps", "coverage_summary", "published_marts"):
        line("  " + name, f"{best(each(lambda r, n=name: model_time(r.full, n))):.2f} s")
    if n > 1:
        print("  (the lines below: the last run)")
    line(
        "incremental / full, models",
        f"{models_total(last.incr) / models_total(last.full):.1%}",
        "",
        f"(no-op {models_total(last.noop) / models_total(last.full):.1%})",
    )
    for name in ("bars_adjusted", "bars_resampled", "int_bars_days_counted", "published_marts"):
        line(
            "  " + name,
            f"{model_time(last.incr, name):.2f} s",
            f"full {model_time(last.full, name):.2f} s",
            f"no-op {model_time(last.noop, name):.2f} s",
        )

    print()
    print(
        f"bar marts against references on the same lake, same run ({of}; model times from "
        "the full build's run_results):"
    )
    line("figure", "measured", "target")
    script = each(lambda r: r.duckdb_script)
    with_up = {
        name: each(
            lambda r, name=name: (
                model_time(r.full, name)
                + sum(r.full.timings.get(u, 0.0) for u in checks.upstream.get(name, ()))
            )
        )
        for name in ("bars_adjusted", "bars_resampled")
    }
    for name, model, dref, pref, what in (
        (
            "bars_adjusted",
            t_adj,
            each(lambda r: r.duckdb_adjusted),
            each(lambda r: r.polars_adjusted),
            "one DuckDB statement",
        ),
        (
            "bars_resampled",
            t_res,
            each(lambda r: r.duckdb_resampled),
            each(lambda r: r.polars_resampled),
            "DuckDB integer cascade",
        ),
    ):
        ratio_line(
            f"{name} / {what}",
            model,
            dref,
            "<= 1.25 x",
            note=f"{seconds(model)} vs {seconds(dref)}",
        )
        ups = len(checks.upstream.get(name, ()))
        if ups:
            ratio_line(
                f"  incl. its {ups} upstream models",
                with_up[name],
                dref,
                "",
                note=f"{seconds(with_up[name])}",
            )
        if not args.no_polars:
            label = "polars" if name == "bars_adjusted" else "polars group_by_dynamic"
            ratio_line(f"{name} / {label}", model, pref, "", note=f"polars {seconds(pref)}")
    ratio_line(
        "whole build T_full / plain DuckDB script",
        full,
        script,
        "<= 3 x",
        note=f"script {seconds(script)}: adjusted + resampled into a fresh file",
    )
    ratio_line(
        "  / script + Parquet export of both",
        full,
        [s + p for s, p in zip(script, each(lambda r: r.duckdb_parquet), strict=True)],
        "",
        note=f"export {seconds(each(lambda r: r.duckdb_parquet))}",
    )
    print(
        "  references' output against the published marts "
        f"({'all' if args.check_symbols <= 0 else f'first {args.check_symbols}'} symbols):"
    )
    for key, found in checks.agreement.items():
        text = found if isinstance(found, str) else found.summary()
        print(f"    {key}: {text}")
    covered = [c for c in checks.adjusted_columns if c not in refs.RESAMPLE_INPUTS]
    print(
        f"    bars_adjusted columns the references compute: {len(covered)}"
        + (
            f"; not computed: {', '.join(checks.adjusted_missing)}"
            if checks.adjusted_missing
            else " (all of the mart's)"
        )
    )
    if not refs.multi_source_series(pristine_lake):
        print(
            "    (one source per series in this lake: the references skip the cross-source "
            "dedup, as the model does)"
        )
    if not refs.SCREEN_COLUMNS & set(checks.adjusted_columns):
        print("    (the mart has no outlier screen: neither do the references)")
    print(
        f"    bars_resampled columns the references compute: {len(checks.resampled_columns)}"
        + (
            f"; not computed: {', '.join(checks.resampled_missing)}"
            if checks.resampled_missing
            else " (all of the mart's)"
        )
    )

    print()
    print("peak memory of a full build (a fresh process each; RSS of the dbt process):")
    ok = [m for m in memory if m.get("ok")]
    for m in memory:
        if not m.get("ok"):
            line(f"{m['symbols']} x {m['bars']:,} bars", "FAILED")
            continue
        line(
            f"{m['symbols']} x {m['bars']:,} ({m['rows']:,} bars)",
            f"{m['dbt_peak'] / 2**20:,.0f} MiB",
            "<= 2 GiB",
            f"({m['dbt_peak'] / m['rows']:,.0f} B/bar; build process "
            f"{m['self_peak'] / 2**20:,.0f} MiB; {m['wall_s']:.1f} s)",
        )
    if len(ok) >= 2:
        small, large = ok[0], ok[-1]
        line(
            f"larger / smaller ({large['rows'] / small['rows']:.1f}x the bars)",
            f"{large['dbt_peak'] / small['dbt_peak']:.2f} x",
            "<= 1.5 x",
        )

    print()
    print("bytes per 1m bar (published set vs raw lake):")
    lake_b, lake_r = bytes_lake
    mart_b, mart_r = bytes_mart
    line(
        "lake 1m bars",
        f"{lake_b / max(lake_r, 1):.1f} B",
        "",
        f"({lake_b / 1e6:,.1f} MB, {lake_r:,} rows)",
    )
    line(
        "bars_adjusted",
        f"{mart_b / max(mart_r, 1):.1f} B",
        "",
        f"({mart_b / 1e6:,.1f} MB, {mart_r:,} rows: {mart_note})",
    )
    if lake_b and mart_r:
        line("bars_adjusted / lake", f"{(mart_b / mart_r) / (lake_b / lake_r):.2f} x", "<= 1.5 x")
    if checks.published:
        total = sum(int(m.get("bytes", 0)) for m in checks.published.marts.values())
        line(f"  (whole set: {len(checks.published.marts)} marts)", f"{total / 1e6:,.1f} MB")

    print()
    if screen is None or screen.mart is None:
        print("bad-print screen: no published mart has an is_outlier column")
        return
    print(f"bad-print screen ({screen.mart}.is_outlier after the incremental build):")
    flagged = sum(screen.flagged.values())
    by_tf = ", ".join(f"{tf} {k}" for tf, k in sorted(screen.flagged.items())) or "none"
    print(
        f"  designed: {screen.designed} bad prints (about 1 per {1 / args.bad_print_rate:,.0f} "
        f"1m bars, at least 2 per symbol), {screen.moves} level moves that hold"
    )
    print(
        f"  flagged: {flagged} ({by_tf}); designed bad prints among them: {screen.hits}; "
        f"level moves flagged: {screen.moves_flagged}"
    )
    line("precision", f"{screen.precision:.3f}", ">= 0.9")
    line("recall", f"{screen.recall:.3f}", ">= 0.99")


if __name__ == "__main__":
    raise SystemExit(main())
