"""Chunk-aligned reading shared by the chunked formats (HDF5, DECTRIS, zarr, dask).

A chunked array stores its frames in chunks that span ``nav_chunks`` along
the navigation axes of the file. Reading a chunk means decompressing all of
it, so partitions follow the chunk grid: a partition is a whole number of
*chunk rows* (``nav_chunks[0]`` rows of the first navigation axis with every
other navigation axis whole), and each chunk is decompressed by exactly one
partition. When the chunks span the whole first navigation axis no flat range
of frames is made of whole chunks (every partition touches every chunk), and
the partitions are made as large as :data:`MAX_PARTITION_BYTES` allows to keep
the repeated work small.

Everything here is pure NumPy on shapes and indices; the formats supply a
``read_block(slices, out)`` that fills ``out`` (shape ``block nav + sig``)
with ``array[slices]``.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Sequence

import numpy as np

from . import files as _files
from .dataset import default_num_partitions

__all__ = [
    "MAX_PARTITION_BYTES",
    "aligned_bounds",
    "chunk_row_frames",
    "flat_pieces",
    "read_flat",
    "release_buffers",
    "reusable_buffer",
    "split_evenly",
    "take_by_chunk",
]

#: Largest partition made to stay chunk-aligned; chunk rows above it are split
#: (their chunks are then decompressed by more than one partition).
MAX_PARTITION_BYTES = 512 << 20


def chunk_row_frames(nav_shape: Sequence[int], nav_chunks: Sequence[int] | None) -> int | None:
    """Frames (flat navigation order) in one chunk row, or None if chunks span the first axis.

    Examples
    --------
    >>> chunk_row_frames((64, 64), (4, 8))
    256
    >>> chunk_row_frames((64, 64), None)  # unchunked: every frame is its own unit
    1
    >>> chunk_row_frames((64, 64), (64, 1)) is None
    True
    """
    if nav_chunks is None:
        return 1
    if nav_chunks[0] >= nav_shape[0]:
        return None
    return int(nav_chunks[0]) * math.prod(nav_shape[1:])


def split_evenly(edges: list[int], n: int) -> list[int]:
    """Edges of ``n`` pieces of about equal size: groups of the blocks between ``edges``.

    With fewer blocks than ``n``, blocks are cut.

    Examples
    --------
    >>> split_evenly([0, 4, 8, 12, 16], 2)
    [0, 8, 16]
    >>> split_evenly([0, 10], 2)
    [0, 5, 10]
    """
    m = len(edges) - 1
    if n <= m:
        # the block edges nearest to n + 1 evenly spaced frame positions
        e = np.asarray(edges, dtype=np.int64)
        ideal = np.linspace(e[0], e[-1], n + 1)
        right = np.clip(np.searchsorted(e, ideal), 1, m)
        nearest = np.where(ideal - e[right - 1] <= e[right] - ideal, right - 1, right)
        nearest[0], nearest[-1] = 0, m
        chosen = set(int(i) for i in nearest)
        while len(chosen) < n + 1:  # two ideals hit the same edge: split the largest piece
            cut = sorted(chosen)
            a, b = max(
                ((a, b) for a, b in zip(cut[:-1], cut[1:]) if b - a > 1),
                key=lambda ab: e[ab[1]] - e[ab[0]],
            )
            mid = (e[a] + e[b]) / 2
            chosen.add(min(range(a + 1, b), key=lambda i: abs(e[i] - mid)))
        return [int(e[i]) for i in sorted(chosen)]
    per = math.ceil(n / m)
    out = [edges[0]]
    for a, b in zip(edges[:-1], edges[1:]):
        k = max(1, min(per, b - a))
        out.extend(int(x) for x in np.linspace(a, b, k + 1).round().astype(np.int64)[1:])
    return out


def aligned_bounds(
    num_frames: int,
    file_frames: int,
    sync_offset: int,
    row_frames: int | None,
    frame_bytes: int,
    num_workers: int,
    num_partitions: int | None = None,
    rereads_cost: bool = True,
    max_bytes: int = MAX_PARTITION_BYTES,
) -> list[tuple[int, int]]:
    """Partition ``(start, stop)`` ranges of navigation frames that follow the chunk grid.

    Navigation frame ``i`` is file frame ``i + sync_offset``; partition edges
    fall on file frames that are multiples of ``row_frames``. The default
    count is :func:`~udfwidgets.io.dataset.default_num_partitions` (about
    ``TARGET_PARTITION_BYTES`` each), at most one per chunk row. Chunk rows larger
    than ``max_bytes`` are split. With ``row_frames=None`` (chunks span the
    first navigation axis) and ``rereads_cost`` (compressed chunks), there are
    as few partitions as ``max_bytes`` and the worker count allow.

    Examples
    --------
    >>> aligned_bounds(64, 64, 0, 16, 1 << 20, num_workers=2)
    [(0, 16), (16, 32), (32, 48), (48, 64)]
    >>> aligned_bounds(10, 12, 3, 4, 1, num_workers=1, num_partitions=3)
    [(0, 1), (1, 5), (5, 10)]
    """
    n_frames = int(num_frames)
    nbytes = n_frames * frame_bytes
    if row_frames is None:
        if num_partitions is None:
            if rereads_cost:
                n = max(1, num_workers, math.ceil(nbytes / max_bytes))
            else:
                n = default_num_partitions(nbytes, n_frames, num_workers)
        else:
            n = num_partitions
        n = max(1, min(n, n_frames))
        edges = np.linspace(0, n_frames, n + 1).round().astype(np.int64)
        return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]

    row = int(row_frames)
    # file-frame multiples of ``row`` strictly inside the navigation range
    first = (sync_offset // row + 1) * row
    last = sync_offset + n_frames
    inner = np.arange(first, last, row, dtype=np.int64) - sync_offset
    inner = inner[(inner > 0) & (inner < n_frames)]
    edges = np.concatenate([[0], inner, [n_frames]]).tolist()
    row_bytes = row * frame_bytes
    if row_bytes > max_bytes:
        # each chunk row on its own is too big: split rows into pieces of at most max_bytes
        per_row = math.ceil(row_bytes / max_bytes)
        edges = split_evenly(edges, (len(edges) - 1) * per_row)
    if num_partitions is None:
        # about TARGET_PARTITION_BYTES each, at least two per worker, whole chunk rows
        n = min(default_num_partitions(nbytes, n_frames, num_workers), len(edges) - 1)
    else:
        n = num_partitions
    n = max(1, min(n, n_frames))
    out = split_evenly(edges, n)
    return [(int(a), int(b)) for a, b in zip(out[:-1], out[1:]) if b > a]


def flat_pieces(
    lo: int, hi: int, nav_shape: Sequence[int]
) -> list[tuple[tuple[slice, ...], tuple[int, ...]]]:
    """Hyperslabs (slices, block shape) that make up flat frames ``[lo, hi)`` in C order.

    At most ``2 * len(nav_shape) - 1`` pieces; one when the range is made of
    whole rows.

    Examples
    --------
    >>> flat_pieces(0, 8, (2, 4))
    [((slice(0, 2, None), slice(0, 4, None)), (2, 4))]
    >>> [shape for _, shape in flat_pieces(3, 10, (3, 4))]
    [(1, 1), (1, 4), (1, 2)]
    """
    if hi <= lo:
        return []
    nav_shape = tuple(int(n) for n in nav_shape)
    if len(nav_shape) == 1:
        return [((slice(lo, hi),), (hi - lo,))]
    inner = math.prod(nav_shape[1:])
    a, ra = divmod(lo, inner)
    b, rb = divmod(hi, inner)
    rest = nav_shape[1:]

    def prefix(i, pieces):
        return [((slice(i, i + 1),) + s, (1,) + sh) for s, sh in pieces]

    if a == b:
        return prefix(a, flat_pieces(ra, rb, rest))
    out = []
    if ra:
        out += prefix(a, flat_pieces(ra, inner, rest))
        a += 1
    if b > a:
        out.append(((slice(a, b),) + tuple(slice(0, n) for n in rest), (b - a,) + rest))
    if rb:
        out += prefix(b, flat_pieces(0, rb, rest))
    return out


ReadBlock = Callable[[tuple, np.ndarray], None]

#: One partition buffer per thread (thread id -> 1-D uint8 array), reused by the next read.
_BUFFERS: dict[int, np.ndarray] = {}
_BUFFERS_LOCK = threading.Lock()


def reusable_buffer(shape: Sequence[int], dtype) -> np.ndarray:
    """An uninitialised array of ``shape``, reusing this thread's last one when nothing holds it.

    A partition read of a chunked file decompresses into a fresh array of the
    partition's size (about 128 MiB). Fresh arrays that large come straight
    from the kernel (``mmap``), so every page of them is faulted in and zeroed
    again, partition after partition: that cost the read of bitshuffle-LZ4
    chunks about a third of its time (see benchmarks/results-formats.md). This
    keeps the last buffer of each thread and hands it out again once no array
    refers to it any more (every NumPy view of it holds a reference to it, so
    a tile or partition a UDF kept is never overwritten). :func:`release_buffers`
    (called by ``Context.release_files()``) drops them.

    Examples
    --------
    >>> import numpy as np
    >>> a = reusable_buffer((4, 8), np.uint16)
    >>> a.shape, a.dtype
    ((4, 8), dtype('uint16'))
    >>> b = reusable_buffer((4, 8), np.uint16)  # ``a`` is still held: another buffer
    >>> np.shares_memory(a, b)
    False
    >>> address = b.ctypes.data
    >>> del a, b  # nothing refers to ``b``'s buffer now: the next read reuses it
    >>> reusable_buffer((2, 8), np.uint16).ctypes.data == address
    True
    """
    shape = tuple(int(n) for n in shape)
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    key = threading.get_ident()
    with _BUFFERS_LOCK:
        held = _BUFFERS.get(key)
    # references: the dict, ``held`` and getrefcount's argument; any view of it adds one
    if held is not None and held.nbytes >= nbytes and sys.getrefcount(held) <= 3:
        buf = held
    else:
        buf = np.empty(max(nbytes, 1), dtype=np.uint8)
        with _BUFFERS_LOCK:
            alive = {t.ident for t in threading.enumerate()}
            for k in [k for k in _BUFFERS if k not in alive]:
                del _BUFFERS[k]  # threads that ended
            _BUFFERS[key] = buf
    del held
    return buf[:nbytes].view(dtype).reshape(shape)


def release_buffers() -> int:
    """Drop the partition buffers kept by :func:`reusable_buffer`; returns how many.

    Examples
    --------
    >>> release_buffers() >= 0
    True
    """
    with _BUFFERS_LOCK:
        n = len(_BUFFERS)
        _BUFFERS.clear()
    return n


_files.RELEASE_HOOKS.append(release_buffers)


def read_flat(
    read_block: ReadBlock,
    lo: int,
    hi: int,
    nav_shape: Sequence[int],
    sig: Sequence[int],
    dtype,
    reuse: bool = False,
) -> np.ndarray:
    """File frames ``[lo, hi)`` as ``(hi - lo, *sig)``, one ``read_block`` per hyperslab.

    With ``reuse``, the result is a :func:`reusable_buffer` (for partition reads).

    Examples
    --------
    >>> import numpy as np
    >>> a = np.arange(3 * 4 * 2).reshape(3, 4, 2)
    >>> def rb(slices, out):
    ...     out[...] = a[slices]
    >>> read_flat(rb, 3, 6, (3, 4), (2,), a.dtype)[:, 0].tolist()
    [6, 8, 10]
    """
    sig = tuple(sig)
    shape = (hi - lo,) + sig
    out = reusable_buffer(shape, dtype) if reuse else np.empty(shape, dtype=dtype)
    off = 0
    for slices, shape in flat_pieces(lo, hi, nav_shape):
        n = math.prod(shape)
        read_block(slices, out[off : off + n].reshape(shape + sig))
        off += n
    return out


def take_by_chunk(
    read_block: ReadBlock,
    file_idx: np.ndarray,
    nav_shape: Sequence[int],
    nav_chunks: Sequence[int] | None,
    sig: Sequence[int],
    dtype,
    max_block_bytes: int = 32 << 20,
) -> np.ndarray:
    """File frames at ascending ``file_idx``, reading each chunk that holds some once.

    Frames are grouped by the chunk (along nav) that holds them; per group the
    bounding box of its frames is read in one ``read_block`` call. With one
    navigation axis, neighbouring chunks are merged into one read of up to
    ``max_block_bytes``.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.arange(4 * 6).reshape(4, 6, 1)
    >>> calls = []
    >>> def rb(slices, out):
    ...     calls.append(slices)
    ...     out[...] = a[slices]
    >>> take_by_chunk(rb, np.array([1, 2, 20]), (4, 6), (2, 3), (1,), a.dtype).ravel().tolist()
    [1, 2, 20]
    >>> len(calls)
    2
    """
    sig = tuple(sig)
    nav_shape = tuple(int(n) for n in nav_shape)
    file_idx = np.asarray(file_idx, dtype=np.int64)
    out = np.empty((len(file_idx),) + sig, dtype=dtype)
    if not len(file_idx):
        return out
    chunks = tuple(nav_chunks) if nav_chunks is not None else (1,) + nav_shape[1:]
    frame_bytes = max(1, math.prod(sig) * np.dtype(dtype).itemsize)
    if len(nav_shape) == 1:
        c = int(chunks[0])
        cid = file_idx // c
        # start a new block where chunk ids jump or the block would grow too big
        max_frames = max(c, (max_block_bytes // frame_bytes) // c * c)
        starts = [0]
        jumps = np.flatnonzero(np.diff(cid) > 1) + 1
        for j in list(jumps) + [len(file_idx)]:
            s = starts[-1]
            # cut long runs of neighbouring chunks into blocks of at most max_frames
            while file_idx[j - 1] - file_idx[s] + 1 > max_frames:
                lim = (file_idx[s] // c) * c + max_frames
                s = int(np.searchsorted(file_idx, lim))
                starts.append(s)
            if j < len(file_idx):
                starts.append(int(j))
        bounds = list(zip(starts, starts[1:] + [len(file_idx)]))
        for s, e in bounds:
            a, b = int(file_idx[s]), int(file_idx[e - 1]) + 1
            block = np.empty((b - a,) + sig, dtype=dtype)
            read_block((slice(a, b),), block)
            out[s:e] = block[file_idx[s:e] - a]
        return out
    coords = np.unravel_index(file_idx, nav_shape)
    grid = tuple(math.ceil(n / int(k)) for n, k in zip(nav_shape, chunks))
    cid = np.ravel_multi_index(tuple(x // int(k) for x, k in zip(coords, chunks)), grid)
    order = np.argsort(cid, kind="stable")
    sorted_cid = cid[order]
    cuts = np.flatnonzero(np.diff(sorted_cid)) + 1
    for pos in np.split(order, cuts):
        lo = tuple(int(x[pos].min()) for x in coords)
        hi = tuple(int(x[pos].max()) + 1 for x in coords)
        block = np.empty(tuple(h - lo_ for lo_, h in zip(lo, hi)) + sig, dtype=dtype)
        read_block(tuple(slice(a, b) for a, b in zip(lo, hi)), block)
        local = tuple(x[pos] - a for x, a in zip(coords, lo))
        out[pos] = block[local]
    return out


def dataset_repr(ds, items: dict | None = None) -> str:
    """The standard one-line repr of a dataset (kind, path, nav, sig, dtype, size, extras).

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets.io.memory import MemoryDataSet
    >>> ds = MemoryDataSet(np.zeros((2, 3, 4, 4), dtype=np.uint16))
    >>> dataset_repr(ds, {"chunks": (1, 3, 4, 4)})
    "<MemoryDataSet kind='memory' nav=(2, 3) sig=(4, 4) dtype=uint16 size=0.0 MiB chunks=(1, 3, 4, 4)>"
    """
    parts = [f"kind={getattr(ds, 'kind', 'memory')!r}"]
    path = getattr(ds, "path", None)
    if path is not None:
        parts.append(f"path={str(path)!r}")
    parts += [
        f"nav={tuple(ds.shape.nav)}",
        f"sig={tuple(ds.shape.sig)}",
        f"dtype={ds.dtype}",
        f"size={ds.nbytes / 2**20:.1f} MiB",
    ]
    for key, value in (items or {}).items():
        parts.append(f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}")
    return f"<{type(ds).__name__} " + " ".join(parts) + ">"
