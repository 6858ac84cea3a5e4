"""ctx.load("dectris"): master files with external links into data files."""

from __future__ import annotations

import os
import pickle
import warnings

import numpy as np
import pytest
from format_cases import picked

from udfwidgets.io import load
from udfwidgets.io.dataset import DataSetError
from udfwidgets.io.dectris import DectrisDataSet, sniff, write_dectris
from udfwidgets.io.geometry import MissingFramesWarning
from udfwidgets.io.hdf5 import HDF5DataSet
from udfwidgets.udf.sum import SumUDF

h5py = pytest.importorskip("h5py")


def frames(n=23, sig=(8, 8), dtype="uint16", seed=0):
    return np.random.default_rng(seed).integers(0, 4000, size=(n,) + sig).astype(dtype)


@pytest.mark.parametrize(
    "n, per_file, compression, dtype",
    [
        (23, 5, "bitshuffle-lz4", "uint16"),
        (12, 100, "bitshuffle-lz4", "uint32"),
        (10, 3, None, "uint8"),
        (9, 4, "lz4", "uint16"),
    ],
)
def test_frames_in_acquisition_order_across_files(tmp_path, ctx, n, per_file, compression, dtype):
    data = frames(n, dtype=dtype)
    m = write_dectris(
        tmp_path / "scan_master.h5", data, frames_per_file=per_file, compression=compression
    )
    ds = ctx.load("dectris", path=m)
    assert tuple(ds.shape) == data.shape and ds.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(picked(ctx, ds), data)
    for k in (1, 4):
        parts = DectrisDataSet(m, num_partitions=k).get_partitions(2)
        for p in parts:  # reads across file boundaries
            np.testing.assert_array_equal(p.read(p.start, p.stop), data[p.start : p.stop])
    roi = np.zeros(n, bool)
    roi[[0, min(per_file, n) - 1, min(per_file, n - 1), n - 1]] = True
    np.testing.assert_array_equal(picked(ctx, ds, roi=roi), data[roi])


def test_every_executor_with_nav_shape(tmp_path, any_ctx):
    data = frames(24, seed=2)
    m = write_dectris(tmp_path / "s_master.h5", data, frames_per_file=7)
    ds = any_ctx.load("dectris", path=m, nav_shape=(4, 6), num_partitions=3)
    got = any_ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data
    np.testing.assert_allclose(got, data.sum(axis=0), rtol=1e-6)
    roi = np.zeros((4, 6), bool)
    roi[0, 0] = roi[1, 1] = roi[3, 5] = True
    np.testing.assert_array_equal(picked(any_ctx, ds, roi=roi), data.reshape(4, 6, 8, 8)[roi])


@pytest.mark.parametrize("nav_shape, sync_offset", [((4, 5), 3), ((5, 5), -1), ((2, 10), 0)])
def test_nav_shape_and_sync_offset(tmp_path, ctx, nav_shape, sync_offset):
    data = frames(23)
    m = write_dectris(tmp_path / "s_master.h5", data, frames_per_file=6)
    n = nav_shape[0] * nav_shape[1]
    ref = np.zeros((n, 8, 8), data.dtype)
    for i in range(n):
        if 0 <= i + sync_offset < 23:
            ref[i] = data[i + sync_offset]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingFramesWarning)
        ds = ctx.load("dectris", path=m, nav_shape=nav_shape, sync_offset=sync_offset)
    np.testing.assert_array_equal(picked(ctx, ds), ref.reshape(nav_shape + (8, 8)))


def test_metadata_from_the_master(tmp_path):
    m = write_dectris(
        tmp_path / "s_master.h5",
        frames(4),
        detector="Dectris QUADRO",
        count_time=2e-3,
        pixel_size=75e-6,
        wavelength_angstrom=0.0251,
    )
    md = DectrisDataSet(m).metadata
    assert md["detector"] == "Dectris QUADRO"
    assert md["exposure_s"] == pytest.approx(2e-3)
    assert md["pixel_size"] == (75e-6, 75e-6) and md["pixel_unit"] == "m"
    assert md["wavelength_angstrom"] == pytest.approx(0.0251)
    assert md["detector_distance_m"] == pytest.approx(0.1)
    assert md["counter_depth"] == 16 and md["nimages"] == 4
    assert md["compression"] == "bitshuffle-lz4"
    r = repr(DectrisDataSet(m))
    assert "kind='dectris'" in r and "compression='bitshuffle-lz4'" in r and "chunks=(1, 8, 8)" in r


