"""Differences from LiberTEM that used to give wrong results without an error.

Written from LiberTEM's documented UDF contract: inside ``get_results`` nav
buffers are flat and roi-compressed; buffers a custom ``get_results`` leaves
out pass through; private buffers are never results; ``result_only`` buffers
need ``get_results`` and have no array while processing.
"""

from __future__ import annotations

import numpy as np
import pytest

from udfwidgets import UDF
from udfwidgets.udf.buffers import BufferError


@pytest.fixture
def data(rng):
    return rng.random((5, 6, 4, 3), dtype=np.float32)


@pytest.fixture
def roi(rng):
    mask = rng.random((5, 6)) < 0.4
    mask[0, 0] = True
    return mask


class MeanOfFrameSums(UDF):
    """A reduction over a nav buffer in get_results: the mean of the frame sums."""

    def get_result_buffers(self):
        return {
            "sums": self.buffer(kind="nav", dtype="float64"),
            "mean": self.buffer(kind="single", dtype="float64", use="result_only"),
        }

    def process_frame(self, frame):
        self.results.sums[:] = frame.sum()

    def get_results(self):
        return {"mean": np.mean(self.results.sums)}


def test_reduction_over_nav_buffer_in_get_results_sees_only_selected_frames(any_ctx, data, roi):
    ds = any_ctx.load("memory", data=data, num_partitions=3)
    res = any_ctx.run_udf(dataset=ds, udf=MeanOfFrameSums(), roi=roi)
    expected = data.sum(axis=(2, 3), dtype=np.float64)[roi].mean()
    # before: the NaN-filled full-nav array made the mean NaN
    np.testing.assert_allclose(res["mean"].data[0], expected, rtol=1e-6)
    np.testing.assert_allclose(
        res["sums"].raw_data, data.sum(axis=(2, 3), dtype=np.float64)[roi], rtol=1e-6
    )


def test_get_results_nav_buffers_are_flat_without_roi(ctx, data):
    seen = {}

    class Shapes(MeanOfFrameSums):
        def get_results(self):
            seen["shape"] = self.results.sums.shape
            return super().get_results()

    ds = ctx.load("memory", data=data)
    ctx.run_udf(dataset=ds, udf=Shapes())
    assert seen["shape"] == (30,)


def test_buffers_left_out_by_get_results_pass_through(any_ctx, data, roi):
    class OnlyDerived(UDF):
        def get_result_buffers(self):
            return {
                "total": self.buffer(kind="nav", dtype="float64"),
                "acc": self.buffer(kind="sig", dtype="float64"),
                "double": self.buffer(kind="nav", dtype="float64", use="result_only"),
            }

        def process_frame(self, frame):
            self.results.total[:] = frame.sum()
            self.results.acc[:] += frame

        def merge(self, dest, src):
            dest.total[:] = src.total
            dest.acc[:] += src.acc

        def get_results(self):
            return {"double": 2 * self.results.total}

    ds = any_ctx.load("memory", data=data, num_partitions=2)
    res = any_ctx.run_udf(dataset=ds, udf=OnlyDerived(), roi=roi)
    assert set(res) == {"total", "acc", "double"}  # before: only "double"
    sums = data.sum(axis=(2, 3), dtype=np.float64)
    np.testing.assert_allclose(res["total"].data[roi], sums[roi], rtol=1e-6)
    assert np.isnan(res["total"].data[~roi]).all()
    np.testing.assert_allclose(res["acc"].data, data[roi].sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(res["double"].raw_data, 2 * sums[roi], rtol=1e-6)


def test_returning_a_private_buffer_is_an_error(ctx, data):
    class LeaksPrivate(UDF):
        def get_result_buffers(self):
            return {
                "scratch": self.buffer(kind="nav", use="private"),
                "out": self.buffer(kind="nav"),
            }

        def process_frame(self, frame):
            self.results.scratch[:] = 1
            self.results.out[:] = frame.sum()

        def get_results(self):
            return {"out": self.results.out, "scratch": self.results.scratch}

    ds = ctx.load("memory", data=data)
    with pytest.raises(BufferError, match=r"returned 'scratch', a private buffer"):
        ctx.run_udf(dataset=ds, udf=LeaksPrivate())


def test_result_only_without_get_results_is_an_error_before_work_starts(ctx, data):
    calls = []

    class Forgotten(UDF):
        def get_result_buffers(self):
            return {
                "x": self.buffer(kind="nav"),
                "derived": self.buffer(kind="nav", use="result_only"),
            }

        def process_frame(self, frame):
            calls.append(1)
            self.results.x[:] = frame.sum()

    ds = ctx.load("memory", data=data)
    with pytest.raises(
        BufferError,
        match=r"result_only buffers \('derived'\) but has no "
        r"get_results\(\)",
    ):
        ctx.run_udf(dataset=ds, udf=Forgotten())
    assert calls == []


def test_result_only_reads_none_while_processing(any_ctx, data):
    class Peeks(UDF):
        def get_result_buffers(self):
            return {
                "seen_none": self.buffer(kind="nav", dtype=bool),
                "derived": self.buffer(kind="nav", use="result_only"),
            }

        def process_frame(self, frame):
            self.results.seen_none[:] = self.results.derived is None

        def get_results(self):
            assert self.results.derived is None
            return {"derived": self.results.seen_none.astype(np.float32)}

    ds = any_ctx.load("memory", data=data, num_partitions=2)
    res = any_ctx.run_udf(dataset=ds, udf=Peeks())
    assert res["seen_none"].data.all()
    np.testing.assert_array_equal(res["derived"].data, 1)


def test_leaving_out_a_result_only_buffer_is_an_error(ctx, data):
    class Incomplete(UDF):
        def get_result_buffers(self):
            return {
                "x": self.buffer(kind="nav"),
                "derived": self.buffer(kind="nav", use="result_only"),
            }

        def process_frame(self, frame):
            self.results.x[:] = 1

        def get_results(self):
            return {}

    ds = ctx.load("memory", data=data)
    with pytest.raises(BufferError, match=r"did not return its result_only buffer\(s\) 'derived'"):
        ctx.run_udf(dataset=ds, udf=Incomplete())
