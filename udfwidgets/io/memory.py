"""A dataset held in memory, as a NumPy array."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .dataset import DataSet, DataSetError, Partition, as_shape_tuple, check_sig_dims
from .geometry import ScanGeometry, resolve
from .shape import Shape

__all__ = ["MemoryDataSet"]


class MemoryPartition(Partition):
    """A partition that carries its own slice of the array's frames.

    Pickling it sends only that slice, so the array travels once per run in
    total; joblib turns slices over 1 MB into read-only memory maps for loky
    workers. ``frames`` holds the array's frames ``lo:lo + len(frames)``
    behind this partition's navigation frames (see :mod:`udfwidgets.io.geometry`).
    """

    def __init__(
        self,
        shape,
        dtype,
        start,
        stop,
        index,
        frames: np.ndarray,
        geometry: ScanGeometry | None = None,
        lo: int | None = None,
        tile_depth: int | None = None,
        tile_sig: tuple[int, ...] | None = None,
    ):
        super().__init__(shape, dtype, start, stop, index)
        self.frames = frames
        self.geometry = geometry
        self.lo = start if lo is None else lo
        self.tile_depth = tile_depth
        self.tile_sig = tile_sig

    def read(self, start: int, stop: int) -> np.ndarray:
        if self.geometry is None:
            return self.frames[start - self.start : stop - self.start]
        lo = self.lo
        return self.geometry.read(
            lambda a, b: self.frames[a - lo : b - lo], start, stop, self.shape.sig, self.dtype
        )

    def take(self, indices: np.ndarray) -> np.ndarray:
        if self.geometry is None:
            return self.frames[indices - self.start]
        lo = self.lo
        return self.geometry.take(
            lambda idx: self.frames[idx - lo], indices, self.shape.sig, self.dtype
        )


class MemoryDataSet(DataSet):
    """A dataset backed by a NumPy array; takes LiberTEM's arguments too.

    Parameters
    ----------
    data : array_like
        Navigation dimensions (1 to 3) first, then the signal dimensions.
    sig_dims : int, optional
        Number of trailing signal dimensions, 1 or 2 (default 2, or the
        length of ``sig_shape``).
    num_partitions : int, optional
        Override the default number of partitions.
    tileshape : tuple of int, optional
        ``(frames, *sig)``: process methods get tiles of ``frames`` frames
        (the last tile of a partition may be shorter). A signal part smaller
        than the frame splits the frame, as in LiberTEM, when every UDF of
        a run uses ``process_tile`` and accepts such tiles
        (:attr:`UDF.ACCEPTS_SIG_SLICED_TILES <udfwidgets.udf.base.UDF>`):
        tiles then cover parts of ``sig`` of at most that shape
        (``self.meta.sig_slice``); otherwise tiles hold whole frames.
    sync_offset : int
        Navigation frame ``i`` is frame ``i + sync_offset`` of ``data``
        (missing frames read as zeros), as for files (:mod:`udfwidgets.io.geometry`).
    nav_shape, sig_shape : tuple of int, optional
        Reinterpret ``data``'s frames with this scan shape and frame shape.
    datashape : tuple of int, optional
        LiberTEM's way to ask for random float32 data of this shape (instead of ``data``).
    array_backends : optional
        LiberTEM's keyword, accepted and ignored: the data is held dense (a
        sparse ``data`` is densified); each UDF gets frames in the backend it
        asks for (:meth:`UDF.get_backends`).

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets.io.memory import MemoryDataSet
    >>> ds = MemoryDataSet(np.zeros((4, 4, 8, 8), dtype=np.uint16))
    >>> tuple(ds.shape.nav), tuple(ds.shape.sig), ds.dtype
    ((4, 4), (8, 8), dtype('uint16'))
    >>> ds = MemoryDataSet(data=np.zeros((17, 8, 8)), tileshape=(2, 8, 8), num_partitions=2,
    ...                    sig_dims=2, nav_shape=(4, 4), sync_offset=1)
    >>> tuple(ds.shape.nav), ds.sync_offset, ds.tile_depth
    ((4, 4), 1, 2)
    """

    kind = "memory"

    def __init__(
        self,
        data=None,
        sig_dims: int | None = None,
        num_partitions: int | None = None,
        tileshape: Sequence[int] | None = None,
        sync_offset: int = 0,
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        datashape: Sequence[int] | None = None,
        array_backends=None,
    ):
        super().__init__(num_partitions)
        if data is None and datashape is not None:
            data = np.random.default_rng().random(
                as_shape_tuple(datashape, "datashape"), dtype=np.float32
            )
        if data is None:
            raise DataSetError('ctx.load("memory", data=...) needs a NumPy array as data=')
        if hasattr(data, "todense") and not isinstance(data, np.ndarray):
            data = data.todense()  # a sparse array: datasets are dense here
        data = np.asarray(data)
        if data.dtype.hasobject:
            raise DataSetError("datasets of dtype object are not supported; use a numeric dtype")
        if data.dtype.kind not in "biufc":  # strings, bytes, structured, dates
            raise DataSetError(
                f"datasets of dtype {data.dtype} are not supported: detector data "
                "must be numbers (bool, integer, float or complex); convert it, "
                "e.g. data.astype(np.float32)"
            )
        if sig_dims is None:
            sig_dims = len(as_shape_tuple(sig_shape, "sig_shape")) if sig_shape is not None else 2
        if sig_shape is not None:
            sig = as_shape_tuple(sig_shape, "sig_shape")
            if len(sig) != sig_dims:
                raise DataSetError(f"sig_shape={sig} does not have sig_dims={sig_dims} dimensions")
            if data.size % max(1, int(np.prod(sig))):
                raise DataSetError(
                    f"data of shape {data.shape} cannot be cut into frames of sig_shape={sig}"
                )
            data = data.reshape((-1,) + sig)
            file_nav = None
        else:
            check_sig_dims(data.ndim, sig_dims)
            sig = data.shape[data.ndim - sig_dims :]
            file_nav = data.shape[: data.ndim - sig_dims]
        self.data = data
        self._flat = data.reshape((-1,) + tuple(sig))
        self.geometry = resolve(
            len(self._flat), nav_shape, sync_offset, file_nav_shape=file_nav, what="the data"
        )
        nav = self.geometry.nav_shape
        check_sig_dims(len(nav) + len(sig), sig_dims)
        self.shape = Shape(tuple(nav) + tuple(sig), sig_dims=sig_dims)
        self.dtype = data.dtype
        self.sync_offset = self.geometry.sync_offset
        self.tile_depth = None
        #: the signal part of ``tileshape`` when it splits the frame, else None
        self.tile_sig: tuple[int, ...] | None = None
        if tileshape is not None:
            ts = as_shape_tuple(tileshape, "tileshape")
            if len(ts) != sig_dims + 1:
                raise DataSetError(
                    f"tileshape={ts} must be (frames, *sig) with {sig_dims} signal "
                    "dimensions, e.g. (8,) + sig_shape"
                )
            self.tile_depth = ts[0]
            tile_sig = tuple(min(t, s) for t, s in zip(ts[1:], sig))
            if tile_sig != tuple(sig):
                self.tile_sig = tile_sig
        self._plain = self.sync_offset == 0 and len(self._flat) == self.shape.nav.size

    def _make_partition(self, start, stop, index):
        if self._plain:
            return MemoryPartition(
                self.shape,
                self.dtype,
                start,
                stop,
                index,
                self._flat[start:stop],
                tile_depth=self.tile_depth,
                tile_sig=self.tile_sig,
            )
        lo, hi, _, _ = self.geometry.file_range(start, stop)
        return MemoryPartition(
            self.shape,
            self.dtype,
            start,
            stop,
            index,
            self._flat[lo:hi],
            self.geometry,
            lo,
            tile_depth=self.tile_depth,
            tile_sig=self.tile_sig,
        )
