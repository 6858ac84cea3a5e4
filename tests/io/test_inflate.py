"""Our gzip reader of HDF5 chunks (udfwidgets.io.inflate) against NumPy, and its fallbacks."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from format_cases import picked

from udfwidgets.io import chunkread, inflate
from udfwidgets.io.dataset import DataSetError
from udfwidgets.io.geometry import MissingFramesWarning
from udfwidgets.io.hdf5 import HDF5DataSet, open_file, release_files, write_hdf5
from udfwidgets.udf.pick import PickUDF
from udfwidgets.udf.sum import SumUDF

h5py = pytest.importorskip("h5py")
pytest.importorskip("deflate")  # the formats extra (in [test]); its absence: test_fallback_*


@pytest.fixture(autouse=True)
def _ours(monkeypatch):
    monkeypatch.delenv("UDFWIDGETS_INFLATE", raising=False)
    assert inflate.libdeflate() is not None


def make(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape).astype(dtype)
    # mostly small counts with zeros, like detector frames (compresses, unlike pure noise)
    return (rng.poisson(0.7, size=shape) * rng.integers(1, 300, size=shape)).astype(dtype)


def uses_ours(ds) -> bool:
    dset = open_file(ds.path)[ds.ds_path]
    return inflate.gzip_reader(ds.path, ds.ds_path, dset, len(ds.file_nav)) is not None


# (shape, dtype, chunks, sig_dims): chunk grids that divide the scan and ones with partial
# edge chunks, 1 to 3 nav dims, big-endian and float data, 1-D signals
GZIP_VARIANTS = [
    ((8, 6, 8, 8), "uint16", (1, 6, 8, 8), 2),
    ((8, 6, 8, 8), "uint16", (1, 1, 8, 8), 2),
    ((5, 6, 8, 8), "uint16", (2, 4, 8, 8), 2),  # edge chunks on both nav axes
    ((5, 6, 8, 8), ">u2", (3, 6, 8, 8), 2),
    ((5, 6, 7, 9), "float32", (5, 2, 7, 9), 2),  # chunks span the first nav axis
    ((13, 8, 8), "int32", (4, 8, 8), 2),
    ((2, 3, 4, 6, 6), "float64", (1, 2, 3, 6, 6), 2),
    ((4, 5, 16), "uint8", (2, 5, 16), 1),
]


@pytest.mark.parametrize("shape, dtype, chunks, sig_dims", GZIP_VARIANTS)
def test_gzip_variants_frame_exact(tmp_path, ctx, shape, dtype, chunks, sig_dims):
    data = make(shape, dtype)
    p = write_hdf5(tmp_path / "g.h5", data, chunks=chunks, compression="gzip", sig_dims=sig_dims)
    ds = ctx.load("hdf5", path=p, sig_dims=sig_dims)
    assert uses_ours(ds)
    before = chunkread.CHUNK_READS["chunks"]
    np.testing.assert_array_equal(picked(ctx, ds), data)
    assert chunkread.CHUNK_READS["chunks"] > before  # the frames came through our reader
    sig = shape[len(shape) - sig_dims :]
    flat = data.reshape((-1,) + sig)
    rng = np.random.default_rng(1)
    for n_parts in (None, 1, 3, 7):
        parts = HDF5DataSet(p, sig_dims=sig_dims, num_partitions=n_parts).get_partitions(2)
        assert parts[0].start == 0 and parts[-1].stop == len(flat)
        for part in parts:
            np.testing.assert_array_equal(
                part.read(part.start, part.stop), flat[part.start : part.stop]
            )
            mid = (part.start + part.stop) // 2
            np.testing.assert_array_equal(part.read(mid, part.stop), flat[mid : part.stop])
            idx = np.unique(rng.integers(part.start, part.stop, size=5))
            np.testing.assert_array_equal(part.take(idx), flat[idx])
    roi = rng.random(shape[: len(shape) - sig_dims]) < 0.3
    roi.flat[-1] = True
    np.testing.assert_array_equal(picked(ctx, ds, roi=roi), data[roi])


@pytest.mark.parametrize("num_partitions", [None, 1, 3])
def test_every_executor_sum_and_roi(tmp_path, any_ctx, num_partitions):
    data = make((10, 6, 8, 8), "uint16", seed=3)
    p = write_hdf5(tmp_path / "g.h5", data, chunks=(1, 3, 8, 8), compression="gzip")
    ds = any_ctx.load("hdf5", path=p, num_partitions=num_partitions)
    assert uses_ours(ds)
    got = any_ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data
    np.testing.assert_allclose(got, data.sum(axis=(0, 1), dtype=np.float64), rtol=1e-6)
    roi = np.zeros((10, 6), bool)
    roi[1, 2] = roi[5, 0] = roi[9, 5] = roi[9, 4] = True
    np.testing.assert_array_equal(picked(any_ctx, ds, roi=roi), data[roi])
    got = any_ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi)["intensity"].data
    np.testing.assert_allclose(got, data[roi].sum(axis=0, dtype=np.float64), rtol=1e-6)


@pytest.mark.parametrize("sync_offset, nav_shape", [(5, None), (-3, None), (0, (7, 8))])
def test_geometry_through_our_reader(tmp_path, ctx, sync_offset, nav_shape):
    data = make((8, 6, 4, 4), "uint16", seed=5)
    p = write_hdf5(tmp_path / "g.h5", data, chunks=(1, 4, 4, 4), compression="gzip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingFramesWarning)
        ds = ctx.load("hdf5", path=p, sync_offset=sync_offset, nav_shape=nav_shape)
        got = picked(ctx, ds)
    flat = data.reshape(-1, 4, 4)
    n = math.prod(ds.shape.nav)
    want = np.zeros((n, 4, 4), np.uint16)
    for i in range(n):
        j = i + sync_offset
        if 0 <= j < len(flat):
            want[i] = flat[j]
    np.testing.assert_array_equal(got.reshape(n, 4, 4), want)


def _recording(monkeypatch):
    """Log the navigation coordinates of every chunk our readers decode whole."""
    log = []
    one, runs = chunkread.ChunkReader._chunk_into, chunkread.ChunkReader._runs_into

    def spy_one(self, at, dst):
        log.append(tuple(at))
        return one(self, at, dst)

    def spy_runs(self, offs, sizes, dsts, where, ks):
        log.extend(tuple(int(k[x]) for k, x in zip(ks, w)) for w in where)
        return runs(self, offs, sizes, dsts, where, ks)

    monkeypatch.setattr(chunkread.ChunkReader, "_chunk_into", spy_one)
    monkeypatch.setattr(chunkread.ChunkReader, "_runs_into", spy_runs)
    return log


@pytest.mark.parametrize(
    "shape, chunks, sync_offset",
    [
        ((16, 6, 4, 4), (2, 6, 4, 4), 0),
        ((16, 6, 4, 4), (4, 3, 4, 4), 5),
        ((40, 4, 4), (3, 4, 4), -2),
    ],
)
def test_each_chunk_is_decompressed_by_one_partition(
    tmp_path, monkeypatch, shape, chunks, sync_offset
):
    data = make(shape, "uint16")
    p = write_hdf5(tmp_path / "c.h5", data, chunks=chunks, compression="gzip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingFramesWarning)
        ds = HDF5DataSet(p, sync_offset=sync_offset)
    log = _recording(monkeypatch)
    owners: dict = {}
    for part in ds.get_partitions(num_workers=2):
        del log[:]
        part.read(part.start, part.stop)
        assert len(log) == len(set(log)), "a chunk decompressed twice in one partition"
        for c in log:
            assert c not in owners, f"chunk {c} read by partitions {owners[c]} and {part.index}"
            owners[c] = part.index


@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_roi_never_reads_a_chunk_without_a_selected_frame(tmp_path, monkeypatch, executor):
    from udfwidgets import Context

    data = make((16, 32, 4, 4), "uint16", seed=7)
    chunks = (1, 8, 4, 4)
    p = write_hdf5(tmp_path / "c.h5", data, chunks=chunks, compression="gzip")
    rng = np.random.default_rng(2)
    roi = rng.random((16, 32)) < 0.01
    roi[3, 9] = roi[3, 10] = roi[15, 31] = True
    needed = {(int(y) // 1, int(x) // 8) for y, x in zip(*np.nonzero(roi))}
    log = _recording(monkeypatch)
    with Context(executor=executor, n_jobs=None if executor == "inline" else 2) as ctx:
        ds = ctx.load("hdf5", path=p)
        got = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)["intensity"].data
    np.testing.assert_array_equal(got, data[roi])
    assert sorted(log) == sorted(needed)  # every needed chunk once, no other chunk


def test_unwritten_and_unfiltered_chunks(tmp_path, ctx):
    data = make((4, 6, 4, 4), "uint16", seed=8)
    p = tmp_path / "odd.h5"
    with h5py.File(p, "w") as f:
        d = f.create_dataset(
            "data",
            shape=data.shape,
            dtype=data.dtype,
            chunks=(1, 3, 4, 4),
            compression="gzip",
            fillvalue=7,
        )
        d[0] = data[0]
        d[2] = data[2]
        # chunk (3, 1) stored with the gzip filter skipped (filter mask bit 0)
        d.id.write_direct_chunk((3, 3, 0, 0), data[3, 3:6].tobytes(), filter_mask=1)
    want = np.full_like(data, 7)
    want[0], want[2] = data[0], data[2]
    want[3, 3:6] = data[3, 3:6]
    ds = ctx.load("hdf5", path=str(p))
    assert uses_ours(ds)
    np.testing.assert_array_equal(picked(ctx, ds), want)
    # h5py reads the same file the same way
    np.testing.assert_array_equal(h5py.File(p, "r")["data"][()], want)


@pytest.mark.parametrize("with_roi", [False, True])
def test_damaged_chunk_is_a_clear_error(tmp_path, any_ctx, with_roi):
    data = make((4, 6, 16, 16), "uint16", seed=9)
    p = write_hdf5(tmp_path / "bad.h5", data, chunks=(1, 3, 16, 16), compression="gzip")
    info = open_file(p)["data"].id.get_chunk_info_by_coord((2, 3, 0, 0))
    release_files()
    chunkread.release_tables()
    with open(p, "r+b") as fh:  # overwrite the middle of one compressed chunk
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(b"\xff" * 16)
    ds = any_ctx.load("hdf5", path=p)
    roi = None
    if with_roi:  # the damaged chunk's frames through take(), a good chunk's too
        roi = np.zeros((4, 6), bool)
        roi[2, 4] = roi[0, 1] = True
    # whole rows are read in runs of chunks (read_block), an roi chunk by chunk (take)
    with pytest.raises(
        DataSetError, match=r"bad\.h5.*chunk at navigation chunk \(2, 1\) is damaged"
    ):
        any_ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi)


def _mapped_kib(path) -> int:
    """Resident KiB of this process's memory maps of ``path`` (``/proc/self/smaps``)."""
    real = os.path.realpath(path)
    kib, inside = 0, False
    with open("/proc/self/smaps") as fh:
        for line in fh:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5 and ":" in head[3]:  # a mapping
                inside = len(head) >= 6 and head[5] == real
            elif inside and head and head[0] == "Rss:":
                kib += int(head[1])
    return kib


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs Linux /proc/self/smaps")
@pytest.mark.parametrize("compression", ["gzip", "bitshuffle-lz4"])
def test_the_compressed_file_is_not_kept_mapped(tmp_path, compression):
    # before: the chunk table held a memory map of the whole file, and every page read stayed
    # in the worker's resident size as long as the (cached) reader lived
    data = make((16, 16, 64, 64), "uint16", seed=12)
    p = write_hdf5(tmp_path / "m.h5", data, chunks=(1, 16, 64, 64), compression=compression)
    assert os.path.getsize(p) > 1 << 19  # many pages to map
    ds = HDF5DataSet(p)
    reader = chunkread.cached_reader(p, "/data", 2, lambda: open_file(p)["data"])
    assert reader is not None and reader.codec.lower().startswith(compression[:4])
    flat = data.reshape(-1, 64, 64)
    for part in ds.get_partitions(2):
        np.testing.assert_array_equal(
            part.read(part.start, part.stop), flat[part.start : part.stop]
        )
        np.testing.assert_array_equal(
            part.take(np.arange(part.start, part.stop, 7)), flat[part.start : part.stop : 7]
        )
    assert len(chunkread._TABLES) >= 1  # the reader is kept between runs ...
    assert _mapped_kib(p) == 0  # ... but not a map of the file


