"""UDFs that take the corrections themselves (``raw_tile_processor``): SumUDF, ApplyMasksUDF
and CoMUDF read raw tiles and correct (or fold the corrections into their weights) as they
go. Checked against a plain NumPy reference of the corrected data and against the
per-tile path (the same UDFs given corrected tiles), over every executor, with roi,
several partition counts, uint16 and float32 data."""

from __future__ import annotations

import os

import numpy as np
import pytest

from test_corrections import reference
from udfwidgets import UDF, CorrectionSet
from udfwidgets.udf.com import CoMUDF
from udfwidgets.udf.masks import ApplyMasksUDF
from udfwidgets.udf.sum import SumUDF

numba_on = pytest.mark.skipif(
    os.environ.get("UDFWIDGETS_NUMBA") == "0", reason="UDFWIDGETS_NUMBA=0: no compiled kernels"
)


class PerTileSum(SumUDF):
    """SumUDF given corrected tiles (the per-tile path)."""

    raw_tile_processor = None


class PerTileMasks(ApplyMasksUDF):
    raw_tile_processor = None


class PerTileCoM(CoMUDF):
    raw_tile_processor = None


class FrameMax(UDF):
    """A nonlinear UDF: needs the corrected tile, in the same run as the raw-tile UDFs."""

    def get_result_buffers(self):
        return {"m": self.buffer(kind="nav", dtype="float64")}

    def process_tile(self, tile):
        self.results.m[:] = tile.reshape(len(tile), -1).max(axis=1)


SIG = (16, 15)


def _detector(rng, dtype):
    """Frames with a dark offset, uneven gain, and excluded pixels of every kind: isolated
    (8 valid neighbours), on edges and corners, a pair, and a 5x5 block whose centre has
    no valid neighbour within 5x5 (patched to 0)."""
    nav = (5, 7)
    truth = rng.poisson(300, size=nav + SIG).astype(np.float64)
    dark = rng.uniform(5, 40, size=SIG)
    gain = rng.uniform(0.5, 2.0, size=SIG)
    raw = truth / gain + dark
    excluded = np.zeros(SIG, bool)
    for p in [(3, 3), (3, 8), (8, 4), (0, 0), (15, 14), (0, 7), (9, 0), (12, 9), (12, 10)]:
        excluded[p] = True
        raw[..., p[0], p[1]] = 60000
    excluded[5:10, 8:13] = True  # (7, 10) has no valid pixel within 5x5
    raw[..., 5:10, 8:13] = 0
    data = np.clip(np.round(raw), 0, 65535).astype(dtype)
    return data, CorrectionSet(dark=dark, gain=gain, excluded_pixels=excluded), excluded


def _masks(rng):
    y, x = np.indices(SIG)
    ring = ((np.hypot(y - 8, x - 7) > 2) & (np.hypot(y - 8, x - 7) < 6)).astype(np.float32)
    return [rng.uniform(0, 1, SIG).astype(np.float32), ring]


def _reference_results(data, corr, excluded, roi, masks, cy, cx, r):
    ref = reference(data, corr.dark, corr.gain, excluded)
    frames = ref.reshape((-1,) + SIG)
    sel = np.ones(len(frames), bool) if roi is None else roi.reshape(-1)
    frames = frames[sel]
    flat = frames.reshape(len(frames), -1)
    total = frames.sum(axis=0)
    by_mask = flat @ np.stack(masks).reshape(len(masks), -1).astype(np.float64).T
    y, x = np.indices(SIG)
    disk = np.hypot(y - cy, x - cx) <= r
    w = frames * disk
    s = w.sum(axis=(1, 2))
    com = np.stack([(w * y).sum(axis=(1, 2)), (w * x).sum(axis=(1, 2))], -1) / s[:, None]
    return sel, total, by_mask, com, flat.max(axis=1)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
