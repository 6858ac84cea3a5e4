"""NanoMegas blockfiles: read frame-exact, scan shape from the header, bad input."""

import numpy as np
import pytest
from format_cases import check_frames, write_blo_file

from udfwidgets import DataSetError
from udfwidgets.data import write_blo
from udfwidgets.io.blo import HEADER_DTYPE
from udfwidgets.io.files import TruncatedFileWarning


def test_every_executor_and_auto(any_ctx, tmp_path, rng):
    path, data, _ = write_blo_file(tmp_path, rng)
    ds = any_ctx.load("auto", path=path)
    assert "BloDataSet kind='blo'" in repr(ds) and ds.metadata["scan_shape"] == (3, 4)
    check_frames(any_ctx, ds, data)


@pytest.mark.parametrize("shape", [(1, 7, 8, 8), (5, 2, 32, 32), (6, 20, 20)])
def test_shapes(ctx, tmp_path, rng, shape):
    data = rng.integers(0, 256, shape).astype(np.uint8)
    write_blo(tmp_path / "s.blo", data)
    expected = data if data.ndim == 4 else data[None]
    check_frames(ctx, ctx.load("blo", path=tmp_path / "s.blo"), expected)


def test_header_fields_and_frame_headers_in_the_file(tmp_path, rng):
    """The layout written is the documented one: header, VBF image, 6-byte frame headers."""
    path, data, _ = write_blo_file(tmp_path, rng)
    raw = path.read_bytes()
    hdr = np.frombuffer(raw[: HEADER_DTYPE.itemsize], HEADER_DTYPE)[0]
    assert hdr["ID"] == b"IMGBLO" and (hdr["NY"], hdr["NX"], hdr["DP_SZ"]) == (3, 4, 16)
    start = int(hdr["Data_offset_2"])
    assert start == int(hdr["Data_offset_1"]) + 12
    second = start + 6 + 256
    assert (
        raw[second : second + 2] == b"\xaa\x55"
        and raw[second + 2 : second + 6] == b"\x01\x00\x00\x00"
    )
    assert raw[second + 6 : second + 6 + 256] == data[0, 1].tobytes()


def test_bad_input(ctx, tmp_path, rng):
    path = tmp_path / "bad.blo"
    path.write_bytes(b"MQ1," + bytes(600))
    with pytest.raises(DataSetError, match="not a NanoMegas blockfile"):
        ctx.load("blo", path=path)
    path.write_bytes(b"IMGBLO")
    with pytest.raises(DataSetError, match="not a NanoMegas blockfile"):
        ctx.load("blo", path=path)
    good, data, _ = write_blo_file(tmp_path, rng)
    raw = good.read_bytes()
    good.write_bytes(raw[:-100])
    with pytest.warns(TruncatedFileWarning, match="ends inside frame 11"):
        ds = ctx.load("blo", path=good, nav_shape=(11,))
    check_frames(ctx, ds, data.reshape(12, 16, 16)[:11])
    good.write_bytes(raw[:4200])
    with pytest.raises(DataSetError, match="less than one frame"):
        ctx.load("blo", path=good)
    with pytest.raises(ValueError, match="0..255"):
        write_blo(tmp_path / "x.blo", np.full((2, 2, 4, 4), 300))
