"""Warehouse benchmark: dbt build over 50 symbols x 1,000,000 1m bars, then one more day.

Writes a lake straight to the Parquet layout (ingest/schema.py) with numpy: every
symbol gets full XNYS sessions of 1m bars (about ten years for 1M bars), daily bars,
quarterly dividends and a split. Then:

  1. full `dbt build` of the warehouse models (data tests included, export excluded),
     with each model's time from dbt's run_results.json;
  2. one more session of 1m bars for every symbol, and an incremental `dbt build`;
  3. the publication of the marts as Parquet, timed on its own.

Prints each figure next to its target (DESIGN §6):
  resampling >= 30 M input rows/s, window models >= 5 M rows/s,
  incremental day <= 5 % of the full build.

    .venv/bin/python benchmarks/bench_warehouse.py                 # 50 x 1,000,000
    .venv/bin/python benchmarks/bench_warehouse.py --symbols 5 --bars 100000   # quick
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import exchange_calendars as xcals
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ingest.paths import DataPaths  # noqa: E402
from ingest.schema import BARS, CORPORATE_ACTIONS, SYMBOLS  # noqa: E402
from warehouse.build import run_build  # noqa: E402
from warehouse.marts import publish_marts  # noqa: E402

WAREHOUSE = (
    "path:models/staging path:models/intermediate path:models/marts/bars "
    "path:models/marts/coverage path:models/marts/quality path:seeds/source_limits.csv "
    "path:tests/dbt/warehouse"
)
TS = pa.timestamp("us", tz="UTC")
T0 = datetime(2024, 7, 1, tzinfo=UTC)
T1 = datetime(2024, 7, 2, tzinfo=UTC)
US = 1_000_000


def sessions(n_bars: int, extra: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Open and close (epoch us) of the XNYS sessions ending 2024-06-28 holding n_bars,
    plus `extra` sessions after it (the incremental day)."""
    cal = xcals.get_calendar("XNYS", start="2000-01-01")
    sched = cal.schedule.loc["2000-01-01":"2024-12-31"]
    opens = sched["open"].dt.tz_convert(None).to_numpy().astype("datetime64[us]").astype(np.int64)
    closes = sched["close"].dt.tz_convert(None).to_numpy().astype("datetime64[us]").astype(np.int64)
    last = int(
        np.searchsorted(
            closes, np.datetime64("2024-06-29").astype("datetime64[us]").astype(np.int64)
        )
    )
    minutes = (closes - opens) // (60 * US)
    total = np.cumsum(minutes[:last][::-1])
    first = last - int(np.searchsorted(total, n_bars)) - 1
    return opens[first : last + extra], closes[first : last + extra]


def minute_ts(opens: np.ndarray, closes: np.ndarray) -> np.ndarray:
    minutes = ((closes - opens) // (60 * US)).astype(np.int64)
    starts = np.repeat(opens, minutes)
    offsets = np.arange(minutes.sum()) - np.repeat(np.cumsum(minutes) - minutes, minutes)
    return starts + offsets * 60 * US


def bars_table(
    ts: np.ndarray, close: np.ndarray, rng: np.random.Generator, stamp: datetime
) -> pa.Table:
    n = len(ts)
    prev = np.r_[close[0], close[:-1]]
    open_ = prev * (1 + rng.normal(0, 1e-4, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 3e-4, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 3e-4, n)))
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


