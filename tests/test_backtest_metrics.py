"""Backtest metrics against an independent reference: pure-Python loops over a fixed series.

The reference never uses numpy: sums, square roots and running peaks are written out, so
a vectorised slip in ``warehouse.backtest_metrics`` (a wrong ddof, a downside deviation
over the losing periods only, a drawdown measured from the first period instead of the
initial capital) shows up as a difference larger than 1e-9.
"""

from __future__ import annotations

import math
import random

import pytest

from warehouse.backtest_metrics import METRICS, compute_metrics, run_metrics

P = 252.0
RF = 0.02
TARGET = 0.01
TOL = 1e-9


def _series() -> list[float]:
    rnd = random.Random(20240102)
    out = [round(rnd.gauss(0.0004, 0.012), 6) for _ in range(300)]
    for i in range(0, 300, 17):  # some flat periods
        out[i] = 0.0
    return out


RETURNS = _series()
PNL = [120.5, -40.0, 33.25, -80.75, 0.0, 210.0, -15.5, 64.0]
EXPOSURE = [0.0 if i % 5 == 0 else 1.0 + (i % 3) * 0.25 for i in range(len(RETURNS))]
EQUITY = [1000.0 * (1.0 + 0.001 * i) for i in range(len(RETURNS))]
NOTIONAL = 123_456.0


def _mean(xs):
    return sum(xs) / len(xs)


def _stdev(xs):
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def reference(r):
    n = len(r)
    wealth = [1.0]
    for x in r:
        wealth.append(wealth[-1] * (1.0 + x))
    rf_p = math.exp(math.log1p(RF) / P) - 1.0
    t_p = math.exp(math.log1p(TARGET) / P) - 1.0
    excess = [x - rf_p for x in r]
    d = [x - t_p for x in r]
    downside = math.sqrt(sum(min(x, 0.0) ** 2 for x in d) / n)
    # drawdown: walk the wealth index keeping the running peak and where it was set
    peak, peak_at, worst, worst_peak_at, worst_at = wealth[0], 0, 0.0, 0, 0
    for k, w in enumerate(wealth):
        if w > peak:
            peak, peak_at = w, k
        dd = (peak - w) / peak
        if dd > worst:
            worst, worst_peak_at, worst_at = dd, peak_at, k
    recovery = n
    for k in range(worst_at, n + 1):
        if wealth[k] >= wealth[worst_peak_at]:
            recovery = k
            break
    cagr = math.pow(wealth[-1], P / n) - 1.0
    wins = [x for x in PNL if x > 0]
    losses = [x for x in PNL if x < 0]
    return {
        "total_return": wealth[-1] - 1.0,
        "cagr": cagr,
        "volatility": _stdev(r) * math.sqrt(P),
        "sharpe": _mean(excess) / _stdev(excess) * math.sqrt(P),
        "sortino": _mean(d) / downside * math.sqrt(P),
        "max_drawdown": worst,
        "max_drawdown_duration": recovery - worst_peak_at,
        "calmar": cagr / worst,
        "n_trades": len(PNL),
        "hit_rate_trades": len(wins) / len(PNL),
        "hit_rate_periods": sum(1 for x in r if x > 0) / sum(1 for x in r if x != 0),
        "profit_factor": sum(wins) / -sum(losses),
        "avg_win": sum(wins) / len(wins),
        "avg_loss": sum(losses) / len(losses),
        "exposure": sum(1 for g in EXPOSURE if g != 0) / n,
        "turnover": NOTIONAL / _mean(EQUITY) * P / n,
    }


@pytest.fixture(scope="module")
def computed():
    return compute_metrics(
        RETURNS,
        periods_per_year=P,
        risk_free=RF,
        target=TARGET,
        trade_pnl=PNL,
        gross_exposure=EXPOSURE,
        equity=EQUITY,
        traded_notional=NOTIONAL,
    )


@pytest.mark.parametrize("name", METRICS)
def test_metric_matches_the_reference(computed, name):
    expected = reference(RETURNS)[name]
    assert computed[name] == pytest.approx(expected, rel=TOL, abs=TOL), name


def test_the_series_has_a_recovered_drawdown_and_flat_periods(computed):
    """Guards on the fixture itself, so each branch of the reference is exercised."""
    assert 0 < computed["max_drawdown"] < 1
    assert computed["max_drawdown_duration"] > 1
    assert RETURNS.count(0.0) > 10


def test_an_unrecovered_drawdown_lasts_to_the_end():
    m = compute_metrics([0.1, -0.5, 0.1, 0.1])
    assert m["max_drawdown"] == pytest.approx(0.5)
    assert m["max_drawdown_duration"] == 3  # from the peak after period 1 to period 4


def test_undefined_metrics_are_nan_not_errors():
    m = compute_metrics([0.0, 0.0, 0.0])
    assert math.isnan(m["sharpe"]) and math.isnan(m["sortino"]) and math.isnan(m["calmar"])
    assert math.isnan(m["profit_factor"]) and m["n_trades"] == 0
    assert compute_metrics([0.01, 0.02], trade_pnl=[1.0])["profit_factor"] == math.inf


def test_one_row_per_recorded_run(tmp_path):
    from ingest.backtests import record_backtest
    from tests.test_backtest_store import _run

    a = record_backtest(tmp_path, **_run())
    b = record_backtest(tmp_path, **_run(config={"entry": 3.0}))
    table = run_metrics(tmp_path)
    assert sorted(table["run_id"].to_list()) == sorted([a.run_id, b.run_id])
    row = table.row(0, named=True)
    assert row["n_trades"] == 2 and row["hit_rate_trades"] == 1.0
    assert row["exposure"] == pytest.approx(4 / 6)
    assert row["total_return"] == pytest.approx(1146.0 / 1000.0 - 1.0)
