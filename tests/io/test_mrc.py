"""MRC stacks (mrcfile parses the header, our maps read the frames)."""

import numpy as np
import pytest
from format_cases import NAV, check_frames, write_mrc_file

from udfwidgets import DataSetError
from udfwidgets.data import write_mrc


def test_every_executor_and_auto(any_ctx, tmp_path, rng):
    path, data, kw = write_mrc_file(tmp_path, rng)
    ds = any_ctx.load("auto", path=path, **kw)
    assert "MRCDataSet kind='mrc'" in repr(ds) and ds.metadata["pixel_unit"] == "Å"
    check_frames(any_ctx, ds, data)


@pytest.mark.parametrize("dtype", ["int8", "int16", "uint16", "float32", "float16"])
def test_dtypes(ctx, tmp_path, rng, dtype):
    data = (rng.random(NAV + (6, 8)) * 100).astype(dtype)
    write_mrc(tmp_path / "d.mrc", data)
    check_frames(ctx, ctx.load("mrc", path=tmp_path / "d.mrc", nav_shape=NAV), data)


def test_big_endian_file_via_mrcfile(ctx, tmp_path, rng):
    mrcfile = pytest.importorskip("mrcfile")
    data = rng.integers(0, 1000, (6, 5, 7)).astype(">i2")
    with mrcfile.new(tmp_path / "be.mrc") as m:
        m.set_data(data)
    ds = ctx.load("mrc", path=tmp_path / "be.mrc")
    assert ds.dtype == np.dtype("int16")
    check_frames(ctx, ds, data.astype("int16"))


def test_bad_input(ctx, tmp_path, rng):
    path, data, kw = write_mrc_file(tmp_path, rng)
    raw = path.read_bytes()
    path.write_bytes(raw[:-50])
    with pytest.raises(DataSetError, match="truncated"):
        ctx.load("mrc", path=path)
    other = tmp_path / "other.mrc"
    other.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(2000))
    with pytest.raises(DataSetError, match="not a readable MRC file"):
        ctx.load("mrc", path=other)


def test_missing_mrcfile_names_the_extra(ctx, tmp_path, rng, monkeypatch):
    import sys

    path, data, kw = write_mrc_file(tmp_path, rng)
    monkeypatch.setitem(sys.modules, "mrcfile", None)
    with pytest.raises(DataSetError, match=r"pip install 'udfwidgets\[formats\]'"):
        ctx.load("mrc", path=path)
