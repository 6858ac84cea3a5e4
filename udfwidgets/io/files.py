"""File-backed datasets read through memory maps: ``.npy`` and raw binary."""
from __future__ import annotations

import math
import os
from collections import OrderedDict

import numpy as np

from .dataset import (DataSet, DataSetError, Partition, as_shape_tuple, check_sig_dims,
                      existing_file)
from .shape import Shape

__all__ = ["NpyDataSet", "RawDataSet", "release_maps"]

#: Memory maps of whole files, kept per process (most recently used last).
_MAPS: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
_MAX_MAPS = 16
#: Largest file whose map is kept. Worker processes keep every map (set by the
#: pool's initializer); the user's own process keeps maps of files up to 1 GiB,
#: so that a huge file read inline does not stay resident in its RSS.
KEEP_MAPS_UP_TO = 1 << 30


def release_maps() -> int:
    """Drop the file maps this process keeps between runs; returns how many.

    Mapped pages can be neither evicted with ``posix_fadvise`` nor given back
    to the disk when their file is deleted, until the map is gone. Arrays a
    caller still holds keep their own reference and stay valid.

    Examples
    --------
    >>> release_maps() >= 0
    True
    """
    n = len(_MAPS)
    _MAPS.clear()
    return n


def file_map(path: str, dtype: np.dtype, offset: int, frames: int,
             sig: tuple[int, ...]) -> np.ndarray | None:
    """A read-only map of a file's frames as a plain ndarray, reused between runs.

    Mapping afresh costs a page fault per 4 KiB page on first touch (60-70 ms
    per GiB on our machines, as much as summing the data); a kept map only
    costs address space, and its pages stay reclaimable page cache. The key
    includes the file's identity and modification time, so a rewritten file
    is mapped again. Returns None for files above :data:`KEEP_MAPS_UP_TO`.
    """
    st = os.stat(path)
    if st.st_size > KEEP_MAPS_UP_TO:
        return None
    key = (path, st.st_ino, st.st_size, st.st_mtime_ns, np.dtype(dtype).str, offset, frames, sig)
    arr = _MAPS.get(key)
    if arr is None:
        arr = np.memmap(path, dtype=dtype, mode="r", offset=offset,
                        shape=(frames,) + sig).view(np.ndarray)
        _MAPS[key] = arr
        while len(_MAPS) > _MAX_MAPS:
            _MAPS.popitem(last=False)
    else:
        _MAPS.move_to_end(key)
    return arr


class FilePartition(Partition):
    """Frames of a file, read through a memory map opened in the worker that reads them.

    Each process maps a file once and keeps the map between runs
    (:func:`file_map`); nothing is copied until a UDF asks for another dtype.
    ``sync_offset`` shifts the file against the scan: navigation frame ``i``
    is file frame ``i + sync_offset``; frames that fall outside the file read
    as zeros.
    """

    def __init__(self, shape, dtype, start, stop, index, *, path, offset,
                 file_frames, sync_offset):
        super().__init__(shape, dtype, start, stop, index)
        self.path = path
        self.offset = offset
        self.file_frames = file_frames
        self.sync_offset = sync_offset
        self._mm = None
        self._lo = 0

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_mm"] = None
        return state

    def _map(self) -> np.ndarray:
        if self._mm is None:
            sig = tuple(self.shape.sig)
            kept = file_map(self.path, self.dtype, self.offset, self.file_frames, sig)
            if kept is not None:
                self._mm, self._lo = kept, 0
                return kept
            # a map of just this partition's frames, released by close()
            lo = min(max(self.start + self.sync_offset, 0), self.file_frames)
            hi = max(min(self.stop + self.sync_offset, self.file_frames), lo)
            if hi == lo:
                self._mm = np.zeros((0,) + sig, dtype=self.dtype)
            else:
                frame_bytes = math.prod(sig) * self.dtype.itemsize
                self._mm = np.memmap(self.path, dtype=self.dtype, mode="r",
                                     offset=self.offset + lo * frame_bytes,
                                     shape=(hi - lo,) + sig).view(np.ndarray)
            self._lo = lo
        return self._mm

    def close(self) -> None:
        self._mm = None

    def read(self, start: int, stop: int) -> np.ndarray:
        mm = self._map()
        lo, hi = start + self.sync_offset - self._lo, stop + self.sync_offset - self._lo
        if 0 <= lo and hi <= len(mm):
            return mm[lo:hi]
        out = np.zeros((stop - start,) + tuple(self.shape.sig), dtype=self.dtype)
        a, b = max(lo, 0), min(hi, len(mm))
        if a < b:
            out[a - lo: b - lo] = mm[a:b]
        return out

    def take(self, indices: np.ndarray) -> np.ndarray:
        if self.sync_offset == 0:
            return self._map()[indices - self._lo]
        return super().take(indices)


