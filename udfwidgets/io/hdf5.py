"""HDF5 datasets through h5py: plain HDF5, EMD (py4DSTEM and NCEM), NeXus and HyperSpy ``.hspy``.

``ctx.load("hdf5", path=..., ds_path=None)`` opens one dataset of 3 to 5
dimensions (1 to 3 navigation dimensions, then the signal). Without
``ds_path`` the file's layout decides (the ``data`` of an EMD group, a NeXus
``NXdata`` signal, HyperSpy's ``Experiments/<title>/data``), else the one
large 3-5 D dataset; when several could be meant, the error lists them.

How it reads:

- contiguous, unfiltered datasets are memory-mapped like ``.npy`` files;
- chunked (and compressed) datasets are read with ``read_direct`` over
  hyperslabs of whole chunk rows: partitions follow the chunk grid along the
  navigation axes (:mod:`udfwidgets.io.chunked`), so each chunk is read and
  decompressed once per run; with an roi, only the chunks that hold selected
  frames are read, each once;
- gzip-only datasets whose chunks hold whole frames are read by
  :mod:`udfwidgets.io.inflate` instead (chunk offsets from HDF5's chunk index,
  libdeflate decompressing straight into the partition buffer) where
  libdeflate is installed, and bitshuffle-LZ4-only ones by
  :mod:`udfwidgets.io.bitshuffle` (hdf5plugin's C decoder, straight into the
  partition buffer; an roi's frames decoded from their blocks only).

Each worker opens the file itself and keeps it open between runs in a small
per-process cache keyed by the file's identity and modification time
(:func:`release_files` closes them; ``Context.release_files()`` calls it).
h5py objects are never pickled: datasets and partitions carry the path and
parameters only. ``hdf5plugin`` is imported before any read, so the
bitshuffle, LZ4, Zstd and Blosc filters are available where it is installed.
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
from .cache import PerFileCache, file_identity
from .chunked import (
    aligned_bounds,
    chunk_row_frames,
    dataset_repr,
    read_flat,
    take_by_chunk,
)
from .chunkread import cached_reader
from .dataset import DataSet, DataSetError, Partition, check_sig_dims
from .files import file_map
from .geometry import resolve
from .shape import Shape

__all__ = [
    "COMPRESSIONS",
    "LAYOUTS",
    "HDF5DataSet",
    "find_datasets",
    "release_files",
    "sniff",
    "write_hdf5",
]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
INSTALL_HINT = "pip install 'udfwidgets[formats]'"
#: compression names of :func:`write_hdf5`
COMPRESSIONS = (None, "gzip", "lzf", "bitshuffle-lz4", "lz4", "zstd", "blosc")
#: file layouts of :func:`write_hdf5`
LAYOUTS = ("plain", "emd", "hspy", "nexus", "ncem")
#: known filter ids -> names (HDF5's own and hdf5plugin's)
FILTER_NAMES = {
    1: "gzip",
    2: "shuffle",
    3: "fletcher32",
    4: "szip",
    5: "nbit",
    6: "scaleoffset",
    32000: "lzf",
    32001: "blosc",
    32004: "lz4",
    32008: "bitshuffle",
    32015: "zstd",
    32026: "blosc2",
    307: "bzip2",
}
_HDF5PLUGIN_FILTERS = {32001, 32004, 32008, 32015, 32026, 307}

_LOCK = threading.RLock()
_FILES: OrderedDict[tuple, Any] = OrderedDict()
_MAX_FILES = 16


def h5py_module():
    """h5py, with hdf5plugin's filters registered where hdf5plugin is installed.

    Examples
    --------
    >>> h5py_module().__name__
    'h5py'
    """
    try:
        import h5py
    except ImportError:
        raise DataSetError(f"reading HDF5 files needs h5py: {INSTALL_HINT}") from None
    try:
        import hdf5plugin  # noqa: F401  (registers the bitshuffle/LZ4/Zstd/Blosc filters)
    except ImportError:
        pass
    return h5py


def checked_file(path, what: str = "HDF5 file") -> str:
    """``path`` as a string, after checking it is a non-empty regular file.

    Examples
    --------
    >>> import tempfile
    >>> checked_file(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    udfwidgets.io.dataset.DataSetError: ... is a folder, not an HDF5 file...
    """
    if path is None:
        raise DataSetError(f"give the {what} as path=")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataSetError(f"no such file: {path!r}")
    if os.path.isdir(path):
        raise DataSetError(
            f"{path!r} is a folder, not an {what}: give the file's path "
            "(a zarr store folder opens with ctx.load('zarr', path=...))"
        )
    if not os.path.isfile(path):
        raise DataSetError(f"{path!r} is not a regular file")
    if os.path.getsize(path) == 0:
        raise DataSetError(
            f"{path!r} is empty (0 bytes): the acquisition or copy did not "
            "finish; copy the file again"
        )
    return path


def open_file(path: str):
    """The h5py File of ``path``, opened read-only once per process and kept open.

    A rewritten file (other inode, size or modification time) is opened
    again. Raises :class:`DataSetError` for files HDF5 cannot open.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> p = write_hdf5(os.path.join(tempfile.mkdtemp(), "a.h5"), np.zeros((2, 4, 4)))
    >>> open_file(p) is open_file(p)
    True
    """
    h5py = h5py_module()
    key = file_identity(path)
    with _LOCK:
        f = _FILES.get(key)
        if f is not None and f.id.valid:
            _FILES.move_to_end(key)
            return f
        try:
            f = h5py.File(path, "r")  # default locking: the user may open it with h5py too
        except OSError as e:
            raise DataSetError(_open_error(path, e)) from None
        _FILES[key] = f
        while len(_FILES) > _MAX_FILES:
            _, old = _FILES.popitem(last=False)
            _close(old)
        return f


def _open_error(path: str, e: Exception) -> str:
    msg = str(e)
    if "truncated" in msg:
        return (
            f"{path!r} is truncated or damaged ({msg}); the write or copy did not finish: "
            "copy the file again"
        )
    if "signature" in msg:
        with open(path, "rb") as fh:
            head = fh.read(8)
        return (
            f"{path!r} is not an HDF5 file (it starts with {head!r}, not the HDF5 "
            "signature); open it with its own kind, or ctx.load('auto', path=...)"
        )
    return f"HDF5 cannot open {path!r}: {msg}"


def _close(f) -> None:
    try:
        f.close()
    except Exception:  # noqa: BLE001 - closing a file whose handle HDF5 already dropped
        pass


def release_files() -> int:
    """Close the HDF5 files this process keeps open between runs; returns how many.

    Examples
    --------
    >>> release_files() >= 0
    True
    """
    with _LOCK:
        n = len(_FILES)
        for f in _FILES.values():
            _close(f)
        _FILES.clear()
        _INSPECTED.clear()
    return n


_files.RELEASE_HOOKS.append(release_files)


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == (1,):
        return _text(value[0])
    return str(value)


# --- filters -------------------------------------------------------------------------------
def filters_of(dset) -> list[tuple[int, str, tuple]]:
    """``(id, name, cd_values)`` of each filter in a dataset's pipeline.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> p = write_hdf5(os.path.join(tempfile.mkdtemp(), "a.h5"), np.zeros((2, 4, 4)),
    ...                compression="gzip")
    >>> [name for _, name, _ in filters_of(open_file(p)["data"])]
    ['gzip']
    """
    plist = dset.id.get_create_plist()
    out = []
    for i in range(plist.get_nfilters()):
        fid, _flags, values, name = plist.get_filter(i)
        out.append(
            (int(fid), FILTER_NAMES.get(int(fid), _text(name) or f"filter {fid}"), tuple(values))
        )
    return out


def compression_name(filters: list[tuple[int, str, tuple]]) -> str | None:
    """A short name of a filter pipeline, e.g. ``'bitshuffle-lz4'`` or ``'shuffle+gzip'``.

    Examples
    --------
    >>> compression_name([(32008, "bitshuffle", (0, 3, 2, 0, 2))])
    'bitshuffle-lz4'
    >>> compression_name([]) is None
    True
    """
    names = []
    for fid, name, values in filters:
        if fid == 32008 and len(values) > 4:
            name = {2: "bitshuffle-lz4", 3: "bitshuffle-zstd"}.get(int(values[4]), "bitshuffle")
        names.append(name)
    return "+".join(names) or None


def check_filters(dset, path: str, ds_path: str) -> None:
    """Raise :class:`DataSetError` naming hdf5plugin when a filter cannot be decoded here."""
    h5py = h5py_module()
    missing = [(fid, name) for fid, name, _ in filters_of(dset) if not h5py.h5z.filter_avail(fid)]
    if missing:
        names = ", ".join(f"{name} (filter id {fid})" for fid, name in missing)
        raise DataSetError(
            f"{path!r}: the dataset {ds_path!r} is compressed with {names}, which is not "
            "installed here. Install hdf5plugin (pip install hdf5plugin, or "
            f"{INSTALL_HINT}), which provides the bitshuffle, LZ4, Zstd and Blosc filters, "
            "in every environment that reads the file"
        )


# --- finding the dataset -------------------------------------------------------------------
def layout_of(f) -> str:
    """Which convention a file follows: ``'hspy'``, ``'nexus'``, ``'emd'``, ``'ncem'`` or ``'hdf5'``.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> p = write_hdf5(os.path.join(tempfile.mkdtemp(), "a.hspy"), np.zeros((2, 4, 4)),
    ...                layout="hspy")
    >>> layout_of(open_file(p))
    'hspy'
    """
    if "HyperSpy" in _text(f.attrs.get("file_format", "")) or "Experiments" in f:
        return "hspy"
    for obj in f.values():
        if _text(obj.attrs.get("NX_class", "")) == "NXentry":
            return "nexus"
    emd = _emd_groups(f)
    if emd:
        return "ncem" if all(g.startswith("/data/") for g in emd) else "emd"
    return "hdf5"


def _emd_groups(f) -> list[str]:
    h5py = h5py_module()
    found = []

    def visit(name, obj):
        if isinstance(obj, h5py.Group):
            t = obj.attrs.get("emd_group_type")
            if t is not None and _text(t) in ("1", "array") and "data" in obj:
                found.append("/" + name)

    f.visititems(visit)
    return found


def _layout_datasets(f, layout: str) -> list[str]:
    """The datasets a layout names as its data (may be empty)."""
    h5py = h5py_module()
    out = []
    if layout == "hspy" and "Experiments" in f:
        for g in f["Experiments"].values():
            if isinstance(g, h5py.Group) and isinstance(g.get("data"), h5py.Dataset):
                out.append(g["data"].name)
    elif layout == "nexus":

        def visit(name, obj):
            if isinstance(obj, h5py.Group) and _text(obj.attrs.get("NX_class", "")) == "NXdata":
                sig = _text(obj.attrs.get("signal", "data"))
                if isinstance(obj.get(sig), h5py.Dataset):
                    out.append(obj[sig].name)

        f.visititems(visit)
    elif layout in ("emd", "ncem"):
        out = [g.rstrip("/") + "/data" for g in _emd_groups(f)]
    return out


def find_datasets(f) -> list[tuple[str, tuple, np.dtype]]:
    """Every numeric dataset of 3 to 5 dimensions in an open file: ``(path, shape, dtype)``.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> p = write_hdf5(os.path.join(tempfile.mkdtemp(), "a.h5"), np.zeros((2, 3, 4, 4)))
    >>> [(name, shape, str(dtype)) for name, shape, dtype in find_datasets(open_file(p))]
    [('/data', (2, 3, 4, 4), 'float64')]
    """
    h5py = h5py_module()
    found = []

    def visit(name, obj):
        if (
            isinstance(obj, h5py.Dataset)
            and 3 <= obj.ndim <= 5
            and obj.dtype.kind in "uifcb"
            and obj.size > 0
        ):
            found.append(("/" + name, tuple(obj.shape), obj.dtype))

    f.visititems(visit)
    return found


#: what :func:`inspected` found, per file version
_INSPECTED = PerFileCache(size=_MAX_FILES)


def inspected(path: str) -> tuple[str, list[tuple[str, tuple, np.dtype]]]:
    """:func:`layout_of` and :func:`find_datasets` of a file, worked out once per file version.

    ``ctx.load`` ("auto" sniffs the file, then the dataset opens it) needs
    both; walking the file's objects twice per load was most of what opening
    a dataset cost. The key is the file's identity and modification time.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> p = write_hdf5(os.path.join(tempfile.mkdtemp(), "a.h5"), np.zeros((2, 3, 4, 4)))
    >>> layout, found = inspected(p)
    >>> layout, [name for name, _, _ in found]
    ('hdf5', ['/data'])
    """

    def inspect() -> tuple[str, list]:
        f = open_file(path)
        return layout_of(f), find_datasets(f)

    return _INSPECTED.get(file_identity(path), inspect)


def choose_dataset(f, path: str, layout: str, candidates: list | None = None) -> str:
    """The path of the dataset to open when no ``ds_path`` is given."""
    if candidates is None:
        candidates = find_datasets(f)
    named = [p for p in _layout_datasets(f, layout) if p in {c[0] for c in candidates}]
    if len(named) == 1:
        return named[0]
    pool = [c for c in candidates if c[0] in named] if named else candidates
    if not pool:
        entry = f.get("/entry/data")
        if entry is not None and entry.get("data_000001", getlink=True) is not None:
            raise DataSetError(
                f"{path!r} is a DECTRIS master file (its frames are in linked "
                "data files): open it with ctx.load('dectris', path=...)"
            )
        raise DataSetError(
            f"{path!r} holds no dataset of 3 to 5 dimensions (a scan of frames); "
            f"its datasets: {_listing(f) or 'none'}. Give ds_path= for the scan's dataset"
        )
    largest = max(math.prod(s) * d.itemsize for _, s, d in pool)
    big = [c for c in pool if math.prod(c[1]) * c[2].itemsize * 4 >= largest]
    if len(big) == 1:
        return big[0][0]
    listing = "; ".join(f"{p} {s} {d}" for p, s, d in pool)
    raise DataSetError(
        f"{path!r} holds several datasets that could be the scan: {listing}. "
        "Choose one with ds_path="
    )


def _listing(f, limit: int = 12) -> str:
    h5py = h5py_module()
    names: list[str] = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and len(names) < limit:
            names.append(f"/{name} {tuple(obj.shape)}")

    f.visititems(visit)
    return "; ".join(names)


# --- metadata ------------------------------------------------------------------------------
def _axes_metadata(steps: list, units: list, nav_dims: int, meta: dict) -> None:
    nav_steps, sig_steps = steps[:nav_dims], steps[nav_dims:]
    nav_units, sig_units = units[:nav_dims], units[nav_dims:]
    if any(s is not None for s in nav_steps):
        meta["scan_step"] = tuple(nav_steps)
        meta["scan_unit"] = next((u for u in nav_units if u), None)
    if any(s is not None for s in sig_steps):
        meta["pixel_size"] = tuple(sig_steps)
        meta["pixel_unit"] = next((u for u in sig_units if u), None)


def _vector_step(dset) -> float | None:
    if dset.ndim != 1 or dset.shape[0] < 2 or dset.dtype.kind not in "uif":
        return None
    v = dset[:2]
    return float(v[1] - v[0])


def read_metadata(f, ds_path: str, layout: str, nav_dims: int) -> dict:
    """What the file says about the scan: axis steps and units, detector fields."""
    h5py = h5py_module()
    meta: dict = {}
    dset = f[ds_path]
    group = dset.parent
    try:
        if layout == "hspy":
            steps, units = [], []
            for i in range(dset.ndim):
                ax = group.get(f"axis-{i}")
                a = ax.attrs if ax is not None else {}
                steps.append(float(a["scale"]) if "scale" in a else None)
                u = _text(a.get("units", "")) if "units" in a else ""
                units.append(None if u in ("", "<undefined>") else u)
            _axes_metadata(steps, units, nav_dims, meta)
            title = group.name.rsplit("/", 1)[-1]
            meta["title"] = title
        elif layout in ("emd", "ncem"):
            first = 1 if f"dim{dset.ndim}" in group else 0
            steps, units = [], []
            for i in range(dset.ndim):
                d = group.get(f"dim{i + first}")
                if isinstance(d, h5py.Dataset):
                    steps.append(_vector_step(d))
                    u = _text(d.attrs.get("units", ""))
                    units.append(u or None)
                else:
                    steps.append(None)
                    units.append(None)
            _axes_metadata(steps, units, nav_dims, meta)
        elif layout == "nexus":
            axes = group.attrs.get("axes")
            if axes is not None:
                names = [_text(a) for a in np.atleast_1d(axes)]
                steps, units = [], []
                for name in names[: dset.ndim]:
                    d = group.get(name)
                    if isinstance(d, h5py.Dataset):
                        steps.append(_vector_step(d))
                        units.append(_text(d.attrs.get("units", "")) or None)
                    else:
                        steps.append(None)
                        units.append(None)
                if len(steps) == dset.ndim:
                    _axes_metadata(steps, units, nav_dims, meta)
            entry = group.parent
            det = entry.get("instrument/detector")
            if isinstance(det, h5py.Group):
                for key, name in (("count_time", "exposure_s"), ("description", "detector")):
                    if key in det:
                        v = det[key][()]
                        meta[name] = _text(v) if name == "detector" else float(v)
    except (KeyError, ValueError, TypeError, OSError):
        pass  # metadata is best effort: the data still open
    return meta


# --- dataset and partitions ----------------------------------------------------------------
def _dataset(path: str, ds_path: str):
    f = open_file(path)
    try:
        return f[ds_path]
    except KeyError:
        raise DataSetError(
            f"{path!r} has no dataset {ds_path!r}; its datasets: {_listing(f)}"
        ) from None


def _read_error(path: str, ds_path: str, e: Exception) -> DataSetError:
    msg = str(e)
    hint = ""
    if "filter" in msg or "plugin" in msg:
        hint = (
            " A compression filter is missing in this process: install hdf5plugin "
            f"({INSTALL_HINT}) where the workers run."
        )
    return DataSetError(f"reading {ds_path!r} of {path!r} failed: {msg}.{hint}")


class H5MapPartition(Partition):
    """Frames of a contiguous, unfiltered HDF5 dataset, through a memory map of the file."""

    def __init__(self, shape, dtype, start, stop, index, *, path, offset, geometry):
        super().__init__(shape, dtype, start, stop, index)
        self.path = path
        self.offset = offset
        self.geometry = geometry
        self._mm = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_mm"] = None
        return state

    def _map(self) -> np.ndarray:
        if self._mm is None:
            sig = tuple(self.shape.sig)
            n = self.geometry.file_frames
            mm = file_map(self.path, self.dtype, self.offset, n, sig)
            if mm is None:  # large file in the user's process: a map dropped by close()
                mm = np.memmap(
                    self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=(n,) + sig
                ).view(np.ndarray)
            self._mm = mm
        return self._mm

    def close(self) -> None:
        self._mm = None

    def read(self, start: int, stop: int) -> np.ndarray:
        mm = self._map()
        return self.geometry.read(lambda lo, hi: mm[lo:hi], start, stop, self.shape.sig, self.dtype)

    def take(self, indices: np.ndarray) -> np.ndarray:
        mm = self._map()
        return self.geometry.take(lambda i: mm[i], indices, self.shape.sig, self.dtype)


class H5Partition(Partition):
    """Frames of a chunked HDF5 dataset, read chunk-aligned in the worker that reads them."""

    def __init__(
        self,
        shape,
        dtype,
        start,
        stop,
        index,
        *,
        path,
        ds_path,
        geometry,
        file_nav,
        nav_chunks,
        decoder="auto",
    ):
        super().__init__(shape, dtype, start, stop, index)
        self.decoder = decoder
        self.path = path
        self.ds_path = ds_path
        self.geometry = geometry
        self.file_nav = file_nav
        self.nav_chunks = nav_chunks

    def _fast(self):
        if self.decoder != "auto":
            return None
        return cached_reader(
            self.path, self.ds_path, len(self.file_nav), lambda: _dataset(self.path, self.ds_path)
        )

    def _block_reader(self):
        fast = self._fast()
        if fast is not None:
            return fast.read_block
        dset = _dataset(self.path, self.ds_path)
        tail = (slice(None),) * self.shape.sig_dims

        def read_block(slices, out):
            dset.read_direct(out, source_sel=tuple(slices) + tail)

        return read_block

    def _read_file(self, lo: int, hi: int) -> np.ndarray:
        try:
            return read_flat(
                self._block_reader(),
                lo,
                hi,
                self.file_nav,
                self.shape.sig,
                self.dtype,
                reuse=True,
            )
        except OSError as e:
            raise _read_error(self.path, self.ds_path, e) from None

    def _take_file(self, file_idx: np.ndarray) -> np.ndarray:
        fast = self._fast()
        if fast is not None:
            out = np.empty((len(file_idx),) + tuple(self.shape.sig), dtype=self.dtype)
            fast.take(file_idx, out)
            return out
        try:
            return take_by_chunk(
                self._block_reader(),
                file_idx,
                self.file_nav,
                self.nav_chunks,
                self.shape.sig,
                self.dtype,
            )
        except OSError as e:
            raise _read_error(self.path, self.ds_path, e) from None

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.geometry.read(self._read_file, start, stop, self.shape.sig, self.dtype)

    def take(self, indices: np.ndarray) -> np.ndarray:
        return self.geometry.take(self._take_file, indices, self.shape.sig, self.dtype)


class HDF5DataSet(DataSet):
    """One dataset of 3 to 5 dimensions in an HDF5 file (plain, EMD, NeXus or HyperSpy).

    Parameters
    ----------
    path : str or os.PathLike
        The HDF5 file (``.h5``, ``.hdf5``, ``.emd``, ``.nxs``, ``.hspy``, ...).
    ds_path : str, optional
        The dataset inside the file, e.g. ``"/entry/data/data"``. By default
        the one the file's layout names, else the one large 3-5 D dataset.
    sig_dims : int
        Trailing signal dimensions, 1 or 2.
    nav_shape : tuple of int, optional
        Scan shape; by default the dataset's own navigation dimensions. See
        :mod:`udfwidgets.io.geometry`.
    sync_offset : int
        Navigation frame ``i`` is file frame ``i + sync_offset``.
    num_partitions : int, optional
        Override the number of partitions (the default follows the chunk grid).
    decoder : {"auto", "h5py"}
        ``"auto"``: gzip-only and bitshuffle-LZ4-only datasets chunked by
        whole frames are read and decompressed by :mod:`udfwidgets.io.inflate`
        (libdeflate) and :mod:`udfwidgets.io.bitshuffle` where their
        libraries are here, everything else by h5py; ``"h5py"``: always h5py
        (HDF5's filters), e.g. to compare.

    Attributes
    ----------
    metadata : dict
        ``format`` (the layout), ``ds_path``, ``chunks``, ``compression``,
        ``file_nav_shape`` and, where the layout records them, ``scan_step``,
        ``scan_unit``, ``pixel_size``, ``pixel_unit``, ``exposure_s``,
        ``detector``, ``title``.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.hdf5 import HDF5DataSet, write_hdf5
    >>> data = np.arange(4 * 6 * 8 * 8, dtype=np.uint16).reshape(4, 6, 8, 8)
    >>> p = write_hdf5(os.path.join(tempfile.mkdtemp(), "scan.h5"), data,
    ...                chunks=(1, 6, 8, 8), compression="gzip")
    >>> ds = HDF5DataSet(p)
    >>> ds.shape, ds.metadata["compression"]
    (Shape((4, 6, 8, 8), sig_dims=2), 'gzip')
    >>> ds.partition_bounds(num_workers=2)
    [(0, 6), (6, 12), (12, 18), (18, 24)]
    """

    kind = "hdf5"

    def __init__(
        self,
        path,
        ds_path: str | None = None,
        sig_dims: int = 2,
        nav_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
        decoder: str = "auto",
    ):
        super().__init__(num_partitions)
        if decoder not in ("auto", "h5py"):
            raise DataSetError(f"decoder={decoder!r}: use 'auto' (the default) or 'h5py'")
        self.decoder = decoder
        self.path = checked_file(path)
        f = open_file(self.path)
        self.layout, candidates = inspected(self.path)
        if ds_path is None:
            ds_path = choose_dataset(f, self.path, self.layout, candidates)
        ds_path = "/" + str(ds_path).lstrip("/")
        dset = _dataset(self.path, ds_path)
        h5py = h5py_module()
        if not isinstance(dset, h5py.Dataset):
            raise DataSetError(
                f"{ds_path!r} in {self.path!r} is a group, not a dataset; "
                f"its datasets: {_listing(f)}"
            )
        if dset.dtype.kind not in "uifcb":
            raise DataSetError(
                f"{ds_path!r} in {self.path!r} has dtype {dset.dtype}; a scan needs a numeric dtype"
            )
        if not 3 <= dset.ndim <= 5:
            raise DataSetError(
                f"{ds_path!r} in {self.path!r} has shape {dset.shape}: a scan needs 3 to 5 "
                "dimensions (1 to 3 navigation dimensions, then the frame)"
            )
        check_sig_dims(dset.ndim, sig_dims)
        check_filters(dset, self.path, ds_path)
        self.ds_path = ds_path
        self.sig_dims = sig_dims
        self.dtype = dset.dtype
        self.file_nav = tuple(dset.shape[: dset.ndim - sig_dims])
        sig = tuple(dset.shape[dset.ndim - sig_dims :])
        self.chunks = tuple(dset.chunks) if dset.chunks is not None else None
        self.nav_chunks = self.chunks[: len(self.file_nav)] if self.chunks else None
        self.filters = filters_of(dset)
        self.compression = compression_name(self.filters)
        offset = None
        if self.chunks is None and not self.filters and dset.external is None:
            offset = dset.id.get_offset()
        self.offset = None if offset is None else int(offset)
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
            "format": self.layout,
            "ds_path": ds_path,
            "chunks": self.chunks,
            "compression": self.compression,
            "file_nav_shape": self.file_nav,
        }
        self.metadata.update(read_metadata(f, ds_path, self.layout, len(self.file_nav)))

    @property
    def frame_bytes(self) -> int:
        return math.prod(self.shape.sig) * self.dtype.itemsize

    def partition_bounds(self, num_workers: int) -> list[tuple[int, int]]:
        """Partitions of whole chunk rows (see :func:`~udfwidgets.io.chunked.aligned_bounds`)."""
        if self.offset is not None:
            return super().partition_bounds(num_workers)
        return aligned_bounds(
            self.shape.nav.size,
            self.geometry.file_frames,
            self.sync_offset,
            chunk_row_frames(self.file_nav, self.nav_chunks),
            self.frame_bytes,
            num_workers,
            self.num_partitions,
            rereads_cost=bool(self.filters),
        )

    def _make_partition(self, start, stop, index):
        if self.offset is not None:
            return H5MapPartition(
                self.shape,
                self.dtype,
                start,
                stop,
                index,
                path=self.path,
                offset=self.offset,
                geometry=self.geometry,
            )
        return H5Partition(
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
            decoder=self.decoder,
        )

    def _repr_items(self) -> dict:
        items: dict[str, Any] = {"ds_path": self.ds_path, "layout": self.layout}
        items["chunks"] = (
            self.chunks
            if self.chunks
            else "contiguous (memory-mapped)"
            if self.offset is not None
            else "contiguous"
        )
        if self.compression:
            items["compression"] = self.compression
        return items

    def __repr__(self) -> str:
        return dataset_repr(self, self._repr_items())


# --- writer --------------------------------------------------------------------------------
def _filter_kwargs(compression, compression_opts) -> dict:
    if compression is None:
        return {}
    if compression not in COMPRESSIONS:
        raise ValueError(
            f"compression={compression!r}: use one of {', '.join(repr(c) for c in COMPRESSIONS)}"
        )
    if compression in ("gzip", "lzf"):
        kw = {"compression": compression}
        if compression_opts is not None:
            kw["compression_opts"] = compression_opts
        return kw
    try:
        import hdf5plugin
    except ImportError:
        raise DataSetError(
            f"compression={compression!r} needs hdf5plugin: {INSTALL_HINT}"
        ) from None
    opts = compression_opts
    if compression == "bitshuffle-lz4":
        return dict(hdf5plugin.Bitshuffle(nelems=0, cname="lz4"))
    if compression == "lz4":
        return dict(hdf5plugin.LZ4())
    if compression == "zstd":
        return dict(hdf5plugin.Zstd(clevel=3 if opts is None else int(opts)))
    return dict(
        hdf5plugin.Blosc(
            cname="lz4", clevel=5 if opts is None else int(opts), shuffle=hdf5plugin.Blosc.SHUFFLE
        )
    )


def _layout_path(layout: str, ds_path: str) -> str:
    return {
        "plain": "/" + ds_path.lstrip("/"),
        "emd": "/4DSTEM_experiment/data/datacubes/datacube_0/data",
        "ncem": "/data/scan/data",
        "hspy": "/Experiments/__unnamed__/data",
        "nexus": "/entry/data/data",
    }[layout]


def _axis_names(ndim: int, sig_dims: int) -> list[str]:
    nav = ["scan_z", "scan_y", "scan_x"][3 - (ndim - sig_dims) :]
    sig = ["detector_y", "detector_x"][2 - sig_dims :]
    return nav + sig


def _write_layout(f, layout: str, dset, sig_dims: int) -> None:
    ndim = dset.ndim
    names = _axis_names(ndim, sig_dims)
    group = dset.parent
    nav_dims = ndim - sig_dims
    if layout in ("emd", "ncem"):
        f.attrs["version_major"] = 0
        f.attrs["version_minor"] = 2
        group.attrs["emd_group_type"] = 1
        group.attrs["name"] = "datacube" if layout == "emd" else "scan"
        for i, n in enumerate(dset.shape):
            d = group.create_dataset(f"dim{i + 1}", data=np.arange(n, dtype=np.float64))
            d.attrs["name"] = names[i]
            d.attrs["units"] = "pixels"
        if layout == "ncem":
            for name in ("microscope", "sample", "user", "comments"):
                f.require_group(name)
    elif layout == "hspy":
        f.attrs["file_format"] = "HyperSpy"
        f.attrs["file_format_version"] = "3.1"
        for i, n in enumerate(dset.shape):
            ax = group.create_group(f"axis-{i}")
            ax.attrs.update(
                {
                    "name": names[i],
                    "size": int(n),
                    "scale": 1.0,
                    "offset": 0.0,
                    "units": "<undefined>",
                    "navigate": bool(i < nav_dims),
                }
            )
        md = group.create_group("metadata")
        gen = md.create_group("General")
        gen.attrs["title"] = ""
        sg = md.create_group("Signal")
        sg.attrs["signal_type"] = ""
    elif layout == "nexus":
        f.attrs["default"] = "entry"
        entry = f["entry"]
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["default"] = "data"
        group.attrs["NX_class"] = "NXdata"
        group.attrs["signal"] = "data"
        group.attrs["axes"] = np.array(names, dtype=object)
        for i, n in enumerate(dset.shape):
            d = group.create_dataset(names[i], data=np.arange(n, dtype=np.float64))
            d.attrs["units"] = "pixel"
            group.attrs[f"{names[i]}_indices"] = i


def write_hdf5(
    path: str | os.PathLike,
    data,
    ds_path: str = "/data",
    chunks: Sequence[int] | bool | None = None,
    compression: str | None = None,
    compression_opts=None,
    layout: str = "plain",
    overwrite: bool = False,
    sig_dims: int = 2,
) -> str:
    """Write a scan ``(*nav, *sig)`` to an HDF5 file, atomically; returns the path.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create.
    data : array_like
        Navigation dimensions (1 to 3) first, then the signal (any array with
        ``shape``, ``dtype`` and slicing, e.g. a memory map: written in blocks).
    ds_path : str
        Where the data go for ``layout="plain"`` (the other layouts have
        their own place, see :func:`_layout_path`).
    chunks : tuple of int, True or None
        HDF5 chunk shape; ``True`` lets h5py choose; None is contiguous storage,
        or one frame per chunk when compressing.
    compression : str or None
        ``None``, ``"gzip"``, ``"lzf"``, ``"bitshuffle-lz4"``, ``"lz4"``,
        ``"zstd"`` or ``"blosc"`` (the last four through hdf5plugin).
    compression_opts : optional
        Level for gzip, zstd and blosc.
    layout : str
        ``"plain"``, ``"emd"`` (py4DSTEM's EMD v0.2 layout), ``"ncem"`` (NCEM's
        Berkeley EMD ``/data/<name>``), ``"hspy"`` (HyperSpy) or ``"nexus"``.
    overwrite : bool
        Replace an existing file (only once the new one is complete).
    sig_dims : int
        Signal dimensions (for the axis descriptions of the layouts).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.hdf5 import write_hdf5, HDF5DataSet
    >>> data = np.ones((3, 4, 8, 8), dtype=np.uint16)
    >>> p = write_hdf5(os.path.join(tempfile.mkdtemp(), "scan.emd"), data, layout="emd",
    ...                chunks=(1, 4, 8, 8), compression="bitshuffle-lz4")
    >>> HDF5DataSet(p).metadata["format"], HDF5DataSet(p).ds_path
    ('emd', '/4DSTEM_experiment/data/datacubes/datacube_0/data')
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r}: use one of {', '.join(map(repr, LAYOUTS))}")
    shape = tuple(int(n) for n in np.shape(data))
    dtype = np.dtype(getattr(data, "dtype", None) or np.asarray(data).dtype)
    check_sig_dims(len(shape), sig_dims)
    if not 3 <= len(shape) <= 5:
        raise ValueError(f"data of shape {shape}: a scan has 3 to 5 dimensions")
    filt = _filter_kwargs(compression, compression_opts)
    if filt and chunks is None:
        chunks = (1,) * (len(shape) - sig_dims) + shape[len(shape) - sig_dims :]
    if isinstance(chunks, (tuple, list)):
        chunks = tuple(min(int(c), n) for c, n in zip(chunks, shape))
        if len(chunks) != len(shape):
            raise ValueError(f"chunks={chunks} does not match data of shape {shape}")
    path = check_target(path, overwrite)
    h5py = h5py_module()
    target = _layout_path(layout, ds_path)
    with atomic_output(path, overwrite=overwrite, suffix=".h5") as tmp:
        # No HDF5 file lock on a private temporary file: a process forked meanwhile (a
        # worker starting) would hold it for a moment and make the first reader fail.
        with h5py.File(tmp, "w", locking=False) as f:
            dset = f.create_dataset(target, shape=shape, dtype=dtype, chunks=chunks, **filt)
            rows = dset.chunks[0] if dset.chunks else 1
            row_bytes = max(1, math.prod(shape[1:]) * dtype.itemsize)
            step = max(rows, (64 << 20) // row_bytes // rows * rows)
            for i in range(0, shape[0], step):
                dset[i : i + step] = np.asarray(data[i : i + step], dtype=dtype)
            _write_layout(f, layout, dset, sig_dims)
    return path


# --- detection -----------------------------------------------------------------------------
def has_signature(path: str) -> bool:
    """True if the file starts with the HDF5 signature (also after a user block).

    Examples
    --------
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "x.h5")
    >>> _ = open(p, "wb").write(b"not hdf5")
    >>> has_signature(p)
    False
    """
    try:
        with open(path, "rb") as fh:
            for offset in (0, 512, 1024, 2048, 4096, 8192):
                fh.seek(offset)
                if fh.read(8) == HDF5_SIGNATURE:
                    return True
    except OSError:
        return False
    return False


def sniff(path: str) -> bool:
    """True if ``path`` is an HDF5 file holding a 3-5 D numeric dataset; never raises.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> p = write_hdf5(os.path.join(tempfile.mkdtemp(), "a.h5"), np.zeros((2, 4, 4)))
    >>> sniff(p), sniff(os.path.dirname(p))
    (True, False)
    """
    try:
        path = os.fspath(path)
        if not os.path.isfile(path) or not has_signature(path):
            return False
        return bool(inspected(path)[1])
    except Exception:  # noqa: BLE001 - sniffing a foreign file must never raise
        return False
