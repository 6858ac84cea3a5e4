"""Detector corrections against a per-pixel NumPy reference, over every executor, with roi."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from udfwidgets import UDF, CorrectionSet
from udfwidgets.corrections import (
    CorrectionError,
    find_dead_pixels,
    find_hot_pixels,
    resolve_corrections,
)
from udfwidgets.udf.com import CoMUDF
from udfwidgets.udf.stddev import StdDevUDF
from udfwidgets.udf.sum import SumUDF


def reference(frames, dark, gain, excluded):
    """(frames - dark) * gain in float64, excluded pixels from the median of valid neighbours,
    written with explicit loops over the excluded pixels."""
    out = frames.astype(np.float64)
    if dark is not None:
        out = out - dark
    if gain is not None:
        out = out * gain
    h, w = frames.shape[-2:]
    for y, x in zip(*np.nonzero(excluded)):
        for r in (1, 2):
            vals = [
                out[..., yy, xx]
                for yy in range(y - r, y + r + 1)
                for xx in range(x - r, x + r + 1)
                if 0 <= yy < h and 0 <= xx < w and (yy, xx) != (y, x) and not excluded[yy, xx]
            ]
            if vals:
                out[..., y, x] = np.median(np.stack(vals, axis=-1), axis=-1)
                break
        else:
            out[..., y, x] = 0
    return out


@pytest.fixture
def bad_detector(rng):
    """uint16 frames from a known truth, with dark offset, uneven gain, hot and dead pixels."""
    nav, sig = (6, 7), (12, 11)
    truth = rng.poisson(200, size=nav + sig).astype(np.float64)
    dark = rng.uniform(5, 40, size=sig)
    gain = rng.uniform(0.5, 2.0, size=sig)
    raw = truth / gain + dark
    excluded = np.zeros(sig, dtype=bool)
    hot = [(0, 0), (3, 4), (3, 5), (11, 10), (6, 0)]  # a corner, a pair, the far corner, an edge
    dead = [(8, 8)]
    cluster = [(y, x) for y in range(4, 7) for x in range(6, 9)]  # 3x3 block: centre needs 5x5
    for y, x in hot:
        raw[..., y, x] = 60000
    for y, x in dead + cluster:
        raw[..., y, x] = 0
    for p in hot + dead + cluster:
        excluded[p] = True
    data = np.clip(np.round(raw), 0, 65535).astype(np.uint16)
    return data, dark, gain, excluded, truth


def test_apply_matches_reference(bad_detector):
    data, dark, gain, excluded, _ = bad_detector
    corr = CorrectionSet(dark=dark, gain=gain, excluded_pixels=excluded)
    got = corr.apply(data, dtype=np.float64)
    np.testing.assert_allclose(got, reference(data, dark, gain, excluded), rtol=1e-12)
    assert corr.apply(data).dtype == np.float32


def test_coordinates_and_mask_agree(bad_detector):
    data, _, _, excluded, _ = bad_detector
    coords = np.argwhere(excluded)
    a = CorrectionSet(excluded_pixels=excluded).apply(data)
    b = CorrectionSet(excluded_pixels=coords.tolist()).apply(data)
    np.testing.assert_array_equal(a, b)


def test_no_valid_neighbour_within_5x5_gives_zero():
    excluded = np.zeros((7, 7), dtype=bool)
    excluded[:, :] = True
    excluded[0, 6] = False  # far from (6, 0)
    frames = np.full((2, 7, 7), 5.0)
    got = CorrectionSet(excluded_pixels=excluded).apply(frames)
    ref = reference(frames, None, None, excluded)
    np.testing.assert_array_equal(got, ref)
    assert got[0, 6, 0] == 0 and got[0, 0, 6] == 5


def test_one_dimensional_signal():
    frames = np.arange(20, dtype=np.float32).reshape(2, 10) ** 2
    got = CorrectionSet(excluded_pixels=[(0,), (5,)]).apply(frames)
    assert got[0, 0] == frames[0, 1]  # one valid neighbour within 1
    assert got[1, 5] == np.median([frames[1, 4], frames[1, 6]])


def _run_reference(data, dark, gain, excluded, roi):
    ref = reference(data, dark, gain, excluded).astype(np.float32)
    frames = ref.reshape((-1,) + ref.shape[-2:])
    if roi is not None:
        frames = frames[roi.reshape(-1)]
    return ref, frames


class FrameMax(UDF):
    """process_frame UDF: the maximum of every frame (sees corrected frames one by one)."""

    def get_result_buffers(self):
        return {"m": self.buffer(kind="nav", dtype="float64")}

    def process_frame(self, frame):
        self.results.m[:] = frame.max()


class PartitionMin(UDF):
    """process_partition UDF with a sig buffer: the minimum over all frames."""

    def get_preferred_input_dtype(self):
        return np.float64

    def get_result_buffers(self):
        return {"lo": self.buffer(kind="sig", dtype="float64")}

    def preprocess(self):
        self.results.lo[:] = np.inf

    def process_partition(self, partition):
        np.minimum(self.results.lo, partition.min(axis=0), out=self.results.lo)

    def merge(self, dest, src):
        np.minimum(dest.lo, src.lo, out=dest.lo)


@pytest.mark.parametrize("with_roi", [False, True])
def test_every_executor_and_process_method(any_ctx, bad_detector, with_roi, rng):
    data, dark, gain, excluded, _ = bad_detector
    roi = rng.random(data.shape[:2]) < 0.6 if with_roi else None
    ds = any_ctx.load("memory", data=data, num_partitions=3)
    corr = CorrectionSet(dark=dark, gain=gain, excluded_pixels=np.argwhere(excluded))
    _, frames = _run_reference(data, dark, gain, excluded, roi)
    res_sum, res_max, res_min = any_ctx.run_udf(
        dataset=ds,
        udf=[SumUDF(dtype="float64"), FrameMax(), PartitionMin()],
        roi=roi,
        corrections=corr,
    )
    np.testing.assert_allclose(
        res_sum["intensity"].data, frames.astype(np.float64).sum(axis=0), rtol=1e-5
    )
    want_max = np.full(data.shape[:2], np.nan)
    flat = want_max.reshape(-1)
    sel = np.ones(flat.size, bool) if roi is None else roi.reshape(-1)
    flat[sel] = frames.reshape(len(frames), -1).max(axis=1)
    np.testing.assert_allclose(res_max["m"].data, want_max, rtol=1e-6)
    ref64 = reference(data, dark, gain, excluded).reshape((-1,) + data.shape[-2:])[sel]
    np.testing.assert_allclose(res_min["lo"].data, ref64.min(axis=0), rtol=1e-12)


def test_run_udf_iter_accepts_corrections(ctx, bad_detector):
    data, dark, gain, excluded, _ = bad_detector
    ds = ctx.load("memory", data=data, num_partitions=2)
    corr = CorrectionSet(dark=dark, gain=gain, excluded_pixels=excluded)
    last = list(ctx.run_udf_iter(dataset=ds, udf=SumUDF(), corrections=corr))[-1]
    _, frames = _run_reference(data, dark, gain, excluded, None)
    np.testing.assert_allclose(last.buffers[0]["intensity"].data, frames.sum(axis=0), rtol=1e-5)


def _spot_frames(nav, sig, shifts, rng):
    """Gaussian spots shifted by ``shifts`` (nav + (2,)) around the frame's middle."""
    y, x = np.indices(sig, dtype=np.float64)
    cy, cx = (sig[0] - 1) / 2, (sig[1] - 1) / 2
    sy = shifts[..., 0][..., None, None]
    sx = shifts[..., 1][..., None, None]
    return 1000 * np.exp(-((y - cy - sy) ** 2 + (x - cx - sx) ** 2) / (2 * 2.0**2))


