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

:func:`check_chunks` checks that every block of a chunk lies inside it (the
C decoder that then reads the blocks trusts the sizes it finds, so a damaged
size must be caught here, before it sends a read past the end of the
buffer); :func:`walk_blocks` also says where each block starts, to decode
only some of them. Without numba the same functions run as plain Python
(slower, same result).

Examples
--------
>>> import numpy as np
>>> from udfwidgets._bitshuffle_numba import check_chunks, walk_blocks
>>> chunk = np.frombuffer(bytes([0, 0, 0, 0, 0, 0, 0, 16,   0, 0, 0, 16,  # 16 bytes, one block
...                              0, 0, 0, 2,  0xF0, 0]), np.uint8)        # 2 bytes of LZ4
>>> blocks = np.zeros(1, np.int64)
>>> check_chunks(chunk, np.array([0]), np.array([chunk.size]), 1, 16, blocks), blocks.tolist()
(-1, [16])
>>> at, csize = np.zeros(1, np.int64), np.zeros(1, np.int64)
>>> walk_blocks(chunk, 0, chunk.size, 1, 16, at, csize)  # the block size
16
>>> at.tolist(), csize.tolist()  # block 0's compressed bytes begin after its 4-byte size
([16], [2])
"""

from __future__ import annotations

import numpy as np

from ._numba import HAVE_NUMBA, jit

__all__ = ["HAVE_NUMBA", "block_layout", "check_chunks", "walk_blocks"]


@jit()
def block_layout(chunk_bytes, block_bytes, elem):  # pragma: no cover - compiled
    """``(full blocks, bytes of the last short block, where the raw tail starts)`` of a chunk."""
    n_elems = chunk_bytes // elem
    block_elems = block_bytes // elem
    full = n_elems // block_elems
    last = (n_elems % block_elems) // 8 * 8 * elem
    return full, last, full * block_bytes + last


@jit()
def _walk(
    data, c0, size, elem, chunk_bytes, at, csize, store
) -> int:  # pragma: no cover - compiled
    """Block size of the chunk ``data[c0 : c0 + size]``, or -1; with ``store``, fill ``at``, ``csize``."""
    c_end = c0 + size
    if size < 12 or c0 < 0 or c_end > data.shape[0]:
        return -1
    total = 0
    for i in range(8):
        total = (total << 8) | int(data[c0 + i])
    block = 0
    for i in range(8, 12):
        block = (block << 8) | int(data[c0 + i])
    if total != chunk_bytes or block <= 0 or block % (8 * elem) != 0:
        return -1
    full, last, raw = block_layout(chunk_bytes, block, elem)
    n_blocks = full + (1 if last > 0 else 0)
    if store and n_blocks != at.shape[0]:
        return -1
    s = c0 + 12
    for k in range(n_blocks):
        if s + 4 > c_end:
            return -1
        n = 0
        for i in range(4):
            n = (n << 8) | int(data[s + i])
        s += 4
        if s + n > c_end:
            return -1
        if store:
            at[k] = s
            csize[k] = n
        s += n
    if c_end - s != chunk_bytes - raw:  # what is left is the raw tail, exactly
        return -1
    return block


@jit()
def check_chunks(
    data, starts, sizes, elem, chunk_bytes, blocks
) -> int:  # pragma: no cover - compiled
    """Check the chunks ``data[starts[q] : starts[q] + sizes[q]]``; -1, or the first damaged ``q``.

    ``blocks[q]`` gets chunk ``q``'s block size in bytes. A chunk is damaged
    when its header does not describe ``chunk_bytes`` of ``elem``-byte
    elements or its blocks do not fill it exactly.
    """
    none = np.empty(0, np.int64)
    for q in range(starts.shape[0]):
        block = _walk(data, starts[q], sizes[q], elem, chunk_bytes, none, none, False)
        if block < 0:
            return q
        blocks[q] = block
    return -1


@jit()
def walk_blocks(
    data, start, size, elem, chunk_bytes, at, csize
) -> int:  # pragma: no cover - compiled
    """Fill ``at[k]`` and ``csize[k]``: where block ``k`` of one chunk begins in ``data``, its size.

    The chunk is ``data[start : start + size]``; ``at`` and ``csize`` have
    one entry per block (:func:`block_layout`). Returns the block size in
    bytes, or -1 when the chunk is damaged (as :func:`check_chunks`) or has
    another number of blocks.
    """
    return _walk(data, start, size, elem, chunk_bytes, at, csize, True)
