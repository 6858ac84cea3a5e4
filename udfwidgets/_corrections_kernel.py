"""Optional compiled kernel for :func:`udfwidgets.corrections.correct_tile` (numba).

One pass per frame converts, subtracts the dark frame and multiplies by the
gain, then patches only the excluded pixels from their valid neighbours while
the frame is still in cache; NumPy needs three passes over the tile. The
pixel loop is written once for each combination of dark and gain, without a
branch inside, so that the compiler vectorises it. The results are the same
as NumPy's, operation for operation in the output dtype (no fast-math). Used
when numba can be imported (``pip install 'udfwidgets[fast]'``) and not
disabled with the environment variable ``UDFWIDGETS_NUMBA=0``; otherwise
:mod:`udfwidgets.corrections` uses NumPy.

The numba functions live in :mod:`udfwidgets._corrections_numba`, imported
only here: compiled once per machine and dtype pair (numba's on-disk cache)
and loaded by each worker process on its first corrected tile.

Examples
--------
>>> from udfwidgets._corrections_kernel import get_kernel
>>> get_kernel() is None or callable(get_kernel())
True
"""

from __future__ import annotations

import numpy as np

from ._numba import enabled

__all__ = ["get_kernel", "flat_tables"]

_KERNEL = None
_TRIED = False


def get_kernel():
    """The compiled kernel, or None (numba missing or disabled).

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
            from ._corrections_numba import kernel

            _KERNEL = kernel
    return _KERNEL


def flat_tables(tables) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(targets, neighbours (T, 24), counts)`` from the padded tables of corrections.py.

    Examples
    --------
    >>> t, nb, c = flat_tables([])
    >>> t.shape, nb.shape, c.shape
    ((0,), (0, 1), (0,))
    """
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
