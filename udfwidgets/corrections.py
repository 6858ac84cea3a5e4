"""Detector corrections applied to every frame of a run: dark, gain, excluded pixels.

A :class:`CorrectionSet` is given to ``ctx.run_udf(..., corrections=...)`` (or
set as ``ds.corrections``). The worker applies it once per tile, right where
the tile is converted to the UDFs' input dtype, before any UDF sees it:

``corrected = (frame - dark) * gain``, then every excluded pixel is replaced
by the median of its valid (not excluded) neighbours in the 3x3 neighbourhood,
or, when none of those is valid, in the 5x5 neighbourhood (0 when that has
none either). The neighbour tables are built once per run on the main node.
With numba installed (``pip install 'udfwidgets[fast]'``) a compiled kernel
corrects each frame in one pass (:mod:`udfwidgets._corrections_kernel`);
otherwise NumPy makes three passes over the tile and patches with one gather
and one sort per neighbourhood size. Both give the same values.

Corrected frames are floating point: the UDFs' input dtype becomes
``np.result_type(preferred, dataset dtype, float32)`` (float32 for detectors
of up to 16 bit). The file is never modified.

UDFs that correct their own tiles
---------------------------------
Writing a corrected tile and reading it back costs about as much as a
memory-bound UDF's whole work on float32 data. A UDF may therefore take the
corrections itself, by defining

``raw_tile_processor(self, corrections, raw_dtype)``
    Called once per partition in the worker, after ``preprocess``, only in runs
    with corrections, only for ``process_tile`` UDFs on NumPy tiles, only when
    the class that defines ``process_tile`` defines it too (a subclass that
    overrides ``process_tile`` alone gets corrected tiles), and not when tiles
    split the frame. ``corrections`` is the
    :class:`PreparedCorrections`, ``raw_dtype`` the dtype of the raw tiles.
    Return a function ``process(tile)`` that does :meth:`process_tile`'s work on
    the *raw* (uncorrected, native dtype, read-only) tile, with ``meta`` set as
    for ``process_tile``; or None to get corrected tiles as usual.

Its results must be those of ``process_tile`` on corrected tiles, to float32
rounding. The built-in :class:`~udfwidgets.udf.sum.SumUDF` (:func:`sum_tiles`:
each raw value is read once, corrected and added, bit for bit the per-tile
path's sums), :class:`~udfwidgets.udf.masks.ApplyMasksUDF` and
:class:`~udfwidgets.udf.com.CoMUDF` (:func:`linear_tiles`: the gain folded into
float32 weights, the dark frame's share subtracted, the excluded pixels'
patched values added) do so when the compiled kernels are there (numba), and
not in a subclass that overrides ``process_tile`` (it gets corrected tiles). The
other UDFs of the same run still get the corrected tile, made once per tile.

:func:`find_hot_pixels` and :func:`find_dead_pixels` find bad pixels in the
results of :class:`~udfwidgets.udf.sum.SumUDF` or
:class:`~udfwidgets.udf.stddev.StdDevUDF` and return ``(n, 2)`` coordinate
lists to pass as ``excluded_pixels``.

Examples
--------
>>> import numpy as np
>>> from udfwidgets import Context
>>> from udfwidgets.corrections import CorrectionSet
>>> from udfwidgets.udf.sum import SumUDF
>>> data = np.full((2, 2, 3, 3), 10, dtype=np.uint16)
>>> data[..., 1, 1] = 60000  # a hot pixel
>>> ctx = Context(executor="inline")
>>> ds = ctx.load("memory", data=data)
>>> corr = CorrectionSet(dark=np.full((3, 3), 2.0), excluded_pixels=[(1, 1)])
>>> ctx.run_udf(dataset=ds, udf=SumUDF(), corrections=corr)["intensity"].data
array([[32., 32., 32.],
       [32., 32., 32.],
       [32., 32., 32.]], dtype=float32)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._corrections_kernel import get_kernel

__all__ = [
    "CorrectionSet",
    "CorrectionError",
    "PreparedCorrections",
    "correct_tile",
    "sum_tiles",
    "linear_tiles",
    "resolve_corrections",
    "corrected_dtype",
    "find_hot_pixels",
    "find_dead_pixels",
]


class CorrectionError(ValueError):
    """A correction does not fit the dataset (shape, dtype, values).

    Examples
    --------
    >>> import numpy as np
    >>> CorrectionSet(dark=np.array([[1.0, np.nan], [1.0, 1.0]]))
    Traceback (most recent call last):
    ...
    udfwidgets.corrections.CorrectionError: dark holds NaN or infinite values (e.g. at [[0, 1]]): replace them and list those pixels in excluded_pixels instead
    """


def corrected_dtype(dtype: Any) -> np.dtype:
    """The dtype of corrected frames of a dataset of ``dtype``: at least float32.

    Examples
    --------
    >>> corrected_dtype(np.uint16), corrected_dtype(np.uint32), corrected_dtype(np.float64)
    (dtype('float32'), dtype('float64'), dtype('float64'))
    """
    return np.result_type(np.dtype(dtype), np.float32)


def _as_sig_array(value: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception as e:  # pragma: no cover - exotic array-likes
        raise CorrectionError(f"{what} must be an array of the signal shape ({e})") from None
    if arr.dtype.kind not in "biuf":
        raise CorrectionError(f"{what} must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[:3].tolist()
        raise CorrectionError(
            f"{what} holds NaN or infinite values (e.g. at {bad}): replace them "
            "and list those pixels in excluded_pixels instead"
        )
    return arr


class CorrectionSet:
    """Dark frame, gain map and excluded pixels, applied to every frame of a run.

    Parameters
    ----------
    dark : array_like, optional
        Subtracted from every frame; shape of a frame (the signal shape).
    gain : array_like, optional
        Multiplies every frame after the dark subtraction; the signal shape.
    excluded_pixels : array_like, optional
        Pixels to patch from their neighbours: a bool mask of the signal shape
        (True = excluded), or an ``(n, 2)`` integer array (list) of ``(y, x)``
        pixel coordinates (``(n, 1)`` for 1D frames).

    Notes
    -----
    Nothing is checked against a dataset until the set is used with one
    (:meth:`check`), which happens before any work starts. ``run_udf`` and
    friends use ``ds.corrections`` when ``corrections`` is not given (None);
    ``corrections=False`` runs without any.

    Examples
    --------
    >>> import numpy as np
    >>> corr = CorrectionSet(gain=np.full((4, 4), 2.0), excluded_pixels=[(0, 0), (3, 1)])
    >>> corr
    CorrectionSet(gain=(4, 4), excluded_pixels=2)
    >>> frames = np.arange(32, dtype=np.uint16).reshape(2, 4, 4)
    >>> corr.apply(frames)[0, 0]  # (0, 0): median of its neighbours 2, 8 and 10
    array([8., 2., 4., 6.], dtype=float32)
    """

    def __init__(self, dark: Any = None, gain: Any = None, excluded_pixels: Any = None):
        self.dark = None if dark is None else _as_sig_array(dark, "dark")
        self.gain = None if gain is None else _as_sig_array(gain, "gain")
        self.excluded_pixels = None
        if excluded_pixels is not None:
            arr = np.asarray(excluded_pixels)
            if arr.dtype == bool:
                self.excluded_pixels = arr.copy()
            elif arr.size == 0:
                self.excluded_pixels = np.zeros((0, 2), dtype=np.int64)
            elif arr.dtype.kind in "iu" and arr.ndim == 2:
                self.excluded_pixels = arr.astype(np.int64)
            else:
                raise CorrectionError(
                    "excluded_pixels must be a bool mask of the signal shape or an (n, 2) "
                    f"integer array of (y, x) pixel coordinates, got dtype {arr.dtype} and shape "
                    f"{arr.shape}"
                )

    @property
    def is_empty(self) -> bool:
        """True when the set changes nothing (no dark, no gain, no excluded pixel)."""
        ex = self.excluded_pixels
        no_ex = (
            ex is None or (ex.dtype == bool and not ex.any()) or (ex.dtype != bool and len(ex) == 0)
        )
        return self.dark is None and self.gain is None and no_ex

    def check(self, sig_shape: Sequence[int]) -> None:
        """Raise :class:`CorrectionError` unless every part fits frames of ``sig_shape``.

        Examples
        --------
        >>> CorrectionSet(dark=np.zeros((4, 4))).check((8, 8))
        Traceback (most recent call last):
        ...
        udfwidgets.corrections.CorrectionError: dark has shape (4, 4), but the dataset's frames have shape (8, 8): give a dark frame of the signal shape
        """
        sig = tuple(int(s) for s in sig_shape)
        for what, arr, hint in (
            ("dark", self.dark, "a dark frame"),
            ("gain", self.gain, "a gain map"),
        ):
            if arr is not None and arr.shape != sig:
                raise CorrectionError(
                    f"{what} has shape {arr.shape}, but the dataset's frames "
                    f"have shape {sig}: give {hint} of the signal shape"
                )
        self.excluded_mask(sig)

    def excluded_mask(self, sig_shape: Sequence[int]) -> np.ndarray:
        """The excluded pixels as a bool mask of ``sig_shape``.

        Examples
        --------
        >>> CorrectionSet(excluded_pixels=[(0, 1)]).excluded_mask((2, 2))
        array([[False,  True],
               [False, False]])
        """
        sig = tuple(int(s) for s in sig_shape)
        ex = self.excluded_pixels
        if ex is None:
            return np.zeros(sig, dtype=bool)
        if ex.dtype == bool:
            if ex.shape != sig:
                raise CorrectionError(
                    f"the excluded_pixels mask has shape {ex.shape}, but the "
                    f"dataset's frames have shape {sig}: give a bool mask of "
                    "the signal shape or a list of (y, x) coordinates"
                )
            return ex
        if ex.shape[1] != len(sig):
            raise CorrectionError(
                f"excluded_pixels holds coordinates of {ex.shape[1]} values, "
                f"but the frames have {len(sig)} dimensions {sig}: give "
                f"(n, {len(sig)}) pixel coordinates"
            )
        outside = (ex < 0).any(axis=1) | (ex >= np.array(sig)).any(axis=1)
        if outside.any():
            raise CorrectionError(
                f"excluded_pixels {ex[outside][:3].tolist()} lie outside the frames of shape {sig}"
            )
        mask = np.zeros(sig, dtype=bool)
        mask[tuple(ex.T)] = True
        return mask

    def prepare(self, sig_shape: Sequence[int], dtype: Any) -> PreparedCorrections:
        """Check against frames of ``sig_shape`` and build the per-run state (neighbour tables)."""
        self.check(sig_shape)
        return PreparedCorrections(
            tuple(int(s) for s in sig_shape),
            corrected_dtype(dtype),
            self.dark,
            self.gain,
            self.excluded_mask(sig_shape),
        )

    def apply(self, frames: Any, dtype: Any = None) -> np.ndarray:
        """Corrected copy of ``frames`` (``(..., *sig)``), as the workers compute it.

        ``dtype`` defaults to :func:`corrected_dtype` of the frames' dtype.
        Frames of any dimensionality are accepted if the sig dims are those of
        the corrections (the excluded-pixel mask, dark or gain decide them).
        """
        frames = np.asarray(frames)
        sig_ndim = next((a.ndim for a in (self.dark, self.gain) if a is not None), None)
        if sig_ndim is None:
            ex = self.excluded_pixels
            sig_ndim = 2 if ex is None else (ex.ndim if ex.dtype == bool else ex.shape[1])
        sig = frames.shape[frames.ndim - sig_ndim :]
        state = self.prepare(sig, frames.dtype if dtype is None else dtype)
        flat = frames.reshape((-1,) + sig)
        out = np.empty(flat.shape, dtype=state.dtype if dtype is None else np.dtype(dtype))
        return correct_tile(flat, state, out=out).reshape(frames.shape)

    def __repr__(self) -> str:
        parts = []
        for what in ("dark", "gain"):
            arr = getattr(self, what)
            if arr is not None:
                parts.append(f"{what}={arr.shape}")
        ex = self.excluded_pixels
        if ex is not None:
            parts.append(f"excluded_pixels={int(ex.sum()) if ex.dtype == bool else len(ex)}")
        return f"CorrectionSet({', '.join(parts)})"


def _neighbour_offsets(ndim: int, radius: int) -> np.ndarray:
    offs = np.array(
        [o for o in itertools.product(range(-radius, radius + 1), repeat=ndim) if any(o)],
        dtype=np.int64,
    )
    return offs


#: One group of :func:`_neighbour_tables`: target pixels (flat), neighbour indices, padding
#: mask, padding values, even-count flags (the last three None for pixels set to 0).
NeighbourTable = tuple[
    np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None
]


def _neighbour_tables(excluded: np.ndarray) -> list[NeighbourTable]:
    """``[(targets (g,), neighbours (g, K), pad (g, K), pad values (g, K), even (g,))]``: flat
    pixel indices of the excluded pixels and their valid neighbours, one group per
    neighbourhood size."""
    sig = excluded.shape
    coords = np.argwhere(excluded)
    if not len(coords):
        return []
    flat_ex = excluded.reshape(-1)
    todo = np.ones(len(coords), dtype=bool)
    groups: dict[int, list[tuple[int, np.ndarray]]] = {}
    targets_flat = np.ravel_multi_index(tuple(coords.T), sig)
    for radius in (1, 2):
        offs = _neighbour_offsets(len(sig), radius)
        cand = coords[todo][:, None, :] + offs[None, :, :]  # (m, k, ndim)
        inside = ((cand >= 0) & (cand < np.array(sig))).all(axis=-1)
        clipped = np.clip(cand, 0, np.array(sig) - 1)
        idx = np.ravel_multi_index(tuple(np.moveaxis(clipped, -1, 0)), sig)
        valid = inside & ~flat_ex[idx]
        counts = valid.sum(axis=1)
        rows = np.flatnonzero(todo)
        for j, row in enumerate(rows):
            if counts[j]:
                groups.setdefault(int(counts[j]), []).append(
                    (int(targets_flat[row]), idx[j][valid[j]])
                )
                todo[row] = False
        if not todo.any():
            break
    # All pixels of one neighbourhood size (3x3, 5x5) form one group, padded to K = 2m + 1
    # values (9, 25) with -inf and +inf so that the median sits at sorted index m (odd
    # counts) or is the mean of indices m - 1 and m (even counts: one more +inf than -inf).
    # One gather, one sort (or sorting network) and one assignment per group and tile.
    by_size: dict[int, list] = {}
    for k, items in groups.items():
        by_size.setdefault(9 if k <= 8 else 25, []).extend(items)
    tables: list[NeighbourTable] = []
    for size in sorted(by_size):
        items = by_size[size]
        g = len(items)
        idx = np.zeros((g, size), dtype=np.intp)
        padval = np.zeros((g, size), dtype=np.float64)
        pad = np.zeros((g, size), dtype=bool)
        even = np.zeros(g, dtype=bool)
        for i, (_, nb) in enumerate(items):
            k = len(nb)
            low = (size - k) // 2
            idx[i, :k] = nb
            pad[i, k:] = True
            padval[i, k : k + low] = -np.inf
            padval[i, k + low :] = np.inf
            even[i] = k % 2 == 0
        tables.append((np.array([t for t, _ in items], dtype=np.intp), idx, pad, padval, even))
    if todo.any():  # no valid pixel within 5x5: set to 0
        n0 = int(todo.sum())
        tables.append(
            (targets_flat[todo].astype(np.intp), np.zeros((n0, 0), dtype=np.intp), None, None, None)
        )
    return tables


class PreparedCorrections:
    """A :class:`CorrectionSet` checked against a dataset, with its neighbour tables.

    Built once per run on the main node (:meth:`CorrectionSet.prepare`) and
    sent with every partition task; small (a few signal-sized arrays).

    Examples
    --------
    >>> import numpy as np
    >>> corr = CorrectionSet(dark=np.ones((3, 3)), excluded_pixels=[(1, 1)])
    >>> state = corr.prepare((3, 3), np.uint16)
    >>> state.sig_shape, state.dtype, state.num_excluded
    ((3, 3), dtype('float32'), 1)
    >>> correct_tile(np.full((1, 3, 3), 5, dtype=np.uint16), state)[0, 1]
    array([4., 4., 4.], dtype=float32)
    """

    def __init__(
        self,
        sig_shape: tuple[int, ...],
        dtype: np.dtype,
        dark: np.ndarray | None,
        gain: np.ndarray | None,
        excluded: np.ndarray,
    ):
        self.sig_shape = sig_shape
        self.dtype = np.dtype(dtype)
        self.dark = dark
        self.gain = gain
        self.tables = _neighbour_tables(excluded)
        self.num_excluded = int(excluded.sum())
        self._cast: dict = {}
        self._args: dict = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cast"] = {}
        state["_args"] = {}
        state.pop("_flat", None)
        return state

    def flat_tables(self):
        """The neighbour tables in the form of the compiled kernel (cached)."""
        flat = self.__dict__.get("_flat")
        if flat is None:
            from ._corrections_kernel import flat_tables

            flat = self._flat = flat_tables(self.tables)
        return flat

    def kernel_args(self, dtype: np.dtype) -> tuple:
        """The compiled kernel's arguments after the frames and ``out`` (cached per ``dtype``)."""
        args = self._args.get(dtype)
        if args is None:
            dark, gain = self.arrays_for(dtype)
            empty = np.zeros(1, dtype=dtype)
            args = (
                empty if dark is None else dark.reshape(-1),
                empty if gain is None else gain.reshape(-1),
                dark is not None,
                gain is not None,
                *self.flat_tables(),
            )
            self._args[dtype] = args
        return args

    def fused_args(self, dtype: np.dtype) -> tuple:
        """``(dark, gain, nbdark, nbgain, use_dark, use_gain, targets, nbidx, nbcount)``:
        :meth:`kernel_args` with the dark and gain values of every excluded pixel's
        neighbours laid out as its neighbour table, for the kernels that read raw
        frames (cached per ``dtype``)."""
        key = ("fused", np.dtype(dtype))
        args = self._args.get(key)
        if args is None:
            dark, gain, use_dark, use_gain, targets, nbidx, nbcount = self.kernel_args(dtype)
            nbdark = dark[nbidx] if use_dark else np.zeros(nbidx.shape, dtype)
            nbgain = gain[nbidx] if use_gain else np.zeros(nbidx.shape, dtype)
            args = (dark, gain, nbdark, nbgain, use_dark, use_gain, targets, nbidx, nbcount)
            self._args[key] = args
        return args

    def arrays_for(self, dtype: np.dtype) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Dark and gain in ``dtype`` (cached)."""
        dtype = np.dtype(dtype)
        got = self._cast.get(dtype)
        if got is None:
            got = tuple(None if a is None else a.astype(dtype) for a in (self.dark, self.gain))
            self._cast[dtype] = got
        return got


def correct_tile(
    frames: np.ndarray, state: PreparedCorrections, out: np.ndarray | None = None
) -> np.ndarray:
    """Correct ``frames`` ``(n, *sig)`` (any dtype) into ``out`` (a float array) and return it.

    With numba installed this is one compiled pass per frame
    (:mod:`udfwidgets._corrections_kernel`); otherwise three NumPy passes over
    the tile and one gather and sort per neighbourhood size for the patching.
    Both give the same values.

    Examples
    --------
    >>> corr = CorrectionSet(dark=np.ones((2, 2))).prepare((2, 2), np.uint16)
    >>> correct_tile(np.full((1, 2, 2), 5, dtype=np.uint16), corr)
    array([[[4., 4.],
            [4., 4.]]], dtype=float32)
    """
    if out is None:
        out = np.empty(frames.shape, dtype=state.dtype)
    n = len(out)
    if n and _compiled(frames, out, state):
        return out
    dark, gain = state.arrays_for(out.dtype)
    # three in-place passes over the tile beat one mixed-dtype np.subtract(frames, dark, out)
    np.copyto(out, frames, casting="unsafe")
    if dark is not None:
        np.subtract(out, dark, out=out)
    if gain is not None:
        np.multiply(out, gain, out=out)
    if state.tables and n:
        flat = out.reshape(n, -1)
        for targets, neighbours, pad, padval, even in state.tables:
            flat[:, targets] = _median_of(flat, neighbours, pad, padval, even)
    return out


#: (frames dtype, out dtype) pairs the compiled kernel failed on: NumPy does those
_KERNEL_FAILED: set = set()


def _compiled(frames, out, state) -> bool:
    """Correct with the compiled kernel (numba) when there is one; False: use NumPy."""
    kernel = get_kernel()
    key = (frames.dtype, out.dtype)
    if kernel is None or key in _KERNEL_FAILED or not out.flags.c_contiguous:
        return False
    n = len(out)
    if not frames.flags.c_contiguous:
        frames = np.ascontiguousarray(frames)
    try:
        kernel(frames.reshape(n, -1), out.reshape(n, -1), *state.kernel_args(out.dtype))
    except Exception:  # a dtype numba cannot compile for (complex, bool...)
        _KERNEL_FAILED.add(key)
        return False
    return True


def _median_of(flat: np.ndarray, neighbours: np.ndarray, pad, padval, even) -> np.ndarray | int:
    """Per frame, the median of the valid values among ``flat[:, neighbours[i]]``: ``(n, g)``."""
    g, size = neighbours.shape
    if size == 0:
        return 0
    m = size // 2
    vals = np.take(flat, neighbours.reshape(-1), axis=1).reshape(len(flat), g, size)
    np.copyto(vals, padval, where=pad, casting="unsafe")
    if size <= 9 and len(flat) * g > 2048:
        # many pixels: an odd-even transposition network of elementwise min/max over
        # (n, g) planes costs fewer operations than sorting every row
        cols = [vals[..., j] for j in range(size)]
        for r in range(size):
            for i in range(r % 2, size - 1, 2):
                lo = np.minimum(cols[i], cols[i + 1])
                np.maximum(cols[i], cols[i + 1], out=cols[i + 1])
                cols[i] = lo
        mid_lo, mid = cols[m - 1], cols[m]
    else:
        vals.sort(axis=-1)
        mid_lo, mid = vals[..., m - 1], vals[..., m]
    if not even.any():
        return mid
    return np.where(even, (mid_lo + mid) / 2, mid)


# --- UDFs that take the corrections themselves (raw tiles) ------------------------------
#: Raw dtypes the fused kernels read (others: the corrected per-tile path)
_RAW_KINDS = "uif"

#: Raw frames between two patchings of the excluded pixels from their neighbours: the
#: gathers then read frames still in the cache (from main memory they cost 2-3x as much).
#: Both SumUDF's kernel (it sums 4 frames a pass) and the linear UDFs' products (they
#: re-read their weights for every block) patch every 4 frames at least.
PATCH_BLOCK_BYTES = 256 << 10


def sum_tiles(state: PreparedCorrections, raw_dtype: Any, dtype: Any):
    """``add(frames, acc)``: ``acc += corrected frames summed over axis 0``, in one pass.

    For :meth:`SumUDF.raw_tile_processor <udfwidgets.udf.sum.SumUDF.raw_tile_processor>`.
    The same values as correcting the tile into ``dtype`` (the UDF's input dtype) with
    :func:`correct_tile` and adding ``tile.sum(axis=0, dtype=acc.dtype)`` to ``acc``,
    without writing the corrected tile: each raw value is read once, corrected and added.
    None when the compiled kernel cannot do it (numba missing or disabled, a raw dtype
    other than native-order integers or floats): then the UDF gets corrected tiles.

    Examples
    --------
    >>> corr = CorrectionSet(dark=np.ones((2, 2)), gain=np.full((2, 2), 2.0))
    >>> state = corr.prepare((2, 2), np.uint16)
    >>> add = sum_tiles(state, np.uint16, np.float32)
    >>> acc = np.zeros((2, 2), np.float32)
    >>> frames = np.full((3, 2, 2), 5, np.uint16)
    >>> if add is not None:
    ...     add(frames, acc)
    ... else:  # no numba: what the worker does instead
    ...     acc += correct_tile(frames, state).sum(axis=0)
    >>> acc
    array([[24., 24.],
           [24., 24.]], dtype=float32)
    """
    dtype = np.dtype(dtype)
    raw = np.dtype(raw_dtype)
    if get_kernel() is None or raw.kind not in _RAW_KINDS or not raw.isnative:
        return None
    if dtype.kind != "f":
        return None
    from ._corrections_numba import corrected_sum

    args = state.fused_args(dtype)
    targets = args[6]
    scratch: dict = {}
    # excluded pixels are patched every `block` raw frames, while those are in the L2 cache
    frame_bytes = max(1, int(np.prod(state.sig_shape)) * raw.itemsize)
    block = max(4, PATCH_BLOCK_BYTES // frame_bytes // 4 * 4)  # the kernel sums 4 frames a pass

    def add(frames: np.ndarray, acc: np.ndarray) -> None:
        if not frames.flags.c_contiguous:
            frames = np.ascontiguousarray(frames)
        n = len(frames)
        s = scratch.get(acc.dtype)
        if s is None:
            s = scratch[acc.dtype] = (
                np.empty(acc.size, acc.dtype),
                np.empty((len(targets), block), dtype),
            )
        flat_acc = acc.reshape(-1)  # a view: acc is a whole C-contiguous buffer
        corrected_sum(frames.reshape(n, -1), flat_acc, s[0], s[1], block, *args)

    return add


def linear_tiles(state: PreparedCorrections, raw_dtype: Any, weights: np.ndarray, start: int = 0):
    """``product(flat)``: the corrected frames times ``weights``, from the raw frames.

    For UDFs linear in the frame (:class:`~udfwidgets.udf.masks.ApplyMasksUDF`,
    :class:`~udfwidgets.udf.com.CoMUDF`): with ``w`` the float32 ``weights
    (pixels, k)`` of the pixels from ``start`` on, the corrected frame ``c = (x -
    dark) * gain`` (excluded pixels patched) gives ``c @ w = x @ (gain * w) - (dark *
    gain) @ w``, except at the excluded pixels, whose weights are zeroed in the
    first product and whose patched values (computed from their raw neighbours,
    as :func:`correct_tile` does) are added times their weights. One pass over
    the raw frames (:func:`~udfwidgets.udf._products.float32_product`, float32
    blocks summed in float64) and no corrected copy. Returns ``(frames, k)``
    float64 like ``float32_product(corrected flat, weights, start=start)``, equal
    to float32 rounding of the raw products (relative to ``x @ |gain * w|``).
    None when the compiled kernels cannot do it: then the UDF gets corrected tiles.

    Examples
    --------
    >>> corr = CorrectionSet(dark=np.ones((2, 2)), gain=np.full((2, 2), 2.0),
    ...                      excluded_pixels=[(0, 0)])
    >>> state = corr.prepare((2, 2), np.uint16)
    >>> w = np.ones((4, 1), np.float32)
    >>> frames = np.array([[[9, 5], [5, 7]]], np.uint16)
    >>> product = linear_tiles(state, np.uint16, w)
    >>> flat = frames.reshape(1, -1)
    >>> product(flat) if product is not None else correct_tile(frames, state).reshape(1, -1) @ w.astype(float)
    array([[36.]])
    """
    from .udf._products import pack_weights

    raw = np.dtype(raw_dtype)
    if get_kernel() is None or raw.kind not in _RAW_KINDS or not raw.isnative:
        return None
    if weights.dtype != np.float32 or state.dtype != np.float32 or weights.ndim != 2:
        return None
    from ._corrections_numba import excluded_values, linear_fold
    from .udf._products import float32_product

    pixels, k = weights.shape
    span = slice(start, start + pixels)
    dark, gain = state.dark, state.gain
    w64 = weights.astype(np.float64)
    wg = w64.copy() if gain is None else w64 * gain.reshape(-1)[span, None]
    kargs = state.fused_args(np.dtype(np.float32))[2:]  # for excluded_values
    targets = kargs[4]
    local = targets - start
    inside = (local >= 0) & (local < pixels)
    wg[local[inside]] = 0  # excluded pixels: their patched values instead
    offset = np.zeros(k) if dark is None else dark.reshape(-1)[span] @ wg
    wg32 = wg.astype(np.float32)
    packed = pack_weights(wg32)
    w_targets = np.zeros((len(targets), k))
    w_targets[inside] = w64[local[inside]]
    patch = bool(inside.any())

    block = max(4, PATCH_BLOCK_BYTES // max(1, int(np.prod(state.sig_shape)) * raw.itemsize))

    def product(flat: np.ndarray) -> np.ndarray:
        if not flat.flags.c_contiguous:
            flat = np.ascontiguousarray(flat)
        if packed is not None:  # one compiled pass (raw dtypes: _RAW_KINDS, checked above)
            out = np.zeros((len(flat), packed.shape[0]))
            vals = np.empty((len(targets), len(flat)), np.float32)
            linear_fold(flat, packed, out, start, vals, block, *kargs)
            sums = out[:, :k]
            if patch:
                sums += vals.T @ w_targets
        elif not patch:
            sums = float32_product(flat, wg32, start=start, packed=packed)
        else:  # in blocks: the excluded pixels' neighbours are gathered from the cache
            sums = np.empty((len(flat), k))
            vals = np.empty((len(targets), len(flat)), np.float32)
            for b0 in range(0, len(flat), block):
                part = flat[b0 : b0 + block]
                sums[b0 : b0 + block] = float32_product(part, wg32, start=start, packed=packed)
                excluded_values(part, vals[:, b0 : b0 + block], *kargs)
            sums += vals.T @ w_targets
        if dark is not None:
            sums -= offset
        return sums

    return product


def resolve_corrections(corrections: Any, dataset: Any) -> PreparedCorrections | None:
    """What a run applies: ``None`` uses ``dataset.corrections``, ``False`` none at all.

    Raises :class:`CorrectionError` (before any work) when the set does not fit the dataset.

    Examples
    --------
    >>> from udfwidgets.io.memory import MemoryDataSet
    >>> ds = MemoryDataSet(np.zeros((2, 3, 3)))
    >>> resolve_corrections(None, ds) is None
    True
    >>> resolve_corrections(CorrectionSet(gain=np.ones((3, 3))), ds).dtype
    dtype('float64')
    """
    if corrections is None:
        corrections = getattr(dataset, "corrections", None)
    if corrections is None or corrections is False:
        return None
    if isinstance(corrections, PreparedCorrections):
        return corrections
    if not isinstance(corrections, CorrectionSet):
        raise TypeError(
            "corrections must be a udfwidgets.corrections.CorrectionSet, None (use "
            "the dataset's own ds.corrections) or False (no corrections), got "
            f"{type(corrections).__name__}"
        )
    corrections.check(tuple(dataset.shape.sig))  # even an empty set must fit
    if corrections.is_empty:
        return None
    return corrections.prepare(tuple(dataset.shape.sig), dataset.dtype)


# --- finding bad pixels ----------------------------------------------------------------
def _statistic(result: Any, prefer: Sequence[str]) -> tuple[np.ndarray, str]:
    if isinstance(result, dict):
        for key in prefer:
            if key in result:
                return np.asarray(result[key], dtype=np.float64), key
        raise ValueError(
            f"expected the results of SumUDF ('intensity') or StdDevUDF "
            f"({', '.join(repr(p) for p in prefer if p != 'intensity')}), got "
            f"buffers {sorted(result)}"
        )
    arr = np.asarray(result, dtype=np.float64)
    return arr, "array"


def _local_median(img: np.ndarray) -> np.ndarray:
    """Median of each pixel's 3x3 (3 for 1D) neighbourhood without the pixel itself."""
    padded = np.pad(img, 1, mode="reflect") if min(img.shape) > 1 else np.pad(img, 1, mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(padded, (3,) * img.ndim)
    size = 3**img.ndim  # values per window
    win = win.reshape(img.shape + (size,))
    centre = size // 2
    others = np.delete(win, centre, axis=-1)
    return np.median(others, axis=-1)


def _coords(mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask).astype(np.int64)


def find_hot_pixels(result: Any, n_sigma: float = 8.0, min_ratio: float = 2.0) -> np.ndarray:
    """Pixels much brighter than their neighbours, as ``(n, 2)`` ``(y, x)`` coordinates.

    Parameters
    ----------
    result : dict or array_like
        The results of :class:`~udfwidgets.udf.sum.SumUDF` (its
        ``"intensity"``), of :class:`~udfwidgets.udf.stddev.StdDevUDF` (its
        ``"mean"``), or any signal-shaped image of per-pixel totals.
    n_sigma : float
        How far above the local median a hot pixel is, in robust standard
        deviations of the residuals ``image - local median`` over the whole
        frame (``1.4826 * median(|residual - median(residual)|)``, which a few
        hot pixels do not inflate). 8 flags almost nothing in Poisson noise.
    min_ratio : float
        A hot pixel is also at least this many times its local median (so
        that a perfectly flat, noise-free image flags nothing by accident).

    The local median of a pixel is the median of its 8 neighbours (edges
    mirrored). Returns coordinates sorted by row, usable as
    ``CorrectionSet(excluded_pixels=...)``.

    Examples
    --------
    >>> img = np.full((5, 5), 100.0)
    >>> img[2, 3] = 1e4
    >>> find_hot_pixels(img)
    array([[2, 3]])
    """
    img, _ = _statistic(result, ("intensity", "mean"))
    local = _local_median(img)
    resid = img - local
    mad = np.median(np.abs(resid - np.median(resid)))
    sigma = 1.4826 * mad
    hot = (resid > n_sigma * sigma) & (img > min_ratio * np.maximum(local, 0)) & (resid > 0)
    return _coords(hot)


def find_dead_pixels(result: Any, rel_threshold: float = 0.1) -> np.ndarray:
    """Pixels that (nearly) never count, as ``(n, 2)`` ``(y, x)`` coordinates.

    A pixel is dead when its value is at most ``rel_threshold`` times the
    median of its 8 neighbours (which must be positive). The value is the
    ``"intensity"`` of :class:`~udfwidgets.udf.sum.SumUDF` results; with
    :class:`~udfwidgets.udf.stddev.StdDevUDF` results both its ``"mean"``
    (a dead pixel) and its ``"std"`` (a stuck pixel: it gives a value, but
    always the same) are tested, and a pixel failing either is dead.

    Examples
    --------
    >>> img = np.full((4, 4), 50.0)
    >>> img[0, 0] = 0
    >>> find_dead_pixels(img)
    array([[0, 0]])
    """
    if isinstance(result, dict) and "std" in result and "intensity" not in result:
        images = [
            np.asarray(result["mean"], dtype=np.float64),
            np.asarray(result["std"], dtype=np.float64),
        ]
    else:
        images = [_statistic(result, ("intensity", "mean"))[0]]
    dead = np.zeros(images[0].shape, dtype=bool)
    for img in images:
        local = _local_median(img)
        dead |= (local > 0) & (img <= rel_threshold * local)
    return _coords(dead)
