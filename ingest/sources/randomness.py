"""Counter-based randomness for the synthetic sources: every number is a hash.

A value is a pure function of (key, counter, stream): the bars of a day, or the trades of
a minute, never depend on the range that was asked for, and two processes agree without
sharing state. The synthetic bars (:mod:`.synthetic`) and the trades behind them
(:mod:`.ticks`) both draw from here.
"""

from __future__ import annotations

import hashlib

import numpy as np


def stable_key(*parts: object) -> int:
    """A stable 64-bit key for a tuple of values (Python's hash() is salted per process)."""
    text = "|".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def splitmix64(key: int, counter: np.ndarray, stream: int) -> np.ndarray:
    """splitmix64 of (key, counter, stream): uint64 array shaped like ``counter``."""
    c = np.asarray(counter, dtype=np.int64).view(np.uint64)
    z = c * np.uint64(0x9E3779B97F4A7C15)
    z ^= np.uint64((key ^ (stream * 0xD1B54A32D192ED03)) & 0xFFFFFFFFFFFFFFFF)
    z += np.uint64(0x9E3779B97F4A7C15)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def uniform53(h: np.ndarray) -> np.ndarray:
    """Uniform in (0, 1] from the top 53 bits."""
    return ((h >> np.uint64(11)).astype(np.float64) + 1.0) * (1.0 / 9007199254740992.0)


def uniform32_pair(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two uniforms in (0, 1] from the two 32-bit halves."""
    scale = 1.0 / 4294967296.0
    hi = ((h >> np.uint64(32)).astype(np.float64) + 1.0) * scale
    lo = ((h & np.uint64(0xFFFFFFFF)).astype(np.float64) + 1.0) * scale
    return hi, lo


def normals(key: int, counter: np.ndarray, stream: int) -> tuple[np.ndarray, np.ndarray]:
    """Two independent standard normals per counter (Box-Muller on two 32-bit uniforms)."""
    u1, u2 = uniform32_pair(splitmix64(key, counter, stream))
    r = np.sqrt(-2.0 * np.log(u1))
    theta = (2.0 * np.pi) * u2
    return r * np.cos(theta), r * np.sin(theta)
