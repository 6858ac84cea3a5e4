"""zarr v2 and v3 arrays by path: ``ctx.load("zarr", path="scan.zarr", ds_path=None)``.

``path`` is a store folder holding an array (``.zarray`` or ``zarr.json`` at
its root) or a group; in a group, ``ds_path`` names the array, else the one
large 3-5 D array is chosen (the error lists the candidates when several
could be meant). Reading is chunk-aligned like HDF5
(:mod:`udfwidgets.io.chunked`): partitions are whole chunk rows along the
navigation axes (shards, for sharded v3 arrays), and every chunk is
decompressed once per run. Each worker opens the store itself and keeps the
array open between runs (:func:`release_arrays`).
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import files as _files
from .atomic import atomic_output, check_target
from .chunked import (
    aligned_bounds,
    chunk_row_frames,
    dataset_repr,
    read_flat,
    take_by_chunk,
)
from .dataset import DataSet, DataSetError, Partition, check_sig_dims
from .geometry import resolve
from .shape import Shape

__all__ = ["ZarrDataSet", "release_arrays", "sniff", "write_zarr"]

INSTALL_HINT = "pip install 'udfwidgets[formats]'"
_META_FILES = ("zarr.json", ".zarray", ".zgroup")
_LOCK = threading.RLock()
_ARRAYS: OrderedDict[tuple, Any] = OrderedDict()
_MAX_ARRAYS = 16


def zarr_module():
    """The zarr package, or a :class:`DataSetError` naming the extra.

    Examples
    --------
    >>> zarr_module().__name__
    'zarr'
    """
    try:
        import zarr
    except ImportError:
        raise DataSetError(f"reading zarr stores needs zarr: {INSTALL_HINT}") from None
    return zarr


def release_arrays() -> int:
    """Forget the zarr arrays this process keeps open between runs; returns how many.

    Examples
    --------
    >>> release_arrays() >= 0
    True
    """
    with _LOCK:
        n = len(_ARRAYS)
        _ARRAYS.clear()
    return n


_files.RELEASE_HOOKS.append(release_arrays)


def _meta_mtime(folder: str) -> int:
    for name in _META_FILES:
        p = os.path.join(folder, name)
        if os.path.exists(p):
            return os.stat(p).st_mtime_ns
    return 0


def checked_store(path) -> str:
    """``path`` as a string after checking that it is a zarr store folder."""
    if path is None:
        raise DataSetError("give the zarr store folder as path=")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataSetError(f"no such zarr store: {path!r}")
    if not os.path.isdir(path):
        raise DataSetError(
            f"{path!r} is a file, not a zarr store folder (a folder with "
            "zarr.json, .zarray or .zgroup); zipped stores: unzip them first"
        )
    if not any(os.path.exists(os.path.join(path, n)) for n in _META_FILES):
        raise DataSetError(
            f"{path!r} is a folder without zarr.json, .zarray or .zgroup: "
            "not a zarr store (give the store's root folder)"
        )
    return path


def open_array(path: str, ds_path: str | None):
    """The zarr array at ``ds_path`` of the store ``path`` (None: the root), kept per process."""
    zarr = zarr_module()
    key = (
        os.path.abspath(path),
        ds_path or "",
        _meta_mtime(path),
        _meta_mtime(os.path.join(path, ds_path or "")),
    )
    with _LOCK:
        arr = _ARRAYS.get(key)
        if arr is not None:
            _ARRAYS.move_to_end(key)
            return arr
    try:
        node = zarr.open(path, mode="r")
        if ds_path:
            node = node[ds_path.strip("/")]
    except KeyError:
        raise DataSetError(f"the zarr store {path!r} has no array {ds_path!r}") from None
    except Exception as e:  # noqa: BLE001 - zarr raises many kinds for damaged metadata
        raise DataSetError(f"zarr cannot open {path!r}: {e}") from None
    with _LOCK:
        _ARRAYS[key] = node
        while len(_ARRAYS) > _MAX_ARRAYS:
            _ARRAYS.popitem(last=False)
    return node


def find_arrays(group) -> list[tuple[str, tuple, np.dtype]]:
    """Every numeric array of 3 to 5 dimensions in a zarr group: ``(path, shape, dtype)``."""
    zarr = zarr_module()
    out = []
    for name, node in group.members(max_depth=None):
        if (
            isinstance(node, zarr.Array)
            and 3 <= node.ndim <= 5
            and np.dtype(node.dtype).kind in "uifcb"
            and node.size
        ):
            out.append((name, tuple(node.shape), np.dtype(node.dtype)))
    return sorted(out)


def _codec_names(arr) -> str | None:
    names = []
    for attr in ("filters", "compressors"):
        for c in getattr(arr, attr, None) or ():
            name = getattr(c, "codec_id", None) or type(c).__name__.replace("Codec", "").lower()
            cname = getattr(c, "cname", None)
            if cname is not None:
                name = f"{name}-{getattr(cname, 'value', cname)}"
            names.append(str(name))
    return "+".join(names) or None


class ZarrPartition(Partition):
    """Frames of a zarr array, read chunk-aligned in the worker that reads them."""

    def __init__(
        self, shape, dtype, start, stop, index, *, path, ds_path, geometry, file_nav, nav_chunks
    ):
        super().__init__(shape, dtype, start, stop, index)
        self.path = path
        self.ds_path = ds_path
        self.geometry = geometry
        self.file_nav = file_nav
        self.nav_chunks = nav_chunks

    def _block_reader(self):
        arr = open_array(self.path, self.ds_path)
        tail = (slice(None),) * self.shape.sig_dims

        def read_block(slices, out):
            out[...] = arr[tuple(slices) + tail]

        return read_block

    def _read_file(self, lo, hi):
        return read_flat(
            self._block_reader(), lo, hi, self.file_nav, self.shape.sig, self.dtype, reuse=True
        )

    def _take_file(self, file_idx):
        return take_by_chunk(
            self._block_reader(),
            file_idx,
            self.file_nav,
            self.nav_chunks,
            self.shape.sig,
            self.dtype,
        )

    def read(self, start, stop):
        return self.geometry.read(self._read_file, start, stop, self.shape.sig, self.dtype)

    def take(self, indices):
        return self.geometry.take(self._take_file, indices, self.shape.sig, self.dtype)


class ZarrDataSet(DataSet):
    """A zarr v2 or v3 array of 3 to 5 dimensions, read chunk by chunk.

    Parameters
    ----------
    path : str or os.PathLike
        The store folder.
    ds_path : str, optional
        The array inside a group store; by default the store's root array, or
        the one large 3-5 D array of the group.
    sig_dims : int
        Trailing signal dimensions, 1 or 2.
    nav_shape, sync_offset
        See :mod:`udfwidgets.io.geometry`.
    num_partitions : int, optional
        Override the number of partitions (the default follows the chunks).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.zarr import ZarrDataSet, write_zarr
    >>> data = np.arange(4 * 5 * 6 * 6, dtype=np.uint16).reshape(4, 5, 6, 6)
    >>> p = write_zarr(os.path.join(tempfile.mkdtemp(), "scan.zarr"), data,
    ...                chunks=(2, 5, 6, 6), compressor="zstd")
    >>> ds = ZarrDataSet(p)
    >>> ds.shape, ds.metadata["chunks"], ds.metadata["zarr_format"]
    (Shape((4, 5, 6, 6), sig_dims=2), (2, 5, 6, 6), 3)
    """

    kind = "zarr"

    def __init__(
        self,
        path,
        ds_path: str | None = None,
        sig_dims: int = 2,
        nav_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
    ):
        super().__init__(num_partitions)
        zarr = zarr_module()
        self.path = checked_store(path)
        node = open_array(self.path, ds_path)
        if not isinstance(node, zarr.Array):
            if ds_path is not None:
                raise DataSetError(f"{ds_path!r} in {self.path!r} is a group, not an array")
            cands = find_arrays(node)
            if not cands:
                raise DataSetError(
                    f"the zarr store {self.path!r} holds no array of 3 to 5 "
                    "dimensions (a scan of frames)"
                )
            largest = max(math.prod(s) * d.itemsize for _, s, d in cands)
            big = [c for c in cands if math.prod(c[1]) * c[2].itemsize * 4 >= largest]
            if len(big) != 1:
                listing = "; ".join(f"{p} {s} {d}" for p, s, d in cands)
                raise DataSetError(
                    f"{self.path!r} holds several arrays that could be the scan: "
                    f"{listing}. Choose one with ds_path="
                )
            ds_path = big[0][0]
            node = open_array(self.path, ds_path)
        arr = node
        self.ds_path = ds_path
        dtype = np.dtype(arr.dtype)
        if dtype.kind not in "uifcb":
            raise DataSetError(
                f"the zarr array in {self.path!r} has dtype {dtype}; a scan needs a numeric dtype"
            )
        if not 3 <= arr.ndim <= 5:
            raise DataSetError(
                f"the zarr array in {self.path!r} has shape {arr.shape}: a scan "
                "needs 3 to 5 dimensions"
            )
        check_sig_dims(arr.ndim, sig_dims)
        self.dtype = dtype
        self.file_nav = tuple(int(n) for n in arr.shape[: arr.ndim - sig_dims])
        sig = tuple(int(n) for n in arr.shape[arr.ndim - sig_dims :])
        read_unit = getattr(arr, "shards", None) or arr.chunks
        self.chunks = tuple(int(c) for c in read_unit)
        self.nav_chunks = self.chunks[: len(self.file_nav)]
        self.compression = _codec_names(arr)
        self.geometry = resolve(
            math.prod(self.file_nav),
            nav_shape,
            sync_offset,
            file_nav_shape=self.file_nav,
            what=repr(self.path),
        )
        self.sync_offset = self.geometry.sync_offset
        self.shape = Shape(self.geometry.nav_shape + sig, sig_dims=sig_dims)
        self.metadata = {
            "format": "zarr",
            "zarr_format": int(arr.metadata.zarr_format),
            "ds_path": ds_path,
            "chunks": self.chunks,
            "compression": self.compression,
            "file_nav_shape": self.file_nav,
        }
        attrs = dict(arr.attrs)
        for key in ("pixel_size", "pixel_unit", "scan_step", "scan_unit", "detector"):
            if key in attrs:
                self.metadata[key] = attrs[key]

    def partition_bounds(self, num_workers: int) -> list[tuple[int, int]]:
        return aligned_bounds(
            self.shape.nav.size,
            self.geometry.file_frames,
            self.sync_offset,
            chunk_row_frames(self.file_nav, self.nav_chunks),
            math.prod(self.shape.sig) * self.dtype.itemsize,
            num_workers,
            self.num_partitions,
            rereads_cost=True,
        )

    def _make_partition(self, start, stop, index):
        return ZarrPartition(
            self.shape,
            self.dtype,
            start,
            stop,
            index,
            path=self.path,
            ds_path=self.ds_path,
            geometry=self.geometry,
            file_nav=self.file_nav,
            nav_chunks=self.nav_chunks,
        )

    def _repr_items(self) -> dict:
        items = {"zarr_format": self.metadata["zarr_format"], "chunks": self.chunks}
        if self.ds_path:
            items["ds_path"] = self.ds_path
        items["compression"] = self.compression or "none"
        return items

    def __repr__(self) -> str:
        return dataset_repr(self, self._repr_items())


def _compressors(compressor, zarr_format: int):
    if compressor == "default":
        return "auto"
    if compressor is None:
        return None
    if not isinstance(compressor, str):
        return compressor
    if zarr_format == 3:
        from zarr import codecs

        table = {
            "zstd": lambda: codecs.ZstdCodec(level=3),
            "blosc": lambda: codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),
            "gzip": lambda: codecs.GzipCodec(level=4),
        }
    else:
        import numcodecs

        table = {
            "zstd": lambda: numcodecs.Zstd(level=3),
            "blosc": lambda: numcodecs.Blosc(cname="lz4", clevel=5, shuffle=1),
            "gzip": lambda: numcodecs.GZip(level=4),
        }
    if compressor not in table:
        raise ValueError(
            f"compressor={compressor!r}: use None, 'default', 'zstd', 'blosc', "
            "'gzip' or a codec object"
        )
    return table[compressor]()


def write_zarr(
    path: str | os.PathLike,
    data,
    chunks: Sequence[int] | None = None,
    zarr_format: int = 3,
    compressor=None,
    overwrite: bool = False,
    sig_dims: int = 2,
) -> str:
    """Write a scan ``(*nav, *sig)`` as a zarr array store, atomically; returns the path.

    Parameters
    ----------
    path : str or os.PathLike
        The store folder to create.
    data : array_like
        The frames (written in blocks along the first axis).
    chunks : tuple of int, optional
        Chunk shape; by default one frame row ``(1, ..., *sig)``.
    zarr_format : int
        2 or 3.
    compressor : None, str or codec
        None (uncompressed), ``"default"`` (zarr's default), ``"zstd"``,
        ``"blosc"``, ``"gzip"`` or a codec object.
    overwrite : bool
        Replace an existing store (only once the new one is complete).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> p = write_zarr(os.path.join(tempfile.mkdtemp(), "a.zarr"), np.ones((2, 3, 4, 4)),
    ...                zarr_format=2)
    >>> sorted(os.listdir(p))[:2]
    ['.zarray', '.zattrs']
    """
    zarr = zarr_module()
    if zarr_format not in (2, 3):
        raise ValueError(f"zarr_format must be 2 or 3, got {zarr_format!r}")
    shape = tuple(int(n) for n in np.shape(data))
    dtype = np.dtype(getattr(data, "dtype", None) or np.asarray(data).dtype)
    check_sig_dims(len(shape), sig_dims)
    if chunks is None:
        chunks = (1,) * (len(shape) - sig_dims) + shape[len(shape) - sig_dims :]
    chunks = tuple(min(int(c), n) for c, n in zip(chunks, shape))
    comp = _compressors(compressor, zarr_format)
    path = check_target(path, overwrite, directory=True)
    with atomic_output(path, overwrite=overwrite, directory=True) as tmp:
        arr = zarr.create_array(
            store=tmp,
            shape=shape,
            dtype=dtype,
            chunks=chunks,
            compressors=comp,
            zarr_format=zarr_format,
            fill_value=0,
        )
        row_bytes = max(1, math.prod(shape[1:]) * dtype.itemsize)
        step = max(chunks[0], (64 << 20) // row_bytes // chunks[0] * chunks[0])
        for i in range(0, shape[0], step):
            arr[i : i + step] = np.asarray(data[i : i + step], dtype=dtype)
    return path


def sniff(path: str) -> bool:
    """True for a folder with ``zarr.json``, ``.zarray`` or ``.zgroup``; never raises.

    Examples
    --------
    >>> import tempfile
    >>> sniff(tempfile.mkdtemp())
    False
    """
    try:
        path = os.fspath(path)
        return os.path.isdir(path) and any(
            os.path.exists(os.path.join(path, n)) for n in _META_FILES
        )
    except Exception:  # noqa: BLE001
        return False
