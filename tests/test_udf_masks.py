"""ApplyMasksUDF against an einsum reference over executors, partitions and rois."""

from __future__ import annotations

import sys
from functools import partial

import numpy as np
import pytest

from test_masks import assert_results, nav_expected, run_configs
from udfwidgets import masks
from udfwidgets.udf.masks import ApplyMasksUDF

SIG = (6, 5)


def mask_stack() -> np.ndarray:
    """Three masks for 6 x 5 frames: a disk, a ring and a float-weighted gradient."""
    grad = np.linspace(-1, 1, 30, dtype=np.float32).reshape(SIG)
    return np.stack([masks.disk(SIG, (2.5, 2), 1.5), masks.ring(SIG, (2.5, 2), 1.5, 3), grad])


def reference(data, stack, roi, sig_dims=2):
    nav = data.shape[: data.ndim - sig_dims]
    flat = data.reshape(nav + (-1,)).astype(np.float64)
    vals = flat @ stack.reshape(len(stack), -1).astype(np.float64).T
    return nav_expected(vals, roi, nav)


def test_mask_factories_match_numpy(any_ctx, data4d):
    stack = mask_stack()
    factories = [
        partial(masks.disk, SIG, (2.5, 2), 1.5),
        lambda: masks.ring(SIG, (2.5, 2), 1.5, 3),
        lambda: np.linspace(-1, 1, 30, dtype=np.float32).reshape(SIG),
    ]
    make = lambda: ApplyMasksUDF(mask_factories=factories)  # noqa: E731
    for roi, n, res in run_configs(any_ctx, data4d, make):
        assert res["intensity"].kind == "nav" and res["intensity"].extra_shape == (3,)
        assert res["intensity"].dtype == np.float32
        assert_results(res, {"intensity": reference(data4d, stack, roi)}, f"{n} partitions")


def test_mask_array_stack_integer_data_float64(ctx, data4d_int):
    sig = data4d_int.shape[2:]
    stack = np.stack([masks.point(sig, 1, 2), masks.rectangle(sig, 2, 1, 4, 3)])
    udf = lambda: ApplyMasksUDF(masks=stack, dtype="float64")  # noqa: E731
    for roi, n, res in run_configs(ctx, data4d_int, udf):
        assert res["intensity"].dtype == np.float64
        assert_results(
            res, {"intensity": reference(data4d_int, stack, roi)}, f"{n} partitions", rtol=1e-12
        )
        # the point mask picks one pixel exactly
        picked = res["intensity"].data[..., 0]
        ok = ~np.isnan(picked)
        np.testing.assert_array_equal(picked[ok], data4d_int[..., 1, 2][ok])


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.int32, np.float64])
def test_large_frames_float32_blocks_and_pixel_span(any_ctx, rng, dtype):
    # frames wider than one float32 block, masks that leave the first and last
    # rows empty: the blocks over the masks' pixel span must add up to the
    # float64 answer, for native integer and float frames
    sig = (80, 96)
    stack = np.stack(
        [
            masks.disk(sig, (30, 40), 12),
            masks.ring(sig, (40, 50), 10, 20),
            masks.rectangle(sig, 10, 5, 70, 90),
        ]
    ).astype(bool)
    data = rng.poisson(500, size=(3, 4) + sig).astype(dtype)
    ds = any_ctx.load("memory", data=data, num_partitions=2)
    res = any_ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(masks=stack))
    wide = np.dtype(dtype) in (np.int32, np.float64)
    assert res["intensity"].dtype == (np.float64 if wide else np.float32)
    np.testing.assert_allclose(
        res["intensity"].data, reference(data, stack, None), rtol=1e-12 if wide else 1e-6
    )


def test_single_mask_list_of_masks_and_stack_factory(ctx, data4d):
    stack = mask_stack()
    ds = ctx.load("memory", data=data4d, num_partitions=2)
    for kwargs, expect in [
        ({"masks": stack[0]}, stack[:1]),
        ({"masks": [stack[0], stack[2]]}, stack[[0, 2]]),
        ({"masks": stack.astype(bool)}, stack.astype(bool)),
        ({"mask_factories": mask_stack}, stack),  # one callable returning a stack
    ]:
        res = ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(**kwargs))
        assert_results(res, {"intensity": reference(data4d, expect, None)}, str(list(kwargs)))


