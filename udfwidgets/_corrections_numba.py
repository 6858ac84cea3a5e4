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
from ._products_numba import product

__all__ = ["kernel", "corrected_sum", "excluded_values", "linear_fold", "HAVE_NUMBA"]


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
def cx(a, b):
    """``(a, b)`` in order: both selected without a branch (a branch on random data
    mispredicts half the time: sort8 ran 4x slower so). Swapped only when ``b < a``
    (a NaN stays where it is)."""
    swap = b < a
    return (b if swap else a), (a if swap else b)


@jit()
def sort_network(buf, size):
    for r in range(size):
        for i in range(r % 2, size - 1, 2):
            buf[i], buf[i + 1] = cx(buf[i], buf[i + 1])


@jit()
def sort8(buf):
    # Batcher's odd-even merge sort of 8 values: 19 compare-exchanges instead of
    # the 36 of the transposition network over 9 (the 8 neighbours of an interior
    # pixel plus one +inf), the most common case by far (an isolated bad pixel).
    # Written out with constant indices, so that the values stay in registers.
    a0, a1, a2, a3 = buf[0], buf[1], buf[2], buf[3]
    a4, a5, a6, a7 = buf[4], buf[5], buf[6], buf[7]
    a0, a1 = cx(a0, a1)
    a2, a3 = cx(a2, a3)
    a4, a5 = cx(a4, a5)
    a6, a7 = cx(a6, a7)
    a0, a2 = cx(a0, a2)
    a1, a3 = cx(a1, a3)
    a4, a6 = cx(a4, a6)
    a5, a7 = cx(a5, a7)
    a1, a2 = cx(a1, a2)
    a5, a6 = cx(a5, a6)
    a0, a4 = cx(a0, a4)
    a1, a5 = cx(a1, a5)
    a2, a6 = cx(a2, a6)
    a3, a7 = cx(a3, a7)
    a2, a4 = cx(a2, a4)
    a3, a5 = cx(a3, a5)
    a1, a2 = cx(a1, a2)
    a3, a4 = cx(a3, a4)
    a5, a6 = cx(a5, a6)
    buf[0], buf[1], buf[2], buf[3] = a0, a1, a2, a3
    buf[4], buf[5], buf[6], buf[7] = a4, a5, a6, a7


@jit()
def median_of(buf, k, two):
    """The median of the first ``k`` values of ``buf`` (9 or 25 long; sorted in place).

    The k valid neighbours are padded to 9 (or 25) values with -inf and +inf, so
    that the median sits at index m (odd k) or is the mean of m - 1 and m (even
    k), as in the NumPy path; a fixed odd-even transposition network sorts them
    (an insertion sort mispredicted its branches on every pixel).
    """
    if k == 8:  # sorted: the median is the mean of the middle two, as below
        sort8(buf)
        return (buf[3] + buf[4]) / two
    size = 9 if k <= 8 else 25
    low = (size - k) // 2
    for j in range(k, size):
        if j < k + low:
            buf[j] = -np.inf
        else:
            buf[j] = np.inf
    if size == 9:
        sort_network(buf, 9)
    else:
        sort_network(buf, 25)
    m = size // 2
    if k % 2:
        return buf[m]
    return (buf[m - 1] + buf[m]) / two


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
        # only the excluded pixels, from their valid (already corrected) neighbours
        for t in range(targets.shape[0]):
            k = nbcount[t]
            if k == 0:
                oi[targets[t]] = 0
                continue
            for j in range(k):
                buf[j] = oi[nbidx[t, j]]
            oi[targets[t]] = median_of(buf, k, two)
    return out