def _descending_file(tmp_path, data, chunks):
    """Chunks written last row first: file offsets descend along the scan."""
    p = tmp_path / "desc.h5"
    with h5py.File(p, "w") as f:
        d = f.create_dataset(
            "data", shape=data.shape, dtype=data.dtype, chunks=chunks, compression="gzip"
        )
        for r in range(data.shape[0] - 1, -1, -1):
            d[r] = data[r]
    return str(p)


@pytest.mark.parametrize("read_bytes, gap", [(1, 0), (3000, 0), (20_000, 4096), (1 << 20, 0)])
@pytest.mark.parametrize("order", ["ascending", "descending"])
def test_runs_of_compressed_chunks_frame_exact(tmp_path, monkeypatch, read_bytes, gap, order):
    # runs of one chunk, a few chunks, and whole rows; chunks in file order and reversed
    monkeypatch.setattr(chunkread, "_READ_BYTES", read_bytes)
    monkeypatch.setattr(chunkread, "_READ_GAP", gap)
    data = make((7, 10, 16, 16), "uint16", seed=13)
    chunks = (2, 2, 16, 16)
    if order == "ascending":
        p = write_hdf5(tmp_path / "asc.h5", data, chunks=chunks, compression="gzip")
    else:
        p = _descending_file(tmp_path, data, chunks)
    dset = open_file(p)["data"]
    reader = inflate.gzip_reader(p, "/data", dset, 2)
    assert reader is not None
    offs = reader.table.offsets
    assert (np.diff(offs[:, 0]) > 0).all() == (order == "ascending")
    rng = np.random.default_rng(4)
    for y0, y1, x0, x1 in [(0, 7, 0, 10), (2, 6, 0, 10), (1, 4, 2, 8), (0, 2, 0, 4), (5, 7, 3, 10)]:
        out = np.full((y1 - y0, x1 - x0, 16, 16), 9999, np.uint16)
        reader.read_block((slice(y0, y1), slice(x0, x1)), out)
        np.testing.assert_array_equal(out, data[y0:y1, x0:x1])
    # a block inside a larger, not C-contiguous out (the per-chunk path)
    big = np.zeros((7, 12, 16, 16), np.uint16)
    reader.read_block((slice(0, 7), slice(0, 10)), big[:, 1:11])
    np.testing.assert_array_equal(big[:, 1:11], data)
    idx = np.unique(rng.integers(0, 70, size=15))
    got = np.empty((len(idx), 16, 16), np.uint16)
    reader.take(idx, got)
    np.testing.assert_array_equal(got, data.reshape(-1, 16, 16)[idx])


