"""The synthetic source: deterministic, range-independent, on real sessions, economically sound."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.errors import InvalidInputError, SymbolNotFoundError, UnsupportedRequestError
from ingest.sources.base import Source
from ingest.sources.synthetic import SyntheticSource


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(scope="module")
def src() -> SyntheticSource:
    return SyntheticSource(seed=42, n_symbols=50)


def closes(table: pa.Table) -> np.ndarray:
    return table["close"].to_numpy()


def ts_ns(table: pa.Table) -> np.ndarray:
    return table["ts"].cast(pa.int64()).to_numpy() * 1000


def as_ns(times: list[datetime]) -> np.ndarray:
    return np.array([int(t.timestamp()) * 10**9 for t in times], dtype=np.int64)


# --- universe and contract --------------------------------------------------------------


def test_universe_names_and_capabilities(src: SyntheticSource) -> None:
    symbols = src.list_symbols()
    assert len(symbols) == 50
    assert symbols[:3] == ["SYN000", "SYN001", "SYN002"]
    crypto = [s for s in symbols if "/" in s]
    assert crypto == [f"SYNC{i:02d}/USD" for i in range(5)]
    assert SyntheticSource(n_symbols=5).list_symbols() == [
        "SYN000",
        "SYN001",
        "SYN002",
        "SYN003",
        "SYNC00/USD",
    ]
    assert isinstance(src, Source)
    assert src.name == "synthetic"
    caps = src.capabilities
    assert set(caps.timeframes) == {"1m", "1d"}
    assert all(t.max_span is None and t.lookback is None for t in caps.timeframes.values())
    assert caps.has_actions
    assert not caps.needs_network
    assert not caps.split_adjusted
    assert caps.trailing_refetch == timedelta(0)


def test_bars_schema_and_symbol_info(src: SyntheticSource) -> None:
    res = src.fetch_bars("SYN001", "1m", utc(2024, 3, 4), utc(2024, 3, 6))
    assert res.bars.schema == pa.schema(
        [
            ("ts", pa.timestamp("us", tz="UTC")),
            ("open", pa.float64()),
            ("high", pa.float64()),
            ("low", pa.float64()),
            ("close", pa.float64()),
            ("volume", pa.float64()),
            ("is_final", pa.bool_()),
        ]
    )
    assert res.bars["is_final"].to_pylist() == [True] * res.bars.num_rows
    ts = ts_ns(res.bars)
    assert np.all(np.diff(ts) > 0)
    assert res.actions is not None
    assert res.actions.schema.names == [
        "ex_date",
        "action_type",
        "split_ratio",
        "cash_amount",
        "currency",
    ]
    assert res.actions.schema.field("ex_date").type == pa.date32()
    assert res.symbol_info == {
        "name": "Synthetic Equity 001",
        "asset_class": "equity",
        "exchange": "XNYS",
        "currency": "USD",
        "timezone": "America/New_York",
        "calendar": "XNYS",
    }
    info = src.fetch_bars("SYNC01/USD", "1d", utc(2024, 1, 1), utc(2024, 1, 3)).symbol_info
    assert info is not None
    assert (info["asset_class"], info["exchange"], info["timezone"], info["calendar"]) == (
        "crypto",
        "SYNX",
        "UTC",
        "24/7",
    )


def test_bars_respect_half_open_range(src: SyntheticSource) -> None:
    start, end = utc(2024, 3, 4, 15, 7), utc(2024, 3, 4, 15, 9)
    bars = src.fetch_bars("SYN002", "1m", start, end).bars
    assert bars["ts"].to_pylist() == [utc(2024, 3, 4, 15, 7), utc(2024, 3, 4, 15, 8)]
    daily = src.fetch_bars("SYN002", "1d", utc(2024, 3, 4), utc(2024, 3, 6)).bars
    assert daily["ts"].to_pylist() == [utc(2024, 3, 4), utc(2024, 3, 5)]
    assert src.fetch_bars("SYN002", "1d", utc(2024, 3, 9), utc(2024, 3, 11)).bars.num_rows == 0


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", ["AAPL", "SYN1", "SYN0001", "SYNC0/USD", "SYNC00/EUR", ""])
def test_unknown_symbol_raises_symbol_not_found(src: SyntheticSource, symbol: str) -> None:
    with pytest.raises(SymbolNotFoundError, match="synthetic source has no symbol"):
        src.fetch_bars(symbol, "1d", utc(2024, 1, 1), utc(2024, 2, 1))


def test_naive_datetime_raises_invalid_input(src: SyntheticSource) -> None:
    with pytest.raises(InvalidInputError, match="naive"):
        src.fetch_bars("SYN000", "1d", datetime(2024, 1, 1), utc(2024, 2, 1))
    with pytest.raises(InvalidInputError, match="naive"):
        src.fetch_bars("SYN000", "1m", utc(2024, 1, 1), datetime(2024, 2, 1))


@pytest.mark.parametrize("timeframe", ["5m", "1h", "1w", "3m", "daily"])
def test_unsupported_timeframe_raises(src: SyntheticSource, timeframe: str) -> None:
    with pytest.raises(UnsupportedRequestError, match="1m, 1d"):
        src.fetch_bars("SYN000", timeframe, utc(2024, 1, 1), utc(2024, 2, 1))


def test_range_outside_epoch_raises(src: SyntheticSource) -> None:
    with pytest.raises(UnsupportedRequestError, match="covers 2000-01-01 to 2030-12-31"):
        src.fetch_bars("SYN000", "1d", utc(1999, 6, 1), utc(2000, 2, 1))
    with pytest.raises(UnsupportedRequestError):
        src.fetch_bars("SYN000", "1d", utc(2030, 6, 1), utc(2031, 2, 1))


# --- determinism ------------------------------------------------------------------------


def test_same_seed_same_data_different_seed_different_data() -> None:
    args = ("SYN007", "1m", utc(2021, 6, 1), utc(2021, 6, 3))
    a = SyntheticSource(seed=7).fetch_bars(*args)
    b = SyntheticSource(seed=7).fetch_bars(*args)
    c = SyntheticSource(seed=8).fetch_bars(*args)
    assert a.bars.equals(b.bars)
    assert not np.array_equal(closes(a.bars), closes(c.bars))


def test_symbol_does_not_depend_on_universe_size() -> None:
    small, large = SyntheticSource(n_symbols=5), SyntheticSource(n_symbols=50)
    for tf, start, end in (
        ("1d", utc(2005, 1, 1), utc(2025, 1, 1)),
        ("1m", utc(2022, 1, 3), utc(2022, 1, 5)),
    ):
        a = small.fetch_bars("SYN003", tf, start, end)
        b = large.fetch_bars("SYN003", tf, start, end)
        assert a.bars.equals(b.bars)
        assert a.actions is not None
        assert a.actions.equals(b.actions)


# --- range independence -----------------------------------------------------------------


def _concat(*results: pa.Table) -> pa.Table:
    return pa.concat_tables(results)


@pytest.mark.parametrize(
    ("symbol", "timeframe", "a", "b", "c"),
    [
        ("SYN010", "1m", utc(2023, 3, 1), utc(2023, 3, 2, 17, 13), utc(2023, 3, 6)),
        ("SYN010", "1m", utc(2023, 11, 24, 14, 30), utc(2023, 11, 24, 17, 59), utc(2023, 12, 1)),
        ("SYNC02/USD", "1m", utc(2023, 3, 1), utc(2023, 3, 1, 23, 59), utc(2023, 3, 3)),
        ("SYN010", "1d", utc(2001, 1, 1), utc(2013, 7, 4), utc(2024, 1, 1)),
        ("SYNC02/USD", "1d", utc(2010, 1, 1), utc(2010, 1, 2, 12), utc(2011, 1, 1)),
    ],
)
def test_fetch_split_in_two_equals_one_fetch(
    src: SyntheticSource, symbol: str, timeframe: str, a: datetime, b: datetime, c: datetime
) -> None:
    whole = src.fetch_bars(symbol, timeframe, a, c).bars
    # a fresh source: nothing cached from the whole-range request
    fresh = SyntheticSource()
    parts = _concat(
        fresh.fetch_bars(symbol, timeframe, a, b).bars,
        fresh.fetch_bars(symbol, timeframe, b, c).bars,
    )
    assert whole.num_rows > 0
    assert parts.equals(whole)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    symbol=st.sampled_from(["SYN004", "SYN021", "SYNC00/USD"]),
    first_minute=st.integers(0, 20 * 1440),
    lengths=st.tuples(st.integers(1, 4 * 1440), st.integers(1, 4 * 1440)),
)
def test_range_split_property_1m(
    src: SyntheticSource, symbol: str, first_minute: int, lengths: tuple[int, int]
) -> None:
    a = utc(2019, 12, 20) + timedelta(minutes=first_minute)
    b = a + timedelta(minutes=lengths[0])
    c = b + timedelta(minutes=lengths[1])
    whole = src.fetch_bars(symbol, "1m", a, c).bars
    parts = _concat(
        src.fetch_bars(symbol, "1m", a, b).bars, src.fetch_bars(symbol, "1m", b, c).bars
    )
    assert parts.equals(whole)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    symbol=st.sampled_from(["SYN013", "SYN030", "SYNC04/USD"]),
    first_hour=st.integers(0, 20 * 365 * 24),
    lengths=st.tuples(st.integers(0, 3 * 365 * 24), st.integers(0, 3 * 365 * 24)),
)
def test_range_split_property_1d(
    src: SyntheticSource, symbol: str, first_hour: int, lengths: tuple[int, int]
) -> None:
    a = utc(2001, 1, 1) + timedelta(hours=first_hour)
    b = a + timedelta(hours=lengths[0])
    c = b + timedelta(hours=lengths[1])
    whole = src.fetch_bars(symbol, "1d", a, c)
    first, second = src.fetch_bars(symbol, "1d", a, b), src.fetch_bars(symbol, "1d", b, c)
    assert pa.concat_tables([first.bars, second.bars]).equals(whole.bars)
    assert whole.actions is not None
    assert first.actions is not None
    assert second.actions is not None
    # actions of a day cut in two appear in both halves; the set is the same
    split_actions = pa.concat_tables([first.actions, second.actions]).to_pylist()
    assert {tuple(r.values()) for r in split_actions} == {
        tuple(r.values()) for r in whole.actions.to_pylist()
    }


# --- sessions ---------------------------------------------------------------------------


def _minutes_with_missing(
    src: SyntheticSource, symbol: str, start: datetime, end: datetime
) -> tuple[np.ndarray, np.ndarray]:
    bars = src.fetch_bars(symbol, "1m", start, end).bars
    missing = src.faults(symbol, "1m", start, end)["missing"]
    got = ts_ns(bars)
    miss = as_ns(missing)
    assert not np.isin(miss, got).any()
    return got, np.sort(np.concatenate([got, miss]))


def test_equity_sessions_follow_xnys(src: SyntheticSource) -> None:
    # Thanksgiving week 2023: Thu 23rd closed, Fri 24th closes at 13:00 New York
    _, full = _minutes_with_missing(src, "SYN005", utc(2023, 11, 20), utc(2023, 11, 27))
    days = full.astype("datetime64[ns]").astype("datetime64[D]")
    per_day = {str(d): int(n) for d, n in zip(*np.unique(days, return_counts=True), strict=True)}
    assert per_day == {"2023-11-20": 390, "2023-11-21": 390, "2023-11-22": 390, "2023-11-24": 210}
    friday = full[days == np.datetime64("2023-11-24")].astype("datetime64[ns]")
    assert friday[0] == np.datetime64("2023-11-24T14:30")  # 09:30 New York
    assert friday[-1] == np.datetime64("2023-11-24T17:59")  # last bar opens 12:59 NY
    # a summer session: 09:30 New York is 13:30 UTC
    _, july = _minutes_with_missing(src, "SYN005", utc(2023, 7, 10), utc(2023, 7, 11))
    assert july.astype("datetime64[ns]")[0] == np.datetime64("2023-07-10T13:30")
    assert len(july) == 390
    assert np.all(np.diff(july) == 60 * 10**9)


def test_daily_equity_bars_only_on_sessions(src: SyntheticSource) -> None:
    bars = src.fetch_bars("SYN005", "1d", utc(2023, 1, 1), utc(2024, 1, 1)).bars
    days = [t.date() for t in bars["ts"].to_pylist()]
    assert len(days) == 250
    assert all(d.weekday() < 5 for d in days)
    for holiday in (date(2023, 1, 2), date(2023, 7, 4), date(2023, 11, 23), date(2023, 12, 25)):
        assert holiday not in days
    assert all(t.hour == 0 and t.minute == 0 for t in bars["ts"].to_pylist())


def test_crypto_trades_every_minute_every_day(src: SyntheticSource) -> None:
    _, full = _minutes_with_missing(src, "SYNC03/USD", utc(2024, 3, 9), utc(2024, 3, 11))
    assert len(full) == 2 * 1440
    assert np.all(np.diff(full) == 60 * 10**9)
    daily = src.fetch_bars("SYNC03/USD", "1d", utc(2024, 3, 1), utc(2024, 4, 1)).bars
    assert daily.num_rows == 31  # weekends included


def test_missing_bars_are_rare_and_deterministic(src: SyntheticSource) -> None:
    start, end = utc(2020, 1, 1), utc(2024, 1, 1)
    bars = src.fetch_bars("SYN012", "1m", start, end).bars
    missing = src.faults("SYN012", "1m", start, end)["missing"]
    rate = len(missing) / (bars.num_rows + len(missing))
    assert 2e-4 < rate < 1e-3
    assert SyntheticSource().faults("SYN012", "1m", start, end)["missing"] == missing


# --- prices -----------------------------------------------------------------------------


def _ohlc_ok(t: pa.Table) -> np.ndarray:
    o, h, lo, c, v = (t[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    return (lo <= np.minimum(o, c)) & (np.maximum(o, c) <= h) & (lo > 0) & (v > 0)


def test_ohlc_invariants_hold_except_on_bad_prints(src: SyntheticSource) -> None:
    start, end = utc(2016, 1, 1), utc(2026, 1, 1)
    n_bad = n_violating = 0
    for symbol in ("SYN000", "SYN001", "SYN020"):
        bars = src.fetch_bars(symbol, "1m", start, end).bars
        values = np.column_stack([bars[k].to_numpy() for k in ("open", "high", "low", "close")])
        assert np.isfinite(values).all()
        assert (values > 0).all()
        bad = src.faults(symbol, "1m", start, end)["bad_print"]
        is_bad = np.isin(ts_ns(bars), as_ns(bad))
        assert is_bad.sum() == len(bad)
        ok = _ohlc_ok(bars)
        assert ok[~is_bad].all()
        n_bad += len(bad)
        n_violating += int((~ok[is_bad]).sum())
        # a bad print is a spike in log returns a Hampel filter catches
        r = np.abs(np.diff(np.log(closes(bars))))
        idx = np.flatnonzero(is_bad)
        assert (r[idx - 1] > 0.3).all()
        assert np.median(r) < 0.002
    assert 10 <= n_bad <= 60  # about 1 in 200,000 of ~7.5M bars
    assert 0 < n_violating < n_bad


def test_daily_bad_prints_are_rare_spikes(src: SyntheticSource) -> None:
    n_bad = 0
    for symbol in src.list_symbols():
        bars = src.fetch_bars(symbol, "1d", utc(2000, 1, 1), utc(2031, 1, 1)).bars
        bad = src.faults(symbol, "1d", utc(2000, 1, 1), utc(2031, 1, 1))["bad_print"]
        is_bad = np.isin(ts_ns(bars), as_ns(bad))
        assert _ohlc_ok(bars)[~is_bad].all()
        n_bad += len(bad)
        r = np.abs(np.diff(np.log(closes(bars))))
        for i in np.flatnonzero(is_bad):
            assert r[i - 1] > 0.3
    assert 30 <= n_bad <= 130  # about 1 in 5,000 of ~390k daily bars


def test_daily_close_equals_last_minute_close(src: SyntheticSource) -> None:
    for symbol in ("SYN006", "SYN030", "SYNC01/USD"):
        start, end = utc(2022, 1, 1), utc(2023, 1, 1)
        daily = src.fetch_bars(symbol, "1d", start, end).bars
        minutes = src.fetch_bars(symbol, "1m", start, end).bars
        day = (ts_ns(minutes) // (86_400 * 10**9)).astype(np.int64)
        last = np.flatnonzero(np.r_[day[1:] != day[:-1], True])
        first = np.r_[0, last[:-1] + 1]
        bad = set(src.faults(symbol, "1d", start, end)["bad_print"])
        keep = np.array([t not in bad for t in daily["ts"].to_pylist()])
        assert len(last) == daily.num_rows
        np.testing.assert_array_equal(closes(minutes)[last][keep], closes(daily)[keep])
        np.testing.assert_array_equal(minutes["open"].to_numpy()[first], daily["open"].to_numpy())


def test_prices_stay_realistic_over_thirty_years(src: SyntheticSource) -> None:
    for symbol in src.list_symbols():
        c = closes(src.fetch_bars(symbol, "1d", utc(2000, 1, 1), utc(2031, 1, 1)).bars)
        assert 10 <= c[0] <= 500
        assert c.min() > 1
        assert c.max() < 20_000
        vol = np.std(np.diff(np.log(c[c < 3 * np.median(c)]))) * np.sqrt(252)
        assert 0.1 < vol < 0.9


# --- corporate actions ------------------------------------------------------------------


def _history(src: SyntheticSource, symbol: str) -> tuple[pa.Table, pa.Table]:
    res = src.fetch_bars(symbol, "1d", utc(2000, 1, 1), utc(2031, 1, 1))
    assert res.actions is not None
    return res.bars, res.actions


def _symbol_with_split_and_dividends(src: SyntheticSource) -> str:
    for symbol in src.list_symbols():
        actions = _history(src, symbol)[1]
        kinds = set(actions["action_type"].to_pylist())
        if kinds == {"split", "dividend"}:
            return symbol
    raise AssertionError("no symbol with both splits and dividends")


def test_actions_are_well_formed(src: SyntheticSource) -> None:
    payers = splitters = 0
    for symbol in src.list_symbols():
        bars, actions = _history(src, symbol)
        sessions = ts_ns(bars) // (86_400 * 10**9)
        ex_days = actions["ex_date"].cast(pa.int32()).to_numpy().astype(np.int64)
        assert np.isin(ex_days, sessions).all()
        rows = actions.to_pylist()
        assert all(r["currency"] == "USD" for r in rows)
        for r in rows:
            if r["action_type"] == "split":
                assert r["split_ratio"] in (2.0, 3.0, 4.0, 0.2, 0.1)
                assert r["cash_amount"] is None
            else:
                assert r["action_type"] == "dividend"
                assert r["split_ratio"] is None
                assert r["cash_amount"] > 0
                assert round(r["cash_amount"], 2) == r["cash_amount"]
        if "/" in symbol:
            assert rows == []
        payers += any(r["action_type"] == "dividend" for r in rows)
        splitters += any(r["action_type"] == "split" for r in rows)
    assert 20 <= payers <= 40  # ~70 % of 45 equities
    assert splitters >= 5


def test_actions_cover_the_requested_dates(src: SyntheticSource) -> None:
    symbol = _symbol_with_split_and_dividends(src)
    actions = _history(src, symbol)[1]
    ex = actions["ex_date"].to_pylist()
    mid = ex[len(ex) // 2]
    start = datetime(mid.year, mid.month, mid.day, tzinfo=UTC)
    part = src.fetch_bars(symbol, "1d", start, start + timedelta(days=1)).actions
    assert part is not None
    assert part["ex_date"].to_pylist() == [mid]
    # an intraday request on the ex-date sees the action too
    part = src.fetch_bars(symbol, "1m", start + timedelta(hours=15), start + timedelta(hours=16))
    assert part.actions is not None
    assert part.actions["ex_date"].to_pylist() == [mid]
    before = src.fetch_bars(symbol, "1d", utc(2000, 1, 1), start).actions
    after = src.fetch_bars(symbol, "1d", start, utc(2031, 1, 1)).actions
    assert before is not None
    assert after is not None
    assert pa.concat_tables([before, after]).equals(actions)


def test_total_return_adjustment_is_proportional_to_economic_close(
    src: SyntheticSource,
) -> None:
    symbol = _symbol_with_split_and_dividends(src)
    bars, actions = _history(src, symbol)
    econ = src.economic_close(symbol, "1d", utc(2000, 1, 1), utc(2031, 1, 1))
    assert econ["ts"].equals(bars["ts"])
    close = closes(bars)
    days = np.array([t.date() for t in bars["ts"].to_pylist()])
    # backward adjustment as the warehouse does it: events on day e adjust rows before e
    factor = np.ones(len(close))
    for row in actions.to_pylist():
        before = days < row["ex_date"]
        if row["action_type"] == "split":
            factor[before] /= row["split_ratio"]
        else:
            prev_close = close[np.flatnonzero(before)[-1]]
            factor[before] *= 1.0 - row["cash_amount"] / prev_close
    ratio = close * factor / closes(econ)
    bad = set(src.faults(symbol, "1d", utc(2000, 1, 1), utc(2031, 1, 1))["bad_print"])
    keep = np.array([t not in bad for t in bars["ts"].to_pylist()])
    np.testing.assert_allclose(ratio[keep], ratio[keep][-1], rtol=1e-9)
    # and the raw closes are not proportional (actions really happened)
    raw = close / closes(econ)
    assert raw[keep].max() / raw[keep].min() > 1.5


def test_split_shows_as_a_price_jump_at_the_open(src: SyntheticSource) -> None:
    symbol = _symbol_with_split_and_dividends(src)
    actions = _history(src, symbol)[1]
    split = next(r for r in actions.to_pylist() if r["action_type"] == "split")
    ex = datetime(split["ex_date"].year, split["ex_date"].month, split["ex_date"].day, tzinfo=UTC)
    bars = src.fetch_bars(symbol, "1d", ex - timedelta(days=7), ex + timedelta(days=1)).bars
    jump = closes(bars)[-2] / bars["open"].to_numpy()[-1]
    assert jump == pytest.approx(split["split_ratio"], rel=0.1)


# --- families ---------------------------------------------------------------------------


def test_families_partition_consecutive_equities(src: SyntheticSource) -> None:
    fams = src.families()
    members = [s for f in fams for s in f]
    assert len(members) == len(set(members))
    assert all(2 <= len(f) <= 4 for f in fams)
    for f in fams:
        idx = [int(s[3:]) for s in f]
        assert idx == list(range(idx[0], idx[0] + len(f)))
    assert len(members) >= 40
    assert SyntheticSource(n_symbols=5).families()[0] == fams[0][:4]


def test_family_members_are_cointegrated(src: SyntheticSource) -> None:
    start, end = utc(2012, 1, 1), utc(2022, 1, 1)
    for fam in src.families()[:6]:
        a, b = (np.log(closes(src.economic_close(s, "1d", start, end))) for s in fam[:2])
        beta, alpha = np.polyfit(b, a, 1)
        spread = a - alpha - beta * b
        assert np.var(spread) < 0.15 * min(np.var(a), np.var(b))
        # the spread mean-reverts: its lag-1 autocorrelation is clearly below a random walk's
        rho = np.corrcoef(spread[:-1], spread[1:])[0, 1]
        assert rho < 0.995
    # unrelated symbols from different families are not
    x = np.log(closes(src.economic_close("SYN000", "1d", start, end)))
    y = np.log(closes(src.economic_close(src.families()[1][0], "1d", start, end)))
    beta, alpha = np.polyfit(y, x, 1)
    assert np.var(x - alpha - beta * y) > 0.5 * np.var(x)


def test_generate_universe_yields_every_symbol() -> None:
    small = SyntheticSource(n_symbols=6)
    got = list(small.generate_universe("1d", utc(2024, 1, 1), utc(2024, 2, 1)))
    assert [s for s, _ in got] == small.list_symbols()
    assert all(r.bars.num_rows > 0 for _, r in got)
