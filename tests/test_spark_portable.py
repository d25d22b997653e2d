"""The portable models on two engines: the same small synthetic lake built by DuckDB
(`duckmarket build`) and by Spark (dbt-spark, `method: session`, local[2], the profile's
`spark` target), every portable model compared row by row: the same keys, values equal to
1e-9 (relative, or absolute below 1). The lake holds two vendors for one daily series, a
symbol with minute bars only, and corporate actions: dividends, splits (one on the day
of a dividend, one reverse), actions the checks refuse and one after the last bar; minute
bars over four sessions, with a dividend and a split among them, and over a week of two
24-hour symbols, one on the 24/7 calendar and one a second vendor calls forex (the FX
calendar: 17:00 to 17:00 New York days, closed at the weekend).
Each symbol has few ex-dates, so the engines' adjustment factors are equal to the bit and
so is adjustment_version, their hash (beyond 31 ex-dates it may differ: README).

Spark's tables are managed Parquet tables under ``<data>/.spark/warehouse``, read here by
DuckDB; DuckDB's are read from its warehouse file after the build.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, date, datetime

import duckdb
import pyarrow as pa
import pytest

from ingest.manager import DataManager
from ingest.paths import DataPaths
from ingest.sources.synthetic import SyntheticSource
from warehouse.build import dbt_command, dbt_env, run_build

pytestmark = pytest.mark.slow

START, END = datetime(2020, 1, 1, tzinfo=UTC), datetime(2022, 1, 1, tzinfo=UTC)
MINUTES = (datetime(2021, 12, 20, tzinfo=UTC), datetime(2021, 12, 24, tzinfo=UTC))
#: minute bars of the 24-hour symbols: Friday to Friday, so a weekend and two weeks
CRYPTO, FOREX = "SYNC00/USD", "SYNC01/USD"
ROUND_THE_CLOCK = (datetime(2021, 12, 17, tzinfo=UTC), datetime(2021, 12, 24, tzinfo=UTC))

#: every model tagged `portable`, with its schema and key
PORTABLE = {
    "stg_lake__bars": ("staging", ["source", "symbol", "timeframe", "ts"]),
    "stg_lake__corporate_actions": ("staging", ["source", "symbol", "ex_date", "action_type"]),
    "int_bars_deduplicated": ("intermediate", ["symbol", "timeframe", "ts"]),
    "int_daily_prices_collected": ("intermediate", ["symbol", "session_date"]),
    "int_corporate_actions_checked": ("intermediate", ["symbol", "ex_date", "action_type"]),
    "int_adjustment_factors_computed": ("intermediate", ["symbol", "segment_number"]),
    "bars_adjusted": ("main", ["symbol", "timeframe", "ts"]),
    "stg_lake__rejects": ("staging", ["dataset", "source", "symbol", "row_key", "reason"]),
    "corporate_actions": ("main", ["symbol", "ex_date", "action_type"]),
    "quality_quarantine": (
        "main",
        ["dataset", "source", "symbol", "timeframe", "ts", "reason", "row_key"],
    ),
    "stg_lake__symbols": ("staging", ["source", "symbol"]),
    "stg_lake__calendars": ("staging", ["calendar", "session_date"]),
    "int_symbols_deduplicated": ("intermediate", ["symbol"]),
    "int_sessions_unioned": ("intermediate", ["calendar", "session_date"]),
    "bars_resampled": ("main", ["symbol", "timeframe", "ts"]),
    "stg_manifest__coverage": ("staging", ["source", "symbol", "timeframe", "start_at"]),
    "int_bars_days_counted": ("intermediate", ["source", "symbol", "timeframe", "bar_date"]),
    "int_coverage_sessions_compared": (
        "intermediate",
        ["source", "symbol", "timeframe", "session_date", "is_outside_sessions"],
    ),
    "coverage_gaps": ("main", ["source", "symbol", "timeframe", "gap_start_at"]),
    "coverage_summary": ("main", ["source", "symbol", "timeframe"]),
    "adjustment_factors": ("main", ["symbol", "valid_from", "known_from"]),
    "total_return_factors": ("main", ["symbol", "valid_from"]),
}

#: actions added to the synthetic ones (dividends only, here), by symbol index:
#: (ex_date, action_type, split_ratio, cash_amount)
EXTRA_ACTIONS = {
    0: [
        # a split and a dividend on one day (the dividend is per new share)
        (date(2021, 6, 1), "split", 2.0, None),
        (date(2021, 6, 1), "dividend", None, 0.1),
        # csv's dividend of that day ranks first
        (date(2021, 7, 9), "dividend", None, 0.25),
    ],
    1: [
        (date(2019, 12, 16), "dividend", None, 0.1),  # before the first bar: invalid
        (date(2020, 9, 1), "split", 0.1, None),  # a 1-for-10 reverse split
        (date(2021, 3, 1), "dividend", None, 1e6),  # not below the previous close: invalid
        (date(2022, 6, 1), "split", 3.0, None),  # after the last bar: no ex-date session
    ],
    3: [  # minute bars only: the previous close comes from the intraday bars
        (date(2021, 12, 21), "dividend", None, 0.05),
        # a split factor of 1/2000 before it: 0.0005, which Java prints as 5.0E-4
        (date(2021, 12, 22), "split", 2000.0, None),
    ],
}


class SecondVendor(SyntheticSource):
    """Another vendor's edition of the same universe (its own prices)."""

    name = "csv"


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    if shutil.which("java") is None:
        pytest.fail(
            "Spark needs Java 17: apt-get install -y openjdk-17-jre-headless (.ci/run does)"
        )
    paths = DataPaths(tmp_path_factory.mktemp("engines") / "data").ensure()
    src = SyntheticSource(seed=11, n_symbols=4)
    # a second vendor delivering one of the same daily series (the cross-source ranking),
    # and a symbol with minute bars only (daily prices from its intraday bars)
    other = SecondVendor(seed=12, n_symbols=4)
    symbols = src.list_symbols()
    with DataManager(paths, sources={"synthetic": src, "csv": other}) as dm:
        dm.ingest(symbols[:3], "1d", START, END, source="synthetic")
        dm.ingest(symbols[:1], "1d", START, END, source="csv")
        dm.ingest(symbols[1:], "1m", *MINUTES, source="synthetic")
        dm.ingest([CRYPTO, FOREX], "1m", *ROUND_THE_CLOCK, source="synthetic")
        # the second vendor calls one of them forex: it trades on the FX calendar
        dm.lake.write_symbols("csv", {FOREX: {"asset_class": "fx"}})
        for index, rows in EXTRA_ACTIONS.items():
            actions = pa.table(
                {
                    "ex_date": pa.array([r[0] for r in rows], pa.date32()),
                    "action_type": [r[1] for r in rows],
                    "split_ratio": pa.array([r[2] for r in rows], pa.float64()),
                    "cash_amount": pa.array([r[3] for r in rows], pa.float64()),
                    "currency": ["USD"] * len(rows),
                }
            )
            dm.lake.write_actions("synthetic", symbols[index], actions)
        # rows the writer refuses: a 1m bar whose high is below its low (keyed by its
        # time), and a line a file source could not parse
        minute = datetime(2021, 12, 21, 15, 0, tzinfo=UTC)
        bad = pa.table(
            {
                "ts": pa.array([minute], pa.timestamp("us", tz="UTC")),
                "open": [10.0],
                "high": [9.0],
                "low": [11.0],
                "close": [10.0],
                "volume": [100.0],
            }
        )
        dm.lake.write_bars("synthetic", symbols[1], "1m", bad)
        dm.lake.write_rejected_lines("bars", "csv", symbols[0], "1d", [(7, "unparseable", "x;y")])
        # the vendor could not deliver the 24/7 symbol's minutes (the manifest says so):
        # its gaps are the vendor's, the FX symbol's fetchable
        dm.lake.manifest.add_coverage("synthetic", CRYPTO, "1m", *ROUND_THE_CLOCK, "unrecoverable")
        dm.lake.manifest.write_mirror(paths.lake / "_manifest")
    result = run_build(paths, quiet=True)
    assert result.ok, (result.error or "") + result.output[-3000:]
    spark_dir = paths.root / ".dbt" / "spark"
    # the seed coverage_gaps reads, then the models
    for command, select in (("seed", "source_limits"), ("run", "tag:portable")):
        cmd = dbt_command(paths, command, select=select, extra=["--target", "spark"])
        # its own target and log directories: the DuckDB build's partial parse stays valid
        cmd[cmd.index("--target-path") + 1] = str(spark_dir / "target")
        cmd[cmd.index("--log-path") + 1] = str(spark_dir / "logs")
        run = subprocess.run(cmd, env=dbt_env(paths), capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return paths


def test_the_portable_models_are_the_tagged_ones():

    from warehouse.build import REPO

    tagged = set()
    for sql in (REPO / "models").rglob("*.sql"):
        text = sql.read_text()
        config = text[: text.find("}}")] if text.startswith("{{") else ""
        if "tags=['portable']" in config:
            tagged.add(sql.stem)
    assert tagged == set(PORTABLE), json.dumps(sorted(tagged))


def test_every_model_is_portable_or_duckdb_only(engines):
    """The build's own manifest: each model carries exactly one of the two tags, and the
    Spark run built exactly the portable ones."""
    manifest = json.loads((engines.root / ".dbt" / "target" / "manifest.json").read_text())
    models = {
        node["name"]: set(node["tags"]) & {"portable", "duckdb_only"}
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
    }
    assert {name for name, tags in models.items() if len(tags) != 1} == set()
    assert {name for name, tags in models.items() if tags == {"portable"}} == set(PORTABLE)
    spark = engines.root / ".dbt" / "spark" / "target" / "run_results.json"
    built = {
        r["unique_id"].rsplit(".", 1)[-1]
        for r in json.loads(spark.read_text())["results"]
        if r["unique_id"].startswith("model.")
    }
    assert built == set(PORTABLE)


@pytest.mark.parametrize("model", sorted(PORTABLE))
def test_spark_and_duckdb_build_the_same_rows(engines, model):
    schema, keys = PORTABLE[model]
    paths = engines
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")  # the views' timestamp casts, as in the build
    con.execute(f"attach '{paths.warehouse}' as warehouse (read_only)")
    files = sorted((paths.root / ".spark" / "warehouse" / f"{schema}.db" / model).glob("*.parquet"))
    assert files, f"Spark wrote no files for {model}"
    con.execute(f"create view spark_rows as select * from read_parquet({[str(f) for f in files]})")
    con.execute(f"create view duckdb_rows as select * from warehouse.{schema}.{model}")
    spark_cols = [r[0] for r in con.execute("describe spark_rows").fetchall()]
    duck_cols = [r[0] for r in con.execute("describe duckdb_rows").fetchall()]
    assert spark_cols == duck_cols
    if model == "int_bars_deduplicated":  # the ranking ran: one source per series left
        assert (
            con.execute(
                "select count(distinct source) from duckdb_rows where timeframe = '1d'"
            ).fetchone()[0]
            == 2
        )
    if model == "int_corporate_actions_checked":  # every path of the checks ran
        covered = con.execute(
            "select count(*) filter (where action_type = 'split' and is_valid) >= 4, "
            "count(*) filter (where action_type = 'dividend' and is_valid) >= 2, "
            "count(distinct invalid_reason) = 2, "
            "count(*) filter (where action_type = 'dividend' and same_day_split_ratio = 2) = 1, "
            "count(*) filter (where ex_open is null) = 1, "
            "count(*) filter (where has_jump_mismatch) >= 1 "
            "from duckdb_rows"
        ).fetchone()
        assert all(covered), covered
    if model == "int_adjustment_factors_computed":  # above 1, and below 1e-3
        assert con.execute(
            "select max(split_factor) > 1 and min(split_factor) < 1e-3 from duckdb_rows"
        ).fetchone()[0]
    if model == "bars_adjusted":  # both factors applied, and the screen and checks ran
        assert con.execute(
            "select count(*) filter (where split_factor != 1) > 0 "
            "and count(*) filter (where dividend_factor < 1) > 0 "
            "and count(*) filter (where timeframe = '1m') > 0 "
            "and count(*) filter (where outlier_score > 0) > 0 "
            "and count(*) filter (where quality_mask != 0) > 0 "
            "from duckdb_rows"
        ).fetchone()[0]
    if model == "quality_quarantine":  # every kind of row
        kinds = con.execute(
            "select list(distinct disposition order by disposition) from duckdb_rows"
        ).fetchone()[0]
        assert kinds == ["applied_and_flagged", "flagged", "not_applied", "rejected_at_ingest"], (
            kinds
        )
    if model == "int_sessions_unioned":  # exchange, FX and 24/7 sessions
        assert con.execute("select count(distinct calendar) from duckdb_rows").fetchone()[0] == 3
    if model == "bars_resampled":
        covered = con.execute(
            "select count(distinct timeframe) = 7, "
            "count(*) filter (where is_partial) > 0, "
            "count(*) filter (where not is_partial) > 0, "
            # a week across the dividend and the split: its adjusted open and close carry
            # different factors
            "count(*) filter (where timeframe = '1w' "
            "and abs(close_adj / close - open_adj / open) > 1e-6) > 0, "
            # FX: the session opening at 22:00 UTC is the next day's
            f"count(*) filter (where symbol = '{FOREX}' and timeframe = '4h' "
            "and epoch_us(ts) % 86400000000 = 79200000000 "
            "and datediff('day', date '1970-01-01', session_date) = epoch_us(ts) // 86400000000 + 1"
            ") > 0, "
            # FX weekend bars, outside any session: daily bars of their UTC date
            f"count(*) filter (where symbol = '{FOREX}' and timeframe = '1d' "
            "and expected_bar_count is null) > 0, "
            # 24/7: whole UTC days
            f"count(*) filter (where symbol = '{CRYPTO}' and timeframe = '1d' "
            "and expected_bar_count = 1440) >= 6, "
            "count(distinct ts) filter (where timeframe = '1w') >= 2 "
            "from duckdb_rows"
        ).fetchone()
        assert all(covered), covered
    if model == "coverage_gaps":  # gaps the vendor left, and gaps to fetch
        classes = con.execute(
            "select list(distinct gap_class order by gap_class) from duckdb_rows"
        ).fetchone()[0]
        assert classes == ["fetchable", "vendor_returned_nothing"], classes
    if model == "int_coverage_sessions_compared":  # FX weekend days: outside sessions
        assert con.execute(
            "select count(*) filter (where is_outside_sessions) > 0 "
            "and count(*) filter (where observed_rows < expected_rows) > 0 from duckdb_rows"
        ).fetchone()[0]
    n_spark, n_duck = (
        con.execute(f"select count(*) from {v}").fetchone()[0]
        for v in ("spark_rows", "duckdb_rows")
    )
    assert n_spark == n_duck > 0
    on = " and ".join(f"s.{k} is not distinct from d.{k}" for k in keys)
    unmatched = con.execute(
        f"select count(*) from spark_rows s full join duckdb_rows d on {on} "
        f"where s.{keys[0]} is null or d.{keys[0]} is null"
    ).fetchone()[0]
    assert unmatched == 0
    types = dict(
        con.execute("select column_name, column_type from (describe duckdb_rows)").fetchall()
    )
    checks = []
    for c in duck_cols:
        if c == "row_json":  # the same JSON values; the engines spell some doubles apart
            continue
        if types[c] == "DOUBLE":
            checks.append(
                f"count(*) filter (where not (s.{c} is not distinct from d.{c} or "
                f"abs(s.{c} - d.{c}) <= 1e-9 * greatest(abs(d.{c}), 1.0))) as {c}"
            )
        else:
            checks.append(f"count(*) filter (where s.{c} is distinct from d.{c}) as {c}")
    row = con.execute(
        f"select {', '.join(checks)} from spark_rows s join duckdb_rows d on {on}"
    ).fetchone()
    compared = [c for c in duck_cols if c != "row_json"]
    differing = {c: n for c, n in zip(compared, row, strict=True) if n}
    assert differing == {}
    if "row_json" in duck_cols:
        pairs = con.execute(
            f"select s.row_json, d.row_json from spark_rows s join duckdb_rows d on {on}"
        ).fetchall()
        assert pairs
        for spark_json, duck_json in pairs:
            assert _same_json(json.loads(spark_json), json.loads(duck_json)), (
                spark_json,
                duck_json,
            )


def test_a_dataset_without_files_reads_as_empty_on_spark(engines, tmp_path):
    """A lake with no refused rows (the demo's): the manifest lists no rejects file, so
    Spark reads the dataset as empty with its columns instead of failing on the path."""
    paths = DataPaths(tmp_path / "data").ensure()
    mirror = paths.lake / "_manifest"
    mirror.mkdir(parents=True)
    con = duckdb.connect()
    con.execute(
        f"copy (select * from '{engines.lake / '_manifest' / 'data_files.parquet'}' "
        f"where dataset != 'rejects') to '{mirror / 'data_files.parquet'}' (format parquet)"
    )
    cmd = dbt_command(paths, "run", select="stg_lake__rejects", extra=["--target", "spark"])
    run = subprocess.run(cmd, env=dbt_env(paths), capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    files = sorted(
        (paths.root / ".spark" / "warehouse" / "staging.db" / "stg_lake__rejects").glob("*.parquet")
    )
    assert files
    empty = con.execute(f"select * from read_parquet({[str(f) for f in files]})")
    assert empty.fetchall() == []
    built = duckdb.connect()
    built.execute(f"attach '{engines.warehouse}' as warehouse (read_only)")
    expected = built.execute("select * from warehouse.staging.stg_lake__rejects limit 0")
    assert [d[0] for d in empty.description] == [d[0] for d in expected.description]


def _same_json(a, b) -> bool:
    """Equal JSON values, numbers to 1e-9 (relative, or absolute below 1)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, float | int) and isinstance(b, float | int):
        return a == b or abs(a - b) <= 1e-9 * max(abs(b), 1.0)
    return a == b