@pytest.mark.parametrize("with_roi", [False, True])
def test_com_shift_map_recovered_only_when_corrected(any_ctx, rng, with_roi):
    nav, sig = (5, 6), (24, 24)
    shifts = rng.uniform(-2, 2, size=nav + (2,))
    truth = _spot_frames(nav, sig, shifts, rng)
    yy, xx = np.indices(sig)
    dark = 20 + 3.0 * xx  # a dark gradient pulls the uncorrected CoM to the right
    gain = 1 + 0.5 * (yy / sig[0])  # uneven gain
    raw = truth / gain + dark
    hot = [(2, 21), (20, 3)]
    for p in hot:
        raw[(...,) + p] = 50000
    data = np.round(raw).astype(np.uint16)
    roi = rng.random(nav) < 0.7 if with_roi else None
    ds = any_ctx.load("memory", data=data, num_partitions=2)
    corr = CorrectionSet(dark=dark, gain=gain, excluded_pixels=hot)

    def true_com(frames):
        tot = frames.sum(axis=(-1, -2))
        cy = (frames * yy).sum(axis=(-1, -2)) / tot
        cx = (frames * xx).sum(axis=(-1, -2)) / tot
        return np.stack([cy, cx], axis=-1) - np.array([(sig[0] - 1) / 2, (sig[1] - 1) / 2])

    want = true_com(truth)
    fixed = any_ctx.run_udf(dataset=ds, udf=CoMUDF(), roi=roi, corrections=corr)["raw_shifts"].data
    plain = any_ctx.run_udf(dataset=ds, udf=CoMUDF(), roi=roi)["raw_shifts"].data
    sel = np.ones(nav, bool) if roi is None else roi
    assert np.isnan(fixed[~sel]).all()
    # corrected: within the rounding of the uint16 data and the patched hot pixels
    assert np.abs(fixed[sel] - want[sel]).max() < 0.02
    assert np.abs(plain[sel] - want[sel]).max() > 1.0
    # the truth is the true shifts themselves (the spot is well inside the frame)
    np.testing.assert_allclose(want, shifts, atol=1e-3)