@pytest.mark.parametrize("with_roi", [False, True])
@pytest.mark.parametrize("num_partitions", [1, 3])
def test_linear_udfs_on_raw_tiles_match_reference(any_ctx, rng, dtype, with_roi, num_partitions):
    data, corr, excluded = _detector(rng, dtype)
    roi = rng.random(data.shape[:2]) < 0.6 if with_roi else None
    masks = _masks(rng)
    cy, cx, r = 7.5, 6.0, 6.5
    ds = any_ctx.load("memory", data=data, num_partitions=num_partitions)
    fused = any_ctx.run_udf(
        dataset=ds,
        udf=[SumUDF(), ApplyMasksUDF(masks=masks), CoMUDF(cy=cy, cx=cx, r=r), FrameMax()],
        roi=roi,
        corrections=corr,
    )
    per_tile = any_ctx.run_udf(
        dataset=ds,
        udf=[PerTileSum(), PerTileMasks(masks=masks), PerTileCoM(cy=cy, cx=cx, r=r)],
        roi=roi,
        corrections=corr,
    )
    sel, total, by_mask, com, fmax = _reference_results(data, corr, excluded, roi, masks, cy, cx, r)
    np.testing.assert_allclose(fused[0]["intensity"].data, total, rtol=1e-5)
    got_masks = fused[1]["intensity"].data.reshape(-1, len(masks))[sel]
    np.testing.assert_allclose(got_masks, by_mask, rtol=1e-5)
    got_com = fused[2]["raw_com"].data.reshape(-1, 2)[sel]
    np.testing.assert_allclose(got_com, com, rtol=1e-5)
    np.testing.assert_allclose(fused[3]["m"].data.reshape(-1)[sel], fmax, rtol=1e-6)
    # the per-tile path: the same to float32 rounding
    np.testing.assert_allclose(fused[0]["intensity"].data, per_tile[0]["intensity"].data, rtol=1e-6)
    np.testing.assert_allclose(
        got_masks, per_tile[1]["intensity"].data.reshape(-1, len(masks))[sel], rtol=1e-6
    )
    np.testing.assert_allclose(got_com, per_tile[2]["raw_com"].data.reshape(-1, 2)[sel], rtol=1e-6)


@numba_on
@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
@pytest.mark.parametrize("sum_dtype", ["float32", "float64"])
def test_sum_of_raw_tiles_equals_per_tile_path_exactly(ctx, rng, dtype, sum_dtype):
    """With the same tiles (a fixed tile depth), SumUDF on raw tiles gives the per-tile
    path's values bit for bit: the same corrected value of every pixel, summed in the
    same order."""
    data, corr, excluded = _detector(rng, dtype)
    ds = ctx.load("memory", data=data, num_partitions=2, tileshape=(4,) + SIG)
    fused = ctx.run_udf(dataset=ds, udf=SumUDF(dtype=sum_dtype), corrections=corr)
    per_tile = ctx.run_udf(dataset=ds, udf=PerTileSum(dtype=sum_dtype), corrections=corr)
    np.testing.assert_array_equal(fused["intensity"].data, per_tile["intensity"].data)
    assert fused["intensity"].data.dtype == np.dtype(sum_dtype)


class RawPeek(UDF):
    """Records, per frame, the itemsize of the tiles it gets: from process_tile (corrected
    float32 tiles) or from its raw_tile_processor (the dataset's own uint16 tiles)."""

    def get_result_buffers(self):
        return {
            "raw": self.buffer(kind="nav", dtype="int64"),
            "first": self.buffer(kind="nav", dtype="float64"),
        }

    def process_tile(self, tile):
        self.results.raw[:] = -tile.dtype.itemsize
        self.results.first[:] = tile[:, 0, 0]

    def raw_tile_processor(self, corrections, raw_dtype):
        assert raw_dtype == np.uint16

        def process(tile):
            self.results.raw[:] = tile.dtype.itemsize
            self.results.first[:] = tile[:, 0, 0]

        return process


@pytest.mark.parametrize("with_roi", [False, True])
def test_raw_tile_processor_gets_raw_tiles_only_with_corrections(any_ctx, rng, with_roi):
    data = rng.integers(0, 100, size=(4, 6, 8, 8)).astype(np.uint16)
    roi = rng.random((4, 6)) < 0.5 if with_roi else None
    sel = np.ones(24, bool) if roi is None else roi.reshape(-1)
    ds = any_ctx.load("memory", data=data, num_partitions=2)
    corr = CorrectionSet(dark=np.full((8, 8), 1000.0))  # would make every value negative
    with_corr = any_ctx.run_udf(dataset=ds, udf=RawPeek(), roi=roi, corrections=corr)
    assert (with_corr["raw"].data.reshape(-1)[sel] == 2).all()
    np.testing.assert_array_equal(
        with_corr["first"].data.reshape(-1)[sel], data[..., 0, 0].reshape(-1)[sel]
    )
    plain = any_ctx.run_udf(dataset=ds, udf=RawPeek(), roi=roi, corrections=False)
    assert (plain["raw"].data.reshape(-1)[sel] == -4).all()  # float32 tiles: process_tile


def test_sig_sliced_tiles_keep_the_per_tile_path(ctx, rng):
    """Tiles that split the frame (tileshape with a smaller signal part) give corrected
    tiles even to SumUDF: excluded pixels need whole frames."""
    data, corr, excluded = _detector(rng, np.uint16)
    ds = ctx.load("memory", data=data, num_partitions=2, tileshape=(3, 8, 8))
    got = ctx.run_udf(dataset=ds, udf=SumUDF(), corrections=corr)
    want = reference(data, corr.dark, corr.gain, excluded).reshape((-1,) + SIG).sum(axis=0)
    np.testing.assert_allclose(got["intensity"].data, want, rtol=1e-5)


