"""Gatan DM3/DM4: our own reader of single 3-D/4-D files and stacks of 2-D files."""

import struct

import numpy as np
import pytest
from format_cases import check_frames, write_dm_file

from udfwidgets import DataSetError
from udfwidgets.data import write_dm
from udfwidgets.io.dm import read_tags


def test_every_executor_and_auto(any_ctx, tmp_path, rng):
    path, data, _ = write_dm_file(tmp_path, rng)
    ds = any_ctx.load("auto", path=path)
    assert "DMDataSet kind='dm'" in repr(ds)
    check_frames(any_ctx, ds, data)


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize(
    "dtype", ["uint8", "int16", "uint16", "int32", "uint32", "float32", "float64"]
)
def test_versions_and_dtypes(ctx, tmp_path, rng, version, dtype):
    data = (rng.random((2, 3, 7, 9)) * 100).astype(dtype)
    path = tmp_path / f"a.dm{version}"
    write_dm(path, data, version=version, pixel_size=0.5, pixel_unit="1/nm")
    ds = ctx.load("dm", path=path)
    assert ds.metadata["format"] == f"Gatan DM{version}"
    assert ds.metadata["pixel_size"] == (0.5, 0.5) and ds.metadata["pixel_unit"] == "1/nm"
    check_frames(ctx, ds, data)


def test_3d_file_and_stack_of_2d_files(ctx, tmp_path, rng):
    data = rng.integers(0, 500, (6, 8, 5)).astype(np.uint16)
    write_dm(tmp_path / "movie.dm4", data)
    check_frames(
        ctx, ctx.load("dm", path=tmp_path / "movie.dm4", nav_shape=(2, 3)), data.reshape(2, 3, 8, 5)
    )
    for i, frame in enumerate(data):
        write_dm(tmp_path / f"f{i:02d}.dm3", frame, version=3)
    files = sorted(str(p) for p in tmp_path.glob("f*.dm3"))
    check_frames(ctx, ctx.load("dm", path=files, nav_shape=(2, 3)), data.reshape(2, 3, 8, 5))
    check_frames(ctx, ctx.load("dm", path=str(tmp_path / "f*.dm3")), data)


def test_dimensions_are_written_fastest_first(tmp_path):
    """An independent look at the bytes: the first Dimensions value is the frame width."""
    write_dm(tmp_path / "a.dm4", np.zeros((2, 3, 4, 5), np.float32))
    tags, order, version = read_tags(str(tmp_path / "a.dm4"))
    assert (order, version) == ("<", 4)
    raw = (tmp_path / "a.dm4").read_bytes()
    assert struct.unpack(">I", raw[:4])[0] == 4 and struct.unpack(">I", raw[12:16])[0] == 1
    assert list(tags["ImageList"]["#0"]["ImageData"]["Dimensions"].values()) == [5, 4, 3, 2]


def test_bad_input(ctx, tmp_path, rng):
    path, data, _ = write_dm_file(tmp_path, rng)
    raw = path.read_bytes()
    path.write_bytes(raw[:2000])
    with pytest.raises(DataSetError, match="truncated"):
        ctx.load("dm", path=path)
    path.write_bytes(b"IMGBLO" + bytes(100))
    with pytest.raises(DataSetError, match="not a Gatan DM3/DM4 file"):
        ctx.load("dm", path=path)
    write_dm(tmp_path / "flat.dm4", np.zeros((8, 8), np.float32))
    with pytest.raises(DataSetError, match="2-D image; one file must hold 3-D or 4-D"):
        ctx.load("dm", path=tmp_path / "flat.dm4")
    write_dm(tmp_path / "other.dm4", np.zeros((8, 9), np.float32))
    with pytest.raises(DataSetError, match="not one stack"):
        ctx.load("dm", path=[tmp_path / "flat.dm4", tmp_path / "other.dm4"])