def test_missing_link_target_names_the_file(tmp_path):
    m = write_dectris(tmp_path / "s_master.h5", frames(10), frames_per_file=4)
    os.remove(tmp_path / "s_data_000002.h5")
    with pytest.raises(
        DataSetError, match=r"s_data_000002\.h5.*does not exist.*next to the master"
    ):
        DectrisDataSet(m)


def test_not_a_master_file(tmp_path):
    p = tmp_path / "plain.h5"
    with h5py.File(p, "w") as f:
        f["data"] = np.zeros((2, 4, 4))
    with pytest.raises(DataSetError, match="not a DECTRIS master file.*'hdf5'"):
        DectrisDataSet(p)
    assert not sniff(str(p))


def test_auto_prefers_dectris_and_pickles_small(tmp_path):
    m = write_dectris(tmp_path / "s_master.h5", frames(6), frames_per_file=2)
    assert sniff(m)
    ds = load("auto", path=m)
    assert isinstance(ds, DectrisDataSet) and not isinstance(ds, HDF5DataSet)
    blob = pickle.dumps(ds.get_partitions(2)[0])
    assert len(blob) < 4000


def test_writer_leaves_no_master_when_data_files_exist(tmp_path):
    write_dectris(tmp_path / "a_master.h5", frames(4), frames_per_file=2)
    with pytest.raises(FileExistsError):
        write_dectris(tmp_path / "a_master.h5", frames(4), frames_per_file=2)
    os.remove(tmp_path / "a_master.h5")
    with pytest.raises(FileExistsError):  # the data files are checked before anything is written
        write_dectris(tmp_path / "a_master.h5", frames(4), frames_per_file=2)
    assert not (tmp_path / "a_master.h5").exists()


def test_hdf5_kind_on_a_master_points_to_dectris(tmp_path):
    m = write_dectris(tmp_path / "s_master.h5", frames(4))
    with pytest.raises(DataSetError, match="DECTRIS master file.*'dectris'"):
        HDF5DataSet(m)


def test_bitshuffle_data_files_go_through_our_chunk_reader(tmp_path, ctx):
    from udfwidgets.io import bitshuffle, chunkread

    if bitshuffle.bitshuffle_lib() is None:
        pytest.skip("hdf5plugin's bitshuffle library does not export its decoder here")
    data = frames(23, sig=(32, 32), seed=4)
    m = write_dectris(tmp_path / "s_master.h5", data, frames_per_file=6)
    ds = ctx.load("dectris", path=m)
    before = chunkread.CHUNK_READS["chunks"]
    np.testing.assert_array_equal(picked(ctx, ds), data)
    assert chunkread.CHUNK_READS["chunks"] - before == 23  # one chunk a frame, each decoded once
    roi = np.zeros(23, bool)
    roi[[0, 5, 6, 22]] = True
    np.testing.assert_array_equal(picked(ctx, ds, roi=roi), data[roi])


def test_damaged_data_file_names_that_file(tmp_path, ctx):
    from udfwidgets.io import chunkread
    from udfwidgets.io.hdf5 import open_file, release_files

    data = frames(12, sig=(32, 32), seed=5)
    m = write_dectris(tmp_path / "s_master.h5", data, frames_per_file=6)
    victim = tmp_path / "s_data_000002.h5"
    info = open_file(str(victim))["entry/data/data"].id.get_chunk_info(2)
    release_files()
    chunkread.release_tables()
    with open(victim, "r+b") as fh:  # the first block's compressed size: past the file's end
        fh.seek(info.byte_offset + 12)
        fh.write(b"\x7f\xff\xff\xff")
    ds = ctx.load("dectris", path=m)
    with pytest.raises(DataSetError, match="s_data_000002"):
        ctx.run_udf(dataset=ds, udf=SumUDF())
    roi = np.zeros(12, bool)
    roi[:6] = True  # the frames of the sound data file still read
    np.testing.assert_array_equal(picked(ctx, ds, roi=roi), data[roi])