def test_without_compiled_kernels_the_per_tile_path(ctx, rng, monkeypatch):
    """No numba (or UDFWIDGETS_NUMBA=0): raw_tile_processor returns None, the UDFs get
    corrected tiles, with the same values."""
    from udfwidgets import _corrections_kernel

    monkeypatch.setattr(_corrections_kernel, "_KERNEL", None)
    monkeypatch.setattr(_corrections_kernel, "_TRIED", True)
    data, corr, excluded = _detector(rng, np.uint16)
    masks = _masks(rng)
    ds = ctx.load("memory", data=data, num_partitions=2)
    state = corr.prepare(SIG, data.dtype)
    from udfwidgets.corrections import linear_tiles, sum_tiles

    assert sum_tiles(state, np.uint16, np.float32) is None
    assert linear_tiles(state, np.uint16, np.ones((4, 1), np.float32)) is None
    got = ctx.run_udf(dataset=ds, udf=[SumUDF(), ApplyMasksUDF(masks=masks)], corrections=corr)
    sel, total, by_mask, *_ = _reference_results(data, corr, excluded, None, masks, 7, 7, 3)
    np.testing.assert_allclose(got[0]["intensity"].data, total, rtol=1e-5)
    np.testing.assert_allclose(got[1]["intensity"].data.reshape(-1, 2), by_mask, rtol=1e-5)


@numba_on
def test_kernels_against_correct_tile(rng):
    """sum_tiles and linear_tiles against correct_tile for every combination of dark and
    gain and densities of excluded pixels (neighbourhoods of every size), with ties."""
    pytest.importorskip("numba")
    from udfwidgets.corrections import correct_tile, linear_tiles, sum_tiles

    sig = (15, 13)
    frames = rng.integers(0, 40, size=(9,) + sig).astype(np.uint16)  # many ties
    for density in (0.0, 0.02, 0.3, 0.7, 0.95):
        for use_dark in (False, True):
            for use_gain in (False, True):
                excluded = rng.random(sig) < density
                corr = CorrectionSet(
                    dark=rng.uniform(0, 9, sig) if use_dark else None,
                    gain=rng.uniform(0.5, 2, sig) if use_gain else None,
                    excluded_pixels=excluded,
                )
                state = corr.prepare(sig, frames.dtype)
                want = correct_tile(frames, state)
                ref = reference(frames, corr.dark, corr.gain, excluded)
                np.testing.assert_allclose(want, ref, rtol=1e-5, atol=1e-3)
                acc = np.zeros(sig, np.float32)
                sum_tiles(state, frames.dtype, np.float32)(frames, acc)
                np.testing.assert_array_equal(acc, want.sum(axis=0, dtype=np.float32))
                w = rng.uniform(-1, 1, size=(sig[0] * sig[1] - 20, 3)).astype(np.float32)
                got = linear_tiles(state, frames.dtype, w, start=7)(frames.reshape(9, -1))
                flat = ref.reshape(9, -1)[:, 7 : 7 + len(w)]
                scale = (
                    np.abs(frames.reshape(9, -1)[:, 7 : 7 + len(w)]).astype(float)
                    @ np.abs(w.astype(float))
                    * (1 if corr.gain is None else 2)
                    + 1
                )
                np.testing.assert_array_less(np.abs(got - flat @ w.astype(float)), 1e-5 * scale)


class DoubledSum(SumUDF):
    """A subclass with its own process_tile: must get corrected tiles, not SumUDF's
    raw-tile path (which would skip the override)."""

    def process_tile(self, tile):
        self.results.intensity[:] += 2 * tile.sum(axis=0, dtype=self.results.intensity.dtype)


class MasksPlusOne(ApplyMasksUDF):
    def process_tile(self, tile):
        super().process_tile(tile)
        self.results.intensity[:] += 1


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_subclass_with_own_process_tile_gets_corrected_tiles(ctx, rng, dtype):
    data, corr, excluded = _detector(rng, dtype)
    masks = _masks(rng)
    ds = ctx.load("memory", data=data, num_partitions=2)
    doubled, plus_one = ctx.run_udf(
        dataset=ds, udf=[DoubledSum(), MasksPlusOne(masks=masks)], corrections=corr
    )
    _, total, by_mask, *_ = _reference_results(data, corr, excluded, None, masks, 7, 7, 3)
    np.testing.assert_allclose(doubled["intensity"].data, 2 * total, rtol=1e-5)
    np.testing.assert_allclose(plus_one["intensity"].data.reshape(-1, 2), by_mask + 1, rtol=1e-5)
