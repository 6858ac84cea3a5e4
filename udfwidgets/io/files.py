"""File-backed datasets read through memory maps: ``.npy`` and raw binary."""

from __future__ import annotations

import bisect
import dataclasses
import math
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
from numpy.typing import DTypeLike

from .dataset import DataSet, DataSetError, Partition, as_shape_tuple, check_sig_dims, existing_file
from .geometry import ScanGeometry, resolve
from .shape import Shape

__all__ = [
    "NpyDataSet",
    "RawDataSet",
    "release_maps",
    "RELEASE_HOOKS",
    "file_map",
    "Segment",
    "FrameFiles",
    "FramesDataSet",
    "GeometryPartition",
    "TruncatedFileWarning",
    "whole_frames",
]

#: Memory maps of whole files, kept per process (most recently used last).
_MAPS: OrderedDict[tuple, np.ndarray] = OrderedDict()
_MAX_MAPS = 16
#: Largest file whose map is kept. Worker processes keep every map (set by the
#: pool's initializer); the user's own process keeps maps of files up to 1 GiB,
#: so that a huge file read inline does not stay resident in its RSS.
KEEP_MAPS_UP_TO = 1 << 30

#: Functions called by :func:`release_maps` (other readers' caches: HDF5 and
#: zarr handles, ...). A reader module appends its ``release_*`` function here
#: when it is imported; each is called without arguments and returns how many
#: files or arrays it released (or None).
RELEASE_HOOKS: list[Callable[[], int | None]] = []


class TruncatedFileWarning(UserWarning):
    """A file ends inside a frame: that frame is not read (it counts as missing).

    Examples
    --------
    A file of 4-byte frames that ends 2 bytes into its third frame:

    >>> import os, tempfile, warnings
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "f.bin")
    ...     _ = open(path, "wb").write(bytes(10))
    ...     with warnings.catch_warnings(record=True) as caught:
    ...         warnings.simplefilter("always")
    ...         n = whole_frames(path, offset=0, stride=4)
    >>> n, caught[0].category.__name__
    (2, 'TruncatedFileWarning')
    >>> print(str(caught[0].message).split(": ", 1)[1])
    2 bytes of a 4-byte frame are there; it is not read. The file is truncated (an interrupted acquisition or copy).
    """


def release_maps() -> int:
    """Drop the file maps this process keeps between runs; returns how many.

    Mapped pages can be neither evicted with ``posix_fadvise`` nor given back
    to the disk when their file is deleted, until the map is gone. Arrays a
    caller still holds keep their own reference and stay valid. The functions
    in :data:`RELEASE_HOOKS` are called too (other readers' open files).

    Examples
    --------
    >>> release_maps() >= 0
    True
    """
    n = len(_MAPS)
    _MAPS.clear()
    for hook in list(RELEASE_HOOKS):
        n += hook() or 0
    return n


def _frames_view(
    path: str, dtype: np.dtype, offset: int, frames: int, sig: tuple[int, ...], stride: int | None
) -> np.ndarray:
    size = os.path.getsize(path)
    if stride is None and offset == 0 and size == frames * math.prod(sig) * dtype.itemsize:
        return np.memmap(path, dtype=dtype, mode="r", shape=(frames,) + sig).view(np.ndarray)
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    inner = [dtype.itemsize]
    for d in reversed(sig[1:]):
        inner.insert(0, inner[0] * d)
    frame_stride = stride if stride is not None else math.prod(sig) * dtype.itemsize
    return np.ndarray(
        shape=(frames,) + sig,
        dtype=dtype,
        buffer=raw,
        offset=offset,
        strides=(frame_stride,) + tuple(inner),
    )


