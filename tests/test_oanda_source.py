"""OANDA v20 through real-shaped JSON answers at the HTTP boundary (httpx.MockTransport)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ingest.errors import (
    InvalidInputError,
    RateLimitedError,
    SourceError,
    SourceUnreachableError,
    SymbolNotFoundError,
)
from ingest.manager import DataManager
from ingest.sources import make
from ingest.sources.oanda import (
    GRANULARITIES,
    HOSTS,
    MAX_CANDLES,
    OandaAuthError,
    OandaSource,
    load_token,
    parse_time,
)

NOW = datetime(2024, 5, 3, 12, 0, 30, tzinfo=UTC)


def d(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def ns(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def candle(t: datetime, base: float, *, complete: bool = True, volume: int = 7) -> dict:
    def side(shift: float) -> dict:
        p = base + shift
        return {
            k: f"{v:.5f}" for k, v in (("o", p), ("h", p + 4e-4), ("l", p - 3e-4), ("c", p + 1e-4))
        }

    return {
        "complete": complete,
        "volume": volume,
        "time": ns(t),
        "bid": side(-1e-4),
        "mid": side(0.0),
        "ask": side(1e-4),
    }


class FakeOanda:
    """Serves M1 candles for every minute (weekdays) between from and to; records requests."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.queued: list[httpx.Response | Exception] = []
        self.sleeps: list[float] = []
        self.instruments = {"EUR_USD", "GBP_USD"}

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.queued:
            q = self.queued.pop(0)
            if isinstance(q, Exception):
                raise q
            return q
        instrument = request.url.path.split("/")[3]
        if instrument not in self.instruments:
            return httpx.Response(
                400, json={"errorMessage": "Invalid value specified for 'instrument'"}
            )
        p = request.url.params
        step = {"M1": timedelta(minutes=1), "H1": timedelta(hours=1)}[p["granularity"]]
        lo, hi = parse_time(p["from"]), parse_time(p["to"])
        assert (hi - lo) / step <= MAX_CANDLES
        out, t = [], lo
        while t < hi and t + step <= NOW + step:
            if t.weekday() < 5:
                out.append(candle(t, 1.07, complete=t + step <= NOW))
            t += step
        return httpx.Response(
            200,
            json={"instrument": instrument, "granularity": p["granularity"], "candles": out},
        )

    def source(self, **kw) -> OandaSource:
        client = httpx.Client(transport=httpx.MockTransport(self.handler))
        return OandaSource("tok", client=client, sleep=self.sleeps.append, now=NOW, **kw)


@pytest.fixture
def fake() -> FakeOanda:
    return FakeOanda()


def manager(paths, src: OandaSource) -> DataManager:
    return DataManager(paths, sources={src.name: src}, now=lambda: NOW)


def test_times_with_nanoseconds_parse_to_utc():
    assert parse_time("2024-05-01T00:00:01.123456789Z") == datetime(
        2024, 5, 1, 0, 0, 1, 123456, tzinfo=UTC
    )
    assert parse_time("2024-05-01T00:00:00Z") == d(2024, 5, 1)
    assert GRANULARITIES["1m"] == "M1" and GRANULARITIES["1w"] == "W"


def test_the_token_comes_from_the_environment_or_the_config_file(tmp_path):
    assert load_token({"OANDA_TOKEN": " abc \n"}) == "abc"
    cfg = tmp_path / "oanda.toml"
    cfg.write_text('token = "from-file"\n')
    assert load_token({"OANDA_CONFIG": str(cfg)}) == "from-file"
    assert load_token({"OANDA_CONFIG": str(tmp_path / "none.toml")}) is None


