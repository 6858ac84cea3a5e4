"""EMPAD .xml + .raw: the two metadata rows dropped, scan shape from the .xml, bad input."""

import numpy as np
import pytest
from format_cases import check_frames, write_empad_file

from udfwidgets import DataSetError
from udfwidgets.data import write_empad


def test_every_executor_and_auto(any_ctx, tmp_path, rng):
    path, data, _ = write_empad_file(tmp_path, rng)
    ds = any_ctx.load("auto", path=path)
    assert "EMPADDataSet kind='empad'" in repr(ds) and ds.metadata["scan_shape"] == (3, 4)
    check_frames(any_ctx, ds, data)


def test_metadata_rows_are_dropped(ctx, tmp_path, rng):
    """Frames on disk are 130 x 128 float32; rows 128 and 129 are not part of the frame."""
    path, data, _ = write_empad_file(tmp_path, rng)
    raw = np.fromfile(tmp_path / "scan.raw", "<f4").reshape(12, 130, 128)
    raw[:, 128:] = 12345.0  # metadata rows with values that must not show up
    raw.tofile(tmp_path / "scan.raw")
    np.testing.assert_array_equal(raw[:, :128], data.reshape(12, 128, 128))
    check_frames(ctx, ctx.load("empad", path=path), data)


def test_open_by_raw_file(ctx, tmp_path, rng):
    path, data, _ = write_empad_file(tmp_path, rng)
    check_frames(ctx, ctx.load("empad", path=tmp_path / "scan.raw"), data)


def test_bad_input(ctx, tmp_path, rng):
    path, data, _ = write_empad_file(tmp_path, rng)
    (tmp_path / "scan.raw").rename(tmp_path / "elsewhere.raw")
    with pytest.raises(
        DataSetError, match="names the raw file 'scan.raw', which is not next to it"
    ):
        ctx.load("empad", path=path)
    with pytest.raises(DataSetError, match="open its .xml description instead"):
        ctx.load("empad", path=tmp_path / "elsewhere.raw")
    bad = tmp_path / "bad.xml"
    bad.write_text("<root><nothing/></root>")
    with pytest.raises(DataSetError, match="names no raw file"):
        ctx.load("empad", path=bad)
    bad.write_text("not xml at all <")
    with pytest.raises(DataSetError, match="not a readable EMPAD .xml"):
        ctx.load("empad", path=bad)
    with pytest.raises(ValueError, match="EMPAD frames are 128 x 128"):
        write_empad(tmp_path / "x.xml", np.zeros((2, 2, 64, 64)))