def test_dataset_corrections_used_by_default_and_false_disables(ctx, bad_detector):
    data, dark, _, _, _ = bad_detector
    ds = ctx.load("memory", data=data)
    corr = CorrectionSet(dark=dark)
    ds.corrections = corr
    assert ds.corrections is corr
    with_default = ctx.run_udf(dataset=ds, udf=SumUDF(dtype="float64"))["intensity"].data
    without = ctx.run_udf(dataset=ds, udf=SumUDF(dtype="float64"), corrections=False)
    np.testing.assert_allclose(without["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(
        with_default,
        (data.astype(np.float64) - dark.astype(np.float32)).sum(axis=(0, 1)),
        rtol=1e-5,
    )
    # an explicit set replaces the dataset's
    other = ctx.run_udf(
        dataset=ds,
        udf=SumUDF(dtype="float64"),
        corrections=CorrectionSet(gain=np.full(dark.shape, 2.0)),
    )
    np.testing.assert_allclose(other["intensity"].data, 2 * data.sum(axis=(0, 1)), rtol=1e-6)
    ds.corrections = None
    assert resolve_corrections(None, ds) is None


def test_corrected_input_dtype_is_float(ctx):
    seen = {}

    class Native(UDF):
        def get_preferred_input_dtype(self):
            return self.USE_NATIVE_DTYPE

        def get_result_buffers(self):
            return {"s": self.buffer(kind="nav", dtype="float64")}

        def process_tile(self, tile):
            seen["dtype"] = tile.dtype
            self.results.s[:] = tile.sum(axis=(1, 2))

    data = np.full((2, 2, 3, 3), 3, dtype=np.uint16)
    ds = ctx.load("memory", data=data)
    res = ctx.run_udf(dataset=ds, udf=Native(), corrections=CorrectionSet(dark=np.full((3, 3), 5)))
    assert seen["dtype"] == np.float32
    np.testing.assert_array_equal(res["s"].data, np.full((2, 2), -18.0))  # no uint16 wrap-around
    ctx.run_udf(dataset=ds, udf=Native())
    assert seen["dtype"] == np.uint16


def test_file_never_modified(ctx, tmp_path, bad_detector):
    data, dark, gain, excluded, _ = bad_detector
    path = tmp_path / "scan.npy"
    np.save(path, data)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    ds = ctx.load("npy", path=str(path))
    corr = CorrectionSet(dark=dark, gain=gain, excluded_pixels=excluded)
    for udf in (SumUDF(), CoMUDF(), PartitionMin()):
        ctx.run_udf(dataset=ds, udf=udf, corrections=corr)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dark": np.zeros((3, 3))}, r"dark has shape \(3, 3\).*\(12, 11\)"),
        ({"gain": np.zeros((12, 12))}, r"gain has shape \(12, 12\)"),
        ({"excluded_pixels": np.zeros((11, 12), bool)}, "mask has shape"),
        ({"excluded_pixels": [(12, 0)]}, "outside the frames"),
        ({"excluded_pixels": [(-1, 0)]}, "outside the frames"),
        ({"excluded_pixels": [(1, 2, 3)]}, "coordinates of 3 values"),
    ],
)
def test_shape_errors_before_any_work(ctx, kwargs, match):
    ran = []

    class Spy(UDF):
        def get_result_buffers(self):
            return {"s": self.buffer(kind="nav")}

        def process_frame(self, frame):
            ran.append(1)

    ds = ctx.load("memory", data=np.zeros((2, 2, 12, 11), dtype=np.uint16))
    with pytest.raises(CorrectionError, match=match):
        ctx.run_udf(dataset=ds, udf=Spy(), corrections=CorrectionSet(**kwargs))
    assert not ran
    with pytest.raises(CorrectionError, match=match):
        ds.corrections = CorrectionSet(**kwargs)


