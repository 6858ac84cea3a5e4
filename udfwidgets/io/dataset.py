"""Datasets: an N-dimensional stack of frames split into partitions.

A :class:`DataSet` knows its :class:`~udfwidgets.io.shape.Shape` and dtype and
hands out :class:`Partition` objects, contiguous runs of frames in flat
navigation order. A partition is small to pickle: file-backed partitions carry
only the path and open a read-only memory map in the worker that reads them;
in-memory partitions carry their own slice of the array.
"""
from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

from .shape import Shape

__all__ = ["DataSet", "Partition", "DataSetError", "default_num_partitions"]

#: Aim for partitions of about this many bytes (the issue asks for 64-256 MiB).
TARGET_PARTITION_BYTES = 128 * 2**20


class DataSetError(ValueError):
    """A dataset could not be opened or does not match its description.

    Examples
    --------
    >>> from udfwidgets.io import load
    >>> try:
    ...     load("npy", path="no-such-scan.npy")
    ... except DataSetError as e:
    ...     print(type(e).__name__, isinstance(e, ValueError))
    DataSetError True
    """


def default_num_partitions(nbytes: int, num_frames: int, num_workers: int) -> int:
    """How many partitions a dataset is split into by default.

    At least two per worker (so a slow partition does not leave a core idle),
    about 128 MiB each for large data, never more than there are frames.

    Examples
    --------
    >>> default_num_partitions(2**30, 16384, num_workers=2)
    8
    >>> default_num_partitions(1000, 3, num_workers=2)
    3
    """
    n = max(2 * max(1, num_workers), round(nbytes / TARGET_PARTITION_BYTES))
    return max(1, min(n, num_frames))


class Partition:
    """A contiguous run ``[start, stop)`` of frames in flat navigation order.

    Subclasses implement :meth:`read` (a contiguous block) and may override
    :meth:`take` (arbitrary frames, used with an roi).

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets.io import load
    >>> ds = load("memory", data=np.arange(4 * 2 * 2).reshape(4, 2, 2), num_partitions=2)
    >>> [(p.start, p.stop) for p in ds.get_partitions()]
    [(0, 2), (2, 4)]
    """

    def __init__(self, shape: Shape, dtype: np.dtype, start: int, stop: int, index: int):
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.start = start
        self.stop = stop
        self.index = index

    @property
    def num_frames(self) -> int:
        return self.stop - self.start

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop`` (dataset flat-nav indices) as ``(n, *sig)``, native dtype.

        May return a read-only view of a memory map.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release what :meth:`read` opened (file maps); reading again reopens."""

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Frames at ascending dataset flat-nav ``indices`` as ``(n, *sig)``."""
        lo, hi = int(indices[0]), int(indices[-1]) + 1
        return self.read(lo, hi)[indices - lo]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.index}: frames {self.start}:{self.stop}>"


class DataSet:
    """Base class of all datasets.

    Attributes
    ----------
    shape : Shape
        Navigation dimensions first, then ``shape.sig_dims`` signal dimensions.
    dtype : numpy.dtype
        The native dtype of the stored frames.
    num_partitions : int or None
        A fixed number of partitions, or None for the default rule
        (:func:`default_num_partitions`).

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets.io import load
    >>> ds = load("memory", data=np.zeros((2, 3, 8, 8), dtype=np.uint16))
    >>> isinstance(ds, DataSet), tuple(ds.shape.nav), tuple(ds.shape.sig), ds.dtype
    (True, (2, 3), (8, 8), dtype('uint16'))
    """

    shape: Shape
    dtype: np.dtype

    def __init__(self, num_partitions: int | None = None):
        if num_partitions is not None:
            if not isinstance(num_partitions, (int, np.integer)) or num_partitions < 1:
                raise DataSetError(f"num_partitions must be a positive integer, got {num_partitions!r}")
        self.num_partitions = num_partitions

    @property
    def nbytes(self) -> int:
        """Size of the whole dataset in bytes, in its native dtype."""
        return self.shape.size * self.dtype.itemsize

    def partition_bounds(self, num_workers: int) -> list[tuple[int, int]]:
        """The ``(start, stop)`` flat-nav ranges of the partitions."""
        n_frames = self.shape.nav.size
        n = self.num_partitions or default_num_partitions(self.nbytes, n_frames, num_workers)
        n = max(1, min(n, n_frames))
        edges = np.linspace(0, n_frames, n + 1).round().astype(np.int64)
        return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]

    def get_partitions(self, num_workers: int = 1) -> list[Partition]:
        """Split the dataset into partitions (see :attr:`num_partitions`)."""
        return [self._make_partition(a, b, i)
                for i, (a, b) in enumerate(self.partition_bounds(num_workers))]

    def _make_partition(self, start: int, stop: int, index: int) -> Partition:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} shape={tuple(self.shape)} sig_dims={self.shape.sig_dims} dtype={self.dtype}>"


def check_sig_dims(ndim: int, sig_dims: int) -> None:
    if sig_dims not in (1, 2):
        raise DataSetError(f"sig_dims must be 1 or 2, got {sig_dims!r}")
    nav_dims = ndim - sig_dims
    if not 1 <= nav_dims <= 3:
        raise DataSetError(
            f"an array of {ndim} dimensions with sig_dims={sig_dims} has {nav_dims} navigation "
            "dimensions; 1 to 3 are supported")


def as_shape_tuple(value: Sequence[int] | int, what: str) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)):
        value = (int(value),)
    try:
        dims = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise DataSetError(f"{what} must be a tuple of positive integers, got {value!r}") from None
    if not dims or any(d < 1 for d in dims):
        raise DataSetError(f"{what} must be a tuple of positive integers, got {value!r}")
    return dims


def frames_nbytes(shape: Shape, dtype: np.dtype) -> int:
    return math.prod(shape.sig) * np.dtype(dtype).itemsize


def existing_file(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataSetError(f"no such file: {path!r}")
    if not os.path.isfile(path):
        raise DataSetError(f"not a regular file: {path!r}")
    return path
