"""Validation of incoming tables: type each batch, refuse what cannot be stored, and reject
bad rows with a reason instead of dropping them silently.

Structural problems (a missing column, naive timestamps, an unknown extra column) raise
:class:`~ingest.errors.InvalidInputError`: the whole batch is wrong. Row problems (a NaN
price, high below low, a duplicate key) reject that row only; the caller stores the
rejects in the lake's ``rejects`` dataset. Finer checks (high >= max(open, close),
outliers) belong to the warehouse's quality models, which flag rather than drop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from .errors import InvalidInputError
from .schema import (
    ACTION_TYPES,
    BARS,
    CORPORATE_ACTIONS,
    EXTRA_COLUMN_NAME,
    FUNDING_RATES,
    PARTITION_COLUMNS,
    TICKS,
    TS_TYPE,
    Dataset,
)

__all__ = [
    "Validated",
    "reject_table",
    "validate_actions",
    "validate_bars",
    "validate_funding",
    "validate_ticks",
]


def _to_utc(col: pa.ChunkedArray | pa.Array, name: str) -> pa.Array:
    t = col.type
    if pa.types.is_timestamp(t):
        if t.tz is None:
            raise InvalidInputError(
                f"column {name!r} has naive timestamps; give them a timezone "
                "(e.g. tz_localize('America/New_York') or --timezone) so they can be "
                "stored as UTC"
            )
        return pc.cast(col, TS_TYPE)
    raise InvalidInputError(f"column {name!r} must be a timestamp, got {t}")


def _json_rows(table: pa.Table) -> list[str]:
    out = []
    for row in table.to_pylist():
        out.append(json.dumps(row, default=str, sort_keys=True))
    return out


@dataclass
class Validated:
    table: pa.Table
    rejects: pa.Table  # columns: key, reason, row


def reject_table(keys: list[str], reasons: list[str], rows: list[str]) -> pa.Table:
    """Rejected rows as the lake's rejects dataset takes them: key, reason, the row as JSON."""
    return pa.table(
        {
            "key": pa.array(keys, pa.string()),
            "reason": pa.array(reasons, pa.string()),
            "row": pa.array(rows, pa.string()),
        }
    )


def _split_bad(table: pa.Table, checks: list[tuple[str, pa.Array]], key: str) -> Validated:
    """Apply boolean 'bad' masks in order; each bad row is rejected with the first reason."""
    n = table.num_rows
    bad_any = np.zeros(n, dtype=bool)
    reasons = np.empty(n, dtype=object)
    for reason, mask in checks:
        m = np.asarray(pc.fill_null(mask, True).to_numpy(zero_copy_only=False), dtype=bool)
        new = m & ~bad_any
        reasons[new] = reason
        bad_any |= m
    if not bad_any.any():
        return Validated(table, reject_table([], [], []))
    bad_idx = np.flatnonzero(bad_any)
    bad = table.take(pa.array(bad_idx))
    keys = [str(v) for v in bad.column(key).to_pylist()]
    rejects = reject_table(keys, list(reasons[bad_idx]), _json_rows(bad))
    return Validated(table.filter(pa.array(~bad_any)), rejects)


def _check_columns(table: pa.Table, dataset: Dataset, optional: set[str]) -> None:
    required = [f.name for f in dataset.schema if f.name not in optional]
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise InvalidInputError(
            f"{dataset.name}: missing column(s) {', '.join(missing)}; "
            f"got {', '.join(table.column_names) or 'no columns'}"
        )
    for name in table.column_names:
        if name in dataset.schema.names:
            continue
        if name in PARTITION_COLUMNS:
            raise InvalidInputError(
                f"{dataset.name}: column {name!r} is a partition key and is taken from the "
                "arguments, not from the data; drop it"
            )
        if not EXTRA_COLUMN_NAME.fullmatch(name):
            raise InvalidInputError(
                f"{dataset.name}: unknown column {name!r}; extra vendor columns must be "
                "lowercase identifiers such as 'vwap' or 'trade_count'"
            )
        t = table.schema.field(name).type
        if not (
            pa.types.is_floating(t)
            or pa.types.is_integer(t)
            or pa.types.is_boolean(t)
            or pa.types.is_string(t)
            or pa.types.is_large_string(t)
        ):
            raise InvalidInputError(f"{dataset.name}: extra column {name!r} has type {t}")


