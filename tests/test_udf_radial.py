"""RadialProfileUDF against per-bin masked sums over executors, partitions and rois."""

from __future__ import annotations

import math

import numpy as np
import pytest

from test_masks import assert_results, nav_expected, run_configs
from udfwidgets.udf.radial import RadialProfileUDF


def profile_reference(data, roi, centre, edges, mode="sum"):
    nav, (h, w) = data.shape[:-2], data.shape[-2:]
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    r = np.sqrt((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2)
    frames = data.astype(np.float64)
    out, counts = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (r >= lo) & (r < hi)
        counts.append(int(m.sum()))
        s = (frames * m).sum(axis=(-2, -1))
        if mode == "mean":
            s = s / m.sum() if m.any() else np.full(nav, np.nan)
        out.append(s)
    return nav_expected(np.stack(out, axis=-1), roi, nav), np.array(counts)


def test_profile_sum_matches_reference(any_ctx, data4d):
    edges = np.linspace(0.5, 4.5, 5)
    make = lambda: RadialProfileUDF(cy=2.2, cx=1.7, n_bins=4, r_max=4.5, r_min=0.5)  # noqa: E731
    for roi, n, res in run_configs(any_ctx, data4d, make):
        prof, counts = profile_reference(data4d, roi, (2.2, 1.7), edges)
        assert res["profile"].kind == "nav" and res["profile"].extra_shape == (4,)
        assert_results(
            res, {"profile": prof, "bin_edges": edges, "pixel_count": counts}, f"{n} partitions"
        )


def test_profile_mean_with_empty_bins(ctx, data4d_int):
    # 0.2-pixel bins near the centre: some hold no pixel at all
    edges = np.linspace(0, 2, 11)
    make = lambda: RadialProfileUDF(cy=4, cx=3, n_bins=10, r_max=2, mode="mean")  # noqa: E731
    for roi, n, res in run_configs(ctx, data4d_int, make):
        prof, counts = profile_reference(data4d_int, roi, (4, 3), edges, mode="mean")
        assert (counts == 0).any()
        assert_results(res, {"profile": prof, "pixel_count": counts}, f"{n} partitions")
    res = ctx.run_udf(
        dataset=ctx.load("memory", data=data4d_int),
        udf=RadialProfileUDF(cy=4, cx=3, n_bins=10, r_max=2),
    )
    np.testing.assert_array_equal(res["profile"].data[..., counts == 0], 0)


def test_profile_defaults_one_pixel_bins_cover_frame(ctx, data4d_int):
    h, w = data4d_int.shape[2:]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    r_far = max(math.hypot(y - cy, x - cx) for y in range(h) for x in range(w))
    r_max = math.floor(r_far) + 1
    edges = np.arange(0, r_max + 1, dtype=np.float64)
    res = ctx.run_udf(dataset=ctx.load("memory", data=data4d_int), udf=RadialProfileUDF())
    prof, counts = profile_reference(data4d_int, None, (cy, cx), edges)
    assert counts.sum() == h * w
    assert_results(res, {"profile": prof, "bin_edges": edges, "pixel_count": counts}, "defaults")
    np.testing.assert_allclose(
        res["profile"].data.sum(axis=-1), data4d_int.sum(axis=(2, 3), dtype=np.float64), rtol=1e-6
    )


def test_profile_no_pixel_in_range(ctx, data4d):
    res = ctx.run_udf(
        dataset=ctx.load("memory", data=data4d),
        udf=RadialProfileUDF(cy=-50, cx=-50, n_bins=2, r_max=3, mode="mean"),
    )
    assert np.isnan(res["profile"].data).all()
    np.testing.assert_array_equal(res["pixel_count"].data, [0, 0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_bins": 0}, "n_bins must be a positive integer"),
        ({"n_bins": 2.5}, "n_bins"),
        ({"r_min": -1}, "r_min must be >= 0"),
        ({"r_min": 3, "r_max": 2}, "r_max must be larger than r_min"),
        ({"mode": "max"}, "mode must be 'sum' or 'mean'"),
        ({"cy": None, "cx": "a"}, "cx must be a number"),
    ],
)
def test_parameter_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RadialProfileUDF(**kwargs)


def test_default_r_max_below_r_min_is_reported(ctx, data4d):
    with pytest.raises(ValueError, match="r_max must be larger than r_min"):
        ctx.run_udf(dataset=ctx.load("memory", data=data4d), udf=RadialProfileUDF(r_min=100))
