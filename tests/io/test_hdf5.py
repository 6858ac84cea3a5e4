"""ctx.load("hdf5"): files written by write_hdf5 in many variants, read frame-exact."""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from format_cases import picked

from udfwidgets import Context
from udfwidgets.io import load
from udfwidgets.io.dataset import DataSetError
from udfwidgets.io.files import release_maps
from udfwidgets.io.geometry import MissingFramesWarning
from udfwidgets.io.hdf5 import (
    _FILES,
    HDF5DataSet,
    chunk_row_frames,
    open_file,
    sniff,
    write_hdf5,
)
from udfwidgets.udf.sum import SumUDF

h5py = pytest.importorskip("h5py")


def make(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape).astype(dtype)
    return rng.integers(0, 1000, size=shape).astype(dtype)


# (shape, dtype, chunks, compression): 3-D to 5-D, contiguous, frame chunks, chunk rows,
# chunks spanning the whole first nav axis (also sig-split), sig-split rows, h5py's auto chunks
VARIANTS = [
    ((12, 8, 8), "uint16", None, None),
    ((5, 6, 8, 8), "float32", None, None),
    ((5, 6, 8, 8), ">u2", None, None),
    ((5, 6, 8, 8), "uint16", (1, 1, 8, 8), "bitshuffle-lz4"),
    ((5, 6, 8, 8), "uint16", (2, 6, 8, 8), "gzip"),
    ((5, 6, 8, 8), "int32", (2, 3, 8, 8), "lzf"),
    ((5, 6, 8, 8), "uint16", (5, 1, 4, 4), "bitshuffle-lz4"),
    ((5, 6, 8, 8), "float32", (5, 6, 4, 8), "zstd"),
    ((6, 5, 8, 8), "uint8", (2, 5, 4, 4), "lz4"),
    ((6, 5, 8, 8), "uint16", (5, 1, 8, 8), None),
    ((2, 3, 4, 6, 6), "uint16", (1, 3, 2, 6, 6), "blosc"),
    ((2, 3, 4, 6, 6), "float64", (2, 1, 4, 3, 6), "gzip"),
    ((12, 8, 8), "uint16", (4, 8, 8), "bitshuffle-lz4"),
    ((12, 8, 8), "float32", (12, 4, 4), "gzip"),
    ((5, 6, 8, 8), "uint16", True, None),
]


@pytest.mark.parametrize("shape, dtype, chunks, compression", VARIANTS)
def test_written_variants_read_frame_exact(tmp_path, ctx, shape, dtype, chunks, compression):
    data = make(shape, dtype)
    p = write_hdf5(tmp_path / "scan.h5", data, chunks=chunks, compression=compression)
    ds = ctx.load("hdf5", path=p)
    assert tuple(ds.shape) == shape and ds.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(picked(ctx, ds), data)
    flat = data.reshape((-1,) + shape[-2:])
    rng = np.random.default_rng(1)
    for n_parts in (None, 1, 3):
        ds2 = HDF5DataSet(p, num_partitions=n_parts)
        parts = ds2.get_partitions(num_workers=2)
        assert parts[0].start == 0 and parts[-1].stop == len(flat)
        for part in parts:
            np.testing.assert_array_equal(
                part.read(part.start, part.stop), flat[part.start : part.stop]
            )
            idx = np.unique(rng.integers(part.start, part.stop, size=4))
            np.testing.assert_array_equal(part.take(idx), flat[idx])
    roi = rng.random(shape[:-2]) < 0.3
    roi.flat[0] = True
    np.testing.assert_array_equal(picked(ctx, ds, roi=roi), data[roi])


def test_sig_dims_1(tmp_path, ctx):
    data = make((4, 5, 16), "float32")
    p = write_hdf5(tmp_path / "spec.h5", data, chunks=(2, 5, 16), compression="gzip", sig_dims=1)
    ds = ctx.load("hdf5", path=p, sig_dims=1)
    assert tuple(ds.shape.sig) == (16,)
    np.testing.assert_array_equal(picked(ctx, ds), data)


