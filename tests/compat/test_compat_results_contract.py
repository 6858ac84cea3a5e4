"""LiberTEM's documented result contract, found by running its tests/udf (issue 14).

Each case failed before the fix; written from LiberTEM's documented behaviour.
"""

import numpy as np
import pytest

from udfwidgets import Context
from udfwidgets.io.memory import MemoryDataSet
from udfwidgets.udf import (
    UDF,
    BufferError,
    InvalidMaskError,
    UDFException,
    UDFMethod,
    UDFMethodError,
    UndeclaredBufferError,
)


@pytest.fixture
def ctx():
    with Context(executor="inline") as c:
        yield c


def _ds(nav=(4, 6), sig=(3, 5)):
    data = np.random.default_rng(7).random(nav + sig).astype(np.float32)
    return data, MemoryDataSet(data=data, num_partitions=3)


class FullShapeResult(UDF):
    """get_results returns a nav buffer in the full navigation shape itself."""

    def get_result_buffers(self):
        return {
            "per_frame": self.buffer(kind="nav", dtype=np.float32),
            "embedded": self.buffer(kind="nav", dtype=np.float32, use="result_only"),
        }

    def process_frame(self, frame):
        self.results.per_frame[:] = frame.sum()

    def get_results(self):
        full = np.full(self.meta.dataset_shape.nav, -1.0, dtype=np.float32)
        if self.meta.roi is None:
            full[...] = self.results.per_frame.reshape(full.shape)
        else:
            full[self.meta.roi.reshape(full.shape)] = self.results.per_frame
        return {"embedded": full}


@pytest.mark.parametrize("with_roi", [True, False])
def test_full_shape_nav_result_keeps_values_outside_the_roi(ctx, with_roi):
    data, ds = _ds()
    roi = np.random.default_rng(1).random(ds.shape.nav) > 0.5 if with_roi else None
    res = ctx.run_udf(dataset=ds, udf=FullShapeResult(), roi=roi)
    ref = data.sum(axis=(-1, -2))
    got = res["embedded"].data
    assert got.shape == (4, 6)
    if with_roi:
        np.testing.assert_allclose(got[roi], ref[roi], rtol=1e-5)
        np.testing.assert_array_equal(got[~roi], -1.0)  # as returned, not the fill value
        assert res["embedded"].raw_data.shape == (int(roi.sum()),)
    else:
        np.testing.assert_allclose(got, ref, rtol=1e-5)


class NavExtra(UDF):
    def get_result_buffers(self):
        return {"pair": self.buffer(kind="nav", dtype=np.float32, extra_shape=(2,))}

    def process_frame(self, frame):
        self.results.pair[:] = (frame.min(), frame.max())


def test_nav_valid_mask_with_extra_shape_has_the_shape_of_data(ctx):
    data, ds = _ds()
    roi = np.zeros(ds.shape.nav, dtype=bool)
    roi[1, 2:5] = True
    res = ctx.run_udf(dataset=ds, udf=NavExtra(), roi=roi)
    mask = res["pair"].valid_mask
    assert mask.shape == res["pair"].data.shape == (4, 6, 2)
    np.testing.assert_array_equal(mask[..., 0], roi)
    np.testing.assert_array_equal(mask[..., 1], roi)
    np.testing.assert_array_equal(res["pair"].data[mask].reshape(-1, 2), res["pair"].raw_data)
    assert res["pair"].masked_data.mask.sum() == (roi.size - roi.sum()) * 2


class MaskFromParams(UDF):
    def get_result_buffers(self):
        return {"img": self.buffer(kind="single", dtype="float32", extra_shape=(8, 8, 3))}

    def process_frame(self, frame):
        pass

    def merge(self, dest, src):
        pass

    def get_results(self):
        return {"img": self.with_mask(np.zeros((8, 8, 3), np.float32), mask=self.params.mask)}


@pytest.mark.parametrize(
    "mask",
    [
        np.zeros((4, 4), bool),  # does not broadcast
        np.zeros((8, 8), bool),  # would need (8, 8, 1)
        np.zeros((1, 1, 1, 1), bool),  # too many axes
        np.zeros((8, 8, 3), int),  # not bool
        np.zeros((8, 8, 3), np.float32),
    ],
)
def test_with_mask_that_does_not_fit_is_an_invalid_mask_error(ctx, mask):
    _, ds = _ds()
    with pytest.raises(InvalidMaskError, match="valid mask of 'img'"):
        for part in ctx.run_udf_iter(dataset=ds, udf=MaskFromParams(mask=mask)):
            part.buffers


