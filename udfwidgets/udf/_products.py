"""Frame-times-weights products shared by the mask-like UDFs (CoM, virtual detectors)."""

from __future__ import annotations

import numpy as np

from .._numba import enabled

#: float32 products run over blocks of about this many values (512 KiB, so a
#: block stays in the core's L2 cache while BLAS packs and multiplies it) and
#: are summed in float64: on 1 GiB with 4 masks, 1.7x faster than one product
#: per tile, and more accurate than a float32 sum over a whole frame
BLOCK_VALUES = 1 << 17
#: bounds on a block's width in pixels (the upper one bounds the float32 error)
MIN_PIXELS, MAX_PIXELS = 256, 8192
#: the compiled kernel (numba) is used for up to this many weight columns;
#: with more, BLAS's blocked product reads each tile once for all of them
MAX_KERNEL_COLUMNS = 16

_KERNEL = None
_TRIED = False
#: input dtypes the compiled kernel failed on: NumPy does those
_KERNEL_FAILED: set = set()


def get_kernel():
    """The compiled product kernel, or None (numba missing, or ``UDFWIDGETS_NUMBA=0``).

    Examples
    --------
    >>> k = get_kernel()
    >>> k is None or callable(k)
    True
    """
    global _KERNEL, _TRIED
    if not _TRIED:
        _TRIED = True
        if enabled():
            from .._products_numba import product

            _KERNEL = product
    return _KERNEL


def pack_weights(weights: np.ndarray) -> np.ndarray | None:
    """``weights (pixels, k)`` laid out for the compiled kernel, or None to use NumPy.

    The kernel takes the weights as rows, ``(k, pixels)`` float32, with ``k``
    rounded up to a multiple of 4 by rows of zeros. None when there is no
    kernel (numba not installed or disabled) or more than
    ``MAX_KERNEL_COLUMNS`` columns.

    Examples
    --------
    >>> packed = pack_weights(np.ones((5, 3), np.float32))
    >>> packed is None or packed.shape == (4, 5)
    True
    """
    pixels, k = weights.shape
    if k > MAX_KERNEL_COLUMNS or get_kernel() is None:
        return None
    packed = np.zeros((-(-k // 4) * 4, pixels), dtype=np.float32)
    packed[:k] = weights.T
    return packed


def pixel_span(weights: np.ndarray) -> tuple[int, int]:
    """First and one-past-last pixel (row of ``weights``) with a non-zero weight.

    Examples
    --------
    >>> pixel_span(np.array([[0, 0], [1, 0], [0, 0], [0, 2], [0, 0]]))
    (1, 4)
    >>> pixel_span(np.zeros((3, 2)))
    (0, 0)
    """
    rows = np.flatnonzero(np.any(weights != 0, axis=1))
    return (int(rows[0]), int(rows[-1]) + 1) if len(rows) else (0, 0)


def float32_product(
    flat: np.ndarray,
    weights: np.ndarray,
    chunk: int | None = None,
    *,
    start: int = 0,
    packed: np.ndarray | None = None,
) -> np.ndarray:
    """``flat[:, start:start + pixels] @ weights`` in float32 blocks, summed in float64.

    ``flat`` is ``(frames, pixels)`` of any real dtype (blocks are converted
    to float32 one at a time), ``weights`` is ``(pixels, k)`` float32 and
    covers the pixels from ``start`` on. Returns float64 ``(frames, k)``.

    With ``packed`` (:func:`pack_weights` of ``weights``) and a C-contiguous
    ``flat``, the compiled kernel does it in one pass (blocks of
    ``_products_numba.BLOCK`` pixels); otherwise NumPy multiplies blocks of
    ``chunk`` pixels with BLAS, by default about ``BLOCK_VALUES`` values,
    between ``MIN_PIXELS`` and ``MAX_PIXELS`` pixels wide. Either way each
    block is summed in float32 and the blocks in float64: for integer data of
    up to 16 bits and float32 data the relative error is about 1e-7.

    Examples
    --------
    >>> flat = np.arange(12, dtype=np.uint16).reshape(2, 6)
    >>> float32_product(flat, np.ones((6, 1), np.float32), chunk=4)
    array([[15.],
           [51.]])
    """
    n = flat.shape[0]
    pixels, k = weights.shape
    if packed is not None:
        out = _compiled(flat, packed, start)
        if out is not None:
            return out[:, :k]
    flat = flat[:, start : start + pixels]
    if chunk is None:
        chunk = min(MAX_PIXELS, max(MIN_PIXELS, BLOCK_VALUES // max(1, n)))
    out = np.zeros((n, k))
    for i in range(0, pixels, chunk):
        block = flat[:, i : i + chunk]
        if block.dtype != np.float32:
            block = block.astype(np.float32)
        out += block @ weights[i : i + chunk]
    return out


def _compiled(flat: np.ndarray, packed: np.ndarray, start: int) -> np.ndarray | None:
    """The product by the compiled kernel, ``(frames, rows of packed)``; None: use NumPy."""
    kernel = get_kernel()
    if (
        kernel is None
        or flat.dtype in _KERNEL_FAILED
        or flat.dtype.kind not in "iuf"
        or not flat.flags.c_contiguous
    ):
        return None
    out = np.zeros((flat.shape[0], packed.shape[0]))
    try:
        kernel(flat, packed, out, start)
    except Exception:  # a dtype numba cannot compile for
        _KERNEL_FAILED.add(flat.dtype)
        return None
    return out
