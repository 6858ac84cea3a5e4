"""Our bitshuffle-LZ4 reader of HDF5 chunks (udfwidgets.io.bitshuffle) against NumPy, and its fallbacks."""

from __future__ import annotations

import os

import numpy as np
import pytest
from format_cases import picked

from udfwidgets.io import bitshuffle, chunkread
from udfwidgets.io.dataset import DataSetError
from udfwidgets.io.hdf5 import HDF5DataSet, open_file, release_files, write_hdf5
from udfwidgets.udf.sum import SumUDF

h5py = pytest.importorskip("h5py")
hdf5plugin = pytest.importorskip("hdf5plugin")


@pytest.fixture(autouse=True)
def _ours(monkeypatch):
    monkeypatch.delenv("UDFWIDGETS_BITSHUFFLE", raising=False)
    assert bitshuffle.bitshuffle_lib() is not None


def make(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape).astype(dtype)
    return (rng.poisson(0.7, size=shape) * rng.integers(1, 120, size=shape)).astype(dtype)


def write(path, data, chunks, nelems=0, **kwargs):
    """``data`` bitshuffle-LZ4 compressed, blocks of ``nelems`` elements (0: the filter's choice)."""
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "data",
            data=data,
            chunks=chunks,
            **hdf5plugin.Bitshuffle(nelems=nelems, cname="lz4"),
            **kwargs,
        )
    return str(path)


def uses_ours(ds) -> bool:
    dset = open_file(ds.path)[ds.ds_path]
    return bitshuffle.bitshuffle_reader(ds.path, ds.ds_path, dset, len(ds.file_nav)) is not None


# (shape, dtype, chunks, nelems): one and many frames per chunk, edge chunks, frames whose
# element count is not a multiple of 8 (a raw tail after the last block), blocks smaller than a
# frame and larger than a chunk, 1 to 8 byte elements, big-endian data
VARIANTS = [
    ((8, 6, 16, 16), "uint16", (1, 6, 16, 16), 0),
    ((8, 6, 16, 16), "uint16", (1, 1, 16, 16), 0),
    ((5, 6, 8, 8), "uint16", (2, 4, 8, 8), 0),
    ((5, 6, 7, 9), "float32", (1, 3, 7, 9), 0),  # 189 elements a chunk: 5 in the raw tail
    ((5, 6, 7, 9), "uint8", (2, 2, 7, 9), 16),  # blocks of 16 elements, frames of 63
    ((13, 32, 32), "uint32", (4, 32, 32), 256),
    ((13, 32, 32), "int16", (4, 32, 32), 8),
    ((3, 4, 12, 12), "float64", (1, 4, 12, 12), 0),
    ((6, 5, 16, 16), ">u2", (1, 5, 16, 16), 64),
    ((4, 5, 24, 24), "uint16", (2, 5, 24, 24), 65536),  # one block larger than the chunk
]


@pytest.mark.parametrize("shape, dtype, chunks, nelems", VARIANTS)
def test_variants_frame_exact(tmp_path, ctx, shape, dtype, chunks, nelems):
    data = make(shape, dtype)
    p = write(tmp_path / "b.h5", data, chunks, nelems)
    ds = ctx.load("hdf5", path=p)
    assert uses_ours(ds)
    before = chunkread.CHUNK_READS["chunks"]
    np.testing.assert_array_equal(picked(ctx, ds), data)
    assert chunkread.CHUNK_READS["chunks"] > before  # the frames came through our reader
    sig = shape[-2:]
    flat = data.reshape((-1,) + sig)
    rng = np.random.default_rng(1)
    for n_parts in (None, 1, 3, 7):
        for part in HDF5DataSet(p, num_partitions=n_parts).get_partitions(2):
            np.testing.assert_array_equal(
                part.read(part.start, part.stop), flat[part.start : part.stop]
            )
            idx = np.unique(rng.integers(part.start, part.stop, size=3))
            blocks = bitshuffle.BLOCK_READS["blocks"]
            np.testing.assert_array_equal(part.take(idx), flat[idx])
            np.testing.assert_array_equal(part.take(idx[:1]), flat[idx[:1]])
            if int(np.prod(chunks[:-2])) > 2:  # single frames of a chunk: decoded by blocks
                assert bitshuffle.BLOCK_READS["blocks"] > blocks
    roi = rng.random(shape[:-2]) < 0.2
    roi.flat[-1] = True
    np.testing.assert_array_equal(picked(ctx, ds, roi=roi), data[roi])


