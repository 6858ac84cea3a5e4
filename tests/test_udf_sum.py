"""SumUDF and SumSigUDF against np.sum over executors, partitions and rois."""

from __future__ import annotations

import numpy as np

from test_masks import assert_results, nav_expected, run_configs, selected
from udfwidgets.udf.sum import SumUDF
from udfwidgets.udf.sumsigudf import SumSigUDF


def test_sum_matches_numpy(any_ctx, data4d_int):
    for roi, n, res in run_configs(any_ctx, data4d_int, SumUDF):
        ref = selected(data4d_int, roi).astype(np.float64).sum(axis=0)
        assert res["intensity"].kind == "sig" and res["intensity"].dtype == np.float32
        assert_results(res, {"intensity": ref}, f"{n} partitions")


def test_sum_float64_accumulator(ctx, data4d):
    for roi, n, res in run_configs(ctx, data4d, lambda: SumUDF(dtype="float64")):
        assert res["intensity"].dtype == np.float64
        ref = selected(data4d, roi).astype(np.float64).sum(axis=0)
        assert_results(res, {"intensity": ref}, f"{n} partitions", rtol=1e-12)


def test_sumsig_matches_numpy(any_ctx, data4d_int):
    for roi, n, res in run_configs(any_ctx, data4d_int, SumSigUDF):
        ref = nav_expected(data4d_int.astype(np.float64).sum(axis=(2, 3)), roi, (6, 5))
        assert res["intensity"].kind == "nav"
        assert_results(res, {"intensity": ref}, f"{n} partitions")


def test_sumsig_1d_signal(ctx, rng):
    data = rng.random((3, 4, 10), dtype=np.float32)
    for roi, n, res in run_configs(ctx, data, SumSigUDF, sig_dims=1):
        ref = nav_expected(data.astype(np.float64).sum(axis=2), roi, (3, 4))
        assert_results(res, {"intensity": ref}, f"{n} partitions")