@overload
def file_map(
    path: str,
    dtype: np.dtype,
    offset: int,
    frames: int,
    sig: tuple[int, ...],
    stride: int | None = None,
    *,
    keep: Literal[False],
) -> np.ndarray: ...
@overload
def file_map(
    path: str,
    dtype: np.dtype,
    offset: int,
    frames: int,
    sig: tuple[int, ...],
    stride: int | None = None,
    keep: bool | None = None,
) -> np.ndarray | None: ...
def file_map(
    path: str,
    dtype: np.dtype,
    offset: int,
    frames: int,
    sig: tuple[int, ...],
    stride: int | None = None,
    keep: bool | None = None,
) -> np.ndarray | None:
    """A read-only map of a file's frames as a plain ndarray, reused between runs.

    ``stride`` is the distance in bytes from one frame to the next (frame
    headers between frames: the view skips them without copying); by default
    the frames follow each other without gaps.

    Mapping afresh costs a page fault per 4 KiB page on first touch (60-70 ms
    per GiB on our machines, as much as summing the data); a kept map only
    costs address space, and its pages stay reclaimable page cache. The key
    includes the file's identity and modification time, so a rewritten file
    is mapped again. Returns None for files above :data:`KEEP_MAPS_UP_TO`
    (unless ``keep=False``: then a fresh map is returned and not kept).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "f.bin")
    >>> np.arange(12, dtype=np.uint8).tofile(path)   # 3 frames: 2 header bytes + 2 data bytes
    >>> file_map(path, np.dtype(np.uint8), 2, 3, (2,), stride=4).tolist()
    [[2, 3], [6, 7], [10, 11]]
    """
    dtype = np.dtype(dtype)
    st = os.stat(path)
    if keep is False:
        return _frames_view(path, dtype, offset, frames, sig, stride)
    if st.st_size > KEEP_MAPS_UP_TO:
        return None
    key = (path, st.st_ino, st.st_size, st.st_mtime_ns, dtype.str, offset, frames, sig, stride)
    arr = _MAPS.get(key)
    if arr is None:
        arr = _frames_view(path, dtype, offset, frames, sig, stride)
        _MAPS[key] = arr
        while len(_MAPS) > _MAX_MAPS:
            _MAPS.popitem(last=False)
    else:
        _MAPS.move_to_end(key)
    return arr


@dataclass(frozen=True)
class Segment:
    """``frames`` frames of one file: the first at byte ``offset``, ``stride`` bytes apart.

    Examples
    --------
    >>> Segment("a.mib", offset=384, frames=10, stride=384 + 2 * 256 * 256)
    Segment(path='a.mib', offset=384, frames=10, stride=131456)
    """

    path: str
    offset: int
    frames: int
    stride: int | None = None


