"""to_xarray, every writer of save_results read back with its own library, export_dataset."""

from __future__ import annotations

import json
import os
from functools import partial

import h5py
import numpy as np
import pytest

from udfwidgets import UDF, Calibration, CorrectionSet, masks
from udfwidgets.corrections import CorrectionError
from udfwidgets.export import ExportError, save_results, to_xarray
from udfwidgets.udf.com import CoMUDF
from udfwidgets.udf.masks import ApplyMasksUDF
from udfwidgets.udf.radial import RadialProfileUDF
from udfwidgets.udf.sum import SumUDF
from udfwidgets.udf.sumsigudf import SumSigUDF

NAV, SIG = (5, 6), (12, 12)
CAL = Calibration(
    scan_step=(2.0, 0.5), scan_unit="nm", sig_step=0.25, sig_unit="mrad", beam_centre=(6.0, 5.0)
)


@pytest.fixture
def run(ctx, rng):
    data = rng.random(NAV + SIG, dtype=np.float32)
    ds = ctx.load("memory", data=data, num_partitions=2)
    ds.calibration = CAL
    roi = np.ones(NAV, bool)
    roi[0, :2] = False
    udfs = [
        SumUDF(),
        SumSigUDF(),
        RadialProfileUDF(n_bins=4, r_max=4, cx=5, cy=6),
        ApplyMasksUDF(
            mask_factories=[
                partial(masks.disk, SIG, (6, 5), 2),
                partial(masks.ring, SIG, (6, 5), 3, 5),
            ]
        ),
    ]
    res = ctx.run_udf(dataset=ds, udf=udfs, roi=roi)
    return data, roi, res


