"""Optional compiled kernel for :func:`udfwidgets.corrections.correct_tile` (numba).

One pass per frame converts, subtracts the dark frame, multiplies by the gain
and then patches the excluded pixels from their valid neighbours while the
frame is still in cache; NumPy needs three passes over the tile. The results
are the same as NumPy's, operation for operation in the output dtype. Used
when numba can be imported (``pip install 'udfwidgets[fast]'``) and not
disabled with the environment variable ``UDFWIDGETS_NUMBA=0``; otherwise
:mod:`udfwidgets.corrections` uses NumPy.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["get_kernel", "flat_tables"]

_KERNEL = None
_TRIED = False


def get_kernel():
    """The compiled kernel, or None (numba missing or disabled)."""
    global _KERNEL, _TRIED
    if _TRIED:
        return _KERNEL
    _TRIED = True
    if os.environ.get("UDFWIDGETS_NUMBA", "1") == "0":
        return None
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(cache=True, nogil=True)
    def kernel(frames, out, dark, gain, use_dark, use_gain, targets, nbidx, nbcount):
        n, npix = out.shape
        buf = np.empty(nbidx.shape[1] + 1, dtype=out.dtype)
        for i in range(n):
            fi = frames[i]
            oi = out[i]
            for p in range(npix):
                v = out.dtype.type(fi[p])
                if use_dark:
                    v = v - dark[p]
                if use_gain:
                    v = v * gain[p]
                oi[p] = v
            for t in range(targets.shape[0]):
                k = nbcount[t]
                if k == 0:
                    oi[targets[t]] = 0
                    continue
                for j in range(k):  # insertion sort of the valid neighbours
                    x = oi[nbidx[t, j]]
                    m = j
                    while m > 0 and buf[m - 1] > x:
                        buf[m] = buf[m - 1]
                        m -= 1
                    buf[m] = x
                if k % 2:
                    oi[targets[t]] = buf[k // 2]
                else:
                    oi[targets[t]] = (buf[k // 2 - 1] + buf[k // 2]) / out.dtype.type(2)
        return out

    _KERNEL = kernel
    return _KERNEL


def flat_tables(tables) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(targets, neighbours (T, 24), counts)`` from the padded tables of corrections.py."""
    targets, idx, counts = [], [], []
    for t, nb, pad, _padval, _even in tables:
        for row in range(len(t)):
            valid = nb[row] if pad is None else nb[row][~pad[row]]
            targets.append(int(t[row]))
            counts.append(len(valid))
            idx.append(valid)
    width = max([len(v) for v in idx] + [1])
    table = np.zeros((len(idx), width), dtype=np.intp)
    for r, v in enumerate(idx):
        table[r, : len(v)] = v
    return (np.array(targets, dtype=np.intp), table, np.array(counts, dtype=np.intp))
