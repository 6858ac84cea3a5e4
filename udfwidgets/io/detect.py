"""Which reader opens a file: the registry of dataset kinds and ``"auto"`` detection.

Every kind of ``ctx.load(kind, ...)`` is one row of :data:`REGISTRY`:
``(kind, module, class name, extensions)``. Modules are imported only when
their kind is used (or sniffed), so a format library that is not installed
costs nothing until a file of its format is opened; a module that is not
part of this installation is skipped.

``"auto"`` looks at the file's content first (each reader module's
``sniff(path)``: magic bytes, a header, the DECTRIS layout), in registry
order (DECTRIS before generic HDF5), then at its extension; the dataset's
``repr`` says what was found (``detected='content'`` or ``'extension .xyz'``).
"""

from __future__ import annotations

import importlib
import os
from typing import NamedTuple

from .dataset import DataSet, DataSetError

__all__ = ["REGISTRY", "Kind", "kinds", "dataset_class", "detect", "open_auto"]


class Kind(NamedTuple):
    """One dataset kind: its name, module (relative to ``udfwidgets.io``), class and extensions.

    Examples
    --------
    >>> raw = next(k for k in REGISTRY if k.kind == "raw")
    >>> raw
    Kind(kind='raw', module='files', cls='RawDataSet', extensions=('.raw',), sniffs=False)
    >>> [k.kind for k in REGISTRY if ".h5" in k.extensions]
    ['hdf5']
    """

    kind: str
    module: str
    cls: str
    extensions: tuple[str, ...] = ()
    sniffs: bool = True


#: Kinds in the order "auto" tries them (content first, in this order; then extension).
REGISTRY: list[Kind] = [
    Kind("memory", "memory", "MemoryDataSet", sniffs=False),
    Kind("synthetic", "synthetic", "SyntheticDataSet", sniffs=False),
    Kind("dask", "daskarray", "DaskDataSet", sniffs=False),
    Kind("dectris", "dectris", "DectrisDataSet", ("_master.h5",)),
    Kind("hdf5", "hdf5", "HDF5DataSet", (".h5", ".hdf5", ".hdf", ".emd", ".nxs", ".hspy", ".cxi")),
    Kind("zarr", "zarr", "ZarrDataSet", (".zarr",)),
    Kind("mib", "mib", "MIBDataSet", (".mib", ".hdr")),
    Kind("blo", "blo", "BloDataSet", (".blo",)),
    Kind("empad", "empad", "EMPADDataSet", (".xml",)),
    Kind("tvips", "tvips", "TVIPSDataSet", (".tvips",)),
    Kind("k2is", "k2is", "K2ISDataSet", (".gtg",)),  # before dm: a .gtg is a DM4 file
    Kind("dm", "dm", "DMDataSet", (".dm4", ".dm3")),
    Kind("mrc", "mrc", "MRCDataSet", (".mrc", ".mrcs")),
    Kind("ser", "ser", "SERDataSet", (".ser",)),
    Kind("npy", "files", "NpyDataSet", (".npy",)),
    Kind("raw", "files", "RawDataSet", (".raw",), sniffs=False),
]


_EXTRA = "pip install 'udfwidgets[formats]'"


def _module(entry: Kind, strict: bool = False):
    """The reader module of a kind; None if it is not part of this installation.

    A module that is there but needs a library that is missing (h5py, ...) is None for
    sniffing; with ``strict`` it is a DataSetError naming the extra.
    """
    try:
        return importlib.import_module(f"udfwidgets.io.{entry.module}")
    except ModuleNotFoundError as e:
        if e.name == f"udfwidgets.io.{entry.module}":
            return None  # this kind is not part of this installation
        if strict:
            raise DataSetError(
                f"the {entry.kind!r} reader needs the {e.name} package, which is "
                f"not installed: {_EXTRA}"
            ) from None
        return None
    except ImportError as e:
        if strict:
            raise DataSetError(
                f"the {entry.kind!r} reader cannot be imported ({e}): {_EXTRA}"
            ) from None
        return None


def kinds() -> list[str]:
    """The kinds this installation can open (plus ``"auto"``).

    Examples
    --------
    >>> {"npy", "raw", "mib", "auto"} <= set(kinds())
    True
    """
    return [k.kind for k in REGISTRY if _module(k) is not None] + ["auto"]