@pytest.mark.parametrize("num_partitions", [None, 1, 3])
def test_every_executor_sum_and_roi(tmp_path, any_ctx, num_partitions):
    data = make((10, 8, 16, 16), "uint16", seed=3)
    p = write(tmp_path / "b.h5", data, (1, 8, 16, 16), nelems=64)
    ds = any_ctx.load("hdf5", path=p, num_partitions=num_partitions)
    assert uses_ours(ds)
    got = any_ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data
    np.testing.assert_allclose(got, data.sum(axis=(0, 1), dtype=np.float64), rtol=1e-6)
    roi = np.zeros((10, 8), bool)
    roi[1, 2] = roi[5, 0] = roi[9, 7] = roi[9, 4] = True
    np.testing.assert_array_equal(picked(any_ctx, ds, roi=roi), data[roi])
    got = any_ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi)["intensity"].data
    np.testing.assert_allclose(got, data[roi].sum(axis=0, dtype=np.float64), rtol=1e-6)


def test_a_sparse_roi_decodes_only_the_blocks_of_its_frames(tmp_path, ctx):
    # frames of 32x32 uint16 = 2 KiB; blocks of 256 elements = 512 bytes: 4 blocks a frame,
    # 64 blocks a chunk of 16 frames
    data = make((4, 64, 32, 32), "uint16", seed=4)
    p = write(tmp_path / "b.h5", data, (1, 16, 32, 32), nelems=256)
    roi = np.zeros((4, 64), bool)
    roi[0, 3] = roi[1, 17] = roi[1, 18] = roi[3, 63] = True
    ds = ctx.load("hdf5", path=p)
    chunks, blocks = chunkread.CHUNK_READS["chunks"], bitshuffle.BLOCK_READS["blocks"]
    np.testing.assert_array_equal(picked(ctx, ds, roi=roi), data[roi])
    assert chunkread.CHUNK_READS["chunks"] == chunks  # no chunk decoded whole
    assert bitshuffle.BLOCK_READS["blocks"] - blocks == 4 * 4  # 4 frames of 4 blocks
    # a dense roi in one chunk decodes that chunk whole, once
    roi[2, 16:30] = True
    chunks = chunkread.CHUNK_READS["chunks"]
    np.testing.assert_array_equal(picked(ctx, ds, roi=roi), data[roi])
    assert chunkread.CHUNK_READS["chunks"] - chunks == 1


def test_unwritten_and_unfiltered_chunks(tmp_path, ctx):
    data = make((4, 6, 8, 8), "uint16", seed=8)
    p = tmp_path / "odd.h5"
    with h5py.File(p, "w") as f:
        d = f.create_dataset(
            "data",
            shape=data.shape,
            dtype=data.dtype,
            chunks=(1, 3, 8, 8),
            fillvalue=7,
            **hdf5plugin.Bitshuffle(nelems=0, cname="lz4"),
        )
        d[0] = data[0]
        d[2] = data[2]
        d.id.write_direct_chunk((3, 3, 0, 0), data[3, 3:6].tobytes(), filter_mask=1)
    want = np.full_like(data, 7)
    want[0], want[2] = data[0], data[2]
    want[3, 3:6] = data[3, 3:6]
    ds = ctx.load("hdf5", path=str(p))
    assert uses_ours(ds)
    np.testing.assert_array_equal(picked(ctx, ds), want)
    roi = np.zeros((4, 6), bool)
    roi[1, 1] = roi[3, 4] = roi[2, 0] = True
    np.testing.assert_array_equal(picked(ctx, ds, roi=roi), want[roi])
    np.testing.assert_array_equal(h5py.File(p, "r")["data"][()], want)


def _damage(p, coord, where, payload):
    info = open_file(p)["data"].id.get_chunk_info_by_coord(coord)
    release_files()
    chunkread.release_tables()
    with open(p, "r+b") as fh:
        fh.seek(info.byte_offset + where(info.size))
        fh.write(payload)