@pytest.mark.parametrize("compression", [None, "bitshuffle-lz4"])
def test_every_executor_sum_and_roi(tmp_path, any_ctx, compression):
    data = make((8, 6, 8, 8), "uint16", seed=3)
    p = write_hdf5(tmp_path / "scan.h5", data, chunks=(2, 6, 8, 8), compression=compression)
    ds = any_ctx.load("hdf5", path=p, num_partitions=3)
    got = any_ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data
    np.testing.assert_allclose(got, data.sum(axis=(0, 1), dtype=np.float64), rtol=1e-6)
    roi = np.zeros((8, 6), bool)
    roi[1, 2] = roi[5, 0] = roi[7, 5] = True
    np.testing.assert_array_equal(picked(any_ctx, ds, roi=roi), data[roi])


def test_every_executor_whole_nav_spanning_chunks(tmp_path, any_ctx):
    data = make((6, 5, 8, 8), "uint16", seed=4)
    p = write_hdf5(tmp_path / "span.h5", data, chunks=(6, 1, 4, 4), compression="bitshuffle-lz4")
    ds = any_ctx.load("hdf5", path=p)
    assert chunk_row_frames(ds.file_nav, ds.nav_chunks) is None
    np.testing.assert_array_equal(picked(any_ctx, ds), data)


# --- each chunk is read by one partition -------------------------------------------------
class RecordingDataset:
    """Wraps an h5py Dataset and records the nav part of each read_direct selection."""

    def __init__(self, dset, log):
        self._d, self._log = dset, log

    def read_direct(self, out, source_sel):
        self._log.append(source_sel)
        return self._d.read_direct(out, source_sel=source_sel)

    def __getattr__(self, name):
        return getattr(self._d, name)


