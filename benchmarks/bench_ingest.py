"""Ingest benchmark: synthetic generation, file import into the lake, point reads,
and the measurement behind the lake's partition granularity.

Every figure is printed beside a reference measured in the same run:
- generation and import rate vs the target (5 M rows/s from local files) and vs a plain
  pyarrow read + Parquet write of the same rows (the floor of any Parquet writer);
- a point query (one symbol, one month) vs the same query over a monthly-partitioned copy;
- yearly vs monthly intraday partitions and one-file vs per-year daily partitions:
  files opened by a full scan, point-query latency, and the cost of adding one day.

    python benchmarks/bench_ingest.py                 # 50 symbols x 1,000,000 1m bars
    python benchmarks/bench_ingest.py --bars 200000   # quicker
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingest.lake import Lake
from ingest.manager import DataManager
from ingest.sources.synthetic import SyntheticSource


def timed(fn, repeat: int = 1):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def median_ms(fn, n: int = 30) -> float:
    fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def row(label: str, value: str, reference: str = "") -> None:
    print(f"  {label:<52} {value:>16}   {reference}")


def bench_generation(n_symbols: int, bars: int, root: Path) -> float:
    print(f"\n1. synthetic source: {n_symbols} symbols x {bars:,} 1m bars")
    src = SyntheticSource(seed=42, n_symbols=n_symbols)
    syms = src.list_symbols()
    # an XNYS session has 390 minutes; crypto trades 1440 a day
    start = datetime(2014, 1, 1, tzinfo=UTC)
    eq_end = start + timedelta(days=int(bars / 390 * 365 / 252) + 2)
    cr_end = start + timedelta(minutes=bars)
    t0 = time.perf_counter()
    n = 0
    for s in syms:
        end = cr_end if "/" in s else eq_end
        n += src.fetch_bars(s, "1m", start, end).bars.num_rows
    gen = time.perf_counter() - t0
    row("generation only", f"{n / gen / 1e6:,.1f} M rows/s", f"{n:,} rows in {gen:.1f} s")

    dm = DataManager(root)
    dm.add_source(src)
    t0 = time.perf_counter()
    eq = [s for s in syms if "/" not in s]
    cr = [s for s in syms if "/" in s]
    r1 = dm.ingest(eq, "1m", start, eq_end, source="synthetic")
    r2 = dm.ingest(cr, "1m", start, cr_end, source="synthetic")
    total = time.perf_counter() - t0
    rows = r1.rows + r2.rows
    row(
        "generation + lake write (validate, merge, fsync)",
        f"{rows / total / 1e6:,.1f} M rows/s",
        f"{rows:,} rows in {total:.1f} s; target: 50 x 1M in well under 60 s",
    )
    dm.close()
    return total


def bench_import(root: Path, work: Path, rows: int) -> None:
    print(f"\n2. import a local file of {rows:,} 1m bars (one symbol)")
    src = SyntheticSource(seed=7, n_symbols=10)
    sym = next(s for s in src.list_symbols() if "/" in s)
    start = datetime(2010, 1, 1, tzinfo=UTC)
    t = src.fetch_bars(sym, "1m", start, start + timedelta(minutes=rows)).bars
    pq_path = work / "bars.parquet"
    pq.write_table(t, pq_path, compression="zstd")
    csv_path = work / "bars.csv"
    df = t.to_pandas()
    df["ts"] = df["ts"].dt.strftime("%Y-%m-%d %H:%M:%S+00:00")
    df.rename(
        columns={
            "ts": "Datetime",
            "open": "Open",
            "high": "High",
            "low": "Low",
            "close": "Close",
            "volume": "Volume",
        }
    ).drop(columns=["is_final"]).to_csv(csv_path, index=False)

    def floor():
        tb = pq.read_table(pq_path)
        pq.write_table(tb, work / "copy.parquet", compression="zstd", compression_level=1)

    ref, _ = timed(floor, 3)
    row(
        "reference: pyarrow read + zstd write, same rows", f"{t.num_rows / ref / 1e6:,.1f} M rows/s"
    )
    for label, path, fresh in (
        ("Parquet -> lake (new partitions)", pq_path, True),
        ("CSV -> lake (new partitions)", csv_path, True),
        ("Parquet -> lake again (merge, all rows replaced)", pq_path, False),
    ):
        best_s, rows = float("inf"), 0
        for _ in range(3):  # best of three: the machine is shared
            if fresh:
                shutil.rmtree(root, ignore_errors=True)
            with DataManager(root) as dm:
                t0 = time.perf_counter()
                rep = dm.import_file(path, symbol="IMPORT", timeframe="1m")
                best_s = min(best_s, time.perf_counter() - t0)
                rows = rep.rows_written
        row(
            label,
            f"{rows / best_s / 1e6:,.1f} M rows/s",
            f"target >= 5 M rows/s; {rows:,} rows in {best_s:.2f} s (best of 3)",
        )


def _layouts(work: Path, lake_root: Path) -> dict[str, Path]:
    """Copy the 1m lake into a monthly-partitioned twin for comparison."""
    monthly = work / "monthly"
    for f in (lake_root / "bars").rglob("data.parquet"):
        t = pq.read_table(f)
        months = pc.strftime(t.column("ts"), format="%Y-%m")
        rel = f.parent.parent.relative_to(lake_root)
        for m in sorted(set(months.to_pylist())):
            d = monthly / rel / f"period={m}"
            d.mkdir(parents=True, exist_ok=True)
            pq.write_table(t.filter(pc.equal(months, m)), d / "data.parquet", compression="zstd")
    return {"yearly (chosen)": lake_root, "monthly": monthly}


def bench_reads_and_layout(root: Path, work: Path, gen_seconds: float) -> None:
    print("\n3. reads and partition granularity (1m bars)")
    lake = Lake(root)
    files = lake.manifest.live_files("bars", timeframe="1m")
    sym = sorted({f.symbol for f in files})[0]
    year = max(int(f.period) for f in files if f.symbol == sym)
    a = datetime(year, 3, 1, tzinfo=UTC)
    b = datetime(year, 4, 1, tzinfo=UTC)
    ms = median_ms(lambda: lake.read_bars("synthetic", sym, "1m", a, b))
    row("point query via Lake.read_bars (one symbol-month)", f"{ms:.2f} ms", "opens 1 file")
    layouts = _layouts(work, lake.root)
    con = duckdb.connect()
    for name, base in layouts.items():
        glob = f"{base}/bars/*/*/*/*/*.parquet"
        n_files = len(list(Path(base, "bars").rglob("*.parquet")))
        scan_s, _ = timed(
            lambda glob=glob: con.sql(
                f"select count(*), avg(close) from read_parquet('{glob}', hive_partitioning=true)"
            ).fetchall(),
            3,
        )
        period = str(year) if name.startswith("yearly") else f"{year}-03"
        q = (
            f"select count(*) from read_parquet('{glob}', hive_partitioning=true, "
            f"hive_types={{'period': 'varchar'}}) where symbol = $s and period = $p "
            f"and ts >= $a and ts < $b"
        )
        pms = median_ms(
            lambda q=q, period=period: con.execute(
                q, {"s": sym, "p": period, "a": a, "b": b}
            ).fetchall()
        )
        row(f"{name}: files for a full scan", f"{n_files:,}")
        row(f"{name}: full scan count+avg(close)", f"{scan_s * 1e3:,.0f} ms")
        row(f"{name}: DuckDB point query, symbol-month", f"{pms:.2f} ms")
    # the cost of adding one day: each symbol's next session after its last bar lands in
    # (and rewrites) that symbol's latest yearly partition
    dm = DataManager(root)
    dm.add_source(SyntheticSource(seed=42, n_symbols=len({f.symbol for f in files})))
    last_us: dict[str, int] = {}
    for f in files:
        last_us[f.symbol] = max(last_us.get(f.symbol, 0), f.max_us)
    t_inc, rows, rewritten = 0.0, 0, 0
    for sym, us in sorted(last_us.items()):
        nxt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us + 60_000_000)
        t0 = time.perf_counter()
        rep = dm.ingest([sym], "1m", nxt, nxt + timedelta(days=4), source="synthetic")
        t_inc += time.perf_counter() - t0
        rows += rep.rows
        rewritten += 1
    full_rows = sum(f.rows for f in files)
    per_partition = full_rows / len(files)
    row(
        "incremental: the next days for every symbol",
        f"{t_inc:.2f} s",
        f"{rows:,} new rows into a lake of {full_rows:,}; {rewritten} yearly partitions "
        f"(~{per_partition:,.0f} rows each) rewritten; the first ingest took {gen_seconds:.1f} s",
    )
    dm.close()
    lake.close()


def bench_daily_layout(work: Path, n_symbols: int) -> None:
    print(f"\n4. daily bars: one file per symbol vs one per symbol-year ({n_symbols} x 20 years)")
    root = work / "daily"
    dm = DataManager(root)
    src = SyntheticSource(seed=42, n_symbols=n_symbols)
    dm.add_source(src)
    syms = src.list_symbols()
    el, rep = timed(lambda: dm.ingest(syms, "1d", "2004-01-01", "2024-01-01", source="synthetic"))
    row(
        "ingest 1d bars (generation + lake write)",
        f"{rep.rows / el / 1e6:,.2f} M rows/s",
        f"{rep.rows:,} rows, {len(syms)} files",
    )
    yearly = work / "daily-yearly"
    for f in (root / "lake" / "bars").rglob("data.parquet"):
        t = pq.read_table(f)
        years = pc.year(t.column("ts"))
        rel = f.parent.parent.relative_to(root / "lake")
        for y in sorted(set(years.to_pylist())):
            d = yearly / rel / f"period={y}"
            d.mkdir(parents=True, exist_ok=True)
            pq.write_table(t.filter(pc.equal(years, y)), d / "data.parquet")
    con = duckdb.connect()
    sym = syms[0]
    for name, base in (
        ("one file per symbol (chosen)", root / "lake"),
        ("per symbol-year", yearly),
    ):
        glob = f"{base}/bars/*/*/*/*/*.parquet"
        n_files = len(list(Path(base, "bars").rglob("*.parquet")))
        scan_s, _ = timed(
            lambda glob=glob: con.sql(
                f"select count(*), avg(close) from read_parquet('{glob}', hive_partitioning=true)"
            ).fetchall(),
            3,
        )
        q = (
            f"select count(*) from read_parquet('{glob}', hive_partitioning=true, "
            f"hive_types={{'period': 'varchar'}}) where symbol = $s and ts >= $a and ts < $b"
        )
        params = {
            "s": sym,
            "a": datetime(2015, 3, 1, tzinfo=UTC),
            "b": datetime(2015, 4, 1, tzinfo=UTC),
        }
        pms = median_ms(lambda q=q, params=params: con.execute(q, params).fetchall())
        row(f"{name}: files / full scan", f"{n_files:,} / {scan_s * 1e3:,.0f} ms")
        row(f"{name}: DuckDB point query, symbol-month", f"{pms:.2f} ms")
    dm.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=50)
    ap.add_argument("--bars", type=int, default=1_000_000, help="1m bars per symbol")
    ap.add_argument("--import-rows", type=int, default=5_000_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dm-bench-"))
    try:
        print(f"duckmarket ingest benchmark (work dir {work})")
        gen_seconds = bench_generation(args.symbols, args.bars, work / "gen")
        bench_import(work / "imp", work, args.import_rows)
        bench_reads_and_layout(work / "gen", work, gen_seconds)
        bench_daily_layout(work, args.symbols)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
