"""The benchmark workloads: the same UDF for each engine, and a NumPy reference.

The guide's UDFs (``SumOverSig``, ``MaxUDF``) and the two synthetic ones
(``EmptyFrame`` for per-frame overhead, ``Busy`` for ~1 ms of compute per
frame) are written once, against whichever ``UDF`` base class an engine
brings (:func:`guide_udfs`), so udfwidgets and LiberTEM run identical code.
Standard UDFs come from each package's own module.

Every workload also has a straightforward chunked NumPy implementation over a
memory map (single-threaded, or split over two threads), which is the
reference that every engine's result is checked against before timing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

#: frames per NumPy chunk: about 32 MiB of float32 input
CHUNK_BYTES = 32 << 20


def guide_udfs(UDF) -> dict[str, type]:
    """The guide's UDFs and the synthetic ones, subclassing the given ``UDF`` base."""

    class SumOverSig(UDF):
        def get_result_buffers(self):
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

    class EmptyFrame(UDF):
        def get_result_buffers(self):
            return {"nothing": self.buffer(kind="nav", dtype="float32")}

        def process_frame(self, frame):
            pass

    class Busy(UDF):
        """About ``ms`` milliseconds of CPU time per frame (holds the GIL), then a frame sum."""

        def __init__(self, ms=1.0):
            super().__init__(ms=ms)

        def get_result_buffers(self):
            return {"total": self.buffer(kind="nav", dtype="float64")}

        def process_frame(self, frame):
            clock = time.thread_time
            end = clock() + self.params.ms * 1e-3
            while clock() < end:
                pass
            self.results.total[:] = frame.sum(dtype=np.float64)

    return {"SumOverSig": SumOverSig, "MaxUDF": MaxUDF, "EmptyFrame": EmptyFrame, "Busy": Busy}


# --- masks and CoM geometry (shared by every engine and the reference) ----------------
def make_masks(sig: tuple[int, int]) -> np.ndarray:
    """Four dense float32 masks: a disc, an annulus, and the two half-planes.

    Examples
    --------
    >>> make_masks((8, 8)).shape
    (4, 8, 8)
    """
    h, w = sig
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - h / 2, xx - w / 2)
    disc = r < h / 8
    ring = (r >= h / 6) & (r < h / 3)
    left = xx < w / 2
    top = yy < h / 2
    return np.stack([disc, ring, left, top]).astype(np.float32)