@pytest.mark.parametrize(
    "mask", [np.ones((8, 1, 3), bool), np.ones((8, 8, 3), bool), True, 0, np.bool_(True)]
)
def test_with_mask_that_fits_is_accepted(ctx, mask):
    _, ds = _ds()
    res = ctx.run_udf(dataset=ds, udf=MaskFromParams(mask=mask))
    assert res["img"].valid_mask.shape == (8, 8, 3)
    assert res["img"].valid_mask.all() == bool(np.all(mask))


class BadMethod(UDF):
    def get_result_buffers(self):
        return {}

    def get_method(self):
        return self.params.method


@pytest.mark.parametrize("method", [42, UDFMethod.FRAME, UDFMethod.TILE, UDFMethod.PARTITION])
def test_bad_get_method_is_a_udf_exception(ctx, method):
    _, ds = _ds()
    with pytest.raises(UDFMethodError) as info:
        ctx.run_udf(dataset=ds, udf=BadMethod(method=method))
    assert isinstance(info.value, UDFException) and isinstance(info.value, TypeError)


class Undeclared(UDF):
    def get_result_buffers(self):
        return {"buf": self.buffer(kind="nav", dtype=np.float32)}

    def process_frame(self, frame):
        pass

    def get_results(self):
        return {"buf": self.results.buf, "blah": np.zeros(3)}


def test_undeclared_result_is_a_key_error_and_a_buffer_error(ctx):
    _, ds = _ds()
    with pytest.raises(KeyError) as info:
        ctx.run_udf(dataset=ds, udf=Undeclared())
    assert isinstance(info.value, UndeclaredBufferError)
    assert isinstance(info.value, BufferError) and isinstance(info.value, UDFException)
    assert str(info.value).startswith("Undeclared.get_results() returned 'blah'")


@pytest.mark.parametrize("executor", ["inline", "threads"])
@pytest.mark.parametrize("with_roi", [True, False])
def test_auto_udf_monitor_is_the_newest_merged_frame(executor, with_roi):
    from udfwidgets.udf.auto import AutoUDF

    data = np.random.default_rng(3).random((6, 4, 5, 7)).astype(np.float32)
    ds = MemoryDataSet(data=data, num_partitions=3)
    roi = None
    if with_roi:
        roi = np.zeros((6, 4), bool)
        roi[0, 1] = roi[1, 3] = roi[2, 0] = True  # the last partition has no frame
    ref = data.reshape(24, 5, 7).sum(axis=-1)
    with Context(executor=executor, n_jobs=2) as ctx:
        udf = AutoUDF(f=lambda frame: frame.sum(axis=-1), monitor=True)
        for part in ctx.run_udf_iter(dataset=ds, udf=udf, roi=roi):
            merged = np.flatnonzero(part.damage.data.reshape(-1))
            monitor = part.buffers[0]["monitor"].data
            assert "monitor_seen" not in part.buffers[0]
            if len(merged) == 0:
                continue
            # one of the frames merged so far; for inline (in order), the newest
            assert any(np.allclose(monitor, ref[i]) for i in merged)
            if executor == "inline":
                np.testing.assert_allclose(monitor, ref[merged[-1]], rtol=1e-5)
        final = part.buffers[0]["result"].data.reshape(24, 5)
        sel = np.arange(24) if roi is None else np.flatnonzero(roi)
        np.testing.assert_allclose(final[sel], ref[sel], rtol=1e-5)


def test_auto_udf_monitor_needs_numbers():
    from udfwidgets.udf.auto import AutoUDF

    _, ds = _ds()
    with Context(executor="inline") as ctx, pytest.raises(TypeError, match="monitor"):
        ctx.run_udf(dataset=ds, udf=AutoUDF(f=lambda frame: {"a": 1}, monitor=True))
    with pytest.raises(TypeError, match="True or False"):
        AutoUDF(f=np.sum, monitor="yes")


class DictAccess(UDF):
    def get_result_buffers(self):
        return {"total": self.buffer(kind="sig", dtype=np.float64)}

    def process_frame(self, frame):
        self.results.total += frame

    def merge(self, dest, src):
        dest["total"][:] += src["total"]


def test_dict_access_to_buffers_works_but_warns(ctx):
    from udfwidgets.udf import UseDiscouragedWarning

    data, ds = _ds()
    with pytest.warns(
        UseDiscouragedWarning, match=r"use attribute access, e.g. self.results.total"
    ):
        res = ctx.run_udf(dataset=ds, udf=DictAccess())
    np.testing.assert_allclose(res["total"].data, data.sum(axis=(0, 1)), rtol=1e-5)
