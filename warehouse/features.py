"""Feature sets: declared here, once, and computed by the dbt models that build them.

A :class:`FeatureSet` is a name, a version, the bars it reads (a timeframe), its
features with their parameters and, optionally, labels. The dbt Python model
``models/marts/features/features_<name>_v<version>.py`` builds it with
:func:`compute_features`; the registry mart ``feature_set_registry`` lists every set in
:data:`FEATURE_SETS` with :meth:`FeatureSet.definition`. Changing what a set computes means
declaring a new version, never editing a published one.

Point in time
    Every feature at ``ts`` is computed from bars and corporate actions at or before ``ts``
    only, to the bit. Prices are total-return prices chained forward (``close /
    total_return_factor``, ``high`` and ``low`` likewise, with the factor of the
    ``total_return_factors`` mart: the product of the adjustment steps of the actions with
    ex-date up to the bar), never ``close_adj``, whose level every later action rescales.
    Features expressed in price units (SMA, EMA, MACD, Bollinger bands, ATR, slopes) are
    multiplied back by the bar's own ``total_return_factor``: they are in the as-traded
    units of ``ts``, exactly what was computable on that day. Ratios (returns, RSI,
    z-scores, volatility) need no rescaling. Labels are the only columns that look
    forward; they are named ``label_*`` and shifted explicitly.

Computation
    :func:`compute_features` runs compiled kernels (warehouse/kernels.py, numba) over
    every symbol at once; ``compiled=False`` runs the per-symbol numpy reference
    (:func:`_one_symbol`). The kernels repeat the reference's floating-point operations in
    the same order (window sums in numpy's pairwise order), so the two agree to the bit on
    the benchmark universe; tests/test_research_kernels.py checks them against each other.

Conventions (each indicator's value is null until its window is full):
    * ``ret_k = c[t] / c[t-k] - 1``, ``log_ret_k = ln(c[t] / c[t-k])``;
    * ``sma_n``: mean of the last n closes; ``ema_n``: ``e[0] = c[0]``,
      ``e[t] = a c[t] + (1 - a) e[t-1]``, ``a = 2 / (n + 1)``, shown from bar n-1;
    * ``rsi_n`` (Wilder): gains and losses of close-to-close changes, averaged over the first
      n changes, then ``avg[t] = (avg[t-1] (n - 1) + x[t]) / n``;
      ``rsi = 100 avg_gain / (avg_gain + avg_loss)``;
    * ``macd``: ``ema_fast - ema_slow`` (from bar slow-1); ``macd_signal``: EMA of macd seeded
      with its first value (from bar slow+signal-2); ``macd_hist = macd - macd_signal``;
    * Bollinger: ``sma_n +- k * std_n`` (population std, ddof 0); ``bb_pct_b``, ``bb_width``;
    * ``atr_n`` (Wilder): true range from the second bar, ``max(h - l, |h - c[t-1]|,
      |l - c[t-1]|)``, first value the mean of the first n true ranges;
    * ``rvol_n``: sample std (ddof 1) of the last n one-bar log returns times
      ``sqrt(periods_per_year)``;
    * ``zscore_n``: ``(c - sma_n) / std_n`` with std of ddof 1;
    * ``slope_high_n`` / ``slope_low_n``: OLS slope of the last n highs (lows) on the bar
      index 0..n-1, in price per bar;
    * ``direction``: sign of ``c[t] - c[t-1]`` (-1, 0, 1);
    * ``label_fwd_ret_k = c[t+k] / c[t] - 1``: the future, for training only.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import lfilter

__all__ = [
    "FEATURE_SETS",
    "Feature",
    "FeatureSet",
    "compute_features",
    "feature_set",
]


@dataclass(frozen=True)
class Feature:
    """One indicator: ``kind`` picks the computation, ``params`` its parameters."""

    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def columns(self) -> list[str]:
        p = self.params
        match self.kind:
            case "simple_return":
                return [f"ret_{p['periods']}"]
            case "log_return":
                return [f"log_ret_{p['periods']}"]
            case "sma" | "ema" | "rsi" | "atr" | "rvol" | "zscore":
                return [f"{self.kind}_{p['window']}"]
            case "macd":
                return ["macd", "macd_signal", "macd_hist"]
            case "bollinger":
                return ["bb_mid", "bb_upper", "bb_lower", "bb_pct_b", "bb_width"]
            case "slope":
                return [f"slope_{p['column']}_{p['window']}"]
            case "direction":
                return ["direction"]
            case "fwd_return":
                return [f"label_fwd_ret_{p['periods']}"]
        raise ValueError(f"unknown feature kind {self.kind!r}")


@dataclass(frozen=True)
class FeatureSet:
    name: str
    version: int
    description: str
    timeframe: str
    features: tuple[Feature, ...]
    labels: tuple[Feature, ...] = ()

    @property
    def model_name(self) -> str:
        return f"features_{self.name}_v{self.version}"

    def feature_columns(self) -> list[str]:
        return [c for f in self.features for c in f.columns()]

    def label_columns(self) -> list[str]:
        return [c for f in self.labels for c in f.columns()]

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "timeframe": self.timeframe,
            "features": [{"kind": f.kind, "params": dict(f.params)} for f in self.features],
            "labels": [{"kind": f.kind, "params": dict(f.params)} for f in self.labels],
            "columns": self.feature_columns(),
            "label_columns": self.label_columns(),
        }

    def definition_json(self) -> str:
        return json.dumps(self.definition(), sort_keys=True)

    def definition_hash(self) -> str:
        return hashlib.sha256(self.definition_json().encode()).hexdigest()


TECHNICAL_V1 = FeatureSet(
    name="technical",
    version=1,
    description="Classic technical indicators on daily total-return adjusted bars.",
    timeframe="1d",
    features=(
        *(Feature("simple_return", {"periods": k}) for k in (1, 5, 20)),
        *(Feature("log_return", {"periods": k}) for k in (1, 5, 20)),
        Feature("sma", {"window": 20}),
        Feature("sma", {"window": 50}),
        Feature("ema", {"window": 20}),
        Feature("rsi", {"window": 14}),
        Feature("macd", {"fast": 12, "slow": 26, "signal": 9}),
        Feature("bollinger", {"window": 20, "k": 2.0}),
        Feature("atr", {"window": 14}),
        Feature("rvol", {"window": 20, "periods_per_year": 252}),
        Feature("zscore", {"window": 20}),
        Feature("slope", {"column": "high", "window": 20}),
        Feature("slope", {"column": "low", "window": 20}),
        Feature("direction"),
    ),
    labels=(Feature("fwd_return", {"periods": 1}), Feature("fwd_return", {"periods": 5})),
)

#: every declared set, by model name
FEATURE_SETS: dict[str, FeatureSet] = {s.model_name: s for s in (TECHNICAL_V1,)}


def feature_set(name: str, version: int) -> FeatureSet:
    key = f"features_{name}_v{version}"
    if key not in FEATURE_SETS:
        known = ", ".join(sorted(FEATURE_SETS))
        raise KeyError(f"no feature set {key!r} is declared in warehouse/features.py ({known})")
    return FEATURE_SETS[key]


# --- computations on one symbol's bars (sorted by ts) -----------------------------------


def _nan(n: int) -> np.ndarray:
    return np.full(n, np.nan)


def _shift_ratio(c: np.ndarray, k: int) -> np.ndarray:
    out = _nan(len(c))
    if len(c) > k:
        out[k:] = c[k:] / c[:-k]
    return out


def _rolling(x: np.ndarray, n: int, fn: str, ddof: int = 0) -> np.ndarray:
    out = _nan(len(x))
    if len(x) >= n:
        w = sliding_window_view(x, n)
        out[n - 1 :] = w.mean(axis=1) if fn == "mean" else w.std(axis=1, ddof=ddof)
    return out


def _ema(x: np.ndarray, n: int) -> np.ndarray:
    """e[0] = x[0]; e[t] = a x[t] + (1 - a) e[t-1], a = 2 / (n + 1) (no warm-up mask)."""
    if len(x) == 0:
        return x.copy()
    a = 2.0 / (n + 1.0)
    y, _ = lfilter([a], [1.0, a - 1.0], x, zi=[(1.0 - a) * x[0]])
    return y


def _wilder(x: np.ndarray, n: int) -> np.ndarray:
    """Wilder's average of x: mean of x[0:n] at n-1, then (prev (n-1) + x) / n."""
    out = _nan(len(x))
    if len(x) >= n:
        first = x[:n].mean()
        out[n - 1] = first
        if len(x) > n:
            b = 1.0 - 1.0 / n
            out[n:], _ = lfilter([1.0 / n], [1.0, -b], x[n:], zi=[b * first])
    return out