def make_dense_masks(sig: tuple[int, int]) -> np.ndarray:
    """Four dense float32 masks, non-zero on every pixel of the frame.

    A Gaussian, a ramp along y, a ramp along x and a fixed pseudo-random
    pattern: the pixel span of the stack is the whole frame, so no pixel can
    be skipped (the case of issue 15's "linear UDFs at the streaming limit").

    Examples
    --------
    >>> m = make_dense_masks((8, 8))
    >>> m.shape, m.dtype.name, bool((m != 0).all())
    ((4, 8, 8), 'float32', True)
    """
    h, w = sig
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    gauss = np.exp(-((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / (2 * (h / 4) ** 2))
    ramp_y = 1 + yy / h
    ramp_x = 1 + xx / w
    noise = 0.5 + np.random.default_rng(15).random((h, w))
    return np.stack([gauss + 0.01, ramp_y, ramp_x, noise]).astype(np.float32)


def com_params(sig: tuple[int, int]) -> dict:
    """Centre and radius used for CoM: the frame centre, a quarter of the frame wide."""
    return {"cy": sig[0] / 2, "cx": sig[1] / 2, "r": sig[0] / 4}


# --- NumPy references -----------------------------------------------------------------
def _chunks(n: int, frame_bytes: int, lo: int = 0, hi: int | None = None):
    hi = n if hi is None else hi
    step = max(1, CHUNK_BYTES // frame_bytes)
    for a in range(lo, hi, step):
        yield a, min(hi, a + step)


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, n, parts + 1).round().astype(int)
    return list(zip(edges[:-1], edges[1:]))


def np_sum(mm, lo, hi):
    acc = np.zeros(mm.shape[1:], np.float64)
    fb = mm[0].nbytes
    for a, b in _chunks(len(mm), fb, lo, hi):
        acc += mm[a:b].sum(axis=0, dtype=np.float32)
    return {"intensity": acc}


def np_sumsig(mm, lo, hi):
    out = np.empty(hi - lo, np.float64)
    for a, b in _chunks(len(mm), mm[0].nbytes, lo, hi):
        out[a - lo : b - lo] = mm[a:b].sum(axis=(1, 2), dtype=np.float32)
    return {"intensity": out}


def np_max(mm, lo, hi):
    acc = np.full(mm.shape[1:], -np.inf, np.float32)
    for a, b in _chunks(len(mm), mm[0].nbytes, lo, hi):
        np.maximum(acc, mm[a:b].max(axis=0), out=acc)
    return {"maxbuf": acc}


def np_stddev(mm, lo, hi):
    s = np.zeros(mm.shape[1:], np.float64)
    s2 = np.zeros(mm.shape[1:], np.float64)
    for a, b in _chunks(len(mm), mm[0].nbytes, lo, hi):
        c = mm[a:b].astype(np.float64)
        s += c.sum(axis=0)
        s2 += np.einsum("ijk,ijk->jk", c, c)
    return {"_sum": s, "_sum2": s2, "_n": hi - lo}


def _finish_stddev(parts):
    s = sum(p["_sum"] for p in parts)
    s2 = sum(p["_sum2"] for p in parts)
    n = sum(p["_n"] for p in parts)
    mean = s / n
    var = np.maximum(s2 / n - mean**2, 0)
    return {"mean": mean, "var": var, "std": np.sqrt(var)}


def np_masks(mm, lo, hi, masks, dtype=np.float32):
    """Every frame times every mask, in ``dtype`` (float32 as the UDFs by default)."""
    flat = masks.reshape(len(masks), -1).T.astype(dtype)
    out = np.empty((hi - lo, len(masks)), np.float64)
    for a, b in _chunks(len(mm), mm[0].nbytes, lo, hi):
        c = mm[a:b].reshape(b - a, -1)
        if c.dtype != dtype:
            c = c.astype(dtype)
        out[a - lo : b - lo] = c @ flat
    return {"intensity": out}


def np_com(mm, lo, hi, cy, cx, r):
    h, w = mm.shape[1:]
    yy, xx = np.mgrid[:h, :w]
    inside = (np.hypot(yy - cy, xx - cx) <= r).astype(np.float32)
    weights = np.stack([inside, inside * yy, inside * xx]).reshape(3, -1).T
    out = np.empty((hi - lo, 3), np.float64)
    for a, b in _chunks(len(mm), mm[0].nbytes, lo, hi):
        c = mm[a:b].reshape(b - a, -1)
        if c.dtype != np.float32:
            c = c.astype(np.float32)
        out[a - lo : b - lo] = c @ weights
    with np.errstate(invalid="ignore", divide="ignore"):
        com = out[:, 1:] / out[:, :1]
    return {"raw_com": com}


def np_com_full(mm, lo, hi):
    """Whole-frame centre of mass (CoMUDF's default), summed in float64."""
    h, w = mm.shape[1:]
    yy, xx = np.mgrid[:h, :w]
    weights = np.stack([np.ones((h, w)), yy, xx]).reshape(3, -1).T
    out = np.empty((hi - lo, 3), np.float64)
    for a, b in _chunks(len(mm), mm[0].nbytes, lo, hi):
        out[a - lo : b - lo] = mm[a:b].reshape(b - a, -1).astype(np.float64) @ weights
    with np.errstate(invalid="ignore", divide="ignore"):
        com = out[:, 1:] / out[:, :1]
    return {"raw_com": com}


def np_busy(mm, lo, hi, ms=1.0):
    out = np.empty(hi - lo, np.float64)
    for a, b in _chunks(len(mm), mm[0].nbytes, lo, hi):
        out[a - lo : b - lo] = mm[a:b].sum(axis=(1, 2), dtype=np.float64)
    # the same CPU time per frame as the UDF (a busy loop that holds the GIL)
    clock = time.thread_time
    for _ in range(hi - lo):
        end = clock() + ms * 1e-3
        while clock() < end:
            pass
    return {"total": out}


def np_empty(mm, lo, hi):
    return {}


def _concat(parts, key):
    return np.concatenate([p[key] for p in parts])


def _finish_default(kind: dict[str, str]):
    """How to combine per-thread results: sum sig buffers, max for max, concat nav."""

    def finish(parts):
        out = {}
        for key, how in kind.items():
            if how == "sum":
                out[key] = sum(p[key] for p in parts)
            elif how == "max":
                out[key] = np.maximum.reduce([p[key] for p in parts])
            else:
                out[key] = _concat(parts, key)
        return out

    return finish


@dataclass
class Workload:
    """One benchmark workload.

    ``make_ours(ns)`` / ``make_lt(ns)`` build the UDF from a namespace of the
    engine's classes; ``reference(mm, lo, hi)`` computes the result of frames
    ``lo:hi`` in plain NumPy and ``finish`` combines thread parts. ``compare``
    names the result buffers checked between engines, with a relative tolerance.
    """

    name: str
    label: str
    reference: Callable
    finish: Callable
    compare: dict[str, float]
    make_ours: Callable | None = None
    make_lt: Callable | None = None
    dataset: str = "main"  # "main" (the 1 GiB / 512 MiB files) or "small"
    frame_udf: bool = False
    extra: dict = field(default_factory=dict)


def run_numpy(w: Workload, mm, threads: int = 1):
    """The workload's NumPy reference over the whole memory map, in ``threads`` threads."""
    from threadpoolctl import threadpool_limits

    n = len(mm)
    with threadpool_limits(1):
        if threads == 1:
            return w.finish([w.reference(mm, 0, n)])
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(lambda ab: w.reference(mm, *ab), _split(n, threads)))
        return w.finish(parts)


def workloads(sig_for: Callable[[str], tuple]) -> dict[str, Workload]:
    """All workloads; ``sig_for(dataset)`` gives the frame shape (for masks/CoM)."""

    def masks_ref(mm, lo, hi):
        return np_masks(mm, lo, hi, make_masks(mm.shape[1:]))

    def com_ref(mm, lo, hi):
        return np_com(mm, lo, hi, **com_params(mm.shape[1:]))

    def dense_ref(mm, lo, hi):
        return np_masks(mm, lo, hi, make_dense_masks(mm.shape[1:]), np.float64)

    def dense_masks(ns, sig):
        return ns.ApplyMasksUDF(mask_factories=[(lambda m=m: m) for m in make_dense_masks(sig)])

    def lt_masks(ns, sig):
        masks = make_masks(sig)
        return ns.ApplyMasksUDF(mask_factories=[(lambda m=m: m) for m in masks])

    def ours_masks(ns, sig):
        masks = make_masks(sig)
        return ns.ApplyMasksUDF(mask_factories=[(lambda m=m: m) for m in masks])

    W = Workload
    return {
        w.name: w
        for w in [
            W(
                "sum",
                "SumUDF",
                np_sum,
                _finish_default({"intensity": "sum"}),
                {"intensity": 1e-4},
                lambda ns, sig: ns.SumUDF(),
                lambda ns, sig: ns.SumUDF(),
            ),
            W(
                "sumsig",
                "SumSigUDF",
                np_sumsig,
                _finish_default({"intensity": "cat"}),
                {"intensity": 1e-4},
                lambda ns, sig: ns.SumSigUDF(),
                lambda ns, sig: ns.SumSigUDF(),
            ),
            W(
                "sumoversig",
                "SumOverSig (frame)",
                np_sumsig,
                _finish_default({"intensity": "cat"}),
                {"pixelsum": 1e-4},
                lambda ns, sig: ns.SumOverSig(),
                lambda ns, sig: ns.SumOverSig(),
                frame_udf=True,
            ),
            W(
                "max",
                "MaxUDF (frame)",
                np_max,
                _finish_default({"maxbuf": "max"}),
                {"maxbuf": 0},
                lambda ns, sig: ns.MaxUDF(),
                lambda ns, sig: ns.MaxUDF(),
                frame_udf=True,
            ),
            W(
                "stddev",
                "StdDevUDF",
                np_stddev,
                _finish_stddev,
                {"std": 1e-3, "mean": 1e-4},
                lambda ns, sig: ns.StdDevUDF(),
                lambda ns, sig: ns.StdDevUDF(),
            ),
            W(
                "masks",
                "ApplyMasksUDF x4",
                masks_ref,
                _finish_default({"intensity": "cat"}),
                {"intensity": 1e-4},
                ours_masks,
                lt_masks,
            ),
            W(
                "com",
                "CoMUDF",
                com_ref,
                _finish_default({"raw_com": "cat"}),
                {"raw_com": 1e-4},
                lambda ns, sig: ns.CoMUDF(**com_params(sig)),
                lambda ns, sig: ns.CoMUDF.with_params(**com_params(sig)),
            ),
            W(
                "masks-dense",
                "ApplyMasksUDF x4 dense",
                dense_ref,
                _finish_default({"intensity": "cat"}),
                {"intensity": 1e-5},
                dense_masks,
                dense_masks,
            ),
            W(
                "com-full",
                "CoMUDF whole frame",
                np_com_full,
                _finish_default({"raw_com": "cat"}),
                {"raw_com": 1e-5},
                lambda ns, sig: ns.CoMUDF(),
                lambda ns, sig: ns.CoMUDF.with_params(),
            ),
            W(
                "empty",
                "empty process_frame",
                np_empty,
                lambda parts: {},
                {},
                lambda ns, sig: ns.EmptyFrame(),
                lambda ns, sig: ns.EmptyFrame(),
                frame_udf=True,
            ),
            W(
                "busy",
                "1 ms/frame (frame)",
                np_busy,
                _finish_default({"total": "cat"}),
                {"total": 1e-9},
                lambda ns, sig: ns.Busy(ms=1.0),
                lambda ns, sig: ns.Busy(ms=1.0),
                dataset="small",
                frame_udf=True,
            ),
        ]
    }


def reference_key(w: Workload, key: str) -> str:
    """The reference's name for a result buffer (SumOverSig's ``pixelsum`` is a sig-sum)."""
    return {"pixelsum": "intensity"}.get(key, key)


def check(w: Workload, got: dict, ref: dict) -> str | None:
    """None when ``got`` matches the reference, else a message saying what differs.

    Examples
    --------
    >>> w = workloads(lambda d: None)["max"]
    >>> check(w, {"maxbuf": np.ones(3)}, {"maxbuf": np.ones(3)}) is None
    True
    >>> check(w, {"maxbuf": np.zeros(3)}, {"maxbuf": np.ones(3)})[:30]
    'maxbuf: 3 of 3 values differ ('
    """
    for key, rtol in w.compare.items():
        if key not in got:
            return f"missing result {key!r} (has {sorted(got)})"
        a = np.asarray(got[key], dtype=np.float64)
        b = np.asarray(ref[reference_key(w, key)], dtype=np.float64)
        if a.size != b.size:
            return f"{key}: {a.size} values, reference has {b.size}"
        a = a.reshape(-1)
        b = b.reshape(-1)
        scale = np.nanmax(np.abs(b)) if b.size else 0.0
        ok = np.isclose(a, b, rtol=rtol, atol=rtol * scale, equal_nan=True)
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            return (
                f"{key}: {int((~ok).sum())} of {a.size} values differ (first at {i}: "
                f"{a[i]!r} vs reference {b[i]!r}, rtol={rtol})"
            )
    return None


def frame_bytes(mm) -> int:
    return math.prod(mm.shape[1:]) * mm.dtype.itemsize
