"""Compressed HDF5 chunks read by us: the part every codec shares (chunk table, reads, reuse).

Through h5py every chunk of a compressed HDF5 dataset is read by HDF5,
decoded into a chunk buffer of HDF5's own and copied from there into the
array asked for. For a whole-frame chunking (each chunk holds whole frames)
the readers of :mod:`udfwidgets.io.inflate` (gzip),
:mod:`udfwidgets.io.bitshuffle` (bitshuffle-LZ4) and
:mod:`udfwidgets.io.unfiltered` (chunks stored without filters) do better;
what they share lives here:

- :class:`ChunkTable`: the chunks' byte offsets in the file, from HDF5's
  chunk index once per worker and file version; the compressed bytes are
  then read with ``os.preadv`` (no call into HDF5), chunks that follow each
  other in the file in runs of up to 256 KiB, into a small per-thread buffer
  reused for every run;
- :class:`ChunkReader`: ``read_block`` and ``take`` over the chunk grid. A
  chunk whose frames are one contiguous piece of the partition buffer is
  decoded right into it (no chunk buffer, no copy); other chunks (at the
  dataset's or a block's edge) go through one reused per-thread chunk
  buffer. A codec subclass says how to decode a run of chunks
  (:meth:`ChunkReader._decode_run`);
- :func:`cached_reader`: which reader, if any, reads a dataset, decided once
  per process and file version.

The compressed bytes are copied from the page cache rather than read
through a memory map of the file: a map's pages, once touched, count in the
worker's resident memory for as long as the map lives (the whole compressed
file, for a reader kept between runs), while the copy costs far less than
decoding the chunk, and the per-thread buffer stays in the CPU's cache. A
worker's peak memory is then one partition plus its chunk buffers.

:data:`CHUNK_READS` counts the chunks decoded whole here, per process (tests
check that an roi never reads a chunk without a selected frame).
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from . import files as _files
from .cache import PerFileCache, file_identity
from .dataset import DataSetError

__all__ = [
    "CHUNK_READS",
    "ChunkReader",
    "ChunkTable",
    "cached_reader",
    "filters_if_whole_frame_chunks",
    "release_tables",
]

#: Chunks decoded whole (or copied, when stored unfiltered) by this process's readers.
CHUNK_READS = {"chunks": 0}

#: chunk tables (and open files) of the datasets read, per file version
_TABLES = PerFileCache(size=16)
_PREADV = getattr(os, "preadv", None)  # Linux, BSD, macOS 11+: one call, no shared file position


class ChunkTable:
    """Where each chunk of one compressed HDF5 dataset is in its file, and the file to read it from.

    ``offsets``, ``sizes`` and ``masks`` have the shape of the chunk grid
    along the navigation axes (the chunks span whole frames); an offset of -1
    marks a chunk never written (it reads as the fill value).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.hdf5 import open_file, write_hdf5
    >>> p = write_hdf5(os.path.join(tempfile.mkdtemp(), "a.h5"), np.ones((4, 6, 8, 8)),
    ...                chunks=(2, 3, 8, 8), compression="gzip")
    >>> ChunkTable(p, open_file(p)["data"], 2).offsets.shape
    (2, 2)
    """

    def __init__(self, path: str, dset, nav_dims: int):
        self.path = path
        self.nav_dims = nav_dims
        self.shape = tuple(int(n) for n in dset.shape)
        self.chunks = tuple(int(c) for c in dset.chunks)
        self.dtype = dset.dtype
        self.grid = tuple(math.ceil(n / c) for n, c in zip(self.shape, self.chunks))[:nav_dims]
        self.chunk_bytes = math.prod(self.chunks) * self.dtype.itemsize
        fill = dset.fillvalue
        self.fill = np.zeros((), dtype=self.dtype) if fill is None else np.asarray(fill, self.dtype)
        offsets = np.full(self.grid, -1, dtype=np.int64)
        sizes = np.zeros(self.grid, dtype=np.int64)
        masks = np.zeros(self.grid, dtype=np.int64)
        dsid = dset.id

        def note(info) -> None:
            at = tuple(int(o) // c for o, c in zip(info.chunk_offset[:nav_dims], self.chunks))
            offsets[at] = -1 if info.byte_offset is None else int(info.byte_offset)
            sizes[at] = int(info.size)
            masks[at] = int(info.filter_mask)

        if hasattr(dsid, "chunk_iter"):
            dsid.chunk_iter(note)
        else:  # HDF5 before 1.12.3: one query per chunk
            for i in range(dsid.get_num_chunks()):
                note(dsid.get_chunk_info(i))
        self.offsets, self.sizes, self.masks = offsets, sizes, masks
        # the file stays open (unbuffered) for os.preadv; no memory map (see the module's notes)
        self._fh = open(path, "rb", buffering=0)  # noqa: SIM115 (closed with the table)
        self.fd = self._fh.fileno()
        self.file_size = os.fstat(self.fd).st_size
        self._seek_lock = threading.Lock()  # without os.preadv: seek and read as one
        ends = offsets + sizes
        if (ends[offsets >= 0] > self.file_size).any():
            self.close()
            raise DataSetError(
                f"{path!r} is truncated: chunks of its dataset lie past the end of the file; "
                "the write or copy did not finish: copy the file again"
            )

    def close(self) -> None:
        """Close the file (the table is dropped from the cache, or a file was refused)."""
        self._fh.close()

    def __del__(self) -> None:  # dropped from the cache: close quietly (no ResourceWarning)
        fh = getattr(self, "_fh", None)
        if fh is not None:
            fh.close()

    def read_into(self, off: int, size: int, dst) -> None:
        """Read the ``size`` bytes at ``off`` of the file into the buffer ``dst`` (at least ``size`` long).

        A short read (the file shrank since its chunk table was read) is a
        :class:`~udfwidgets.io.dataset.DataSetError` naming the file.
        """
        view = dst[:size]
        if _PREADV is not None:
            got = _PREADV(self.fd, (view,), off)
        else:  # no preadv (Windows): seek and read under a lock (threads share the file)
            with self._seek_lock:
                self._fh.seek(off)
                got = self._fh.readinto(view) or 0
        if got != size:
            raise DataSetError(
                f"{self.path!r} is truncated: a chunk of {size} bytes at byte {off} reads "
                f"only {got} bytes (the file is {os.path.getsize(self.path)} bytes now); the "
                "file changed or was cut short while it was read: copy the file again"
            )


def _table(path: str, ds_path: str, dset, nav_dims: int) -> ChunkTable:
    key = (file_identity(path), ds_path)
    return _TABLES.get(key, lambda: ChunkTable(path, dset, nav_dims))


def release_tables() -> int:
    """Drop the chunk tables and file maps kept between runs; returns how many.

    Examples
    --------
    >>> release_tables() >= 0
    True
    """
    n = _TABLES.clear()
    _READERS.clear()
    kept = getattr(_PARTIAL, "kept", None)
    if kept is not None:
        kept.clear()
    _SRC.__dict__.pop("buf", None)
    return n


_files.RELEASE_HOOKS.append(release_tables)

_PARTIAL = threading.local()
_SRC = threading.local()
#: Compressed bytes read with one call at most: consecutive chunks of a block are read
#: together up to this size (a copy that stays in the core's L2 cache; copies of 512 KiB
#: and more were 4x slower per byte on the 2-core benchmark machine).
_READ_BYTES = 256 << 10
#: ... across gaps between them of at most this many bytes (read and skipped)
_READ_GAP = 4096


def _compressed_buffer(size: int) -> tuple[np.ndarray, int]:
    """This thread's buffer for compressed bytes (``uint8``, at least ``size``) and its address.

    Grown (to a power of two, at least 64 KiB) when the bytes do not fit,
    never shrunk: about :data:`_READ_BYTES`, or the largest single
    compressed chunk this thread has read if that is larger.
    """
    buf = getattr(_SRC, "buf", None)
    if buf is None or buf.nbytes < size:
        buf = _SRC.buf = np.empty(1 << max(16, (size - 1).bit_length()), dtype=np.uint8)
        _SRC.addr = int(buf.ctypes.data)
    return buf, _SRC.addr


#: Chunks used in part (a partition edge inside a chunk) kept per thread, so the piece of the
#: same chunk that the next hyperslab of the partition needs is not decompressed again.
_KEEP_PARTIAL = 4
#: ... and at most this many bytes of them (one chunk at least, up to ``_KEEP_PARTIAL`` chunks)
_KEEP_PARTIAL_BYTES = 32 << 20


def _partial_chunk(table: ChunkTable, at: tuple[int, ...], fill) -> np.ndarray:
    """Chunk ``at`` decompressed into a per-thread buffer, reusing a recent one.

    The buffers are reused too (a fresh array of a chunk's size would be
    page-faulted in again for every chunk).
    """
    kept: OrderedDict | None = getattr(_PARTIAL, "kept", None)
    if kept is None:
        kept = _PARTIAL.kept = OrderedDict()
    key = (id(table), at)
    hit = kept.get(key)
    if hit is not None and hit[0] is table:
        kept.move_to_end(key)
        return hit[1]
    spare = None
    held = sum(arr.nbytes for _, arr in kept.values())
    while kept and (len(kept) >= _KEEP_PARTIAL or held + table.chunk_bytes > _KEEP_PARTIAL_BYTES):
        _, (_, old) = kept.popitem(last=False)
        held -= old.nbytes
        if old.nbytes == table.chunk_bytes and spare is None:
            spare = old
    out = spare if spare is not None else np.empty(table.chunk_bytes, dtype=np.uint8)
    out = out.reshape(-1).view(np.uint8).view(table.dtype).reshape(table.chunks)
    fill(at, out)
    kept[key] = (table, out)
    return out


class ChunkReader:
    """Reads a chunked HDF5 dataset whose chunks hold whole frames: ``read_block`` and ``take``.

    A codec's subclass decodes runs of chunks (:meth:`_decode_run`) and names
    its codec (:attr:`codec`); everything else is shared.

    Examples
    --------
    Frames by flat file index, from a chunked file stored without filters:

    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.hdf5 import open_file, write_hdf5
    >>> a = np.arange(4 * 6 * 2 * 2, dtype=np.uint16).reshape(4, 6, 2, 2)
    >>> p = write_hdf5(os.path.join(tempfile.mkdtemp(), "a.h5"), a, chunks=(1, 4, 2, 2))
    >>> reader = cached_reader(p, "/data", 2, lambda: open_file(p)["data"])
    >>> reader.codec
    'unfiltered'
    >>> out = np.empty((3, 2, 2), dtype=np.uint16)
    >>> reader.take(np.array([0, 5, 23]), out)
    >>> bool((out == a.reshape(24, 2, 2)[[0, 5, 23]]).all())
    True
    """

    #: the codec's name, for messages
    codec = "compressed"

    def __init__(self, table: ChunkTable):
        self.table = table

    def _decode_run(
        self, src: np.ndarray, addr: int, rel: list, sizes: list, dsts: list, ids: list
    ) -> int:
        """Decode chunks read into ``src`` (at address ``addr``) to the addresses ``dsts``.

        Chunk ``m`` is ``src[rel[m] : rel[m] + sizes[m]]``, the chunk at flat
        index ``ids[m]`` of the chunk grid, and decodes to one chunk's bytes at
        ``dsts[m]``. Returns -1, or the index of the first chunk that does not
        decode to exactly one chunk's bytes (damaged).
        """
        raise NotImplementedError

    def _chunk_into(self, at: tuple[int, ...], dst: np.ndarray) -> None:
        """Decode chunk ``at`` into the C-contiguous ``dst`` of exactly one chunk's bytes."""
        t = self.table
        CHUNK_READS["chunks"] += 1
        off = int(t.offsets[at])
        if off < 0:
            dst[...] = t.fill
            return
        size = int(t.sizes[at])
        if t.masks[at] & 1:  # the filter skipped for this chunk: stored as is, read into dst
            if size != t.chunk_bytes:
                raise DataSetError(f"{t.path!r}: chunk {at} is damaged (size {size})")
            t.read_into(off, size, dst.reshape(-1).view(np.uint8).data)
            return
        buf, addr = _compressed_buffer(size)
        t.read_into(off, size, buf)
        flat = int(np.ravel_multi_index(at, t.grid))
        if self._decode_run(buf, addr, [0], [size], [int(dst.ctypes.data)], [flat]) >= 0:
            raise self._damaged(at)

    def _damaged(self, at: tuple[int, ...]) -> DataSetError:
        return DataSetError(
            f"{self.table.path!r}: the {self.codec} chunk at navigation chunk {at} is damaged "
            "(it does not decode to one chunk); the file is corrupt: copy it again"
        )

    def read_block(self, slices: Sequence[slice], out: np.ndarray) -> None:
        """Fill ``out`` (block navigation shape + signal) with the frames at ``slices``.

        The chunks that lie whole inside the block, each one contiguous
        piece of ``out``, are found for the whole block at once (no Python
        work per chunk but the call that decodes it) and decoded straight
        into ``out`` (:meth:`_runs_into`). The others (at the
        block's or the dataset's edge, unwritten or stored unfiltered) go
        one by one through :meth:`_chunk_into`, and through a per-thread
        chunk buffer where only part of the chunk is wanted.
        """
        t = self.table
        nd = t.nav_dims
        starts = [int(s.start) for s in slices]
        stops = [int(s.stop) for s in slices]
        chunk_shape = t.chunks
        ks = [np.arange(a // c, -(-b // c)) for a, b, c in zip(starts, stops, chunk_shape)]
        grid = np.ix_(*ks)
        fast = np.ones([len(k) for k in ks], dtype=bool)
        # a chunk inside the block is one contiguous piece of a C-contiguous out when, after
        # its first navigation axis longer than 1, it spans out's whole extent on every axis
        first = next((d for d in range(nd) if chunk_shape[d] > 1), nd)
        if out.flags.c_contiguous and all(
            chunk_shape[d] == out.shape[d] for d in range(first + 1, nd)
        ):
            for k, c, a, b in zip(grid, chunk_shape, starts, stops):
                fast &= (k * c >= a) & ((k + 1) * c <= b)
            offs, sizes = t.offsets[grid], t.sizes[grid]
            fast &= (offs >= 0) & (t.masks[grid] & 1 == 0) & (sizes <= _READ_BYTES)
        else:
            fast[...] = False
        if fast.any():
            dst = np.full(fast.shape, int(out.ctypes.data), dtype=np.int64)
            for k, c, a, stride in zip(grid, chunk_shape, starts, out.strides):
                dst += (k * c - a) * stride
            self._runs_into(offs[fast], sizes[fast], dst[fast], np.argwhere(fast), ks)
        for pos in np.argwhere(~fast):
            at = tuple(int(k[i]) for k, i in zip(ks, pos))
            c0 = [k * c for k, c in zip(at, chunk_shape)]
            lo = [max(a, x) for a, x in zip(starts, c0)]
            hi = [min(b, x + c) for b, x, c in zip(stops, c0, chunk_shape)]
            region = tuple(slice(x - a, y - a) for x, y, a in zip(lo, hi, starts))
            dst_arr = out[region]
            whole = all(x == y and h - x == c for x, y, h, c in zip(c0, lo, hi, chunk_shape))
            if whole and dst_arr.flags.c_contiguous:
                self._chunk_into(at, dst_arr)
            else:
                buf = _partial_chunk(t, at, self._chunk_into)
                dst_arr[...] = buf[tuple(slice(x - y, h - y) for x, y, h in zip(lo, c0, hi))]

    def _runs_into(self, offs, sizes, dsts, where, ks) -> None:
        """Decode chunks (file ``offs``, ``sizes``) to the addresses ``dsts`` of ``out``.

        Runs of chunks that follow each other in the file (gaps of at most
        :data:`_READ_GAP` bytes, at most :data:`_READ_BYTES` in all) are read
        with one ``os.preadv`` into this thread's buffer, then decoded from it
        (:meth:`_decode_run`). ``where`` and ``ks`` name a damaged chunk.
        """
        t = self.table
        n = len(offs)
        offs_l, sizes_l, dsts_l = offs.tolist(), sizes.tolist(), dsts.tolist()
        coords = tuple(k[where[:, d]] for d, k in enumerate(ks))
        ids = np.ravel_multi_index(coords, t.grid).tolist() if n else []
        cap, gap = _READ_BYTES, _READ_GAP
        i = 0
        while i < n:
            lo = offs_l[i]
            hi = lo + sizes_l[i]
            j = i + 1
            while j < n:
                o = offs_l[j]
                if o < hi or o - hi > gap or o + sizes_l[j] - lo > cap:
                    break
                hi = o + sizes_l[j]
                j += 1
            buf, addr = _compressed_buffer(hi - lo)
            t.read_into(lo, hi - lo, buf)
            CHUNK_READS["chunks"] += j - i
            rel = [o - lo for o in offs_l[i:j]]
            bad = self._decode_run(buf, addr, rel, sizes_l[i:j], dsts_l[i:j], ids[i:j])
            if bad >= 0:
                raise self._damaged(tuple(int(k[x]) for k, x in zip(ks, where[i + bad])))
            i = j

    def take(self, file_idx: np.ndarray, out: np.ndarray) -> None:
        """Fill ``out`` with the frames at flat file indices ``file_idx``, each chunk read once.

        Only the chunks that hold one of the frames are read (see
        :data:`CHUNK_READS`); each is handed to :meth:`_take_chunk` with its
        frames.
        """
        t = self.table
        nd = t.nav_dims
        if not len(file_idx):
            return
        cn = t.chunks[:nd]
        coords = np.unravel_index(np.asarray(file_idx, dtype=np.int64), t.shape[:nd])
        cid = np.ravel_multi_index(tuple(x // c for x, c in zip(coords, cn)), t.grid)
        # each frame's place in its chunk, as a frame index of the chunk
        local = np.ravel_multi_index(tuple(x % c for x, c in zip(coords, cn)), cn)
        order = np.argsort(cid, kind="stable")
        cuts = (np.flatnonzero(np.diff(cid[order])) + 1).tolist()
        ats = list(zip(*(a.tolist() for a in np.unravel_index(cid[order[[0, *cuts]]], t.grid))))
        for at, a, b in zip(ats, [0, *cuts], [*cuts, len(order)]):
            pos = order[a:b]
            self._take_chunk(at, local[pos], pos, out)

    def _take_chunk(self, at: tuple[int, ...], frames: np.ndarray, pos: np.ndarray, out) -> None:
        """Fill ``out[pos]`` with the frames ``frames`` (flat, ascending) of chunk ``at``.

        Here: the chunk decoded whole into a per-thread buffer, then copied
        from. A codec that can do with less overrides this.
        """
        t = self.table
        flat = _partial_chunk(t, at, self._chunk_into).reshape((-1, *t.chunks[t.nav_dims :]))
        if len(pos) == 1:  # mostly one frame of a chunk (a sparse roi): no fancy indexing
            out[int(pos[0])] = flat[int(frames[0])]
        else:
            out[pos] = flat[frames]


def filters_if_whole_frame_chunks(dset, nav_dims: int) -> list[tuple] | None:
    """The filter pipeline of ``dset`` when our readers can read it, else None.

    Our readers need stored chunks that each hold whole frames
    (``chunks[nav_dims:]`` equal to the frame shape) in this file: not a
    contiguous, virtual or external dataset. The pipeline is a list of
    ``(filter id, flags, values)``, one per filter, in order.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.hdf5 import open_file, write_hdf5
    >>> p = write_hdf5(os.path.join(tempfile.mkdtemp(), "a.h5"), np.ones((4, 6, 8, 8)),
    ...                chunks=(1, 6, 8, 8), compression="gzip")
    >>> [f[0] for f in filters_if_whole_frame_chunks(open_file(p)["data"], 2)]  # 1: gzip
    [1]
    """
    if dset.chunks is None or getattr(dset, "is_virtual", False) or dset.external is not None:
        return None
    if tuple(dset.chunks[nav_dims:]) != tuple(dset.shape[nav_dims:]):
        return None
    plist = dset.id.get_create_plist()
    return [tuple(plist.get_filter(i)[:3]) for i in range(plist.get_nfilters())]


#: the decision of :func:`cached_reader` (a reader, or None: h5py reads), per file version
_READERS = PerFileCache(size=16)


def cached_reader(path: str, ds_path: str, nav_dims: int, open_dataset) -> ChunkReader | None:
    """Our reader of a dataset, or None (h5py reads it), decided once per process and file.

    ``open_dataset()`` gives the h5py dataset when the decision is made:
    :func:`udfwidgets.io.unfiltered.unfiltered_reader`,
    :func:`udfwidgets.io.inflate.gzip_reader` or
    :func:`udfwidgets.io.bitshuffle.bitshuffle_reader`, whichever applies.

    The decision and the chunk table are kept until the file changes or
    :func:`release_tables`; a partition then costs one ``os.stat`` here, not
    a dataset lookup and filter inspection through h5py.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.hdf5 import open_file, write_hdf5
    >>> p = write_hdf5(os.path.join(tempfile.mkdtemp(), "a.h5"), np.ones((4, 6, 8, 8)),
    ...                chunks=(1, 6, 8, 8), compression="lzf")
    >>> cached_reader(p, "/data", 2, lambda: open_file(p)["data"]) is None
    True
    """
    key = (file_identity(path), ds_path, nav_dims)
    return _READERS.get(key, lambda: _choose_reader(path, ds_path, open_dataset(), nav_dims))


def _choose_reader(path: str, ds_path: str, dset, nav_dims: int) -> ChunkReader | None:
    from .bitshuffle import bitshuffle_reader
    from .inflate import gzip_reader
    from .unfiltered import unfiltered_reader

    for make in (unfiltered_reader, gzip_reader, bitshuffle_reader):
        reader = make(path, ds_path, dset, nav_dims)
        if reader is not None:
            return reader
    return None