class FrameFiles:
    """Frames stored in one or more files (header-and-frames layouts), read as strided views.

    ``stored_dtype``/``stored_shape`` describe one frame as it is on disk (for
    bit-packed data: bytes); :meth:`read` and :meth:`take` return stored
    frames, a view of the memory map when the range lies in one file. It
    pickles as its description only; each process maps the files itself.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "f.bin")
    >>> np.arange(12, dtype=np.uint8).tofile(path)
    >>> ff = FrameFiles([Segment(path, 2, 3, 4)], np.uint8, (2,))
    >>> ff.read(1, 3).tolist(), ff.take(np.array([0, 2])).tolist()
    ([[6, 7], [10, 11]], [[2, 3], [10, 11]])
    """

    def __init__(
        self, segments: Iterable[Segment], stored_dtype: DTypeLike, stored_shape: Sequence[int]
    ) -> None:
        self.segments = tuple(segments)
        self.stored_dtype = np.dtype(stored_dtype)
        self.stored_shape = tuple(int(d) for d in stored_shape)
        self.starts = np.cumsum([0] + [s.frames for s in self.segments]).tolist()
        self.num_frames = self.starts[-1]
        self._maps: dict[int, np.ndarray] = {}

    def with_paths(self, map_path: Callable[[str], str]) -> FrameFiles:
        """The same frames, read from ``map_path(segment.path)`` for every segment.

        Examples
        --------
        >>> ff = FrameFiles([Segment("/a/x.mib", 0, 3, 8)], np.uint8, (2,))
        >>> ff.with_paths(lambda p: p.replace("/a", "/b")).segments[0].path
        '/b/x.mib'
        """
        return FrameFiles(
            [dataclasses.replace(s, path=map_path(s.path)) for s in self.segments],
            self.stored_dtype,
            self.stored_shape,
        )

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state

    def _map(self, i: int) -> np.ndarray:
        mm = self._maps.get(i)
        if mm is None:
            s = self.segments[i]
            mm = file_map(
                s.path, self.stored_dtype, s.offset, s.frames, self.stored_shape, s.stride
            )
            if mm is None:
                mm = file_map(
                    s.path,
                    self.stored_dtype,
                    s.offset,
                    s.frames,
                    self.stored_shape,
                    s.stride,
                    keep=False,
                )
            self._maps[i] = mm
        return mm

    def close(self) -> None:
        """Forget this object's maps (the per-process cache keeps small files mapped)."""
        self._maps = {}

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Stored frames ``[lo, hi)``; a view when they lie in one file."""
        i = bisect.bisect_right(self.starts, lo) - 1
        if hi <= self.starts[i + 1]:
            a = lo - self.starts[i]
            return self._map(i)[a : a + (hi - lo)]
        pieces = []
        while lo < hi:
            a, b = lo - self.starts[i], min(hi, self.starts[i + 1]) - self.starts[i]
            pieces.append(self._map(i)[a:b])
            lo = self.starts[i] + b
            i += 1
        return np.concatenate(pieces)

    def take(self, idx: np.ndarray) -> np.ndarray:
        """Stored frames at ascending indices ``idx``.

        Runs of consecutive indices (a rectangular roi, or all frames but a
        few) are copied as slices of the map, and one unbroken run is returned
        as :meth:`read` returns it (a view within one file); scattered
        indices are gathered file by file.

        Examples
        --------
        >>> import os, tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     paths = [os.path.join(tmp, f"{i}.bin") for i in range(2)]
        ...     for i, p in enumerate(paths):
        ...         np.arange(3 * i, 3 * i + 3, dtype=np.uint8).repeat(2).tofile(p)
        ...     ff = FrameFiles([Segment(p, 0, 3) for p in paths], np.uint8, (2,))
        ...     ff.take(np.array([0, 1, 2, 4]))[:, 0].tolist(), ff.take(np.array([3, 4]))[:, 0].tolist()
        ([0, 1, 2, 4], [3, 4])
        """
        idx = np.asarray(idx, dtype=np.int64)
        n = len(idx)
        if n and int(idx[-1] - idx[0]) == n - 1:  # one unbroken run
            return self.read(int(idx[0]), int(idx[-1]) + 1)
        breaks = np.flatnonzero(np.diff(idx) != 1) + 1
        out = np.empty((n,) + self.stored_shape, dtype=self.stored_dtype)
        if len(breaks) < n // 8:  # runs of eight frames or more on average: copy slices
            for a, b in zip([0, *breaks.tolist()], [*breaks.tolist(), n]):
                out[a:b] = self.read(int(idx[a]), int(idx[b - 1]) + 1)
            return out
        bounds = np.searchsorted(idx, self.starts)  # idx[bounds[i]:bounds[i+1]] in file i
        for i in range(len(self.segments)):
            a, b = int(bounds[i]), int(bounds[i + 1])
            if b > a:
                mm = self._map(i)
                if mm.flags.c_contiguous:
                    np.take(mm, idx[a:b] - self.starts[i], axis=0, out=out[a:b], mode="clip")
                else:  # np.take would first copy the whole strided map (frames between headers)
                    out[a:b] = mm[idx[a:b] - self.starts[i]]
        return out


class GeometryPartition(Partition):
    """Frames of a :class:`FrameFiles` through a :class:`~udfwidgets.io.geometry.ScanGeometry`.

    ``decode(stored) -> frames`` turns stored frames into the dataset's
    frames (byte order, unpacking, chip assembly), one tile at a time; it must
    be a picklable function. Without it the stored frames (views of the map)
    are returned as they are.

    Examples
    --------
    The partitions of a ``.npy`` file; ``read`` takes dataset frame indices:

    >>> import os, tempfile, numpy as np
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "scan.npy")
    ...     np.save(path, np.arange(6 * 4, dtype=np.uint16).reshape(2, 3, 2, 2))
    ...     parts = NpyDataSet(path, num_partitions=2).get_partitions()
    ...     parts, parts[1].read(3, 5)[:, 0, 0].tolist()
    ([<GeometryPartition 0: frames 0:3>, <GeometryPartition 1: frames 3:6>], [12, 16])
    """

    def __init__(
        self,
        shape,
        dtype,
        start,
        stop,
        index,
        *,
        files: FrameFiles,
        geometry: ScanGeometry,
        decode: Callable | None = None,
    ):
        super().__init__(shape, dtype, start, stop, index)
        self.files = files
        self.geometry = geometry
        self.decode = decode

    def with_paths(self, map_path):
        part = super().with_paths(map_path)
        part.files = self.files.with_paths(map_path)
        return part

    def _read_file(self, lo, hi):
        out = self.files.read(lo, hi)
        return out if self.decode is None else self.decode(out)

    def _take_file(self, idx):
        out = self.files.take(idx)
        return out if self.decode is None else self.decode(out)

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.geometry.read(self._read_file, start, stop, tuple(self.shape.sig), self.dtype)

    def take(self, indices: np.ndarray) -> np.ndarray:
        return self.geometry.take(self._take_file, indices, tuple(self.shape.sig), self.dtype)

    @property
    def stored_order_only(self) -> bool:
        """True when decoding only swaps the byte order (big-endian MIB, DM, MRC, raw).

        Then :meth:`read_stored` / :meth:`take_stored` give the frames in the
        file's byte order (a view of the map), and the worker swaps them while
        it converts each tile to the UDFs' dtype: one pass over the data
        instead of two (see ``udfwidgets.executor.task``).
        """
        return isinstance(self.decode, _NativeOrder)

    def read_stored(self, start: int, stop: int) -> np.ndarray:
        """Like :meth:`read`, in the file's byte order (no decoding).

        Examples
        --------
        >>> import os, tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = os.path.join(tmp, "scan.raw")
        ...     np.arange(8, dtype=">u2").tofile(path)
        ...     part = RawDataSet(path, nav_shape=(4,), sig_shape=(2,), dtype=">u2").get_partitions()[0]
        ...     stored = part.read_stored(1, 3)
        ...     part.stored_order_only, stored.dtype.str, stored.tolist() == part.read(1, 3).tolist()
        (True, '>u2', True)
        """
        sig = tuple(self.shape.sig)
        return self.geometry.read(self.files.read, start, stop, sig, self.files.stored_dtype)

    def take_stored(self, indices: np.ndarray) -> np.ndarray:
        """Like :meth:`take`, in the file's byte order (no decoding)."""
        sig = tuple(self.shape.sig)
        return self.geometry.take(self.files.take, indices, sig, self.files.stored_dtype)

    def close(self) -> None:
        self.files.close()