def _chunks_touched(sel, chunks, nav_dims):
    ranges = []
    for s, c in zip(sel[:nav_dims], chunks[:nav_dims]):
        ranges.append(range(s.start // c, (s.stop - 1) // c + 1))
    out = {()}
    for r in ranges:
        out = {t + (i,) for t in out for i in r}
    return out


@pytest.mark.parametrize(
    "shape, chunks, sync_offset",
    [
        ((16, 6, 4, 4), (2, 6, 4, 4), 0),
        ((16, 6, 4, 4), (4, 3, 4, 4), 0),
        ((16, 6, 4, 4), (4, 3, 2, 4), 5),
        ((40, 4, 4), (3, 4, 4), -2),
    ],
)
def test_each_chunk_is_read_by_one_partition(tmp_path, monkeypatch, shape, chunks, sync_offset):
    import udfwidgets.io.hdf5 as mod

    # h5py's read path (tests/io/test_inflate.py checks our own gzip reader the same way)
    monkeypatch.setenv("UDFWIDGETS_INFLATE", "h5py")

    data = make(shape, "uint16")
    p = write_hdf5(tmp_path / "c.h5", data, chunks=chunks, compression="gzip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingFramesWarning)
        ds = HDF5DataSet(p, sync_offset=sync_offset, num_partitions=None)
    nav_dims = len(shape) - 2
    owners = {}
    real = mod._dataset
    for part in ds.get_partitions(num_workers=2):
        log = []
        monkeypatch.setattr(mod, "_dataset", lambda *a, _log=log: RecordingDataset(real(*a), _log))
        part.read(part.start, part.stop)
        touched = set()
        for sel in log:
            touched |= _chunks_touched(sel, chunks, nav_dims)
        for c in touched:
            assert c not in owners, f"chunk {c} read by partitions {owners[c]} and {part.index}"
            owners[c] = part.index
    grid = [math.ceil(n / c) for n, c in zip(shape[:nav_dims], chunks[:nav_dims])]
    assert len(owners) <= math.prod(grid)


def test_roi_reads_each_needed_chunk_once(tmp_path, monkeypatch):
    import udfwidgets.io.hdf5 as mod

    monkeypatch.setenv("UDFWIDGETS_INFLATE", "h5py")  # h5py's path; ours: test_inflate.py

    data = make((8, 8, 4, 4), "uint16")
    p = write_hdf5(tmp_path / "c.h5", data, chunks=(4, 4, 4, 4), compression="gzip")
    ds = HDF5DataSet(p, num_partitions=1)
    (part,) = ds.get_partitions(1)
    log = []
    real = mod._dataset
    monkeypatch.setattr(mod, "_dataset", lambda *a: RecordingDataset(real(*a), log))
    idx = np.array([0, 1, 9, 63])  # chunks (0, 0) twice, (0, 0), (1, 1)
    np.testing.assert_array_equal(part.take(idx), data.reshape(64, 4, 4)[idx])
    assert len(log) == 2


# --- layouts -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "layout, fmt, ds_path",
    [
        ("plain", "hdf5", "/data"),
        ("emd", "emd", "/4DSTEM_experiment/data/datacubes/datacube_0/data"),
        ("ncem", "ncem", "/data/scan/data"),
        ("hspy", "hspy", "/Experiments/__unnamed__/data"),
        ("nexus", "nexus", "/entry/data/data"),
    ],
)
def test_layouts_are_found_and_described(tmp_path, ctx, layout, fmt, ds_path):
    data = make((3, 4, 8, 8), "uint16")
    p = write_hdf5(
        tmp_path / "scan.h5", data, layout=layout, chunks=(1, 4, 8, 8), compression="gzip"
    )
    with h5py.File(p, "a") as f:  # a small 3-D dataset (a thumbnail) must not confuse the choice
        f.create_dataset("/thumbnail", data=np.zeros((4, 4, 3), np.uint8))
    ds = ctx.load("hdf5", path=p)
    assert ds.ds_path == ds_path
    assert ds.metadata["format"] == fmt
    assert ds.metadata["compression"] == "gzip" and ds.metadata["chunks"] == (1, 4, 8, 8)
    np.testing.assert_array_equal(picked(ctx, ds), data)
    if layout in ("emd", "ncem", "hspy", "nexus"):
        assert ds.metadata["scan_step"] == (1.0, 1.0)
        assert ds.metadata["pixel_size"] == (1.0, 1.0)


def test_py4dstem_emd1_layout_is_read(tmp_path, ctx):
    """EMD 1.0 (emdfile): groups tagged emd_group_type='root' / 'array', dims dim0..."""
    data = make((3, 4, 6, 6), "float32")
    p = tmp_path / "py4d.h5"
    with h5py.File(p, "w") as f:
        f.attrs["emd_group_type"] = "file"
        root = f.create_group("experiment")
        root.attrs["emd_group_type"] = "root"
        cube = root.create_group("datacube")
        cube.attrs["emd_group_type"] = "array"
        cube.create_dataset("data", data=data)
        for i, (n, step, unit) in enumerate(
            zip(data.shape, (0.5, 0.5, 0.1, 0.1), ("nm", "nm", "A^-1", "A^-1"))
        ):
            d = cube.create_dataset(f"dim{i}", data=np.arange(n) * step)
            d.attrs["units"] = unit
        f.create_dataset("experiment/other", data=np.zeros((3, 4, 6, 6)))
    ds = ctx.load("hdf5", path=p)
    assert ds.ds_path == "/experiment/datacube/data" and ds.metadata["format"] == "emd"
    assert ds.metadata["scan_step"] == (0.5, 0.5) and ds.metadata["scan_unit"] == "nm"
    assert ds.metadata["pixel_size"] == pytest.approx((0.1, 0.1))
    np.testing.assert_array_equal(picked(ctx, ds), data)


def test_ambiguous_datasets_are_listed(tmp_path):
    p = tmp_path / "two.h5"
    with h5py.File(p, "w") as f:
        f["a"] = np.zeros((2, 3, 4, 4), np.uint16)
        f["b/c"] = np.zeros((3, 2, 4, 4), np.uint16)
    with pytest.raises(DataSetError, match=r"/a \(2, 3, 4, 4\).*/b/c \(3, 2, 4, 4\).*ds_path="):
        HDF5DataSet(p)
    assert HDF5DataSet(p, ds_path="b/c").shape.nav == (3, 2)


def test_no_scan_dataset_lists_what_is_there(tmp_path):
    p = tmp_path / "img.h5"
    with h5py.File(p, "w") as f:
        f["image"] = np.zeros((4, 4))
    with pytest.raises(DataSetError, match=r"no dataset of 3 to 5.*/image \(4, 4\)"):
        HDF5DataSet(p)
    with pytest.raises(DataSetError, match="shape"):
        HDF5DataSet(p, ds_path="/image")
    with pytest.raises(DataSetError, match="no dataset '/nope'"):
        HDF5DataSet(p, ds_path="/nope")


# --- geometry ------------------------------------------------------------------------------
def reference(flat, nav_shape, sync_offset):
    n = math.prod(nav_shape)
    out = np.zeros((n,) + flat.shape[1:], flat.dtype)
    for i in range(n):
        k = i + sync_offset
        if 0 <= k < len(flat):
            out[i] = flat[k]
    return out.reshape(tuple(nav_shape) + flat.shape[1:])


@pytest.mark.parametrize(
    "nav_shape, sync_offset, missing",
    [
        (None, 0, False),
        ((4, 6), 0, False),
        ((2, 12), 3, True),
        ((24,), -5, True),
        ((5, 5), 0, True),
        ((3, 7), 2, False),
        ((2, 2, 5), 4, False),
    ],
)
@pytest.mark.parametrize(
    "chunks, compression", [(None, None), ((1, 6, 8, 8), "bitshuffle-lz4"), ((3, 2, 8, 8), "gzip")]
)
def test_nav_shape_and_sync_offset(
    tmp_path, ctx, nav_shape, sync_offset, missing, chunks, compression
):
    data = make((4, 6, 8, 8), "uint16")
    p = write_hdf5(tmp_path / "g.h5", data, chunks=chunks, compression=compression)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingFramesWarning)
        if missing:
            with pytest.warns(MissingFramesWarning):
                ds = ctx.load("hdf5", path=p, nav_shape=nav_shape, sync_offset=sync_offset)
        else:
            ds = ctx.load("hdf5", path=p, nav_shape=nav_shape, sync_offset=sync_offset)
    ref = reference(data.reshape(24, 8, 8), nav_shape or (4, 6), sync_offset)
    np.testing.assert_array_equal(picked(ctx, ds), ref)
    roi = np.zeros(ref.shape[:-2], bool)
    roi.flat[[0, roi.size // 2, roi.size - 1]] = True
    np.testing.assert_array_equal(picked(ctx, ds, roi=roi), ref[roi])


# --- pickling, repr, caches ----------------------------------------------------------------
def test_pickles_as_path_and_parameters(tmp_path):
    data = make((4, 6, 8, 8), "uint16")
    p = write_hdf5(tmp_path / "s.h5", data, chunks=(1, 6, 8, 8), compression="bitshuffle-lz4")
    ds = HDF5DataSet(p)
    blob = pickle.dumps(ds)
    assert len(blob) < 4000 and b"h5py" not in blob
    part = ds.get_partitions(2)[1]
    pblob = pickle.dumps(part)
    assert len(pblob) < 4000 and b"h5py" not in pblob
    release_maps()  # no open file left: the unpickled copies open it themselves
    assert not _FILES
    back = pickle.loads(pblob)
    np.testing.assert_array_equal(
        back.read(back.start, back.stop), data.reshape(24, 8, 8)[back.start : back.stop]
    )
    assert len(_FILES) == 1


def test_repr_names_kind_chunks_and_compression(tmp_path):
    p = write_hdf5(
        tmp_path / "s.h5",
        make((4, 6, 8, 8), "uint16"),
        chunks=(2, 6, 8, 8),
        compression="bitshuffle-lz4",
    )
    r = repr(HDF5DataSet(p))
    assert r.startswith("<HDF5DataSet kind='hdf5' path=")
    assert "nav=(4, 6) sig=(8, 8) dtype=uint16" in r
    assert "chunks=(2, 6, 8, 8)" in r and "compression='bitshuffle-lz4'" in r
    assert "memory-mapped" in repr(
        HDF5DataSet(write_hdf5(tmp_path / "c.h5", make((2, 3, 4, 4), "uint8")))
    )


def test_file_kept_open_until_released_and_rewrite_detected(tmp_path):
    p = write_hdf5(tmp_path / "s.h5", make((2, 3, 4, 4), "uint8"), chunks=(1, 3, 4, 4))
    f = open_file(p)
    assert open_file(p) is f
    write_hdf5(p, make((2, 3, 4, 4), "uint8", seed=9) + 1, chunks=(1, 3, 4, 4), overwrite=True)
    assert open_file(p) is not f
    release_maps()
    assert not _FILES and not f.id.valid


# --- bad input -----------------------------------------------------------------------------
def test_other_format_under_h5_extension(tmp_path):
    p = tmp_path / "scan.h5"
    np.save(p.with_suffix(".npy"), np.zeros((2, 2, 4, 4)))
    os.rename(p.with_suffix(".npy"), p)
    with pytest.raises(DataSetError, match=r"scan.h5.*not an HDF5 file.*auto"):
        HDF5DataSet(p)
    assert not sniff(str(p))


def test_truncated_file(tmp_path):
    p = write_hdf5(tmp_path / "t.h5", make((4, 6, 16, 16), "uint16"))
    with open(p, "r+b") as fh:
        fh.truncate(os.path.getsize(p) // 2)
    with pytest.raises(DataSetError, match=r"t.h5.*truncated.*copy the file again"):
        HDF5DataSet(p)


@pytest.mark.parametrize("what", ["dir", "empty", "missing"])
def test_directory_empty_and_missing(tmp_path, what):
    p = tmp_path / "x.h5"
    if what == "dir":
        p.mkdir()
        match = "is a folder"
    elif what == "empty":
        p.write_bytes(b"")
        match = "is empty"
    else:
        match = "no such file"
    with pytest.raises(DataSetError, match=match):
        HDF5DataSet(p)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(nav_shape=(0, 4)), "positive integers"),
        (dict(nav_shape=(1, 2, 3, 4)), "1 to 3"),
        (dict(sync_offset=24), "leaves no frame"),
        (dict(sig_dims=3), "sig_dims must be 1 or 2"),
    ],
)
def test_geometry_that_cannot_fit(tmp_path, kwargs, match):
    p = write_hdf5(tmp_path / "g.h5", make((4, 6, 8, 8), "uint16"))
    with pytest.raises(DataSetError, match=match):
        HDF5DataSet(p, **kwargs)


def test_unregistered_filter_is_named_before_work_starts(tmp_path):
    p = tmp_path / "f.h5"
    with h5py.File(p, "w") as f:
        d = f.create_dataset(
            "data",
            shape=(2, 3, 4, 4),
            dtype="u2",
            chunks=(1, 3, 4, 4),
            compression=32999,
            allow_unknown_filter=True,
        )
        for i in range(2):
            d.id.write_direct_chunk((i, 0, 0, 0), b"\0" * 96)
    with pytest.raises(DataSetError, match=r"f.h5.*filter id 32999.*hdf5plugin"):
        HDF5DataSet(p)


def test_missing_hdf5plugin_in_a_fresh_process(tmp_path):
    p = write_hdf5(
        tmp_path / "b.h5",
        make((2, 3, 8, 8), "uint16"),
        chunks=(1, 3, 8, 8),
        compression="bitshuffle-lz4",
    )
    code = textwrap.dedent(f"""
        import sys
        sys.modules["hdf5plugin"] = None  # as if hdf5plugin were not installed
        from udfwidgets.io.hdf5 import HDF5DataSet
        from udfwidgets.io.dataset import DataSetError
        try:
            HDF5DataSet({str(p)!r})
        except DataSetError as e:
            print("ERROR", e)
    """)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=os.getcwd(), timeout=120
    )
    assert "ERROR" in out.stdout, out.stderr
    assert "bitshuffle" in out.stdout and "hdf5plugin" in out.stdout and "b.h5" in out.stdout


