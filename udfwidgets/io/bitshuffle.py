"""bitshuffle-LZ4 compressed HDF5 chunks decoded by us: straight into the partition, only the frames asked for.

DECTRIS detectors write their frames bitshuffle-LZ4 compressed (HDF5
filter 32008, which :mod:`hdf5plugin` provides), and so do many EMD and
NeXus writers. Through h5py each chunk is read by HDF5, decompressed into a
chunk buffer of HDF5's own and copied from there into the array asked for.
For a whole-frame chunking (each chunk holds whole frames) this module does
better in two ways:

- a chunk whose frames are one contiguous piece of the partition buffer is
  decoded right into it, by the bitshuffle library's own C decoder, without
  a call into HDF5 per chunk (:mod:`udfwidgets.io.chunkread`: chunk offsets
  from HDF5's chunk index, runs of chunks read with ``os.preadv``);
- the blocks of a chunk are compressed independently (8 KiB each unless the
  writer chose otherwise), so a frame picked by an roi is decoded from the
  few blocks that hold it, not from its whole chunk. A 1% roi of a scan
  chunked 16 frames at a time decodes about 1/16 of what h5py decodes.

The C functions are the ones compiled into hdf5plugin's bitshuffle filter
library (``bshuf_decompress_lz4``, ``bshuf_bitunshuffle``,
``LZ4_decompress_safe``), called through ``ctypes``, which releases the GIL.
Before they first read a chunk, :func:`walk_blocks` checks that its header
describes one chunk and that every block lies inside it (the C decoder
trusts the sizes it finds), so a damaged file is a
:class:`~udfwidgets.io.dataset.DataSetError`, never a read past the end of
the buffer. Each worker checks a chunk once per file version; the check is
plain Python (about 20 us a chunk), so a fresh worker does not import numba
for it.

Without hdf5plugin, or with a build of it that does not export these
functions, and for any other filter pipeline, h5py reads as before.
``UDFWIDGETS_BITSHUFFLE=h5py`` turns this reader off (for comparisons).

:data:`BLOCK_READS` counts the blocks decoded one by one, per process.

Examples
--------
>>> import os, tempfile, numpy as np
>>> from udfwidgets.io.hdf5 import open_file, write_hdf5
>>> a = np.arange(4 * 6 * 8 * 8, dtype=np.uint16).reshape(4, 6, 8, 8)
>>> p = write_hdf5(os.path.join(tempfile.mkdtemp(), "a.h5"), a,
...                chunks=(1, 6, 8, 8), compression="bitshuffle-lz4")
>>> reader = bitshuffle_reader(p, "/data", open_file(p)["data"], 2)
>>> out = np.empty((2, 8, 8), np.uint16)
>>> if reader is not None:
...     reader.take(np.array([1, 20]), out)
... else:  # without hdf5plugin's C functions: what h5py reads
...     out[...] = a.reshape(24, 8, 8)[[1, 20]]
>>> bool((out == a.reshape(24, 8, 8)[[1, 20]]).all())
True
"""

from __future__ import annotations

import ctypes
import math
import os
import struct
import threading

import numpy as np

from .chunkread import (
    ChunkReader,
    ChunkTable,
    _compressed_buffer,
    _table,
    filters_if_whole_frame_chunks,
)

__all__ = [
    "BLOCK_READS",
    "BitshuffleChunkReader",
    "bitshuffle_lib",
    "bitshuffle_reader",
    "walk_blocks",
]

#: Blocks decoded one by one (for frames picked by an roi), per process.
BLOCK_READS = {"blocks": 0}

_BITSHUFFLE = 32008
_LZ4 = 2
_LOCK = threading.Lock()
_LIB: list = []  # [] not looked up yet; [None] or [lib] after


