"""Research marts throughput: rows/s per mart (pairs, features, splits).

    python benchmarks/bench_research.py                      # daily: 500 symbols x 20 years
    python benchmarks/bench_research.py --symbols 50 --years 5
    python benchmarks/bench_research.py --minute 50 --minute-bars 1000000

Daily: a synthetic lake (SyntheticSource(seed=42)), then `dbt build` of the pairs and
features marts and their parents, with the screened candidates added to the seeded pair
universe (`pairs_include_candidates`) so that every cointegrated family is in it. Each
mart's figure is its rows over dbt's execution time for that model (`--threads 1`:
Python models share the GIL when run side by side), for its input (bars or pair bars) and
its output.

After the marts, "computation alone": the Python marts' computations (features, Kalman
filter, Engle-Granger tests) timed on their inputs read from the warehouse, without dbt
and without DuckDB reading or writing tables, so that a mart's figure can be split into
compute and I/O.

Re-runs (--keep DIR --reuse --repeat K): the lake and warehouse under DIR are kept from a
first run, and only the research marts themselves are rebuilt, K times; each mart's figure
is its best of the K runs (the machine is shared: compare variants by their best run).

Minute (--minute N): N symbols of 1m bars; the pairs marts run through dbt on 1m bars
(`pairs_timeframe: 1m`), and the feature computation (warehouse/features.py, the code the
feature models run) is timed directly on the 1m bars_adjusted rows, since feature set
`technical` v1 is declared on daily bars.

Reference (DESIGN §6): window models >= 5 M rows/s on this 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from ingest.manager import DataManager
from ingest.paths import DataPaths
from ingest.sources.synthetic import SyntheticSource
from warehouse.build import REPO, dbt_command, dbt_env

# adjustment_factors: the on-run-end hook (bars_as_of macro) reads it
SELECT = "+path:models/marts/pairs +path:models/marts/features +adjustment_factors"
PAIRS_ONLY = "+path:models/marts/pairs +adjustment_factors"
# the research marts alone (their parents already built): for --reuse
MARTS_ONLY = "path:models/marts/pairs path:models/marts/features"
WINDOW_REFERENCE = 5e6
# the feature model's input: bars as traded with their forward total-return factor
FEATURE_BARS = """
    select
        bars.symbol, bars.ts, bars.close, bars.high, bars.low,
        coalesce(factors.total_return_factor, 1.0) as total_return_factor
    from bars_adjusted as bars
    left join total_return_factors as factors
        on bars.symbol = factors.symbol
        and bars.ts >= factors.valid_from_at and bars.ts < factors.valid_to_at
    where bars.timeframe = '{timeframe}'