def dataset_class(kind: str) -> type[DataSet]:
    """The DataSet class of a kind, importing its module.

    Examples
    --------
    >>> dataset_class("npy").__name__
    'NpyDataSet'
    """
    for entry in REGISTRY:
        if entry.kind == kind:
            module = _module(entry, strict=True)
            if module is None:
                break
            return getattr(module, entry.cls)
    raise DataSetError(f"unknown dataset kind {kind!r}; use one of {', '.join(kinds())}")


def _sniff(entry: Kind, path: str) -> bool:
    module = _module(entry)
    sniff = getattr(module, "sniff", None) if module is not None else None
    if sniff is None:
        return False
    try:
        return bool(sniff(path))
    except Exception:  # a sniffer never decides by raising
        return False


def detect(path) -> tuple[str, str]:
    """``(kind, how)`` for a file: by content where a reader recognises it, else by extension.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "scan.dat")
    >>> np.save(path + ".npy", np.zeros((2, 2, 2)))
    >>> detect(path + ".npy")
    ('npy', 'content')
    """
    if path is None:
        raise DataSetError('ctx.load("auto", path=...) needs a path')
    if isinstance(path, (list, tuple)):
        if not path:
            raise DataSetError('ctx.load("auto", path=[]) got an empty list of files')
        first = os.fspath(path[0])
        if first.lower().endswith(".mib"):
            return "mib", "extension .mib (list of files)"
        raise DataSetError(
            f"a list of files is read as one scan only for .mib files, got {first!r}"
        )
    path = os.fspath(path)
    if any(c in os.path.basename(path) for c in "*?["):
        if path.lower().endswith(".mib"):
            return "mib", "glob of .mib files"
        raise DataSetError(f"a file pattern {path!r} is understood only for .mib files")
    if not os.path.exists(path):
        raise DataSetError(f"no such file: {path!r}")
    for entry in REGISTRY:
        if entry.sniffs and _sniff(entry, path):
            return entry.kind, "content"
    if os.path.isdir(path):
        raise DataSetError(
            f"{path!r} is a folder that no reader recognises (only zarr stores are opened as "
            "folders); give the path of a file inside it"
        )
    if os.path.getsize(path) == 0:
        raise DataSetError(
            f"{path!r} is empty (0 bytes): the acquisition or the copy did not "
            "finish; copy the file again"
        )
    lower = path.lower()
    for entry in REGISTRY:
        for ext in entry.extensions:
            if lower.endswith(ext) and _module(entry) is not None:
                return entry.kind, f"extension {ext}"
    raise DataSetError(
        f"cannot tell the format of {path!r}: no reader recognises its content or extension. "
        'Name the kind (ctx.load("mib", ...), ...); for a headerless file use ctx.load("raw", '
        "path=..., nav_shape=..., sig_shape=..., dtype=...)."
    )


def open_auto(**kwargs) -> DataSet:
    """``ctx.load("auto", path=..., ...)``: detect the kind and open the file with it.

    The other keywords go to the reader of the detected kind; ``sig_shape=`` and
    ``dtype=`` without a ``.npy`` file mean a raw file.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "scan.npy")
    ...     np.save(path, np.zeros((2, 3, 4, 4), dtype=np.uint16))
    ...     ds = open_auto(path=path)
    ...     type(ds).__name__, ds.detected, tuple(ds.shape)
    ('NpyDataSet', 'content', (2, 3, 4, 4))
    """
    path = kwargs.get("path")
    lower = str(path).lower() if isinstance(path, (str, os.PathLike)) else ""
    if lower and {"sig_shape", "dtype"} <= kwargs.keys() and not lower.endswith(".npy"):
        kind, how = "raw", "sig_shape= and dtype= given"
    else:
        try:
            kind, how = detect(path)
        except DataSetError as e:
            if lower and not lower.endswith(".npy") and os.path.isfile(str(path)):
                raise DataSetError(
                    f"cannot tell the layout of {str(path)!r}: for a raw file give nav_shape=, "
                    "sig_shape= and dtype=; otherwise name the kind. (" + str(e) + ")"
                ) from None
            raise
    ds = dataset_class(kind)(**kwargs)
    ds.detected = how
    return ds
