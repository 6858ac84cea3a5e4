"""Datasets: memory, npy, raw and auto; shapes, partitions, sync_offset and bad input."""

import os
import warnings

import numpy as np
import pytest

from udfwidgets import DataSetError
from udfwidgets.io import Shape, load
from udfwidgets.io.dataset import default_num_partitions, partition_size
from udfwidgets.io.geometry import MissingFramesWarning
from udfwidgets.udf.sum import SumUDF
from udfwidgets.udf.sumsigudf import SumSigUDF


@pytest.fixture
def npy_file(tmp_path, data4d_int):
    path = tmp_path / "scan.npy"
    np.save(path, data4d_int)
    return path


@pytest.fixture
def raw_file(tmp_path, data4d_int):
    path = tmp_path / "scan.raw"
    data4d_int.tofile(path)
    return path


def test_shape():
    s = Shape((3, 4, 5, 6), sig_dims=2)
    assert s.nav == (3, 4) and s.sig == (5, 6) and len(s) == 4
    assert s.nav.size == 12 and s.sig.size == 30 and s.size == 360
    assert s.flatten_nav == (12, 5, 6)
    assert np.zeros(s.nav).shape == (3, 4)


def test_memory_dataset(ctx, data4d):
    ds = ctx.load("memory", data=data4d)
    assert ds.shape.nav == (7, 9) and ds.shape.sig == (6, 5) and ds.dtype == np.float32
    assert len(ds.shape) == 4


@pytest.mark.parametrize("executor", ["inline", "processes"])
def test_npy_and_raw_and_auto_read_the_same(ctx_factory, npy_file, raw_file, data4d_int, executor):
    ctx = ctx_factory(executor)
    kw = dict(nav_shape=(6, 5), sig_shape=(8, 7), dtype="uint16")
    datasets = [
        ctx.load("npy", path=npy_file, num_partitions=3),
        ctx.load("raw", path=raw_file, num_partitions=4, **kw),
        ctx.load("auto", path=str(npy_file)),
        ctx.load("auto", path=raw_file, **kw),
    ]
    expected_sum = data4d_int.sum(axis=(0, 1), dtype=np.float64)
    expected_nav = data4d_int.sum(axis=(2, 3), dtype=np.float64)
    roi = np.zeros((6, 5), bool)
    roi[1:4, 2:] = True
    for ds in datasets:
        assert ds.shape == (6, 5, 8, 7) and ds.dtype == np.uint16
        a, b = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
        np.testing.assert_allclose(a["intensity"].data, expected_sum, rtol=1e-6)
        np.testing.assert_allclose(b["intensity"].data, expected_nav, rtol=1e-6)
        c = ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=roi)
        np.testing.assert_allclose(c["intensity"].raw_data, expected_nav[roi], rtol=1e-6)


def test_files_above_the_budget_are_mapped_per_partition(ctx, raw_file, data4d_int, monkeypatch):
    """The user's process keeps no map of a file above KEEP_MAPS_UP_TO."""
    from udfwidgets.io import files

    monkeypatch.setattr(files, "KEEP_MAPS_UP_TO", 100)
    files._MAPS.clear()
    ds = ctx.load(
        "raw", path=raw_file, nav_shape=(6, 5), sig_shape=(8, 7), dtype="uint16", num_partitions=3
    )
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF())
    np.testing.assert_allclose(res["intensity"].data, data4d_int.sum(axis=(2, 3), dtype=np.float64))
    assert not files._MAPS
    roi = np.arange(30).reshape(6, 5) % 2 == 0
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=roi)
    np.testing.assert_allclose(
        res["intensity"].raw_data, data4d_int.sum(axis=(2, 3), dtype=np.float64)[roi]
    )


def test_file_partitions_carry_no_frames(npy_file):
    """File-backed partitions pickle the path only, never the frames."""
    import pickle

    ds = load("npy", path=npy_file)
    for part in ds.get_partitions(2):
        assert len(pickle.dumps(part)) < 1000
        assert not hasattr(part, "frames")


