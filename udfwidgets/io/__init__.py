"""Datasets: in memory, ``.npy`` and raw files, and synthetic 4D-STEM data."""
from .dataset import DataSet, DataSetError, Partition
from .files import NpyDataSet, RawDataSet
from .memory import MemoryDataSet
from .shape import Shape

__all__ = ["DataSet", "DataSetError", "Partition", "Shape", "MemoryDataSet", "NpyDataSet",
           "RawDataSet", "load"]


_CHUNKED_KINDS = {"hdf5": (".hdf5", "HDF5DataSet"), "dectris": (".dectris", "DectrisDataSet"),
                  "zarr": (".zarr", "ZarrDataSet"), "dask": (".daskarray", "DaskDataSet")}


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
    if kind in _CHUNKED_KINDS:  # branch hdf5's kinds (HDF5, DECTRIS, zarr, dask arrays)
        import importlib
        module, cls = _CHUNKED_KINDS[kind]
        return getattr(importlib.import_module(module, __name__), cls)(**kwargs)
    if kind == "auto":
        path = kwargs.get("path")
        if path is None:
            raise DataSetError('ctx.load("auto", path=...) needs a path')
        import importlib
        for k in ("dectris", "hdf5", "zarr"):  # branch hdf5's kinds, by content (sniff)
            module = importlib.import_module(_CHUNKED_KINDS[k][0], __name__)
            if module.sniff(path):
                return getattr(module, _CHUNKED_KINDS[k][1])(**kwargs)
        if str(path).lower().endswith(".npy"):
            return NpyDataSet(**kwargs)
        if not {"nav_shape", "sig_shape", "dtype"} <= kwargs.keys():
            raise DataSetError(
                f"cannot tell the layout of {str(path)!r}: for a raw file give nav_shape=, "
                "sig_shape= and dtype=, or use a .npy file")
        return RawDataSet(**kwargs)
    raise DataSetError(f"unknown dataset kind {kind!r}; use 'memory', 'npy', 'raw', 'auto' or 'synthetic'")
