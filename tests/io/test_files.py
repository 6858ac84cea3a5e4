"""FrameFiles: the stored frames of one or more files, read by range or by index."""

import numpy as np
import pytest

from udfwidgets.io.files import FrameFiles, Segment


@pytest.fixture
def three_files(tmp_path):
    """Frames 0..29 over three files of 7, 13 and 10 frames, each frame 2x3 uint16 after a header."""
    frames = np.arange(30 * 6, dtype=np.uint16).reshape(30, 2, 3)
    segments = []
    for i, (lo, hi) in enumerate([(0, 7), (7, 20), (20, 30)]):
        rec = np.zeros(hi - lo, dtype=[("header", "u1", 4), ("frame", "<u2", (2, 3))])
        rec["header"] = 255
        rec["frame"] = frames[lo:hi]
        path = tmp_path / f"{i}.bin"
        rec.tofile(path)
        segments.append(Segment(str(path), 4, hi - lo, stride=rec.dtype.itemsize))
    return FrameFiles(segments, np.dtype("<u2"), (2, 3)), frames


@pytest.mark.parametrize(
    "idx",
    [
        [],
        [5],
        list(range(3, 6)),  # one run in one file
        list(range(5, 25)),  # one run over three files
        [i for i in range(30) if i != 19],  # all but one: two runs
        list(range(0, 30, 2)),  # scattered
        [0, 6, 7, 19, 20, 29],  # the files' first and last frames
        list(range(0, 8)) + list(range(12, 14)) + [29],  # runs and strays
    ],
)
def test_take_equals_numpy_indexing(three_files, idx):
    ff, frames = three_files
    idx = np.array(idx, dtype=np.int64)
    got = ff.take(idx)
    assert got.shape == (len(idx), 2, 3)
    np.testing.assert_array_equal(got, frames[idx])


def test_take_random_ascending_sets(three_files):
    ff, frames = three_files
    rng = np.random.default_rng(1)
    for _ in range(200):
        idx = np.flatnonzero(rng.random(30) < rng.random())
        np.testing.assert_array_equal(ff.take(idx), frames[idx])


def test_one_run_in_one_file_is_a_view_of_the_map(three_files):
    ff, frames = three_files
    got = ff.take(np.arange(8, 12))
    assert np.shares_memory(got, ff.read(7, 20))
    np.testing.assert_array_equal(got, frames[8:12])
