"""Incremental fetching: requested range minus coverage, chunked to the source's limits.

All intervals are half-open ``[start, end)`` in integer microseconds (UTC).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .manifest import CoverageInterval, from_us, to_us
from .sources.base import Capabilities

Interval = tuple[int, int]


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sort and merge overlapping or touching intervals."""
    out: list[list[int]] = []
    for s, e in sorted(i for i in intervals if i[1] > i[0]):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def subtract(requested: Interval, covered: Iterable[Interval]) -> list[Interval]:
    """``requested`` minus the union of ``covered``."""
    s, e = requested
    out: list[Interval] = []
    cursor = s
    for cs, ce in merge(covered):
        if ce <= cursor or cs >= e:
            continue
        if cs > cursor:
            out.append((cursor, cs))
        cursor = max(cursor, ce)
        if cursor >= e:
            break
    if cursor < e:
        out.append((cursor, e))
    return out


def chunk(interval: Interval, max_span_us: int | None) -> list[Interval]:
    s, e = interval
    if not max_span_us or e - s <= max_span_us:
        return [interval]
    return [(a, min(a + max_span_us, e)) for a in range(s, e, max_span_us)]


def _us(td: timedelta) -> int:
    return (td.days * 86_400 + td.seconds) * 1_000_000 + td.microseconds


@dataclass
class FetchPlan:
    """What to ask the source for, and what to mark as beyond its reach."""

    requested: Interval
    fetch: list[Interval] = field(default_factory=list)
    unreachable: list[Interval] = field(default_factory=list)

    @property
    def fetch_ranges(self) -> list[tuple[datetime, datetime]]:
        return [(from_us(s), from_us(e)) for s, e in self.fetch]

    @property
    def source_calls(self) -> int:
        return len(self.fetch)


def plan(
    capabilities: Capabilities,
    timeframe: str,
    start: datetime,
    end: datetime,
    covered: list[CoverageInterval],
    now: datetime,
    force_refresh: bool = False,
) -> FetchPlan:
    """Plan one (source, symbol, timeframe) request; ``timeframe`` may be ``TICK``.

    * the future is never requested: ``end`` is clamped to ``now``;
    * what lies further back than the source's reach is not requested but reported as
      unreachable (recorded as ``unrecoverable`` coverage by the caller);
    * covered ranges are skipped unless ``force_refresh``;
    * the source's trailing window before ``now`` is always fetched again (vendors revise
      recent bars), as long as it overlaps the request;
    * each range is cut into chunks no longer than one request may cover.
    """
    limits = capabilities.limits(timeframe)
    if limits is None:
        raise ValueError(f"the source has no {timeframe} data")
    s, e = to_us(start), min(to_us(end), to_us(now))
    p = FetchPlan(requested=(s, e))
    if e <= s:
        return p
    if limits.lookback is not None:
        reach = to_us(now) - _us(limits.lookback)
        if s < reach:
            p.unreachable.append((s, min(e, reach)))
            s = max(s, reach)
    if e <= s:
        return p
    if force_refresh:
        missing = [(s, e)]
    else:
        missing = subtract((s, e), [(c.start_us, c.end_us) for c in covered])
        if capabilities.trailing_refetch:
            t0 = max(s, to_us(now) - _us(capabilities.trailing_refetch))
            if t0 < e:
                missing = merge([*missing, (t0, e)])
    span = _us(limits.max_span) if limits.max_span else None
    for m in missing:
        p.fetch.extend(chunk(m, span))
    return p
