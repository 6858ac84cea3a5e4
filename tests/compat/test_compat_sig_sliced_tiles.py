"""Tiles that split the frame (LiberTEM's sig-sliced tiles), opt-in through
``MemoryDataSet(tileshape=(d, sy, sx))`` with a signal part smaller than the frame.

Written from LiberTEM's documented behaviour: ``process_tile`` gets tiles that cover
``meta.sig_slice`` of the frame, ``meta.slice.sig`` is that part, ``sig`` buffers are
views of it; ``process_frame`` / ``process_partition`` UDFs (and our UDFs that need
whole frames) keep whole frames.
"""

from __future__ import annotations

import numpy as np
import pytest

from udfwidgets import UDF
from udfwidgets.corrections import CorrectionSet
from udfwidgets.io.memory import MemoryDataSet
from udfwidgets.udf.logsum import LogsumUDF
from udfwidgets.udf.stddev import StdDevUDF
from udfwidgets.udf.sum import SumUDF
from udfwidgets.udf.sumsigudf import SumSigUDF

SIG = (5, 7)


@pytest.fixture
def data(rng):
    return rng.random((4, 6) + SIG, dtype=np.float32)


@pytest.fixture
def roi(rng):
    mask = rng.random((4, 6)) < 0.5
    mask[0, 0] = mask[-1, -1] = True
    return mask


class PartsUDF(UDF):
    """Written as for LiberTEM: += into nav and sig buffers, checks its meta per tile."""

    def get_result_buffers(self):
        return {
            "framesum": self.buffer(kind="nav", dtype="float64"),
            "total": self.buffer(kind="sig", dtype="float64"),
            "tiles": self.buffer(kind="sig", dtype="int64"),
            "bad": self.buffer(kind="single", dtype="int64"),
            "parts": self.buffer(kind="single", dtype="int64"),
        }

    def process_tile(self, tile):
        meta = self.meta
        ss = meta.sig_slice
        ok = (
            tile.shape[1:] == tuple(ss.shape)
            and meta.slice.sig == ss
            and meta.tiling_scheme[meta.tiling_scheme_idx] == ss
            and self.results.total.shape == tuple(ss.shape)
            and tuple(meta.slice.origin[1:]) == tuple(ss.origin)
            and tuple(meta.slice.shape) == (tile.shape[0],) + tuple(ss.shape)
            and ss.get(np.zeros(SIG), sig_only=True).shape == tuple(ss.shape)
        )
        self.results.bad[:] += int(not ok)
        self.results.parts[:] = len(meta.tiling_scheme)
        self.results.framesum[:] += tile.sum(axis=(-1, -2))
        self.results.total[:] += tile.sum(axis=0)
        self.results.tiles[:] += 1

    def merge(self, dest, src):
        dest.total += src.total
        dest.tiles += src.tiles
        dest.bad += src.bad
        dest.parts[:] = src.parts
        dest.framesum[:] = src.framesum