def test_no_token_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("OANDA_TOKEN", raising=False)
    monkeypatch.setenv("OANDA_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(InvalidInputError, match="OANDA_TOKEN"):
        make("oanda")


def test_practice_and_live_hosts_and_the_request_shape(fake):
    assert fake.source().host == HOSTS["practice"]
    src = fake.source(practice=False)
    assert src.host == HOSTS["live"]
    src.fetch_bars("EUR_USD", "1m", d(2024, 5, 1), d(2024, 5, 1, 1))
    req = fake.requests[0]
    assert req.url.host == "api-fxtrade.oanda.com"
    assert req.url.path == "/v3/instruments/EUR_USD/candles"
    assert req.headers["Authorization"] == "Bearer tok"
    assert req.url.params["price"] == "BAM"
    assert req.url.params["granularity"] == "M1"


def test_a_candle_lands_with_mid_ohlc_each_side_and_tick_volume(paths, fake):
    dm = manager(paths, fake.source())
    bars = dm.get_ohlcv("EUR_USD", "1m", d(2024, 5, 1), d(2024, 5, 1, 2), source="oanda")
    assert bars.height == 120
    row = bars.row(0, named=True)
    assert row["ts"] == d(2024, 5, 1)
    assert (row["open"], row["high"], row["low"], row["close"]) == (1.07, 1.0704, 1.0697, 1.0701)
    assert row["bid_open"] == 1.0699 and row["ask_close"] == 1.0702
    assert row["volume"] == 7.0
    assert row["is_final"]


def test_fetch_once_and_paging_within_the_candle_cap(paths, fake):
    dm = manager(paths, fake.source())
    start, end = d(2024, 4, 22), d(2024, 4, 29)  # a week of minutes: 10,080 > 5,000
    first = dm.get_ohlcv("EUR_USD", "1m", start, end, source="oanda")
    assert first.height == 5 * 1440
    n = len(fake.requests)
    assert n >= 3
    again = dm.get_ohlcv("EUR_USD", "1m", start, end, source="oanda")
    assert len(fake.requests) == n
    assert again.equals(first)


def test_the_forming_candle_is_not_final(fake):
    res = fake.source().fetch_bars("EUR_USD", "1m", d(2024, 5, 3, 11, 58), d(2024, 5, 3, 13))
    finals = res.bars.column("is_final").to_pylist()
    assert finals == [True, True, False]


@pytest.mark.parametrize(
    ("status", "body", "error", "match"),
    [
        (
            401,
            {"errorMessage": "Insufficient authorization to perform request."},
            OandaAuthError,
            "token was refused",
        ),
        (
            400,
            {"errorMessage": "Invalid value specified for 'instrument'"},
            SymbolNotFoundError,
            "instrument",
        ),
        (404, {"errorMessage": "Not found"}, SymbolNotFoundError, "HTTP 404"),
    ],
)
def test_client_errors_map_to_the_projects_errors_without_retrying(
    fake, status, body, error, match
):
    fake.queued = [httpx.Response(status, json=body)]
    with pytest.raises(error, match=match):
        fake.source().fetch_bars("EUR_USD", "1m", d(2024, 5, 1), d(2024, 5, 1, 1))
    assert fake.sleeps == []


def test_rate_limits_and_server_errors_are_retried_then_reported(fake):
    fake.queued = [httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(503)]
    res = fake.source().fetch_bars("EUR_USD", "1m", d(2024, 5, 1), d(2024, 5, 1, 1))
    assert res.bars.num_rows == 60 and res.api_calls == 3
    assert res.symbol_info["asset_class"] == "fx" and res.symbol_info["calendar"] == "FX"
    assert fake.sleeps[0] >= 3.0
    fake.queued = [httpx.Response(429)] * 3
    with pytest.raises(RateLimitedError):
        fake.source(max_retries=2).fetch_bars("EUR_USD", "1m", d(2024, 5, 1), d(2024, 5, 1, 1))
    fake.queued = [httpx.Response(502, json={"errorMessage": "bad gateway"})] * 3
    with pytest.raises(SourceError, match="HTTP 502"):
        fake.source(max_retries=2).fetch_bars("EUR_USD", "1m", d(2024, 5, 1), d(2024, 5, 1, 1))


def test_a_bad_instrument_is_a_per_symbol_failure_and_a_bad_token_stops_the_run(paths, fake):
    dm = manager(paths, fake.source())
    report = dm.ingest(["EUR_XXX", "EUR_USD"], "1h", "2024-05-01", "2024-05-02", source="oanda")
    assert [r.status for r in report.results] == ["failed", "ok"]
    assert "instrument" in report.results[0].error
    fake.queued = [httpx.Response(401, text=json.dumps({"errorMessage": "bad"}))]
    dm = manager(paths, fake.source())
    with pytest.raises(SourceUnreachableError):
        dm.ingest(["GBP_USD", "EUR_USD"], "1h", "2024-04-01", "2024-04-02", source="oanda")


def test_daily_candles_are_keyed_by_their_forex_session_date(fake):
    # the candle opening 2024-04-30 17:00 New York (21:00 UTC) is the session of May 1
    fake.queued = [httpx.Response(200, json={"candles": [candle(d(2024, 4, 30, 21), 1.07)]})]
    res = fake.source().fetch_bars("EUR_USD", "1d", d(2024, 5, 1), d(2024, 5, 2))
    assert res.bars.column("ts").to_pylist() == [d(2024, 5, 1)]
    assert fake.requests[0].url.params["alignmentTimezone"] == "America/New_York"