def _masked(x: np.ndarray, first_valid: int) -> np.ndarray:
    x = x.copy()
    x[: min(first_valid, len(x))] = np.nan
    return x


def _slope(y: np.ndarray, n: int) -> np.ndarray:
    out = _nan(len(y))
    if len(y) >= n:
        k = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
        out[n - 1 :] = sliding_window_view(y, n) @ (k / (k @ k))
    return out


def _one_symbol(
    feature_list: tuple[Feature, ...],
    c: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    scale: np.ndarray,
) -> dict[str, np.ndarray]:
    n = len(c)
    out: dict[str, np.ndarray] = {}
    log_ret_1 = np.log(_shift_ratio(c, 1))
    for f in feature_list:
        p = f.params
        match f.kind:
            case "simple_return":
                out[f"ret_{p['periods']}"] = _shift_ratio(c, p["periods"]) - 1.0
            case "log_return":
                out[f"log_ret_{p['periods']}"] = np.log(_shift_ratio(c, p["periods"]))
            case "sma":
                out[f"sma_{p['window']}"] = _rolling(c, p["window"], "mean") * scale
            case "ema":
                w = p["window"]
                out[f"ema_{w}"] = _masked(_ema(c, w), w - 1) * scale
            case "rsi":
                w = p["window"]
                d = np.diff(c)
                gain = _wilder(np.maximum(d, 0.0), w)
                loss = _wilder(np.maximum(-d, 0.0), w)
                total = gain + loss
                with np.errstate(invalid="ignore", divide="ignore"):
                    rsi = np.where(total > 0, 100.0 * gain / total, np.nan)
                out[f"rsi_{w}"] = np.concatenate([[np.nan], rsi])[:n]
            case "macd":
                fast, slow, sig = p["fast"], p["slow"], p["signal"]
                macd = _ema(c, fast) - _ema(c, slow)
                signal = _ema(macd, sig)
                out["macd"] = _masked(macd, slow - 1) * scale
                out["macd_signal"] = _masked(signal, slow + sig - 2) * scale
                out["macd_hist"] = _masked(macd - signal, slow + sig - 2) * scale
            case "bollinger":
                w, k = p["window"], p["k"]
                mid = _rolling(c, w, "mean")
                sd = _rolling(c, w, "std", ddof=0)
                upper, lower = mid + k * sd, mid - k * sd
                with np.errstate(invalid="ignore", divide="ignore"):
                    out["bb_pct_b"] = (c - lower) / (upper - lower)
                    out["bb_width"] = (upper - lower) / mid
                out["bb_mid"], out["bb_upper"], out["bb_lower"] = (
                    mid * scale,
                    upper * scale,
                    lower * scale,
                )
            case "atr":
                w = p["window"]
                tr = np.maximum.reduce(
                    [h[1:] - lo[1:], np.abs(h[1:] - c[:-1]), np.abs(lo[1:] - c[:-1])]
                )
                atr = np.concatenate([[np.nan], _wilder(tr, w)])[:n]
                out[f"atr_{w}"] = atr * scale
            case "rvol":
                w = p["window"]
                rv = np.concatenate([[np.nan], _rolling(log_ret_1[1:], w, "std", ddof=1)])[:n]
                out[f"rvol_{w}"] = rv * np.sqrt(p["periods_per_year"])
            case "zscore":
                w = p["window"]
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[f"zscore_{w}"] = (c - _rolling(c, w, "mean")) / _rolling(
                        c, w, "std", ddof=1
                    )
            case "slope":
                y = h if p["column"] == "high" else lo
                out[f"slope_{p['column']}_{p['window']}"] = _slope(y, p["window"]) * scale
            case "direction":
                out["direction"] = np.concatenate([[np.nan], np.sign(np.diff(c))])[:n]
            case "fwd_return":
                k = p["periods"]
                fwd = _nan(n)
                if n > k:
                    fwd[:-k] = c[k:] / c[:-k] - 1.0
                out[f"label_fwd_ret_{k}"] = fwd
            case _:
                raise ValueError(f"unknown feature kind {f.kind!r}")
    return out