class _Bshuf:
    """The bitshuffle filter library's decoding functions, through ctypes."""

    def __init__(self, lib: ctypes.CDLL, origin: str):
        self.origin = origin
        c_size = ctypes.c_size_t
        self.decompress = lib.bshuf_decompress_lz4
        self.decompress.restype = ctypes.c_int64
        self.decompress.argtypes = [ctypes.c_void_p, ctypes.c_void_p, c_size, c_size, c_size]
        self.unshuffle = lib.bshuf_bitunshuffle
        self.unshuffle.restype = ctypes.c_int64
        self.unshuffle.argtypes = [ctypes.c_void_p, ctypes.c_void_p, c_size, c_size, c_size]
        self.lz4 = lib.LZ4_decompress_safe
        self.lz4.restype = ctypes.c_int
        self.lz4.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]


def _load() -> _Bshuf | None:
    try:
        import hdf5plugin
    except ImportError:
        return None
    folder = getattr(hdf5plugin, "PLUGIN_PATH", None) or os.path.join(
        os.path.dirname(hdf5plugin.__file__), "plugins"
    )
    for name in ("libh5bshuf.so", "libh5bshuf.dylib", "h5bshuf.dll"):
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            continue
        try:
            return _Bshuf(ctypes.CDLL(path), f"hdf5plugin {hdf5plugin.version}: {name}")
        except (OSError, AttributeError):  # not loadable, or these functions not exported
            return None
    return None


def bitshuffle_lib() -> _Bshuf | None:
    """The bitshuffle-LZ4 decoder of hdf5plugin's filter library, or None when it is not usable here.

    ``UDFWIDGETS_BITSHUFFLE=h5py`` in the environment also gives None (h5py
    then reads every bitshuffle chunk).

    Examples
    --------
    >>> lib = bitshuffle_lib()
    >>> lib is None or lib.origin.startswith("hdf5plugin")
    True
    """
    if os.environ.get("UDFWIDGETS_BITSHUFFLE", "").lower() in ("h5py", "off", "0", "no"):
        return None
    with _LOCK:
        if not _LIB:
            _LIB.append(_load())
        return _LIB[0]


_HEADER = struct.Struct(">QI")  # uncompressed bytes, block bytes
_SIZE = struct.Struct(">I")  # a block's compressed bytes


def block_layout(chunk_bytes: int, block: int, elem: int) -> tuple[int, int, int]:
    """``(full blocks, bytes of the short last block, where the raw tail starts)`` of a chunk.

    Examples
    --------
    >>> block_layout(100 * 2, 32, 2)  # 100 elements in blocks of 16: 6 full, 0 short, 4 raw
    (6, 0, 192)
    """
    n_elems, block_elems = chunk_bytes // elem, block // elem
    full = n_elems // block_elems
    last = (n_elems % block_elems) // 8 * 8 * elem
    return full, last, full * block + last


def walk_blocks(src, start: int, size: int, elem: int, chunk_bytes: int):
    """Check the bitshuffle-LZ4 chunk ``src[start : start + size]``; where its blocks are.

    Returns ``(block size, block starts, compressed sizes)`` (a block's
    compressed bytes begin after its 4-byte size field), or None when the
    chunk is damaged: its header does not describe ``chunk_bytes`` of
    ``elem``-byte elements, or its blocks do not fill it exactly.

    Examples
    --------
    >>> import numpy as np
    >>> chunk = np.frombuffer(bytes([0, 0, 0, 0, 0, 0, 0, 16,   0, 0, 0, 16,  # 16 bytes, one block
    ...                              0, 0, 0, 2,  0xF0, 0]), np.uint8)        # 2 bytes of LZ4
    >>> walk_blocks(chunk, 0, chunk.size, 1, 16)
    (16, [16], [2])
    >>> walk_blocks(chunk, 0, chunk.size - 1, 1, 16) is None  # the block overruns the chunk
    True
    """
    end = start + size
    if size < 12 or start < 0 or end > len(src):
        return None
    total, block = _HEADER.unpack_from(src, start)
    if total != chunk_bytes or block <= 0 or block % (8 * elem):
        return None
    full, last, raw = block_layout(chunk_bytes, block, elem)
    starts, sizes = [], []
    s = start + 12
    unpack = _SIZE.unpack_from
    for _ in range(full + (1 if last else 0)):
        if s + 4 > end:
            return None
        (n,) = unpack(src, s)
        s += 4
        if s + n > end:
            return None
        starts.append(s)
        sizes.append(n)
        s += n
    if end - s != chunk_bytes - raw:  # what is left is the raw tail, exactly
        return None
    return block, starts, sizes


