"""StdDevUDF against np.mean / np.var / np.std over executors, partitions and rois."""
from __future__ import annotations

import numpy as np
import pytest

from test_masks import assert_results, run_configs, selected
from udfwidgets.udf.stddev import StdDevUDF


def moments_reference(data, roi, ddof=0):
    frames = selected(data, roi).astype(np.float64)
    n = len(frames)
    if n <= ddof:
        nan = np.full(frames.shape[1:], np.nan)
        mean = frames.mean(axis=0) if n else nan
        return {"mean": mean, "var": nan, "std": nan, "num_frames": np.array([n])}
    return {"mean": frames.mean(axis=0), "var": frames.var(axis=0, ddof=ddof),
            "std": frames.std(axis=0, ddof=ddof), "num_frames": np.array([n])}


def test_stddev_matches_numpy(any_ctx, data4d):
    for roi, n, res in run_configs(any_ctx, data4d, StdDevUDF):
        assert res["std"].kind == "sig" and res["num_frames"].kind == "single"
        assert res["num_frames"].data.dtype == np.int64
        assert_results(res, moments_reference(data4d, roi), f"{n} partitions", rtol=1e-10)


def test_stddev_ddof1_integer_data(ctx, data4d_int):
    for roi, n, res in run_configs(ctx, data4d_int, lambda: StdDevUDF(ddof=1)):
        assert_results(res, moments_reference(data4d_int, roi, ddof=1), f"{n} partitions",
                       rtol=1e-10)


def test_stddev_all_false_roi_gives_nan(processes_ctx, data4d):
    ds = processes_ctx.load("memory", data=data4d, num_partitions=3)
    res = processes_ctx.run_udf(dataset=ds, udf=StdDevUDF(), roi=np.zeros((7, 9), dtype=bool))
    assert int(res["num_frames"].data[0]) == 0
    for name in ("mean", "var", "std"):
        assert res[name].data.shape == (6, 5) and np.isnan(res[name].data).all(), name


def test_stddev_large_offset_where_naive_formula_fails(any_ctx, rng):
    # 1e6 + noise of std 2 in float32: E[x^2] - E[x]^2 cancels ~12 of float64's 16 digits
    data = (1e6 + rng.normal(0, 2, size=(6, 8, 4, 4))).astype(np.float32)
    x = data.reshape(-1, 4, 4).astype(np.float64)
    ref_var = x.var(axis=0)  # two-pass: mean first, then squared deviations
    naive = (x ** 2).mean(axis=0) - x.mean(axis=0) ** 2
    naive_err = np.max(np.abs(naive - ref_var) / ref_var)
    assert naive_err > 1e-7, "test data too easy: the naive formula would pass too"
    for n in (1, 3, 48):
        ds = any_ctx.load("memory", data=data, num_partitions=n)
        res = any_ctx.run_udf(dataset=ds, udf=StdDevUDF())
        err = np.max(np.abs(res["var"].data - ref_var) / ref_var)
        assert err < 1e-10, f"{n} partitions: relative error {err:g} (naive formula: {naive_err:g})"
        np.testing.assert_allclose(res["mean"].data, x.mean(axis=0), rtol=1e-14)


def test_stddev_partial_results_are_consistent(ctx, data4d):
    ds = ctx.load("memory", data=data4d, num_partitions=3)
    for part in ctx.run_udf_iter(dataset=ds, udf=StdDevUDF()):
        done = part.damage.data.reshape(-1)
        frames = data4d.reshape(-1, 6, 5)[done].astype(np.float64)
        res = part.buffers[0]
        assert int(res["num_frames"].data[0]) == len(frames)
        np.testing.assert_allclose(res["var"].data, frames.var(axis=0), rtol=1e-10)


@pytest.mark.parametrize("bad", [-1, 0.5, True, "1"])
def test_stddev_rejects_bad_ddof(bad):
    with pytest.raises(ValueError, match="ddof must be a non-negative integer"):
        StdDevUDF(ddof=bad)
