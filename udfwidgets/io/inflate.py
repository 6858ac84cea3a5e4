"""gzip-compressed HDF5 chunks read and decompressed by us, straight into the partition buffer.

HDF5's gzip filter is zlib's ``deflate`` stream. For a dataset whose only
filter is gzip and whose chunks hold whole frames, :class:`GzipChunkReader`
reads the compressed chunks itself (:mod:`udfwidgets.io.chunkread`: chunk
offsets from HDF5's chunk index, runs of chunks read with ``os.preadv``,
chunks decoded straight into the partition buffer) and decompresses them
with **libdeflate** (MIT), about three times faster than zlib.

libdeflate is taken from the system's ``libdeflate`` if ``ctypes`` finds it,
else from the ``deflate`` package (``pip install deflate``, part of the
``formats`` extra), whose extension module carries libdeflate's C functions.
Without either, or for any other filter pipeline (shuffle, fletcher32, other
compressors), chunks that split frames, virtual or external datasets, the
reader is not used and h5py reads as before. ``UDFWIDGETS_INFLATE=h5py``
turns it off (for comparisons).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

from .chunkread import ChunkReader, ChunkTable, _table, filters_if_whole_frame_chunks

__all__ = ["GzipChunkReader", "gzip_reader", "libdeflate"]

_GZIP = 1
_LOCK = threading.RLock()
_LIB: list = []  # [] not looked up yet; [None] or [lib] after


class _Deflate:
    """libdeflate's zlib decompressor through ctypes, one decompressor per thread."""

    def __init__(self, lib: ctypes.CDLL, origin: str):
        self.origin = origin
        self._alloc = lib.libdeflate_alloc_decompressor
        self._alloc.restype = ctypes.c_void_p
        self._alloc.argtypes = []
        self._free = lib.libdeflate_free_decompressor
        self._free.restype = None
        self._free.argtypes = [ctypes.c_void_p]
        self._zlib = lib.libdeflate_zlib_decompress
        self._zlib.restype = ctypes.c_int
        self._zlib.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.POINTER(ctypes.c_size_t),
        ]
        self._local = threading.local()

    def _decompressor(self) -> int:
        d = getattr(self._local, "d", None)
        if d is None:
            d = self._alloc()
            if not d:
                raise MemoryError("libdeflate could not allocate a decompressor")
            self._local.d = d
        return d

    def zlib_into(self, src: int, src_len: int, dst: int, dst_len: int) -> int:
        """Decompress the zlib stream at address ``src`` into ``dst``; returns bytes written.

        ``ctypes`` releases the GIL during the call, so threads decompress in parallel.
        Returns -1 for damaged data or a stream longer than ``dst_len``.
        """
        got = ctypes.c_size_t(0)
        rc = self._zlib(self._decompressor(), src, src_len, dst, dst_len, ctypes.byref(got))
        return int(got.value) if rc == 0 else -1


def _load_libdeflate() -> _Deflate | None:
    candidates: list[tuple[str, str]] = []
    found = ctypes.util.find_library("deflate")
    if found:
        candidates.append((found, f"system {found}"))
    try:
        from deflate import _deflate

        candidates.append((_deflate.__file__, "the deflate package"))
    except (ImportError, AttributeError):
        pass
    for path, origin in candidates:
        try:
            lib = ctypes.CDLL(path)
            return _Deflate(lib, origin)
        except (OSError, AttributeError):  # not loadable, or built without these functions
            continue
    return None


def libdeflate() -> _Deflate | None:
    """libdeflate's decompressor, or None when neither the system nor ``deflate`` has it.

    ``UDFWIDGETS_INFLATE=h5py`` in the environment also gives None (the
    reader is then never used).

    Examples
    --------
    >>> lib = libdeflate()
    >>> lib is None or lib.origin.startswith(("system", "the deflate"))
    True
    """
    if os.environ.get("UDFWIDGETS_INFLATE", "").lower() in ("h5py", "off", "0", "no"):
        return None
    with _LOCK:
        if not _LIB:
            _LIB.append(_load_libdeflate())
        return _LIB[0]


class GzipChunkReader(ChunkReader):
    """:class:`~udfwidgets.io.chunkread.ChunkReader` of gzip chunks, decompressed by libdeflate.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.hdf5 import open_file, write_hdf5
    >>> a = np.arange(4 * 6 * 2 * 2, dtype=np.uint16).reshape(4, 6, 2, 2)
    >>> p = write_hdf5(os.path.join(tempfile.mkdtemp(), "a.h5"), a,
    ...                chunks=(1, 4, 2, 2), compression="gzip")
    >>> reader = gzip_reader(p, "/data", open_file(p)["data"], 2)
    >>> out = np.empty((2, 6, 2, 2), dtype=np.uint16)
    >>> if reader is not None:
    ...     reader.read_block((slice(1, 3), slice(0, 6)), out)
    ... else:  # without libdeflate: what h5py reads
    ...     out[...] = a[1:3]
    >>> bool((out == a[1:3]).all())
    True
    """

    codec = "gzip"

    def __init__(self, table: ChunkTable, lib: _Deflate):
        super().__init__(table)
        self.lib = lib

    def _decode_run(self, src, addr, rel, sizes, dsts, ids) -> int:
        inflate_into, nbytes = self.lib.zlib_into, self.table.chunk_bytes
        for m, (r, size, dst) in enumerate(zip(rel, sizes, dsts)):
            if inflate_into(addr + r, size, dst, nbytes) != nbytes:
                return m
        return -1


def gzip_reader(path: str, ds_path: str, dset, nav_dims: int) -> GzipChunkReader | None:
    """Our reader for ``dset`` when it is gzip-only, chunked by whole frames, and libdeflate is here.

    None otherwise (h5py then reads): other filters, chunks splitting the
    frame, virtual or external storage, libdeflate missing or turned off.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.hdf5 import open_file, write_hdf5
    >>> p = write_hdf5(os.path.join(tempfile.mkdtemp(), "a.h5"), np.ones((4, 6, 8, 8)),
    ...                chunks=(1, 6, 8, 8), compression="lzf")
    >>> gzip_reader(p, "/data", open_file(p)["data"], 2) is None  # lzf: h5py reads it
    True
    """
    lib = libdeflate()
    filters = filters_if_whole_frame_chunks(dset, nav_dims)
    if lib is None or filters is None or [int(f[0]) for f in filters] != [_GZIP]:
        return None
    return GzipChunkReader(_table(path, ds_path, dset, nav_dims), lib)