def test_one_dimensional_signal(ctx, rng):
    data = rng.random((4, 5, 12), dtype=np.float32)
    stack = rng.random((2, 12), dtype=np.float32)
    for roi, n, res in run_configs(ctx, data, lambda: ApplyMasksUDF(masks=stack), sig_dims=1):
        assert_results(res, {"intensity": reference(data, stack, roi, sig_dims=1)}, f"{n}")


def test_sparse_masks_match_dense(any_ctx, data4d):
    sp = pytest.importorskip("scipy.sparse", reason="SciPy is optional; run with it installed")
    stack = mask_stack()
    sparse = sp.csr_matrix(stack.reshape(3, -1))
    for roi, n, res in run_configs(
        any_ctx, data4d, lambda: ApplyMasksUDF(masks=sparse), partitions=(3,)
    ):
        assert_results(res, {"intensity": reference(data4d, stack, roi)}, f"sparse {n}")
    ds = any_ctx.load("memory", data=data4d)
    res = any_ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(masks=stack, use_sparse=True))
    assert_results(res, {"intensity": reference(data4d, stack, None)}, "use_sparse=True")
    # 2D sparse masks from factories, mixed with a dense one
    facs = [
        lambda: sp.csr_matrix(mask_stack()[0]),
        lambda: mask_stack()[1],
        lambda: sp.coo_matrix(mask_stack()[2]),
    ]
    res = any_ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(mask_factories=facs))
    assert_results(res, {"intensity": reference(data4d, stack, None)}, "sparse factories")
    res = any_ctx.run_udf(
        dataset=ds, udf=ApplyMasksUDF(masks=[sparse[:2], stack[2]], use_sparse=False)
    )
    assert_results(res, {"intensity": reference(data4d, stack, None)}, "list, dense product")


def test_use_sparse_without_scipy_says_what_to_do(ctx, data4d, monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.sparse", None)
    ds = ctx.load("memory", data=data4d)
    with pytest.raises(ImportError, match="pip install scipy"):
        ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(masks=mask_stack(), use_sparse=True))


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({}, ValueError, "exactly one of"),
        ({"masks": np.ones(SIG), "mask_factories": [np.ones]}, ValueError, "both"),
        ({"mask_factories": [np.ones((2, 2))]}, TypeError, r"mask_factories\[0\]"),
        ({"mask_factories": 3}, TypeError, "callable"),
        ({"mask_factories": []}, ValueError, "empty"),
        ({"masks": np.ones(SIG), "dtype": "nope"}, ValueError, "dtype"),
        ({"masks": np.ones(SIG), "use_sparse": "yes"}, ValueError, "use_sparse"),
    ],
)
def test_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ApplyMasksUDF(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"masks": np.ones((5, 6))}, r"masks has shape \(5, 6\).*signal shape \(6, 5\)"),
        (
            {"mask_factories": [lambda: np.ones((6, 5)), lambda: np.ones(3)]},
            r"mask_factories\[1\]\(\) has shape \(3,\)",
        ),
        ({"masks": np.ones((0, 6, 5))}, "empty"),
        ({"masks": [np.ones((6, 5)), np.ones((5, 6))]}, r"masks\[1\] has shape \(5, 6\)"),
        ({"masks": np.array([["a"] * 5] * 6)}, "dtype"),
    ],
)
def test_mask_shape_errors_at_run(ctx, data4d, kwargs, match):
    ds = ctx.load("memory", data=data4d)
    with pytest.raises(ValueError, match=match):
        ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(**kwargs))


# --- the one-pass product (compiled with numba, BLAS blocks without) ---------------------
def dense_stack(sig, k=4, seed=3) -> np.ndarray:
    """``k`` float32 masks non-zero on every pixel: the pixel span is the whole frame."""
    return (0.25 + np.random.default_rng(seed).random((k,) + sig)).astype(np.float32)


def numpy_path(monkeypatch) -> None:
    """Make this process use the NumPy (BLAS) product, as without numba."""
    from udfwidgets.udf import _products

    monkeypatch.setattr(_products, "_KERNEL", None)
    monkeypatch.setattr(_products, "_TRIED", True)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.int16, np.uint8])