def _as_float(table: pa.Table, name: str) -> pa.Table:
    col = table.column(name)
    if not pa.types.is_floating(col.type) or col.type != pa.float64():
        try:
            col = pc.cast(col, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidInputError(f"column {name!r} must be numeric, got {col.type}") from exc
    return table.set_column(table.schema.get_field_index(name), name, col)


def validate_bars(table: pa.Table) -> Validated:
    """Type and check a batch of bars. Structural problems raise; bad rows are rejected.

    Rows rejected (with a reason): null ts, a NaN/infinite/missing price, a non-positive
    price, high below low, a negative or NaN volume, a duplicate ts in the batch (the last
    occurrence is kept). Finer checks (high >= max(open, close), outliers) belong to the
    warehouse's quality models, which flag rather than drop.
    """
    if not isinstance(table, pa.Table):
        raise InvalidInputError("bars must be a pyarrow Table")
    _check_columns(table, BARS, optional={"is_final", "ingested_at"})
    table = table.drop_columns([c for c in ("ingested_at",) if c in table.column_names])
    table = table.set_column(
        table.schema.get_field_index("ts"), "ts", _to_utc(table.column("ts"), "ts")
    )
    for c in ("open", "high", "low", "close", "volume"):
        table = _as_float(table, c)
    if "is_final" not in table.column_names:
        table = table.append_column("is_final", pa.array(np.ones(table.num_rows, bool)))
    else:
        table = table.set_column(
            table.schema.get_field_index("is_final"),
            "is_final",
            pc.fill_null(pc.cast(table.column("is_final"), pa.bool_()), True),
        )
    prices = [table.column(c) for c in ("open", "high", "low", "close")]
    not_finite = pc.or_(
        pc.or_(pc.invert(pc.is_finite(prices[0])), pc.invert(pc.is_finite(prices[1]))),
        pc.or_(pc.invert(pc.is_finite(prices[2])), pc.invert(pc.is_finite(prices[3]))),
    )
    non_positive = pc.or_(
        pc.or_(pc.less_equal(prices[0], 0), pc.less_equal(prices[1], 0)),
        pc.or_(pc.less_equal(prices[2], 0), pc.less_equal(prices[3], 0)),
    )
    vol = table.column("volume")
    checks = [
        ("null timestamp", pc.is_null(table.column("ts"))),
        ("price is NaN, infinite or missing", not_finite),
        ("price is zero or negative", non_positive),
        ("high below low", pc.less(prices[1], prices[2])),
        (
            "volume is negative, NaN or missing",
            pc.or_(pc.invert(pc.is_finite(vol)), pc.less(vol, 0)),
        ),
        ("duplicate timestamp in batch (last kept)", _earlier_duplicates(table, ["ts"])),
    ]
    return _split_bad(table, checks, "ts")


def _earlier_duplicates(table: pa.Table, key: list[str]) -> pa.Array:
    """True for every row whose key appears again later in the batch."""
    n = table.num_rows
    if n == 0:
        return pa.array([], pa.bool_())
    if len(key) == 1 and pa.types.is_timestamp(table.schema.field(key[0]).type):
        col = table.column(key[0])
        if col.null_count == 0:
            v = pc.cast(col, pa.int64()).to_numpy()
            if n == 1 or bool((v[1:] > v[:-1]).all()):  # strictly increasing: no duplicate
                return pa.array(np.zeros(n, dtype=bool))
    df = pl.from_arrow(table.select(key))
    assert isinstance(df, pl.DataFrame)
    is_last = df.with_row_index("__i").select(
        (pl.col("__i") == pl.col("__i").max().over(key)).alias("last")
    )["last"]
    return pa.array(~is_last.to_numpy())


def validate_actions(table: pa.Table) -> Validated:
    _check_columns(
        table, CORPORATE_ACTIONS, optional={"ingested_at", "currency", "split_ratio", "cash_amount"}
    )
    table = table.drop_columns([c for c in ("ingested_at",) if c in table.column_names])
    n = table.num_rows
    for c in ("split_ratio", "cash_amount"):
        if c not in table.column_names:
            table = table.append_column(c, pa.nulls(n, pa.float64()))
        table = _as_float(table, c)
    if "currency" not in table.column_names:
        table = table.append_column("currency", pa.nulls(n, pa.string()))
    ex = table.column("ex_date")
    if not pa.types.is_date32(ex.type):
        try:
            ex = pc.cast(ex, pa.date32())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidInputError(f"ex_date must be a date, got {ex.type}") from exc
        table = table.set_column(table.schema.get_field_index("ex_date"), "ex_date", ex)
    atype = pc.cast(table.column("action_type"), pa.string())
    table = table.set_column(table.schema.get_field_index("action_type"), "action_type", atype)
    is_split = pc.equal(atype, "split")
    is_div = pc.equal(atype, "dividend")
    ratio, cash = table.column("split_ratio"), table.column("cash_amount")
    checks = [
        ("null ex_date", pc.is_null(table.column("ex_date"))),
        (
            f"unknown action_type (use {' or '.join(ACTION_TYPES)})",
            pc.invert(pc.is_in(atype, pa.array(ACTION_TYPES))),
        ),
        (
            "split without a positive finite split_ratio",
            pc.and_kleene(
                is_split, pc.or_kleene(pc.invert(pc.is_finite(ratio)), pc.less_equal(ratio, 0))
            ),
        ),
        (
            "dividend without a positive finite cash_amount",
            pc.and_kleene(
                is_div, pc.or_kleene(pc.invert(pc.is_finite(cash)), pc.less_equal(cash, 0))
            ),
        ),
        (
            "duplicate action in batch (last kept)",
            _earlier_duplicates(table, ["ex_date", "action_type"]),
        ),
    ]
    return _split_bad(table, checks, "ex_date")


def validate_ticks(table: pa.Table) -> Validated:
    _check_columns(table, TICKS, optional={"ingested_at", "side", "venue", "seq"})
    table = table.drop_columns([c for c in ("ingested_at",) if c in table.column_names])
    n = table.num_rows
    table = table.set_column(
        table.schema.get_field_index("ts"), "ts", _to_utc(table.column("ts"), "ts")
    )
    if "seq" not in table.column_names:
        table = table.append_column("seq", pa.array(np.arange(n, dtype=np.int64)))
    table = table.set_column(
        table.schema.get_field_index("seq"), "seq", pc.cast(table.column("seq"), pa.int64())
    )
    for c in ("side", "venue"):
        if c not in table.column_names:
            table = table.append_column(c, pa.nulls(n, pa.string()))
    for c in ("price", "size"):
        table = _as_float(table, c)
    price, size = table.column("price"), table.column("size")
    checks = [
        ("null timestamp", pc.is_null(table.column("ts"))),
        ("price is NaN, infinite, zero or negative", pc.invert(pc.greater(price, 0))),
        ("price is NaN, infinite, zero or negative", pc.invert(pc.is_finite(price))),
        ("size is negative, NaN or missing", pc.invert(pc.greater_equal(size, 0))),
        ("duplicate (ts, seq) in batch (last kept)", _earlier_duplicates(table, ["ts", "seq"])),
    ]
    return _split_bad(table, checks, "ts")


def validate_funding(table: pa.Table) -> Validated:
    """Type and check a batch of funding rates (ts, rate, interval_hours, extras).

    Rows rejected: a null ts, a NaN, infinite or missing rate (rates may be negative: the
    shorts pay), a zero or negative interval, a duplicate ts (the last occurrence is kept).
    ``interval_hours`` may be missing or null (a lone payment has no previous one)."""
    if not isinstance(table, pa.Table):
        raise InvalidInputError("funding rates must be a pyarrow Table")
    _check_columns(table, FUNDING_RATES, optional={"interval_hours", "ingested_at"})
    table = table.drop_columns([c for c in ("ingested_at",) if c in table.column_names])
    table = table.set_column(
        table.schema.get_field_index("ts"), "ts", _to_utc(table.column("ts"), "ts")
    )
    if "interval_hours" not in table.column_names:
        table = table.append_column("interval_hours", pa.nulls(table.num_rows, pa.float64()))
    for c in ("rate", "interval_hours"):
        table = _as_float(table, c)
    rate, interval = table.column("rate"), table.column("interval_hours")
    checks = [
        ("null timestamp", pc.is_null(table.column("ts"))),
        ("rate is NaN, infinite or missing", pc.invert(pc.is_finite(rate))),
        (
            "interval is zero, negative or not finite",
            pc.fill_null(
                pc.or_(pc.invert(pc.is_finite(interval)), pc.less_equal(interval, 0)), False
            ),
        ),
        ("duplicate timestamp in batch (last kept)", _earlier_duplicates(table, ["ts"])),
    ]
    return _split_bad(table, checks, "ts")