class BitshuffleChunkReader(ChunkReader):
    """:class:`~udfwidgets.io.chunkread.ChunkReader` of bitshuffle-LZ4 chunks; an roi's frames from their blocks.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.hdf5 import open_file, write_hdf5
    >>> a = np.arange(4 * 6 * 2 * 2, dtype=np.float32).reshape(4, 6, 2, 2)
    >>> p = write_hdf5(os.path.join(tempfile.mkdtemp(), "a.h5"), a,
    ...                chunks=(1, 4, 2, 2), compression="bitshuffle-lz4")
    >>> reader = bitshuffle_reader(p, "/data", open_file(p)["data"], 2)
    >>> out = np.empty((2, 6, 2, 2), dtype=np.float32)
    >>> if reader is not None:
    ...     reader.read_block((slice(1, 3), slice(0, 6)), out)
    ... else:  # without hdf5plugin's C functions: what h5py reads
    ...     out[...] = a[1:3]
    >>> bool((out == a[1:3]).all())
    True
    """

    codec = "bitshuffle-LZ4"

    def __init__(self, table: ChunkTable, lib: _Bshuf):
        super().__init__(table)
        self.bshuf = lib
        t = table
        self.elem = t.dtype.itemsize
        self.frame_bytes = t.chunk_bytes // max(1, int(np.prod(t.chunks[: t.nav_dims])))
        self._local = threading.local()
        #: the block size of each chunk checked by :func:`walk_blocks` (0: not yet), flat
        self._blocks = np.zeros(math.prod(t.grid), np.int64)

    def _decode_run(self, src, addr, rel, sizes, dsts, ids) -> int:
        t, elem, blocks = self.table, self.elem, self._blocks
        decompress, n = self.bshuf.decompress, t.chunk_bytes // elem
        for m, (r, size, dst, i) in enumerate(zip(rel, sizes, dsts, ids)):
            block = int(blocks[i])
            if not block:
                found = walk_blocks(src, r, size, elem, t.chunk_bytes)
                if found is None:
                    return m
                block = blocks[i] = found[0]
            if decompress(addr + r + 12, dst, n, elem, block // elem) != size - 12:
                return m
        return -1

    def _scratch(self, nbytes: int) -> np.ndarray:
        buf = getattr(self._local, "buf", None)
        if buf is None or buf.size < nbytes:
            buf = self._local.buf = np.empty(nbytes, np.uint8)
        return buf

    def _frames_into(self, at: tuple[int, ...], local: np.ndarray, rows: np.ndarray) -> None:
        """Decode frames ``local`` (flat indices inside chunk ``at``) into the C-contiguous ``rows``.

        The chunk's compressed bytes are read whole (one ``os.preadv``); the
        full blocks inside a frame are decoded by one call straight into it; a
        block the frame covers in part (frames that do not end on a block
        boundary, the chunk's short last block) goes through a scratch buffer;
        the raw tail is copied.
        """
        t = self.table
        off, size = int(t.offsets[at]), int(t.sizes[at])
        src, base = _compressed_buffer(size)
        t.read_into(off, size, src)
        elem, fb, lib = self.elem, self.frame_bytes, self.bshuf
        found = walk_blocks(src, 0, size, elem, t.chunk_bytes)
        if found is None:
            raise self._damaged(at)
        block, starts, csize = found
        full, _, raw = block_layout(t.chunk_bytes, block, elem)
        scratch = self._scratch(2 * block)
        tmp = int(scratch.ctypes.data)
        flat = rows.reshape(-1).view(np.uint8)
        out = int(flat.ctypes.data)
        for i, f in enumerate(local.tolist()):
            a, b = f * fb, (f + 1) * fb
            o = i * fb - a  # byte x of the chunk goes to flat[o + x]
            lo, hi = -(-a // block), min(full, b // block)  # the full blocks inside [a, b)
            if hi > lo:
                BLOCK_READS["blocks"] += hi - lo
                n = (hi - lo) * block // elem
                used = lib.decompress(
                    base + starts[lo] - 4, out + o + lo * block, n, elem, block // elem
                )
                if used != starts[hi - 1] + csize[hi - 1] - starts[lo] + 4:
                    raise self._damaged(at)
            for k in range(a // block, min(len(starts), -(-b // block))):
                if lo <= k < hi:
                    continue
                b0 = k * block
                nbytes = min(block, raw - b0)
                BLOCK_READS["blocks"] += 1
                if lib.lz4(base + starts[k], tmp, csize[k], nbytes) != nbytes:
                    raise self._damaged(at)
                lib.unshuffle(tmp, tmp + block, nbytes // elem, elem, nbytes // elem)
                x0, x1 = max(a, b0), min(b, b0 + nbytes)
                flat[o + x0 : o + x1] = scratch[block + x0 - b0 : block + x1 - b0]
            if b > raw:  # the raw tail: the chunk's last bytes, stored as they are
                x0 = max(a, raw)
                at_src = size - (t.chunk_bytes - raw) + (x0 - raw)
                flat[o + x0 : o + b] = src[at_src : at_src + b - x0]

    def _take_chunk(self, at: tuple[int, ...], frames: np.ndarray, pos: np.ndarray, out) -> None:
        """Frames of chunk ``at``: the whole chunk in place when all of it is wanted in
        order, only their blocks when they are fewer than half of its frames, else the
        chunk decoded whole (see :data:`BLOCK_READS` and
        :data:`~udfwidgets.io.chunkread.CHUNK_READS`).
        """
        t = self.table
        per_chunk = math.prod(t.chunks[: t.nav_dims])
        first = int(pos[0])  # pos ascends: a run of out's rows when it has no gap
        run = int(pos[-1]) - first + 1 == len(pos) and out.flags.c_contiguous
        if run and len(pos) == per_chunk and (np.diff(frames) == 1).all():
            # the whole chunk, in order (one-frame chunks of DECTRIS files): decoded in place
            self._chunk_into(at, out[first : first + len(pos)].reshape(t.chunks))
        elif int(t.offsets[at]) >= 0 and not t.masks[at] & 1 and 2 * len(pos) < per_chunk:
            if run:
                self._frames_into(at, frames, out[first : first + len(pos)])
            else:
                rows = np.empty((len(pos),) + tuple(t.chunks[t.nav_dims :]), t.dtype)
                self._frames_into(at, frames, rows)
                out[pos] = rows
        else:
            super()._take_chunk(at, frames, pos, out)


def bitshuffle_reader(path: str, ds_path: str, dset, nav_dims: int) -> BitshuffleChunkReader | None:
    """Our reader for ``dset`` when its only filter is bitshuffle-LZ4, chunked by whole frames.

    None otherwise (h5py then reads): other filters or bitshuffle with Zstd,
    chunks splitting the frame, virtual or external storage, an element size
    other than the dtype's, or hdf5plugin's C functions not usable here.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.hdf5 import open_file, write_hdf5
    >>> p = write_hdf5(os.path.join(tempfile.mkdtemp(), "a.h5"), np.ones((4, 6, 8, 8)),
    ...                chunks=(1, 6, 8, 8), compression="gzip")
    >>> bitshuffle_reader(p, "/data", open_file(p)["data"], 2) is None  # gzip is not ours here
    True
    """
    lib = bitshuffle_lib()
    filters = filters_if_whole_frame_chunks(dset, nav_dims)
    if lib is None or filters is None or len(filters) != 1:
        return None
    fid, _, values = filters[0]
    if int(fid) != _BITSHUFFLE or len(values) < 5 or int(values[4]) != _LZ4:
        return None
    if int(values[2]) != dset.dtype.itemsize:
        return None
    return BitshuffleChunkReader(_table(path, ds_path, dset, nav_dims), lib)
