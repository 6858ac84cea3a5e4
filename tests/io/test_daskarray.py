"""ctx.load("dask"): partitions follow the chunks, computed in the workers, never whole."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest
from format_cases import picked

from udfwidgets.io.daskarray import DaskDataSet
from udfwidgets.io.dataset import DataSetError
from udfwidgets.udf.sum import SumUDF

da = pytest.importorskip("dask.array")


def make(shape, dtype="uint16", seed=0):
    return np.random.default_rng(seed).integers(0, 1000, size=shape).astype(dtype)


@pytest.mark.parametrize(
    "shape, chunks",
    [
        ((6, 5, 8, 8), (2, 5, 8, 8)),
        ((6, 5, 8, 8), (3, 2, 8, 8)),
        ((6, 5, 8, 8), (1, 5, 4, 4)),
        ((12, 8, 8), (5, 8, 8)),
        ((2, 3, 4, 6, 6), (1, 3, 2, 6, 3)),
    ],
)
def test_chunkings_read_frame_exact(ctx, shape, chunks):
    data = make(shape)
    ds = ctx.load("dask", array=da.from_array(data, chunks=chunks))
    np.testing.assert_array_equal(picked(ctx, ds), data)
    roi = np.random.default_rng(2).random(shape[:-2]) < 0.4
    roi.flat[0] = True
    np.testing.assert_array_equal(picked(ctx, ds, roi=roi), data[roi])


def test_partitions_follow_chunks_and_merge_small_ones():
    arr = da.zeros((32, 8, 16, 16), dtype="u2", chunks=(2, 8, 16, 16))
    ds = DaskDataSet(arr)
    bounds = ds.partition_bounds(num_workers=2)
    assert len(bounds) == 4 and all(a % 16 == 0 for a, _ in bounds)
    assert DaskDataSet(arr, num_partitions=7).partition_bounds(1)[1][0] % 16 == 0


def test_each_partition_computes_only_its_own_chunks(ctx):
    computed = []
    lock = threading.Lock()

    def block(block_id=None):
        with lock:
            computed.append(block_id[0])
        return np.full((2, 4, 8, 8), block_id[0], dtype=np.uint16)

    arr = da.map_blocks(block, dtype=np.uint16, chunks=((2,) * 8, (4,), (8,), (8,)))
    ds = DaskDataSet(arr, num_partitions=4)
    parts = ds.get_partitions(2)
    out = parts[1].read(parts[1].start, parts[1].stop)
    assert sorted(computed) == [2, 3]
    assert out[:, 0, 0].tolist() == [2] * 8 + [3] * 8
    res = ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data
    assert res[0, 0] == sum(2 * 4 * k for k in range(8))


def test_every_executor_with_geometry(any_ctx):
    data = make((6, 5, 8, 8), seed=7)
    arr = da.from_array(data, chunks=(2, 5, 8, 8))
    ds = any_ctx.load("dask", array=arr, nav_shape=(4, 7), sync_offset=1)
    flat = data.reshape(30, 8, 8)
    ref = np.zeros((28, 8, 8), data.dtype)
    ref[:] = flat[1:29]
    got = any_ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data
    np.testing.assert_allclose(got, ref.sum(axis=0), rtol=1e-6)
    roi = np.zeros((4, 7), bool)
    roi[0, 0] = roi[3, 6] = True
    np.testing.assert_array_equal(picked(any_ctx, ds, roi=roi), ref.reshape(4, 7, 8, 8)[roi])


def test_partition_pickles_its_own_graph_only():
    arr = da.from_array(make((64, 4, 16, 16)), chunks=(4, 4, 16, 16))
    ds = DaskDataSet(arr, num_partitions=16)
    whole = len(pickle.dumps(arr))
    part = len(pickle.dumps(ds.get_partitions(1)[0]))
    assert part < whole / 8


def test_unpicklable_graph_is_a_clear_error():
    lock = threading.Lock()  # stands in for an open h5py dataset

    def f(x, lock=lock):
        return x

    arr = da.zeros((4, 4, 8, 8), chunks=(2, 4, 8, 8)).map_blocks(f)
    part = DaskDataSet(arr).get_partitions(1)[0]
    with pytest.raises(DataSetError, match="executor='inline'"):
        pickle.dumps(part)


def test_not_a_dask_array():
    with pytest.raises(DataSetError, match="needs a dask array.*memory"):
        DaskDataSet(np.zeros((2, 2, 4, 4)))
    with pytest.raises(DataSetError, match="1 to 3"):
        DaskDataSet(da.zeros((2, 2, 2, 2, 4, 4)))
    r = repr(DaskDataSet(da.zeros((2, 3, 4, 4), chunks=(1, 3, 4, 4))))
    assert "kind='dask'" in r and "chunks=(1, 3, 4, 4)" in r
