"""TIA .ser series of 2-D images: read frame-exact, scan shape from the dimension arrays."""

import struct

import pytest
from format_cases import check_frames, write_ser_file

from udfwidgets import DataSetError
from udfwidgets.data import write_ser


def test_every_executor_and_auto(any_ctx, tmp_path, rng):
    path, data, _ = write_ser_file(tmp_path, rng)
    ds = any_ctx.load("auto", path=path)
    assert "SERDataSet kind='ser'" in repr(ds)
    check_frames(any_ctx, ds, data)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int32", "float32", "float64"])
def test_dtypes_and_1d_nav(ctx, tmp_path, rng, dtype):
    data = (rng.random((7, 5, 6)) * 100).astype(dtype)
    write_ser(tmp_path / "m.ser", data)
    check_frames(ctx, ctx.load("ser", path=tmp_path / "m.ser"), data)


def test_layout_of_the_written_file(tmp_path, rng):
    path, data, _ = write_ser_file(tmp_path, rng)
    raw = path.read_bytes()
    assert struct.unpack("<HHHI", raw[:10]) == (0x4949, 0x0197, 0x0220, 0x4122)
    assert struct.unpack("<II", raw[14:22]) == (12, 12)


def test_bad_input(ctx, tmp_path, rng):
    path, data, _ = write_ser_file(tmp_path, rng)
    raw = path.read_bytes()
    path.write_bytes(raw[:3000])
    with pytest.raises(DataSetError, match="truncated"):
        ctx.load("ser", path=path)
    path.write_bytes(b"IMGBLO" + bytes(100))
    with pytest.raises(DataSetError, match="not a TIA .ser file"):
        ctx.load("ser", path=path)