def test_reading_without_preadv(tmp_path, monkeypatch, threads_ctx):
    # where os.preadv is missing (Windows): seek and read under the table's lock, from threads
    monkeypatch.setattr(chunkread, "_PREADV", None)
    data = make((9, 8, 16, 16), "uint16", seed=14)
    p = write_hdf5(tmp_path / "np.h5", data, chunks=(1, 4, 16, 16), compression="gzip")
    flat = data.reshape(-1, 16, 16)
    for part in HDF5DataSet(p, num_partitions=3).get_partitions(2):
        np.testing.assert_array_equal(
            part.read(part.start, part.stop), flat[part.start : part.stop]
        )
    ds = threads_ctx.load("hdf5", path=p, num_partitions=4)
    got = threads_ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data
    np.testing.assert_allclose(got, data.sum(axis=(0, 1), dtype=np.float64), rtol=1e-6)


@pytest.mark.parametrize("preadv", [True, False])
def test_file_cut_short_after_its_chunk_table_was_read(tmp_path, monkeypatch, preadv):
    if not preadv:
        monkeypatch.setattr(chunkread, "_PREADV", None)
    data = make((6, 6, 16, 16), "uint16", seed=15)
    p = write_hdf5(tmp_path / "cut.h5", data, chunks=(1, 3, 16, 16), compression="gzip")
    reader = inflate.gzip_reader(p, "/data", open_file(p)["data"], 2)
    out = np.empty((6, 6, 16, 16), np.uint16)
    reader.read_block((slice(0, 6), slice(0, 6)), out)
    np.testing.assert_array_equal(out, data)
    last = int(reader.table.offsets.max())
    with open(p, "r+b") as fh:  # the last chunk loses its second half
        fh.truncate(last + int(reader.table.sizes.flat[reader.table.offsets.argmax()]) // 2)
    with pytest.raises(DataSetError, match=r"cut\.h5.*truncated.*copy the file again"):
        reader.read_block((slice(0, 6), slice(0, 6)), out)
    idx = np.array([int(reader.table.offsets.argmax()) * 3])  # a frame of that chunk
    with pytest.raises(DataSetError, match=r"cut\.h5.*truncated"):
        reader.take(idx, np.empty((1, 16, 16), np.uint16))
    release_files()
    chunkread.release_tables()
    with pytest.raises(DataSetError, match=r"cut\.h5.*truncated"):  # opened again: refused
        inflate.gzip_reader(p, "/data", open_file(p)["data"], 2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"compression": "lzf", "chunks": (1, 6, 8, 8)},
        {"compression": "gzip", "chunks": (1, 6, 4, 8)},  # chunks split the frame
    ],
)
def test_other_pipelines_stay_with_h5py(tmp_path, ctx, kwargs):
    data = make((4, 6, 8, 8), "uint16")
    p = write_hdf5(tmp_path / "o.h5", data, **kwargs)
    ds = ctx.load("hdf5", path=p)
    assert not uses_ours(ds)
    np.testing.assert_array_equal(picked(ctx, ds), data)


