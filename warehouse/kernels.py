"""Compiled (numba) kernels of the research marts: features, Kalman, rolling OLS, Engle-Granger.

Every kernel works on many series at once: a series is the rows ``starts[s]:ends[s]`` of the
input arrays (one symbol or one pair, sorted by time), so one call covers a whole mart
without a Python loop per series. The arithmetic follows the numpy reference
implementations it replaces (warehouse/features.py, the pairs models) operation by operation:
the feature kernels even sum windows in numpy's pairwise order, and give the reference's
values to the bit on the benchmark universe (500 symbols x 20 years); the Kalman kernel is
the model's former Python loop, bit for bit; the Engle-Granger kernel adds in another order
than numpy / BLAS (differences about 1e-12). Outputs are float64 with NaN where a value is
undefined (callers turn non-finite values into nulls).

``error_model="numpy"``: a division by zero gives inf / nan as in numpy instead of raising.
Kernels are cached on disk (``cache=True``) and release the GIL (``nogil=True``): callers
run them on threads (features by blocks of symbols, Engle-Granger by blocks of tests).

Used by features_technical_v1 (through warehouse/features.py), pair_kalman,
pair_spreads (``rolling_ols``, ``rolling_zscore``) and pair_cointegration. Each output at a
row is computed from that series' rows up to it in a fixed order, never from anything after
it or from another series: the marts are point in time to the bit.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "atr_wilder",
    "direction",
    "ema",
    "engle_granger_batch",
    "engle_granger_parallel",
    "fwd_return",
    "kalman_filter",
    "macd",
    "rolling_m2",
    "rolling_mean",
    "rolling_ols",
    "rolling_zscore",
    "row_groups",
    "rsi_wilder",
    "shift_ratio",
    "slope",
    "sort_by_key_and_time",
    "warm_up",
]

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


def row_groups(table, rows: int = 122_880):
    """``table`` as record batches of DuckDB's row-group size (zero-copy slices): DuckDB
    scans an Arrow table batch by batch, so a single 2 M-row chunk is appended to the mart
    by one thread while batches let every thread append its own row groups."""
    import pyarrow as pa

    return pa.Table.from_batches(table.to_batches(max_chunksize=rows), schema=table.schema)


def sort_by_key_and_time(table, key: str, ts: str = "ts"):
    """``table`` sorted by (key, ts) and the (starts, ends) of each key's rows.

    numpy instead of a SQL ORDER BY or ``Table.sort_by`` (several times slower on strings):
    the key is dictionary-encoded, its few distinct values ranked, and rows ordered by a
    stable sort on ts then a stable (radix) sort on the key's rank. A table already in
    order is returned as it is.
    """
    import pyarrow as pa

    n = table.num_rows
    if n == 0:
        return table, np.zeros(0, np.int64), np.zeros(0, np.int64)
    enc = table.column(key).combine_chunks().dictionary_encode()
    names = enc.dictionary.to_numpy(zero_copy_only=False)
    rank = np.empty(len(names), np.uint16 if len(names) < 2**16 else np.int64)
    rank[np.argsort(names, kind="stable")] = np.arange(len(names))
    codes = rank[enc.indices.to_numpy()]
    t = table.column(ts).combine_chunks().cast(pa.int64()).to_numpy()
    if not _is_sorted(codes, t):
        order = np.argsort(t, kind="stable")
        order = order[np.argsort(codes[order], kind="stable")]  # radix sort: 16-bit codes
        table = table.take(order)
        codes = codes[order]
    cuts = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    starts = np.concatenate([[0], cuts]).astype(np.int64)
    ends = np.concatenate([cuts, [n]]).astype(np.int64)
    return table, starts, ends


@njit(**_JIT)
def _is_sorted(codes, t):  # pragma: no cover - compiled
    for i in range(1, len(codes)):
        if codes[i] < codes[i - 1] or (codes[i] == codes[i - 1] and t[i] <= t[i - 1]):
            return False
    return True


# --- features ---------------------------------------------------------------------------


@njit(**_JIT)
def shift_ratio(c, starts, ends, k, minus_one):  # pragma: no cover - compiled
    """c[t] / c[t-k] (- 1), NaN for the first k rows of each series (callers take numpy's
    log of it for log returns: numba's log may differ from numpy's in the last bit)."""
    out = np.empty(len(c))
    for s in range(len(starts)):
        a, b = starts[s], ends[s]
        for t in range(a, min(a + k, b)):
            out[t] = np.nan
        for t in range(a + k, b):
            out[t] = c[t] / c[t - k]
        if minus_one:
            for t in range(a + k, b):
                out[t] = out[t] - 1.0
    return out


@njit(**_JIT)
def fwd_return(c, starts, ends, k):  # pragma: no cover - compiled
    """c[t+k] / c[t] - 1, NaN for the last k rows of each series."""
    out = np.empty(len(c))
    for s in range(len(starts)):
        a, b = starts[s], ends[s]
        for t in range(a, b):
            out[t] = c[t + k] / c[t] - 1.0 if t + k < b else np.nan
    return out


@njit(**_JIT)
def _pw_block(x, a, n):  # pragma: no cover - compiled
    """numpy's pairwise sum of x[a:a+n] for n <= 128 (one block: 8 accumulators)."""
    if n < 8:
        res = 0.0
        for i in range(a, a + n):
            res += x[i]
        return res
    r0, r1, r2, r3 = x[a], x[a + 1], x[a + 2], x[a + 3]
    r4, r5, r6, r7 = x[a + 4], x[a + 5], x[a + 6], x[a + 7]
    i = 8
    while i < n - n % 8:
        r0 += x[a + i]
        r1 += x[a + i + 1]
        r2 += x[a + i + 2]
        r3 += x[a + i + 3]
        r4 += x[a + i + 4]
        r5 += x[a + i + 5]
        r6 += x[a + i + 6]
        r7 += x[a + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += x[a + i]
        i += 1
    return res


@njit(**_JIT)
def _pw_sum(x, a, n):  # pragma: no cover - compiled
    """x[a:a+n] summed in numpy's pairwise order (bit-identical to ``np.add.reduce``):
    blocks of at most 128, halves (rounded to multiples of 8) added up the tree. The tree is
    walked with an explicit stack (numba's on-disk cache does not take recursion)."""
    if n <= 128:
        return _pw_block(x, a, n)
    sa = np.empty(64, np.int64)
    sn = np.empty(64, np.int64)
    phase = np.zeros(64, np.int64)
    left = np.empty(64)
    top = 0
    sa[0], sn[0], phase[0] = a, n, 0
    while True:
        if sn[top] > 128 and phase[top] == 0:
            half = sn[top] // 2
            half -= half % 8
            phase[top] = 1
            top += 1
            sa[top], sn[top], phase[top] = sa[top - 1], half, 0
            continue
        v = _pw_block(x, sa[top], sn[top])
        top -= 1
        while top >= 0 and phase[top] == 2:
            v = left[top] + v
            top -= 1
        if top < 0:
            return v
        left[top] = v
        phase[top] = 2
        half = sn[top] // 2
        half -= half % 8
        top += 1
        sa[top], sn[top], phase[top] = sa[top - 1] + half, sn[top - 1] - half, 0


@njit(**_JIT)
def rolling_mean(x, starts, ends, n, offset):  # pragma: no cover - compiled
    """Mean of x over the last n rows (rows from ``offset`` into each series; NaN before):
    each window summed in numpy's pairwise order, as ``sliding_window_view(x, n).mean(1)``.

    For 8 <= n <= 128 numpy sums a window in one block: eight running sums r_j of every
    eighth value, combined as ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), then the
    n % 8 last values one by one. r_j of the window starting at a is the same number as r_0
    of the window starting at a + j, so the running sums and their pairwise combinations are
    computed once per row and shared by the eight windows that use them: the same additions
    in the same order, about n / 8 + 4 of them per row instead of n."""
    out = np.empty(len(x))
    m = n // 8  # values per running sum
    for s in range(len(starts)):
        a, b = starts[s] + offset, ends[s]
        for t in range(starts[s], min(a + n - 1, b)):
            out[t] = np.nan
        if b - a < n:
            continue
        if n < 8 or n > 128:
            for t in range(a + n - 1, b):
                out[t] = _pw_sum(x, t - n + 1, n) / n
            continue
        # windows start at w = a .. b - n; the running sum r_0 at i covers x[i], x[i + 8],
        # ..., x[i + 8 (m - 1)] and is needed for i up to b - n + 7
        last = b - n + 8  # exclusive bound of the running sums' starts
        r = np.empty(last - a)
        for i in range(a, last):
            acc = x[i]
            for q in range(1, m):
                acc += x[i + 8 * q]
            r[i - a] = acc
        pair = np.empty(last - a - 1)
        for i in range(last - a - 1):
            pair[i] = r[i] + r[i + 1]
        quad = np.empty(last - a - 3)
        for i in range(last - a - 3):
            quad[i] = pair[i] + pair[i + 2]
        for w in range(a, b - n + 1):
            i = w - a
            acc = quad[i] + quad[i + 4]
            for q in range(8 * m, n):
                acc += x[w + q]
            out[w + n - 1] = acc / n
    return out


@njit(**_JIT)
def rolling_m2(x, mean, starts, ends, n, offset):  # pragma: no cover - compiled
    """Sum of squared deviations from ``mean[t]`` over the last n rows (two-pass, as numpy's
    ``std``: squares of ``x - mean`` summed pairwise)."""
    out = np.empty(len(x))
    sq = np.empty(n)
    for s in range(len(starts)):
        a, b = starts[s] + offset, ends[s]
        for t in range(starts[s], min(a + n - 1, b)):
            out[t] = np.nan
        for t in range(a + n - 1, b):
            m = mean[t]
            for j in range(n):
                d = x[t - n + 1 + j] - m
                sq[j] = d * d
            out[t] = _pw_sum(sq, 0, n)
    return out


@njit(**_JIT)
def ema(x, starts, ends, n, first_valid):  # pragma: no cover - compiled
    """e[0] = x[0], e[t] = a x[t] + (1 - a) e[t-1], a = 2 / (n + 1); NaN before first_valid
    (negative: no mask)."""
    out = np.empty(len(x))
    a_ = 2.0 / (n + 1.0)
    a1 = a_ - 1.0
    for s in range(len(starts)):
        a, b = starts[s], ends[s]
        if a == b:
            continue
        y = a_ * x[a] + (1.0 - a_) * x[a]
        out[a] = y
        for t in range(a + 1, b):
            y = a_ * x[t] + (-a1 * y)
            out[t] = y
        if first_valid > 0:
            for t in range(a, min(a + first_valid, b)):
                out[t] = np.nan
    return out


@njit(**_JIT)
def _wilder_series(x, n, out, o):  # pragma: no cover - compiled
    """Wilder's average of x (one series) into out[o:o + len(x)]."""
    m = len(x)
    for t in range(m):
        out[o + t] = np.nan
    if m < n:
        return
    first = _pw_sum(x, 0, n) / n
    out[o + n - 1] = first
    b = 1.0 - 1.0 / n
    inv = 1.0 / n
    y = first
    for t in range(n, m):
        y = inv * x[t] + b * y
        out[o + t] = y


@njit(**_JIT)
def rsi_wilder(c, starts, ends, n):  # pragma: no cover - compiled
    """Wilder RSI of close-to-close changes (NaN on each series' first row)."""
    out = np.empty(len(c))
    for s in range(len(starts)):
        a, b = starts[s], ends[s]
        if a == b:
            continue
        m = b - a - 1
        gain_in = np.empty(m)
        loss_in = np.empty(m)
        for t in range(m):
            d = c[a + t + 1] - c[a + t]
            gain_in[t] = np.maximum(d, 0.0)
            loss_in[t] = np.maximum(-d, 0.0)
        gain = np.empty(m)
        loss = np.empty(m)
        _wilder_series(gain_in, n, gain, 0)
        _wilder_series(loss_in, n, loss, 0)
        out[a] = np.nan
        for t in range(m):
            total = gain[t] + loss[t]
            out[a + t + 1] = 100.0 * gain[t] / total if total > 0 else np.nan
    return out


@njit(**_JIT)
def atr_wilder(c, h, lo, starts, ends, n):  # pragma: no cover - compiled
    """Wilder ATR of the true range from each series' second row (NaN on the first)."""
    out = np.empty(len(c))
    for s in range(len(starts)):
        a, b = starts[s], ends[s]
        if a == b:
            continue
        m = b - a - 1
        tr = np.empty(m)
        for t in range(m):
            i = a + t + 1
            tr[t] = np.maximum(
                np.maximum(h[i] - lo[i], abs(h[i] - c[i - 1])), abs(lo[i] - c[i - 1])
            )
        out[a] = np.nan
        _wilder_series(tr, n, out, a + 1)
    return out


@njit(**_JIT)
def slope(y, starts, ends, n):  # pragma: no cover - compiled
    """OLS slope of the last n values on 0..n-1: sum_j y[t-n+1+j] w_j, w = k / (k @ k)."""
    k = np.arange(n) - (n - 1) / 2.0
    kk = 0.0
    for j in range(n):
        kk += k[j] * k[j]
    w = k / kk
    out = np.empty(len(y))
    for s in range(len(starts)):
        a, b = starts[s], ends[s]
        for t in range(a, min(a + n - 1, b)):
            out[t] = np.nan
        first = a + n - 1
        for t in range(first, b):
            out[t] = 0.0
        for j in range(n):
            wj = w[j]
            for t in range(first, b):
                out[t] += y[t - n + 1 + j] * wj
    return out


@njit(**_JIT)
def direction(c, starts, ends):  # pragma: no cover - compiled
    """Sign of c[t] - c[t-1] (NaN on each series' first row, or when undefined)."""
    out = np.empty(len(c))
    for s in range(len(starts)):
        a, b = starts[s], ends[s]
        if a == b:
            continue
        out[a] = np.nan
        for t in range(a + 1, b):
            out[t] = np.sign(c[t] - c[t - 1])
    return out


@njit(**_JIT)
def macd(c, starts, ends, fast, slow, sig):  # pragma: no cover - compiled
    """(macd, signal, hist) rows, masked as in warehouse/features.py (unscaled)."""
    n = len(c)
    e_fast = ema(c, starts, ends, fast, -1)
    e_slow = ema(c, starts, ends, slow, -1)
    m = np.empty(n)
    for t in range(n):
        m[t] = e_fast[t] - e_slow[t]
    signal = ema(m, starts, ends, sig, -1)
    out = np.empty((3, n))
    for s in range(len(starts)):
        a, b = starts[s], ends[s]
        for t in range(a, b):
            i = t - a
            out[0, t] = m[t] if i >= slow - 1 else np.nan
            out[1, t] = signal[t] if i >= slow + sig - 2 else np.nan
            out[2, t] = m[t] - signal[t] if i >= slow + sig - 2 else np.nan
    return out


# --- pairs ------------------------------------------------------------------------------


@njit(**_JIT)
def kalman_filter(pa_, pb, starts, ends, delta, obs_var, initial_var):  # pragma: no cover
    """(beta, alpha, spread, std) rows of the pair_kalman filter, restarted per series."""
    n = len(pa_)
    out = np.empty((4, n))
    w = delta / (1.0 - delta)
    for s in range(len(starts)):
        beta = 0.0
        alpha = 0.0
        p11, p12, p22 = initial_var, 0.0, initial_var
        for i in range(starts[s], ends[s]):
            x, y = pb[i], pa_[i]
            p11 += w
            p22 += w
            ph0 = p11 * x + p12
            ph1 = p12 * x + p22
            q = x * ph0 + ph1 + obs_var
            e = y - beta * x - alpha
            k0 = ph0 / q
            k1 = ph1 / q
            beta += k0 * e
            alpha += k1 * e
            p11 -= k0 * ph0
            p12 -= k0 * ph1
            p22 -= k1 * ph1
            out[0, i] = beta
            out[1, i] = alpha
            out[2, i] = e
            out[3, i] = math.sqrt(q)
    return out


@njit(**_JIT)
def rolling_ols(y, x, starts, ends, n):  # pragma: no cover - compiled
    """(beta, alpha, spread) of the OLS of y on x over the last n rows (NaN until full).

    Two-pass per window (means, then centred cross products): no running sums, so no
    cancellation however long the series."""
    m = len(y)
    out = np.empty((3, m))
    for s in range(len(starts)):
        a, b = starts[s], ends[s]
        for t in range(a, min(a + n - 1, b)):
            out[0, t] = np.nan
            out[1, t] = np.nan
            out[2, t] = np.nan
        for t in range(a + n - 1, b):
            lo = t - n + 1
            sx = 0.0
            sy = 0.0
            for j in range(lo, t + 1):
                sx += x[j]
                sy += y[j]
            mx = sx / n
            my = sy / n
            sxx = 0.0
            sxy = 0.0
            for j in range(lo, t + 1):
                dx = x[j] - mx
                sxx += dx * dx
                sxy += dx * (y[j] - my)
            beta = sxy / sxx
            alpha = my - beta * mx
            out[0, t] = beta
            out[1, t] = alpha
            out[2, t] = y[t] - beta * x[t] - alpha
    return out


@njit(**_JIT)
def rolling_zscore(v, starts, ends, n):  # pragma: no cover - compiled
    """(v - mean) / sample std over the last n values, NaN unless all n are non-NaN."""
    out = np.empty(len(v))
    for s in range(len(starts)):
        a, b = starts[s], ends[s]
        for t in range(a, b):
            lo = t - n + 1
            if lo < a:
                out[t] = np.nan
                continue
            acc = 0.0
            ok = True
            for j in range(lo, t + 1):
                if np.isnan(v[j]):
                    ok = False
                    break
                acc += v[j]
            if not ok:
                out[t] = np.nan
                continue
            mean = acc / n
            m2 = 0.0
            for j in range(lo, t + 1):
                d = v[j] - mean
                m2 += d * d
            sd = math.sqrt(m2 / (n - 1)) if n > 1 else np.nan
            out[t] = (v[t] - mean) / sd if sd != 0.0 else np.nan
    return out


@njit(**_JIT)
def _cholesky(g, k):  # pragma: no cover - compiled
    """Lower Cholesky factor of g[:k, :k] (symmetric positive definite)."""
    low = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1):
            acc = g[i, j]
            for p in range(j):
                acc -= low[i, p] * low[j, p]
            if i == j:
                low[i, i] = math.sqrt(acc) if acc > 0 else np.nan
            else:
                low[i, j] = acc / low[j, j]
    return low