def _kernel_columns(
    everything: tuple[Feature, ...],
    c: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    scale: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
) -> dict[str, np.ndarray]:
    """Every symbol's features at once with the compiled kernels (warehouse/kernels.py):
    the same definitions as :func:`_one_symbol`, without a Python loop per symbol."""
    from warehouse import kernels as rk

    out: dict[str, np.ndarray] = {}
    means: dict[tuple[int, int], np.ndarray] = {}
    m2s: dict[tuple[int, int], np.ndarray] = {}
    log_ret_1: list[np.ndarray] = []

    def mean(x: np.ndarray, n: int, offset: int = 0) -> np.ndarray:
        if (n, offset) not in means:
            means[n, offset] = rk.rolling_mean(x, starts, ends, n, offset)
        return means[n, offset]

    def m2(x: np.ndarray, n: int, offset: int = 0) -> np.ndarray:
        if (n, offset) not in m2s:
            m2s[n, offset] = rk.rolling_m2(x, mean(x, n, offset), starts, ends, n, offset)
        return m2s[n, offset]

    with np.errstate(invalid="ignore", divide="ignore"):
        for f in everything:
            p = f.params
            match f.kind:
                case "simple_return":
                    k = p["periods"]
                    out[f"ret_{k}"] = rk.shift_ratio(c, starts, ends, k, True)
                case "log_return":
                    k = p["periods"]
                    out[f"log_ret_{k}"] = np.log(rk.shift_ratio(c, starts, ends, k, False))
                case "sma":
                    out[f"sma_{p['window']}"] = mean(c, p["window"]) * scale
                case "ema":
                    w = p["window"]
                    out[f"ema_{w}"] = rk.ema(c, starts, ends, w, w - 1) * scale
                case "rsi":
                    w = p["window"]
                    out[f"rsi_{w}"] = rk.rsi_wilder(c, starts, ends, w)
                case "macd":
                    m = rk.macd(c, starts, ends, p["fast"], p["slow"], p["signal"])
                    out["macd"] = m[0] * scale
                    out["macd_signal"] = m[1] * scale
                    out["macd_hist"] = m[2] * scale
                case "bollinger":
                    w, k = p["window"], p["k"]
                    mid = mean(c, w)
                    sd = np.sqrt(m2(c, w) / w)
                    upper, lower = mid + k * sd, mid - k * sd
                    out["bb_pct_b"] = (c - lower) / (upper - lower)
                    out["bb_width"] = (upper - lower) / mid
                    out["bb_mid"] = mid * scale
                    out["bb_upper"] = upper * scale
                    out["bb_lower"] = lower * scale
                case "atr":
                    w = p["window"]
                    out[f"atr_{w}"] = rk.atr_wilder(c, h, lo, starts, ends, w) * scale
                case "rvol":
                    w = p["window"]
                    if not log_ret_1:
                        log_ret_1.append(np.log(rk.shift_ratio(c, starts, ends, 1, False)))
                    lr = log_ret_1[0]
                    mu = rk.rolling_mean(lr, starts, ends, w, 1)
                    sd = np.sqrt(rk.rolling_m2(lr, mu, starts, ends, w, 1) / (w - 1))
                    out[f"rvol_{w}"] = sd * np.sqrt(p["periods_per_year"])
                case "zscore":
                    w = p["window"]
                    out[f"zscore_{w}"] = (c - mean(c, w)) / np.sqrt(m2(c, w) / (w - 1))
                case "slope":
                    y = h if p["column"] == "high" else lo
                    name = f"slope_{p['column']}_{p['window']}"
                    out[name] = rk.slope(y, starts, ends, p["window"]) * scale
                case "direction":
                    out["direction"] = rk.direction(c, starts, ends)
                case "fwd_return":
                    k = p["periods"]
                    out[f"label_fwd_ret_{k}"] = rk.fwd_return(c, starts, ends, k)
                case _:
                    raise ValueError(f"unknown feature kind {f.kind!r}")
    return out


