"""Every example of the UDF guide (shared/spec/udf-guide.txt), as written there.

Only the import line changes: ``from libertem.udf import UDF`` becomes
``from udfwidgets.udf import UDF``. The dataset has the guide's shape (14, 14, 32, 32).
"""

import numpy as np
import pytest

from udfwidgets.udf import UDF
from udfwidgets.udf.sum import SumUDF


@pytest.fixture
def dataset(any_ctx, rng):
    data = rng.integers(0, 100, size=(14, 14, 32, 32)).astype(np.float32)
    ds = any_ctx.load("memory", data=data, num_partitions=3)
    ds.raw = data
    return ds


def test_buffer_declarations(any_ctx, dataset):
    class ExampleUDF(UDF):
        def get_result_buffers(self):
            buffers = {
                "nav_buffer": self.buffer(kind="nav", extra_shape=(3, 2), dtype="float32"),
                "sig_buffer": self.buffer(kind="sig", extra_shape=(2,), dtype="float32"),
                "single_buffer": self.buffer(kind="single", extra_shape=(16, 16), dtype="float32"),
            }
            return buffers

        def process_frame(self, frame):
            self.results.nav_buffer[:] = frame[:3, :2]
            self.results.sig_buffer[..., 0] += frame
            self.results.sig_buffer[..., 1] = np.maximum(self.results.sig_buffer[..., 1], frame)
            self.results.single_buffer[:] += frame[:16, :16]

        def merge(self, dest, src):
            dest.nav_buffer[:] = src.nav_buffer
            dest.sig_buffer[..., 0] += src.sig_buffer[..., 0]
            dest.sig_buffer[..., 1] = np.maximum(dest.sig_buffer[..., 1], src.sig_buffer[..., 1])
            dest.single_buffer[:] += src.single_buffer

    res = any_ctx.run_udf(dataset=dataset, udf=ExampleUDF())
    data = dataset.raw
    assert res["nav_buffer"].data.shape == (14, 14, 3, 2)
    assert res["sig_buffer"].data.shape == (32, 32, 2)
    assert res["single_buffer"].data.shape == (16, 16)
    np.testing.assert_array_equal(res["nav_buffer"].data, data[:, :, :3, :2])
    np.testing.assert_allclose(res["sig_buffer"].data[..., 0], data.sum(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_array_equal(res["sig_buffer"].data[..., 1], data.max(axis=(0, 1)))
    np.testing.assert_allclose(
        res["single_buffer"].data, data[:, :, :16, :16].sum(axis=(0, 1)), rtol=1e-5
    )


class SumOverSig(UDF):
    def get_result_buffers(self):
        """
        Describe the buffers we need to store our results:
        kind="nav" means we want to have a value for each coordinate
        in the navigation dimensions. We name our buffer 'pixelsum'.
        """
        return {"pixelsum": self.buffer(kind="nav", dtype="float32")}

    def process_frame(self, frame):
        self.results.pixelsum[:] = np.sum(frame)


class MaxUDF(UDF):
    def get_result_buffers(self):
        return {"maxbuf": self.buffer(kind="sig", dtype=self.meta.input_dtype)}

    def preprocess(self):
        self.results.maxbuf[:] = -np.inf

    def process_frame(self, frame):
        self.results.maxbuf[:] = np.maximum(frame, self.results.maxbuf)

    def merge(self, dest, src):
        dest.maxbuf[:] = np.maximum(dest.maxbuf, src.maxbuf)


class MyParamUDF(UDF):
    def __init__(self, my_param=None):
        if my_param is None:
            my_param = "Eins, zwei drei!"
        super().__init__(my_param=my_param)

    def get_result_buffers(self):
        return {
            "demo": self.buffer(kind="single", dtype=object),
        }

    def process_frame(self, frame):
        self.results.demo[:] = self.params.my_param

    def merge(self, dest, src):
        dest.demo[:] = src.demo


def test_sum_over_sig(any_ctx, dataset):
    ctx = any_ctx
    res = ctx.run_udf(
        udf=SumOverSig(),
        dataset=dataset,
    )
    # to access the named buffer as a NumPy array:
    res["pixelsum"].data
    np.testing.assert_allclose(res["pixelsum"].data, np.sum(dataset.raw, axis=(2, 3)), rtol=1e-6)


def test_max_udf(any_ctx, dataset):
    ctx = any_ctx
    res = ctx.run_udf(
        udf=MaxUDF(),
        dataset=dataset,
    )
    np.testing.assert_array_equal(res["maxbuf"].data, dataset.raw.max(axis=(0, 1)))


def test_max_udf_on_negative_integer_data(any_ctx, rng):
    """-np.inf in preprocess must work on integer data and the max must not see zeros."""
    data = rng.integers(-1000, -1, size=(5, 6, 7, 8), dtype=np.int16)
    ds = any_ctx.load("memory", data=data, num_partitions=4)
    res = any_ctx.run_udf(dataset=ds, udf=MaxUDF())
    assert res["maxbuf"].data.dtype == np.float32
    np.testing.assert_array_equal(res["maxbuf"].data, data.max(axis=(0, 1)))


def test_params_and_constructor(any_ctx, dataset):
    ctx = any_ctx
    res = ctx.run_udf(dataset=dataset, udf=MyParamUDF())
    assert res["demo"].data[0] == "Eins, zwei drei!"

    res2 = ctx.run_udf(dataset=dataset, udf=MyParamUDF(my_param=42))
    assert res2["demo"].data[0] == 42


def test_params_without_constructor(ctx, dataset):
    class MyUDF(UDF):
        def get_result_buffers(self):
            return {"score": self.buffer(kind="nav", dtype="float64")}

        def process_frame(self, frame):
            self.results.score[:] = np.sum(frame * self.params.peaks) + self.params.other

    peaks = np.zeros((32, 32))
    peaks[3, 4] = 2
    udf = MyUDF(peaks=peaks, other=1.5)
    res = ctx.run_udf(dataset=dataset, udf=udf)
    np.testing.assert_allclose(res["score"].data, dataset.raw[:, :, 3, 4] * 2 + 1.5)


def test_running_udfs(any_ctx, dataset):
    ctx = any_ctx
    udf = SumOverSig()
    res = ctx.run_udf(udf=udf, dataset=dataset)
    res = ctx.run_udf(udf=udf, dataset=dataset, progress=True)

    res = ctx.run_udf(udf=udf, dataset=dataset)
    arr = res["pixelsum"].data
    arr2 = np.array(res["pixelsum"])
    total = np.sum(res["pixelsum"])
    np.testing.assert_array_equal(arr, arr2)
    assert total == pytest.approx(dataset.raw.sum(), rel=1e-5)

    res, res_sum = ctx.run_udf(udf=[udf, SumUDF()], dataset=dataset)
    np.testing.assert_allclose(res_sum["intensity"].data, dataset.raw.sum(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(res["pixelsum"].data, dataset.raw.sum(axis=(2, 3)), rtol=1e-5)


def test_regions_of_interest(any_ctx, dataset):
    ctx = any_ctx
    udf = SumOverSig()
    roi = np.random.choice(a=[False, True], size=dataset.shape.nav)
    ctx.run_udf(udf=udf, dataset=dataset, roi=roi)

    res = ctx.run_udf(udf=udf, dataset=dataset, roi=roi)
    raw = res["pixelsum"].raw_data
    expected = dataset.raw.sum(axis=(2, 3))
    np.testing.assert_allclose(raw, expected[roi], rtol=1e-6)
    np.testing.assert_allclose(res["pixelsum"].data[roi], expected[roi], rtol=1e-6)
    assert np.isnan(res["pixelsum"].data[~roi]).all()


def test_live_plotting_does_not_fail(ctx, dataset):
    udf = SumOverSig()
    ctx.run_udf(dataset=dataset, udf=udf, plots=True)


def test_partial_results(any_ctx, dataset):
    ctx = any_ctx
    for udf_results in ctx.run_udf_iter(dataset=dataset, udf=SumUDF()):
        # ... do something interesting with `udf_results`:
        a = np.sum(udf_results.buffers[0]["intensity"])

    # after the loop, `udf_results` contains the final results as usual
    assert a == pytest.approx(dataset.raw.sum(), rel=1e-5)
    np.testing.assert_allclose(
        udf_results.buffers[0]["intensity"].data, dataset.raw.sum(axis=(0, 1)), rtol=1e-5
    )


def test_asynchronous_execution(any_ctx, dataset):
    import asyncio

    ctx = any_ctx
    udf = SumUDF()

    async def main():
        async for udf_results in ctx.run_udf_iter(dataset=dataset, udf=udf, sync=False):
            # ... do something interesting with `udf_results`:
            a = np.sum(udf_results[0]["intensity"])

        # or the version without intermediate results:
        udf_results = await ctx.run_udf(dataset=dataset, udf=udf, sync=False)
        return a, udf_results

    a, udf_results = asyncio.run(main())
    assert a == pytest.approx(dataset.raw.sum(), rel=1e-5)
    np.testing.assert_allclose(
        udf_results["intensity"].data, dataset.raw.sum(axis=(0, 1)), rtol=1e-5
    )
