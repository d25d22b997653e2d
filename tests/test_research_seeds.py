"""The research seeds: the pair universe and MacKinnon's published coefficients."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

SEEDS = Path(__file__).resolve().parents[1] / "seeds"


def _rows(name: str) -> list[dict[str, str]]:
    with (SEEDS / name).open(newline="") as f:
        return list(csv.DictReader(f))


def test_pair_ids_are_canonical_and_unique():
    rows = _rows("pairs.csv")
    assert rows
    assert len({r["pair_id"] for r in rows}) == len(rows)
    for r in rows:
        assert r["symbol_a"] < r["symbol_b"]
        assert r["pair_id"] == f"{r['symbol_a']}_{r['symbol_b']}"


def test_seeded_pairs_lie_inside_the_demo_universe_cointegrated_families():
    from ingest.sources.synthetic import SyntheticSource

    families = SyntheticSource(seed=42, n_symbols=12).families()
    family_of = {s: i for i, fam in enumerate(families) for s in fam}
    pairs = {(r["symbol_a"], r["symbol_b"]) for r in _rows("pairs.csv")}
    assert all(
        family_of.get(a) is not None and family_of.get(a) == family_of.get(b) for a, b in pairs
    )
    every = {(a, b) for fam in families for a in fam for b in fam if a < b}
    assert pairs == every


@pytest.mark.parametrize("regression", ["n", "c", "ct", "ctt"])
def test_pvalue_surface_is_statsmodels_published_table(regression):
    import statsmodels.tsa.adfvalues as ref

    rows = [r for r in _rows("mackinnon_pvalue_coefficients.csv") if r["regression"] == regression]
    assert [int(r["n_vars"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    for r in rows:
        n = int(r["n_vars"])
        small = [float(r[f"small_p_b{i}"]) for i in range(3)]
        large = [float(r[f"large_p_b{i}"]) for i in range(4)]
        np.testing.assert_allclose(small, ref._tau_smallps[regression][n - 1], rtol=1e-12)
        np.testing.assert_allclose(large, ref._tau_largeps[regression][n - 1], rtol=1e-12)
        assert float(r["tau_star"]) == ref._tau_stars[regression][n - 1]
        assert float(r["tau_min"]) == ref._tau_mins[regression][n - 1]
        tau_max = float(r["tau_max"]) if r["tau_max"] else math.inf
        assert tau_max == ref._tau_maxs[regression][n - 1]


def test_critical_values_are_mackinnon_2010():
    from statsmodels.tsa.adfvalues import mackinnoncrit

    rows = _rows("mackinnon_critical_values.csv")
    assert len(rows) >= 3 * 12 * 3
    for reg in ("c", "ct", "ctt"):
        for n in (1, 2, 5):
            for nobs in (50, 251, 5000):
                got = []
                for level in ("0.01", "0.05", "0.10"):
                    (r,) = [
                        r
                        for r in rows
                        if (r["regression"], r["n_vars"], r["significance_level"])
                        == (reg, str(n), level)
                    ]
                    b = [float(r[k]) for k in ("b_inf", "b_1", "b_2", "b_3")]
                    got.append(b[0] + b[1] / nobs + b[2] / nobs**2 + b[3] / nobs**3)
                np.testing.assert_allclose(got, mackinnoncrit(n, reg, nobs), rtol=1e-12)
