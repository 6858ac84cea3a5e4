"""The block walk of :mod:`udfwidgets.io.bitshuffle`, compiled when numba is installed.

A chunk written by HDF5's bitshuffle filter with LZ4 (filter 32008, the
DECTRIS standard) is, from the filter's public description:

- a 12-byte header: the chunk's uncompressed size in bytes (uint64,
  big-endian) and the block size in bytes (uint32, big-endian);
- the chunk's elements in blocks of that many bytes; each block is
  bit-shuffled, LZ4-compressed and stored after its compressed size (uint32,
  big-endian); the last block holds the leftover elements rounded down to a
  multiple of 8;
- the last ``elements % 8`` elements, stored as they are.

:func:`walk_blocks` finds where each block starts, and checks on the way
that every block lies inside its chunk: the C decoder that then reads the
blocks trusts the sizes it is given, so a damaged size must be caught here,
before it can send a read past the end of the file. Without numba the same
function runs as plain Python (slower, same result).

Examples
--------
>>> import numpy as np
>>> from udfwidgets._bitshuffle_numba import walk_blocks
>>> chunk = np.frombuffer(bytes([0, 0, 0, 0, 0, 0, 0, 16,   0, 0, 0, 16,  # 16 bytes, one block
...                              0, 0, 0, 2,  0xF0, 0]), np.uint8)        # 2 bytes of LZ4
>>> at, csize = np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64)
>>> walk_blocks(chunk, np.array([0]), np.array([chunk.size]), 1, 16, at, csize)
0
>>> at.tolist(), csize.tolist()  # block 0's compressed bytes begin after its 4-byte size
([[16]], [[2]])
"""

from __future__ import annotations

from ._numba import HAVE_NUMBA, jit

__all__ = ["HAVE_NUMBA", "block_layout", "walk_blocks"]


@jit()
def block_layout(chunk_bytes, block_bytes, elem):  # pragma: no cover - compiled
    """``(full blocks, bytes of the last short block, where the raw tail starts)`` of a chunk."""
    n_elems = chunk_bytes // elem
    block_elems = block_bytes // elem
    full = n_elems // block_elems
    last = (n_elems % block_elems) // 8 * 8 * elem
    return full, last, full * block_bytes + last


@jit()
def walk_blocks(
    data, starts, sizes, elem, chunk_bytes, at, csize
) -> int:  # pragma: no cover - compiled
    """Fill ``at[q, k]`` and ``csize[q, k]``: where block ``k`` of chunk ``q`` begins in ``data``, its size.

    ``data[starts[q] : starts[q] + sizes[q]]`` is chunk ``q``. ``at`` and
    ``csize`` have a row per chunk and a column per block
    (:func:`block_layout`). Returns 0, or ``-(1 + q)`` for chunk ``q``: a chunk
    whose header does not describe ``chunk_bytes`` of ``elem``-byte elements
    in ``at.shape[1]`` blocks, or whose blocks do not fit in it, stops the
    walk: the result is then ``-(1 + q)``.
    """
    n_blocks = at.shape[1]
    for q in range(starts.shape[0]):
        c0 = starts[q]
        c_end = c0 + sizes[q]
        if sizes[q] < 12 or c0 < 0 or c_end > data.shape[0]:
            return -(1 + q)
        total = 0
        for i in range(8):
            total = (total << 8) | int(data[c0 + i])
        block = 0
        for i in range(8, 12):
            block = (block << 8) | int(data[c0 + i])
        if total != chunk_bytes or block <= 0 or block % (8 * elem) != 0:
            return -(1 + q)
        full, last, raw = block_layout(chunk_bytes, block, elem)
        if full + (1 if last > 0 else 0) != n_blocks:
            return -(1 + q)
        s = c0 + 12
        for k in range(n_blocks):
            if s + 4 > c_end:
                return -(1 + q)
            n = 0
            for i in range(4):
                n = (n << 8) | int(data[s + i])
            s += 4
            if s + n > c_end:
                return -(1 + q)
            at[q, k] = s
            csize[q, k] = n
            s += n
        if c_end - s != chunk_bytes - raw:  # what is left is the raw tail, exactly
            return -(1 + q)
    return 0