def test_dense_whole_frame_masks_match_float64(any_ctx, rng, dtype):
    # 4 masks covering every pixel; 70 x 65 = 4550 pixels, more than one block
    # of the compiled kernel (4096) and of BLAS's (2048 for a few frames);
    # partitions of 1, 3 and 35 frames: odd and even frame counts per tile
    sig = (70, 65)
    stack = dense_stack(sig)
    top = 60000 if np.dtype(dtype).itemsize > 1 else 250
    data = rng.integers(0, top, size=(5, 7) + sig).astype(dtype)
    if dtype == np.int16:
        data = (data // 2 - 15000).astype(dtype)  # negative values
    make = lambda: ApplyMasksUDF(masks=stack)  # noqa: E731
    for roi, n, res in run_configs(any_ctx, data, make):
        assert res["intensity"].dtype == np.float32
        assert_results(
            res, {"intensity": reference(data, stack, roi)}, f"{n} partitions", rtol=2e-6, atol=0
        )


def test_numpy_path_without_the_kernel_matches_float64(ctx, rng, monkeypatch):
    # the same dense case through BLAS blocks (numba missing or UDFWIDGETS_NUMBA=0)
    numpy_path(monkeypatch)
    sig = (70, 65)
    stack = dense_stack(sig)
    data = rng.integers(0, 60000, size=(3, 5) + sig).astype(np.uint16)
    for roi, n, res in run_configs(ctx, data, lambda: ApplyMasksUDF(masks=stack)):
        assert_results(
            res, {"intensity": reference(data, stack, roi)}, f"{n} partitions", rtol=2e-6, atol=0
        )


@pytest.mark.parametrize("k", [1, 3, 5, 16, 17])
def test_compiled_product_equals_numpy_product(rng, k):
    # any number of weight columns (padded to 4; BLAS beyond MAX_KERNEL_COLUMNS),
    # odd and even frame counts, a span that starts and stops inside the frame
    from udfwidgets.udf import _products

    pytest.importorskip("numba")
    assert _products.get_kernel() is not None
    pixels, start = 9000, 37
    weights = rng.normal(size=(pixels - start - 11, k)).astype(np.float32)
    packed = _products.pack_weights(weights)
    assert (packed is None) == (k > _products.MAX_KERNEL_COLUMNS)
    for n in (1, 2, 7):
        flat = rng.integers(0, 4000, size=(n, pixels)).astype(np.uint16)
        ref = flat[:, start : start + len(weights)].astype(np.float64) @ weights.astype(np.float64)
        fast = _products.float32_product(flat, weights, start=start, packed=packed)
        slow = _products.float32_product(flat, weights, start=start)
        scale = np.abs(flat[:, start : start + len(weights)]).astype(np.float64) @ np.abs(weights)
        for got in (fast, slow):
            assert got.shape == (n, k) and got.dtype == np.float64
            # error relative to sum(|x| |w|): float32 products, float32 sums per block
            assert (np.abs(got - ref) / scale).max() < 1e-6


def test_compiled_product_propagates_nan_and_inf(rng):
    from udfwidgets.udf import _products

    pytest.importorskip("numba")
    weights = np.ones((5000, 4), np.float32)
    weights[:, 1] = 0  # NaN * 0 is NaN, as in BLAS
    flat = rng.random((4, 5000), dtype=np.float32)
    flat[1, 4321] = np.nan
    flat[2, 17] = np.inf
    got = _products.float32_product(flat, weights, packed=_products.pack_weights(weights))
    assert np.isnan(got[1]).all()
    assert np.isinf(got[2, [0, 2, 3]]).all() and np.isnan(got[2, 1])
    assert np.isfinite(got[[0, 3]]).all()


def test_compiled_product_falls_back_for_strided_and_odd_dtypes(rng):
    from udfwidgets.udf import _products

    weights = rng.random((30, 2), dtype=np.float32)
    packed = _products.pack_weights(weights)
    for flat in (
        rng.random((4, 60))[:, ::2],  # not C-contiguous
        rng.random((4, 30)) > 0.5,  # bool
        rng.random((4, 30)).astype(">f4"),  # big-endian
    ):
        got = _products.float32_product(flat, weights, packed=packed)
        np.testing.assert_allclose(got, flat.astype(np.float64) @ weights, rtol=1e-6)
