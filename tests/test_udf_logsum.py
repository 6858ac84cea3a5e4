"""LogsumUDF against a NumPy reference over executors, partitions and rois."""

from __future__ import annotations

import numpy as np
import pytest

from test_masks import assert_results, run_configs, selected
from udfwidgets.udf.logsum import LogsumUDF


def logsum_reference(data: np.ndarray, roi) -> np.ndarray:
    frames = selected(data, roi).astype(np.float64)
    out = np.zeros(frames.shape[1:])
    for frame in frames:
        out += np.log(frame - frame.min() + 1)
    return out


def test_logsum_matches_numpy(any_ctx, data4d_int):
    for roi, n, res in run_configs(any_ctx, data4d_int, LogsumUDF):
        assert res["logsum"].kind == "sig" and res["logsum"].dtype == np.float32
        assert_results(res, {"logsum": logsum_reference(data4d_int, roi)}, f"roi, {n} partitions")


def test_logsum_float64_and_1d_signal(ctx, rng):
    data = (rng.random((5, 4, 9)) * 100 - 50).astype(np.float64)  # negative values too
    for roi, n, res in run_configs(ctx, data, lambda: LogsumUDF(dtype="float64"), sig_dims=1):
        frames = selected(data, roi, sig_dims=1)
        ref = np.log(frames - frames.min(axis=1, keepdims=True) + 1).sum(axis=0)
        assert res["logsum"].dtype == np.float64
        assert_results(res, {"logsum": ref}, f"{n} partitions", rtol=1e-12)


def test_logsum_differs_from_log_of_sum(ctx):
    # pixel 0 is slightly raised in nine frames, pixel 1 very bright in one frame:
    # the log of the sum ranks pixel 1 higher, the logsum ranks pixel 0 higher
    data = np.ones((10, 1, 2), dtype=np.float32) * np.array([11, 1], dtype=np.float32)
    data[0, 0] = [11, 201]  # frame 0: minimum 11
    res = ctx.run_udf(dataset=ctx.load("memory", data=data, sig_dims=2), udf=LogsumUDF())
    np.testing.assert_allclose(res["logsum"].data[0], [9 * np.log(11), np.log(191)], rtol=1e-6)
    total = data.sum(axis=0)[0]
    assert total[1] > total[0] and res["logsum"].data[0, 0] > res["logsum"].data[0, 1]


@pytest.mark.parametrize("bad", ["int32", "nope", complex])
def test_logsum_rejects_non_float_dtype(bad):
    with pytest.raises(ValueError, match="dtype must be a floating"):
        LogsumUDF(dtype=bad)
