"""Datasets: in memory, ``.npy`` and raw files, and synthetic 4D-STEM data."""
from .dataset import DataSet, DataSetError, Partition
from .files import NpyDataSet, RawDataSet
from .memory import MemoryDataSet
from .shape import Shape

__all__ = ["DataSet", "DataSetError", "Partition", "Shape", "MemoryDataSet", "NpyDataSet",
           "RawDataSet", "load"]


def load(kind: str, **kwargs) -> DataSet:
    """Open a dataset by kind: ``"memory"``, ``"npy"``, ``"raw"``, ``"auto"`` or ``"synthetic"``.

    ``"auto"`` chooses by file name: ``.npy`` files with :class:`NpyDataSet`,
    anything else with :class:`RawDataSet` (which then needs ``nav_shape``,
    ``sig_shape`` and ``dtype``).

    Examples
    --------
    >>> import numpy as np
    >>> load("memory", data=np.zeros((2, 2, 4, 4))).shape
    Shape((2, 2, 4, 4), sig_dims=2)
    """
    kind = str(kind).lower()
    if kind == "memory":
        return MemoryDataSet(**kwargs)
    if kind == "npy":
        return NpyDataSet(**kwargs)
    if kind == "raw":
        return RawDataSet(**kwargs)
    if kind == "synthetic":
        from .synthetic import SyntheticDataSet
        return SyntheticDataSet(**kwargs)
    if kind == "auto":
        path = kwargs.get("path")
        if path is None:
            raise DataSetError('ctx.load("auto", path=...) needs a path')
        if str(path).lower().endswith(".npy"):
            return NpyDataSet(**kwargs)
        if not {"nav_shape", "sig_shape", "dtype"} <= kwargs.keys():
            raise DataSetError(
                f"cannot tell the layout of {str(path)!r}: for a raw file give nav_shape=, "
                "sig_shape= and dtype=, or use a .npy file")
        return RawDataSet(**kwargs)
    raise DataSetError(f"unknown dataset kind {kind!r}; use 'memory', 'npy', 'raw', 'auto' or 'synthetic'")