def test_to_xarray_dims_coords_attrs(run):
    data, roi, (s, ss, rad, am) = run
    x = to_xarray(run[2])
    assert set(x.data_vars) == {
        "SumUDF_intensity",
        "SumSigUDF_intensity",
        "RadialProfileUDF_profile",
        "RadialProfileUDF_bin_edges",
        "RadialProfileUDF_pixel_count",
        "ApplyMasksUDF_intensity",
    }
    v = x["SumUDF_intensity"]
    assert v.dims == ("det_y", "det_x")
    np.testing.assert_allclose(v.values, data[roi].sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(x["det_x"].values, (np.arange(12) - 5) * 0.25)
    np.testing.assert_allclose(x["det_y"].values, (np.arange(12) - 6) * 0.25)
    assert x["det_x"].attrs["units"] == "mrad" and x["scan_y"].attrs["units"] == "nm"
    np.testing.assert_allclose(x["scan_y"].values, np.arange(5) * 2.0)
    np.testing.assert_allclose(x["scan_x"].values, np.arange(6) * 0.5)
    nav = x["SumSigUDF_intensity"]
    assert nav.dims == ("scan_y", "scan_x")
    assert np.isnan(nav.values[~roi]).all()
    np.testing.assert_allclose(nav.values[roi], data[roi].sum(axis=(-1, -2)), rtol=1e-5)
    np.testing.assert_array_equal(nav["valid"].values, roi)
    prof = x["RadialProfileUDF_profile"]
    assert prof.dims == ("scan_y", "scan_x", "radius")
    # bin centres 0.5, 1.5, 2.5, 3.5 px times 0.25 mrad/px
    np.testing.assert_allclose(x["radius"].values, [0.125, 0.375, 0.625, 0.875])
    assert x["radius"].attrs["units"] == "mrad"
    np.testing.assert_allclose(x["edge"].values, [0, 0.25, 0.5, 0.75, 1.0])
    assert x["ApplyMasksUDF_intensity"].dims == ("scan_y", "scan_x", "mask")
    assert v.attrs["udf"] == "SumUDF" and json.loads(v.attrs["udf_params"]) == {"dtype": "float32"}
    assert Calibration(**json.loads(x.attrs["calibration"])) == CAL
    params = json.loads(x["RadialProfileUDF_profile"].attrs["udf_params"])
    assert params["n_bins"] == 4 and params["cx"] == 5


def test_buffer_to_xarray_single_udf(ctx, rng):
    data = rng.random((3, 4, 8, 8), dtype=np.float32)
    ds = ctx.load("memory", data=data)
    res = ctx.run_udf(dataset=ds, udf=CoMUDF())
    da = res["field"].to_xarray()
    assert da.dims == ("scan_y", "scan_x", "component")
    assert list(da["component"].values) == ["y", "x"]
    assert da["scan_x"].attrs["units"] == "px"
    x = to_xarray(res)
    assert x["regression_coefficients"].dims == ("term", "component")
    assert list(x["term"].values) == ["offset", "slope_0", "slope_1"]


@pytest.mark.parametrize("suffix", [".h5", ".hdf5"])
def test_hdf5_round_trip(run, tmp_path, suffix):
    data, roi, res = run
    path = tmp_path / f"r{suffix}"
    save_results(res, path)
    with h5py.File(path) as f:
        assert f.attrs["NX_class"] == "NXroot" and f["entry"].attrs["NX_class"] == "NXentry"
        g = f["entry/SumSigUDF_intensity"]
        assert g.attrs["NX_class"] == "NXdata" and g.attrs["signal"] == "data"
        assert list(g.attrs["axes"]) == ["scan_y", "scan_x"]
        np.testing.assert_array_equal(g["data"][()], res[1]["intensity"].data)
        np.testing.assert_array_equal(g["valid"][()], roi)
        np.testing.assert_allclose(g["scan_x"][()], np.arange(6) * 0.5)
        assert g["scan_x"].attrs["units"] == "nm"
        p = f["entry/RadialProfileUDF_profile"]
        assert list(p.attrs["axes"]) == ["scan_y", "scan_x", "radius"]
        assert p.attrs["radius_indices"] == 2 and p["radius"].attrs["units"] == "mrad"
        assert json.loads(p.attrs["param_n_bins"]) == 4
        assert p.attrs["udf"] == "RadialProfileUDF"
        s = f["entry/SumUDF_intensity"]
        np.testing.assert_allclose(s["det_y"][()], (np.arange(12) - 6) * 0.25)
        np.testing.assert_array_equal(s["data"][()], res[0]["intensity"].data)


def test_zarr_and_netcdf_round_trip(run, tmp_path):
    import xarray as xr

    _, roi, res = run
    want = to_xarray(res)
    save_results(res, tmp_path / "r.zarr")
    save_results(res, tmp_path / "r.nc")
    with xr.open_zarr(tmp_path / "r.zarr") as z:
        xr.testing.assert_identical(z.load(), want)
    with xr.open_dataset(tmp_path / "r.nc", engine="h5netcdf") as n:
        got = n.load()
    xr.testing.assert_allclose(got, want)
    assert got["SumUDF_intensity"].attrs["udf"] == "SumUDF"
    np.testing.assert_array_equal(got["valid"].values, roi)


def test_tiff_round_trip(run, tmp_path):
    import tifffile

    _, roi, res = run
    path = tmp_path / "r.tif"
    save_results(res, path)
    with tifffile.TiffFile(path) as t:
        pages = list(t.pages)
        descs = [json.loads(p.description) for p in pages]
        # SumUDF (1 page), SumSigUDF (1), RadialProfileUDF profile (4 radii), ApplyMasksUDF (2)
        assert [d["buffer"] for d in descs] == (
            ["SumUDF_intensity", "SumSigUDF_intensity"]
            + ["RadialProfileUDF_profile"] * 4
            + ["ApplyMasksUDF_intensity"] * 2
        )
        assert all(p.dtype == np.float32 for p in pages)
        np.testing.assert_array_equal(pages[0].asarray(), res[0]["intensity"].data)
        np.testing.assert_array_equal(pages[4].asarray(), res[2]["profile"].data[..., 2])
        np.testing.assert_array_equal(pages[7].asarray(), res[3]["intensity"].data[..., 1])
        nav_page = pages[1]
        # 0.5 nm per pixel in x = 2e7 pixels per cm; 2 nm in y = 5e6
        assert nav_page.tags["ResolutionUnit"].value == 3  # centimetre
        xres = nav_page.tags["XResolution"].value
        yres = nav_page.tags["YResolution"].value
        assert xres[0] / xres[1] == pytest.approx(2e7)
        assert yres[0] / yres[1] == pytest.approx(5e6)
        sig_page = pages[0]
        assert sig_page.tags["ResolutionUnit"].value == 1  # none: 4 pixels per mrad
        xres = sig_page.tags["XResolution"].value
        assert xres[0] / xres[1] == pytest.approx(4)
        assert descs[0]["unit"] == "mrad" and descs[2]["channel"] == [0]


def test_tiff_refuses_non_images(ctx, tmp_path):
    ds = ctx.load("memory", data=np.ones((4, 3, 3)))  # 1D scan
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF())
    with pytest.raises(ExportError, match="none of the buffers is an image"):
        save_results(res, tmp_path / "x.tif")
    res2 = ctx.run_udf(
        dataset=ctx.load("memory", data=np.ones((2, 2, 3, 3))), udf=RadialProfileUDF()
    )
    with pytest.raises(ExportError, match="not an image"):
        save_results(res2, tmp_path / "y.tif", buffers=["bin_edges"])
    assert os.listdir(tmp_path) == []