def test_file_damaged_after_opening_fails_the_run_not_the_worker(tmp_path, processes_ctx):
    data = make((4, 6, 8, 8), "uint16")
    p = write_hdf5(tmp_path / "d.h5", data, chunks=(1, 6, 8, 8), compression="gzip")
    ds = processes_ctx.load("hdf5", path=p)
    release_maps()
    with open(p, "r+b") as fh:  # the file is cut short after it was opened
        fh.truncate(os.path.getsize(p) - 500)
    with pytest.raises(Exception, match="truncated|d.h5"):
        processes_ctx.run_udf(dataset=ds, udf=SumUDF())
    good = processes_ctx.load(
        "hdf5", path=write_hdf5(tmp_path / "ok.h5", data, chunks=(1, 6, 8, 8))
    )
    got = processes_ctx.run_udf(dataset=good, udf=SumUDF())["intensity"].data
    np.testing.assert_allclose(got, data.sum(axis=(0, 1)), rtol=1e-6)


# --- writer --------------------------------------------------------------------------------
def test_writer_checks_before_writing_and_is_atomic(tmp_path):
    target = tmp_path / "w.h5"
    with pytest.raises(ValueError, match="compression"):
        write_hdf5(target, np.zeros((2, 2, 4, 4)), compression="rar")
    with pytest.raises(ValueError, match="layout"):
        write_hdf5(target, np.zeros((2, 2, 4, 4)), layout="tiff")

    class Failing:
        shape, dtype = (300, 4, 64, 64), np.dtype("uint16")

        def __getitem__(self, key):  # the source fails while the file is being written
            raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        write_hdf5(target, Failing(), chunks=(8, 4, 64, 64))
    assert os.listdir(tmp_path) == []
    write_hdf5(target, np.zeros((2, 2, 4, 4)))
    with pytest.raises(FileExistsError):
        write_hdf5(target, np.zeros((2, 2, 4, 4)))