@njit(**_JIT)
def _cholesky_solve(low, k, rhs):  # pragma: no cover - compiled
    """Solve L L' z = rhs with the factor of :func:`_cholesky`."""
    z = np.empty(k)
    for i in range(k):
        acc = rhs[i]
        for p in range(i):
            acc -= low[i, p] * z[p]
        z[i] = acc / low[i, i]
    for i in range(k - 1, -1, -1):
        acc = z[i]
        for p in range(i + 1, k):
            acc -= low[p, i] * z[p]
        z[i] = acc / low[i, i]
    return z


@njit(**_JIT)
def engle_granger_batch(price_a, price_b, firsts, lasts, lags_arr):  # pragma: no cover
    """Engle-Granger two-step test and AR(1) of the residuals on windows firsts..lasts.

    Rows of the result: beta, alpha, tau, adf_nobs, ar_const, ar_phi, ar_var, spread_at_end.
    The ADF Gram matrix of [e[t-1], de[t-1..t-L], de[t]] is built from O(L) dot products:
    the lagged-difference block is shift-invariant along its diagonals.
    """
    m = len(firsts)
    out = np.empty((8, m))
    for q in range(m):
        first, last, lags = firsts[q], lasts[q], lags_arr[q]
        n = last - first + 1
        y0 = price_a[first : last + 1]
        y1 = price_b[first : last + 1]
        s0 = 0.0
        s1 = 0.0
        for t in range(n):
            s0 += y0[t]
            s1 += y1[t]
        m0 = s0 / n
        m1 = s1 / n
        c10 = 0.0
        c11 = 0.0
        for t in range(n):
            d0 = y0[t] - m0
            d1 = y1[t] - m1
            c10 += d1 * d0
            c11 += d1 * d1
        beta = c10 / c11
        alpha = m0 - beta * m1
        e = np.empty(n)
        for t in range(n):
            e[t] = (y0[t] - m0) - beta * (y1[t] - m1)
        de = np.empty(n - 1)
        for t in range(n - 1):
            de[t] = e[t + 1] - e[t]
        nobs = n - 1 - lags
        k = lags + 1
        # gram of columns: 0 = e[lags + r]; j = 1..lags: de[lags + r - j]; k: de[lags + r]
        gram = np.empty((k + 1, k + 1))
        # the first row of the Gram matrix, one pass over the rows: the level column and the
        # dependent difference against every lag. Each sum still runs over r in order (the
        # same additions as one dot product at a time); the k independent sums side by side
        # keep the adder busy instead of waiting on one running total.
        level = np.zeros(k)  # sum_r e[lags + r] de[lags + r - j], j = 0..lags
        diffs = np.zeros(k)  # sum_r de[lags + r] de[lags + r - j]
        ee = 0.0
        for r in range(nobs):
            el = e[lags + r]
            d0 = de[lags + r]
            ee += el * el
            for j in range(k):
                dj = de[lags + r - j]
                level[j] += el * dj
                diffs[j] += d0 * dj
        gram[0, 0] = ee
        for j in range(1, k + 1):
            v = level[0] if j == k else level[j]  # column k is the lag-0 difference
            gram[0, j] = v
            gram[j, 0] = v
        # differences: dd[i, j] = sum_r de[lags + r - i] de[lags + r - j], i, j = 0..lags
        dd = np.empty((k, k))
        for j in range(k):
            dd[0, j] = diffs[j]
        for i in range(k - 1):
            for j in range(i, k - 1):
                v = (
                    dd[i, j]
                    + de[lags - 1 - i] * de[lags - 1 - j]
                    - de[lags + nobs - 1 - i] * de[lags + nobs - 1 - j]
                )
                dd[i + 1, j + 1] = v
        for i in range(k):
            for j in range(i + 1, k):
                dd[j, i] = dd[i, j]
        # map difference lag -> gram column: lag 0 -> k, lag j -> j
        for i in range(k):
            gi = k if i == 0 else i
            for j in range(k):
                gj = k if j == 0 else j
                gram[gi, gj] = dd[i, j]
        xty = np.empty(k)
        for i in range(k):
            xty[i] = gram[i, k]
        low = _cholesky(gram, k)
        coef = _cholesky_solve(low, k, xty)
        ssr = gram[k, k]
        for i in range(k):
            ssr -= coef[i] * xty[i]
        unit = np.zeros(k)
        unit[0] = 1.0
        inv00 = _cholesky_solve(low, k, unit)[0]
        se = math.sqrt(ssr / (nobs - k) * inv00)
        out[0, q] = beta
        out[1, q] = alpha
        out[2, q] = coef[0] / se
        out[3, q] = nobs
        # AR(1) of the residuals: e[t] = const + phi e[t-1] + u
        sx = 0.0
        sy = 0.0
        for t in range(n - 1):
            sx += e[t]
            sy += e[t + 1]
        mx = sx / (n - 1)
        my = sy / (n - 1)
        sxx = 0.0
        sxy = 0.0
        for t in range(n - 1):
            dx = e[t] - mx
            sxx += dx * dx
            sxy += dx * (e[t + 1] - my)
        phi = sxy / sxx
        rss = 0.0
        for t in range(n - 1):
            u = (e[t + 1] - my) - phi * (e[t] - mx)
            rss += u * u
        out[4, q] = my - phi * mx
        out[5, q] = phi
        out[6, q] = rss / (n - 3)
        out[7, q] = e[n - 1]
    return out


