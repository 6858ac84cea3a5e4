"""Mask factories in udfwidgets.masks, checked against per-pixel Python loops.

Also holds the helpers the standard-UDF tests share (``run_configs``,
``make_roi``, ``assert_results``): every standard UDF is run over rois (none,
random, all-False) and partition counts (1, 3, one per frame) and compared
with a plain-NumPy reference.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from udfwidgets import masks

# --- shared helpers for the standard-UDF tests ------------------------------------
ROI_KINDS = ("none", "random", "empty")


def make_roi(kind: str, nav_shape: tuple[int, ...], seed: int = 7) -> np.ndarray | None:
    """``None``, a random bool roi with both values present, or an all-False roi."""
    if kind == "none":
        return None
    if kind == "empty":
        return np.zeros(nav_shape, dtype=bool)
    roi = np.random.default_rng(seed).random(nav_shape) < 0.5
    flat = roi.reshape(-1)
    flat[0], flat[-1] = True, False
    return roi


def partition_counts(nav_shape: tuple[int, ...]) -> tuple[int, ...]:
    """1, 3 and one partition per frame."""
    return (1, 3, int(np.prod(nav_shape)))


def run_configs(
    ctx, data: np.ndarray, make_udf, sig_dims: int = 2, rois=ROI_KINDS, partitions=None
):
    """Yield ``(roi, num_partitions, results)`` for each roi kind and partition count."""
    nav_shape = data.shape[: data.ndim - sig_dims]
    for kind in rois:
        roi = make_roi(kind, nav_shape)
        for n in partitions or partition_counts(nav_shape):
            ds = ctx.load("memory", data=data, sig_dims=sig_dims, num_partitions=n)
            yield roi, n, ctx.run_udf(dataset=ds, udf=make_udf(), roi=roi)


def nav_expected(values: np.ndarray, roi: np.ndarray | None, nav_shape) -> np.ndarray:
    """A per-frame reference ``values`` (nav_shape + extra) with NaN outside the roi."""
    out = np.array(values, dtype=np.float64, copy=True)
    if roi is not None:
        out[~roi] = np.nan
    return out


def assert_results(res, expected: dict, where: str, rtol: float = 1e-5, atol: float = 1e-6):
    """Compare result buffers with reference arrays (NaN equal NaN), naming the case."""
    for name, ref in expected.items():
        got = np.asarray(res[name].data)
        ref = np.asarray(ref)
        assert got.shape == ref.shape, f"{name} ({where}): shape {got.shape} != {ref.shape}"
        np.testing.assert_allclose(
            got, ref, rtol=rtol, atol=atol, equal_nan=True, err_msg=f"{name} ({where})"
        )


def selected(data: np.ndarray, roi: np.ndarray | None, sig_dims: int = 2) -> np.ndarray:
    """The frames the roi selects, shape ``(n, *sig)``, in flat nav order."""
    flat = data.reshape((-1,) + data.shape[data.ndim - sig_dims :])
    return flat if roi is None else flat[roi.reshape(-1)]


# --- per-pixel loop references ------------------------------------------------------
def loop_mask(shape, pred) -> np.ndarray:
    h, w = shape
    out = np.zeros(shape, dtype=bool)
    for y in range(h):
        for x in range(w):
            out[y, x] = pred(y, x)
    return out


def test_disk_matches_loop():
    got = masks.disk((11, 13), centre=(4.5, 6), radius=3.2)
    ref = loop_mask((11, 13), lambda y, x: math.hypot(y - 4.5, x - 6) <= 3.2)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, ref.astype(np.float32))


def test_disk_bool_dtype_and_off_frame_centre():
    got = masks.disk((6, 6), centre=(-2, -2), radius=3, dtype=bool)
    assert got.dtype == bool
    ref = loop_mask((6, 6), lambda y, x: math.hypot(y + 2, x + 2) <= 3)
    np.testing.assert_array_equal(got, ref)


def test_ring_matches_loop_and_complements_disk():
    got = masks.ring((15, 15), centre=(7, 7), inner=2, outer=5, dtype=bool)
    ref = loop_mask((15, 15), lambda y, x: 2 < math.hypot(y - 7, x - 7) <= 5)
    np.testing.assert_array_equal(got, ref)
    inner = masks.disk((15, 15), (7, 7), 2, dtype=bool)
    outer = masks.disk((15, 15), (7, 7), 5, dtype=bool)
    assert not (got & inner).any()
    np.testing.assert_array_equal(got | inner, outer)
    assert masks.annulus is masks.ring


def test_rectangle_and_clipping():
    got = masks.rectangle((5, 6), top=1, left=2, height=3, width=2)
    ref = loop_mask((5, 6), lambda y, x: 1 <= y < 4 and 2 <= x < 4)
    np.testing.assert_array_equal(got, ref.astype(np.float32))
    clipped = masks.rectangle((5, 6), top=-2, left=4, height=4, width=10, dtype=bool)
    np.testing.assert_array_equal(clipped, loop_mask((5, 6), lambda y, x: y < 2 and x >= 4))


def test_point():
    got = masks.point((4, 5), y=3, x=1)
    assert got.sum() == 1 and got[3, 1] == 1


def test_sector_matches_loop_including_wrap():
    def ref(a0, a1, ri, ro):
        def pred(y, x):
            ang = math.degrees(math.atan2(y - 5, x - 4)) % 360
            r = math.hypot(y - 5, x - 4)
            in_angle = (ang - a0) % 360 < (a1 - a0)
            return in_angle and ri <= r < ro

        return loop_mask((10, 9), pred)

    for a0, a1, ri, ro in [(0, 90, 0, 4), (30, 200, 1, 10), (-45, 45, 0.5, 3.5), (300, 420, 0, 99)]:
        got = masks.sector(
            (10, 9), centre=(5, 4), start=a0, stop=a1, inner=ri, outer=ro, dtype=bool
        )
        np.testing.assert_array_equal(got, ref(a0, a1, ri, ro), err_msg=f"sector {a0}..{a1}")


def test_radial_bins_partition_the_disk():
    stack = masks.radial_bins((12, 12), centre=(5.5, 5.5), n_bins=4, r_max=6, dtype=bool)
    assert stack.shape == (4, 12, 12)
    assert stack.sum(axis=0).max() == 1  # no pixel in two bins
    r = np.hypot(*np.meshgrid(np.arange(12) - 5.5, np.arange(12) - 5.5, indexing="ij"))
    np.testing.assert_array_equal(stack.any(axis=0), r < 6)
    np.testing.assert_array_equal(stack[1], (r >= 1.5) & (r < 3))


def test_angular_sectors_cover_circle_once():
    stack = masks.angular_sectors((9, 9), centre=(4, 4), n_sectors=6, inner=1, outer=4, dtype=bool)
    assert stack.shape == (6, 9, 9)
    r = np.hypot(*np.meshgrid(np.arange(9) - 4, np.arange(9) - 4, indexing="ij"))
    np.testing.assert_array_equal(stack.sum(axis=0), ((r >= 1) & (r < 4)).astype(int))


def test_maps():
    r = masks.radius_map((3, 4), centre=(1, 0))
    np.testing.assert_allclose(r[0, 3], math.hypot(1, 3))
    a = masks.angle_map((3, 3), centre=(1, 1))
    np.testing.assert_allclose(np.degrees(a[0, 1]), 270)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: masks.disk((4,), (0, 0), 1), "sig_shape"),
        (lambda: masks.disk((4, 0), (0, 0), 1), "sig_shape"),
        (lambda: masks.disk((4, 4), (0,), 1), "centre"),
        (lambda: masks.disk((4, 4), (0, float("nan")), 1), "centre"),
        (lambda: masks.disk((4, 4), (0, 0), -1), "radius"),
        (lambda: masks.disk((4, 4), (0, 0), "3"), "radius"),
        (lambda: masks.ring((4, 4), (0, 0), 3, 2), "outer must be larger"),
        (lambda: masks.rectangle((4, 4), 0, 0, 0, 2), "height and width"),
        (lambda: masks.rectangle((4, 4), 0.5, 0, 1, 2), "top"),
        (lambda: masks.point((4, 4), 4, 0), "y must be"),
        (lambda: masks.sector((4, 4), (0, 0), 90, 10), "stop must be larger"),
        (lambda: masks.radial_bins((4, 4), (0, 0), 0, 3), "n_bins"),
        (lambda: masks.radial_bins((4, 4), (0, 0), 2, 1, r_min=2), "r_max"),
        (lambda: masks.disk((4, 4), (0, 0), 1, dtype="nope"), "dtype"),
    ],
)
def test_errors_name_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_is_sparse_does_not_import_scipy(monkeypatch):
    monkeypatch.delitem(sys.modules, "scipy.sparse", raising=False)
    assert masks.is_sparse(np.eye(3)) is False
    assert "scipy.sparse" not in sys.modules


def test_to_sparse_without_scipy_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.sparse", None)
    with pytest.raises(ImportError, match="pip install scipy"):
        masks.to_sparse(np.eye(3))


def test_to_sparse_with_scipy():
    sp = pytest.importorskip("scipy.sparse", reason="SciPy is optional; run with it installed")
    stack = masks.radial_bins((6, 7), centre=(3, 3), n_bins=3, r_max=3)
    m = masks.to_sparse(stack)
    assert sp.issparse(m) and masks.is_sparse(m)
    np.testing.assert_array_equal(m.toarray(), stack.reshape(3, -1))
    np.testing.assert_array_equal(masks.to_sparse(stack[0]).toarray(), stack[:1].reshape(1, -1))


# --- physical units ----------------------------------------------------------------
from udfwidgets import Calibration  # noqa: E402
from udfwidgets.calibration import CalibrationError  # noqa: E402

#: 0.25 mrad per pixel, beam centre at pixel (7, 9) of a 15x19 frame
CAL = Calibration(sig_step=0.25, sig_unit="mrad", beam_centre=(7, 9), beam_energy_kev=200)
SIG = (15, 19)


def test_disk_in_mrad_is_the_hand_computed_pixel_disk():
    # 1 mrad = 4 pixels: the pixels within distance 4 of (7, 9), written out by hand
    got = masks.disk(SIG, radius=1.0, unit="mrad", calibration=CAL, dtype=bool)
    want = np.zeros(SIG, dtype=bool)
    rows = {3: [9], 4: [7, 8, 9, 10, 11], 5: [6, 7, 8, 9, 10, 11, 12], 6: range(6, 13)}
    rows |= {7: range(5, 14), 8: range(6, 13), 9: range(6, 13), 10: range(7, 12), 11: [9]}
    for y, xs in rows.items():
        want[y, list(xs)] = True
    np.testing.assert_array_equal(got, want)
    assert got.sum() == 49
    np.testing.assert_array_equal(got, loop_mask(SIG, lambda y, x: math.hypot(y - 7, x - 9) <= 4))


def test_centre_in_physical_units_or_pixels():
    # centre 0.5 mrad below and 1 mrad left of the beam: pixel (7 + 2, 9 - 4) = (9, 5)
    got = masks.disk(SIG, (0.5, -1.0), 0.5, unit="mrad", calibration=CAL, dtype=bool)
    np.testing.assert_array_equal(got, masks.disk(SIG, (9, 5), 2, dtype=bool))
    px = masks.disk(SIG, (9, 5), 0.5, unit="mrad", calibration=CAL, centre_unit="px", dtype=bool)
    np.testing.assert_array_equal(px, got)
    # and the other way round: radius in pixels, centre in mrad (0, 0 = the beam centre)
    mixed = masks.disk(SIG, (0, 0), 3, calibration=CAL, centre_unit="mrad", dtype=bool)
    np.testing.assert_array_equal(mixed, masks.disk(SIG, (7, 9), 3, dtype=bool))


def test_reciprocal_units_convert_through_the_beam_energy():
    # 1/nm to mrad at 200 keV: 1 mrad = 0.3987 1/nm; radius 2 pixels = 0.5 mrad
    k = CAL.convert_sig(0.5, "mrad", "1/nm")
    got = masks.disk(SIG, radius=k, unit="1/nm", calibration=CAL, dtype=bool)
    np.testing.assert_array_equal(got, masks.disk(SIG, (7, 9), 2, dtype=bool))
    rad = masks.disk(SIG, radius=0.0005, unit="rad", calibration=CAL, dtype=bool)
    np.testing.assert_array_equal(rad, got)


def test_ring_sector_bins_in_mrad_match_pixel_versions():
    kw = {"unit": "mrad", "calibration": CAL, "dtype": bool}
    np.testing.assert_array_equal(
        masks.ring(SIG, inner=0.5, outer=1.5, **kw),
        loop_mask(SIG, lambda y, x: 2 < math.hypot(y - 7, x - 9) <= 6),
    )
    np.testing.assert_array_equal(
        masks.annulus(SIG, (0, 0), 0.5, 1.5, **kw), masks.ring(SIG, (7, 9), 2, 6, dtype=bool)
    )
    np.testing.assert_array_equal(
        masks.sector(SIG, start=0, stop=90, inner=0.25, outer=1.0, **kw),
        masks.sector(SIG, (7, 9), 0, 90, inner=1, outer=4, dtype=bool),
    )
    np.testing.assert_array_equal(
        masks.radial_bins(SIG, n_bins=3, r_max=1.5, **kw),
        masks.radial_bins(SIG, (7, 9), 3, 6, dtype=bool),
    )
    np.testing.assert_array_equal(
        masks.angular_sectors(SIG, n_sectors=4, inner=0.25, **kw),
        masks.angular_sectors(SIG, (7, 9), 4, inner=1, dtype=bool),
    )


def test_rectangle_and_point_in_mrad():
    # top-left 0.5 mrad above and left of the beam = pixel (5, 7); 1 x 0.75 mrad = 4 x 3 pixels
    got = masks.rectangle(SIG, -0.5, -0.5, 1.0, 0.75, unit="mrad", calibration=CAL, dtype=bool)
    want = np.zeros(SIG, dtype=bool)
    want[5:9, 7:10] = True
    np.testing.assert_array_equal(got, want)
    # between pixel centres: the pixels whose centre lies inside [-0.6, -0.1) mrad
    half = masks.rectangle(SIG, -0.6, 0, 0.5, 0.25, unit="mrad", calibration=CAL, dtype=bool)
    assert np.argwhere(half).tolist() == [[5, 9], [6, 9]]
    pt = masks.point(SIG, 0.26, -0.49, unit="mrad", calibration=CAL, dtype=bool)
    np.testing.assert_array_equal(pt, masks.point(SIG, 8, 7, dtype=bool))


def test_pixel_calls_unchanged_with_calibration_given():
    # without unit, lengths and centre stay pixels even when a calibration is passed
    np.testing.assert_array_equal(
        masks.disk(SIG, (3, 3), 2, calibration=CAL), masks.disk(SIG, (3, 3), 2)
    )
    # centre=None with a calibration: the beam centre, radius in pixels
    np.testing.assert_array_equal(
        masks.disk(SIG, radius=2, calibration=CAL), masks.disk(SIG, (7, 9), 2)
    )


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: masks.disk(SIG, (0, 0), 1.0, unit="mrad"), "needs calibration="),
        (lambda: masks.disk(SIG, radius=1.0), "centre is missing"),
        (lambda: masks.disk(SIG, (0, 0)), "radius is missing"),
        (
            lambda: masks.disk(SIG, radius=1.0, unit="nm", calibration=CAL),
            "cannot convert.*angle",
        ),
        (lambda: masks.disk(SIG, radius=1.0, unit="furlong", calibration=CAL), "unknown unit"),
        (
            lambda: masks.disk(SIG, radius=1.0, unit="mrad", calibration=Calibration()),
            "detector axes are in pixels",
        ),
        (
            lambda: masks.disk(
                SIG,
                radius=1.0,
                unit="1/nm",
                calibration=Calibration(sig_step=0.25, sig_unit="mrad", beam_centre=(7, 9)),
            ),
            "beam_energy_kev",
        ),
        (
            lambda: masks.ring(SIG, inner=1, outer=2, unit="mrad", calibration={"step": 1}),
            "must be a udfwidgets.Calibration",
        ),
        (
            lambda: masks.disk(
                SIG,
                radius=1.0,
                unit="mrad",
                calibration=Calibration(sig_step=(0.25, 0.5), sig_unit="mrad", beam_centre=(7, 9)),
            ),
            "not square",
        ),
        (lambda: masks.point(SIG, 5.0, 0, unit="mrad", calibration=CAL), "outside the frame"),
        (lambda: masks.disk(SIG, radius=-1.0, unit="mrad", calibration=CAL), "radius must be"),
    ],
)
def test_unit_errors_say_what_to_do(call, match):
    with pytest.raises(CalibrationError if "calibration" in match else ValueError, match=match):
        call()
