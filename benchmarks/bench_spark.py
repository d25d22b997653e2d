"""The portable models on two engines: the same synthetic lake, `dbt run -s tag:portable`
on the DuckDB target and on the Spark target (dbt-spark, `method: session`, local[2]),
and the ratio of their times; then, on paper, what a 500-symbol x 10-year 1m universe
would need on a Spark cluster, scaled from the rate measured here.

    .venv/bin/python benchmarks/bench_spark.py                         # 10 x 250,000
    .venv/bin/python benchmarks/bench_spark.py --symbols 4 --bars 50000  # quick

Both engines run as dbt does it (a subprocess each), after one untimed warm-up run of
each, so that the figures compare builds rather than first starts. Reported per model
(dbt's own execution time) and in all (the wall time of the run: DuckDB's includes
dbt's start, Spark's also the JVM's). Spark writes managed Parquet tables under
``<root>/.spark/warehouse``; DuckDB its warehouse file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_warehouse import cpu_ticks, write_lake  # noqa: E402

from ingest.manager import DataManager  # noqa: E402
from ingest.paths import DataPaths  # noqa: E402
from warehouse.build import dbt_command, dbt_env  # noqa: E402
from warehouse.calendars import write_calendars  # noqa: E402

#: the universe of the estimate: 500 symbols, 10 years of a US equity session's 1m bars
UNIVERSE_SYMBOLS = 500
UNIVERSE_BARS = 10 * 252 * 390
#: the time a daily full rebuild of the portable models may take on the cluster
TARGET_SECONDS = 3600.0


def run(paths: DataPaths, target: str) -> tuple[float, dict[str, float]]:
    """Wall seconds of `dbt run -s tag:portable --target <target>`, and each model's."""
    out = paths.root / ".dbt" / target
    # a full build on both: DuckDB's bar marts are incremental, Spark's are tables
    cmd = dbt_command(
        paths, "run", select="tag:portable", full_refresh=True, extra=["--target", target]
    )
    cmd[cmd.index("--target-path") + 1] = str(out / "target")
    cmd[cmd.index("--log-path") + 1] = str(out / "logs")
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=dbt_env(paths), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"dbt run --target {target} failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    results = json.loads((out / "target" / "run_results.json").read_text())["results"]
    return wall, {r["unique_id"].rsplit(".", 1)[-1]: r["execution_time"] for r in results}


