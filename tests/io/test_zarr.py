"""ctx.load("zarr"): zarr v2 and v3 stores written by write_zarr."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

from udfwidgets.io import load
from udfwidgets.io.dataset import DataSetError
from udfwidgets.io.geometry import MissingFramesWarning
from udfwidgets.io.zarr import ZarrDataSet, sniff, write_zarr
from udfwidgets.udf.pick import PickUDF
from udfwidgets.udf.sum import SumUDF

zarr = pytest.importorskip("zarr")


def make(shape, dtype="uint16", seed=0):
    return np.random.default_rng(seed).integers(0, 1000, size=shape).astype(dtype)


def picked(ctx, ds, roi=None):
    r = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)["intensity"]
    # PickUDF gives (n_picked, *sig), as in LiberTEM; without roi every frame, in nav order
    return r.data if roi is not None else r.data.reshape(tuple(ds.shape))


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize(
    "shape, chunks, compressor, dtype",
    [
        ((5, 6, 8, 8), None, None, "uint16"),
        ((5, 6, 8, 8), (2, 6, 8, 8), "zstd", "float32"),
        ((5, 6, 8, 8), (5, 2, 4, 4), "blosc", "uint16"),
        ((12, 8, 8), (4, 4, 8), "gzip", "int32"),
        ((2, 3, 4, 6, 6), (1, 3, 2, 6, 6), "default", "uint8"),
    ],
)
def test_variants_read_frame_exact(tmp_path, ctx, fmt, shape, chunks, compressor, dtype):
    data = make(shape, dtype)
    p = write_zarr(tmp_path / "s.zarr", data, chunks=chunks, zarr_format=fmt, compressor=compressor)
    ds = ctx.load("zarr", path=p)
    assert ds.metadata["zarr_format"] == fmt and tuple(ds.shape) == shape
    np.testing.assert_array_equal(picked(ctx, ds), data)
    flat = data.reshape((-1,) + shape[-2:])
    for n in (None, 3):
        for part in ZarrDataSet(p, num_partitions=n).get_partitions(2):
            np.testing.assert_array_equal(
                part.read(part.start, part.stop), flat[part.start : part.stop]
            )
    roi = np.random.default_rng(1).random(shape[:-2]) < 0.3
    roi.flat[-1] = True
    np.testing.assert_array_equal(picked(ctx, ds, roi=roi), data[roi])


def test_partitions_follow_chunk_rows(tmp_path):
    p = write_zarr(tmp_path / "s.zarr", make((16, 6, 4, 4)), chunks=(4, 3, 4, 4))
    bounds = ZarrDataSet(p).partition_bounds(num_workers=2)
    assert all(a % 24 == 0 for a, _ in bounds) and bounds[-1][1] == 96


def test_every_executor(tmp_path, any_ctx):
    data = make((8, 6, 8, 8), seed=5)
    p = write_zarr(tmp_path / "s.zarr", data, chunks=(2, 6, 8, 8), compressor="zstd")
    ds = any_ctx.load("zarr", path=p, num_partitions=3)
    got = any_ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data
    np.testing.assert_allclose(got, data.sum(axis=(0, 1)), rtol=1e-6)
    roi = np.zeros((8, 6), bool)
    roi[0, 1] = roi[7, 5] = True
    np.testing.assert_array_equal(picked(any_ctx, ds, roi=roi), data[roi])


def test_group_store_choice_and_ambiguity(tmp_path, ctx):
    g = zarr.open_group(tmp_path / "g.zarr", mode="w")
    a = g.create_array("scan/frames", shape=(3, 4, 8, 8), dtype="u2", chunks=(1, 4, 8, 8))
    data = make((3, 4, 8, 8))
    a[:] = data
    g.create_array("thumb", shape=(4, 4, 3), dtype="u1")
    ds = ctx.load("zarr", path=tmp_path / "g.zarr")
    assert ds.ds_path == "scan/frames"
    np.testing.assert_array_equal(picked(ctx, ds), data)
    g.create_array("other", shape=(4, 3, 8, 8), dtype="u2")
    with pytest.raises(
        DataSetError, match=r"other \(4, 3, 8, 8\).*scan/frames \(3, 4, 8, 8\).*ds_path="
    ):
        ZarrDataSet(tmp_path / "g.zarr")
    assert ZarrDataSet(tmp_path / "g.zarr", ds_path="other").shape.nav == (4, 3)


def test_geometry_pickle_repr_auto(tmp_path, ctx):
    data = make((4, 6, 8, 8))
    p = write_zarr(tmp_path / "s.zarr", data, chunks=(1, 6, 8, 8), compressor="zstd")
    with pytest.warns(MissingFramesWarning):
        ds = ctx.load("zarr", path=p, nav_shape=(5, 5), sync_offset=2)
    ref = np.zeros((25, 8, 8), data.dtype)
    ref[:22] = data.reshape(24, 8, 8)[2:]
    np.testing.assert_array_equal(picked(ctx, ds), ref.reshape(5, 5, 8, 8))
    assert len(pickle.dumps(ds.get_partitions(2)[0])) < 4000
    r = repr(ds)
    assert "kind='zarr'" in r and "chunks=(1, 6, 8, 8)" in r and "zstd" in r
    assert sniff(p) and isinstance(load("auto", path=p), ZarrDataSet)


@pytest.mark.parametrize(
    "what, match", [("file", "is a file"), ("dir", "without zarr.json"), ("missing", "no such")]
)
def test_bad_paths(tmp_path, what, match):
    p = tmp_path / "x.zarr"
    if what == "file":
        p.write_bytes(b"x")
    elif what == "dir":
        p.mkdir()
    with pytest.raises(DataSetError, match=match):
        ZarrDataSet(p)


def test_writer_atomic_and_overwrite(tmp_path):
    p = write_zarr(tmp_path / "s.zarr", make((2, 3, 4, 4)))
    with pytest.raises(FileExistsError):
        write_zarr(p, make((2, 3, 4, 4)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_zarr(p, make((2, 3, 4, 4), seed=3), overwrite=True, zarr_format=2)
    assert ZarrDataSet(p).metadata["zarr_format"] == 2
    assert sorted(x.name for x in tmp_path.iterdir()) == ["s.zarr"]