def test_auto_and_sniff(tmp_path):
    p = write_hdf5(tmp_path / "a.emd", make((2, 3, 4, 4), "uint16"), layout="emd")
    assert sniff(p)
    ds = load("auto", path=p)
    assert isinstance(ds, HDF5DataSet) and ds.metadata["format"] == "emd"
    with h5py.File(tmp_path / "flat.h5", "w") as f:
        f["x"] = np.zeros((4, 4))
    assert not sniff(str(tmp_path / "flat.h5"))
    assert not sniff(str(tmp_path))
    assert not sniff(str(tmp_path / "missing.h5"))


def test_context_load_kind(tmp_path):
    p = write_hdf5(tmp_path / "k.h5", make((2, 3, 4, 4), "uint16"))
    ds = Context(executor="inline").load("hdf5", path=p)
    assert ds.kind == "hdf5"


def test_release_files_lets_the_user_write_in_place(tmp_path):
    p = write_hdf5(tmp_path / "w.h5", make((2, 3, 4, 4), "uint8"))
    HDF5DataSet(p)  # keeps the file open for reading in this process
    with pytest.raises(OSError, match="already open for read-only"):
        h5py.File(p, "a")
    with h5py.File(p, "r"):  # reading it with h5py alongside works
        pass
    Context(executor="inline").release_files()
    with h5py.File(p, "a") as f:
        f.attrs["note"] = "edited"