def test_npz_round_trip(run, tmp_path):
    _, roi, res = run
    path = tmp_path / "r.npz"
    save_results(res, path)
    with np.load(path) as z:  # no pickle needed
        np.testing.assert_array_equal(z["SumSigUDF_intensity"], res[1]["intensity"].data)
        np.testing.assert_array_equal(z["SumSigUDF_intensity__valid"], roi)
        meta = json.loads(str(z["__meta__"]))
    b = meta["buffers"]["RadialProfileUDF_profile"]
    assert b["dims"] == ["scan_y", "scan_x", "radius"] and b["units"][2] == "mrad"
    np.testing.assert_allclose(b["coords"][2], [0.125, 0.375, 0.625, 0.875])


def test_npz_buffers_named_like_savez_arguments(ctx, tmp_path):
    """np.savez(f, **arrays) took buffers called file / allow_pickle as its own arguments."""

    class Named(UDF):
        def get_result_buffers(self):
            return {"file": self.buffer(kind="nav"), "allow_pickle": self.buffer(kind="nav")}

        def process_frame(self, frame):
            self.results.file[:] = frame.sum()
            self.results.allow_pickle[:] = 1

    data = np.arange(2 * 2 * 3 * 3, dtype=np.float32).reshape(2, 2, 3, 3)
    res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=Named())
    save_results(res, tmp_path / "r.npz")
    with np.load(tmp_path / "r.npz") as z:
        assert sorted(z.files) == [
            "__meta__",
            "allow_pickle",
            "allow_pickle__valid",
            "file",
            "file__valid",
        ]
        np.testing.assert_array_equal(z["file"], data.sum(axis=(2, 3)))
        np.testing.assert_array_equal(z["allow_pickle"], np.ones((2, 2)))


def test_hspy_layout(run, tmp_path):
    _, roi, res = run
    path = tmp_path / "r.hspy"
    save_results(res, path)
    with h5py.File(path) as f:
        assert f.attrs["file_format"] == "HyperSpy"
        e = f["Experiments/RadialProfileUDF_profile"]
        np.testing.assert_array_equal(e["data"][()], res[2]["profile"].data)
        axes = [dict(e[f"axis-{i}"].attrs) for i in range(3)]
        assert [a["name"] for a in axes] == ["scan_y", "scan_x", "radius"]
        assert [bool(a["navigate"]) for a in axes] == [True, True, False]
        assert axes[1]["scale"] == pytest.approx(0.5) and axes[1]["units"] == "nm"
        assert axes[2]["offset"] == pytest.approx(0.125) and axes[2]["units"] == "mrad"
        s = f["Experiments/SumUDF_intensity"]
        a0 = dict(s["axis-0"].attrs)
        assert a0["offset"] == pytest.approx(-1.5) and a0["scale"] == pytest.approx(0.25)
        assert not a0["navigate"]
        assert s["metadata/General"].attrs["title"] == "SumUDF_intensity"


def test_hspy_opens_in_hyperspy(run, tmp_path):
    hs = pytest.importorskip("hyperspy.api")  # a test-only reader, never a dependency
    _, _, res = run
    path = tmp_path / "r.hspy"
    save_results(res, path, buffers=["RadialProfileUDF_profile"])
    s = hs.load(str(path))
    assert s.axes_manager.navigation_shape == (6, 5)
    assert s.axes_manager.signal_axes[0].units == "mrad"
    np.testing.assert_array_equal(s.data, res[2]["profile"].data)


def test_errors_before_any_work(run, tmp_path):
    _, _, res = run
    with pytest.raises(ExportError, match="suffix"):
        save_results(res, tmp_path / "r.json")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_results(res, tmp_path / "missing" / "r.h5")
    (tmp_path / "r.h5").write_bytes(b"old")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_results(res, tmp_path / "r.h5")
    assert (tmp_path / "r.h5").read_bytes() == b"old"
    save_results(res, tmp_path / "r.h5", overwrite=True)
    with h5py.File(tmp_path / "r.h5") as f:
        assert "entry" in f
    with pytest.raises(ExportError, match="no buffer named"):
        save_results(res, tmp_path / "q.h5", buffers=["nope"])
    with pytest.raises(ExportError, match="run_udf returns"):
        save_results([1, 2], tmp_path / "q.h5")
    assert sorted(os.listdir(tmp_path)) == ["r.h5"]


