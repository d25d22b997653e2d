"""Requests per API key: a token bucket per key, so one client cannot starve the others.

Each key may send ``burst`` requests at once and ``per_second`` requests a second on
average; a request past that is answered 429 with ``Retry-After`` (whole seconds until a
token is back). Buckets live in memory: a restart forgets them.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

__all__ = ["RateLimit", "RateLimiter"]


@dataclass(frozen=True)
class RateLimit:
    #: average requests a second per key (0 turns the limit off)
    per_second: float = 100.0
    #: requests a key may send at once
    burst: int = 200


class RateLimiter:
    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> int:
        """0 if ``key`` may make a request now (and takes a token), else the seconds to
        wait before the next one is allowed."""
        rate, burst = self.limit.per_second, max(1, self.limit.burst)
        if rate <= 0:
            return 0
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(burst), now))
            tokens = min(float(burst), tokens + (now - at) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / rate))
