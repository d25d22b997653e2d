"""A small, deterministic lake written straight to the Parquet layout, for dbt tests.

Independent of the ingest writer on purpose: the warehouse's contract is the file layout
(ingest/schema.py), so its tests build exactly that layout and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import exchange_calendars as xcals
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.schema import BARS, CORPORATE_ACTIONS, REJECTS, SYMBOLS, TICKS, encode_symbol

TS = pa.timestamp("us", tz="UTC")
INGESTED = datetime(2024, 4, 1, tzinfo=UTC)


def write(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def xnys_sessions(start: str, end: str) -> list[tuple[date, datetime, datetime]]:
    cal = xcals.get_calendar("XNYS", start="2023-01-01")
    sched = cal.schedule.loc[start:end]
    return [
        (i.date(), o.to_pydatetime(), c.to_pydatetime())
        for i, o, c in zip(
            sched.index, sched["open"].tolist(), sched["close"].tolist(), strict=True
        )
    ]


def bars_table(
    ts: list[datetime], close: np.ndarray, rng: np.random.Generator, ingested_at: datetime
) -> pa.Table:
    n = len(ts)
    open_ = np.r_[close[0], close[:-1]] * (1 + rng.normal(0, 0.0002, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.0005, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.0005, n)))
    volume = rng.integers(100, 10_000, n).astype(float)
    return pa.table(
        {
            "ts": pa.array(ts, TS),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "is_final": [True] * n,
            "ingested_at": pa.array([ingested_at] * n, TS),
        },
        schema=BARS.schema,
    )


def with_quotes(table: pa.Table, half_spread: float = 0.0001) -> pa.Table:
    """``table``'s bars with each side's OHLC: bid and ask a relative half spread below and
    above the mid (the bars' own OHLC)."""
    for side, sign in (("bid", -1.0), ("ask", 1.0)):
        for c in ("open", "high", "low", "close"):
            mid = table.column(c).to_numpy()
            table = table.append_column(f"{side}_{c}", pa.array(mid * (1 + sign * half_spread)))
    return table


@dataclass
class SmallLake:
    root: Path
    seed: int = 7
    written: list[str] = field(default_factory=list)
    #: symbols whose 1m bars also carry each side's OHLC (bid_* and ask_*, as a quoting
    #: venue's bars land), for bars_bid_ask
    quoted: tuple[str, ...] = ()

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    def bars_path(self, source: str, timeframe: str, symbol: str, period: str) -> Path:
        return (
            self.lake
            / "bars"
            / f"source={source}"
            / f"timeframe={timeframe}"
            / f"symbol={encode_symbol(symbol)}"
            / f"period={period}"
            / "data.parquet"
        )

    def put_bars(self, source: str, timeframe: str, symbol: str, table: pa.Table) -> None:
        """Merge like the writer: keep old rows (and their ingested_at), new keys appended."""
        if symbol in self.quoted and timeframe == "1m":
            table = with_quotes(table)
        period = "all" if timeframe in ("1d", "1w") else str(table.column("ts")[0].as_py().year)
        path = self.bars_path(source, timeframe, symbol, period)
        if path.exists():
            old = pq.read_table(path)
            new_ts = set(table.column("ts").to_pylist())
            keep = pa.array([t not in new_ts for t in old.column("ts").to_pylist()])
            table = pa.concat_tables([old.filter(keep), table]).sort_by("ts")
        write(path, table)

    def put_actions(
        self, source: str, symbol: str, rows: list[tuple[date, str, float | None, float | None]]
    ) -> None:
        write(
            self.lake
            / "corporate_actions"
            / f"source={source}"
            / f"symbol={encode_symbol(symbol)}"
            / "data.parquet",
            pa.table(
                {
                    "ex_date": pa.array([r[0] for r in rows], pa.date32()),
                    "action_type": [r[1] for r in rows],
                    "split_ratio": pa.array([r[2] for r in rows], pa.float64()),
                    "cash_amount": pa.array([r[3] for r in rows], pa.float64()),
                    "currency": ["USD"] * len(rows),
                    "ingested_at": pa.array([INGESTED] * len(rows), TS),
                },
                schema=CORPORATE_ACTIONS.schema,
            ),
        )

    def build(self) -> SmallLake:
        """AAA (split + dividend, two sources), BBB (a bad print, a gap), BTC/USD (24/7)."""
        rng = np.random.default_rng(self.seed)
        sessions = xnys_sessions("2024-01-02", "2024-03-08")
        days = [s[0] for s in sessions]
        symbols = {
            "AAA": ("equity", "XNYS", "America/New_York"),
            "BBB": ("equity", "XNYS", "America/New_York"),
            "BTC/USD": ("crypto", "24/7", "UTC"),
        }
        write(
            self.lake / "symbols" / "source=synthetic" / "data.parquet",
            pa.table(
                {
                    "symbol": list(symbols),
                    "name": [f"{s} test" for s in symbols],
                    "asset_class": [v[0] for v in symbols.values()],
                    "exchange": ["XNYS", "XNYS", None],
                    "currency": ["USD"] * 3,
                    "timezone": [v[2] for v in symbols.values()],
                    "calendar": [v[1] for v in symbols.values()],
                    "ingested_at": pa.array([INGESTED] * 3, TS),
                },
                schema=SYMBOLS.schema,
            ),
        )
        # daily bars: AAA splits 2-for-1 ex 2024-02-15 and pays 0.5 ex 2024-01-22
        split_day, div_day = date(2024, 2, 15), date(2024, 1, 22)
        for symbol, base in (("AAA", 200.0), ("BBB", 50.0)):
            rets = rng.normal(0, 0.01, len(days))
            close = base * np.exp(np.cumsum(rets))
            if symbol == "AAA":
                close = np.where(np.array(days) >= split_day, close / 2, close)
            ts = [datetime.combine(d, datetime.min.time(), UTC) for d in days]
            table = bars_table(ts, close, rng, INGESTED)
            if symbol == "AAA":
                # the open of the ex-date reflects the split like the close does
                i = days.index(split_day)
                opens = table.column("open").to_numpy().copy()
                opens[i] = close[i - 1] / 2
                table = table.set_column(1, "open", pa.array(opens))
                table = table.set_column(
                    2, "high", pa.array(np.maximum(table.column("high").to_numpy(), opens))
                )
                table = table.set_column(
                    3, "low", pa.array(np.minimum(table.column("low").to_numpy(), opens))
                )
            if symbol == "BBB":
                # one missing session (a gap) in the daily series
                keep = [d != date(2024, 2, 7) for d in days]
                table = table.filter(pa.array(keep))
            self.put_bars("synthetic", "1d", symbol, table)
        self.put_actions(
            "synthetic", "AAA", [(div_day, "dividend", None, 0.5), (split_day, "split", 2.0, None)]
        )
        # a second source for AAA daily: lower precedence than csv, so csv wins
        aaa = pq.read_table(self.bars_path("synthetic", "1d", "AAA", "all"))
        csv_rows = aaa.slice(5, 3)
        csv_rows = csv_rows.set_column(
            4, "close", pa.array(csv_rows.column("close").to_numpy() + 0.01)
        )
        self.put_bars("csv", "1d", "AAA", csv_rows)
        # 1m bars for the last 3 sessions
        for symbol, base in (("AAA", 60.0), ("BBB", 55.0)):
            ts, closes = [], []
            level = base
            for _d, o, c in sessions[-3:]:
                n = int((c - o).total_seconds() // 60)
                steps = np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
                ts += [o + timedelta(minutes=i) for i in range(n)]
                closes.append(level * steps)
                level = closes[-1][-1]
            close = np.concatenate(closes)
            table = bars_table(ts, close, rng, INGESTED)
            if symbol == "BBB":
                # a bad print and a 30-minute hole in the middle session
                c = table.column("close").to_numpy().copy()
                h = table.column("high").to_numpy().copy()
                c[500] *= 1.25
                h[500] = max(h[500], c[500])
                table = table.set_column(4, "close", pa.array(c)).set_column(2, "high", pa.array(h))
                keep = np.ones(table.num_rows, bool)
                keep[520:550] = False
                table = table.filter(pa.array(keep))
            self.put_bars("synthetic", "1m", symbol, table)
        # crypto: 24/7 minute bars for two days and daily bars
        start = datetime(2024, 3, 6, tzinfo=UTC)
        ts = [start + timedelta(minutes=i) for i in range(2 * 1440)]
        close = 60000 * np.exp(np.cumsum(rng.normal(0, 0.0005, len(ts))))
        self.put_bars("synthetic", "1m", "BTC/USD", bars_table(ts, close, rng, INGESTED))
        dts = [datetime(2024, 2, 1, tzinfo=UTC) + timedelta(days=i) for i in range(37)]
        self.put_bars(
            "synthetic",
            "1d",
            "BTC/USD",
            bars_table(dts, 60000 * np.exp(np.cumsum(rng.normal(0, 0.02, 37))), rng, INGESTED),
        )
        # ticks for AAA: a few hundred trades over the first hour of the last session
        o = sessions[-1][1]
        n = 600
        tick_ts = sorted(o + timedelta(seconds=float(x)) for x in rng.uniform(0, 3600, n))
        write(
            self.lake
            / "ticks"
            / "source=synthetic"
            / "symbol=AAA"
            / "period=2024-03"
            / "data.parquet",
            pa.table(
                {
                    "ts": pa.array(tick_ts, TS),
                    "seq": pa.array(range(n), pa.int64()),
                    "price": 60 + np.cumsum(rng.normal(0, 0.01, n)),
                    "size": rng.integers(1, 500, n).astype(float),
                    "side": ["buy"] * n,
                    "venue": ["XNYS"] * n,
                    "ingested_at": pa.array([INGESTED] * n, TS),
                },
                schema=TICKS.schema,
            ),
        )
        write(
            self.lake / "rejects" / "dataset=bars" / "source=synthetic" / "data.parquet",
            pa.table(
                {
                    "symbol": ["BBB"],
                    "timeframe": ["1m"],
                    "key": ["2024-03-06T15:00:00+00:00"],
                    "reason": ["non-positive price"],
                    "row": ['{"close": -1.0}'],
                    "rejected_at": pa.array([INGESTED], TS),
                },
                schema=REJECTS.schema,
            ),
        )
        mirror = self.lake / "_manifest"
        write(
            mirror / "coverage.parquet",
            pa.table(
                {
                    "source": ["synthetic", "synthetic"],
                    "symbol": ["BBB", "BBB"],
                    "timeframe": ["1d", "1d"],
                    "start_ts": pa.array(
                        [datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 2, 7, tzinfo=UTC)], TS
                    ),
                    "end_ts": pa.array(
                        [datetime(2024, 2, 7, tzinfo=UTC), datetime(2024, 2, 8, tzinfo=UTC)], TS
                    ),
                    "status": ["fetched", "empty"],
                    "updated_at": pa.array([INGESTED] * 2, TS),
                }
            ),
        )
        return self

    def append_minute_session(
        self, symbol: str = "AAA", ingested_at: datetime | None = None
    ) -> None:
        """One more session of 1m bars (2024-03-11), stamped with a later ingested_at."""
        rng = np.random.default_rng(self.seed + 1)
        ((_d, o, c),) = xnys_sessions("2024-03-11", "2024-03-11")
        n = int((c - o).total_seconds() // 60)
        old = pq.read_table(self.bars_path("synthetic", "1m", symbol, "2024"))
        last = old.column("close")[-1].as_py()
        close = last * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
        ts = [o + timedelta(minutes=i) for i in range(n)]
        stamp = ingested_at or datetime(2024, 4, 2, tzinfo=UTC)
        self.put_bars("synthetic", "1m", symbol, bars_table(ts, close, rng, stamp))

    def add_split(self, symbol: str, ex_date: date, ratio: float) -> None:
        path = (
            self.lake
            / "corporate_actions"
            / "source=synthetic"
            / f"symbol={encode_symbol(symbol)}"
            / "data.parquet"
        )
        rows: list[tuple[date, str, float | None, float | None]] = []
        if path.exists():
            old = pq.read_table(path).to_pylist()
            rows = [
                (r["ex_date"], r["action_type"], r["split_ratio"], r["cash_amount"]) for r in old
            ]
        rows.append((ex_date, "split", ratio, None))
        self.put_actions("synthetic", symbol, rows)


# --- the DESIGN §4 worked check and a yfinance-shaped history ---------------------------

WORKED_CLOSES = [100.0, 102.0, 101.0, 104.0, 52.5, 53.0]


def add_symbol(lake: SmallLake, symbol: str, calendar: str = "XNYS") -> None:
    path = lake.lake / "symbols" / "source=synthetic" / "data.parquet"
    old = pq.read_table(path)
    row = pa.table(
        {
            "symbol": [symbol],
            "name": [symbol],
            "asset_class": ["equity"],
            "exchange": ["XNYS"],
            "currency": ["USD"],
            "timezone": ["America/New_York"],
            "calendar": [calendar],
            "ingested_at": pa.array([INGESTED], TS),
        },
        schema=SYMBOLS.schema,
    )
    write(path, pa.concat_tables([old, row]))


def add_worked_example(lake: SmallLake, symbol: str = "WRK") -> list[date]:
    """D1..D6 = the first six XNYS sessions of 2024; dividend 1.02 ex D3, 2-for-1 ex D5."""
    days = [s[0] for s in xnys_sessions("2024-01-02", "2024-01-09")]
    ts = [datetime.combine(d, datetime.min.time(), UTC) for d in days]
    c = np.array(WORKED_CLOSES)
    lake.put_bars(
        "synthetic",
        "1d",
        symbol,
        pa.table(
            {
                "ts": pa.array(ts, TS),
                "open": c,
                "high": c,
                "low": c,
                "close": c,
                "volume": np.full(6, 1000.0),
                "is_final": [True] * 6,
                "ingested_at": pa.array([INGESTED] * 6, TS),
            },
            schema=BARS.schema,
        ),
    )
    lake.put_actions(
        "synthetic", symbol, [(days[2], "dividend", None, 1.02), (days[4], "split", 2.0, None)]
    )
    add_symbol(lake, symbol)
    return days


def yfinance_frame(seed: int = 3, n: int = 260):
    """A real-shaped yfinance daily history (auto_adjust=False): Close split-adjusted as of
    fetch time, Dividends split-adjusted, Stock Splits ratios, and Adj Close computed the
    way Yahoo does (dividend multiplier 1 - D / previous Close, cumulated backwards)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    days = [s[0] for s in xnys_sessions("2023-01-03", "2024-12-31")][:n]
    idx = pd.DatetimeIndex([pd.Timestamp(d, tz="America/New_York") for d in days])
    close = 80 * np.exp(np.cumsum(rng.normal(0, 0.015, n)))
    splits = np.zeros(n)
    splits[90], splits[200] = 3.0, 0.25  # 3-for-1, then 1-for-4 reverse split
    dividends = np.zeros(n)
    for i in (30, 95, 150, 200, 240):
        dividends[i] = round(float(close[i - 1] * rng.uniform(0.004, 0.02)), 4)
    mult = np.ones(n)
    for i in np.nonzero(dividends)[0]:
        mult[:i] *= 1 - dividends[i] / close[i - 1]
    return pd.DataFrame(
        {
            "Open": close * (1 + rng.normal(0, 0.002, n)),
            "High": close * 1.01,
            "Low": close * 0.99,
            "Close": close,
            "Adj Close": close * mult,
            "Volume": rng.integers(10_000, 1_000_000, n).astype(float),
            "Dividends": dividends,
            "Stock Splits": splits,
        },
        index=idx,
    )


def unadjust_yfinance(frame):
    """As traded, the adapter's way: undo the splits after each row (independent code)."""
    splits = frame["Stock Splits"].replace(0.0, 1.0).to_numpy()
    # product of split ratios strictly after each row
    after = np.cumprod(splits[::-1])[::-1]
    after = np.r_[after[1:], 1.0]
    raw = frame.copy()
    for col in ("Open", "High", "Low", "Close"):
        raw[col] = frame[col].to_numpy() * after
    raw["Volume"] = frame["Volume"].to_numpy() / after
    raw["Dividends"] = frame["Dividends"].to_numpy() * after
    return raw


def add_yfinance_symbol(lake: SmallLake, symbol: str = "YFX", frame=None):
    frame = yfinance_frame() if frame is None else frame
    raw = unadjust_yfinance(frame)
    ts = [datetime.combine(d.date(), datetime.min.time(), UTC) for d in raw.index]
    n = len(ts)
    lake.put_bars(
        "yfinance",
        "1d",
        symbol,
        pa.table(
            {
                "ts": pa.array(ts, TS),
                "open": raw["Open"].to_numpy(),
                "high": np.maximum(
                    raw["High"].to_numpy(), raw[["Open", "Close"]].max(axis=1).to_numpy()
                ),
                "low": np.minimum(
                    raw["Low"].to_numpy(), raw[["Open", "Close"]].min(axis=1).to_numpy()
                ),
                "close": raw["Close"].to_numpy(),
                "volume": raw["Volume"].to_numpy(),
                "is_final": [True] * n,
                "ingested_at": pa.array([INGESTED] * n, TS),
            },
            schema=BARS.schema,
        ),
    )
    actions = [(d.date(), "split", float(r), None) for d, r in raw["Stock Splits"].items() if r] + [
        (d.date(), "dividend", None, float(v)) for d, v in raw["Dividends"].items() if v
    ]
    path = lake.lake / "corporate_actions" / "source=yfinance" / f"symbol={symbol}" / "data.parquet"
    write(
        path,
        pa.table(
            {
                "ex_date": pa.array([a[0] for a in actions], pa.date32()),
                "action_type": [a[1] for a in actions],
                "split_ratio": pa.array([a[2] for a in actions], pa.float64()),
                "cash_amount": pa.array([a[3] for a in actions], pa.float64()),
                "currency": ["USD"] * len(actions),
                "ingested_at": pa.array([INGESTED] * len(actions), TS),
            },
            schema=CORPORATE_ACTIONS.schema,
        ),
    )
    add_symbol(lake, symbol)
    return frame
