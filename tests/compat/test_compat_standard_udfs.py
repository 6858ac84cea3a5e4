"""Standard UDFs, masks and MemoryDataSet with LiberTEM's signatures and result names."""

from __future__ import annotations

import os

import numpy as np
import pytest

from udfwidgets import masks
from udfwidgets.io.geometry import MissingFramesWarning
from udfwidgets.io.memory import MemoryDataSet
from udfwidgets.udf.com import CoMParams, CoMUDF, RegressionOptions
from udfwidgets.udf.logsum import run_logsum
from udfwidgets.udf.masks import ApplyMasksUDF
from udfwidgets.udf.pick import PickUDF
from udfwidgets.udf.stddev import StdDevUDF, run_stddev


@pytest.fixture
def data(rng):
    return rng.random((5, 6, 8, 7), dtype=np.float32)


@pytest.fixture
def roi(rng):
    mask = rng.random((5, 6)) < 0.5
    mask[0, 0] = True
    return mask


def test_run_stddev_sum_and_names(any_ctx, data, roi):
    ds = any_ctx.load("memory", data=data, num_partitions=3)
    res = run_stddev(any_ctx, ds, roi=roi, use_numba=False)
    sel = data[roi].astype(np.float64)
    assert {"sum", "num_frames", "var", "mean", "std", "varsum"} <= set(res)
    assert res["num_frames"] == roi.sum()
    np.testing.assert_allclose(res["sum"], sel.sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(res["mean"], sel.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(res["var"], sel.var(axis=0), rtol=1e-4)
    assert "sum" in any_ctx.run_udf(dataset=ds, udf=StdDevUDF(use_numba=True))


def test_run_logsum(ctx, data):
    res = run_logsum(ctx=ctx, dataset=ctx.load("memory", data=data))
    minima = data.min(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(
        res["logsum"].data, np.log(data - minima + 1).sum(axis=(0, 1)), rtol=1e-4
    )


def _com_reference(data, cy, cx, r=np.inf, ri=0.0):
    h, w = data.shape[2:]
    y, x = np.indices((h, w), dtype=np.float64)
    d = np.hypot(y - cy, x - cx)
    mask = (d <= r) & ((d > ri) if ri > 0 else True)
    wsum = (data * mask).sum(axis=(2, 3))
    com_y = (data * mask * y).sum(axis=(2, 3)) / wsum
    com_x = (data * mask * x).sum(axis=(2, 3)) / wsum
    return np.stack([com_y - cy, com_x - cx], axis=-1)


def test_com_with_params_results(any_ctx, data, roi):
    ds = any_ctx.load("memory", data=data, num_partitions=2)
    udf = CoMUDF.with_params(cy=3.5, cx=2.7, r=3.2, ri=1.0)
    assert udf.params.com_params.ri == 1.0 and udf.params.com_params.cy == 3.5
    res = any_ctx.run_udf(dataset=ds, udf=udf, roi=roi)
    ref = _com_reference(data.astype(np.float64), 3.5, 2.7, 3.2, 1.0)
    np.testing.assert_allclose(res["field"].raw_data, ref[roi], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(res["field_y"].raw_data, ref[roi][:, 0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(res["field_x"].raw_data, ref[roi][:, 1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(res["magnitude"].raw_data, np.hypot(*ref[roi].T), rtol=1e-4)
    assert "raw_mask_result" not in res  # private, as in LiberTEM
    assert np.isnan(res["field_x"].data[~roi]).all()


def test_com_positional_params_and_default_centre(ctx, data):
    ds = ctx.load("memory", data=data)
    res = ctx.run_udf(dataset=ds, udf=CoMUDF(CoMParams()))
    ref = _com_reference(data.astype(np.float64), 8 // 2, 7 // 2)  # LiberTEM: h // 2, w // 2
    np.testing.assert_allclose(res["raw_shifts"].data, ref, rtol=1e-4, atol=1e-5)


def _spot_data(nav, sig, pos):
    data = np.zeros(nav + sig)
    for idx in np.ndindex(*nav):
        data[idx + pos(*idx)] = 1
    return data


@pytest.mark.parametrize("use_roi", [False, True])
def test_com_regression_numbering(ctx, rng, use_roi):
    # spot at (1 + 2y + 3x, 4 + y + 4x): shifts relative to (3, 3) are linear in the scan position
    data = _spot_data((5, 8), (64, 64), lambda y, x: (1 + 2 * y + 3 * x, 4 + y + 4 * x))
    ds = ctx.load("memory", data=data)
    roi = rng.random((5, 8)) < 0.7 if use_roi else None
    expected = [[-2, 1], [2, 1], [3, 4]]
    for regression in (1, RegressionOptions.SUBTRACT_LINEAR, expected):
        res = ctx.run_udf(
            dataset=ds, udf=CoMUDF.with_params(cy=3, cx=3, regression=regression), roi=roi
        )
        np.testing.assert_allclose(res["regression"].data, expected, atol=1e-10)
        np.testing.assert_allclose(res["field"].raw_data, 0, atol=1e-10)
    # 0: the mean is subtracted; -1: nothing
    res0 = ctx.run_udf(dataset=ds, udf=CoMUDF.with_params(cy=3, cx=3, regression=0), roi=roi)
    raw = res0["raw_shifts"].raw_data
    np.testing.assert_allclose(res0["regression"].data[0], raw.mean(axis=0), atol=1e-10)
    np.testing.assert_allclose(res0["field"].raw_data, raw - raw.mean(axis=0), atol=1e-10)
    res_none = ctx.run_udf(dataset=ds, udf=CoMUDF.with_params(cy=3, cx=3), roi=roi)
    np.testing.assert_allclose(res_none["field"].raw_data, raw, atol=1e-10)
    np.testing.assert_allclose(res_none["regression"].data, 0)


def test_com_libertem_parameter_errors():
    with pytest.raises(ValueError, match="inner radius"):
        CoMUDF.with_params(r=5.0, ri=10.0)
    with pytest.raises(ValueError, match="regression=5"):
        CoMUDF.with_params(regression=5)
    with pytest.raises(ValueError, match="not both"):
        CoMUDF(cy=3, com_params=CoMParams())


def _factory_on_main_guard(main_pid):
    # the mask factory refuses to run in the process that set up the run
    if os.getpid() == main_pid:
        raise RuntimeError("mask factory called on the main node")
    return np.ones((8, 7), dtype=np.float32)


def test_apply_masks_factories_run_only_on_workers(processes_ctx, data):
    import functools

    ds = processes_ctx.load("memory", data=data, num_partitions=2)
    factory = functools.partial(_factory_on_main_guard, main_pid=os.getpid())
    udf = ApplyMasksUDF(mask_factories=[factory], mask_count=1, mask_dtype=np.float32)
    res = processes_ctx.run_udf(dataset=ds, udf=udf)
    np.testing.assert_allclose(res["intensity"].data[..., 0], data.sum(axis=(2, 3)), rtol=1e-5)


def test_apply_masks_libertem_keywords(any_ctx, data, roi):
    ds = any_ctx.load("memory", data=data, num_partitions=2)
    m = masks.circular(centerX=3, centerY=4, imageSizeX=7, imageSizeY=8, radius=2)
    udf = ApplyMasksUDF(
        mask_factories=lambda: m,
        mask_count=1,
        mask_dtype=np.float64,
        preferred_dtype=np.float64,
        use_torch=False,
    )
    res = any_ctx.run_udf(dataset=ds, udf=udf, roi=roi)
    assert res["intensity"].dtype == np.float64
    np.testing.assert_allclose(
        res["intensity"].raw_data[:, 0], (data * m).sum(axis=(2, 3))[roi], rtol=1e-6
    )
    with pytest.raises(ValueError, match="mask_count=2, but the masks given hold 1"):
        any_ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(mask_factories=lambda: m, mask_count=2))


def _shifted_reference(data, mask, shifts):
    out = np.zeros(data.shape[:2])
    h, w = mask.shape
    for idx in np.ndindex(*data.shape[:2]):
        dy, dx = shifts[idx]
        total = 0.0
        for y in range(h):
            for x in range(w):
                my, mx = y - dy, x - dx
                if 0 <= my < h and 0 <= mx < w:
                    total += data[idx][y, x] * mask[my, mx]
        out[idx] = total
    return out


def test_apply_masks_shifts_constant_and_per_frame(any_ctx, data, rng):
    ds = any_ctx.load("memory", data=data, num_partitions=2)
    mask = rng.random((8, 7))
    const = np.broadcast_to(np.array([2, -1]), (5, 6, 2))
    res = any_ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(masks=mask, shifts=(2, -1)))
    np.testing.assert_allclose(
        res["intensity"].data[..., 0], _shifted_reference(data, mask, const), rtol=1e-5
    )
    per_frame = rng.integers(-3, 4, (5, 6, 2))
    shifts = ApplyMasksUDF.aux_data(per_frame, kind="nav", extra_shape=(2,), dtype=per_frame.dtype)
    res = any_ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(masks=mask, shifts=shifts))
    np.testing.assert_allclose(
        res["intensity"].data[..., 0], _shifted_reference(data, mask, per_frame), rtol=1e-5
    )


def test_pick_single_result(any_ctx, data, roi):
    ds = any_ctx.load("memory", data=data, num_partitions=3)
    res = any_ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)
    assert res["intensity"].kind == "single" and res["intensity"].data.dtype == data.dtype
    np.testing.assert_array_equal(res["intensity"].data, data[roi])
    empty = any_ctx.run_udf(dataset=ds, udf=PickUDF(), roi=np.zeros((5, 6), bool))
    assert empty["intensity"].data.shape == (0, 8, 7)


def test_masks_libertem_signatures_next_to_ours():
    ours = masks.disk((8, 7), centre=(4, 3), radius=2, dtype=bool)
    np.testing.assert_array_equal(masks.circular(3, 4, 7, 8, 2), ours)
    lt_ring = masks.ring(centerX=3, centerY=4, imageSizeX=7, imageSizeY=8, radius=3, radius_inner=1)
    assert lt_ring.dtype == bool
    np.testing.assert_array_equal(lt_ring, masks.ring((8, 7), (4, 3), inner=1, outer=3, dtype=bool))
    np.testing.assert_array_equal(masks.ring(3, 4, 7, 8, 3, 1), lt_ring)  # positional
    rect = masks.rectangular(X=2, Y=5, Width=3, Height=-2, imageSizeX=7, imageSizeY=8)
    np.testing.assert_array_equal(
        rect, masks.rectangle((8, 7), top=3, left=2, height=2, width=3, dtype=bool)
    )
    bins = masks.radial_bins(
        centerX=3, centerY=4, imageSizeX=7, imageSizeY=8, radius=3, n_bins=3, use_sparse=False
    )
    assert bins.shape == (3, 8, 7)
    r = np.hypot(*np.indices((8, 7)) - np.array([4, 3])[:, None, None])
    inside = r <= 2.5  # away from the outer edge, anti-aliased bins add up to 1
    np.testing.assert_allclose(bins.sum(axis=0)[inside], 1, atol=1e-12)
    sparse_bins = masks.radial_bins(3, 4, 7, 8, radius=3, n_bins=3, use_sparse=True)
    np.testing.assert_allclose(sparse_bins.todense(), bins)
    assert masks.radial_bins((5, 5), centre=(2, 2), n_bins=2, r_max=2).dtype == np.float32


def test_memory_dataset_libertem_arguments(any_ctx, data):
    ds = MemoryDataSet(data=data, tileshape=(2, 8, 7), num_partitions=3, sig_dims=2)
    assert ds.tile_depth == 2 and len(ds.get_partitions()) == 3
    depths = []

    from udfwidgets import UDF

    class Depth(UDF):
        def get_result_buffers(self):
            return {"n": self.buffer(kind="nav", dtype="int64")}

        def process_tile(self, tile):
            self.results.n[:] = tile.shape[0]

    res = any_ctx.run_udf(dataset=ds, udf=Depth())
    depths = res["n"].data
    assert depths.max() == 2 and depths.min() >= 1
    rand = MemoryDataSet(datashape=(4, 4, 3, 3), num_partitions=2)
    assert tuple(rand.shape) == (4, 4, 3, 3) and rand.dtype == np.float32


def test_memory_dataset_sync_offset_follows_the_geometry_rule(any_ctx, data):
    from udfwidgets.udf.pick import PickUDF as Pick

    with pytest.warns(MissingFramesWarning):
        ds = MemoryDataSet(data=data, sync_offset=4, num_partitions=2)
    res = any_ctx.run_udf(dataset=ds, udf=Pick())
    flat = data.reshape(30, 8, 7)
    got = res["intensity"].data
    np.testing.assert_array_equal(got[:26], flat[4:])
    np.testing.assert_array_equal(got[26:], 0)  # missing frames read as zeros
    with pytest.warns(MissingFramesWarning):
        neg = MemoryDataSet(data=data, sync_offset=-3, num_partitions=3)
    got = any_ctx.run_udf(dataset=neg, udf=Pick(), roi=np.ones((5, 6), bool))["intensity"].data
    np.testing.assert_array_equal(got[3:], flat[:27])
    np.testing.assert_array_equal(got[:3], 0)
