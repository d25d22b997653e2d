"""The universe file: what `duckmarket update` keeps up to date (``duckmarket.toml``).

TOML, read with the standard library; every key is checked, and a mistake is reported with
its place in the file (``series[2].timeframes``) and what was expected.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from ingest.errors import DuckmarketError, InvalidInputError
from ingest.paths import DataPaths
from ingest.schema import validate_symbol
from ingest.timeframes import parse_timeframe
from ingest.universe import read_symbols_file

__all__ = ["CONFIG_NAME", "EXAMPLE", "Config", "Series", "load_config", "write_example"]

#: the universe file's name at the data root
CONFIG_NAME = "duckmarket.toml"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_LOOKBACK = re.compile(r"^(\d+)\s*(d|w|y)$")

EXAMPLE = """\
# duckmarket universe: what `duckmarket update` keeps up to date.
# Run it by hand or from cron (see the README); `duckmarket update --json` reports for
# scripts. Dates are UTC. `start` is a date ("2020-01-01") or a look-back ("30d", "8w", "2y").

# Pairs the pair marts study besides seeds/pairs.csv, as [symbol_a, symbol_b] (top-level
# keys such as this one go before the first [table]).
pairs = [["SYN004", "SYN005"]]

[update]
# Re-fetch the last N days on every run: vendors revise recent bars (0: only what is missing).
trailing_days = 0
# Once a week, re-download the last N days and count the bars the vendor revised (kept in
# the manifest's revisions table); `duckmarket update --backfill DAYS` does it any day.
backfill_days = 10
backfill_weekday = "sat"   # mon ... sun, or "never"
# After fetching: an incremental `dbt build` (skipped when nothing new landed) and the
# refresh of these hot-path exports.
build = true
exports = [
  { mart = "bars_adjusted", timeframe = "1d" },
]

# One [[series]] block per source and symbol list. Symbols inline, or from a file of them
# (one per line, # comments, or a CSV's symbol/ticker column) next to this file:
#   symbols_file = "universe.txt"

[[series]]
source = "synthetic"                 # offline and deterministic: the demo universe
symbols = ["SYN000", "SYN001", "SYN002", "SYN003", "SYN004", "SYN005"]
timeframes = ["1d"]
start = "2021-01-01"
options = { seed = 42, n_symbols = 12 }

[[series]]
source = "synthetic"
symbols = ["SYN000", "SYN001"]
timeframes = ["1m"]
start = "20d"
options = { seed = 42, n_symbols = 12 }