class GroupCpu(threading.Thread):
    """CPU clock ticks used since it started by the processes of this process group: this
    one, dbt's and Spark's JVM, which dbt does not wait for, so that os.times() misses it.
    /proc is sampled every 0.2 s: a process's last 0.2 s before it exits may be missed."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.group = os.getpgrp()
        self.done = threading.Event()
        self.seen: dict[tuple[int, int], int] = {}
        self.start_ticks = self.sample()

    def sample(self) -> dict[tuple[int, int], int]:
        found = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == self.group:  # pgrp; key: pid and start time
                found[(int(stat.parent.name), int(fields[19]))] = int(fields[11]) + int(fields[12])
        return found

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.seen.update(self.sample())

    def stop(self) -> int:
        self.done.set()
        self.join()
        self.seen.update(self.sample())
        return sum(t - self.start_ticks.get(key, 0) for key, t in self.seen.items())


def prepare(paths: DataPaths) -> None:
    """What Spark needs beside the lake's files: the manifest recording them (the lake is
    written by hand, so `verify` adopts its files, and writes the manifest's Parquet
    mirror, where Spark looks a dataset up), the exchange sessions `duckmarket build`
    writes, and the seed coverage_gaps reads, on both targets."""
    with DataManager(paths) as dm:
        dm.verify(repair=True)
    write_calendars(paths)
    for target in ("dev", "spark"):
        out = paths.root / ".dbt" / target
        cmd = dbt_command(paths, "seed", select="source_limits", extra=["--target", target])
        cmd[cmd.index("--target-path") + 1] = str(out / "target")
        cmd[cmd.index("--log-path") + 1] = str(out / "logs")
        done = subprocess.run(cmd, env=dbt_env(paths), capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"dbt seed --target {target} failed:\n{done.stdout[-3000:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, default=10)
    ap.add_argument("--bars", type=int, default=250_000, help="1m bars per symbol")
    ap.add_argument("--root", type=Path, help="work directory (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if shutil.which("java") is None:
        sys.exit("Spark needs Java 17: apt-get install -y openjdk-17-jre-headless")
    root = args.root or Path(tempfile.mkdtemp(prefix="bench_spark_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        load = os.getloadavg()  # before this script's own work
        lake = write_lake(root, args.symbols, args.bars)
        paths = DataPaths(root)
        prepare(paths)
        bars = lake.rows_1m + lake.rows_1d
        print(
            f"lake: {args.symbols} symbols x ~{args.bars:,} 1m bars "
            f"({lake.rows_1m:,} 1m + {lake.rows_1d:,} 1d rows)"
        )
        print(f"machine: {os.cpu_count()} cores, load average before {load[0]:.2f} {load[1]:.2f}")
        # the profile's targets: dev is DuckDB
        timings: dict[str, list[tuple[float, dict[str, float]]]] = {"dev": [], "spark": []}
        cpu0 = cpu_ticks()
        ours = GroupCpu()
        ours.start()
        for _ in range(2):  # the first of each is the warm-up
            for target in timings:
                timings[target].append(run(paths, target))
        cpu1 = cpu_ticks()
        others = (cpu1[0] - cpu0[0]) - ours.stop()
        share = max(others, 0) / max(cpu1[1] - cpu0[1], 1)
        (d_wall, d_models), (s_wall, s_models) = timings["dev"][1], timings["spark"][1]
        print(f"\n{'model':34} {'DuckDB s':>9} {'Spark s':>9} {'Spark/DuckDB':>13}")
        for name in sorted(d_models, key=lambda n: -s_models.get(n, 0)):
            d, s = d_models[name], s_models.get(name, float("nan"))
            print(f"{name:34} {d:9.2f} {s:9.2f} {s / d:12.1f}x")
        d_sum, s_sum = sum(d_models.values()), sum(s_models.values())
        print("  (on DuckDB staging models are views: their cost shows in the tables reading them)")
        print(f"{'all portable models':34} {d_sum:9.2f} {s_sum:9.2f} {s_sum / d_sum:12.1f}x")
        print(
            f"{'wall time of the dbt run':34} {d_wall:9.2f} {s_wall:9.2f} {s_wall / d_wall:12.1f}x"
        )
        cores = os.cpu_count() or 2
        rate = bars / s_sum / min(cores, 2)  # local[2]
        universe = UNIVERSE_SYMBOLS * UNIVERSE_BARS
        core_seconds = universe / rate
        print(
            f"\nSpark here: {rate:,.0f} input bars a second per core "
            f"(DuckDB: {bars / d_sum / cores:,.0f} per core)."
        )
        print(
            f"On paper, not measured: {UNIVERSE_SYMBOLS} symbols x 10 years of 1m bars "
            f"= {universe / 1e6:,.0f} M bars, at that rate and scaling linearly in bars and "
            f"cores, is {core_seconds / 3600:,.0f} core-hours; to rebuild the portable models "
            f"in {TARGET_SECONDS / 60:.0f} min: about {core_seconds / TARGET_SECONDS:,.0f} cores "
            f"(e.g. {math.ceil(core_seconds / TARGET_SECONDS / 8)} executor(s) of 8 cores)."
        )
        print(
            f"Memory: the largest window partition is one symbol's 1m series "
            f"({UNIVERSE_BARS / 1e6:.2f} M rows, a few hundred MB), so 4 GB per executor "
            f"core is ample; the lake at 53 bytes a bar is "
            f"{universe * 53 / 1e9:,.0f} GB and bars_adjusted about 1.5x that."
        )
        idle = load[0] < 0.5 and share < 0.1
        print(
            f"\nother processes used {share:.0%} of the cores during the runs; looked idle: "
            + ("yes" if idle else "NO: the figures are slower than on an idle machine")
        )
    finally:
        if not args.keep and args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