@pytest.mark.parametrize("tileshape", [(2, 2, 3), (3, 5, 4), (1, 1, 7)])
def test_process_tile_gets_parts_of_the_frame(any_ctx, data, roi, tileshape):
    ds = MemoryDataSet(data=data, tileshape=tileshape, num_partitions=3, sig_dims=2)
    n_parts = int(np.prod([-(-s // t) for s, t in zip(SIG, tileshape[1:])]))
    for r in (None, roi):
        res = any_ctx.run_udf(dataset=ds, udf=PartsUDF(), roi=r)
        sel = data.reshape((-1,) + SIG) if r is None else data[r]
        assert int(res["bad"].data[0]) == 0
        assert int(res["parts"].data[0]) == n_parts > 1
        np.testing.assert_allclose(res["total"].data, sel.sum(axis=0), rtol=1e-6)
        ref = data.sum(axis=(-1, -2), dtype=np.float64)
        if r is not None:
            ref[~r] = np.nan
        np.testing.assert_allclose(res["framesum"].data, ref, rtol=1e-6)
        # every pixel is in exactly one part per tile: all pixels saw the same tiles
        tiles = res["tiles"].data
        assert tiles.min() == tiles.max() > 0


def test_whole_frames_without_a_splitting_tileshape(ctx, data):
    ds = MemoryDataSet(data=data, tileshape=(2,) + SIG, num_partitions=2, sig_dims=2)
    res = ctx.run_udf(dataset=ds, udf=PartsUDF())
    assert int(res["parts"].data[0]) == 1 and int(res["bad"].data[0]) == 0
    assert res["tiles"].data.max() == res["tiles"].data.min()


class FrameShape(UDF):
    def get_result_buffers(self):
        return {"shape": self.buffer(kind="nav", extra_shape=(2,), dtype="int64")}

    def process_frame(self, frame):
        self.results.shape[:] = frame.shape
        assert self.meta.sig_slice.shape == SIG and self.meta.slice.sig.shape == SIG


def test_a_process_frame_udf_keeps_whole_frames_for_the_whole_run(any_ctx, data):
    # opt-in only when every UDF of the run uses process_tile
    ds = MemoryDataSet(data=data, tileshape=(2, 2, 3), num_partitions=2, sig_dims=2)
    parts, shapes = any_ctx.run_udf(dataset=ds, udf=[PartsUDF(), FrameShape()])
    assert int(parts["parts"].data[0]) == 1 and int(parts["bad"].data[0]) == 0
    assert (shapes["shape"].data == SIG).all()


def test_builtin_udfs_on_a_splitting_tileshape_match_numpy(any_ctx, data, roi):
    # SumUDF and StdDevUDF take parts of the frame (StdDevUDF counts frames per part);
    # SumSigUDF and LogsumUDF need whole frames and make the run use them
    ds = MemoryDataSet(data=data + 3, tileshape=(2, 3, 4), num_partitions=3, sig_dims=2)
    for r in (None, roi):
        sel = (data + 3).reshape((-1,) + SIG) if r is None else (data + 3)[r]
        s, sd = any_ctx.run_udf(dataset=ds, udf=[SumUDF(), StdDevUDF()], roi=r)
        np.testing.assert_allclose(s["intensity"].data, sel.sum(axis=0), rtol=1e-5)
        np.testing.assert_allclose(sd["var"].data, sel.astype(np.float64).var(axis=0), rtol=1e-5)
        np.testing.assert_allclose(sd["mean"].data, sel.mean(axis=0), rtol=1e-6)
        assert int(sd["num_frames"].data[0]) == len(sel)
        ss, lg = any_ctx.run_udf(dataset=ds, udf=[SumSigUDF(), LogsumUDF()], roi=r)
        ref = (data + 3).sum(axis=(-1, -2))
        np.testing.assert_allclose(
            ss["intensity"].data[r if r is not None else ...],
            ref[r if r is not None else ...],
            rtol=1e-5,
        )
        mins = sel.min(axis=(-1, -2), keepdims=True)
        np.testing.assert_allclose(lg["logsum"].data, np.log1p(sel - mins).sum(axis=0), rtol=1e-5)


def test_stddev_complex_on_parts_of_the_frame(ctx, rng):
    data = (rng.normal(size=(30, 3, 16)) + 1j * rng.normal(size=(30, 3, 16))).astype(np.complex64)
    ds = MemoryDataSet(data=data, tileshape=(3, 2, 7), num_partitions=2, sig_dims=2)
    res = ctx.run_udf(dataset=ds, udf=StdDevUDF())
    np.testing.assert_allclose(res["var"].data, data.astype(np.complex128).var(axis=0), rtol=1e-5)
    np.testing.assert_allclose(res["sum"].data, data.astype(np.complex128).sum(axis=0), rtol=1e-5)


def test_corrections_apply_to_the_whole_frame_before_it_is_split(any_ctx, data, rng):
    dark = rng.random(SIG, dtype=np.float32)
    gain = 1 + rng.random(SIG, dtype=np.float32)
    excluded = np.zeros(SIG, dtype=bool)
    excluded[2, 3] = True
    corr = CorrectionSet(dark=dark, gain=gain, excluded_pixels=excluded)
    flat = data.reshape((-1,) + SIG)
    ref = corr.apply(flat).sum(axis=0)
    ds = MemoryDataSet(data=data, tileshape=(2, 2, 3), num_partitions=2, sig_dims=2)
    res = any_ctx.run_udf(dataset=ds, udf=PartsUDF(), corrections=corr)
    assert int(res["parts"].data[0]) > 1 and int(res["bad"].data[0]) == 0
    np.testing.assert_allclose(res["total"].data, ref, rtol=1e-5)
