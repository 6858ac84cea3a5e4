"""PickUDF: the picked frames are exactly the selected frames of the dataset."""
from __future__ import annotations

import numpy as np
import pytest

from test_masks import run_configs, selected
from udfwidgets.udf.pick import PickUDF


def test_pick_returns_selected_frames(any_ctx, data4d_int):
    for roi, n, res in run_configs(any_ctx, data4d_int, PickUDF):
        buf = res["intensity"]
        assert buf.kind == "nav" and buf.extra_shape == (8, 7) and buf.dtype == np.uint16
        np.testing.assert_array_equal(buf.raw_data, selected(data4d_int, roi),
                                      err_msg=f"{n} partitions")
        full = buf.data
        assert full.shape == data4d_int.shape
        expected = data4d_int.copy()
        if roi is not None:
            expected[~roi] = 0  # integer buffers hold 0 outside the roi
        np.testing.assert_array_equal(full, expected)


def test_pick_float_data_nan_outside_roi(ctx, data4d):
    for roi, n, res in run_configs(ctx, data4d, PickUDF, rois=("random",)):
        full = res["intensity"].data
        np.testing.assert_array_equal(full[roi], data4d[roi])
        assert np.isnan(full[~roi]).all()


def test_pick_by_coordinates_and_dtype(any_ctx, data4d_int):
    ds = any_ctx.load("memory", data=data4d_int, num_partitions=3)
    coords = [(0, 4), (3, 1), (5, 0)]
    res = any_ctx.run_udf(dataset=ds, udf=PickUDF(dtype="float64"), roi=coords)
    raw = res["intensity"].raw_data
    assert raw.dtype == np.float64
    np.testing.assert_array_equal(raw, np.stack([data4d_int[c] for c in coords]).astype(np.float64))


def test_pick_1d_signal_and_1d_nav(ctx, rng):
    data = rng.random((10, 6), dtype=np.float32)
    res = ctx.run_udf(dataset=ctx.load("memory", data=data, sig_dims=1), udf=PickUDF(), roi=[(7,)])
    np.testing.assert_array_equal(res["intensity"].raw_data, data[7:8])


def test_pick_rejects_bad_dtype():
    with pytest.raises(ValueError, match="dtype must be a NumPy dtype"):
        PickUDF(dtype="notadtype")
