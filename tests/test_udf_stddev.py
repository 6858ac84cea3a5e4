"""StdDevUDF against np.mean / np.var / np.std over executors, partitions and rois."""

from __future__ import annotations

import numpy as np
import pytest

from test_masks import assert_results, run_configs, selected
from udfwidgets.udf.stddev import StdDevUDF, working_dtype

# documented accuracy: ~1e-7 relative with float32 work inside tiles, ~1e-15 with float64
RTOL = {None: 1e-6, np.float64: 1e-10}


def moments_reference(data, roi, ddof=0):
    frames = selected(data, roi).astype(np.float64)
    n = len(frames)
    if n <= ddof:
        nan = np.full(frames.shape[1:], np.nan)
        mean = frames.mean(axis=0) if n else nan
        return {"mean": mean, "var": nan, "std": nan, "num_frames": np.array([n])}
    return {
        "mean": frames.mean(axis=0),
        "var": frames.var(axis=0, ddof=ddof),
        "std": frames.std(axis=0, ddof=ddof),
        "num_frames": np.array([n]),
    }


@pytest.mark.parametrize("dtype", [None, np.float64])
def test_stddev_matches_numpy(any_ctx, data4d, dtype):
    for roi, n, res in run_configs(any_ctx, data4d, lambda: StdDevUDF(dtype=dtype)):
        assert res["std"].kind == "sig" and res["num_frames"].kind == "single"
        assert res["num_frames"].data.dtype == np.int64
        assert res["var"].data.dtype == np.float64
        assert_results(res, moments_reference(data4d, roi), f"{n} partitions", rtol=RTOL[dtype])


@pytest.mark.parametrize("dtype", [None, np.float64])
def test_stddev_ddof1_integer_data(ctx, data4d_int, dtype):
    for roi, n, res in run_configs(ctx, data4d_int, lambda: StdDevUDF(ddof=1, dtype=dtype)):
        assert_results(
            res, moments_reference(data4d_int, roi, ddof=1), f"{n} partitions", rtol=RTOL[dtype]
        )


def test_float64_work_is_more_accurate_than_float32(ctx, rng):
    # the option must change the arithmetic, not just the label
    data = (100 + rng.random((8, 8, 5, 5))).astype(np.float32)
    ref = data.reshape(-1, 5, 5).astype(np.float64).var(axis=0)
    ds = ctx.load("memory", data=data, num_partitions=2)
    errs = {}
    for dtype in (None, np.float64):
        var = ctx.run_udf(dataset=ds, udf=StdDevUDF(dtype=dtype))["var"].data
        errs[dtype] = np.max(np.abs(var - ref) / ref)
    assert errs[np.float64] < 1e-12 < errs[None] < 1e-6, errs


def test_stddev_all_false_roi_gives_nan(processes_ctx, data4d):
    ds = processes_ctx.load("memory", data=data4d, num_partitions=3)
    res = processes_ctx.run_udf(dataset=ds, udf=StdDevUDF(), roi=np.zeros((7, 9), dtype=bool))
    assert int(res["num_frames"].data[0]) == 0
    for name in ("mean", "var", "std"):
        assert res[name].data.shape == (6, 5) and np.isnan(res[name].data).all(), name


@pytest.mark.parametrize("dtype", [None, np.float64])
def test_stddev_large_offset_where_naive_formula_fails(any_ctx, rng, dtype):
    # 1e6 + noise of std 2 in float32: E[x^2] - E[x]^2 cancels ~12 of float64's 16 digits
    data = (1e6 + rng.normal(0, 2, size=(6, 8, 4, 4))).astype(np.float32)
    x = data.reshape(-1, 4, 4).astype(np.float64)
    ref_var = x.var(axis=0)  # two-pass: mean first, then squared deviations
    naive = (x**2).mean(axis=0) - x.mean(axis=0) ** 2
    naive_err = np.max(np.abs(naive - ref_var) / ref_var)
    assert naive_err > 1e-7, "test data too easy: the naive formula would pass too"
    for n in (1, 3, 48):
        ds = any_ctx.load("memory", data=data, num_partitions=n)
        res = any_ctx.run_udf(dataset=ds, udf=StdDevUDF(dtype=dtype))
        err = np.max(np.abs(res["var"].data - ref_var) / ref_var)
        assert err < RTOL[dtype], (
            f"{n} partitions: relative error {err:g} (naive formula: {naive_err:g})"
        )
        np.testing.assert_allclose(res["mean"].data, x.mean(axis=0), rtol=1e-14)


def test_stddev_float32_work_over_many_small_frames(ctx, rng):
    # tiny frames put tens of thousands of frames in one tile: float32 sums
    # over all of them would lose ~1e-5; blocks of BLOCK_FRAMES keep ~1e-7
    data = (50 + rng.random((160, 160, 2, 2))).astype(np.float32)
    ref = data.reshape(-1, 2, 2).astype(np.float64).var(axis=0)
    ds = ctx.load("memory", data=data, num_partitions=1)
    var = ctx.run_udf(dataset=ds, udf=StdDevUDF())["var"].data
    assert np.max(np.abs(var - ref) / ref) < 1e-6