class FramesDataSet(DataSet):
    """Base of datasets read through :class:`FrameFiles` and a :class:`ScanGeometry`.

    Subclasses set ``shape``, ``dtype``, ``files``, ``geometry`` and optionally
    ``decode`` (see :class:`GeometryPartition`).

    Examples
    --------
    A reader for a file of 2x2 ``uint16`` frames, each after an 8-byte header:

    >>> import os, tempfile, numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.io.geometry import resolve
    >>> from udfwidgets.io.shape import Shape
    >>> from udfwidgets.udf.sum import SumUDF
    >>> class HeaderedDataSet(FramesDataSet):
    ...     kind = "headered"
    ...     def __init__(self, path, nav_shape=None):
    ...         super().__init__()
    ...         self.path, self.dtype = path, np.dtype(np.uint16)
    ...         n = os.path.getsize(path) // 16  # 8 header bytes + 8 frame bytes
    ...         self.files = FrameFiles([Segment(path, 8, n, stride=16)], self.dtype, (2, 2))
    ...         self.geometry = resolve(n, nav_shape)
    ...         self.shape = Shape(self.geometry.nav_shape + (2, 2), sig_dims=2)
    >>> rec = np.zeros(6, dtype=[("header", "u1", 8), ("frame", "<u2", (2, 2))])
    >>> rec["header"], rec["frame"] = 255, np.arange(6).reshape(6, 1, 1)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "scan.bin")
    ...     rec.tofile(path)
    ...     ds = HeaderedDataSet(path, nav_shape=(2, 3))
    ...     res = Context(executor="inline").run_udf(dataset=ds, udf=SumUDF())
    >>> ds.shape, res["intensity"].data  # 0 + 1 + ... + 5 in every pixel
    (Shape((2, 3, 2, 2), sig_dims=2), array([[15., 15.],
           [15., 15.]], dtype=float32))
    """

    files: FrameFiles
    geometry: ScanGeometry
    decode: Callable | None = None

    def _make_partition(self, start, stop, index):
        return GeometryPartition(
            self.shape,
            self.dtype,
            start,
            stop,
            index,
            files=self.files,
            geometry=self.geometry,
            decode=self.decode,
        )

    def _repr_items(self) -> dict:
        items = {}
        if len(self.files.segments) > 1:
            items["files"] = len(self.files.segments)
        if self.geometry.sync_offset:
            items["sync_offset"] = self.geometry.sync_offset
        if self.geometry.file_frames != self.geometry.num_frames:
            items["file_frames"] = self.geometry.file_frames
        return items