@pytest.mark.parametrize(
    "where, payload",
    [
        (lambda size: 12, b"\x7f\xff\xff\xff"),  # first block's size: 2 GiB, past the file's end
        (lambda size: 8, b"\x00\x00\x00\x07"),  # block size not a multiple of 8 elements
        (lambda size: 0, b"\x00" * 8),  # uncompressed size 0
        (lambda size: size // 2, b"\xff" * 16),  # LZ4 data garbled
    ],
    ids=["block-size", "header-block", "header-total", "lz4-data"],
)
@pytest.mark.parametrize("roi", [False, True])
def test_damaged_chunk_is_a_clear_error(tmp_path, ctx, where, payload, roi):
    data = make((4, 8, 32, 32), "uint16", seed=9)
    p = write(tmp_path / "bad.h5", data, (1, 8, 32, 32), nelems=256)
    _damage(p, (2, 0, 0, 0), where, payload)
    ds = ctx.load("hdf5", path=p)
    mask = np.zeros((4, 8), bool)
    mask[2, 5] = True  # one frame of the damaged chunk: decoded by blocks
    with pytest.raises(DataSetError, match=r"bad\.h5.*damaged"):
        ctx.run_udf(dataset=ds, udf=SumUDF(), roi=mask if roi else None)
    # the frames of other chunks still read
    mask[:] = False
    mask[1, 3] = True
    np.testing.assert_array_equal(picked(ctx, ds, roi=mask), data[mask])


def test_zstd_and_other_pipelines_stay_with_h5py(tmp_path, ctx):
    data = make((4, 6, 8, 8), "uint16")
    p = tmp_path / "z.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset(
            "data", data=data, chunks=(1, 6, 8, 8), **hdf5plugin.Bitshuffle(nelems=0, cname="zstd")
        )
    ds = ctx.load("hdf5", path=str(p))
    assert not uses_ours(ds)
    np.testing.assert_array_equal(picked(ctx, ds), data)
    q = write_hdf5(tmp_path / "s.h5", data, chunks=(1, 6, 4, 8), compression="bitshuffle-lz4")
    ds = ctx.load("hdf5", path=q)  # chunks split the frame
    assert not uses_ours(ds)
    np.testing.assert_array_equal(picked(ctx, ds), data)


def test_fallback_when_turned_off(tmp_path, ctx, monkeypatch):
    data = make((6, 6, 8, 8), "uint16")
    p = write(tmp_path / "b.h5", data, (1, 6, 8, 8))
    monkeypatch.setenv("UDFWIDGETS_BITSHUFFLE", "h5py")
    assert bitshuffle.bitshuffle_lib() is None
    ds = ctx.load("hdf5", path=p)
    assert not uses_ours(ds)
    before = chunkread.CHUNK_READS["chunks"], bitshuffle.BLOCK_READS["blocks"]
    np.testing.assert_array_equal(picked(ctx, ds), data)
    roi = np.zeros((6, 6), bool)
    roi[2, 3] = True
    np.testing.assert_array_equal(picked(ctx, ds, roi=roi), data[roi])
    assert (chunkread.CHUNK_READS["chunks"], bitshuffle.BLOCK_READS["blocks"]) == before


def test_a_filter_library_without_the_functions_is_not_used(tmp_path, monkeypatch):
    # an hdf5plugin build whose bitshuffle library does not export the decoder: h5py reads
    folder = tmp_path / "plugins"
    folder.mkdir()
    other = os.path.join(os.path.dirname(hdf5plugin.__file__), "plugins", "libh5lz4.so")
    if not os.path.exists(other):
        pytest.skip("needs hdf5plugin's LZ4 filter library as a stand-in")
    os.symlink(other, folder / "libh5bshuf.so")
    monkeypatch.setattr(hdf5plugin, "PLUGIN_PATH", str(folder))
    monkeypatch.setattr(bitshuffle, "_LIB", [])
    assert bitshuffle.bitshuffle_lib() is None
    data = make((6, 6, 8, 8), "uint16")
    p = write(tmp_path / "b.h5", data, (1, 6, 8, 8))
    np.testing.assert_array_equal(
        HDF5DataSet(p).get_partitions(1)[0].read(0, 36), data.reshape(36, 8, 8)
    )