class _FileDataSet(DataSet):
    path: str
    offset: int
    file_frames: int
    sync_offset: int = 0

    def _make_partition(self, start, stop, index):
        return FilePartition(self.shape, self.dtype, start, stop, index, path=self.path,
                             offset=self.offset, file_frames=self.file_frames,
                             sync_offset=self.sync_offset)


class NpyDataSet(_FileDataSet):
    """A ``.npy`` file, memory-mapped, never loaded whole.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npy`` file (C order).
    sig_dims : int
        Number of trailing signal dimensions, 1 or 2.
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
    """

    def __init__(self, path, sig_dims: int = 2, num_partitions: int | None = None):
        super().__init__(num_partitions)
        self.path = existing_file(path)
        try:
            arr = np.load(self.path, mmap_mode="r")
        except Exception as e:
            raise DataSetError(f"{self.path!r} is not a readable .npy file: {e}") from e
        if not isinstance(arr, np.memmap):
            raise DataSetError(f"{self.path!r} cannot be memory-mapped (object arrays are not supported)")
        if arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous:
            raise DataSetError(f"{self.path!r} is stored in Fortran order; save it in C order "
                               "(np.save(path, np.ascontiguousarray(a)))")
        if arr.dtype.kind not in "biufc":
            raise DataSetError(f"{self.path!r} holds dtype {arr.dtype}, not numbers: detector "
                               "data must be bool, integer, float or complex")
        check_sig_dims(arr.ndim, sig_dims)
        self.shape = Shape(arr.shape, sig_dims=sig_dims)
        self.dtype = arr.dtype
        self.offset = int(arr.offset)
        self.file_frames = self.shape.nav.size


class RawDataSet(_FileDataSet):
    """A headerless binary file of frames in C order.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    nav_shape : tuple of int
        Scan dimensions (1 to 3).
    sig_shape : tuple of int
        Frame dimensions (1 or 2).
    dtype : numpy dtype
        The stored dtype, e.g. ``"float32"`` or ``">u2"``.
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

    def __init__(self, path, nav_shape, sig_shape, dtype, sync_offset: int = 0,
                 num_partitions: int | None = None):
        super().__init__(num_partitions)
        self.path = existing_file(path)
        nav_shape = as_shape_tuple(nav_shape, "nav_shape")
        sig_shape = as_shape_tuple(sig_shape, "sig_shape")
        check_sig_dims(len(nav_shape) + len(sig_shape), len(sig_shape))
        try:
            self.dtype = np.dtype(dtype)
        except TypeError as e:
            raise DataSetError(f"dtype={dtype!r} is not a NumPy dtype") from e
        if self.dtype.hasobject:
            raise DataSetError("raw files cannot hold dtype object")
        if self.dtype.kind not in "biufc":
            raise DataSetError(f"dtype={dtype!r} is not a numeric dtype: raw detector data must be "
                               "bool, integer, float or complex (e.g. dtype='uint16')")
        self.shape = Shape(nav_shape + sig_shape, sig_dims=len(sig_shape))
        self.offset = 0
        frame_bytes = math.prod(sig_shape) * self.dtype.itemsize
        size = os.path.getsize(self.path)
        expected = self.shape.nav.size * frame_bytes
        if size != expected:
            hint = ""
            if size % frame_bytes == 0:
                hint = f" The file holds {size // frame_bytes} frames of {sig_shape}."
            raise DataSetError(
                f"{self.path!r} has {size} bytes, but nav_shape={nav_shape} x sig_shape={sig_shape} "
                f"x dtype={self.dtype} needs {expected} bytes.{hint} Check the shapes and dtype.")
        self.file_frames = self.shape.nav.size
        if not isinstance(sync_offset, (int, np.integer)):
            raise DataSetError(f"sync_offset must be an integer, got {sync_offset!r}")
        if abs(sync_offset) >= self.file_frames:
            raise DataSetError(
                f"sync_offset={sync_offset} is past the end of the data: it must lie between "
                f"{-(self.file_frames - 1)} and {self.file_frames - 1}")
        self.sync_offset = int(sync_offset)