def test_bad_values():
    with pytest.raises(CorrectionError, match="NaN or infinite"):
        CorrectionSet(gain=np.array([[1.0, np.inf]]))
    with pytest.raises(CorrectionError, match="real numbers"):
        CorrectionSet(dark=np.array([["a"]]))
    with pytest.raises(CorrectionError, match=r"\(n, 2\) integer array"):
        CorrectionSet(excluded_pixels=np.array([0.5, 1.5]))
    with pytest.raises(TypeError, match="CorrectionSet"):
        resolve_corrections("dark.npy", None)
    with pytest.raises(TypeError, match="CorrectionSet or None"):
        from udfwidgets.io.memory import MemoryDataSet

        MemoryDataSet(np.zeros((2, 3, 3))).corrections = {"dark": 1}


def test_empty_set_is_no_correction(ctx):
    ds = ctx.load("memory", data=np.ones((2, 2, 3, 3), dtype=np.uint16))
    assert CorrectionSet().is_empty and CorrectionSet(excluded_pixels=[]).is_empty
    assert resolve_corrections(CorrectionSet(), ds) is None


@pytest.fixture
def counting_scan(rng):
    sig = (32, 30)
    data = rng.poisson(20, size=(8, 8) + sig).astype(np.uint16)
    hot = [(3, 7), (0, 29), (31, 0), (15, 15), (16, 15)]
    dead = [(10, 20), (0, 0), (31, 29)]
    stuck = (25, 5)
    for p in hot:
        data[(...,) + p] += 2000
    for p in dead:
        data[(...,) + p] = 0
    data[(...,) + stuck] = 20  # gives a value, always the same one
    return data, hot, dead, stuck


def _as_set(coords):
    return {tuple(int(v) for v in c) for c in coords}


