"""The fused scan kernels agree with numpy, skip NaN rows, and work on mapped views."""

from __future__ import annotations

import numpy as np
import pytest

import hotpath
from hotpath.kernels import grouped_price_volume_stats, price_volume_stats


def test_matches_numpy_on_random_data():
    rng = np.random.default_rng(3)
    p = rng.random(100_003) * 100 + 1
    v = rng.random(100_003) * 1e4
    st = price_volume_stats(p, v)
    assert st.rows == p.size
    assert st.mean_price == pytest.approx(p.mean(), rel=1e-12)
    assert st.total_volume == pytest.approx(v.sum(), rel=1e-12)
    assert st.vwap == pytest.approx(np.dot(p, v) / v.sum(), rel=1e-12)


def test_nan_rows_are_skipped_not_propagated():
    p = np.array([10.0, np.nan, 30.0, 40.0])
    v = np.array([1.0, 5.0, np.nan, 3.0])
    st = price_volume_stats(p, v)
    assert st.rows == 2
    assert st.mean_price == 25.0
    assert st.vwap == (10.0 * 1 + 40.0 * 3) / 4


def test_empty_and_strided_inputs():
    st = price_volume_stats(np.empty(0), np.empty(0))
    assert st.rows == 0
    assert np.isnan(st.vwap)
    rec = np.zeros(10, dtype=[("p", "f8"), ("v", "f8"), ("pad", "f8")])
    rec["p"], rec["v"] = np.arange(10.0) + 1, 2.0
    assert price_volume_stats(rec["p"], rec["v"]).vwap == pytest.approx(5.5)


def test_refuses_other_dtypes():
    with pytest.raises(TypeError, match="float64"):
        price_volume_stats(np.ones(3, dtype=np.float32), np.ones(3))


def test_grouped_matches_per_group_numpy():
    rng = np.random.default_rng(5)
    p, v = rng.random(1000) + 1, rng.random(1000)
    bounds = np.array([0, 10, 10, 500, 1000])
    got = grouped_price_volume_stats(p, v, bounds)
    for g in range(4):
        a, b = bounds[g], bounds[g + 1]
        assert got[g, 0] == b - a
        if b > a:
            assert got[g, 3] == pytest.approx(np.dot(p[a:b], v[a:b]) / v[a:b].sum(), rel=1e-12)
        else:
            assert np.isnan(got[g, 3])


def test_reader_scans_mapped_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ingest.paths import DataPaths

    paths = DataPaths(tmp_path / "d").ensure()
    n = 1000
    ts = np.datetime64("2024-01-02T14:30", "ns") + np.arange(n) * np.timedelta64(1, "m")
    t = pa.table(
        {
            "symbol": ["AAA"] * n,
            "ts": pa.array(ts).cast(pa.timestamp("us", tz="UTC")),
            "close": np.linspace(10, 20, n),
            "volume": np.full(n, 2.0),
        }
    )
    pq.write_table(t, paths.marts / "bars_adjusted.parquet")
    res = hotpath.export("bars_adjusted", data_dir=paths.root, record=False)
    with hotpath.open(res.path) as x:
        st = x.price_volume_stats()
        assert st.vwap == pytest.approx(15.0)
        assert x.symbol("AAA").price_volume_stats().rows == n


@pytest.mark.parametrize("threads", [2, 3])
def test_parallel_chunks_give_the_single_pass_result(threads):
    rng = np.random.default_rng(11)
    n = (1 << 20) * 2 + 7
    p = rng.random(n) * 100 + 1
    v = rng.random(n) * 1e4
    p[::1001] = np.nan
    one = price_volume_stats(p, v, threads=1)
    many = price_volume_stats(p, v, threads=threads)
    assert many.rows == one.rows == n - p[::1001].size
    assert many.vwap == pytest.approx(one.vwap, rel=1e-12)
    assert many.mean_price == pytest.approx(one.mean_price, rel=1e-12)
    assert many.total_volume == pytest.approx(one.total_volume, rel=1e-12)
