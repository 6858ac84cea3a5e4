"""Chunk-aligned partition bounds and hyperslab pieces (property-based)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from udfwidgets.io.chunked import (
    aligned_bounds,
    chunk_row_frames,
    flat_pieces,
    read_flat,
    take_by_chunk,
)


@settings(max_examples=300, deadline=None)
@given(
    n_frames=st.integers(1, 400),
    extra=st.integers(-50, 50),
    row=st.integers(1, 64),
    frame_bytes=st.sampled_from([1, 1 << 10, 1 << 20, 1 << 24]),
    workers=st.integers(1, 4),
    parts=st.one_of(st.none(), st.integers(1, 40)),
    data=st.data(),
)
def test_aligned_bounds_cover_the_scan_on_chunk_rows(
    n_frames, extra, row, frame_bytes, workers, parts, data
):
    file_frames = max(1, n_frames + extra)
    sync = data.draw(st.integers(-(file_frames - 1), file_frames - 1))
    b = aligned_bounds(n_frames, file_frames, sync, row, frame_bytes, workers, parts)
    assert b[0][0] == 0 and b[-1][1] == n_frames
    assert all(a < z for a, z in b) and all(z == a2 for (_, z), (a2, _) in zip(b, b[1:]))
    n_rows = len({(i + sync) // row for i in range(n_frames)})
    splits_rows = row * frame_bytes > (512 << 20) or (parts is not None and parts > n_rows)
    if not splits_rows:
        assert all((a + sync) % row == 0 for a, _ in b[1:]), b
        if parts is not None:
            assert len(b) == min(parts, n_rows)


@given(n_frames=st.integers(1, 300), workers=st.integers(1, 4), compressed=st.booleans())
def test_spanning_chunks_make_few_large_partitions(n_frames, workers, compressed):
    b = aligned_bounds(n_frames, n_frames, 0, None, 8 << 20, workers, rereads_cost=compressed)
    assert b[0][0] == 0 and b[-1][1] == n_frames
    if compressed:
        assert len(b) == min(n_frames, max(workers, math.ceil(n_frames * 8 / 512)))


nav_shapes = st.lists(st.integers(1, 7), min_size=1, max_size=3).map(tuple)


@given(nav=nav_shapes, data=st.data())
def test_flat_pieces_are_the_flat_range(nav, data):
    n = math.prod(nav)
    lo = data.draw(st.integers(0, n))
    hi = data.draw(st.integers(lo, n))
    ref = np.arange(n).reshape(nav)
    got = np.concatenate([ref[s].ravel() for s, _ in flat_pieces(lo, hi, nav)] or [[]])
    assert got.tolist() == list(range(lo, hi))
    assert len(flat_pieces(lo, hi, nav)) <= max(1, 2 * len(nav) - 1)


@given(nav=nav_shapes, data=st.data())
def test_take_by_chunk_reads_each_chunk_once(nav, data):
    chunks = tuple(data.draw(st.integers(1, n)) for n in nav)
    n = math.prod(nav)
    idx = np.array(sorted(data.draw(st.sets(st.integers(0, n - 1), max_size=n))), dtype=np.int64)
    arr = np.arange(n * 2).reshape(nav + (2,))
    touched = []

    def rb(slices, out):
        for s, c in zip(slices, chunks):
            assert s.start // c == (s.stop - 1) // c or len(nav) == 1
        touched.append(slices)
        out[...] = arr[slices]

    got = take_by_chunk(rb, idx, nav, chunks, (2,), arr.dtype)
    assert got.reshape(-1, 2).tolist() == arr.reshape(-1, 2)[idx].tolist()
    if len(nav) > 1:
        ids = {tuple(int(s.start) // c for s, c in zip(sl, chunks)) for sl in touched}
        assert len(ids) == len(touched)

    def whole(slices, out):
        out[...] = arr[slices]

    flat = read_flat(whole, 0, n, nav, (2,), arr.dtype)
    assert flat.tolist() == arr.reshape(-1, 2).tolist()


def test_chunk_row_frames():
    assert chunk_row_frames((10,), (3,)) == 3
    assert chunk_row_frames((4, 6, 5), (2, 1, 1)) == 60
    assert chunk_row_frames((4, 6), (4, 2)) is None
