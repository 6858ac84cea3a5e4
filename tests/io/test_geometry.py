"""nav_shape / sync_offset: one rule for every dataset kind (udfwidgets.io.geometry)."""

import numpy as np
import pytest

from udfwidgets.io.dataset import DataSetError
from udfwidgets.io.geometry import MissingFramesWarning, ScanGeometry, resolve

FILE = np.arange(10)[:, None] * np.ones((1, 3), dtype=np.int64)  # file frame k is all k


def reference(nav_frames, sync_offset):
    out = np.zeros((nav_frames, 3), dtype=np.int64)
    for i in range(nav_frames):
        k = i + sync_offset
        if 0 <= k < len(FILE):
            out[i] = FILE[k]
    return out


@pytest.mark.parametrize(
    "nav_frames, sync_offset, missing",
    [
        (10, 0, 0),
        (8, 2, 0),
        (10, 2, 2),
        (10, -3, 3),
        (12, 0, 2),
        (5, -2, 2),
        (4, 9, 3),
    ],
)
def test_read_and_take_match_the_reference(nav_frames, sync_offset, missing):
    with pytest.warns(MissingFramesWarning) if missing else _no_warning():
        g = resolve(len(FILE), nav_shape=(nav_frames,), sync_offset=sync_offset)
    assert g.missing == missing
    ref = reference(nav_frames, sync_offset)
    got = g.read(lambda lo, hi: FILE[lo:hi], 0, nav_frames, (3,), FILE.dtype)
    np.testing.assert_array_equal(got, ref)
    for a, b in [(0, 1), (1, nav_frames - 1), (nav_frames - 2, nav_frames)]:
        np.testing.assert_array_equal(
            g.read(lambda lo, hi: FILE[lo:hi], a, b, (3,), FILE.dtype), ref[a:b]
        )
    idx = np.arange(0, nav_frames, 2)
    np.testing.assert_array_equal(g.take(lambda i: FILE[i], idx, (3,), FILE.dtype), ref[idx])


def test_read_returns_the_file_view_when_nothing_is_missing():
    g = ScanGeometry((10,), 10, 0)
    assert np.shares_memory(g.read(lambda lo, hi: FILE[lo:hi], 2, 5, (3,), FILE.dtype), FILE)


def test_defaults_come_from_the_file():
    assert resolve(12).nav_shape == (12,)
    assert resolve(12, file_nav_shape=(3, 4)).nav_shape == (3, 4)
    assert resolve(12, nav_shape=(2, 6), file_nav_shape=(3, 4)).nav_shape == (2, 6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sync_offset=10), "sync_offset=10 leaves no frame"),
        (dict(sync_offset=-10), "between -9 and 9"),
        (dict(sync_offset=1.5), "must be an integer"),
        (dict(sync_offset=True), "must be an integer"),
        (dict(nav_shape=(0, 4)), "positive integers"),
        (dict(nav_shape=(2, 2, 2, 2)), "1 to 3 are supported"),
        (dict(nav_shape="ab"), "positive integers"),
    ],
)
def test_bad_geometry_is_a_clear_error(kwargs, match):
    with pytest.raises(DataSetError, match=match):
        resolve(10, **kwargs)


def test_warning_names_the_numbers():
    with pytest.warns(MissingFramesWarning, match=r"holds 10 frames.*2 of 12 scan positions"):
        resolve(10, nav_shape=(3, 4))


class _no_warning:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("error", MissingFramesWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)
