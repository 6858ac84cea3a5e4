"""Datasets: an N-dimensional stack of frames split into partitions.

A :class:`DataSet` knows its :class:`~udfwidgets.io.shape.Shape` and dtype and
hands out :class:`Partition` objects, contiguous runs of frames in flat
navigation order. A partition is small to pickle: file-backed partitions carry
only the path and open a read-only memory map in the worker that reads them;
in-memory partitions carry their own slice of the array.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import math
import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from .shape import Shape

__all__ = [
    "DataSet",
    "RoiMaker",
    "Partition",
    "DataSetError",
    "default_num_partitions",
    "format_bytes",
    "partition_size",
    "ramp_up",
]

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


#: Default partitions per worker at least (see :func:`default_num_partitions`).
PARTITIONS_PER_WORKER = 2

_PARTITIONING = contextvars.ContextVar(
    "udfwidgets_partitioning", default=(TARGET_PARTITION_BYTES, PARTITIONS_PER_WORKER)
)


@contextlib.contextmanager
def partition_size(nbytes: int, per_worker: int = PARTITIONS_PER_WORKER) -> Iterator[None]:
    """Within this block, default partitions aim at ``nbytes`` each, at least
    ``per_worker`` per worker.

    A run sets both from its executor (``partition_bytes``,
    ``partitions_per_worker``): a dask task costs the main node more than a loky
    task, so the dask executor asks for larger partitions and one per worker
    thread for short runs. An explicit ``num_partitions`` of a dataset always wins.

    Examples
    --------
    >>> default_num_partitions(2**30, 16384, num_workers=2)
    8
    >>> with partition_size(256 * 2**20):
    ...     default_num_partitions(2**30, 16384, num_workers=2)
    4
    >>> with partition_size(256 * 2**20, per_worker=1):
    ...     default_num_partitions(2**29, 16384, num_workers=2)
    2
    """
    if int(nbytes) <= 0:
        raise ValueError(f"partition_size needs a positive number of bytes, got {nbytes!r}")
    if int(per_worker) < 1:
        raise ValueError(f"partition_size needs per_worker >= 1, got {per_worker!r}")
    token = _PARTITIONING.set((int(nbytes), int(per_worker)))
    try:
        yield
    finally:
        _PARTITIONING.reset(token)


def default_num_partitions(nbytes: int, num_frames: int, num_workers: int) -> int:
    """How many partitions a dataset is split into by default.

    About 128 MiB each for large data, at least two per worker (so that a slow
    partition does not leave a core idle), never more than there are frames;
    :func:`partition_size` changes both (the dask executor asks for 512 MiB and
    one per worker thread).

    Examples
    --------
    >>> default_num_partitions(2**30, 16384, num_workers=2)
    8
    >>> default_num_partitions(1000, 3, num_workers=2)
    3
    >>> default_num_partitions(2**20, 100, num_workers=2)
    4
    """
    target, per_worker = _PARTITIONING.get()
    n = max(per_worker * max(1, num_workers), round(nbytes / target))
    return max(1, min(n, num_frames))


#: The first partition of a long run (see :func:`ramp_up`) starts at about this size.
FIRST_PARTITION_BYTES = 16 * 2**20


def ramp_up(
    bounds: tuple[int, int], frame_bytes: int, first_bytes: int | None = None
) -> list[tuple[int, int]]:
    """Split the first partition of a run into pieces that double in size.

    The first partial result of a run arrives when its first partition is
    done; with 128 MiB partitions that is the time to read 128 MiB (a
    second or more from a disk, or on a loaded machine). Pieces of ``s, s,
    2s, 4s, ...`` with ``s`` about ``first_bytes`` (default
    :data:`FIRST_PARTITION_BYTES`, 16 MiB; an eighth of the partition size
    where partitions are smaller than 128 MiB) show a first result after ``s`` instead, at the cost of a few more tasks
    (benchmarks/README.md, "Cost as the scan grows"). No piece is smaller
    than the first one.

    Examples
    --------
    >>> ramp_up((0, 8192), frame_bytes=16384)  # 128 MiB of 16 KiB frames
    [(0, 1024), (1024, 2048), (2048, 4096), (4096, 8192)]
    >>> ramp_up((0, 100), frame_bytes=16384)  # too small to split
    [(0, 100)]
    """
    start, stop = bounds
    size = first_bytes if first_bytes is not None else FIRST_PARTITION_BYTES
    step = max(1, size // max(1, frame_bytes))
    out = []
    pos, piece = start, step
    while stop - (pos + piece) >= max(step, piece):
        out.append((pos, pos + piece))
        pos += piece
        piece = pos - start  # each piece as large as all before it
    out.append((pos, stop))
    return out


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

    # Partitions that read one file set this (the base with_paths maps it); declared only,
    # so getattr(part, "path", None) is None on the others.
    path: str

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

    def with_paths(self, map_path: Callable[[str], str]) -> Partition:
        """A copy that reads its files at ``map_path(path)`` (where a cluster's workers see them).

        The base class maps a ``path`` attribute; partitions that read other
        files override this.

        Examples
        --------
        >>> p = Partition(Shape((4, 2, 2), sig_dims=2), "u2", 0, 4, 0)
        >>> p.path = "/data/scan.raw"
        >>> p.with_paths(lambda s: s.replace("/data", "/mnt/data")).path
        '/mnt/data/scan.raw'
        """
        part = copy.copy(self)
        if isinstance(getattr(part, "path", None), str):
            part.path = map_path(part.path)
        return part

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.index}: frames {self.start}:{self.stop}>"


class RoiMaker:
    """What :attr:`DataSet.roi` gives: index it to get a bool mask of the navigation shape.

    Examples
    --------
    >>> RoiMaker((2, 2))[1, 0]
    array([[False, False],
           [ True, False]])
    """

    def __init__(self, nav_shape: tuple[int, ...]):
        self.nav_shape = nav_shape

    def __getitem__(self, key) -> np.ndarray:
        mask = np.zeros(self.nav_shape, dtype=bool)
        mask[key] = True
        return mask


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

    # How ctx.load("auto") recognised the format (shown in the repr); declared only, so
    # datasets opened by kind have no such attribute.
    detected: str

    shape: Shape
    dtype: np.dtype
    #: The ``ctx.load`` kind that opens this class (``"mib"``, ``"npy"``, ...).
    kind: str = ""
    #: What the file says about itself (see :attr:`metadata`); the class
    #: attribute is a fallback, every instance gets its own dict.
    metadata: dict = {}

    def __init__(self, num_partitions: int | None = None):
        if num_partitions is not None:
            if not isinstance(num_partitions, (int, np.integer)) or num_partitions < 1:
                raise DataSetError(
                    f"num_partitions must be a positive integer, got {num_partitions!r}"
                )
        self.num_partitions = num_partitions
        self.metadata = {}

    @property
    def roi(self) -> RoiMaker:
        """Make an roi by indexing the navigation shape (LiberTEM's ``DataSet.roi``).

        ``ds.roi[key]`` is a new bool array of the navigation shape, True
        where ``key`` selects (any NumPy index: ``[0, 0]``, ``[2:5, :]``, a mask).

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.io import load
        >>> ds = load("memory", data=np.zeros((2, 3, 4, 4)))
        >>> ds.roi[0, 1:]
        array([[False,  True,  True],
               [False, False, False]])
        """
        return RoiMaker(tuple(self.shape.nav))

    @property
    def nbytes(self) -> int:
        """Size of the whole dataset in bytes, in its native dtype."""
        return self.shape.size * self.dtype.itemsize

    def partition_bounds(self, num_workers: int) -> list[tuple[int, int]]:
        """The ``(start, stop)`` flat-nav ranges of the partitions.

        By default (no ``num_partitions``), a scan of more than four
        partitions per worker starts with smaller ones (:func:`ramp_up`), so
        that the first partial result of ``run_udf_iter`` arrives early.
        """
        n_frames = self.shape.nav.size
        n = self.num_partitions or default_num_partitions(self.nbytes, n_frames, num_workers)
        n = max(1, min(n, n_frames))
        edges = np.linspace(0, n_frames, n + 1).round().astype(np.int64)
        bounds = [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
        if self.num_partitions is None and n > 4 * max(1, num_workers):
            frame_bytes = self.nbytes // max(1, n_frames)
            first = min(FIRST_PARTITION_BYTES, _PARTITIONING.get()[0] // 8)
            bounds = ramp_up(bounds[0], frame_bytes, first) + bounds[1:]
        return bounds

    def get_partitions(self, num_workers: int = 1) -> list[Partition]:
        """Split the dataset into partitions (see :attr:`num_partitions`)."""
        return [
            self._make_partition(a, b, i)
            for i, (a, b) in enumerate(self.partition_bounds(num_workers))
        ]

    def _make_partition(self, start: int, stop: int, index: int) -> Partition:
        raise NotImplementedError

    def _repr_items(self) -> dict:
        """Extra ``name: value`` pairs for :meth:`__repr__` (chunking, compression, ...)."""
        return {}

    # --- corrections and calibration (udfwidgets.corrections, udfwidgets.calibration) ---
    @property
    def corrections(self):
        """A :class:`~udfwidgets.corrections.CorrectionSet` every run applies by default, or None."""
        return self.__dict__.get("_corrections")

    @corrections.setter
    def corrections(self, value) -> None:
        from ..corrections import CorrectionSet

        if value is not None:
            if not isinstance(value, CorrectionSet):
                raise TypeError(
                    "ds.corrections must be a udfwidgets.corrections.CorrectionSet "
                    f"or None, got {type(value).__name__}"
                )
            value.check(tuple(self.shape.sig))
        self.__dict__["_corrections"] = value

    @property
    def calibration(self):
        """The :class:`~udfwidgets.calibration.Calibration` (physical units); settable.

        Unless set, read from ``self.metadata`` where the format has it, else pixels.
        """
        cal = self.__dict__.get("_calibration")
        if cal is None:
            from ..calibration import Calibration

            cal = Calibration.from_metadata(getattr(self, "metadata", None) or {})
        return cal

    @calibration.setter
    def calibration(self, value) -> None:
        from ..calibration import Calibration

        if value is not None and not isinstance(value, Calibration):
            raise TypeError(
                "ds.calibration must be a udfwidgets.Calibration or None, got "
                f"{type(value).__name__}"
            )
        self.__dict__["_calibration"] = value

    def __repr__(self) -> str:
        """``<Class kind='...' path='...' nav=... sig=... dtype=... size=... ...>``.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.io.memory import MemoryDataSet
        >>> repr(MemoryDataSet(np.zeros((2, 3, 4, 4), np.uint16)))
        "<MemoryDataSet kind='memory' nav=(2, 3) sig=(4, 4) dtype=uint16 size=192 B>"
        """
        kind = self.kind or type(self).__name__.lower().removesuffix("dataset")
        parts = [f"kind={kind!r}"]
        path = getattr(self, "path", None)
        if path is not None:
            parts.append(f"path={str(path)!r}")
        parts += [
            f"nav={tuple(self.shape.nav)}",
            f"sig={tuple(self.shape.sig)}",
            f"dtype={self.dtype}",
            f"size={format_bytes(self.nbytes)}",
        ]
        items = dict(self._repr_items())
        found = getattr(self, "detected", None)
        if found:
            items.setdefault("detected", found)
        parts += [f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in items.items()]
        return f"<{type(self).__name__} " + " ".join(parts) + ">"

    def _repr_html_(self) -> str:
        from .display import dataset_html

        return dataset_html(self)


def format_bytes(n: int) -> str:
    """A byte count for people: ``512.0 MiB``.

    Examples
    --------
    >>> format_bytes(512 * 2**20), format_bytes(100)
    ('512.0 MiB', '100 B')
    """
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}"
    return f"{n} B"  # pragma: no cover


def check_sig_dims(ndim: int, sig_dims: int) -> None:
    if sig_dims not in (1, 2):
        raise DataSetError(f"sig_dims must be 1 or 2, got {sig_dims!r}")
    nav_dims = ndim - sig_dims
    if not 1 <= nav_dims <= 3:
        raise DataSetError(
            f"an array of {ndim} dimensions with sig_dims={sig_dims} has {nav_dims} navigation "
            "dimensions; 1 to 3 are supported"
        )


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


def existing_file(path: str | os.PathLike, what: str = "file") -> str:
    try:
        path = os.fspath(path)
    except TypeError:
        raise DataSetError(f"path must be a file name, got {path!r}") from None
    if not os.path.exists(path):
        raise DataSetError(f"no such {what}: {path!r}")
    if os.path.isdir(path):
        raise DataSetError(f"{path!r} is a folder; give the path of the {what} inside it")
    if not os.path.isfile(path):
        raise DataSetError(f"not a regular file: {path!r}")
    if os.path.getsize(path) == 0:
        raise DataSetError(
            f"{path!r} is empty (0 bytes): the acquisition or the copy did not "
            "finish; copy the file again"
        )
    return path