def whole_frames(path: str, offset: int, stride: int, frame_bytes: int | None = None) -> int:
    """How many whole frames a file holds after ``offset``; warns about a truncated last one.

    ``stride`` is the distance between frames (header plus data); the last
    frame needs only ``frame_bytes`` (its data, without a following header).

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "f.bin")
    >>> _ = open(path, "wb").write(bytes(10))
    >>> whole_frames(path, 0, 4)
    2
    """
    frame_bytes = stride if frame_bytes is None else frame_bytes
    size = os.path.getsize(path) - offset
    if size < frame_bytes:
        raise DataSetError(
            f"{path!r} has {max(size, 0)} bytes of frame data, less than one frame "
            f"({frame_bytes} bytes): the file is truncated or not of this format"
        )
    n = (size - frame_bytes) // stride + 1
    rest = size - ((n - 1) * stride + frame_bytes)
    if rest and rest != stride - frame_bytes:
        # a frame started but did not finish (a gap after the last frame is its next header)
        warnings.warn(
            f"{path!r} ends inside frame {n} (file frame index, 0-based): {rest} bytes of a "
            f"{stride}-byte frame are there; it is not read. The file is truncated (an "
            "interrupted acquisition or copy).",
            TruncatedFileWarning,
            stacklevel=3,
        )
    return int(n)


def sniff(path: str) -> bool:
    """True for a ``.npy`` file (the ``\\x93NUMPY`` magic); raw files cannot be recognised.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "a.npy")
    >>> np.save(path, np.zeros(3))
    >>> sniff(path)
    True
    """
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        return f.read(6) == b"\x93NUMPY"


def check_kwargs(kind: str, kwargs: dict, allowed=()) -> None:
    """Refuse parameters a kind does not take, naming the ones it does."""
    unknown = set(kwargs) - set(allowed)
    if unknown:
        raise DataSetError(
            f"unknown parameter(s) {', '.join(sorted(unknown))} for ctx.load({kind!r}, ...)"
        )


class NpyDataSet(FramesDataSet):
    """A ``.npy`` file, memory-mapped, never loaded whole.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npy`` file (C order).
    sig_dims : int
        Number of trailing signal dimensions, 1 or 2.
    nav_shape : tuple of int, optional
        Scan shape; by default the array's own navigation shape. The frames
        are taken in the file's flat order (see :mod:`udfwidgets.io.geometry`).
    sync_offset : int
        Navigation frame ``i`` is file frame ``i + sync_offset``.
    num_partitions : int, optional
        Override the default number of partitions.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from udfwidgets.io.files import NpyDataSet
    >>> path = os.path.join(tempfile.mkdtemp(), "scan.npy")
    >>> np.save(path, np.ones((2, 3, 4, 4), dtype=np.float32))
    >>> NpyDataSet(path).shape
    Shape((2, 3, 4, 4), sig_dims=2)
    >>> NpyDataSet(path, nav_shape=(5,), sync_offset=1).shape
    Shape((5, 4, 4), sig_dims=2)
    """

    kind = "npy"

    def __init__(
        self,
        path,
        sig_dims: int = 2,
        nav_shape=None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
    ):
        super().__init__(num_partitions)
        self.path = existing_file(path)
        try:
            arr = np.load(self.path, mmap_mode="r")
        except Exception as e:
            raise DataSetError(f"{self.path!r} is not a readable .npy file: {e}") from e
        if not isinstance(arr, np.memmap):
            raise DataSetError(
                f"{self.path!r} cannot be memory-mapped (object arrays are not supported)"
            )
        if arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous:
            raise DataSetError(
                f"{self.path!r} is stored in Fortran order; save it in C order "
                "(np.save(path, np.ascontiguousarray(a)))"
            )
        if arr.dtype.kind not in "biufc":
            raise DataSetError(
                f"{self.path!r} holds dtype {arr.dtype}, not numbers: detector "
                "data must be bool, integer, float or complex"
            )
        check_sig_dims(arr.ndim, sig_dims)
        file_shape = Shape(arr.shape, sig_dims=sig_dims)
        self.dtype = arr.dtype
        self.offset = int(arr.offset)
        sig = tuple(file_shape.sig)
        self.geometry = resolve(
            file_shape.nav.size, nav_shape, sync_offset, tuple(file_shape.nav), what=repr(self.path)
        )
        self.shape = Shape(self.geometry.nav_shape + sig, sig_dims=sig_dims)
        self.files = FrameFiles(
            [Segment(self.path, self.offset, file_shape.nav.size)], self.dtype, sig
        )
        del arr


