"""Small LiberTEM behaviours: ``results["x"].raw_data``, ``DataSet.roi``, CoMUDF with
LiberTEM's parameters on a scan that is not 2D. Written from LiberTEM's documentation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from udfwidgets import UDF
from udfwidgets.udf import UseDiscouragedWarning
from udfwidgets.udf.com import CoMParams, CoMUDF
from udfwidgets.udf.sumsigudf import SumSigUDF


class DictAccessInPostprocess(UDF):
    def get_result_buffers(self):
        return {
            "framesum": self.buffer(kind="nav", dtype="float64"),
            "seen": self.buffer(kind="single", dtype="int64"),
        }

    def process_frame(self, frame):
        self.results.framesum[:] = frame.sum()

    def postprocess(self):
        # LiberTEM-era code: dict access and .raw_data on the partition's buffer
        raw = self.results["framesum"].raw_data
        assert type(raw) is np.ndarray
        self.results.get_buffer("seen").raw_data[:] += len(raw)
        self.results["framesum"][:] *= 2  # dict access still writes into the buffer

    def merge(self, dest, src):
        dest.framesum[:] = src.framesum
        dest.seen += src.seen


def test_dict_access_in_postprocess_has_raw_data_and_warns(any_ctx, rng, request):
    data = rng.random((3, 4, 5, 5), dtype=np.float32)
    ds = any_ctx.load("memory", data=data, num_partitions=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = any_ctx.run_udf(dataset=ds, udf=DictAccessInPostprocess())
    if request.node.callspec.params["any_ctx"] in ("inline", "threads"):  # same process
        assert any(issubclass(w.category, UseDiscouragedWarning) for w in caught)
    assert int(res["seen"].data[0]) == 12
    np.testing.assert_allclose(res["framesum"].data, 2 * data.sum(axis=(-1, -2)), rtol=1e-5)


def test_dataset_roi_makes_a_fresh_mask_by_indexing(ctx):
    ds = ctx.load("memory", data=np.ones((2, 3, 4, 4), dtype=np.float32))
    roi = ds.roi[0, 0]
    assert roi.dtype == bool and roi.shape == (2, 3) and roi.sum() == 1 and roi[0, 0]
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=roi)
    assert np.isnan(res["intensity"].data).sum() == 5
    roi[:] = ds.roi[:, :]  # changing the mask afterwards does not change the result
    assert roi.all() and np.isnan(res["intensity"].data).sum() == 5
    np.testing.assert_array_equal(ds.roi[1, 1:], [[False] * 3, [False, True, True]])


@pytest.mark.parametrize("nav_shape", [(4,), (2, 2, 2)])
def test_com_with_libertem_parameters_needs_a_2d_scan(ctx, nav_shape):
    ds = ctx.load("memory", data=np.ones(nav_shape + (6, 6), dtype=np.float32))
    for udf in (CoMUDF.with_params(r=2.0), CoMUDF(CoMParams())):
        with pytest.raises(ValueError, match="needs a 2D scan"):
            ctx.run_udf(dataset=ds, udf=udf)
    # our keywords stay documented for 1D and 3D scans
    res = ctx.run_udf(dataset=ds, udf=CoMUDF(r=2.0))
    assert res["raw_com"].data.shape == nav_shape + (2,)
