"""Apply a stack of masks to every frame: virtual detectors in one matrix product."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..masks import _import_scipy_sparse, is_sparse
from ._products import float32_product, pack_weights, pixel_span
from .base import UDF, UDFMethod
from .buffers import BufferWrapper

__all__ = ["ApplyMasksUDF", "shift_masks"]

_LT_SPARSE = ("scipy.sparse", "scipy.sparse.csc", "sparse.pydata")


class ApplyMasksUDF(UDF):
    """The dot product of every frame with each of a stack of masks.

    Result buffer ``intensity`` (kind ``"nav"``, ``extra_shape=(n_masks,)``):
    ``intensity[..., k]`` is ``sum(frame * mask_k)`` for every frame, so a
    disk mask gives a bright-field image and a ring an annular dark-field
    image (virtual detectors).

    The masks are built once per partition (in :meth:`get_task_data`, on the
    worker) as a ``(n_masks, pixels)`` matrix; each tile of frames is then one
    matrix product ``tile.reshape(n, -1) @ masks.T``. In float32 (the default
    for float32 or 16-bit data and float32 or bool masks) the product covers
    only the pixels from the first to the last one any mask touches, and runs
    in blocks of pixels whose float32 sums are summed in float64: faster, and
    more accurate than one float32 sum over the frame. With numba installed
    (``pip install 'udfwidgets[fast]'``) and up to 16 masks, a compiled kernel
    does this in one pass over the tile, at about the speed of a plain sum of
    the frames; otherwise BLAS multiplies blocks of about 512 KiB (which stay
    in cache).

    Parameters
    ----------
    mask_factories : callable or sequence of callables, optional
        Functions without arguments, each returning one mask of the signal
        shape (dense or ``scipy.sparse``); or one function returning a stack
        ``(n_masks, *sig)``. They
        are called on the workers, so a big mask never travels. Give either
        this or ``masks``.
    masks : array_like or scipy.sparse matrix, optional
        A mask of the signal shape, a stack ``(n_masks, *sig)``, a sparse
        matrix ``(n_masks, pixels)``, or a list of any of these.
    dtype : numpy dtype, optional
        Result and computation dtype; by default
        ``np.result_type(input dtype, mask dtype)`` (float32 for float32
        masks on integer detectors).
    use_sparse : bool or str, optional
        Multiply with a ``scipy.sparse`` matrix (needs SciPy; pays off when
        the masks cover a small part of the frame). ``None`` (default): sparse
        if any given mask is sparse. LiberTEM's ``"scipy.sparse"``,
        ``"scipy.sparse.csc"`` and ``"sparse.pydata"`` mean True.
    mask_count : int, optional
        How many masks the factories make (LiberTEM's keyword). With it, the
        factories run only on the workers, never on the main node.
    mask_dtype : numpy dtype, optional
        The dtype of the masks (LiberTEM's keyword); by default that of the
        masks made.
    preferred_dtype : numpy dtype, optional
        The dtype frames should arrive in (LiberTEM's keyword).
    shifts : (2,) array_like of int or aux data, optional
        Shift the masks by ``(dy, dx)`` pixels relative to the frames (mask
        pixel ``p - shift`` meets frame pixel ``p``; pixels shifted out count
        as 0): one constant shift, or per frame as
        ``ApplyMasksUDF.aux_data(shifts, kind="nav", extra_shape=(2,), dtype=int)``.
    use_torch, backends
        LiberTEM's keywords, accepted and ignored (NumPy on the CPU).

    Examples
    --------
    >>> import numpy as np
    >>> from functools import partial
    >>> from udfwidgets import Context, masks
    >>> from udfwidgets.udf.masks import ApplyMasksUDF
    >>> ctx = Context(executor="inline")
    >>> ds = ctx.load("memory", data=np.ones((2, 3, 16, 16), dtype=np.uint16))
    >>> udf = ApplyMasksUDF(mask_factories=[
    ...     partial(masks.disk, (16, 16), centre=(8, 8), radius=2),
    ...     partial(masks.ring, (16, 16), centre=(8, 8), inner=4, outer=6)])
    >>> res = ctx.run_udf(dataset=ds, udf=udf)
    >>> res["intensity"].data.shape, res["intensity"].data[0, 0]
    ((2, 3, 2), array([13., 64.], dtype=float32))
    """

    ACCEPTS_SIG_SLICED_TILES = False  # masks over the whole frame

    def __init__(
        self,
        mask_factories: Callable | Sequence[Callable] | None = None,
        masks: Any = None,
        dtype: Any = None,
        use_sparse: bool | str | None = None,
        mask_count: int | None = None,
        mask_dtype: Any = None,
        preferred_dtype: Any = None,
        shifts: Any = None,
        use_torch: Any = None,
        backends: Any = None,
    ):
        if (mask_factories is None) == (masks is None):
            raise ValueError(
                "ApplyMasksUDF needs exactly one of mask_factories=[callables] "
                "or masks=array (stack of masks), got "
                + ("both" if masks is not None else "neither")
            )
        if mask_factories is not None:
            facs = [mask_factories] if callable(mask_factories) else mask_factories
            try:
                facs = list(facs)
            except TypeError:
                raise TypeError(
                    "mask_factories must be a callable or a list of callables, got "
                    f"{type(mask_factories).__name__}"
                ) from None
            if not facs:
                raise ValueError("mask_factories is empty: give at least one mask factory")
            for i, f in enumerate(facs):
                if not callable(f):
                    raise TypeError(
                        f"mask_factories[{i}] is a {type(f).__name__}, not a callable; "
                        "pass functions returning masks, or the arrays as masks="
                    )
        if dtype is not None:
            try:
                np.dtype(dtype)
            except TypeError:
                raise ValueError(f"dtype must be a NumPy dtype or None, got {dtype!r}") from None
        if use_sparse not in (None, True, False) and use_sparse not in _LT_SPARSE:
            raise ValueError(
                f"use_sparse must be True, False, None or one of {_LT_SPARSE}, got {use_sparse!r}"
            )
        if mask_count is not None and (
            isinstance(mask_count, bool)
            or not isinstance(mask_count, (int, np.integer))
            or mask_count < 1
        ):
            raise ValueError(f"mask_count must be a positive integer, got {mask_count!r}")
        for name, dt in (("mask_dtype", mask_dtype), ("preferred_dtype", preferred_dtype)):
            if dt is not None:
                try:
                    np.dtype(dt)
                except TypeError:
                    raise ValueError(f"{name} must be a NumPy dtype or None, got {dt!r}") from None
        if shifts is not None and not isinstance(shifts, BufferWrapper):
            arr = np.asarray(shifts)
            if arr.shape != (2,) or arr.dtype.kind not in "iu":
                raise ValueError(
                    f"shifts must be two integers (dy, dx) or per-frame aux data "
                    f"(ApplyMasksUDF.aux_data(..., kind='nav', extra_shape=(2,))), "
                    f"got {shifts!r}"
                )
        # per-frame shifts (aux data): on workers params.shifts becomes the frame's view
        self._per_frame_shifts = isinstance(shifts, BufferWrapper)
        super().__init__(
            mask_factories=mask_factories,
            masks=masks,
            dtype=dtype,
            use_sparse=use_sparse,
            mask_count=mask_count,
            mask_dtype=mask_dtype,
            preferred_dtype=preferred_dtype,
            shifts=shifts,
            use_torch=use_torch,
            backends=backends,
        )

    # --- masks -------------------------------------------------------------------
    def _raw_masks(self) -> list:
        """The masks as given or made by the factories: ``(k, pixels)`` arrays or sparse."""
        p = self.params
        if p.masks is not None:
            if isinstance(p.masks, (list, tuple)):
                items, what = list(p.masks), "masks[{}]"
            else:
                items, what = [p.masks], "masks"
        elif callable(p.mask_factories):
            items, what = [p.mask_factories()], "mask_factories()"
        else:
            items = [f() for f in p.mask_factories]
            what = "mask_factories[{}]()"
        sig = tuple(self.meta.dataset_shape.sig)
        size = int(np.prod(sig))
        out = []
        for i, m in enumerate(items):
            name = what.format(i)
            if is_sparse(m):
                if tuple(m.shape) == sig:  # one 2D mask
                    m = m.reshape(1, size)
                if m.ndim != 2 or m.shape[1] != size:
                    raise ValueError(
                        f"{name}: a sparse mask must have the signal shape {sig} or "
                        f"shape (n_masks, {size}), got {m.shape}"
                    )
                out.append(m)
                continue
            arr = np.asarray(m)
            if arr.shape == sig:
                arr = arr[None]
            if arr.ndim != len(sig) + 1 or arr.shape[1:] != sig:
                raise ValueError(
                    f"{name} has shape {arr.shape}, but a mask must have the signal "
                    f"shape {sig} (or be a stack (n_masks, *{sig}))"
                )
            if arr.dtype.kind not in "biuf":
                raise ValueError(
                    f"{name} has dtype {arr.dtype}; masks must be bool, integer or float"
                )
            out.append(arr.reshape(arr.shape[0], size))
        if sum(m.shape[0] for m in out) == 0:
            raise ValueError("no masks given: the mask stack is empty")
        return out

    def _prepared(self):
        """``(matrix (n_masks, pixels), is_sparse)``, built once and cached on this copy."""
        cached = self.__dict__.get("_prepared_masks")
        if cached is not None:
            return cached
        raw = self._raw_masks()
        count = self.params.mask_count
        if count is not None and sum(m.shape[0] for m in raw) != count:
            raise ValueError(
                f"mask_count={count}, but the masks given hold {sum(m.shape[0] for m in raw)} masks"
            )
        any_sparse = any(is_sparse(m) for m in raw)
        use_sparse = self.params.use_sparse
        if isinstance(use_sparse, str):
            use_sparse = True
        sparse = any_sparse if use_sparse is None else use_sparse
        if self.params.shifts is not None:
            sparse = False  # shifted masks are cut from a dense stack
        dtype = self._compute_dtype(raw)
        if sparse:
            sp = _import_scipy_sparse()
            matrix = sp.vstack([sp.csr_matrix(m) for m in raw], format="csr").astype(dtype)
        else:
            matrix = np.concatenate([m.toarray() if is_sparse(m) else m for m in raw]).astype(dtype)
        self.__dict__["_prepared_masks"] = (matrix, sparse)
        return matrix, sparse

    def _compute_dtype(self, raw) -> np.dtype:
        if self.params.dtype is not None:
            return np.dtype(self.params.dtype)
        if self.params.mask_dtype is not None:
            mask_dtype = np.dtype(self.params.mask_dtype)
        else:
            mask_dtype = np.result_type(*[m.dtype for m in raw])
        return np.result_type(self.meta.input_dtype, mask_dtype, np.float32)

    # --- UDF interface -----------------------------------------------------------
    def get_preferred_input_dtype(self):
        if self.params.dtype is not None:
            return np.dtype(self.params.dtype)
        if self.params.preferred_dtype is not None:
            return np.dtype(self.params.preferred_dtype)
        # frames come as stored: a float32 product converts them block by block
        return self.USE_NATIVE_DTYPE

    def get_method(self):
        # per-frame shifts need the frames one by one
        return UDFMethod.FRAME if self._per_frame_shifts else UDFMethod.TILE

    def get_result_buffers(self):
        p = self.params
        if p.mask_count is not None and (p.mask_dtype is not None or p.dtype is not None):
            # count and dtype are known: the factories run on the workers only
            return {
                "intensity": self.buffer(
                    kind="nav", extra_shape=(p.mask_count,), dtype=self._compute_dtype([])
                )
            }
        matrix, _ = self._prepared()
        return {
            "intensity": self.buffer(
                kind="nav", extra_shape=(matrix.shape[0],), dtype=matrix.dtype, axes=["mask"]
            )
        }

    def get_task_data(self):
        if self.meta.on_main_node:  # masks are only needed where frames are processed
            return {}
        matrix, sparse = self._prepared()
        shifts = self.params.shifts
        if shifts is not None:
            sig = tuple(self.meta.dataset_shape.sig)
            stack = np.asarray(matrix).reshape((matrix.shape[0],) + sig)
            if self._per_frame_shifts:
                return {"stack": stack, "masks": None, "sparse": False, "span": None}
            matrix = shift_masks(stack, np.asarray(shifts)).reshape(matrix.shape[0], -1)
        if sparse or matrix.dtype != np.float32:
            return {"masks": matrix, "sparse": sparse, "span": None}
        # float32: (pixels, n_masks) over the pixels any mask covers, for float32_product
        start, stop = pixel_span(matrix.T)
        weights32 = np.ascontiguousarray(matrix[:, start:stop].T)
        return {
            "masks": None,
            "sparse": False,
            "span": (start, stop),
            "weights32": weights32,
            "packed": pack_weights(weights32),
        }

    def get_tiling_preferences(self):
        # BLAS multiplies a 64-frame tile by a few masks about twice as fast
        # per byte as a 16-frame one (measured with OpenBLAS on 128x128 frames)
        return {"total_size": 4 << 20}

    def process_tile(self, tile):
        flat = tile.reshape(tile.shape[0], -1)
        td = self.task_data
        m = td.masks
        if td.span is not None:
            self.results.intensity[:] = float32_product(
                flat, td.weights32, start=td.span[0], packed=td.packed
            )
            return
        if flat.dtype != m.dtype:
            flat = flat.astype(m.dtype)
        if td.sparse:
            # (n_masks, pixels) @ (pixels, frames): sparse times dense is dense
            self.results.intensity[:] = np.asarray(m @ flat.T).T
        else:
            np.matmul(flat, m.T, out=self.results.intensity)

    def raw_tile_processor(self, corrections, raw_dtype):
        """Apply the masks to raw tiles, folding the corrections into them.

        The protocol of :mod:`udfwidgets.corrections` ("UDFs that correct their own
        tiles"): with float32 masks (the default for detectors of up to 16 bit) the
        masks are multiplied by the gain, the dark frame's share is subtracted and
        the excluded pixels' patched values are added
        (:func:`~udfwidgets.corrections.linear_tiles`). None (corrected tiles) for
        other dtypes, sparse masks, or without the compiled kernels.

        Examples
        --------
        >>> callable(ApplyMasksUDF(masks=[np.ones((2, 2))]).raw_tile_processor)
        True
        """
        td = self.task_data
        if getattr(td, "span", None) is None:
            return None
        from ..corrections import linear_tiles

        product = linear_tiles(corrections, raw_dtype, td.weights32, td.span[0])
        if product is None:
            return None

        def process(tile):
            self.results.intensity[:] = product(tile.reshape(tile.shape[0], -1))

        return process

    def process_frame(self, frame):
        # only with per-frame shifts (get_method): the overlap of frame and shifted masks
        stack = self.task_data.stack
        dy, dx = (int(v) for v in np.asarray(self.params.shifts).reshape(-1)[:2])
        h, w = stack.shape[1:]
        fy, my = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy), slice(-dy, h))
        fx, mx = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx), slice(-dx, w))
        part = frame[fy, fx]
        out = self.results.intensity
        if part.size == 0:
            out[:] = 0
            return
        out[:] = np.tensordot(
            stack[:, my, mx], part.astype(stack.dtype, copy=False), axes=((1, 2), (0, 1))
        )


def shift_masks(stack: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Masks ``(n, h, w)`` moved by ``shift = (dy, dx)`` pixels, zeros shifted in.

    Examples
    --------
    >>> shift_masks(np.eye(3)[None], np.array([0, 1]))[0].astype(int)
    array([[0, 1, 0],
           [0, 0, 1],
           [0, 0, 0]])
    """
    out = np.zeros_like(stack)
    dy, dx = (int(v) for v in shift)
    h, w = stack.shape[1:]
    if abs(dy) >= h or abs(dx) >= w:
        return out
    src_y = slice(max(0, -dy), h - max(0, dy))
    dst_y = slice(max(0, dy), h - max(0, -dy))
    src_x = slice(max(0, -dx), w - max(0, dx))
    dst_x = slice(max(0, dx), w - max(0, -dx))
    out[:, dst_y, dst_x] = stack[:, src_y, src_x]
    return out