@pytest.mark.parametrize("layout", ["blank first frames", "step", "hot pixel"])
def test_stddev_float32_work_survives_unrepresentative_frames(ctx, rng, layout):
    # float32 sums are only accurate around a reference near the mean: a blank
    # first frame, a jump in the middle of a tile, or one saturated frame must
    # not make the reference (or the squares) large
    data = rng.poisson(1000, size=(16, 16, 8, 8)).astype(np.uint16)
    if layout == "blank first frames":
        data.reshape(-1, 8, 8)[::37] = 0
    elif layout == "step":
        data.reshape(-1, 8, 8)[100:] += 20000
    else:
        data.reshape(-1, 8, 8)[5, 3, 3] = 65535
    ref = data.reshape(-1, 8, 8).astype(np.float64).var(axis=0)
    for n in (1, 3, 7):
        ds = ctx.load("memory", data=data, num_partitions=n)
        var = ctx.run_udf(dataset=ds, udf=StdDevUDF())["var"].data
        err = np.max(np.abs(var - ref) / ref)
        assert err < 1e-6, f"{layout}, {n} partitions: relative error {err:g}"


def test_stddev_partial_results_are_consistent(ctx, data4d):
    ds = ctx.load("memory", data=data4d, num_partitions=3)
    for part in ctx.run_udf_iter(dataset=ds, udf=StdDevUDF()):
        done = part.damage.data.reshape(-1)
        frames = data4d.reshape(-1, 6, 5)[done].astype(np.float64)
        res = part.buffers[0]
        assert int(res["num_frames"].data[0]) == len(frames)
        np.testing.assert_allclose(res["var"].data, frames.var(axis=0), rtol=1e-6)


@pytest.mark.parametrize("bad", [-1, 0.5, True, "1"])
def test_stddev_rejects_bad_ddof(bad):
    with pytest.raises(ValueError, match="ddof must be a non-negative integer"):
        StdDevUDF(ddof=bad)


@pytest.mark.parametrize("bad", ["int32", int, "x", 3])
def test_stddev_rejects_non_float_dtype(bad):
    with pytest.raises(ValueError, match="dtype must be None or a float type"):
        StdDevUDF(dtype=bad)


@pytest.mark.parametrize(
    "input_dtype, dtype, expected",
    [
        (np.float32, None, np.float32),
        (np.uint16, None, np.float32),
        (np.int8, None, np.float32),
        (np.bool_, None, np.float32),
        (np.float16, None, np.float32),
        (np.float64, None, np.float64),
        (np.int32, None, np.float64),
        (np.uint64, None, np.float64),
        (np.float32, np.float64, np.float64),
        (np.uint16, np.float16, np.float32),
    ],
)
def test_working_dtype(input_dtype, dtype, expected):
    assert working_dtype(input_dtype, dtype) == expected


def test_stddev_params_survive_clean_copy():
    udf = StdDevUDF(ddof=1, dtype=np.float64)
    copy = udf.copy()
    assert copy.params.ddof == 1 and copy.params.dtype == np.float64


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.uint64, np.float16, np.float64, np.bool_])
def test_stddev_other_input_dtypes(ctx, rng, dtype):
    data = rng.integers(0, 2 if dtype == np.bool_ else 100, size=(5, 6, 3, 4)).astype(dtype)
    ds = ctx.load("memory", data=data, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=StdDevUDF())
    ref = moments_reference(data, None)
    assert_results(res, ref, str(dtype), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("ddof", [0, 1])
def test_stddev_complex_data_matches_numpy(any_ctx, rng, dtype, ddof):
    # LiberTEM's definition (np.var of complex data): var = sum(|x - mean|**2) / (n - ddof),
    # real; mean and sum complex. An offset far from 0 checks the reference shift.
    shape = (7, 9, 6, 5)
    data = (100 + 50j + rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype)
    rtol = 1e-5 if dtype == np.complex64 else 1e-10
    for roi, n, res in run_configs(any_ctx, data, lambda: StdDevUDF(ddof=ddof)):
        frames = selected(data, roi).astype(np.complex128)
        where = f"{np.dtype(dtype)}, {n} partitions, roi={roi is not None}"
        assert res["mean"].data.dtype == np.complex128 and res["sum"].data.dtype == np.complex128
        for name in ("var", "std", "varsum"):
            assert res[name].data.dtype == np.float64, name
        ref = {
            "mean": frames.mean(axis=0),
            "sum": frames.sum(axis=0),
            "var": frames.var(axis=0, ddof=ddof),
            "std": frames.std(axis=0, ddof=ddof),
            "num_frames": np.array([len(frames)]),
        }
        assert_results(res, ref, where, rtol=rtol, atol=0)


def test_stddev_complex_with_float64_work_and_a_real_run_alike(ctx, rng):
    # dtype=np.float64 on complex64 data: complex128 arithmetic (accuracy as float64)
    data = (1e3 + rng.normal(size=(5, 6, 4, 4)) * (1 + 1j)).astype(np.complex64)
    frames = data.reshape(-1, 4, 4).astype(np.complex128)
    ds = ctx.load("memory", data=data, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=StdDevUDF(dtype=np.float64))
    np.testing.assert_allclose(res["var"].data, frames.var(axis=0), rtol=1e-12)
    # real data still gives real results
    real = ctx.load("memory", data=np.abs(data))
    assert ctx.run_udf(dataset=real, udf=StdDevUDF())["mean"].data.dtype == np.float64
