"""Readers: zero-copy views, batches, hand-offs, and refusal of bad files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hotpath
from hotpath.synthetic import make_bars_mart
from ingest.paths import DataPaths

ROWS = {"AAPL": 1500, "MSFT": 800, "^GSPC": 1100}


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    p = DataPaths(tmp_path_factory.mktemp("reader") / "data").ensure()
    make_bars_mart(p.marts / "bars_adjusted.parquet", list(ROWS), ROWS)
    return {
        fmt: hotpath.export("bars_adjusted", data_dir=p, format=fmt, record=False).path
        for fmt in ("arrow", "records64")
    }


@pytest.mark.parametrize("fmt", ["arrow", "records64"])
def test_columns_are_views_of_the_mapped_file(exports: dict[str, Path], fmt: str) -> None:
    x = hotpath.open(exports[fmt])
    for name, view in x.columns.items():
        assert np.shares_memory(view, x.buffer), name
        assert not view.flags.writeable, name
    jan = x.range("MSFT", "2015-01-06", "2015-01-08")
    assert np.shares_memory(jan.col("close"), x.buffer)
    for batch in x.batches(1000):
        assert np.shares_memory(batch.col("volume"), x.buffer)


def test_arrow_columns_are_contiguous_and_aligned(exports: dict[str, Path]) -> None:
    x = hotpath.open(exports["arrow"])
    for name, view in x.columns.items():
        assert view.flags.c_contiguous, name
        assert view.ctypes.data % view.dtype.itemsize == 0, name
    assert x.col("ts").dtype == np.dtype("datetime64[ns]")
    assert x.col("is_final").dtype == np.bool_


def test_arrow_and_polars_handoffs_are_zero_copy(exports: dict[str, Path]) -> None:
    x = hotpath.open(exports["arrow"])
    view = x.symbol("MSFT")
    table = view.to_arrow()
    assert table.num_rows == ROWS["MSFT"]
    assert np.shares_memory(table["close"].chunk(0).to_numpy(), x.buffer)
    assert table["is_final"].type == pa.bool_()
    df = view.to_polars()
    assert df.height == ROWS["MSFT"]
    assert np.shares_memory(df["close"].to_numpy(), x.buffer)
    assert df["symbol"].cast(str).unique().to_list() == ["MSFT"]


def test_records64_handoffs(exports: dict[str, Path]) -> None:
    x = hotpath.open(exports["records64"])
    assert x.records.dtype == hotpath.RECORD_DTYPE
    assert np.shares_memory(x.records, x.buffer)
    df = x.symbol("^GSPC").to_polars()
    assert df.columns == ["symbol", "ts", "open", "high", "low", "close", "volume", "flags"]
    np.testing.assert_array_equal(df["close"].to_numpy(), x.symbol("^GSPC").col("close"))


@pytest.mark.parametrize("fmt", ["arrow", "records64"])
def test_batches_cover_every_row_once(exports: dict[str, Path], fmt: str) -> None:
    x = hotpath.open(exports[fmt])
    sizes = [len(b) for b in x.batches(1000)]
    assert sizes == [1000, 1000, 1000, sum(ROWS.values()) - 3000]
    joined = np.concatenate([b.ts_ns for b in x.batches(1000)])
    np.testing.assert_array_equal(joined, x.ts_ns)
    sub = x.symbol("MSFT")
    assert sum(len(b) for b in sub.batches(300)) == ROWS["MSFT"]
    assert len(next(iter(x.batches()))) == sum(ROWS.values())  # default 500k


def test_to_torch_shares_memory(exports: dict[str, Path]) -> None:
    torch = pytest.importorskip("torch")
    x = hotpath.open(exports["arrow"])
    t = x.to_torch("close")
    assert t.dtype == torch.float64
    assert t.data_ptr() == x.col("close").ctypes.data
    assert x.to_torch("ts").dtype == torch.int64


def test_views_stay_valid_after_close(exports: dict[str, Path]) -> None:
    x = hotpath.open(exports["arrow"])
    close = x.col("close")
    expect = close.copy()
    x.close()
    np.testing.assert_array_equal(close, expect)
    with pytest.raises(ValueError, match="closed"):
        x.col("close")


# -- refusal of bad files ----------------------------------------------------------------


def _bad(tmp_path: Path, data: bytes, name: str = "bad.arrow") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("fmt", ["arrow", "records64"])
@pytest.mark.parametrize("keep", [0.999, 0.5, 0.1, 0.0])
def test_truncated_files_are_refused(
    exports: dict[str, Path], tmp_path: Path, fmt: str, keep: float
) -> None:
    data = exports[fmt].read_bytes()
    path = _bad(tmp_path, data[: int(len(data) * keep)])
    with pytest.raises(hotpath.BadExportError):
        hotpath.open(path)


@pytest.mark.parametrize("size", [1, 100, 100_000])
def test_random_bytes_are_refused(tmp_path: Path, size: int) -> None:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    with pytest.raises(hotpath.BadExportError, match=r"not a duckmarket export|too short"):
        hotpath.open(_bad(tmp_path, data))


def test_random_bytes_behind_a_valid_magic_are_refused(tmp_path: Path) -> None:
    noise = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    for magic in (b"ARROW1\x00\x00", b"DMREC64\x00"):
        with pytest.raises(hotpath.BadExportError):
            hotpath.open(_bad(tmp_path, magic + noise + b"ARROW1"))


def test_wrong_magic_is_refused(exports: dict[str, Path], tmp_path: Path) -> None:
    data = bytearray(exports["records64"].read_bytes())
    data[:8] = b"NOTMINE\x00"
    with pytest.raises(hotpath.BadExportError, match="unknown magic"):
        hotpath.open(_bad(tmp_path, bytes(data)))


def test_wrong_layout_version_is_refused(exports: dict[str, Path], tmp_path: Path) -> None:
    data = bytearray(exports["records64"].read_bytes())
    struct.pack_into("<I", data, 8, 2)
    with pytest.raises(hotpath.BadExportError, match="layout version 2"):
        hotpath.open(_bad(tmp_path, bytes(data)))
    arrow = exports["arrow"].read_bytes()
    assert arrow.count(b'"layout_version": 1') == 2  # schema message and footer
    with pytest.raises(hotpath.BadExportError, match="layout version 9"):
        hotpath.open(_bad(tmp_path, arrow.replace(b'"layout_version": 1', b'"layout_version": 9')))


def test_parquet_passed_as_export_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    make_bars_mart(path, ["AAPL"], 10)
    with pytest.raises(hotpath.BadExportError, match="Parquet file, not an export"):
        hotpath.open(path)


def test_foreign_arrow_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "foreign.arrow"
    table = pa.table({"symbol": ["a"], "x": [1.0]})
    with pa.OSFile(str(path), "wb") as f, pa.ipc.new_file(f, table.schema) as w:
        w.write_table(table)
    with pytest.raises(hotpath.BadExportError, match="not a duckmarket export"):
        hotpath.open(path)


def test_flipped_data_byte_is_caught_by_verify(exports: dict[str, Path], tmp_path: Path) -> None:
    for fmt in ("arrow", "records64"):
        data = bytearray(exports[fmt].read_bytes())
        x = hotpath.open(exports[fmt])
        pos = x.symbol("MSFT").col("close")[5:6].ctypes.data - x.buffer.ctypes.data
        del x
        data[pos] ^= 0xFF
        path = _bad(tmp_path, bytes(data), f"flipped.{fmt}")
        hotpath.open(path)  # structure is intact: opens cheaply
        with pytest.raises(hotpath.BadExportError, match="checksum mismatch"):
            hotpath.open(path, verify=True)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(hotpath.BadExportError, match="cannot open export"):
        hotpath.open(tmp_path / "nope.arrow")
