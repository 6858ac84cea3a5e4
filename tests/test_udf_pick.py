"""PickUDF: the picked frames are exactly the selected frames of the dataset."""

from __future__ import annotations

import numpy as np
import pytest

from test_masks import run_configs, selected
from udfwidgets.udf.pick import PickUDF


def test_pick_returns_selected_frames(any_ctx, data4d_int):
    for roi, n, res in run_configs(any_ctx, data4d_int, PickUDF):
        buf = res["intensity"]
        # LiberTEM's layout: a single buffer (n_picked, *sig), equal to data[roi]
        assert buf.kind == "single" and buf.dtype == np.uint16
        np.testing.assert_array_equal(
            buf.data, selected(data4d_int, roi), err_msg=f"{n} partitions"
        )
        assert "frames" not in res  # the private transport buffer


def test_pick_float_data_equals_data_at_roi(ctx, data4d):
    for roi, n, res in run_configs(ctx, data4d, PickUDF, rois=("random",)):
        np.testing.assert_array_equal(res["intensity"].data, data4d[roi], err_msg=f"{n} partitions")


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
