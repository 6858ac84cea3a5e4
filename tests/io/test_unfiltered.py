"""Our reader of chunked HDF5 datasets stored without filters (udfwidgets.io.unfiltered)."""

from __future__ import annotations

import numpy as np
import pytest
from format_cases import picked

from udfwidgets.io import chunkread, unfiltered
from udfwidgets.io.dataset import DataSetError
from udfwidgets.io.hdf5 import HDF5DataSet, open_file, release_files, write_hdf5
from udfwidgets.udf.sum import SumUDF

h5py = pytest.importorskip("h5py")


@pytest.fixture(autouse=True)
def _ours(monkeypatch):
    monkeypatch.delenv("UDFWIDGETS_UNFILTERED", raising=False)


def make(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape).astype(dtype)
    return rng.integers(0, 1000, size=shape).astype(dtype)


def uses_ours(ds) -> bool:
    dset = open_file(ds.path)[ds.ds_path]
    return unfiltered.unfiltered_reader(ds.path, ds.ds_path, dset, len(ds.file_nav)) is not None


VARIANTS = [
    ((8, 6, 8, 8), "uint16", (1, 6, 8, 8), 2),
    ((5, 6, 8, 8), "uint16", (2, 4, 8, 8), 2),  # edge chunks on both nav axes
    ((5, 6, 8, 8), ">u2", (3, 6, 8, 8), 2),
    ((5, 6, 7, 9), "float32", (5, 2, 7, 9), 2),
    ((13, 8, 8), "int32", (4, 8, 8), 2),
    ((2, 3, 4, 6, 6), "float64", (1, 2, 3, 6, 6), 2),
    ((4, 5, 16), "uint8", (2, 5, 16), 1),
]


@pytest.mark.parametrize("shape, dtype, chunks, sig_dims", VARIANTS)
def test_variants_frame_exact(tmp_path, ctx, shape, dtype, chunks, sig_dims):
    data = make(shape, dtype)
    p = write_hdf5(tmp_path / "u.h5", data, chunks=chunks, sig_dims=sig_dims)
    ds = ctx.load("hdf5", path=p, sig_dims=sig_dims)
    assert uses_ours(ds)
    before = chunkread.CHUNK_READS["chunks"]
    np.testing.assert_array_equal(picked(ctx, ds), data)
    assert chunkread.CHUNK_READS["chunks"] > before
    sig = shape[len(shape) - sig_dims :]
    flat = data.reshape((-1,) + sig)
    rng = np.random.default_rng(1)
    for n_parts in (None, 1, 3, 7):
        for part in HDF5DataSet(p, sig_dims=sig_dims, num_partitions=n_parts).get_partitions(2):
            np.testing.assert_array_equal(
                part.read(part.start, part.stop), flat[part.start : part.stop]
            )
            idx = np.unique(rng.integers(part.start, part.stop, size=5))
            np.testing.assert_array_equal(part.take(idx), flat[idx])
    roi = rng.random(shape[: len(shape) - sig_dims]) < 0.3
    roi.flat[-1] = True
    np.testing.assert_array_equal(picked(ctx, ds, roi=roi), data[roi])


@pytest.mark.parametrize("num_partitions", [None, 1, 3])
def test_every_executor_sum_and_roi(tmp_path, any_ctx, num_partitions):
    data = make((10, 6, 8, 8), "uint16", seed=3)
    p = write_hdf5(tmp_path / "u.h5", data, chunks=(1, 3, 8, 8))
    ds = any_ctx.load("hdf5", path=p, num_partitions=num_partitions)
    assert uses_ours(ds)
    got = any_ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data
    np.testing.assert_allclose(got, data.sum(axis=(0, 1), dtype=np.float64), rtol=1e-6)
    roi = np.zeros((10, 6), bool)
    roi[1, 2] = roi[5, 0] = roi[9, 5] = roi[9, 4] = True
    np.testing.assert_array_equal(picked(any_ctx, ds, roi=roi), data[roi])


def test_an_roi_reads_only_its_frames(tmp_path, monkeypatch):
    data = make((4, 16, 8, 8), "uint16", seed=4)
    p = write_hdf5(tmp_path / "u.h5", data, chunks=(1, 16, 8, 8))
    (part,) = HDF5DataSet(p, num_partitions=1).get_partitions(1)
    reads = []
    real = chunkread.ChunkTable.read_into

    def spy(self, off, size, dst):
        reads.append(size)
        return real(self, off, size, dst)

    monkeypatch.setattr(chunkread.ChunkTable, "read_into", spy)
    idx = np.array([3, 17, 18, 63])
    np.testing.assert_array_equal(part.take(idx), data.reshape(64, 8, 8)[idx])
    assert reads == [8 * 8 * 2] * 4  # one frame's bytes each, not whole chunks