def engle_granger_parallel(price_a, price_b, firsts, lasts, lags, threads: int = 2):
    """:func:`engle_granger_batch` with the tests split across ``threads`` threads (the
    kernel releases the GIL; each test is independent, so the result is the same)."""
    from concurrent.futures import ThreadPoolExecutor

    m = len(firsts)
    threads = max(1, min(threads, m // 1000 + 1))
    if threads == 1:
        return engle_granger_batch(price_a, price_b, firsts, lasts, lags)
    cuts = np.linspace(0, m, threads + 1).astype(np.int64).tolist()

    def run(lo: int, hi: int) -> np.ndarray:
        return engle_granger_batch(price_a, price_b, firsts[lo:hi], lasts[lo:hi], lags[lo:hi])

    with ThreadPoolExecutor(threads) as pool:
        parts = list(pool.map(run, cuts[:-1], cuts[1:]))
    return np.concatenate(parts, axis=1)


def warm_up() -> None:
    """Compile (or load from the cache) every kernel on a tiny input."""
    x = np.linspace(1.0, 2.0, 64)
    st, en = np.array([0, 30], np.int64), np.array([30, 64], np.int64)
    shift_ratio(x, st, en, 1, True)
    fwd_return(x, st, en, 1)
    mu = rolling_mean(x, st, en, 5, 0)
    rolling_m2(x, mu, st, en, 5, 0)
    ema(x, st, en, 5, 4)
    rsi_wilder(x, st, en, 5)
    atr_wilder(x, x, x, st, en, 5)
    slope(x, st, en, 5)
    direction(x, st, en)
    macd(x, st, en, 3, 5, 2)
    kalman_filter(x, x[::-1].copy(), st, en, 1e-4, 1e-3, 1.0)
    rolling_ols(x, x[::-1].copy(), st, en, 5)
    rolling_zscore(x, st, en, 5)
    idx = np.array([20], np.int64)
    engle_granger_batch(np.sin(x), np.cos(x), idx - 19, idx, np.array([2], np.int64))
