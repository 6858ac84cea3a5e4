"""TVIPS recordings: one file and a _000/_001 series, frame headers skipped, bad input."""

import numpy as np
import pytest
from format_cases import NAV, check_frames, write_tvips_file

from udfwidgets import DataSetError
from udfwidgets.data import write_tvips


def test_every_executor_and_auto(any_ctx, tmp_path, rng):
    path, data, kw = write_tvips_file(tmp_path, rng)
    ds = any_ctx.load("auto", path=path, **kw)
    assert "TVIPSDataSet kind='tvips'" in repr(ds) and "files=3" in repr(ds)
    check_frames(any_ctx, ds, data)


@pytest.mark.parametrize("per_file", [None, 1, 4, 12])
def test_series_splits(ctx, tmp_path, rng, per_file):
    data = rng.integers(0, 65536, NAV + (5, 6)).astype(np.uint16)
    write_tvips(tmp_path / "m_000.tvips", data, frames_per_file=per_file)
    check_frames(ctx, ctx.load("tvips", path=tmp_path / "m_000.tvips", nav_shape=NAV), data)


def test_bad_input(ctx, tmp_path, rng):
    path = tmp_path / "bad.tvips"
    path.write_bytes(bytes(1000))
    with pytest.raises(DataSetError, match="no TVIPS general header"):
        ctx.load("tvips", path=path)
    with pytest.raises(ValueError, match="_000.tvips"):
        write_tvips(tmp_path / "x.tvips", np.zeros((4, 4, 4)), frames_per_file=2)


def test_a_general_header_in_a_later_file_is_skipped(ctx, tmp_path, rng):
    data = rng.integers(0, 65536, NAV + (5, 6)).astype(np.uint16)
    write_tvips(tmp_path / "m_000.tvips", data, frames_per_file=6)
    first = (tmp_path / "m_000.tvips").read_bytes()
    second = tmp_path / "m_001.tvips"
    second.write_bytes(first[:256] + second.read_bytes())
    check_frames(ctx, ctx.load("tvips", path=tmp_path / "m_000.tvips", nav_shape=NAV), data)
