"""nav_shape / sync_offset: one table, the same answer for every file kind (npy and raw too)."""

import warnings

import numpy as np
import pytest
from format_cases import NAV, WRITERS, check_frames, shifted

from udfwidgets import DataSetError
from udfwidgets.io.geometry import MissingFramesWarning

# (nav_shape, sync_offset, frames missing) for a file of 12 frames
TABLE = [
    (None, 0, 0),  # the file's own scan shape (or the caller's, for kinds without one)
    ((12,), 0, 0),
    ((2, 6), 0, 0),
    ((2, 2, 3), 0, 0),  # three nav dims
    ((2, 4), 0, 0),  # fewer positions than frames: the rest is skipped
    ((4, 4), 0, 4),  # more positions than frames: zeros, with a warning
    ((3, 4), 2, 2),  # positive offset: skip the first frames
    ((2, 5), 2, 0),
    ((3, 4), -3, 3),  # negative offset: the scan started before the file
    ((1, 3), 11, 2),
]


@pytest.mark.parametrize("kind", sorted(WRITERS))
@pytest.mark.parametrize("nav_shape, sync_offset, missing", TABLE)
def test_geometry_table(ctx, tmp_path, rng, kind, nav_shape, sync_offset, missing):
    path, data, kwargs = WRITERS[kind](tmp_path, rng)
    kwargs = dict(kwargs)
    if nav_shape is not None:
        kwargs["nav_shape"] = nav_shape
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = ctx.load(kind, path=path, sync_offset=sync_offset, **kwargs)
    warned = [w for w in caught if issubclass(w.category, MissingFramesWarning)]
    if missing:
        assert len(warned) == 1 and f" {missing} of " in str(warned[0].message)
    else:
        assert not warned
    nav = nav_shape or kwargs.get("nav_shape") or NAV
    check_frames(ctx, ds, shifted(data, nav, sync_offset))


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_geometry_errors(ctx, tmp_path, rng, kind):
    path, data, kwargs = WRITERS[kind](tmp_path, rng)
    kwargs.pop("nav_shape", None)
    with pytest.raises(DataSetError, match="sync_offset=12 leaves no frame"):
        ctx.load(kind, path=path, sync_offset=12, **kwargs)
    with pytest.raises(DataSetError, match="nav_shape must be a tuple of positive integers"):
        ctx.load(kind, path=path, nav_shape=(0, 4), **kwargs)
    with pytest.raises(DataSetError, match="4 (navigation )?dimensions; 1 to 3 are supported"):
        ctx.load(kind, path=path, nav_shape=(1, 2, 2, 3), **kwargs)


@pytest.mark.parametrize("kind", ["npy", "raw"])
def test_npy_raw_every_executor(any_ctx, tmp_path, rng, kind):
    path, data, kwargs = WRITERS[kind](tmp_path, rng)
    ds = any_ctx.load(kind, path=path, **kwargs)
    check_frames(any_ctx, ds, data)
    kwargs["nav_shape"] = (2, 5)
    ds = any_ctx.load(kind, path=path, sync_offset=1, **kwargs)
    check_frames(any_ctx, ds, shifted(data, (2, 5), 1))


def test_npy_1d_signal(ctx, tmp_path, rng):
    data = rng.integers(0, 9, (5, 6, 11)).astype(np.int32)
    np.save(tmp_path / "s.npy", data)
    ds = ctx.load("npy", path=tmp_path / "s.npy", sig_dims=1, nav_shape=(6, 5))
    assert ds.shape == (6, 5, 11)
    part = ds.get_partitions(1)[0]
    np.testing.assert_array_equal(part.read(0, 30), data.reshape(30, 11))