class _KeepPartitions(SumUDF):
    """Keeps every partition it is given (as a UDF that stashes its input might)."""

    kept: list = []
    process_tile = None  # so that process_partition is called

    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE  # the partition as read, not a float copy

    def process_partition(self, partition):
        type(self).kept.append(partition)
        self.results.intensity[:] += partition.sum(axis=0, dtype=np.float64)


@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_reused_partition_buffers_never_overwrite_a_kept_partition(tmp_path, executor):
    # chunked partitions are read into a per-thread buffer that the next read reuses only
    # when nothing refers to it: partitions a UDF kept must keep their frames
    data = make((8, 6, 4, 4), "uint16")
    p = write_hdf5(tmp_path / "k.h5", data, chunks=(1, 6, 4, 4), compression="gzip")
    ds = load("hdf5", path=p, num_partitions=8)
    _KeepPartitions.kept = []
    with Context(executor=executor, n_jobs=2) as ctx:
        res = ctx.run_udf(dataset=ds, udf=_KeepPartitions(dtype="float64"))
    np.testing.assert_array_equal(res["intensity"].data, data.sum(axis=(0, 1), dtype=np.float64))
    assert all(a.dtype == np.uint16 for a in _KeepPartitions.kept)
    kept = sorted(_KeepPartitions.kept, key=lambda a: int(a.sum()))
    expected = sorted(np.split(data.reshape(48, 4, 4), 8), key=lambda a: int(a.sum()))
    assert len(kept) == 8
    for got, want in zip(kept, expected):
        np.testing.assert_array_equal(got, want)
    _KeepPartitions.kept = []