@jit()
def patched_values(fi, vals, nbdark, nbgain, use_dark, use_gain, targets, nbidx, nbcount, buf):
    """``vals[t]``: the corrected value of excluded pixel ``targets[t]`` of the raw frame ``fi``.

    The same operations in the same dtype (that of ``vals``) as :func:`kernel`:
    each valid neighbour corrected, then the median. ``nbdark`` and ``nbgain`` are
    the dark and gain values of the neighbours (laid out as ``nbidx``), so that
    only the frame is gathered from.
    """
    two = vals.dtype.type(2)
    for t in range(targets.shape[0]):
        k = nbcount[t]
        if k == 0:
            vals[t] = 0
            continue
        if use_dark and use_gain:
            for j in range(k):
                buf[j] = (vals.dtype.type(fi[nbidx[t, j]]) - nbdark[t, j]) * nbgain[t, j]
        elif use_dark:
            for j in range(k):
                buf[j] = vals.dtype.type(fi[nbidx[t, j]]) - nbdark[t, j]
        elif use_gain:
            for j in range(k):
                buf[j] = vals.dtype.type(fi[nbidx[t, j]]) * nbgain[t, j]
        else:
            for j in range(k):
                buf[j] = fi[nbidx[t, j]]
        vals[t] = median_of(buf, k, two)


@jit()
def median8_across(g, out):
    """``out[i]``: the median of ``g[:, i]`` (8 values), for every frame ``i`` at once.

    The compare-exchanges of :func:`sort8` that decide the middle two values,
    applied to all frames elementwise (a loop the compiler vectorises: min and
    max of 8 frames per instruction); the same values as sort8 then the mean.
    """
    two = out.dtype.type(2)
    for i in range(out.shape[0]):
        a0, a1, a2, a3 = g[0, i], g[1, i], g[2, i], g[3, i]
        a4, a5, a6, a7 = g[4, i], g[5, i], g[6, i], g[7, i]
        a0, a1 = cx(a0, a1)
        a2, a3 = cx(a2, a3)
        a4, a5 = cx(a4, a5)
        a6, a7 = cx(a6, a7)
        a0, a2 = cx(a0, a2)
        a1, a3 = cx(a1, a3)
        a4, a6 = cx(a4, a6)
        a5, a7 = cx(a5, a7)
        a1, a2 = cx(a1, a2)
        a5, a6 = cx(a5, a6)
        a0, a4 = cx(a0, a4)
        a1, a5 = cx(a1, a5)
        a2, a6 = cx(a2, a6)
        a3, a7 = cx(a3, a7)
        a2, a4 = cx(a2, a4)
        a3, a5 = cx(a3, a5)
        a3, a4 = cx(a3, a4)
        out[i] = (a3 + a4) / two


@jit()
def excluded_values(frames, vals, nbdark, nbgain, use_dark, use_gain, targets, nbidx, nbcount):
    """``vals (T, n)``: the corrected values of the excluded pixels of every raw frame.

    Target by target over all frames of the tile: the common case of 8 valid
    neighbours (an isolated bad pixel) takes its median for all frames at once
    (:func:`median8_across`); the others frame by frame (:func:`median_of`).
    """
    n = frames.shape[0]
    buf = np.empty(25, dtype=vals.dtype)
    g = np.empty((8, n), dtype=vals.dtype)
    two = vals.dtype.type(2)
    T = vals.dtype.type
    for t in range(targets.shape[0]):
        k = nbcount[t]
        vt = vals[t]
        if k == 0:
            for i in range(n):
                vt[i] = 0
            continue
        if k == 8:
            for j in range(8):
                p = nbidx[t, j]
                d = nbdark[t, j]
                gn = nbgain[t, j]
                gj = g[j]
                if use_dark and use_gain:
                    for i in range(n):
                        gj[i] = (T(frames[i, p]) - d) * gn
                elif use_dark:
                    for i in range(n):
                        gj[i] = T(frames[i, p]) - d
                elif use_gain:
                    for i in range(n):
                        gj[i] = T(frames[i, p]) * gn
                else:
                    for i in range(n):
                        gj[i] = frames[i, p]
            median8_across(g, vt)
            continue
        for i in range(n):
            for j in range(k):
                p = nbidx[t, j]
                if use_dark and use_gain:
                    buf[j] = (T(frames[i, p]) - nbdark[t, j]) * nbgain[t, j]
                elif use_dark:
                    buf[j] = T(frames[i, p]) - nbdark[t, j]
                elif use_gain:
                    buf[j] = T(frames[i, p]) * nbgain[t, j]
                else:
                    buf[j] = frames[i, p]
            vt[i] = median_of(buf, k, two)
    return vals


