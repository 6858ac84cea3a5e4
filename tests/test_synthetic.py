"""Synthetic 4D-STEM data: determinism, shapes, dtypes, files, and that the physics shows.

Every physical check recomputes the analysis with plain NumPy (virtual
detectors as distance masks, centre of mass as weighted means) and compares
it with the ground truth the generator reports.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from udfwidgets import Context, DataSetError
from udfwidgets.data import (
    FIRST_GRAIN_LABEL,
    LABEL_AMORPHOUS,
    LABEL_VACUUM,
    _poisson,
    make_4dstem,
    write_npy,
    write_raw,
)
from udfwidgets.io.synthetic import SyntheticDataSet

NAV, SIG = (32, 32), (64, 64)


@pytest.fixture(scope="module")
def scan():
    """A 32 x 32 x 64 x 64 scan and its truth, shared by the physics tests."""
    return make_4dstem(NAV, SIG, seed=7, return_truth=True)


def radius(truth, shift=(0.0, 0.0)) -> np.ndarray:
    """Distance of every detector pixel from the (shifted) disk centre, plain NumPy."""
    h, w = truth.sig_shape
    yy, xx = np.mgrid[:h, :w]
    return np.hypot(yy - truth.centre[0] - shift[0], xx - truth.centre[1] - shift[1])


def correlation_ratio(values: np.ndarray, groups: np.ndarray) -> float:
    """Share of the variance of ``values`` explained by the group means (eta squared)."""
    total = ((values - values.mean()) ** 2).sum()
    between = sum(
        ((groups == g).sum() * (values[groups == g].mean() - values.mean()) ** 2)
        for g in np.unique(groups)
    )
    return float(between / total)


# ------------------------------------------------------------------ determinism, shapes, dtypes
def test_same_seed_same_data_other_seed_differs():
    a = make_4dstem((6, 5), (32, 32), seed=3)
    b = make_4dstem((6, 5), (32, 32), seed=3)
    c = make_4dstem((6, 5), (32, 32), seed=4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # the specimen differs too, not only the noise
    ta = make_4dstem((6, 5), (32, 32), seed=3, return_truth=True)[1]
    tc = make_4dstem((6, 5), (32, 32), seed=4, return_truth=True)[1]
    assert not np.allclose(ta.shift, tc.shift)


def test_data_do_not_depend_on_the_thread_count():
    # 64 x 64 frames: 128 frames per noise block, so 300 frames make 3 blocks
    one = make_4dstem((300,), (64, 64), seed=1, n_threads=1)
    two = make_4dstem((300,), (64, 64), seed=1, n_threads=2)
    assert np.array_equal(one, two)


@pytest.mark.parametrize("nav", [(17,), (5, 7), (3, 4, 5)])
@pytest.mark.parametrize("dtype", ["uint16", "uint8", "int32", "float32"])
def test_shapes_and_dtypes(nav, dtype):
    data, truth = make_4dstem(nav, (24, 40), dtype=dtype, return_truth=True)
    assert data.shape == nav + (24, 40)
    assert data.dtype == np.dtype(dtype)
    assert truth.labels.shape == nav and truth.thickness.shape == nav
    assert truth.shift.shape == nav + (2,)
    assert truth.centre == (11.5, 19.5)
    assert data.min() >= 0
    # counts: whole numbers even in a float dtype
    assert np.array_equal(data, np.round(data))
    assert data.sum() > 0


def test_one_dimensional_scan_crosses_vacuum_film_and_grains():
    truth = make_4dstem((60,), (32, 32), return_truth=True)[1]
    labels = truth.labels
    assert labels[0] == LABEL_VACUUM and labels[-1] >= FIRST_GRAIN_LABEL
    assert (labels == LABEL_AMORPHOUS).any()
    # a line from left to right meets the regions in this order
    assert np.all(np.diff(np.minimum(labels, FIRST_GRAIN_LABEL)) >= 0)


def test_three_dimensional_scan_drifts():
    truth = make_4dstem((3, 16, 16), (32, 32), return_truth=True)[1]
    assert not np.array_equal(truth.labels[0], truth.labels[-1])


def test_uint8_saturates_like_a_counter():
    data = make_4dstem((4, 4), (32, 32), dtype="uint8", dose=2000.0)
    wide = make_4dstem((4, 4), (32, 32), dtype="uint32", dose=2000.0)
    assert wide.max() > 255
    assert np.array_equal(data, np.minimum(wide, 255))


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(nav_shape=(2, 2, 2, 2)), "nav_shape"),
        (dict(nav_shape=(0, 4)), "nav_shape"),
        (dict(sig_shape=(4, 4)), "sig_shape"),
        (dict(sig_shape=(32,)), "sig_shape"),
        (dict(dtype="complex64"), "dtype"),
        (dict(dtype="no-such-type"), "dtype"),
        (dict(seed=-1), "seed"),
        (dict(n_grains=0), "n_grains"),
        (dict(dose=0.0), "dose"),
        (dict(max_shift=100.0), "max_shift"),
    ],
)
def test_bad_parameters_name_themselves(kwargs, words):
    args = dict(nav_shape=(4, 4), sig_shape=(16, 16)) | kwargs
    with pytest.raises(ValueError, match=words):
        make_4dstem(**args)


# ------------------------------------------------------------------------------- the physics
def test_centre_of_mass_follows_the_truth_shift(scan):
    # Over the whole frame: every disk, the ring and the halo shift together and
    # stay inside the frame, so the centre of mass moves exactly with them.
    # (Inside a fixed bright-field mask the halo's share would pull it back.)
    data, truth = scan
    h, w = truth.sig_shape
    yy, xx = np.mgrid[:h, :w]
    frames = data.reshape(-1, h * w).astype(np.float64)
    total = frames.sum(axis=1)
    com = np.stack([frames @ yy.ravel(), frames @ xx.ravel()], axis=1) / total[:, None]
    measured = com - np.array(truth.centre)
    expected = truth.shift.reshape(-1, 2)
    assert np.abs(expected).max() > 1.0  # the field is there to be seen
    for axis in range(2):
        slope = np.polyfit(expected[:, axis], measured[:, axis], 1)[0]
        assert slope == pytest.approx(1.0, abs=0.05)
        assert np.corrcoef(expected[:, axis], measured[:, axis])[0, 1] > 0.9
        assert abs(np.mean(measured[:, axis] - expected[:, axis])) < 0.03  # no bias
    # in vacuum the disk alone is there: shot noise only
    vac = truth.vacuum.ravel()
    assert np.abs(measured[vac] - expected[vac]).max() < 0.25


def test_vacuum_has_the_brightest_bright_field_disk(scan):
    data, truth = scan
    disk = radius(truth) <= truth.detector_radii()["bf"][1]
    bf = data[..., disk].sum(axis=-1)
    assert truth.vacuum.any() and (~truth.vacuum).any()
    assert bf[truth.vacuum].min() > bf[~truth.vacuum].max()
    # and vacuum scatters nothing outside the disk: no counts at all there
    outside = radius(truth) > truth.radius + np.hypot(*truth.shift.reshape(-1, 2).T).max() + 2
    assert data[truth.vacuum][:, outside].sum() == 0


def test_bright_field_counts_are_poisson_with_the_dose():
    data, truth = make_4dstem((24, 24), (128, 128), seed=2, return_truth=True)
    pixels = []
    for frame, shift in zip(data[truth.vacuum], truth.shift[truth.vacuum]):
        pixels.append(frame[radius(truth, shift) < truth.radius - 1.5])
    pixels = np.concatenate(pixels).astype(np.float64)
    assert pixels.size > 2000
    assert pixels.mean() == pytest.approx(truth.dose, rel=0.02)
    assert pixels.var() / pixels.mean() == pytest.approx(1.0, abs=0.1)


def test_annular_dark_field_separates_the_grains(scan):
    data, truth = scan
    ri, ro = truth.detector_radii()["adf"]
    r = radius(truth)
    adf = data[..., (r > ri) & (r <= ro)].sum(axis=-1).astype(np.float64)
    grains = truth.crystalline
    assert len(np.unique(truth.labels[grains])) >= 4
    # grains differ far more from each other than frames within a grain
    assert correlation_ratio(adf[grains], truth.labels[grains]) > 0.8
    # stronger grains are brighter, and every grain is brighter than the film and vacuum
    means = [adf[truth.grain(g)].mean() for g in range(truth.n_grains) if truth.grain(g).any()]
    strengths = [s for g, s in enumerate(truth.grain_strengths) if truth.grain(g).any()]
    assert np.corrcoef(means, strengths)[0, 1] > 0.8
    assert min(means) > adf[truth.amorphous].mean() > adf[truth.vacuum].mean()


def test_amorphous_film_shows_a_ring(scan):
    data, truth = scan
    r = radius(truth)
    ring = np.abs(r - truth.ring_radius) <= truth.ring_width
    ring_mean = data[..., ring].mean(axis=-1)
    film = ring_mean[truth.amorphous].mean()
    assert film > 3 * ring_mean[truth.crystalline].mean()
    assert film > 3 * ring_mean[truth.vacuum].mean()


def test_bragg_disks_sit_where_the_truth_says(scan):
    data, truth = scan
    h, w = truth.sig_shape
    yy, xx = np.mgrid[:h, :w]
    for g in range(truth.n_grains):
        on_sum = off_sum = on_n = off_n = 0
        for iy, ix in np.argwhere(truth.grain(g))[:40]:
            frame, shift = data[iy, ix].astype(np.float64), truth.shift[iy, ix]
            near = [np.hypot(yy - sy, xx - sx) for sy, sx in truth.bragg_spots(g) + shift]
            on = np.any([d <= 0.6 * truth.radius for d in near], axis=0)
            # the same band of radii, away from every spot
            r = radius(truth, shift)
            band = np.abs(r - truth.lattice_spacing) < truth.radius
            off = band & np.all([d > truth.radius + 1.5 for d in near], axis=0)
            on_sum, on_n = on_sum + frame[on].sum(), on_n + on.sum()
            off_sum, off_n = off_sum + frame[off].sum(), off_n + off.sum()
        if on_n:
            assert on_sum / on_n > 5 * off_sum / off_n, g


def test_truth_helpers(scan):
    _, truth = scan
    assert truth.n_grains == 6 and len(truth.grain_strengths) == 6
    assert len(set(np.round(truth.grain_strengths, 6))) == 6
    labels = truth.labels
    assert np.array_equal(truth.vacuum, labels == 0)
    assert np.array_equal(truth.amorphous, labels == 1)
    assert np.array_equal(truth.crystalline, labels >= 2)
    assert np.array_equal(truth.disk_centres, truth.shift + np.array(truth.centre))
    assert np.all(truth.thickness[truth.vacuum] == 0)
    assert np.all(truth.thickness[~truth.vacuum] >= 0.3)
    with pytest.raises(ValueError, match="grain"):
        truth.grain(6)
    with pytest.raises(ValueError, match="grain"):
        truth.bragg_spots(-1)
    # the first Bragg disks are one lattice spacing away from the centre
    d = np.hypot(*(truth.bragg_spots(0) - np.array(truth.centre)).T)
    assert d.min() == pytest.approx(truth.lattice_spacing)
    # every spot disk stays inside the frame, whatever the shift
    h, w = truth.sig_shape
    reach = truth.radius + np.abs(truth.shift).max()
    for g in range(truth.n_grains):
        s = truth.bragg_spots(g)
        assert (s - reach >= 0).all() and (s[:, 0] + reach <= h - 1).all()
        assert (s[:, 1] + reach <= w - 1).all()


# ------------------------------------------------------------------------------- the noise
@pytest.mark.parametrize("lam", [0.0, 0.003, 0.2, 1.0, 2.9, 7.9, 8.1, 35.0])
def test_poisson_sampler_matches_the_distribution(lam):
    n = 200_000
    x = _poisson(np.full(n, lam, dtype=np.float32), np.random.default_rng(11)).astype(np.int64)
    assert x.mean() == pytest.approx(lam, abs=5 * math.sqrt(max(lam, 1e-3) / n))
    if lam == 0:
        assert not x.any()
        return
    # frequencies of the likely values within 5 standard errors of the pmf
    counts = np.bincount(x)
    for k in range(int(lam + 4 * math.sqrt(lam)) + 2):
        p = math.exp(-lam + k * math.log(lam) - math.lgamma(k + 1))
        observed = counts[k] / n if k < len(counts) else 0.0
        assert abs(observed - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-5, k


def test_poisson_sampler_on_mixed_rates_keeps_the_shape():
    lam = np.random.default_rng(0).exponential(2.0, size=(50, 40, 30)).astype(np.float32)
    x = _poisson(lam, np.random.default_rng(1))
    assert x.shape == lam.shape
    # sum of independent Poisson variables: mean and variance both sum(lam)
    total = lam.sum(dtype=np.float64)
    assert x.sum() == pytest.approx(total, abs=5 * math.sqrt(total))


# ------------------------------------------------------------------------------- files, dataset
def test_write_npy_and_raw_match_make_4dstem(tmp_path):
    ref, truth = make_4dstem((5, 6), (16, 24), dtype="uint16", seed=2, return_truth=True)
    t_npy = write_npy(tmp_path / "a.npy", (5, 6), (16, 24), seed=2)
    t_raw = write_raw(tmp_path / "a.raw", (5, 6), (16, 24), dtype=">u2", seed=2)
    assert np.array_equal(np.load(tmp_path / "a.npy"), ref)
    raw = np.fromfile(tmp_path / "a.raw", dtype=">u2").reshape(5, 6, 16, 24)
    assert np.array_equal(raw, ref)
    assert np.array_equal(t_npy.labels, truth.labels)
    assert np.array_equal(t_raw.shift, truth.shift)


def test_path_argument_writes_the_same_data(tmp_path):
    data = make_4dstem((4, 4), (16, 16), seed=5, path=tmp_path / "x.npy")
    make_4dstem((4, 4), (16, 16), seed=5, path=tmp_path / "x.bin")
    assert np.array_equal(np.load(tmp_path / "x.npy"), data)
    assert np.array_equal(np.fromfile(tmp_path / "x.bin", dtype="uint16").reshape(data.shape), data)


def test_written_files_load_as_datasets(tmp_path, ctx):
    from udfwidgets.udf.sum import SumUDF

    ref = make_4dstem((4, 5), (16, 16), seed=9)
    write_npy(tmp_path / "s.npy", (4, 5), (16, 16), seed=9)
    write_raw(tmp_path / "s.raw", (4, 5), (16, 16), seed=9)
    ds_npy = ctx.load("npy", path=tmp_path / "s.npy")
    ds_raw = ctx.load(
        "raw", path=tmp_path / "s.raw", nav_shape=(4, 5), sig_shape=(16, 16), dtype="uint16"
    )
    for ds in (ds_npy, ds_raw):
        got = ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data
        np.testing.assert_allclose(got, ref.sum(axis=(0, 1)))


def test_write_into_a_missing_folder_says_so(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        write_npy(tmp_path / "nope" / "a.npy", (2, 2), (16, 16))
    with pytest.raises(TypeError, match="colour"):
        write_raw(tmp_path / "a.raw", (2, 2), (16, 16), colour="red")


def test_synthetic_dataset_through_the_context(any_ctx):
    from udfwidgets.udf.sumsigudf import SumSigUDF

    ds = any_ctx.load("synthetic", nav_shape=(6, 7), sig_shape=(24, 24), seed=4, num_partitions=3)
    ref, truth = make_4dstem((6, 7), (24, 24), seed=4, return_truth=True)
    assert isinstance(ds, SyntheticDataSet)
    assert np.array_equal(ds.data, ref)
    assert np.array_equal(ds.truth.labels, truth.labels)
    assert len(ds.get_partitions(2)) == 3
    got = any_ctx.run_udf(dataset=ds, udf=SumSigUDF())["intensity"].data
    np.testing.assert_allclose(got, ref.sum(axis=(2, 3)))


def test_synthetic_dataset_errors_are_dataset_errors():
    with pytest.raises(DataSetError, match="sig_shape"):
        SyntheticDataSet(nav_shape=(4, 4), sig_shape=(2, 2))
    with pytest.raises(DataSetError, match="colour"):
        Context(executor="inline").load("synthetic", colour="red")


def test_synthetic_dataset_defaults_and_repr():
    ds = SyntheticDataSet(nav_shape=(3, 3), sig_shape=(16, 16), dtype="float32", seed=None)
    assert ds.dtype == np.float32 and ds.seed is None
    assert "SyntheticDataSet" in repr(ds) and "(3, 3, 16, 16)" in repr(ds)


# ------------------------------------------------------------------------------- speed
@pytest.mark.slow
def test_full_size_generation_time_is_printed(capsys):
    """Not a timed assertion: prints the time for the default 64 x 64 x 128 x 128 (target < 5 s)."""
    t0 = time.perf_counter()
    data = make_4dstem()
    seconds = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\nmake_4dstem() 64x64x128x128 uint16: {seconds:.2f} s")
    assert data.shape == (64, 64, 128, 128) and data.dtype == np.uint16
