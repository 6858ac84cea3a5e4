"""The UDF API as LiberTEM documents it: buffer assignment, params, meta,
process-method precedence, slices, valid masks, NoOpUDF."""

from __future__ import annotations

import numpy as np
import pytest

from udfwidgets import UDF
from udfwidgets.udf import NoOpUDF, UDFMethod
from udfwidgets.udf.sum import SumUDF


@pytest.fixture
def data(rng):
    return rng.random((4, 6, 5, 3), dtype=np.float32)


@pytest.fixture
def roi(rng):
    mask = rng.random((4, 6)) < 0.5
    mask[0, 1] = mask[3, 5] = True
    return mask


class PlusEqualSum(UDF):
    """LiberTEM-style: no slice assignment anywhere."""

    def get_result_buffers(self):
        return {
            "sum": self.buffer(kind="sig", dtype="float64"),
            "count": self.buffer(kind="single", dtype="int64"),
            "pixelsum": self.buffer(kind="nav", dtype="float64"),
        }

    def process_frame(self, frame):
        self.results.sum += frame
        self.results.count += 1
        self.results.pixelsum = frame.sum()

    def merge(self, dest, src):
        dest.sum += src.sum
        dest.count += src.count
        dest.pixelsum = src.pixelsum


def test_plus_equal_and_plain_assignment_write_into_buffers(any_ctx, data, roi):
    ds = any_ctx.load("memory", data=data, num_partitions=3)
    for r in (None, roi):
        res = any_ctx.run_udf(dataset=ds, udf=PlusEqualSum(), roi=r)
        sel = np.ones(data.shape[:2], bool) if r is None else r
        np.testing.assert_allclose(res["sum"].data, data[sel].sum(axis=0), rtol=1e-5)
        assert int(res["count"].data[0]) == sel.sum()
        np.testing.assert_allclose(res["pixelsum"].data[sel], data.sum(axis=(2, 3))[sel], rtol=1e-5)


def test_assigning_a_wrong_shape_names_the_buffer(ctx, data):
    class Bad(UDF):
        def get_result_buffers(self):
            return {"acc": self.buffer(kind="sig")}

        def process_frame(self, frame):
            self.results.acc = np.zeros(7)

        def merge(self, dest, src):
            dest.acc += src.acc

    with pytest.raises(ValueError, match=r"cannot write into buffer 'acc' of Bad"):
        ctx.run_udf(dataset=ctx.load("memory", data=data), udf=Bad())


def test_params_get_with_default(ctx, data):
    class Scaled(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav")}

        def process_frame(self, frame):
            self.results.x[:] = frame.sum() * self.params.get("scale", 1.0)

    ds = ctx.load("memory", data=data)
    plain = ctx.run_udf(dataset=ds, udf=Scaled())["x"].data
    twice = ctx.run_udf(dataset=ds, udf=Scaled(scale=2.0))["x"].data
    np.testing.assert_allclose(twice, 2 * plain, rtol=1e-6)
    assert Scaled(scale=3).params.get("scale") == 3 and Scaled().params.get("missing") is None


def test_the_udf_passed_to_run_udf_gets_its_meta(ctx, data, roi):
    udf = SumUDF()
    assert udf.meta is None
    ctx.run_udf(dataset=ctx.load("memory", data=data), udf=udf, roi=roi)
    assert tuple(udf.meta.dataset_shape) == data.shape
    np.testing.assert_array_equal(udf.meta.roi, roi)
    assert udf.meta.input_dtype == np.float32


def test_get_results_is_lazy_in_run_udf_iter(ctx, data):
    calls = []

    class Counting(SumUDF):
        def get_results(self):
            calls.append(1)
            return {"intensity": self.results.intensity}

    ds = ctx.load("memory", data=data, num_partitions=3)
    items = list(ctx.run_udf_iter(dataset=ds, udf=Counting()))
    assert len(items) == 3 and calls == []  # nobody read .buffers
    items[-1].buffers
    assert calls == [1]
    np.testing.assert_allclose(
        items[-1].buffers[0]["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-5
    )


class AllThree(UDF):
    def get_result_buffers(self):
        return {"which": self.buffer(kind="nav", dtype="int8")}

    def process_frame(self, frame):
        self.results.which[:] = 1

    def process_tile(self, tile):
        self.results.which[:] = 2

    def process_partition(self, partition):
        self.results.which[:] = 3


def test_method_precedence_tile_frame_partition(any_ctx, data):
    class FramePartition(AllThree):
        process_tile = None

    class PartitionOnly(FramePartition):
        process_frame = None

    ds = any_ctx.load("memory", data=data, num_partitions=2)
    for cls, value, method in (
        (AllThree, 2, UDFMethod.TILE),
        (FramePartition, 1, UDFMethod.FRAME),
        (PartitionOnly, 3, UDFMethod.PARTITION),
    ):
        assert cls().get_method() is method
        assert (any_ctx.run_udf(dataset=ds, udf=cls())["which"].data == value).all()


def test_get_method_override_chooses(ctx, data):
    class WantsFrames(AllThree):
        def get_method(self):
            return UDFMethod.FRAME

    res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=WantsFrames())
    assert (res["which"].data == 1).all()


def test_noop_udf_reads_everything_and_returns_nothing(any_ctx, data):
    ds = any_ctx.load("memory", data=data, num_partitions=2)
    assert any_ctx.run_udf(dataset=ds, udf=NoOpUDF()) == {}


def test_use_native_dtype(ctx, rng):
    data = rng.integers(0, 100, (3, 4, 2, 2), dtype=np.uint16)
    seen = []

    class Native(UDF):
        def get_preferred_input_dtype(self):
            return self.USE_NATIVE_DTYPE

        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav", dtype=self.meta.input_dtype)}

        def process_frame(self, frame):
            seen.append(frame.dtype)
            self.results.x[:] = frame.max()

    res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=Native())
    assert set(seen) == {np.dtype(np.uint16)}
    np.testing.assert_array_equal(res["x"].data, data.max(axis=(2, 3)))