def compute_features(fs: FeatureSet, bars: pa.Table, *, compiled: bool = True) -> pa.Table:
    """The set's columns for ``bars`` (symbol, ts, close, high, low as traded, and
    total_return_factor: see the module's docstring), keyed by (symbol, ts), with the set's
    timeframe.

    ``compiled=False`` runs the numpy reference (:func:`_one_symbol`, one symbol at a time)
    instead of the numba kernels: the two agree to rounding (tests/test_research_kernels.py).
    """
    from warehouse.kernels import sort_by_key_and_time

    bars, starts, ends = sort_by_key_and_time(bars, "symbol")
    symbols = bars.column("symbol")
    factor = _float64(bars.column("total_return_factor"))
    # total-return prices chained forward: each depends on nothing after its bar
    col = {f"{name}_tr": _float64(bars.column(name)) / factor for name in ("close", "high", "low")}
    n = bars.num_rows
    names = fs.feature_columns() + fs.label_columns()
    everything = fs.features + fs.labels
    scale = factor  # back to the as-traded units of each bar
    if compiled:
        # symbols split into contiguous blocks computed on parallel threads (the kernels and
        # numpy release the GIL); each block becomes one chunk of every output column
        blocks = _blocks(starts, ends, _threads(n))

        def run(block: tuple[int, int, int, int]) -> dict[str, pa.Array]:
            r0, r1, s0, s1 = block
            part = _kernel_columns(
                everything,
                col["close_tr"][r0:r1],
                col["high_tr"][r0:r1],
                col["low_tr"][r0:r1],
                scale[r0:r1],
                starts[s0:s1] - r0,
                ends[s0:s1] - r0,
            )
            return {name: _to_arrow(name, part[name]) for name in names}

        if len(blocks) > 1:
            with ThreadPoolExecutor(len(blocks)) as pool:
                chunks = list(pool.map(run, blocks))
        else:
            chunks = [run(block) for block in blocks]
        outputs = {name: pa.chunked_array([c[name] for c in chunks], _type(name)) for name in names}
    else:
        result = {name: np.empty(n) for name in names}  # every symbol's rows are written
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            part = _one_symbol(
                everything,
                col["close_tr"][a:b],
                col["high_tr"][a:b],
                col["low_tr"][a:b],
                scale[a:b],
            )
            for name, values in part.items():
                result[name][a:b] = values
        outputs = {name: _to_arrow(name, result[name]) for name in names}
    arrays: dict[str, pa.Array | pa.ChunkedArray] = {
        "symbol": symbols,
        "timeframe": pa.repeat(pa.scalar(fs.timeframe, pa.string()), n),
        "ts": bars.column("ts"),
        "close": bars.column("close"),  # as traded
        **outputs,
    }
    return pa.table(arrays)


