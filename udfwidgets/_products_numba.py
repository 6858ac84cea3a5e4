"""The numba kernel of :func:`udfwidgets.udf._products.float32_product`, compiled when numba is installed.

``frames (n, pixels) @ weights`` for a few weight columns (virtual detectors,
centre of mass) in one pass over the frames: two frames at a time meet four
weight rows at a time, in blocks of ``BLOCK`` pixels, converted to float32
on the fly (no converted copy of an integer tile) and summed in float32
inside a block, then in float64, as the NumPy path does. BLAS's sgemm
instead copies (packs) every block of the tile before it multiplies, which
costs as much as reading it: with four weight columns the NumPy path runs at
about half the speed of a plain sum, this kernel at about the same speed.

The only fast-math licences are reassociation (to vectorise the sums) and
fused multiply-adds: NaN and infinity propagate as in NumPy.

Module-level functions so that numba's on-disk cache (``cache=True``) finds
them again in a new process: compiled once per machine and input dtype,
loaded by every new worker process on its first tile.

Examples
--------
>>> import numpy as np
>>> from udfwidgets._products_numba import product
>>> out = np.zeros((2, 4))
>>> w = np.zeros((4, 3), np.float32)
>>> w[0] = 1  # row sums in column 0
>>> product(np.arange(6, dtype=np.uint16).reshape(2, 3), w, out, 0)
>>> out[:, 0]
array([ 3., 12.])
"""

from __future__ import annotations

import numpy as np

from ._numba import HAVE_NUMBA, jit

__all__ = ["product", "HAVE_NUMBA", "BLOCK"]

#: pixels per float32 partial sum (then summed in float64): 16 KiB of float32
#: weights per row, so the four rows of a group stay in the core's L1/L2 cache
BLOCK = 4096


@jit(fastmath={"reassoc", "contract"})
def _pair(r0, r1, w0, w1, w2, w3, out, f, g):
    a0 = a1 = a2 = a3 = np.float32(0)
    c0 = c1 = c2 = c3 = np.float32(0)
    for p in range(len(w0)):
        v = np.float32(r0[p])
        u = np.float32(r1[p])
        q0 = w0[p]
        q1 = w1[p]
        q2 = w2[p]
        q3 = w3[p]
        a0 += v * q0
        a1 += v * q1
        a2 += v * q2
        a3 += v * q3
        c0 += u * q0
        c1 += u * q1
        c2 += u * q2
        c3 += u * q3
    out[f, g] += a0
    out[f, g + 1] += a1
    out[f, g + 2] += a2
    out[f, g + 3] += a3
    out[f + 1, g] += c0
    out[f + 1, g + 1] += c1
    out[f + 1, g + 2] += c2
    out[f + 1, g + 3] += c3


@jit(fastmath={"reassoc", "contract"})
def _single(r0, w0, w1, w2, w3, out, f, g):
    a0 = a1 = a2 = a3 = np.float32(0)
    for p in range(len(w0)):
        v = np.float32(r0[p])
        a0 += v * w0[p]
        a1 += v * w1[p]
        a2 += v * w2[p]
        a3 += v * w3[p]
    out[f, g] += a0
    out[f, g + 1] += a1
    out[f, g + 2] += a2
    out[f, g + 3] += a3


@jit(fastmath={"reassoc", "contract"})
def product(flat, wt, out, start):
    """``out += flat[:, start:start + m] @ wt.T`` for ``wt`` of shape ``(4 * groups, m)``.

    ``flat`` is ``(n, pixels)``, C-contiguous, any real dtype; ``wt`` float32
    C-contiguous; ``out`` float64 ``(n, 4 * groups)``.
    """
    n = flat.shape[0]
    k, m = wt.shape
    for b in range(0, m, BLOCK):
        e = min(m, b + BLOCK)
        for f in range(0, n - 1, 2):
            r0 = flat[f, start + b : start + e]
            r1 = flat[f + 1, start + b : start + e]
            for g in range(0, k, 4):
                _pair(r0, r1, wt[g, b:e], wt[g + 1, b:e], wt[g + 2, b:e], wt[g + 3, b:e], out, f, g)
        if n % 2:
            r0 = flat[n - 1, start + b : start + e]
            for g in range(0, k, 4):
                _single(
                    r0, wt[g, b:e], wt[g + 1, b:e], wt[g + 2, b:e], wt[g + 3, b:e], out, n - 1, g
                )
