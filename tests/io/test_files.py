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


@pytest.mark.parametrize("header", [0, 16])
def test_scattered_take_allocates_only_the_frames_taken(tmp_path, header):
    # np.take copies a non-contiguous source whole first: an roi over a MIB or BLO file (frames
    # between headers) used to copy the whole file for every partition
    import tracemalloc

    n, sig = 512, (32, 32)
    frames = np.arange(n * 32 * 32, dtype=np.uint16).reshape((n,) + sig)
    rec = np.zeros(n, dtype=[("header", "u1", header), ("frame", "<u2", sig)])
    rec["frame"] = frames
    path = tmp_path / "f.bin"
    rec.tofile(path)
    ff = FrameFiles(
        [Segment(str(path), header, n, stride=rec.dtype.itemsize)], np.dtype("<u2"), sig
    )
    idx = np.array([3, 100, 101, 250, 511])
    ff.take(idx)  # maps the file
    tracemalloc.start()
    try:
        got = ff.take(idx)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(got, frames[idx])
    assert peak < 4 * got.nbytes + (64 << 10), f"{peak} bytes for {got.nbytes} bytes of frames"
