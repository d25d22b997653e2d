"""The two on-disk export formats: their constants, the records64 layout, and their errors.

**Arrow** (``format="arrow"``, suffix ``.arrow``): one uncompressed Arrow IPC *file* holding a
single record batch, so every column is one contiguous buffer a reader can view in place.
Rows are sorted by (symbol, ts). ``symbol`` is ``dictionary<int32, utf8>`` whose codes are
the positions in the symbol table; ``ts`` is ``timestamp[ns, UTC]``; booleans are stored as
``uint8`` 0/1 (field metadata ``duckmarket.logical_type = bool``) so they can be viewed as
numpy ``bool``; other text columns are dictionary-encoded. The schema metadata key
``duckmarket.hotpath`` holds a JSON document: ``format``, ``layout_version``, ``rows``,
``symbols`` (in code order), ``ranges`` (``[start, stop)`` row range per symbol), the source
mart or SQL, and a CRC-32 per column.

**records64** (``format="records64"``, suffix ``.records64``): fixed 64-byte little-endian
records, one cache line per bar, for readers in any language::

    offset  size  field
         0     8  magic  b"DMREC64\\0"
         8     4  u32 layout version (1)
        12     4  u32 record size (64)
        16     8  u64 row count N
        24     8  u64 data offset (64)
        32     8  u64 metadata offset (64 + 64 * N)
        40     8  u64 metadata length M (bytes of UTF-8 JSON)
        48    16  reserved (zero)
        64  64*N  records: i8 ts (ns since the epoch, UTC), f8 open, high, low, close,
                  volume, i4 symbol_id, i4 flags (bit 0 is_final, bit 1 is_suspect), 8 pad
      64+64N   M  JSON metadata (symbols, ranges, price basis, source, CRC-32 of the records)
    64+64N+M  16  footer: u64 M, magic b"DMR64END"

A file is accepted only if both magics, the version, the record size and the exact file size
agree; anything else is refused with :class:`BadExportError`.
"""

from __future__ import annotations

import struct

import numpy as np

from ingest.errors import InvalidInputError

__all__ = [
    "ARROW_FORMAT",
    "ARROW_META_KEY",
    "FLAG_BITS",
    "LAYOUT_VERSION",
    "PRICE_BASES",
    "RECORDS64_FORMAT",
    "RECORD_DTYPE",
    "BadExportError",
]

LAYOUT_VERSION = 1
ARROW_FORMAT = "duckmarket-arrow"
RECORDS64_FORMAT = "duckmarket-records64"
ARROW_META_KEY = b"duckmarket.hotpath"
BOOL_FIELD_KEY = b"duckmarket.logical_type"

ARROW_MAGIC = b"ARROW1"
PARQUET_MAGIC = b"PAR1"
R64_MAGIC = b"DMREC64\x00"
R64_END_MAGIC = b"DMR64END"
R64_HEADER = struct.Struct("<8sIIQQQQ16x")
R64_FOOTER = struct.Struct("<Q8s")
assert R64_HEADER.size == 64
assert R64_FOOTER.size == 16

RECORD_DTYPE = np.dtype(
    {
        "names": ["ts", "open", "high", "low", "close", "volume", "symbol_id", "flags"],
        "formats": ["<i8", "<f8", "<f8", "<f8", "<f8", "<f8", "<i4", "<i4"],
        "offsets": [0, 8, 16, 24, 32, 40, 48, 52],
        "itemsize": 64,
    }
)
"""One bar per 64-byte record (a cache line); bytes 56..63 are padding."""

FLAG_BITS: dict[str, int] = {"is_final": 1, "is_suspect": 2}
"""Bits of ``flags`` in records64, set from these boolean columns when the source has them."""

PRICE_FIELDS = ("open", "high", "low", "close", "volume")
PRICE_BASES: dict[str, tuple[str, ...]] = {
    "raw": PRICE_FIELDS,
    "split": tuple(f"{f}_split_adj" for f in PRICE_FIELDS),
    "total": tuple(f"{f}_adj" for f in PRICE_FIELDS),
}
"""Source columns of records64's open, high, low, close, volume for each ``prices`` basis."""


class BadExportError(InvalidInputError):
    """A file that is not a complete, supported duckmarket export (truncated, corrupt, foreign)."""
