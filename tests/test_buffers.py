"""BufferWrapper behaves like an array; fill values outside the roi are documented."""

import numpy as np
import pytest

from udfwidgets.udf.buffers import BufferWrapper, fill_value_for


def nav_wrapper(raw, nav_shape, roi=None, extra=()):
    return BufferWrapper("nav", raw.dtype, extra, raw, nav_shape, roi)


def test_nav_buffer_without_roi_is_a_view():
    raw = np.arange(6.0)
    buf = nav_wrapper(raw, (2, 3))
    assert buf.data.shape == (2, 3) and np.shares_memory(buf.data, raw)
    assert buf.shape == (2, 3) and buf.ndim == 2 and buf.size == 6 and len(buf) == 2


@pytest.mark.parametrize(
    "dtype, fill",
    [
        ("float32", np.nan),
        ("complex64", np.nan),
        ("int16", 0),
        ("uint8", 0),
        ("bool", False),
        ("object", None),
    ],
)
def test_fill_values_outside_roi(dtype, fill):
    roi = np.array([True, False, True, False])
    raw = np.array([1, 2], dtype=dtype) if dtype != "object" else np.array(["a", "b"], dtype=object)
    buf = nav_wrapper(raw, (2, 2), roi)
    data = buf.data.reshape(-1)
    assert list(data[roi]) == list(raw)
    for value in data[~roi]:
        if fill is None:
            assert value is None
        elif isinstance(fill, float) and np.isnan(fill):
            assert np.isnan(value)
        else:
            assert value == fill
    assert buf.raw_data is raw
    expected_fill = fill_value_for(np.dtype(dtype))
    assert (expected_fill is None) == (fill is None)


def test_works_with_numpy_functions_and_operators():
    raw = np.arange(4.0)
    buf = nav_wrapper(raw, (2, 2))
    assert np.sum(buf) == 6.0
    np.testing.assert_array_equal(np.array(buf), raw.reshape(2, 2))
    np.testing.assert_array_equal(buf + 1, raw.reshape(2, 2) + 1)
    np.testing.assert_array_equal(np.sqrt(buf), np.sqrt(raw).reshape(2, 2))
    assert buf[1, 1] == 3.0
    assert np.asarray(buf, dtype=np.int64).dtype == np.int64


def test_valid_mask_combines_roi_and_damage():
    roi = np.array([True, True, False, True])
    valid = np.array([True, False, False, False])
    buf = BufferWrapper("nav", np.float32, (), np.zeros(3, np.float32), (2, 2), roi, valid)
    np.testing.assert_array_equal(buf.valid_mask, [[True, False], [False, False]])
    sig = BufferWrapper("sig", np.float32, (3,), np.zeros((4, 5, 3), np.float32), (2, 2))
    assert sig.valid_mask.shape == (4, 5) and sig.valid_mask.all()
    assert sig.shape == (4, 5, 3) and sig.extra_shape == (3,)


def test_wrapper_without_data_says_to_fill_it():
    # LiberTEM's way to build aux data: BufferWrapper(...) then set_buffer(data); used
    # before set_buffer, every read names the fix instead of failing on None
    from udfwidgets.udf.buffers import BufferError

    for kind in ("nav", "sig"):
        buf = BufferWrapper(kind=kind, extra_shape=(2,), dtype="float32")
        for read in (
            lambda b: b.raw_data,
            lambda b: b.data,
            lambda b: b.raw_masked_data,
        ):
            with pytest.raises(BufferError, match=r"has no data yet: fill it with set_buffer"):
                read(buf)
    buf = BufferWrapper(kind="nav", extra_shape=(2,), dtype="float32")
    buf.set_buffer(np.ones((3, 2)))
    np.testing.assert_array_equal(buf.raw_data, np.ones((3, 2), dtype=np.float32))


def test_unfilled_aux_data_in_a_run_says_to_fill_it():
    from udfwidgets import UDF, Context
    from udfwidgets.udf.buffers import BufferError

    class WithAux(UDF):
        def __init__(self, aux):
            super().__init__(aux=aux)

        def get_result_buffers(self):
            return {"out": self.buffer(kind="nav")}

        def process_frame(self, frame):
            self.results.out[:] = self.params.aux

    aux = BufferWrapper(kind="nav", dtype="float32")
    with Context(executor="inline") as ctx:
        ds = ctx.load("memory", data=np.ones((2, 2, 3, 3)))
        with pytest.raises(BufferError, match=r"has no data yet"):
            ctx.run_udf(dataset=ds, udf=WithAux(aux))