def test_shuffle_and_fletcher32_stay_with_h5py(tmp_path, ctx):
    data = make((4, 6, 8, 8), "uint16")
    p = tmp_path / "s.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset(
            "data",
            data=data,
            chunks=(1, 6, 8, 8),
            compression="gzip",
            shuffle=True,
            fletcher32=True,
        )
    ds = ctx.load("hdf5", path=str(p))
    assert not uses_ours(ds)
    np.testing.assert_array_equal(picked(ctx, ds), data)


def test_fallback_when_turned_off(tmp_path, ctx, monkeypatch):
    data = make((6, 6, 8, 8), "uint16")
    p = write_hdf5(tmp_path / "g.h5", data, chunks=(1, 6, 8, 8), compression="gzip")
    monkeypatch.setenv("UDFWIDGETS_INFLATE", "h5py")
    assert inflate.libdeflate() is None
    ds = ctx.load("hdf5", path=p)
    assert not uses_ours(ds)
    before = chunkread.CHUNK_READS["chunks"]
    np.testing.assert_array_equal(picked(ctx, ds), data)
    assert chunkread.CHUNK_READS["chunks"] == before


def test_fallback_without_libdeflate_in_a_fresh_process(tmp_path):
    data = make((6, 6, 8, 8), "uint16")
    p = write_hdf5(tmp_path / "g.h5", data, chunks=(1, 6, 8, 8), compression="gzip")
    np.save(tmp_path / "want.npy", data)
    code = textwrap.dedent(
        f"""
        import ctypes.util, sys
        import numpy as np
        sys.modules["deflate"] = None  # as if the deflate package were not installed
        ctypes.util.find_library = lambda name: None  # and no system libdeflate
        from udfwidgets import Context
        from udfwidgets.io import chunkread, inflate
        from udfwidgets.udf.pick import PickUDF
        assert inflate.libdeflate() is None
        with Context(executor="inline") as ctx:
            ds = ctx.load("hdf5", path={str(p)!r})
            got = ctx.run_udf(dataset=ds, udf=PickUDF())["intensity"].data
        want = np.load({str(tmp_path / "want.npy")!r})
        assert np.array_equal(got.reshape(want.shape), want)
        assert chunkread.CHUNK_READS["chunks"] == 0
        print("ok")
        """
    )
    env = dict(os.environ)
    env.pop("UDFWIDGETS_INFLATE", None)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("executor_ctx", ["ctx", "processes_ctx"])