def test_partition_reads_reuse_one_buffer_and_release_files_drops_it(tmp_path):
    from udfwidgets.io import chunked

    data = make((4, 6, 4, 4), "uint16")
    p = write_hdf5(tmp_path / "r.h5", data, chunks=(1, 6, 4, 4), compression="gzip")
    parts = load("hdf5", path=p, num_partitions=4).get_partitions()
    first = parts[0].read(parts[0].start, parts[0].stop)
    np.testing.assert_array_equal(first, data.reshape(24, 4, 4)[:6])
    address = first.ctypes.data
    del first  # nothing holds the buffer: the next partition read goes into it
    second = parts[1].read(parts[1].start, parts[1].stop)
    assert second.ctypes.data == address
    held = parts[2].read(parts[2].start, parts[2].stop)  # ``second`` still held: a new one
    assert held.ctypes.data != address
    np.testing.assert_array_equal(second, data.reshape(24, 4, 4)[6:12])
    np.testing.assert_array_equal(held, data.reshape(24, 4, 4)[12:18])
    assert chunked._BUFFERS
    release_maps()
    assert not chunked._BUFFERS


def test_file_inspected_once_per_version(tmp_path, ctx, monkeypatch):
    import udfwidgets.io.hdf5 as mod

    calls = []
    real = mod.find_datasets
    monkeypatch.setattr(mod, "find_datasets", lambda f: calls.append(1) or real(f))
    data = make((3, 4, 8, 8), "uint16")
    p = write_hdf5(tmp_path / "i.h5", data, chunks=(1, 4, 8, 8), compression="gzip")
    for _ in range(3):  # "auto" sniffs, then the dataset opens: one walk of the file in all
        ds = ctx.load("auto", path=p)
    assert len(calls) == 1 and ds.metadata["format"] == "hdf5"
    # rewritten (another layout): inspected afresh
    write_hdf5(p, data, layout="hspy", overwrite=True)
    ds = ctx.load("auto", path=p)
    assert len(calls) == 2 and ds.metadata["format"] == "hspy"
    np.testing.assert_array_equal(picked(ctx, ds), data)