def test_unwritable_folder(run, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            save_results(run[2], folder / "r.npz")
    finally:
        folder.chmod(0o700)


def test_object_buffers_refused(ctx, tmp_path):
    class Obj(UDF):
        def get_result_buffers(self):
            return {"o": self.buffer(kind="nav", dtype=object), "v": self.buffer(kind="nav")}

        def process_frame(self, frame):
            self.results.o[0] = {"max": float(frame.max())}
            self.results.v[:] = frame.sum()

    res = ctx.run_udf(dataset=ctx.load("memory", data=np.ones((2, 2, 3, 3))), udf=Obj())
    with pytest.raises(ExportError, match="Python objects"):
        save_results(res, tmp_path / "r.h5")
    save_results(res, tmp_path / "r.h5", buffers=["v"])
    with h5py.File(tmp_path / "r.h5") as f:
        assert list(f["entry"]) == ["v"]


def test_failed_write_leaves_nothing(run, tmp_path, monkeypatch):
    from udfwidgets import export

    def broken(entries, tmp):
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setitem(export._WRITERS, ".npz", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        save_results(run[2], tmp_path / "r.npz")
    assert os.listdir(tmp_path) == []


# --- export_dataset ---------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".npy", ".h5"])
@pytest.mark.parametrize("with_roi", [False, True])
def test_export_dataset(any_ctx, tmp_path, rng, suffix, with_roi, monkeypatch):
    from udfwidgets import export

    monkeypatch.setattr(export, "EXPORT_BLOCK_BYTES", 3 * 8 * 7 * 4)  # 3 frames per block
    data = rng.integers(0, 1000, size=(6, 5, 8, 7), dtype=np.uint16)
    ds = any_ctx.load("memory", data=data, num_partitions=4)
    ds.calibration = Calibration(scan_step=1.5, scan_unit="nm")
    dark = rng.uniform(0, 10, size=(8, 7))
    corr = CorrectionSet(dark=dark, excluded_pixels=[(3, 3)])
    roi = None
    if with_roi:
        roi = np.zeros((6, 5), bool)
        roi[1:5, 1:4] = True
        roi[2, 2] = False
    path = tmp_path / f"out{suffix}"
    any_ctx.export_dataset(ds, path, roi=roi, corrections=corr)
    want = corr.apply(data)
    if with_roi:
        want = want[1:5, 1:4].copy()
        want[1, 1] = 0
    if suffix == ".npy":
        got = np.load(path)
    else:
        with h5py.File(path) as f:
            got = f["data"][()]
            assert Calibration(**json.loads(f["data"].attrs["calibration"])).scan_step == (1.5,)
            assert f["data"].attrs["corrected"]
            if with_roi:
                np.testing.assert_array_equal(f["data"].attrs["nav_origin"], [1, 1])
                np.testing.assert_array_equal(f["valid"][()], roi[1:5, 1:4])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    # plain copy, no corrections: native dtype, bit for bit
    plain = tmp_path / f"plain{suffix}"
    any_ctx.export_dataset(ds, plain, corrections=False)
    if suffix == ".npy":
        np.testing.assert_array_equal(np.load(plain), data)
        assert np.load(plain).dtype == np.uint16


def test_export_dataset_errors(ctx, tmp_path):
    ds = ctx.load("memory", data=np.ones((2, 3, 4, 4), dtype=np.uint16))
    with pytest.raises(ExportError, match=r"\.h5, \.hdf5 or \.npy"):
        ctx.export_dataset(ds, tmp_path / "x.zarr")
    with pytest.raises(ExportError, match="selects no frame"):
        ctx.export_dataset(ds, tmp_path / "x.npy", roi=np.zeros((2, 3), bool))
    with pytest.raises(CorrectionError, match="dark has shape"):
        ctx.export_dataset(ds, tmp_path / "x.npy", corrections=CorrectionSet(dark=np.ones((3, 3))))
    with pytest.raises(ValueError, match="roi"):
        ctx.export_dataset(ds, tmp_path / "x.npy", roi=np.zeros((5,), bool))
    assert os.listdir(tmp_path) == []


def test_a_process_forked_while_writing_does_not_lock_the_file(ctx, tmp_path, monkeypatch):
    # A worker that starts while an HDF5 file is being written inherits its descriptor for a
    # moment; with HDF5's file lock on the temporary file, the first reader of the finished
    # file then failed with BlockingIOError (seen as a flaky export test on processes).
    from udfwidgets import corrections

    data = np.arange(4 * 3 * 5 * 6, dtype=np.uint16).reshape(4, 3, 5, 6)
    ds = ctx.load("memory", data=data)
    children = []
    real = corrections.correct_tile

    def correct_and_fork(frames, corr):
        if not children:
            pid = os.fork()
            if pid == 0:  # the child only holds the inherited descriptors for a while
                import time

                time.sleep(3)
                os._exit(0)
            children.append(pid)
        return real(frames, corr)

    monkeypatch.setattr(corrections, "correct_tile", correct_and_fork)
    path = tmp_path / "out.h5"
    try:
        ctx.export_dataset(ds, path, corrections=CorrectionSet(dark=np.zeros((5, 6))))
        with h5py.File(path) as f:
            np.testing.assert_array_equal(f["data"][()], data.astype(np.float32))
    finally:
        for pid in children:
            os.waitpid(pid, 0)
    assert children
