"""CoMUDF against per-frame loops, exact sub-pixel spots and hand-written differences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from test_masks import assert_results, nav_expected, run_configs
from udfwidgets.udf.com import CoMUDF


def com_reference(data, roi, cy, cx, r):
    """Centre of mass per frame with explicit loops over pixels."""
    nav, (h, w) = data.shape[:-2], data.shape[-2:]
    out = np.full(nav + (2,), np.nan)
    for idx in np.ndindex(*nav):
        frame = data[idx].astype(np.float64)
        tot = sy = sx = 0.0
        for y in range(h):
            for x in range(w):
                if r is None or math.hypot(y - cy, x - cx) <= r:
                    tot += frame[y, x]
                    sy += frame[y, x] * y
                    sx += frame[y, x] * x
        if tot != 0:
            out[idx] = (sy / tot, sx / tot)
    return nav_expected(out, roi, nav)


def diff(f, axis):
    """Central differences with one-sided ends, written out by hand (no np.gradient)."""
    f = np.moveaxis(f, axis, 0)
    n = f.shape[0]
    out = np.empty_like(f)
    if n == 1:
        out[:] = 0
    for i in range(n) if n > 1 else ():
        if i == 0:
            out[i] = f[1] - f[0]
        elif i == n - 1:
            out[i] = f[n - 1] - f[n - 2]
        else:
            out[i] = (f[i + 1] - f[i - 1]) / 2
    return np.moveaxis(out, 0, axis)


def spot_data(nav_shape, positions, sig=(16, 16)):
    """One bilinearly spread unit spot per frame: its centre of mass is exactly ``positions``."""
    data = np.zeros(tuple(nav_shape) + sig, dtype=np.float32)
    for idx in np.ndindex(*nav_shape):
        y, x = positions[idx]
        y0, x0 = int(np.floor(y)), int(np.floor(x))
        fy, fx = y - y0, x - x0
        data[idx + (y0, x0)] += (1 - fy) * (1 - fx)
        data[idx + (y0 + 1, x0)] += fy * (1 - fx)
        data[idx + (y0, x0 + 1)] += (1 - fy) * fx
        data[idx + (y0 + 1, x0 + 1)] += fy * fx
    return data


# documented accuracy: ~1e-5 px with float32 work (the default for float32 and
# 16-bit data), ~1e-12 with dtype=np.float64
TOL = {None: dict(rtol=1e-6, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


@pytest.mark.parametrize("dtype", [None, np.float64])
def test_com_matches_loops(any_ctx, data4d, dtype):
    make = lambda: CoMUDF(cy=2.5, cx=2, r=2, dtype=dtype)  # noqa: E731
    for roi, n, res in run_configs(any_ctx, data4d, make):
        com = com_reference(data4d, roi, 2.5, 2, 2)
        assert res["raw_com"].kind == "nav" and res["raw_com"].extra_shape == (2,)
        shifts = com - np.array([2.5, 2.0])
        assert_results(
            res,
            {
                "raw_com": com,
                "raw_shifts": shifts,
                "field": shifts,
                "magnitude": np.hypot(shifts[..., 0], shifts[..., 1]),
            },
            f"{n} partitions",
            **TOL[dtype],
        )


@pytest.mark.parametrize("dtype", [None, np.float64])
def test_com_default_centre_whole_frame(ctx, data4d_int, dtype):
    h, w = data4d_int.shape[2:]
    for roi, n, res in run_configs(ctx, data4d_int, lambda: CoMUDF(dtype=dtype)):
        com = com_reference(data4d_int, roi, None, None, None)
        assert_results(
            res,
            {"raw_com": com, "raw_shifts": com - np.array([(h - 1) / 2, (w - 1) / 2])},
            f"{n} partitions",
            **TOL[dtype],
        )


@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.float64, np.int32])
def test_com_large_frames_many_chunks(ctx, rng, dtype):
    # frames wider than one float32 block (CHUNK_PIXELS), a disk off centre, bright
    # counts: the blocks and the disk's pixel span must add up to the float64 answer
    sig = (96, 128)
    y, x = np.indices(sig)
    spot = np.exp(-((y - 40.3) ** 2 + (x - 70.6) ** 2) / 50.0)
    data = rng.poisson(2000 * spot + 5, size=(4, 6) + sig).astype(dtype)
    ds = ctx.load("memory", data=data, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=CoMUDF(cy=45, cx=66, r=30))
    ref = com_reference(data, None, 45, 66, 30)
    np.testing.assert_allclose(res["raw_com"].data, ref, rtol=0, atol=1e-5)
    assert (
        np.abs(ref - [40.3, 70.6]).max() < 0.5
    )  # the reference finds the spot (background pulls a little)


def test_com_float64_work_changes_the_arithmetic(ctx, rng):
    data = (1000 + rng.random((4, 4, 64, 80))).astype(np.float32)
    ref = com_reference(data, None, None, None, None)
    ds = ctx.load("memory", data=data)
    err = {
        dt: np.abs(ctx.run_udf(dataset=ds, udf=CoMUDF(dtype=dt))["raw_com"].data - ref).max()
        for dt in (None, np.float64)
    }
    assert err[np.float64] < 1e-11 < err[None] < 1e-5, err


def test_divergence_and_curl_match_hand_differences(any_ctx, rng):
    nav = (5, 6)
    pos = 6 + rng.random(nav + (2,)) * 4
    data = spot_data(nav, pos)
    for roi, n, res in run_configs(any_ctx, data, lambda: CoMUDF(cy=7, cx=8), partitions=(3,)):
        f = nav_expected(pos - np.array([7, 8]), roi, nav)
        fy, fx = f[..., 0], f[..., 1]
        div = diff(fy, 0) + diff(fx, 1)
        curl = diff(fy, 1) - diff(fx, 0)
        assert_results(
            res,
            {"field": f, "divergence": div, "curl": curl},
            f"roi {roi is not None}, {n} partitions",
            rtol=1e-6,
            atol=1e-6,
        )
        if roi is not None and roi.any():
            # outside the roi and next to it the derivative is undefined: NaN, no crash
            assert np.isnan(res["divergence"].data[~roi]).all()


def test_linear_regression_removes_descan(any_ctx, rng):
    nav = (6, 7)
    iy, ix = np.indices(nav, dtype=np.float64)
    descan = np.stack([1.5 + 0.3 * iy - 0.2 * ix, -0.5 + 0.1 * iy + 0.25 * ix], axis=-1)
    local = np.zeros(nav + (2,))
    local[2, 3] = (0.4, -0.3)  # one real deflection on top of the descan
    data = spot_data(nav, np.array([8.0, 8.0]) + descan + local, sig=(20, 20))
    for roi, n, res in run_configs(
        any_ctx, data, lambda: CoMUDF(cy=8, cx=8, regression=1), partitions=(3,)
    ):
        if roi is not None and not roi.any():
            assert np.isnan(res["field"].data).all()
            assert np.isnan(res["regression_coefficients"].data).all()
            continue
        raw = nav_expected(descan + local, roi, nav)
        assert_results(res, {"raw_shifts": raw}, f"raw, {n} partitions", rtol=1e-6, atol=1e-6)
        field = res["field"].data
        # the fit absorbs a little of the single deflection; everything else is ~flat
        sel = np.ones(nav, bool) if roi is None else roi
        resid = field[sel]
        assert np.abs(resid).max() < 0.45
        coef = res["regression_coefficients"].data
        assert coef.shape == (3, 2)
        k = sel.sum()
        np.testing.assert_allclose(coef[1:], [[0.3, 0.1], [-0.2, 0.25]], atol=0.6 / k + 1e-6)
        assert np.isnan(field[~sel]).all()


def test_regression_exact_for_pure_descan(ctx):
    nav = (4, 5)
    iy, ix = np.indices(nav, dtype=np.float64)
    descan = np.stack([0.3 * iy - 0.2 * ix + 1, 0.1 * iy + 0.25 * ix - 2], axis=-1)
    data = spot_data(nav, np.array([8.0, 8.0]) + descan)
    res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=CoMUDF(cy=8, cx=8, regression=1))
    np.testing.assert_allclose(res["field"].data, 0, atol=1e-6)
    np.testing.assert_allclose(
        res["regression_coefficients"].data, [[1, -2], [0.3, 0.1], [-0.2, 0.25]], atol=1e-6
    )
    res0 = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=CoMUDF(cy=8, cx=8))
    np.testing.assert_allclose(res0["field"].data, descan, atol=1e-6)
    np.testing.assert_array_equal(res0["regression_coefficients"].data, 0)


def test_empty_frame_and_1d_scan(ctx):
    data = np.zeros((4, 5, 5), dtype=np.float32)
    data[1, 0, 0] = 1
    data[2, 4, 1] = 3
    data[2, 2, 3] = 1
    res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=CoMUDF())
    com = res["raw_com"].data
    assert np.isnan(com[0]).all() and np.isnan(com[3]).all()
    np.testing.assert_allclose(com[1:3], [[0, 0], [3.5, 1.5]])
    assert np.isnan(res["divergence"].data).all() and np.isnan(res["curl"].data).all()
    assert res["regression_coefficients"].data.shape == (2, 2)


def test_mask_radius_excludes_outer_pixels(ctx):
    data = np.zeros((1, 1, 9, 9), dtype=np.float32)
    data[0, 0, 4, 5] = 1
    data[0, 0, 0, 0] = 100  # far outside r=2 around the centre
    res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=CoMUDF(r=2))
    np.testing.assert_allclose(res["raw_com"].data[0, 0], [4, 5])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"regression": 2}, "regression must be 0"),
        ({"regression": True}, "regression must be 0"),
        ({"r": 0}, "r must be a positive radius"),
        ({"r": -1}, "r must be"),
        ({"cy": "1"}, "cy must be a number"),
        ({"cx": float("inf")}, "cx must be a finite"),
        ({"flip_y": 1}, "flip_y must be True or False"),
        ({"scan_rotation": "90"}, "scan_rotation must be a number"),
        ({"dtype": "int16"}, "dtype must be None or a float type"),
    ],
)
def test_parameter_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CoMUDF(**kwargs)


def test_needs_2d_frames(ctx):
    ds = ctx.load("memory", data=np.ones((3, 4, 5)), sig_dims=1)
    with pytest.raises(ValueError, match="CoMUDF needs 2D frames"):
        ctx.run_udf(dataset=ds, udf=CoMUDF())


@pytest.mark.parametrize(
    "flip_y, angle", [(True, 0.0), (False, 90.0), (True, 30.0), (False, -135.0)]
)
def test_flip_and_scan_rotation(ctx, rng, flip_y, angle):
    nav = (3, 4)
    shifts = rng.random(nav + (2,)) * 2 - 1
    data = spot_data(nav, 8 + shifts)
    res = ctx.run_udf(
        dataset=ctx.load("memory", data=data),
        udf=CoMUDF(cy=8, cx=8, flip_y=flip_y, scan_rotation=angle),
    )
    sy, sx = shifts[..., 0], shifts[..., 1]
    if flip_y:
        sy = -sy
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    expected = np.stack([s * sx + c * sy, c * sx - s * sy], axis=-1)
    np.testing.assert_allclose(res["raw_shifts"].data, shifts, atol=1e-6)
    np.testing.assert_allclose(res["field"].data, expected, atol=1e-6)
    np.testing.assert_allclose(res["magnitude"].data, np.hypot(sx, sy), atol=1e-6)


def test_rotation_90_maps_x_shift_to_y(ctx):
    data = spot_data((1, 1), np.array([[[8.0, 9.0]]]))  # shifted +1 in x on the detector
    udf = CoMUDF(cy=8, cx=8, scan_rotation=90)
    res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=udf)
    np.testing.assert_allclose(res["field"].data[0, 0], [1, 0], atol=1e-12)


def test_partial_results_cover_merged_frames_only(ctx, rng):
    nav = (4, 5)
    pos = 7 + rng.random(nav + (2,)) * 2
    data = spot_data(nav, pos)
    ds = ctx.load("memory", data=data, num_partitions=4)
    seen = 0
    for part in ctx.run_udf_iter(dataset=ds, udf=CoMUDF(cy=8, cx=8, regression=1)):
        seen += 1
        done = part.damage.data
        res = part.buffers[0]  # read while iterating: partial buffers are computed lazily
        np.testing.assert_allclose(res["raw_com"].data[done], pos[done], atol=1e-6)
        assert np.isnan(res["raw_com"].data[~done]).all()
        assert np.isnan(res["field"].data[~done]).all()
        assert np.isfinite(res["regression_coefficients"].data).all()
    assert seen == 4


def com_whole_frame_float64(data, roi):
    """Whole-frame centre of mass in float64, vectorised (big frames)."""
    nav, (h, w) = data.shape[:-2], data.shape[-2:]
    y, x = np.indices((h, w))
    flat = data.reshape(nav + (-1,)).astype(np.float64)
    sums = flat @ np.stack([np.ones(h * w), y.ravel(), x.ravel()], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        com = sums[..., 1:] / sums[..., :1]
    return nav_expected(com, roi, nav)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.int16])
def test_com_whole_frame_large_frames_match_float64(any_ctx, rng, dtype):
    # CoMUDF's default over frames of 72 x 70 pixels (more than one block of the
    # compiled kernel), integer and float data, every roi kind and partition count
    sig = (72, 70)
    y, x = np.indices(sig)
    spot = np.exp(-((y - 30.2) ** 2 + (x - 41.7) ** 2) / 40.0)
    data = rng.poisson(3000 * spot + 20, size=(4, 5) + sig).astype(dtype)
    for roi, n, res in run_configs(any_ctx, data, lambda: CoMUDF()):
        assert_results(
            res, {"raw_com": com_whole_frame_float64(data, roi)}, f"{n}", rtol=0, atol=1e-5
        )


def test_com_numpy_path_without_the_kernel(ctx, rng, monkeypatch):
    # the BLAS-block path (numba missing or UDFWIDGETS_NUMBA=0) gives the same answer
    from udfwidgets.udf import _products

    monkeypatch.setattr(_products, "_KERNEL", None)
    monkeypatch.setattr(_products, "_TRIED", True)
    data = rng.poisson(50, size=(3, 4, 72, 70)).astype(np.uint16)
    for roi, n, res in run_configs(ctx, data, lambda: CoMUDF()):
        assert_results(
            res, {"raw_com": com_whole_frame_float64(data, roi)}, f"{n}", rtol=0, atol=1e-5
        )


def test_weights_are_made_once_for_runs_with_the_same_parameters(ctx, rng, monkeypatch):
    # a 256x256 frame's weights took 8 ms, on the main node and in every task
    from udfwidgets.udf import com

    made = []
    real_disk = com.disk
    monkeypatch.setattr(com, "disk", lambda *a, **k: made.append(a) or real_disk(*a, **k))
    com._weights.cache_clear()
    data = rng.poisson(50, size=(3, 4, 16, 16)).astype(np.float32)
    for r in (4.0, 6.0, 4.0, 6.0):
        res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=CoMUDF(cy=7, cx=8, r=r))
        assert_results(res, {"raw_com": com_reference(data, None, 7, 8, r)}, f"r={r}")
    assert [a[2] for a in made] == [4.0, 6.0]  # inline: main node and tasks share the cache
    _, weights = com._weights((16, 16), 7.0, 8.0, ("disk", 4.0), np.dtype(np.float32))
    assert not weights.flags.writeable  # shared between runs: nobody may change them
