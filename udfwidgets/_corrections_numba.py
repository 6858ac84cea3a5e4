"""The numba functions of :mod:`udfwidgets._corrections_kernel`, compiled when numba is installed.

Module-level functions so that numba's on-disk cache (``cache=True``) finds
them again in a new process: compiled once per machine and dtype pair, loaded
in a fraction of a second by every new worker. (Closures over other jitted
functions, as this was written before, were compiled again in every process:
3-4 s on a worker's first corrected tile.)

Examples
--------
>>> import numpy as np
>>> from udfwidgets._corrections_numba import kernel  # doctest: +SKIP
>>> none = np.zeros(0, dtype=np.intp)
>>> kernel(np.ones((1, 3), np.uint16), np.empty((1, 3), np.float32), np.ones(3, np.float32),
...        np.ones(3, np.float32), True, False, none, np.zeros((0, 1), np.intp), none)  # doctest: +SKIP
array([[0., 0., 0.]], dtype=float32)
"""

from __future__ import annotations

import numpy as np

from ._numba import HAVE_NUMBA, jit

__all__ = ["kernel", "HAVE_NUMBA"]


@jit()
def convert(fi, oi, npix):
    for p in range(npix):
        oi[p] = fi[p]


@jit()
def dark_gain(fi, oi, dark, gain, npix):
    for p in range(npix):
        oi[p] = (oi.dtype.type(fi[p]) - dark[p]) * gain[p]


@jit()
def dark_only(fi, oi, dark, npix):
    for p in range(npix):
        oi[p] = oi.dtype.type(fi[p]) - dark[p]


@jit()
def gain_only(fi, oi, gain, npix):
    for p in range(npix):
        oi[p] = oi.dtype.type(fi[p]) * gain[p]


@jit()
def sort_network(buf, size):
    for r in range(size):
        for i in range(r % 2, size - 1, 2):
            a = buf[i]
            b = buf[i + 1]
            if b < a:
                a, b = b, a
            buf[i] = a
            buf[i + 1] = b


@jit()
def sort8(buf):
    # Batcher's odd-even merge sort of 8 values: 19 compare-exchanges instead of
    # the 36 of the transposition network over 9 (the 8 neighbours of an interior
    # pixel plus one +inf), the most common case by far (an isolated bad pixel).
    # Written out with constant indices, so that the values stay in registers.
    a0, a1, a2, a3 = buf[0], buf[1], buf[2], buf[3]
    a4, a5, a6, a7 = buf[4], buf[5], buf[6], buf[7]
    a0, a1 = (a1, a0) if a1 < a0 else (a0, a1)
    a2, a3 = (a3, a2) if a3 < a2 else (a2, a3)
    a4, a5 = (a5, a4) if a5 < a4 else (a4, a5)
    a6, a7 = (a7, a6) if a7 < a6 else (a6, a7)
    a0, a2 = (a2, a0) if a2 < a0 else (a0, a2)
    a1, a3 = (a3, a1) if a3 < a1 else (a1, a3)
    a4, a6 = (a6, a4) if a6 < a4 else (a4, a6)
    a5, a7 = (a7, a5) if a7 < a5 else (a5, a7)
    a1, a2 = (a2, a1) if a2 < a1 else (a1, a2)
    a5, a6 = (a6, a5) if a6 < a5 else (a5, a6)
    a0, a4 = (a4, a0) if a4 < a0 else (a0, a4)
    a1, a5 = (a5, a1) if a5 < a1 else (a1, a5)
    a2, a6 = (a6, a2) if a6 < a2 else (a2, a6)
    a3, a7 = (a7, a3) if a7 < a3 else (a3, a7)
    a2, a4 = (a4, a2) if a4 < a2 else (a2, a4)
    a3, a5 = (a5, a3) if a5 < a3 else (a3, a5)
    a1, a2 = (a2, a1) if a2 < a1 else (a1, a2)
    a3, a4 = (a4, a3) if a4 < a3 else (a3, a4)
    a5, a6 = (a6, a5) if a6 < a5 else (a5, a6)
    buf[0], buf[1], buf[2], buf[3] = a0, a1, a2, a3
    buf[4], buf[5], buf[6], buf[7] = a4, a5, a6, a7


@jit()
def kernel(frames, out, dark, gain, use_dark, use_gain, targets, nbidx, nbcount):
    n, npix = out.shape
    buf = np.empty(25, dtype=out.dtype)
    two = out.dtype.type(2)
    for i in range(n):
        fi = frames[i]
        oi = out[i]
        if use_dark and use_gain:
            dark_gain(fi, oi, dark, gain, npix)
        elif use_dark:
            dark_only(fi, oi, dark, npix)
        elif use_gain:
            gain_only(fi, oi, gain, npix)
        else:
            convert(fi, oi, npix)
        # only the excluded pixels: the k valid neighbours padded to 9 (or 25)
        # values with -inf and +inf, so that the median sits at index m (odd k) or
        # is the mean of m - 1 and m (even k), as in the NumPy path; a fixed
        # odd-even transposition network sorts them (an insertion sort
        # mispredicted its branches on every pixel)
        for t in range(targets.shape[0]):
            k = nbcount[t]
            if k == 0:
                oi[targets[t]] = 0
                continue
            if k == 8:  # sorted: the median is the mean of the middle two, as below
                for j in range(8):
                    buf[j] = oi[nbidx[t, j]]
                sort8(buf)
                oi[targets[t]] = (buf[3] + buf[4]) / two
                continue
            size = 9 if k <= 8 else 25
            low = (size - k) // 2
            for j in range(size):
                if j < k:
                    buf[j] = oi[nbidx[t, j]]
                elif j < k + low:
                    buf[j] = -np.inf
                else:
                    buf[j] = np.inf
            if size == 9:
                sort_network(buf, 9)
            else:
                sort_network(buf, 25)
            m = size // 2
            if k % 2:
                oi[targets[t]] = buf[m]
            else:
                oi[targets[t]] = (buf[m - 1] + buf[m]) / two
    return out