@pytest.mark.parametrize("keep_maps", [True, False])
@pytest.mark.parametrize("sync_offset", [-7, -1, 0, 3, 29])
def test_raw_sync_offset(ctx, raw_file, data4d_int, sync_offset, keep_maps, monkeypatch):
    if not keep_maps:
        from udfwidgets.io import files

        monkeypatch.setattr(files, "KEEP_MAPS_UP_TO", 100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = ctx.load(
            "raw",
            path=raw_file,
            nav_shape=(6, 5),
            sig_shape=(8, 7),
            dtype="uint16",
            sync_offset=sync_offset,
            num_partitions=3,
        )
    # every offset but 0 leaves |sync_offset| scan positions without a frame
    assert [w.category for w in caught] == ([MissingFramesWarning] if sync_offset else [])
    flat = data4d_int.reshape(30, 8, 7).astype(np.float64)
    shifted = np.zeros_like(flat)
    for i in range(30):
        j = i + sync_offset
        if 0 <= j < 30:
            shifted[i] = flat[j]
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF())
    np.testing.assert_allclose(res["intensity"].data.reshape(-1), shifted.sum(axis=(1, 2)))
    roi = np.arange(30).reshape(6, 5) % 3 == 0
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=roi)
    np.testing.assert_allclose(res["intensity"].raw_data, shifted.sum(axis=(1, 2))[roi.reshape(-1)])


def test_missing_file(ctx, tmp_path):
    with pytest.raises(DataSetError, match="no such file"):
        ctx.load("npy", path=tmp_path / "nope.npy")
    with pytest.raises(DataSetError, match="no such file"):
        ctx.load("raw", path=tmp_path / "nope.raw", nav_shape=(2, 2), sig_shape=(2, 2), dtype="u2")


def test_raw_with_fewer_frames_than_the_scan_reads_zeros_and_warns(ctx, raw_file, data4d_int):
    """The geometry rule (io.geometry): missing frames read as zeros, with the numbers."""
    with pytest.warns(
        MissingFramesWarning, match=r"holds 30 frames; nav_shape=\(6, 6\).* 6 of 36 "
    ):
        ds = ctx.load("raw", path=raw_file, nav_shape=(6, 6), sig_shape=(8, 7), dtype="uint16")
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF())["intensity"].data.reshape(-1)
    expected = np.zeros(36)
    expected[:30] = data4d_int.reshape(30, -1).sum(axis=1)
    np.testing.assert_array_equal(res, expected)


def test_raw_with_more_frames_than_the_scan_skips_the_rest(ctx, raw_file, data4d_int):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = ctx.load("raw", path=raw_file, nav_shape=(4, 5), sig_shape=(8, 7), dtype="uint16")
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF())["intensity"].data
    np.testing.assert_array_equal(res, data4d_int[:4].sum(axis=(2, 3)))


def test_raw_nav_shape_defaults_to_the_frames_in_the_file(ctx, raw_file):
    ds = ctx.load("raw", path=raw_file, sig_shape=(8, 7), dtype="uint16")
    assert ds.shape == (30, 8, 7)


def test_raw_big_endian_is_read_in_native_order(ctx, tmp_path, data4d_int):
    path = tmp_path / "be.raw"
    data4d_int.astype(">u2").tofile(path)
    ds = ctx.load("raw", path=path, nav_shape=(6, 5), sig_shape=(8, 7), dtype=">u2")
    assert ds.dtype == np.dtype("uint16")
    part = ds.get_partitions(1)[0]
    np.testing.assert_array_equal(part.read(0, 30), data4d_int.reshape(30, 8, 7))


def test_raw_size_not_whole_frames_says_what_the_file_holds(ctx, raw_file):
    with pytest.raises(
        DataSetError,
        match=r"has 3360 bytes, not a whole number of frames of "
        r"sig_shape=\(8, 8\) x dtype=uint16 \(128 bytes each; "
        r"26 whole frames and 32 bytes more\)",
    ):
        ctx.load("raw", path=raw_file, nav_shape=(6, 6), sig_shape=(8, 8), dtype="uint16")


def test_raw_sync_offset_past_the_end(ctx, raw_file):
    with pytest.raises(DataSetError, match="sync_offset=30 leaves no frame"):
        ctx.load(
            "raw", path=raw_file, nav_shape=(6, 5), sig_shape=(8, 7), dtype="uint16", sync_offset=30
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(nav_shape=(0, 5)), "nav_shape must be a tuple of positive integers"),
        (dict(sig_shape="x"), "sig_shape must be a tuple of positive integers"),
        (dict(dtype="nonsense"), "is not a NumPy dtype"),
        (
            dict(nav_shape=(2, 3, 5, 1), sig_shape=(8, 7)),
            "4 navigation dimensions; 1 to 3 are supported",
        ),
        (dict(nav_shape=(30,), sig_shape=(1, 8, 7)), "sig_dims must be 1 or 2"),
    ],
)
def test_raw_bad_parameters(ctx, raw_file, kwargs, message):
    full = dict(nav_shape=(6, 5), sig_shape=(8, 7), dtype="uint16")
    full.update(kwargs)
    with pytest.raises(DataSetError, match=message):
        ctx.load("raw", path=raw_file, **full)