def test_find_hot_and_dead_pixels(ctx, counting_scan):
    data, hot, dead, stuck = counting_scan
    ds = ctx.load("memory", data=data)
    s = ctx.run_udf(dataset=ds, udf=SumUDF())
    sd = ctx.run_udf(dataset=ds, udf=StdDevUDF())
    assert _as_set(find_hot_pixels(s)) == set(hot)
    assert _as_set(find_hot_pixels(sd)) == set(hot)
    assert _as_set(find_dead_pixels(s)) == set(dead)  # a stuck pixel has a normal sum
    assert _as_set(find_dead_pixels(sd)) == set(dead) | {stuck}
    found = np.concatenate([find_hot_pixels(s), find_dead_pixels(sd)])
    assert found.shape[1] == 2 and found.dtype.kind == "i"
    fixed = ctx.run_udf(dataset=ds, udf=SumUDF(), corrections=CorrectionSet(excluded_pixels=found))
    img = fixed["intensity"].data
    assert img.max() < 2 * np.median(img) and img.min() > 0.5 * np.median(img)


def test_find_pixels_bad_input():
    with pytest.raises(ValueError, match="SumUDF"):
        find_hot_pixels({"field": np.zeros((3, 3))})
    assert len(find_hot_pixels(np.full((4, 4), 7.0))) == 0
    assert len(find_dead_pixels(np.zeros((4, 4)))) == 0  # no positive neighbourhood


@pytest.mark.parametrize("density", [0.02, 0.2, 0.5, 0.8])
def test_random_masks_match_reference(rng, density):
    # every neighbour count from 0 to 24 turns up across these densities
    frames = rng.normal(100, 30, size=(3, 15, 13))
    for _ in range(5):
        excluded = rng.random((15, 13)) < density
        got = CorrectionSet(excluded_pixels=excluded).apply(frames, dtype=np.float64)
        np.testing.assert_allclose(got, reference(frames, None, None, excluded), rtol=1e-12)


def test_compiled_kernel_matches_numpy(rng, monkeypatch):
    """With numba installed, correct_tile uses a compiled kernel; it must give NumPy's values."""
    pytest.importorskip("numba")
    if os.environ.get("UDFWIDGETS_NUMBA") == "0":
        pytest.skip("UDFWIDGETS_NUMBA=0 turns the compiled kernel off")
    from udfwidgets import _corrections_kernel, corrections

    assert _corrections_kernel.get_kernel() is not None
    frames = rng.integers(0, 4000, size=(7, 15, 13)).astype(np.uint16)
    # every density with each of the kernel's four pixel loops (dark and gain on or off)
    cases = [
        (d, dark, gain) for d in (0.0, 0.05, 0.3, 0.7, 0.95) for dark in (0, 1) for gain in (0, 1)
    ]
    for density, use_dark, use_gain in cases:
        excluded = rng.random((15, 13)) < density
        corr = CorrectionSet(
            dark=rng.uniform(0, 9, (15, 13)) if use_dark else None,
            gain=rng.uniform(0.5, 2, (15, 13)) if use_gain else None,
            excluded_pixels=excluded,
        )
        state = corr.prepare((15, 13), frames.dtype)
        compiled = corrections.correct_tile(frames, state)
        monkeypatch.setattr(_corrections_kernel, "_KERNEL", None)
        numpy_only = corrections.correct_tile(frames, state)
        monkeypatch.undo()
        np.testing.assert_array_equal(compiled, numpy_only)
        np.testing.assert_allclose(
            compiled, reference(frames, corr.dark, corr.gain, excluded), rtol=1e-5, atol=1e-3
        )


class TileDepth(UDF):
    """Every frame's value is the number of frames in the tile it came in, and its sum."""

    def get_result_buffers(self):
        return {
            "depth": self.buffer(kind="nav", dtype="int64"),
            "total": self.buffer(kind="nav", dtype="float64"),
        }

    def process_tile(self, tile):
        self.results.depth[:] = len(tile)
        self.results.total[:] = tile.sum(axis=(1, 2), dtype=np.float64)


