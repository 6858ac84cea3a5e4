"""roi forms: masks (bool, numeric 0/1, sparse), coordinates, LiberTEM's forms, and errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from udfwidgets.executor.plan import RoiWarning, normalize_roi
from udfwidgets.udf.sum import SumUDF
from udfwidgets.udf.sumsigudf import SumSigUDF


def _flat(mask):
    return np.asarray(mask, bool).reshape(-1)


def test_numeric_01_mask_of_a_1d_scan_is_a_mask_not_coordinates(any_ctx, rng):
    """Before: a float 0/1 mask of a 1-D scan selected frames 0 and 1 (read as coordinates)."""
    data = rng.random((200, 4, 3), dtype=np.float32)
    ds = any_ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    mask = np.zeros(200)
    mask[100:110] = 1
    with pytest.warns(RoiWarning, match="float64 is read as a mask"):
        res = any_ctx.run_udf(dataset=ds, udf=SumUDF(), roi=mask)
    np.testing.assert_allclose(res["intensity"].data, data[100:110].sum(axis=0), rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.float32])
def test_numeric_01_mask_of_an_n_by_2_scan(ctx, rng, dtype):
    """nav (N, 2): a numeric mask of that shape used to be read as N coordinates."""
    data = rng.random((6, 2, 3, 3), dtype=np.float32)
    ds = ctx.load("memory", data=data)
    mask = np.zeros((6, 2), dtype=dtype)
    mask[4, 1] = mask[5, 0] = 1
    with pytest.warns(RoiWarning):
        got = ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=mask)["intensity"].data
    expected = np.full((6, 2), np.nan, np.float32)
    expected[4, 1], expected[5, 0] = data[4, 1].sum(), data[5, 0].sum()
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_flat_int_mask_of_a_2d_scan(ctx):
    with pytest.warns(RoiWarning):
        got = normalize_roi(np.array([0, 0, 1, 0]), (2, 2))
    np.testing.assert_array_equal(got, [False, False, True, False])


def test_bool_mask_gives_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = normalize_roi(np.eye(3, dtype=bool), (3, 3))
    np.testing.assert_array_equal(got, _flat(np.eye(3)))


@pytest.mark.parametrize(
    "roi",
    [
        [(0, 1), (2, 2)],
        np.array([[0, 1], [2, 2]]),
        [((0, 1), True), ((2, 2), True)],
        [((0, 1), np.bool_(True)), ((2, 2), True)],
    ],
)
def test_coordinate_forms(roi):
    expected = np.zeros((3, 3), bool)
    expected[0, 1] = expected[2, 2] = True
    np.testing.assert_array_equal(normalize_roi(roi, (3, 3)), _flat(expected))


def test_single_coordinate_tuple_libertem_style(ctx, data4d):
    ds = ctx.load("memory", data=data4d)
    res = ctx.run_udf(dataset=ds, udf=SumUDF(), roi=(3, 4))
    np.testing.assert_allclose(res["intensity"].data, data4d[3, 4], rtol=1e-6)
    np.testing.assert_array_equal(normalize_roi((2,), (5,)), [False, False, True, False, False])


def test_false_pairs_select_everything_else():
    got = normalize_roi([((0, 0), False), ((1, 1), False)], (2, 2))
    np.testing.assert_array_equal(got, [False, True, True, False])


def test_pairs_with_mixed_values_are_refused():
    with pytest.raises(ValueError, match="must all have the same value"):
        normalize_roi([((0, 0), True), ((1, 1), False)], (2, 2))


def test_scipy_sparse_roi(any_ctx, data4d):
    sp = pytest.importorskip("scipy.sparse")
    mask = np.zeros(data4d.shape[:2], bool)
    mask[1, 2:5] = mask[6, 8] = True
    ds = any_ctx.load("memory", data=data4d, num_partitions=3)
    for roi in (sp.csr_matrix(mask), sp.coo_matrix(mask.astype(np.float32))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RoiWarning)
            got = any_ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi)["intensity"].data
        np.testing.assert_allclose(got, data4d[mask].sum(axis=0), rtol=1e-5)


def test_pydata_sparse_roi(any_ctx, data4d):
    sparse = pytest.importorskip("sparse")
    mask = np.zeros(data4d.shape[:2], bool)
    mask[0, 0] = mask[5, 3] = True
    ds = any_ctx.load("memory", data=data4d, num_partitions=2)
    got = any_ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=sparse.COO.from_numpy(mask))
    expected = np.where(mask, data4d.sum(axis=(2, 3)), np.nan)
    np.testing.assert_allclose(got["intensity"].data, expected, rtol=1e-5)


def test_pydata_sparse_3d_nav_with_fill_value_true():
    sparse = pytest.importorskip("sparse")
    mask = np.ones((2, 3, 2), bool)
    mask[1, 2, 0] = False
    roi = sparse.COO.from_numpy(mask, fill_value=True)
    np.testing.assert_array_equal(normalize_roi(roi, (2, 3, 2)), _flat(mask))


@pytest.mark.parametrize(
    "roi, message",
    [
        (np.array([0, 2, 1, 0]), r"values other than 0 and 1 \(2\)"),
        (np.full((2, 2), 0.5), r"values other than 0 and 1"),
        (np.array([0, np.nan, 1, 0]), r"values other than 0 and 1"),
        ((1, 2, 3), r"one nav coordinate, which needs 2 integers"),
        ([(1, 2.0)], r"must be a tuple of 2 integers"),
        ([(0, 5)], r"\(0, 5\) is not inside the navigation shape \(2, 2\)"),
        ([(-1, 0)], r"negative ones are not allowed"),
        (np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0]]), r"coordinates must be integers"),
        (np.ones((3,), bool), r"bool roi must have the navigation shape \(2, 2\)"),
        (np.ones((2, 2, 1)), r"neither a mask nor a list of coordinates"),
        ("abc", r"neither a mask nor a list of coordinates"),
        (True, r"single value: use roi=None"),
        (np.bool_(False), r"single value"),
        (np.array(1), r"single value"),
        ([((0, 0), True), ((1, 1), False)], r"same value"),
        ([((0, 0, 0), True)], r"need coordinates of 2 integers"),
        (np.array(["a", "b", "c", "d"]), r"dtype <U1 cannot be a mask"),
    ],
)
def test_bad_rois_say_how_to_pass_each(roi, message):
    with pytest.raises(ValueError, match=message) as info:
        normalize_roi(roi, (2, 2))
    text = str(info.value)
    if "coordinate" not in message and "same value" not in message:
        assert "list of tuples" in text or "navigation shape" in text


def test_sparse_roi_of_the_wrong_shape():
    sp = pytest.importorskip("scipy.sparse")
    with pytest.raises(ValueError, match=r"sparse roi must have the navigation shape \(2, 2\)"):
        normalize_roi(sp.csr_matrix(np.eye(3)), (2, 2))


def test_mask_shaped_coordinates_are_a_mask_and_the_message_says_how_to_pass_coordinates():
    """nav (3, 2): a (3, 2) int array is mask-shaped, so it is a mask; values > 1 cannot be."""
    with pytest.raises(ValueError, match=r"list of tuples \[\(y, x\), \.\.\.\]"):
        normalize_roi(np.array([[0, 1], [2, 1], [1, 0]]), (3, 2))
    np.testing.assert_array_equal(
        normalize_roi([(0, 1), (2, 1), (1, 0)], (3, 2)), [False, True, True, False, False, True]
    )


def test_empty_coordinate_list_selects_nothing(ctx, data4d):
    ds = ctx.load("memory", data=data4d)
    res = ctx.run_udf(dataset=ds, udf=SumUDF(), roi=[])
    assert (res["intensity"].data == 0).all()