"""

# mart -> the relation whose rows measure its input
INPUTS = {
    "features_technical_v1": "bars_adjusted",
    "walk_forward_splits": "bars_adjusted",
    "pair_candidates": "bars_adjusted",
    "pair_bars": "bars_adjusted",
    "pair_kalman": "pair_bars",
    "pair_spreads": "pair_bars",
    "pair_cointegration": "pair_bars",
    "pair_ou_parameters": "pair_bars",
}


def _ingest(root: Path, n_symbols: int, timeframe: str, start: datetime, end: datetime) -> float:
    dm = DataManager(DataPaths(root).ensure())
    src = SyntheticSource(seed=42, n_symbols=n_symbols)
    dm.add_source(src)
    t0 = time.perf_counter()
    report = dm.ingest(src.list_symbols(), timeframe, start, end, source="synthetic")
    took = time.perf_counter() - t0
    print(f"ingest: {report.rows:,} {timeframe} bars, {n_symbols} symbols in {took:.1f} s")
    return took


def _report(paths: DataPaths, results: list[dict], timeframe: str) -> list[dict]:
    rows = []
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:

        def count(name: str) -> int:
            where = f" where timeframe = '{timeframe}'" if name == "bars_adjusted" else ""
            return con.sql(f"select count(*) from {name}{where}").fetchone()[0]

        for r in results:
            name = r["unique_id"].split(".")[-1]
            if not r["unique_id"].startswith("model.") or name not in INPUTS:
                continue
            secs = r["execution_time"]
            out_rows, in_rows = count(name), count(INPUTS[name])
            rows.append(
                {
                    "mart": name,
                    "seconds": round(secs, 3),
                    "input": INPUTS[name],
                    "input_rows": in_rows,
                    "output_rows": out_rows,
                    "input_rows_per_s": in_rows / secs,
                    "output_rows_per_s": out_rows / secs,
                }
            )
    print(
        f"{'mart':<24}{'s':>8}{'input rows':>14}{'in rows/s':>12}{'vs 5M ref':>10}"
        f"{'out rows':>12}{'out/s':>12}"
    )
    for r in rows:
        print(
            f"{r['mart']:<24}{r['seconds']:>8.2f}{r['input_rows']:>14,}"
            f"{r['input_rows_per_s'] / 1e6:>11.2f}M"
            f"{r['input_rows_per_s'] / WINDOW_REFERENCE:>9.2f}x{r['output_rows']:>12,}"
            f"{r['output_rows_per_s'] / 1e6:>11.2f}M"
        )
    print(
        f"(reference, DESIGN §6: window models >= {WINDOW_REFERENCE / 1e6:.0f} M input rows/s; "
        "'vs 5M ref' is the ratio to it; times include reading the parents and writing the "
        "mart's table)"
    )
    return rows


def _build(paths: DataPaths, select: str, dbt_vars: dict) -> list[dict]:
    """`dbt build` without tests, on one thread so that per-model times do not share the GIL."""
    extra = ["--threads", "1"]
    if dbt_vars:
        extra += ["--vars", json.dumps(dbt_vars)]
    cmd = dbt_command(
        paths,
        "build",
        select=select,
        exclude="resource_type:test resource_type:unit_test",
        extra=extra,
    )
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=dbt_env(paths), capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"dbt build failed:\n{proc.stdout[-4000:]}")
    print(f"dbt build (no tests) --select {select}: {time.perf_counter() - t0:.1f} s wall")
    results = json.loads((paths.root / ".dbt" / "target" / "run_results.json").read_text())
    return results["results"]


def _best(runs: list[list[dict]]) -> list[dict]:
    """Per model, the run with the shortest execution time."""
    best: dict[str, dict] = {}
    for results in runs:
        for r in results:
            key = r["unique_id"]
            if key not in best or r["execution_time"] < best[key]["execution_time"]:
                best[key] = r
    return list(best.values())


def bench_daily(
    root: Path, n_symbols: int, years: int, reuse: bool = False, repeat: int = 1
) -> list[dict]:
    end = datetime(2024, 1, 1, tzinfo=UTC)
    start = end.replace(year=end.year - years)
    paths = DataPaths(root)
    dbt_vars = {"pairs_include_candidates": True}
    runs = []
    if not (reuse and paths.warehouse.exists()):
        _ingest(root, n_symbols, "1d", start, end)
        runs.append(_build(paths, SELECT, dbt_vars))
    while len(runs) < repeat:
        runs.append(_build(paths, MARTS_ONLY, dbt_vars))
    if len(runs) > 1:
        print(f"best of {len(runs)} runs per mart")
    rows = _report(paths, _best(runs), "1d")
    return rows + _compute_only(paths, "1d", repeat)


def _compute_only(paths: DataPaths, timeframe: str, repeat: int) -> list[dict]:
    """The computations of the Python marts alone, on their inputs read from the warehouse
    (no dbt, no reading or writing of tables): what the marts cost beyond DuckDB's I/O."""
    import numpy as np

    from warehouse import kernels as rk
    from warehouse.features import compute_features, feature_set

    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        bars = con.sql(FEATURE_BARS.format(timeframe=timeframe)).to_arrow_table()
        pairs = con.sql("select pair_id, ts, price_a, price_b from pair_bars").to_arrow_table()
        tests = con.sql("select count(*) from pair_cointegration").fetchone()[0]
    pairs, starts, ends = rk.sort_by_key_and_time(pairs, "pair_id")
    a = np.ascontiguousarray(pairs.column("price_a").to_numpy(), dtype=np.float64)
    b = np.ascontiguousarray(pairs.column("price_b").to_numpy(), dtype=np.float64)
    # windows like pair_cointegration's: 252 bars, schwert lags (16), as many tests as it has
    lasts = np.linspace(251, max(251, len(a) - 1), max(tests, 1)).astype(np.int64)
    lasts = lasts[lasts - 251 >= 0]
    firsts, lags = lasts - 251, np.full(len(lasts), 16, np.int64)

    def best(fn) -> float:
        times = []
        for _ in range(max(repeat, 2)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    cases = [
        (
            "features (compute only)",
            bars.num_rows,
            best(lambda: compute_features(feature_set("technical", 1), bars)),
        ),
        (
            "kalman (kernel only)",
            len(a),
            best(lambda: rk.kalman_filter(a, b, starts, ends, 1e-4, 1e-3, 1.0)),
        ),
        (
            "cointegration (kernel)",
            len(a),
            best(lambda: rk.engle_granger_parallel(a, b, firsts, lasts, lags)),
        ),
    ]
    print(f"{'computation alone':<24}{'s':>8}{'input rows':>14}{'in rows/s':>12}{'vs 5M ref':>10}")
    rows = []
    for name, n, secs in cases:
        print(
            f"{name:<24}{secs:>8.2f}{n:>14,}{n / secs / 1e6:>11.2f}M"
            f"{n / secs / WINDOW_REFERENCE:>9.2f}x"
        )
        rows.append({"mart": name, "seconds": secs, "input_rows": n, "input_rows_per_s": n / secs})
    return rows


def bench_minute(root: Path, n_symbols: int, bars_per_symbol: int) -> list[dict]:
    import numpy as np

    from warehouse.features import compute_features, feature_set

    end = datetime(2024, 1, 1, tzinfo=UTC)
    sessions = bars_per_symbol / 390  # equity sessions of 390 minutes
    start = end - timedelta(days=int(sessions * 365.25 / 252) + 1)
    _ingest(root, n_symbols, "1m", start, end)
    paths = DataPaths(root)
    results = _build(
        paths,
        PAIRS_ONLY,
        {"pairs_timeframe": "1m", "pairs_include_candidates": True, "coint_window": 5000},
    )
    rows = _report(paths, results, "1m")
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        bars = con.sql(FEATURE_BARS.format(timeframe="1m")).to_arrow_table()
    t0 = time.perf_counter()
    out = compute_features(feature_set("technical", 1), bars)
    secs = time.perf_counter() - t0
    assert out.num_rows == bars.num_rows and np.isfinite(secs)
    print(
        f"features (technical v1 code on 1m bars, outside dbt): {bars.num_rows:,} rows in "
        f"{secs:.1f} s = {bars.num_rows / secs / 1e6:.2f} M rows/s"
    )
    rows.append(
        {
            "mart": "features (1m, direct)",
            "seconds": secs,
            "input_rows": bars.num_rows,
            "input_rows_per_s": bars.num_rows / secs,
        }
    )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--symbols", type=int, default=500, help="daily universe size")
    p.add_argument("--years", type=int, default=20, help="daily history in years")
    p.add_argument("--minute", type=int, default=0, metavar="N", help="also N symbols of 1m")
    p.add_argument("--minute-bars", type=int, default=1_000_000, help="1m bars per symbol")
    p.add_argument("--skip-daily", action="store_true")
    p.add_argument("--keep", metavar="DIR", help="build under DIR instead of a temp dir")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="with --keep: reuse the lake and warehouse built there, rebuild the marts only",
    )
    p.add_argument("--repeat", type=int, default=1, help="daily: runs per mart, best kept")
    args = p.parse_args()
    t0 = time.perf_counter()
    try:  # compile (or load from numba's on-disk cache) the kernels outside the timed models
        from warehouse.kernels import warm_up
    except ImportError:
        pass
    else:
        warm_up()
        print(f"numba kernels ready in {time.perf_counter() - t0:.1f} s (compiled once, cached)")
    with tempfile.TemporaryDirectory(prefix="bench_research_") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        if not args.skip_daily:
            print(f"== daily: {args.symbols} symbols x {args.years} years")
            bench_daily(base / "daily", args.symbols, args.years, args.reuse, args.repeat)
        if args.minute:
            print(f"== minute: {args.minute} symbols x {args.minute_bars:,} 1m bars")
            bench_minute(base / "minute", args.minute, args.minute_bars)


if __name__ == "__main__":
    main()