@pytest.mark.parametrize("with_roi", [False, True])
def test_corrected_tiles_stay_cache_sized(any_ctx, rng, with_roi):
    """With the compiled kernel, corrected tiles hold at most CORRECTED_TILE_BYTES (1 MiB) of
    output, so that the UDFs read them back from the cache; plain runs keep the default tiles.
    The values are those of the NumPy reference either way."""
    from udfwidgets._corrections_kernel import get_kernel
    from udfwidgets.executor.task import CORRECTED_TILE_BYTES, DEFAULT_TILE_BYTES

    sig = (64, 64)  # 16 KiB of float32 per frame: 64 frames per 1 MiB tile
    data = rng.integers(0, 1000, size=(10, 30) + sig).astype(np.uint16)  # 300 frames
    excluded = np.zeros(sig, bool)
    excluded[[0, 5, 40, 63], [0, 7, 40, 63]] = True
    corr = CorrectionSet(
        dark=rng.uniform(0, 9, sig), gain=rng.uniform(0.5, 2, sig), excluded_pixels=excluded
    )
    roi = rng.random((10, 30)) < 0.8 if with_roi else None
    sel = np.ones(300, bool) if roi is None else roi.reshape(-1)
    ds = any_ctx.load("memory", data=data, num_partitions=1)
    per_frame = 4 * sig[0] * sig[1]
    plain = any_ctx.run_udf(dataset=ds, udf=TileDepth(), roi=roi, corrections=False)
    fixed = any_ctx.run_udf(dataset=ds, udf=TileDepth(), roi=roi, corrections=corr)
    n = int(sel.sum())
    assert plain["depth"].data.reshape(-1)[sel].max() == min(n, DEFAULT_TILE_BYTES // per_frame)
    cap = CORRECTED_TILE_BYTES if get_kernel() is not None else DEFAULT_TILE_BYTES
    depths = fixed["depth"].data.reshape(-1)[sel]
    assert depths.max() == min(n, cap // per_frame)
    if get_kernel() is not None:
        assert set(np.unique(depths)) <= {64, n % 64}  # full tiles and the last one
    ref = reference(data, corr.dark, corr.gain, excluded).astype(np.float32)
    want = ref.reshape((300,) + sig)[sel].sum(axis=(1, 2), dtype=np.float64)
    np.testing.assert_allclose(fixed["total"].data.reshape(-1)[sel], want, rtol=1e-6)


def test_isolated_pixels_median_of_eight(rng, monkeypatch):
    """An isolated interior pixel has 8 valid neighbours (the compiled kernel's own sorting
    network for 8): the mean of the middle two, equal to NumPy's and the reference's values,
    with ties, negative values and every order of the neighbours."""
    from udfwidgets import _corrections_kernel, corrections

    excluded = np.zeros((12, 12), bool)
    excluded[2::4, 2::4] = True  # 9 isolated pixels, none on an edge
    frames = rng.integers(-3, 4, size=(40, 12, 12)).astype(np.float32)  # many ties
    frames[:20] = rng.permutation(frames.size // 2).reshape(20, 12, 12)  # all distinct
    state = CorrectionSet(excluded_pixels=excluded).prepare((12, 12), frames.dtype)
    assert {len(nb[~pad]) for _, nb, pad, _, _ in state.tables for nb, pad in zip(nb, pad)} == {8}
    got = corrections.correct_tile(frames, state)
    monkeypatch.setattr(_corrections_kernel, "_KERNEL", None)
    numpy_only = corrections.correct_tile(frames, state)
    np.testing.assert_array_equal(got, numpy_only)
    np.testing.assert_array_equal(got, reference(frames, None, None, excluded))