def _type(name: str) -> pa.DataType:
    return pa.int8() if name == "direction" else pa.float64()


def _to_arrow(name: str, values: np.ndarray) -> pa.Array:
    """A feature column: non-finite values (undefined: warm-up, division by zero) are null."""
    mask = ~np.isfinite(values)
    if name == "direction":
        return pa.array(np.nan_to_num(values).astype(np.int8), mask=mask)
    return pa.array(values, mask=mask if mask.any() else None)


def _threads(n: int) -> int:
    """Threads for n rows: one below 200k rows (not worth a pool), else up to 2 (or fewer
    CPUs: the machine this runs on has 2 cores shared with DuckDB)."""
    return 1 if n < 200_000 else max(1, min(2, os.cpu_count() or 1))


def _blocks(starts: np.ndarray, ends: np.ndarray, k: int) -> list[tuple[int, int, int, int]]:
    """(first row, end row, first series, end series) of k blocks of whole series with about
    as many rows each."""
    n_series = len(starts)
    if n_series == 0:
        return [(0, 0, 0, 0)]
    n = int(ends[-1])
    cut_series = [0]
    for i in range(1, k):
        s = int(np.searchsorted(starts, n * i / k))
        if cut_series[-1] < s < n_series:
            cut_series.append(s)
    cut_series.append(n_series)
    return [
        (int(starts[s0]), int(ends[s1 - 1]), s0, s1) for s0, s1 in itertools.pairwise(cut_series)
    ]


def _float64(column: pa.ChunkedArray) -> np.ndarray:
    return np.ascontiguousarray(column.to_numpy(), dtype=np.float64)