def test_bad_kinds_and_arguments(ctx, tmp_path):
    with pytest.raises(DataSetError, match="unknown dataset kind 'hdf9'; use one of memory"):
        ctx.load("hdf9", path="x")
    with pytest.raises(DataSetError, match="needs a NumPy array"):
        ctx.load("memory", data=None)
    with pytest.raises(DataSetError, match="navigation dimensions; 1 to 3"):
        ctx.load("memory", data=np.zeros((2, 2, 2, 2, 2, 2)))
    with pytest.raises(DataSetError, match="num_partitions must be a positive integer"):
        ctx.load("memory", data=np.zeros((2, 2, 2, 2)), num_partitions=0)
    path = tmp_path / "frames.bin"
    np.zeros(8, np.uint8).tofile(path)
    with pytest.raises(DataSetError, match="give nav_shape=, sig_shape= and dtype="):
        ctx.load("auto", path=path)
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not an npy file")
    with pytest.raises(DataSetError, match="not a readable .npy file"):
        ctx.load("npy", path=bad)


def test_default_partitioning():
    assert default_num_partitions(2**30, 16384, 2) == 8  # 128 MiB each
    assert default_num_partitions(2**20, 100, 2) == 4  # two per worker
    assert default_num_partitions(2**20, 3, 8) == 3  # never more than frames
    assert default_num_partitions(4 * 2**30, 65536, 2) == 32


def test_partitions_cover_the_dataset_once(data4d):
    ds = load("memory", data=data4d, num_partitions=4)
    parts = ds.get_partitions(2)
    assert [p.start for p in parts][0] == 0 and parts[-1].stop == 63
    assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
    assert sum(p.num_frames for p in parts) == 63


def test_npy_fortran_order_is_refused(ctx, tmp_path):
    path = tmp_path / "f.npy"
    np.save(path, np.asfortranarray(np.zeros((3, 4, 5, 6))))
    with pytest.raises(DataSetError, match="Fortran order"):
        ctx.load("npy", path=path)


def _anonymous_rss() -> int:
    """Private (anonymous) resident memory of this process: copies, not mapped file pages."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    pytest.skip("no /proc/self/status RssAnon on this system")


@pytest.mark.parametrize("dtype, udf", [("float32", SumUDF), ("uint16", SumSigUDF)])
def test_large_file_is_never_loaded_whole(tmp_path, dtype, udf):
    """A 256 MiB raw file reduced in this process: no copy of it is ever made.

    The frames are read through a memory map (its pages are reclaimable page
    cache, not memory of the process); converting uint16 to float32 happens
    one tile at a time.
    """
    from udfwidgets import Context

    path = tmp_path / "big.raw"
    n_frames, sig = 4096 * (2 if dtype == "uint16" else 1), (128, 128)
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        for _ in range(16):
            f.write(rng.integers(0, 100, size=(n_frames // 16,) + sig).astype(dtype).tobytes())
    assert os.path.getsize(path) == 256 * 2**20
    with Context(executor="inline") as ctx:
        ds = ctx.load("raw", path=path, nav_shape=(n_frames // 64, 64), sig_shape=sig, dtype=dtype)
        ctx.run_udf(dataset=ds, udf=udf())  # warm up allocator and caches
        before = _anonymous_rss()
        res = ctx.run_udf(dataset=ds, udf=udf())
        grown = _anonymous_rss() - before
    assert np.isfinite(res["intensity"].data).all()
    assert grown < 32 * 2**20


def test_partition_size_sets_the_default_partition_count_in_its_block():
    gib = 2**30
    assert default_num_partitions(4 * gib, 65536, num_workers=2) == 32
    with partition_size(256 * 2**20):
        assert default_num_partitions(4 * gib, 65536, num_workers=2) == 16
        ds = load("memory", data=np.zeros((4, 4, 2, 2)))
        assert len(ds.get_partitions(2)) == 4  # still at least two per worker
        ds = load("memory", data=np.zeros((4, 4, 2, 2)), num_partitions=3)
        assert len(ds.get_partitions(2)) == 3  # an explicit count wins
    assert default_num_partitions(4 * gib, 65536, num_workers=2) == 32
    with pytest.raises(ValueError, match="positive number of bytes"):
        with partition_size(0):
            pass