def test_unwritten_chunks_read_as_the_fill_value(tmp_path, ctx):
    data = make((4, 6, 4, 4), "uint16", seed=8)
    p = tmp_path / "odd.h5"
    with h5py.File(p, "w") as f:
        d = f.create_dataset(
            "data", shape=data.shape, dtype=data.dtype, chunks=(1, 3, 4, 4), fillvalue=7
        )
        d[0] = data[0]
        d[2] = data[2]
    want = np.full_like(data, 7)
    want[0], want[2] = data[0], data[2]
    ds = ctx.load("hdf5", path=str(p))
    assert uses_ours(ds)
    np.testing.assert_array_equal(picked(ctx, ds), want)
    roi = np.zeros((4, 6), bool)
    roi[1, 1] = roi[2, 4] = True
    np.testing.assert_array_equal(picked(ctx, ds, roi=roi), want[roi])


@pytest.mark.parametrize("roi", [False, True])
def test_file_cut_short_is_a_clear_error(tmp_path, ctx, roi):
    data = make((4, 6, 16, 16), "uint16", seed=9)
    p = write_hdf5(tmp_path / "cut.h5", data, chunks=(1, 6, 16, 16))
    ds = ctx.load("hdf5", path=p)
    picked(ctx, ds)  # the chunk table is read while the file is whole
    last = open_file(p)["data"].id.get_chunk_info_by_coord((3, 0, 0, 0))
    release_files()
    with open(p, "r+b") as fh:
        fh.truncate(last.byte_offset + 100)
    mask = np.zeros((4, 6), bool)
    mask[3, 2] = True
    with pytest.raises(DataSetError, match=r"cut\.h5"):
        ctx.run_udf(dataset=ctx.load("hdf5", path=p), udf=SumUDF(), roi=mask if roi else None)


def test_turned_off_h5py_reads(tmp_path, ctx, monkeypatch):
    data = make((6, 6, 8, 8), "uint16")
    p = write_hdf5(tmp_path / "u.h5", data, chunks=(1, 6, 8, 8))
    monkeypatch.setenv("UDFWIDGETS_UNFILTERED", "h5py")
    chunkread.release_tables()
    ds = ctx.load("hdf5", path=p)
    assert not uses_ours(ds)
    before = chunkread.CHUNK_READS["chunks"]
    np.testing.assert_array_equal(picked(ctx, ds), data)
    assert chunkread.CHUNK_READS["chunks"] == before
    q = write_hdf5(tmp_path / "split.h5", data, chunks=(1, 6, 4, 8))  # chunks split the frame
    monkeypatch.delenv("UDFWIDGETS_UNFILTERED")
    assert not uses_ours(ctx.load("hdf5", path=q))
    np.testing.assert_array_equal(picked(ctx, ctx.load("hdf5", path=q)), data)


@pytest.mark.parametrize("read_run", [1, 3, 1 << 30])
def test_runs_of_chunks_read_together_frame_exact(tmp_path, monkeypatch, read_run):
    # chunks next to each other in the file and in the partition are read in one call, up to
    # _READ_RUN bytes (here: one chunk, three chunks, everything)
    data = make((6, 8, 8, 8), "uint16", seed=5)
    p = write_hdf5(tmp_path / "u.h5", data, chunks=(1, 2, 8, 8))
    chunk = 2 * 8 * 8 * 2
    monkeypatch.setattr(
        unfiltered, "_READ_RUN", read_run * chunk if read_run < 1 << 30 else read_run
    )
    calls = []
    real = chunkread.ChunkTable.read_into
    monkeypatch.setattr(
        chunkread.ChunkTable,
        "read_into",
        lambda self, o, n, d: calls.append(n) or real(self, o, n, d),
    )
    (part,) = HDF5DataSet(p, num_partitions=1).get_partitions(1)
    np.testing.assert_array_equal(part.read(0, 48), data.reshape(48, 8, 8))
    assert sum(calls) == data.nbytes and max(calls) <= min(read_run * chunk, data.nbytes)
    if read_run == 1 << 30:
        assert len(calls) == 1  # the whole file's chunks lie in order: one read