class SliceUDF(UDF):
    """Records meta.slice, meta.coordinates and meta.sig_slice per frame / tile."""

    def get_result_buffers(self):
        return {
            "origin": self.buffer(kind="nav", dtype="int64"),
            "coords": self.buffer(kind="nav", extra_shape=(2,), dtype="int64"),
            "tile_origin": self.buffer(kind="nav", dtype="int64"),
            "ok": self.buffer(kind="nav", dtype=bool),
        }

    def process_tile(self, tile):
        sl = self.meta.slice
        n = tile.shape[0]
        self.results.tile_origin[:] = sl.origin[0]
        self.results.origin[:] = sl.origin[0] + np.arange(n)
        self.results.coords[:] = self.meta.coordinates
        sig = tuple(self.meta.dataset_shape.sig)
        self.results.ok[:] = (
            tuple(sl.shape.nav) == (n,)
            and tuple(sl.shape.sig) == sig
            and sl.get(sig_only=True) == tuple(slice(0, s) for s in sig)
            and sl.get(nav_only=True) == (slice(sl.origin[0], sl.origin[0] + n),)
            and tuple(self.meta.sig_slice.shape) == sig
        )


def test_meta_slice_is_roi_compressed_and_get_cuts_flat_arrays(any_ctx, data, roi):
    ds = any_ctx.load("memory", data=data, num_partitions=3, tileshape=(2, 5, 3))
    for r in (None, roi):
        res = any_ctx.run_udf(dataset=ds, udf=SliceUDF(), roi=r)
        n = data.shape[0] * data.shape[1] if r is None else int(r.sum())
        np.testing.assert_array_equal(res["origin"].raw_data, np.arange(n))
        flat_idx = np.flatnonzero(np.ones(24, bool) if r is None else r.reshape(-1))
        np.testing.assert_array_equal(
            res["coords"].raw_data, np.stack(np.unravel_index(flat_idx, (4, 6)), axis=1)
        )
        assert res["ok"].raw_data.all()
        # tiles of at most two frames (tileshape), aligned inside each partition
        counts = np.unique(res["tile_origin"].raw_data, return_counts=True)[1]
        assert counts.max() <= 2


def test_slice_get_picks_the_rows_of_aux_like_arrays(ctx, data, roi):
    flat = np.arange(int(roi.sum()))

    class Rows(UDF):
        def get_result_buffers(self):
            return {"row": self.buffer(kind="nav", dtype="int64")}

        def process_frame(self, frame):
            self.results.row[:] = self.meta.slice.get(flat)

    res = ctx.run_udf(dataset=ctx.load("memory", data=data, num_partitions=2), udf=Rows(), roi=roi)
    np.testing.assert_array_equal(res["row"].raw_data, flat)


class ValidMaskUDF(UDF):
    def get_result_buffers(self):
        return {
            "nav": self.buffer(kind="nav"),
            "acc": self.buffer(kind="sig"),
            "none_valid": self.buffer(kind="sig"),
            "half": self.buffer(kind="single", extra_shape=(4,)),
            "seen": self.buffer(kind="single", dtype="int64", extra_shape=(3,), use="result_only"),
        }

    def process_frame(self, frame):
        self.results.nav[:] = frame.sum()
        self.results.acc += frame

    def merge(self, dest, src):
        assert self.meta.get_valid_nav_mask() is not None
        dest.nav[:] = src.nav
        dest.acc += src.acc

    def get_results(self):
        valid = self.meta.get_valid_nav_mask()
        full = self.meta.get_valid_nav_mask(full_nav=True)
        return {
            "none_valid": self.with_mask(self.results.none_valid, mask=0),
            "half": self.with_mask(self.results.half, mask=np.array([1, 1, 0, 0], bool)),
            "seen": np.array([valid.sum(), len(valid), len(full)]),
        }


def test_valid_nav_mask_and_with_mask_in_partial_results(any_ctx, data, roi):
    ds = any_ctx.load("memory", data=data, num_partitions=3)
    for part in any_ctx.run_udf_iter(dataset=ds, udf=ValidMaskUDF(), roi=roi):
        buf = part.buffers[0]
        merged = int(part.damage.data.sum())
        np.testing.assert_array_equal(buf["seen"].data, [merged, roi.sum(), roi.size])
        np.testing.assert_array_equal(buf["nav"].valid_mask, part.damage.data)
        assert not buf["none_valid"].valid_mask.any()
        np.testing.assert_array_equal(buf["half"].valid_mask, [True, True, False, False])
        assert buf["acc"].valid_mask.all()
        assert buf["half"].masked_data.mask.tolist() == [False, False, True, True]
    assert merged == roi.sum()