def test_decoder_h5py_reads_through_h5py(tmp_path, request, monkeypatch, executor_ctx):
    ctx = request.getfixturevalue(executor_ctx)
    data = make((6, 6, 8, 8), "uint16")
    p = write_hdf5(tmp_path / "g.h5", data, chunks=(1, 3, 8, 8), compression="gzip")
    ds = ctx.load("hdf5", path=p, decoder="h5py")
    log = _recording(monkeypatch)
    np.testing.assert_array_equal(picked(ctx, ds), data)
    assert log == []  # (inline: would have been recorded here)
    with pytest.raises(DataSetError, match="decoder='zlib'.*'auto'.*'h5py'"):
        ctx.load("hdf5", path=p, decoder="zlib")


def test_partial_chunks_kept_per_thread_are_bounded(tmp_path, monkeypatch):
    # chunks of 512 KiB; at most 1.5 MiB kept per thread, whatever is read
    monkeypatch.setattr(chunkread, "_KEEP_PARTIAL_BYTES", 3 << 19)  # 1.5 MiB: 3 chunks
    data = make((12, 4, 256, 256), "uint32", seed=11)
    p = write_hdf5(tmp_path / "big.h5", data, chunks=(1, 2, 256, 256), compression="gzip")
    ds = HDF5DataSet(p, num_partitions=5)
    flat = data.reshape(-1, 256, 256)
    rng = np.random.default_rng(3)
    for part in ds.get_partitions(2):
        idx = np.unique(rng.integers(part.start, part.stop, size=6))
        np.testing.assert_array_equal(part.take(idx), flat[idx])
        np.testing.assert_array_equal(
            part.read(part.start, part.stop), flat[part.start : part.stop]
        )
        kept = getattr(chunkread._PARTIAL, "kept", {})
        assert sum(a.nbytes for _, a in kept.values()) <= 3 << 19 and len(kept) <= 3
    chunkread.release_tables()
    assert not getattr(chunkread._PARTIAL, "kept", {})
