"""Datasets: in memory, synthetic, and files of many formats, read lazily.

Every kind is one row of :data:`udfwidgets.io.detect.REGISTRY`; ``load``
dispatches through it, and ``"auto"`` detects the kind of a file.
"""

from .dataset import DataSet, DataSetError, Partition
from .files import NpyDataSet, RawDataSet
from .memory import MemoryDataSet
from .shape import Shape

__all__ = [
    "DataSet",
    "DataSetError",
    "Partition",
    "Shape",
    "MemoryDataSet",
    "NpyDataSet",
    "RawDataSet",
    "load",
]


def load(kind: str, **kwargs) -> DataSet:
    """Open a dataset by kind.

    Kinds: ``"memory"``, ``"synthetic"``, ``"npy"``, ``"raw"``, ``"mib"``,
    ``"blo"``, ``"empad"``, ``"mrc"``, ``"tvips"``, ``"dm"``, ``"k2is"``, the HDF5 family
    (``"hdf5"``, ``"dectris"``, ``"zarr"``, ``"dask"``) where installed, and
    ``"auto"``, which decides by the file's content, then its extension
    (``repr(ds)`` says which). See ``docs/formats.md`` for each kind's
    parameters; every file kind takes ``nav_shape=`` and ``sync_offset=``.

    Examples
    --------
    >>> import numpy as np
    >>> load("memory", data=np.zeros((2, 2, 4, 4))).shape
    Shape((2, 2, 4, 4), sig_dims=2)
    """
    from .detect import dataset_class, open_auto

    kind = str(kind).lower()
    if kind == "auto":
        return open_auto(**kwargs)
    return dataset_class(kind)(**kwargs)