class RawDataSet(FramesDataSet):
    """A headerless binary file of frames in C order.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    nav_shape : tuple of int, optional
        Scan dimensions (1 to 3); by default ``(frames in the file,)``. When
        the file holds more frames than the scan needs, the extra ones are
        skipped; when it holds fewer, the missing ones read as zeros with a
        :class:`~udfwidgets.io.geometry.MissingFramesWarning`.
    sig_shape : tuple of int
        Frame dimensions (1 or 2).
    dtype : numpy dtype
        The stored dtype, e.g. ``"float32"`` or ``">u2"`` (big-endian data are
        converted to native byte order one tile at a time).
    sync_offset : int
        Navigation frame ``i`` is file frame ``i + sync_offset``; frames that
        fall outside the file read as zeros. Must be smaller than the number of
        frames in magnitude.
    num_partitions : int, optional
        Override the default number of partitions.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from udfwidgets.io.files import RawDataSet
    >>> path = os.path.join(tempfile.mkdtemp(), "scan.raw")
    >>> np.ones((2, 3, 4, 4), dtype=np.uint16).tofile(path)
    >>> tuple(RawDataSet(path, nav_shape=(2, 3), sig_shape=(4, 4), dtype="uint16").shape.nav)
    (2, 3)
    """

    kind = "raw"

    def __init__(
        self,
        path,
        nav_shape=None,
        sig_shape=None,
        dtype=None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
    ):
        super().__init__(num_partitions)
        self.path = existing_file(path)
        if sig_shape is None or dtype is None:
            raise DataSetError(
                f"a raw file has no header: give sig_shape= and dtype= for "
                f"{self.path!r} (and nav_shape= for the scan shape)"
            )
        sig_shape = as_shape_tuple(sig_shape, "sig_shape")
        if nav_shape is not None:
            nav_shape = as_shape_tuple(nav_shape, "nav_shape")
            check_sig_dims(len(nav_shape) + len(sig_shape), len(sig_shape))
        elif len(sig_shape) not in (1, 2):
            check_sig_dims(1 + len(sig_shape), len(sig_shape))
        try:
            stored = np.dtype(dtype)
        except TypeError as e:
            raise DataSetError(f"dtype={dtype!r} is not a NumPy dtype") from e
        if stored.hasobject:
            raise DataSetError("raw files cannot hold dtype object")
        if stored.kind not in "biufc":
            raise DataSetError(
                f"dtype={dtype!r} is not a numeric dtype: raw detector data must be "
                "bool, integer, float or complex (e.g. dtype='uint16')"
            )
        self.dtype = stored.newbyteorder("=") if stored.byteorder not in ("=", "|") else stored
        if self.dtype != stored:
            self.decode = _NativeOrder(self.dtype)
        self.offset = 0
        frame_bytes = math.prod(sig_shape) * stored.itemsize
        size = os.path.getsize(self.path)
        if size % frame_bytes:
            raise DataSetError(
                f"{self.path!r} has {size} bytes, not a whole number of frames of "
                f"sig_shape={sig_shape} x dtype={stored} ({frame_bytes} bytes each; "
                f"{size // frame_bytes} whole frames and {size % frame_bytes} bytes more). "
                "Check sig_shape and dtype."
            )
        file_frames = size // frame_bytes
        self.geometry = resolve(file_frames, nav_shape, sync_offset, what=repr(self.path))
        self.shape = Shape(self.geometry.nav_shape + sig_shape, sig_dims=len(sig_shape))
        self.files = FrameFiles([Segment(self.path, 0, file_frames)], stored, sig_shape)


class _NativeOrder:
    """Decode stored frames to ``dtype`` (native byte order), one tile at a time."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def __call__(self, stored: np.ndarray) -> np.ndarray:
        # into this thread's reused partition buffer: a fresh array of a partition's size
        # is page-faulted and zeroed by the kernel every time (see chunked.reusable_buffer)
        from .chunked import reusable_buffer

        out = reusable_buffer(stored.shape, self.dtype)
        np.copyto(out, stored)
        return out
