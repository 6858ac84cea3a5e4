"""A dataset held in memory, as a NumPy array."""
from __future__ import annotations

import numpy as np

from .dataset import DataSet, DataSetError, Partition, check_sig_dims
from .shape import Shape

__all__ = ["MemoryDataSet"]


class MemoryPartition(Partition):
    """A partition that carries its own slice ``(n, *sig)`` of the array.

    Pickling it sends only that slice, so the array travels once per run in
    total; joblib turns slices over 1 MB into read-only memory maps for loky
    workers.
    """

    def __init__(self, shape, dtype, start, stop, index, frames: np.ndarray):
        super().__init__(shape, dtype, start, stop, index)
        self.frames = frames

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.frames[start - self.start: stop - self.start]

    def take(self, indices: np.ndarray) -> np.ndarray:
        return self.frames[indices - self.start]


class MemoryDataSet(DataSet):
    """A dataset backed by a NumPy array.

    Parameters
    ----------
    data : array_like
        Navigation dimensions (1 to 3) first, then the signal dimensions.
    sig_dims : int
        Number of trailing signal dimensions, 1 or 2.
    num_partitions : int, optional
        Override the default number of partitions.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets.io.memory import MemoryDataSet
    >>> ds = MemoryDataSet(np.zeros((4, 4, 8, 8), dtype=np.uint16))
    >>> tuple(ds.shape.nav), tuple(ds.shape.sig), ds.dtype
    ((4, 4), (8, 8), dtype('uint16'))
    """

    kind = "memory"

    def __init__(self, data, sig_dims: int = 2, num_partitions: int | None = None):
        super().__init__(num_partitions)
        if data is None:
            raise DataSetError('ctx.load("memory", data=...) needs a NumPy array as data=')
        data = np.asarray(data)
        check_sig_dims(data.ndim, sig_dims)
        if data.dtype.hasobject:
            raise DataSetError("datasets of dtype object are not supported; use a numeric dtype")
        if data.dtype.kind not in "biufc":  # strings, bytes, structured, dates
            raise DataSetError(f"datasets of dtype {data.dtype} are not supported: detector data "
                               "must be numbers (bool, integer, float or complex); convert it, "
                               "e.g. data.astype(np.float32)")
        self.data = data
        self.shape = Shape(data.shape, sig_dims=sig_dims)
        self.dtype = data.dtype
        self._flat = data.reshape(self.shape.flatten_nav)

    def _make_partition(self, start, stop, index):
        return MemoryPartition(self.shape, self.dtype, start, stop, index, self._flat[start:stop])