# [[series]]
# source = "yfinance"                # needs the network
# symbols_file = "sp100.txt"
# timeframes = ["1d"]
# start = "2015-01-01"
# trailing_days = 5                  # per series, overrides [update]
"""


@dataclass(frozen=True)
class Series:
    source: str
    symbols: tuple[str, ...]
    timeframes: tuple[str, ...]
    start: str  # a date or a look-back, resolved by :meth:`start_at`
    options: dict[str, Any] = field(default_factory=dict)
    trailing_days: int = 0

    def start_at(self, now: datetime) -> datetime:
        m = _LOOKBACK.match(self.start)
        if m:
            n, unit = int(m.group(1)), m.group(2)
            days = {"d": 1, "w": 7, "y": 365}[unit] * n
            return now - timedelta(days=days)
        d = date.fromisoformat(self.start)
        return datetime(d.year, d.month, d.day, tzinfo=UTC)


@dataclass(frozen=True)
class Export:
    mart: str
    timeframe: str | None = None


@dataclass(frozen=True)
class Config:
    path: Path
    series: tuple[Series, ...]
    trailing_days: int = 0
    backfill_days: int = 10
    backfill_weekday: str | None = "sat"
    build: bool = True
    exports: tuple[Export, ...] = ()
    pairs: tuple[tuple[str, str], ...] = ()


def default_path(paths: DataPaths) -> Path:
    return paths.root / CONFIG_NAME


def write_example(path: Path, *, force: bool = False) -> Path:
    """Write the commented example universe; never over an existing file unless ``force``."""
    if path.exists() and not force:
        raise InvalidInputError(f"{path} exists; edit it, or pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(EXAMPLE)
    os.replace(tmp, path)
    return path


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and check a universe file (see :data:`EXAMPLE`)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InvalidInputError(
            f"{p}: no universe file; `duckmarket init` writes an example to start from"
        )
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"{p}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise InvalidInputError(f"{p}: not UTF-8 text") from None
    return _parse(p, raw)


def _err(p: Path, where: str, what: str) -> InvalidInputError:
    return InvalidInputError(f"{p}: {where}: {what}")


def _unknown(p: Path, where: str, table: dict[str, Any], known: set[str]) -> None:
    extra = sorted(set(table) - known)
    if extra:
        raise _err(
            p, where, f"unknown key(s) {', '.join(extra)}; known: {', '.join(sorted(known))}"
        )


def _int(p: Path, where: str, value: Any, lo: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < lo:
        raise _err(p, where, f"expected a whole number >= {lo}, got {value!r}")
    return value


def _parse(p: Path, raw: dict[str, Any]) -> Config:
    _unknown(p, "top level", raw, {"update", "series", "pairs"})
    upd = raw.get("update", {})
    if not isinstance(upd, dict):
        raise _err(p, "update", "expected a table ([update])")
    _unknown(
        p,
        "[update]",
        upd,
        {"trailing_days", "backfill_days", "backfill_weekday", "build", "exports"},
    )
    trailing = _int(p, "update.trailing_days", upd.get("trailing_days", 0))
    backfill = _int(p, "update.backfill_days", upd.get("backfill_days", 10))
    weekday = upd.get("backfill_weekday", "sat")
    if not isinstance(weekday, str) or weekday.lower() not in (*WEEKDAYS, "never"):
        raise _err(p, "update.backfill_weekday", f"expected one of {', '.join(WEEKDAYS)} or never")
    build = upd.get("build", True)
    if not isinstance(build, bool):
        raise _err(p, "update.build", f"expected true or false, got {build!r}")
    exports = []
    for i, e in enumerate(upd.get("exports", [])):
        where = f"update.exports[{i}]"
        if isinstance(e, str):
            e = {"mart": e}
        if not isinstance(e, dict) or not isinstance(e.get("mart"), str):
            raise _err(p, where, 'expected { mart = "bars_adjusted", timeframe = "1d" }')
        _unknown(p, where, e, {"mart", "timeframe"})
        tf = e.get("timeframe")
        exports.append(Export(e["mart"], None if tf is None else _timeframe(p, where, tf)))

    blocks = raw.get("series", [])
    if not isinstance(blocks, list) or not blocks:
        raise _err(p, "series", "no [[series]] block: say which symbols to keep up to date")
    series = [_series(p, i, b, trailing) for i, b in enumerate(blocks)]

    pairs = []
    for i, pair in enumerate(raw.get("pairs", [])):
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)
        ):
            raise _err(p, f"pairs[{i}]", f'expected ["SYMBOL_A", "SYMBOL_B"], got {pair!r}')
        a, b = (_symbol(p, f"pairs[{i}]", x) for x in pair)
        if a == b:
            raise _err(p, f"pairs[{i}]", f"a pair needs two symbols, got {a!r} twice")
        pairs.append((a, b))
    return Config(
        path=p,
        series=tuple(series),
        trailing_days=trailing,
        backfill_days=backfill,
        backfill_weekday=None if weekday.lower() == "never" else weekday.lower(),
        build=build,
        exports=tuple(exports),
        pairs=tuple(pairs),
    )


def _symbol(p: Path, where: str, value: str) -> str:
    try:
        return validate_symbol(value)
    except DuckmarketError as exc:
        raise _err(p, where, f"{value!r} is not a symbol ({exc})") from None


def _timeframe(p: Path, where: str, value: Any) -> str:
    try:
        return parse_timeframe(str(value))
    except DuckmarketError as exc:
        raise _err(p, where, str(exc)) from None


def _series(p: Path, i: int, b: Any, trailing: int) -> Series:
    where = f"series[{i}]"
    if not isinstance(b, dict):
        raise _err(p, where, "expected a [[series]] table")
    _unknown(
        p,
        where,
        b,
        {"source", "symbols", "symbols_file", "timeframes", "start", "options", "trailing_days"},
    )
    source = b.get("source")
    if not isinstance(source, str) or not source:
        raise _err(p, f"{where}.source", 'expected a source name, e.g. "yfinance"')
    symbols: list[str] = []
    listed = b.get("symbols", [])
    if not isinstance(listed, list) or not all(isinstance(s, str) for s in listed):
        raise _err(p, f"{where}.symbols", 'expected a list of symbols, e.g. ["AAPL", "MSFT"]')
    symbols += [_symbol(p, f"{where}.symbols", s) for s in listed]
    if "symbols_file" in b:
        f = b["symbols_file"]
        if not isinstance(f, str):
            raise _err(p, f"{where}.symbols_file", "expected a file name")
        path = Path(f).expanduser()
        symbols += read_symbols_file(path if path.is_absolute() else p.parent / path)
    if not symbols:
        raise _err(p, where, "no symbols: give symbols = [...] or symbols_file = ...")
    tfs = b.get("timeframes", ["1d"])
    if isinstance(tfs, str):
        tfs = [tfs]
    if not isinstance(tfs, list) or not tfs:
        raise _err(p, f"{where}.timeframes", 'expected a list such as ["1d", "1m"]')
    timeframes = tuple(_timeframe(p, f"{where}.timeframes", t) for t in tfs)
    start = b.get("start")
    if isinstance(start, date) and not isinstance(start, datetime):
        start = start.isoformat()  # TOML dates arrive as dates
    if not isinstance(start, str):
        raise _err(p, f"{where}.start", 'expected a date ("2020-01-01") or a look-back ("30d")')
    start = start.strip().lower()
    if not _LOOKBACK.match(start):
        try:
            date.fromisoformat(start)
        except ValueError:
            raise _err(
                p, f"{where}.start", f'{start!r} is neither a date ("2020-01-01") nor a look-back'
            ) from None
    options = b.get("options", {})
    if not isinstance(options, dict):
        raise _err(p, f"{where}.options", "expected a table of the source's options")
    return Series(
        source=source,
        symbols=tuple(dict.fromkeys(symbols)),
        timeframes=timeframes,
        start=start,
        options=dict(options),
        trailing_days=_int(p, f"{where}.trailing_days", b.get("trailing_days", trailing)),
    )