@jit()
def sum_dark_gain(fi, s, dark, gain, npix):
    for p in range(npix):
        s[p] += (dark.dtype.type(fi[p]) - dark[p]) * gain[p]


@jit()
def sum4_dark_gain(f0, f1, f2, f3, s, dark, gain, npix):
    # the same additions in the same order as four calls of sum_dark_gain
    t = dark.dtype.type
    for p in range(npix):
        d = dark[p]
        g = gain[p]
        s[p] = (((s[p] + (t(f0[p]) - d) * g) + (t(f1[p]) - d) * g) + (t(f2[p]) - d) * g) + (
            t(f3[p]) - d
        ) * g


@jit()
def sum_dark_only(fi, s, dark, npix):
    for p in range(npix):
        s[p] += dark.dtype.type(fi[p]) - dark[p]


@jit()
def sum_gain_only(fi, s, gain, npix):
    for p in range(npix):
        s[p] += gain.dtype.type(fi[p]) * gain[p]


@jit()
def sum_convert(fi, s, dark, npix):
    for p in range(npix):
        s[p] += dark.dtype.type(fi[p])


@jit()
def corrected_sum(
    frames,
    acc,
    s,
    vals,
    block,
    dark,
    gain,
    nbdark,
    nbgain,
    use_dark,
    use_gain,
    targets,
    nbidx,
    nbcount,
):
    """``acc += sum over frames of the corrected frames``, reading each raw value once.

    The same values as :func:`kernel` followed by ``acc += out.sum(axis=0)``: every
    corrected value in the dtype of ``dark`` (the UDF's input dtype), summed frame
    after frame into the tile's sum ``s`` (acc's dtype, as ``ndarray.sum(axis=0)``
    does), which is then added to ``acc``. The excluded pixels' sums are the sums
    of their patched values instead, computed (:func:`excluded_values`) every
    ``block`` frames while those are still in cache; ``vals`` is ``(T, block)``.
    """
    n, npix = frames.shape
    nt = targets.shape[0]
    for p in range(npix):
        s[p] = 0
    st = np.zeros(nt, dtype=s.dtype)
    for b0 in range(0, n, block):
        b1 = min(n, b0 + block)
        i0 = b0
        if use_dark and use_gain:  # four frames a pass: dark, gain and s read once for four
            while i0 + 4 <= b1:
                sum4_dark_gain(
                    frames[i0], frames[i0 + 1], frames[i0 + 2], frames[i0 + 3], s, dark, gain, npix
                )
                i0 += 4
        for i in range(i0, b1):
            fi = frames[i]
            if use_dark and use_gain:
                sum_dark_gain(fi, s, dark, gain, npix)
            elif use_dark:
                sum_dark_only(fi, s, dark, npix)
            elif use_gain:
                sum_gain_only(fi, s, gain, npix)
            else:
                sum_convert(fi, s, dark, npix)
        if nt:
            v = vals[:, : b1 - b0]
            excluded_values(
                frames[b0:b1], v, nbdark, nbgain, use_dark, use_gain, targets, nbidx, nbcount
            )
            for t in range(nt):
                for i in range(b1 - b0):
                    st[t] += v[t, i]
    for t in range(nt):
        s[targets[t]] = st[t]
    for p in range(npix):
        acc[p] += s[p]
    return acc


@jit()
def linear_fold(
    flat,
    packed,
    out,
    start,
    vals,
    block,
    nbdark,
    nbgain,
    use_dark,
    use_gain,
    targets,
    nbidx,
    nbcount,
):
    """``out += flat @ packed.T`` (:func:`udfwidgets._products_numba.product`) and ``vals (T,
    n)`` the excluded pixels' patched values (:func:`excluded_values`), ``block`` frames at a
    time: the patching gathers from frames the product has just read (in the cache)."""
    n = flat.shape[0]
    for b0 in range(0, n, block):
        b1 = min(n, b0 + block)
        product(flat[b0:b1], packed, out[b0:b1], start)
        if targets.shape[0]:
            excluded_values(
                flat[b0:b1],
                vals[:, b0:b1],
                nbdark,
                nbgain,
                use_dark,
                use_gain,
                targets,
                nbidx,
                nbcount,
            )
    return out
