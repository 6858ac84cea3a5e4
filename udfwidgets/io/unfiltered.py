"""Chunked HDF5 datasets stored without filters, read by us: chunk bytes straight into the partition.

An uncompressed but chunked dataset (h5py's default whenever ``chunks=`` is
given, and common in EMD files) is read by HDF5 chunk by chunk through its
own buffers. With whole-frame chunks the bytes of a chunk are the frames
themselves, so :class:`UnfilteredChunkReader` reads them with ``os.preadv``
straight into the partition buffer (no HDF5 call, no copy), and an roi's
frames one by one from their place in their chunk (a frame is not read with
the other frames of its chunk). Chunk offsets come from HDF5's chunk index
once per worker and file (:mod:`udfwidgets.io.chunkread`).

Examples
--------
>>> import os, tempfile, numpy as np
>>> from udfwidgets.io.hdf5 import open_file, write_hdf5
>>> a = np.arange(4 * 6 * 8 * 8, dtype=np.uint16).reshape(4, 6, 8, 8)
>>> p = write_hdf5(os.path.join(tempfile.mkdtemp(), "a.h5"), a, chunks=(1, 6, 8, 8))
>>> reader = unfiltered_reader(p, "/data", open_file(p)["data"], 2)
>>> out = np.empty((2, 8, 8), np.uint16)
>>> reader.take(np.array([1, 20]), out)
>>> bool((out == a.reshape(24, 8, 8)[[1, 20]]).all())
True
"""

from __future__ import annotations

import ctypes
import math
import os

import numpy as np

from .chunkread import CHUNK_READS, ChunkReader, _table, filters_if_whole_frame_chunks

__all__ = ["UnfilteredChunkReader", "unfiltered_reader"]

#: Chunks next to each other in the file and in the partition are read together, up to this
#: many bytes in one call (fewer system calls than one per chunk).
_READ_RUN = 8 << 20


def _at(addr: int, size: int) -> memoryview:
    """The ``size`` bytes of memory at ``addr`` (inside an array we own) as a writable buffer."""
    return memoryview((ctypes.c_char * size).from_address(addr)).cast("B")


class UnfilteredChunkReader(ChunkReader):
    """:class:`~udfwidgets.io.chunkread.ChunkReader` of chunks stored as they are: read, not decoded.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.hdf5 import open_file, write_hdf5
    >>> a = np.arange(4 * 6 * 2 * 2, dtype=np.float32).reshape(4, 6, 2, 2)
    >>> p = write_hdf5(os.path.join(tempfile.mkdtemp(), "a.h5"), a, chunks=(1, 3, 2, 2))
    >>> reader = unfiltered_reader(p, "/data", open_file(p)["data"], 2)
    >>> out = np.empty((2, 6, 2, 2), np.float32)
    >>> reader.read_block((slice(1, 3), slice(0, 6)), out)
    >>> bool((out == a[1:3]).all())
    True
    """

    codec = "unfiltered"

    def _decode_run(self, src, addr, rel, sizes, dsts, ids) -> int:
        nbytes = self.table.chunk_bytes
        for m, (r, size, dst) in enumerate(zip(rel, sizes, dsts)):
            if size != nbytes:
                return m
            ctypes.memmove(dst, addr + r, size)
        return -1

    def _runs_into(self, offs, sizes, dsts, where, ks) -> None:
        """Read the chunks straight into their places in ``out`` (nothing to decode).

        Chunks that follow each other both in the file and in ``out`` (a chunk row
        written in order) are read with one call, up to :data:`_READ_RUN` bytes.
        """
        t = self.table
        n, nbytes = len(offs), t.chunk_bytes
        offs_l, sizes_l, dsts_l = offs.tolist(), sizes.tolist(), dsts.tolist()
        for m, size in enumerate(sizes_l):
            if size != nbytes:
                raise self._damaged(tuple(int(k[x]) for k, x in zip(ks, where[m])))
        i = 0
        while i < n:
            j = i + 1
            while (
                j < n
                and offs_l[j] == offs_l[j - 1] + nbytes
                and dsts_l[j] == dsts_l[j - 1] + nbytes
                and (j - i + 1) * nbytes <= _READ_RUN
            ):
                j += 1
            t.read_into(offs_l[i], (j - i) * nbytes, _at(dsts_l[i], (j - i) * nbytes))
            i = j
        CHUNK_READS["chunks"] += n

    def _take_chunk(self, at: tuple[int, ...], frames: np.ndarray, pos: np.ndarray, out) -> None:
        """Each frame read on its own from its place in chunk ``at`` (not the whole chunk)."""
        t = self.table
        off, size = int(t.offsets[at]), int(t.sizes[at])
        if off < 0:  # a chunk never written: the fill value
            out[pos] = t.fill
            return
        if size != t.chunk_bytes:
            raise self._damaged(at)
        if not out.flags.c_contiguous:
            super()._take_chunk(at, frames, pos, out)
            return
        fb = t.chunk_bytes // math.prod(t.chunks[: t.nav_dims])
        rows = out.reshape(len(out), -1).view(np.uint8)
        for i, f in zip(pos.tolist(), frames.tolist()):
            t.read_into(off + f * fb, fb, rows[i].data)


def unfiltered_reader(path: str, ds_path: str, dset, nav_dims: int) -> UnfilteredChunkReader | None:
    """Our reader for ``dset`` when it is chunked by whole frames and stored without filters.

    None otherwise (h5py, or the memory map of a contiguous dataset, reads
    it): filters, chunks splitting the frame, virtual or external storage.
    ``UDFWIDGETS_UNFILTERED=h5py`` turns it off (for comparisons).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.hdf5 import open_file, write_hdf5
    >>> p = write_hdf5(os.path.join(tempfile.mkdtemp(), "a.h5"), np.ones((4, 6, 8, 8)),
    ...                chunks=(1, 6, 8, 8), compression="gzip")
    >>> unfiltered_reader(p, "/data", open_file(p)["data"], 2) is None  # gzip: not ours here
    True
    """
    if os.environ.get("UDFWIDGETS_UNFILTERED", "").lower() in ("h5py", "off", "0", "no"):
        return None
    if filters_if_whole_frame_chunks(dset, nav_dims) != []:
        return None
    return UnfilteredChunkReader(_table(path, ds_path, dset, nav_dims))