def write_lake(root: Path, n_symbols: int, n_bars: int, seed: int = 1) -> dict[str, np.ndarray]:
    opens, closes = sessions(n_bars)
    lake = root / "lake"
    state: dict[str, np.ndarray] = {}
    symbols = [f"BEN{i:03d}" for i in range(n_symbols)]
    for k, sym in enumerate(symbols):
        rng = np.random.default_rng(seed + k)
        ts = minute_ts(opens[:-1], closes[:-1])
        close = 50 * np.exp(np.cumsum(rng.normal(0, 6e-4, len(ts))))
        # a 2-for-1 split halfway: as traded, prices halve from the ex-date on
        ex_split = len(opens) // 2
        split_at = opens[ex_split]
        close = np.where(ts >= split_at, close / 2, close)
        table = bars_table(ts, close, rng, T0)
        yr = np.asarray(pc.year(table.column("ts")))
        for y in np.unique(yr):
            part = table.filter(pa.array(yr == y))
            path = (
                lake
                / "bars"
                / "source=synthetic"
                / "timeframe=1m"
                / f"symbol={sym}"
                / f"period={y}"
                / "data.parquet"
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(part, path, row_group_size=1 << 20)
        # daily bars from the minute bars (last close, first open of each session)
        day = (ts // (86400 * US)) * 86400 * US
        edges = np.r_[0, np.nonzero(np.diff(day))[0] + 1]
        d_close = close[np.r_[edges[1:] - 1, len(ts) - 1]]
        daily = bars_table(day[edges], d_close, rng, T0)
        path = (
            lake
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
        split_day = datetime.fromtimestamp(int(split_at) / US, UTC).date()
        actions = pa.table(
            {
                "ex_date": pa.array([*ex, split_day], pa.date32()),
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
        path = lake / "corporate_actions" / "source=synthetic" / f"symbol={sym}" / "data.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(actions, path)
        state[sym] = close[-1:]
    path = lake / "symbols" / "source=synthetic" / "data.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(symbols)
    pq.write_table(
        pa.table(
            {
                "symbol": symbols,
                "name": symbols,
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
    return state


def append_day(root: Path, n_bars: int, state: dict[str, np.ndarray], seed: int = 99) -> int:
    """One more session of 1m bars for every symbol: the writer's merge (old rows keep their
    ingested_at, the partition file is rewritten)."""
    opens, closes = sessions(n_bars)
    ts = minute_ts(opens[-1:], closes[-1:])
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


def line(label: str, measured: str, target: str = "", seconds: float | None = None) -> None:
    note = f"   ({seconds:.1f} s)" if seconds is not None else ""
    print(f"  {label:<42}{measured:>12}{target:>12}{note}")


def build(paths: DataPaths):
    result = run_build(
        paths,
        select=WAREHOUSE,
        quiet=True,
        export=False,
        extra=("--indirect-selection", "cautious"),
    )
    if not result.ok:
        print(result.output[-3000:])
        return None
    return result


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--symbols", type=int, default=50)
    ap.add_argument("--bars", type=int, default=1_000_000, help="1m bars per symbol")
    ap.add_argument("--root", type=Path, help="data root (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the data root")
    args = ap.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="bench_warehouse_"))
    if root.exists() and any(root.iterdir()):
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    paths = DataPaths(root)
    try:
        t = time.perf_counter()
        state = write_lake(root, args.symbols, args.bars)
        took = time.perf_counter() - t
        print(f"lake: {args.symbols} symbols x ~{args.bars:,} 1m bars in {took:.1f}s ({root})")
        full = build(paths)
        if full is None:
            return 1
        import duckdb

        con = duckdb.connect(str(paths.warehouse), read_only=True)
        n_adj = con.execute("select count(*) from bars_adjusted").fetchone()[0]
        n_min = con.execute("select count(*) from bars_adjusted where timeframe = '1m'").fetchone()[
            0
        ]
        con.close()

        t_res = model_time(full, "bars_resampled")
        t_adj = model_time(full, "bars_adjusted")
        t_cnt = model_time(full, "int_bars_days_counted")
        print()
        print(f"full dbt build, {len(full.results)} nodes: wall {full.duration_s:.1f} s")
        print(f"  models {models_total(full):.1f} s, data and unit tests {tests_total(full):.1f} s")
        line("figure", "measured", "target")
        line(
            "resampling (bars_resampled), 1m rows/s",
            f"{n_min / t_res / 1e6:.1f} M",
            ">= 30 M",
            t_res,
        )
        line("windows (bars_adjusted), rows/s", f"{n_adj / t_adj / 1e6:.1f} M", ">= 5 M", t_adj)
        line("coverage counts, rows/s", f"{n_adj / t_cnt / 1e6:.1f} M", "", t_cnt)
        for name in ("quality_quarantine", "coverage_gaps", "coverage_summary"):
            line("  " + name, f"{model_time(full, name):.2f} s")

        added = append_day(root, args.bars, state)
        inc = build(paths)
        if inc is None:
            return 1
        print()
        print(f"incremental build after one more day ({added:,} new 1m rows):")
        print(
            f"  wall {inc.duration_s:.1f} s, models {models_total(inc):.1f} s, "
            f"tests {tests_total(inc):.1f} s"
        )
        ratio_models = models_total(inc) / models_total(full)
        line("incremental / full, models", f"{ratio_models * 100:.1f} %", "<= 5 %")
        line("incremental / full, whole dbt build", f"{inc.duration_s / full.duration_s:.1%}")
        for name in ("bars_adjusted", "bars_resampled", "int_bars_days_counted"):
            line(
                "  " + name,
                f"{model_time(inc, name):.2f} s",
                f"full {model_time(full, name):.2f} s",
            )

        t = time.perf_counter()
        published = publish_marts(paths)
        size = sum(m["bytes"] for m in published.marts.values())
        print()
        took = time.perf_counter() - t
        print(f"publication of {len(published.marts)} marts: {took:.1f} s, {size / 1e9:.2f} GB")
        print(f"(input: {n_min:,} 1m rows + daily; bars_adjusted rows {n_adj:,})")
    finally:
        if not args.keep and args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
