"""DECTRIS master files (ARINA, EIGER, QUADRO): ``ctx.load("dectris", path="..._master.h5")``.

A DECTRIS acquisition is a small *master* file and one or more *data* files.
The master holds ``/entry/data/data_000001``, ``data_000002``, ... as HDF5
external links to ``/entry/data/data`` in the data files (``(n, h, w)``
frames, one frame per chunk, bitshuffle-LZ4 compressed), and the detector's
description under ``/entry/instrument/detector``. Frames are taken in
acquisition order: the data files in the order of their link numbers. The
scan shape is usually not recorded: give ``nav_shape=`` (the default is one
navigation axis of all frames).

The data files are opened directly by each worker (the link targets are
resolved next to the master file, as DECTRIS writes them), with the same
per-process cache of open files as :mod:`udfwidgets.io.hdf5`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .atomic import atomic_output, check_target
from .chunked import aligned_bounds, dataset_repr, take_by_chunk
from .chunkread import cached_reader
from .dataset import DataSet, DataSetError, Partition
from .geometry import resolve
from .hdf5 import (
    _filter_kwargs,
    _read_error,
    check_filters,
    checked_file,
    compression_name,
    filters_of,
    h5py_module,
    has_signature,
    open_file,
)
from .shape import Shape

__all__ = ["DectrisDataSet", "sniff", "write_dectris"]

_LINK = re.compile(r"^data_(\d{6})$")

#: ``/entry/instrument/detector`` fields read into :attr:`DectrisDataSet.metadata`
DETECTOR_FIELDS = {
    "count_time": "exposure_s",
    "frame_time": "frame_time_s",
    "x_pixel_size": "x_pixel_size_m",
    "y_pixel_size": "y_pixel_size_m",
    "detector_distance": "detector_distance_m",
    "description": "detector",
    "detector_number": "serial_number",
    "sensor_material": "sensor_material",
    "sensor_thickness": "sensor_thickness_m",
    "bit_depth_image": "counter_depth",
    "beam_center_x": "beam_center_x_px",
    "beam_center_y": "beam_center_y_px",
}


def _value(dset):
    v = dset[()]
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray) and v.size == 1:
        return v.item()
    return v


def data_links(master: str) -> list[tuple[str, str]]:
    """``(data file, dataset path)`` of each ``/entry/data/data_NNNNNN`` link, in order.

    Raises :class:`DataSetError` naming a link target that does not exist.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> m = write_dectris(os.path.join(tempfile.mkdtemp(), "x_master.h5"),
    ...                   np.zeros((5, 4, 4), np.uint16), frames_per_file=2)
    >>> [os.path.basename(p) for p, _ in data_links(m)]
    ['x_data_000001.h5', 'x_data_000002.h5', 'x_data_000003.h5']
    """
    h5py = h5py_module()
    f = open_file(master)
    group = f.get("/entry/data")
    if not isinstance(group, h5py.Group):
        raise DataSetError(
            f"{master!r} has no /entry/data group: it is not a DECTRIS master "
            "file; open other HDF5 files with ctx.load('hdf5', path=...)"
        )
    names = sorted(n for n in group.keys() if _LINK.match(n))
    if not names:
        raise DataSetError(
            f"{master!r} has no /entry/data/data_000001 ...: it is not a DECTRIS "
            "master file; open other HDF5 files with ctx.load('hdf5', path=...)"
        )
    folder = os.path.dirname(os.path.abspath(master))
    out = []
    for name in names:
        link = group.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            target = link.filename
            if not os.path.isabs(target):
                target = os.path.join(folder, target)
            if not os.path.isfile(target):
                raise DataSetError(
                    f"{master!r}: /entry/data/{name} links to {link.filename!r}, which does "
                    f"not exist (looked for {target!r}). Copy every data file of the "
                    "acquisition next to the master file"
                )
            out.append((target, link.path))
        else:
            obj = group.get(name)
            if not isinstance(obj, h5py.Dataset):
                raise DataSetError(f"{master!r}: /entry/data/{name} is not a dataset")
            out.append((master, obj.name))
    return out


def read_detector_metadata(master: str) -> dict:
    """The detector description of a master file (fields where present)."""
    h5py = h5py_module()
    f = open_file(master)
    meta: dict = {}
    det = f.get("/entry/instrument/detector")
    if isinstance(det, h5py.Group):
        for key, name in DETECTOR_FIELDS.items():
            if isinstance(det.get(key), h5py.Dataset):
                try:
                    meta[name] = _value(det[key])
                except (OSError, TypeError, ValueError):
                    pass
        spec = det.get("detectorSpecific")
        if isinstance(spec, h5py.Group):
            for key in (
                "nimages",
                "ntrigger",
                "photon_energy",
                "x_pixels_in_detector",
                "y_pixels_in_detector",
                "frame_count_time",
                "software_version",
            ):
                if isinstance(spec.get(key), h5py.Dataset):
                    try:
                        meta[key] = _value(spec[key])
                    except (OSError, TypeError, ValueError):
                        pass
    beam = f.get("/entry/instrument/beam")
    if isinstance(beam, h5py.Group) and isinstance(beam.get("incident_wavelength"), h5py.Dataset):
        meta["wavelength_angstrom"] = _value(beam["incident_wavelength"])
    if "x_pixel_size_m" in meta and "y_pixel_size_m" in meta:
        meta["pixel_size"] = (meta["y_pixel_size_m"], meta["x_pixel_size_m"])
        meta["pixel_unit"] = "m"
    return meta


class DectrisPartition(Partition):
    """Frames of a DECTRIS acquisition, read across its data files in the worker."""

    def __init__(self, shape, dtype, start, stop, index, *, files, geometry, chunk):
        super().__init__(shape, dtype, start, stop, index)
        self.files = files  # [(path, ds_path, n_frames)]
        self.geometry = geometry
        self.chunk = chunk
        self._starts = np.cumsum([0] + [n for _, _, n in files])

    def with_paths(self, map_path):
        part = super().with_paths(map_path)
        part.files = [(map_path(path), ds_path, n) for path, ds_path, n in self.files]
        return part

    def _dset(self, k: int):
        path, ds_path, _ = self.files[k]
        return open_file(path)[ds_path]

    def _reader(self, k: int):
        """Our chunk reader of data file ``k`` (bitshuffle-LZ4 or gzip), or None: h5py reads it."""
        path, ds_path, _ = self.files[k]
        return cached_reader(path, ds_path, 1, lambda: self._dset(k))

    def _read_file(self, lo: int, hi: int) -> np.ndarray:
        sig = tuple(self.shape.sig)
        out = np.empty((hi - lo,) + sig, dtype=self.dtype)
        k = int(np.searchsorted(self._starts, lo, side="right")) - 1
        pos = lo
        while pos < hi:
            s0, s1 = int(self._starts[k]), int(self._starts[k + 1])
            b = min(hi, s1)
            try:
                fast = self._reader(k)
                if fast is not None:
                    fast.read_block((slice(pos - s0, b - s0),), out[pos - lo : b - lo])
                else:
                    self._dset(k).read_direct(
                        out[pos - lo : b - lo], source_sel=np.s_[pos - s0 : b - s0]
                    )
            except OSError as e:
                raise _read_error(self.files[k][0], self.files[k][1], e) from None
            pos, k = b, k + 1
        return out

    def _take_file(self, file_idx: np.ndarray) -> np.ndarray:
        sig = tuple(self.shape.sig)
        out = np.empty((len(file_idx),) + sig, dtype=self.dtype)
        which = np.searchsorted(self._starts, file_idx, side="right") - 1
        tail = (slice(None),) * len(sig)
        for k in np.unique(which):
            sel = which == k
            local = file_idx[sel] - self._starts[k]
            try:
                fast = self._reader(int(k))
                if fast is not None:
                    got = np.empty((len(local),) + sig, dtype=self.dtype)
                    fast.take(local, got)
                    out[sel] = got
                    continue
                dset = self._dset(int(k))

                def read_block(slices, block, dset=dset):
                    dset.read_direct(block, source_sel=tuple(slices) + tail)

                out[sel] = take_by_chunk(
                    read_block, local, (self.files[k][2],), (self.chunk,), sig, self.dtype
                )
            except OSError as e:
                raise _read_error(self.files[k][0], self.files[k][1], e) from None
        return out

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.geometry.read(self._read_file, start, stop, self.shape.sig, self.dtype)

    def take(self, indices: np.ndarray) -> np.ndarray:
        return self.geometry.take(self._take_file, indices, self.shape.sig, self.dtype)


class DectrisDataSet(DataSet):
    """A DECTRIS acquisition (ARINA, EIGER, QUADRO) through its master file.

    Parameters
    ----------
    path : str or os.PathLike
        The ``*_master.h5`` file; its data files must be next to it.
    nav_shape : tuple of int, optional
        Scan shape (1 to 3 dimensions); by default ``(n_frames,)``.
    sync_offset : int
        Navigation frame ``i`` is acquisition frame ``i + sync_offset``.
    num_partitions : int, optional
        Override the number of partitions.

    Attributes
    ----------
    metadata : dict
        ``format`` ("dectris"), ``data_files``, ``compression`` and the
        detector fields of the master file where present: ``detector``
        (description), ``exposure_s`` (count_time), ``frame_time_s``,
        ``pixel_size`` / ``x_pixel_size_m`` / ``y_pixel_size_m``,
        ``detector_distance_m``, ``counter_depth`` (bit_depth_image),
        ``wavelength_angstrom``, ``photon_energy``, ``nimages``, ``ntrigger``, ...

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.dectris import DectrisDataSet, write_dectris
    >>> data = np.arange(12 * 8 * 8, dtype=np.uint16).reshape(12, 8, 8)
    >>> m = write_dectris(os.path.join(tempfile.mkdtemp(), "scan_master.h5"), data,
    ...                   frames_per_file=5)
    >>> ds = DectrisDataSet(m, nav_shape=(3, 4))
    >>> ds.shape, ds.metadata["compression"], len(ds.metadata["data_files"])
    (Shape((3, 4, 8, 8), sig_dims=2), 'bitshuffle-lz4', 3)
    """

    kind = "dectris"

    def __init__(
        self,
        path,
        nav_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
    ):
        super().__init__(num_partitions)
        self.path = checked_file(path, "DECTRIS master file")
        files: list[tuple[str, str, int]] = []
        sig: tuple[int, ...] | None = None
        dtype: Any = None
        chunk: int | None = None
        links = data_links(self.path)
        for target, ds_path in links:
            try:
                dset = open_file(target)[ds_path]
            except KeyError:
                raise DataSetError(
                    f"{self.path!r} links to {ds_path!r} in {target!r}, which "
                    "has no such dataset: the data file is damaged or "
                    "not from this acquisition"
                ) from None
            except DataSetError as e:
                raise DataSetError(f"data file of {self.path!r}: {e}") from None
            if dset.ndim != 3:
                raise DataSetError(
                    f"{target!r}{ds_path} has shape {dset.shape}; DECTRIS data "
                    "files hold (frames, height, width)"
                )
            if sig is None:
                sig, dtype = tuple(dset.shape[1:]), dset.dtype
                chunk = dset.chunks[0] if dset.chunks else 1
                check_filters(dset, target, ds_path)
                self.compression = compression_name(filters_of(dset))
            elif tuple(dset.shape[1:]) != sig or dset.dtype != dtype:
                raise DataSetError(
                    f"{target!r} holds frames {dset.shape[1:]} {dset.dtype}, the first data "
                    f"file {sig} {dtype}: the files are not from one acquisition"
                )
            elif (dset.chunks[0] if dset.chunks else 1) != chunk:
                chunk = 1
            files.append((target, ds_path, int(dset.shape[0])))
        assert sig is not None and chunk is not None  # data_links gave at least one file
        self.files = [f for f in files if f[2] > 0]
        self.dtype = np.dtype(dtype)
        self.chunk = int(chunk)
        file_frames = sum(n for _, _, n in self.files)
        self.geometry = resolve(file_frames, nav_shape, sync_offset, what=repr(self.path))
        self.sync_offset = self.geometry.sync_offset
        self.shape = Shape(self.geometry.nav_shape + sig, sig_dims=2)
        self.metadata = {
            "format": "dectris",
            "data_files": [p for p, _, _ in self.files],
            "compression": self.compression,
            "chunks": (self.chunk,) + sig,
            "file_frames": file_frames,
        }
        self.metadata.update(read_detector_metadata(self.path))

    def partition_bounds(self, num_workers: int) -> list[tuple[int, int]]:
        row = self.chunk if all(n % self.chunk == 0 for _, _, n in self.files[:-1]) else 1
        return aligned_bounds(
            self.shape.nav.size,
            self.geometry.file_frames,
            self.sync_offset,
            row,
            math.prod(self.shape.sig) * self.dtype.itemsize,
            num_workers,
            self.num_partitions,
        )

    def _make_partition(self, start, stop, index):
        return DectrisPartition(
            self.shape,
            self.dtype,
            start,
            stop,
            index,
            files=self.files,
            geometry=self.geometry,
            chunk=self.chunk,
        )

    def _repr_items(self) -> dict:
        return {
            "files": len(self.files),
            "chunks": (self.chunk,) + tuple(self.shape.sig),
            "compression": self.compression or "none",
        }

    def __repr__(self) -> str:
        return dataset_repr(self, self._repr_items())


def _data_name(master: str, k: int) -> str:
    base = os.path.basename(master)
    stem = base[: -len("_master.h5")] if base.endswith("_master.h5") else os.path.splitext(base)[0]
    return f"{stem}_data_{k:06d}.h5"


def write_dectris(
    master_path: str | os.PathLike,
    data,
    frames_per_file: int = 100,
    compression: str | None = "bitshuffle-lz4",
    overwrite: bool = False,
    detector: str = "Dectris ARINA",
    count_time: float = 1e-3,
    pixel_size: float = 75e-6,
    wavelength_angstrom: float = 0.0197,
) -> str:
    """Write frames as a DECTRIS-style master file plus data files; returns the master's path.

    ``data`` is ``(*nav, h, w)``; frames are stored in flat navigation order,
    ``frames_per_file`` per data file ``<stem>_data_NNNNNN.h5`` (one frame
    per chunk), linked from ``<stem>_master.h5``. Each file is written
    atomically; the master comes last, so it never links to a missing file.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.dectris import write_dectris, DectrisDataSet
    >>> m = write_dectris(os.path.join(tempfile.mkdtemp(), "a_master.h5"),
    ...                   np.ones((4, 6, 6), np.uint16))
    >>> DectrisDataSet(m).metadata["detector"]
    'Dectris ARINA'
    """
    master = os.fspath(master_path)
    shape = tuple(int(n) for n in np.shape(data))
    if len(shape) < 3:
        raise ValueError(f"data of shape {shape}: DECTRIS files hold frames (..., h, w)")
    if not isinstance(frames_per_file, (int, np.integer)) or frames_per_file < 1:
        raise ValueError(f"frames_per_file must be a positive integer, got {frames_per_file!r}")
    dtype = np.dtype(getattr(data, "dtype", None) or np.asarray(data).dtype)
    n = math.prod(shape[:-2])
    sig = shape[-2:]
    flat = data.reshape((n,) + sig) if hasattr(data, "reshape") else np.reshape(data, (n,) + sig)
    filt = _filter_kwargs(compression, None)
    folder = os.path.dirname(os.path.abspath(master))
    n_files = max(1, math.ceil(n / frames_per_file))
    names = [_data_name(master, k + 1) for k in range(n_files)]
    check_target(master, overwrite)
    for name in names:
        check_target(os.path.join(folder, name), overwrite)
    h5py = h5py_module()
    for k, name in enumerate(names):
        lo, hi = k * frames_per_file, min(n, (k + 1) * frames_per_file)
        with atomic_output(os.path.join(folder, name), overwrite=overwrite, suffix=".h5") as tmp:
            # No HDF5 file lock on a private temporary file: a process forked meanwhile (a
            # worker starting) would hold it for a moment and make the first reader fail.
            with h5py.File(tmp, "w", locking=False) as f:
                entry = f.create_group("entry")
                entry.attrs["NX_class"] = "NXentry"
                grp = entry.create_group("data")
                grp.attrs["NX_class"] = "NXdata"
                d = grp.create_dataset(
                    "data", shape=(hi - lo,) + sig, dtype=dtype, chunks=(1,) + sig, **filt
                )
                step = max(1, (64 << 20) // max(1, math.prod(sig) * dtype.itemsize))
                for i in range(lo, hi, step):
                    j = min(hi, i + step)
                    d[i - lo : j - lo] = np.asarray(flat[i:j], dtype=dtype)
                d.attrs["image_nr_low"] = np.int32(lo + 1)
                d.attrs["image_nr_high"] = np.int32(hi)
    with atomic_output(master, overwrite=overwrite, suffix=".h5") as tmp:
        with h5py.File(tmp, "w", locking=False) as f:
            entry = f.create_group("entry")
            entry.attrs["NX_class"] = "NXentry"
            grp = entry.create_group("data")
            grp.attrs["NX_class"] = "NXdata"
            for k, name in enumerate(names):
                grp[f"data_{k + 1:06d}"] = h5py.ExternalLink(name, "/entry/data/data")
            inst = entry.create_group("instrument")
            inst.attrs["NX_class"] = "NXinstrument"
            det = inst.create_group("detector")
            det.attrs["NX_class"] = "NXdetector"
            det["description"] = detector
            det["count_time"] = float(count_time)
            det["frame_time"] = float(count_time)
            det["x_pixel_size"] = float(pixel_size)
            det["y_pixel_size"] = float(pixel_size)
            det["detector_distance"] = 0.1
            det["bit_depth_image"] = np.int32(dtype.itemsize * 8)
            spec = det.create_group("detectorSpecific")
            spec["nimages"] = np.int64(n)
            spec["ntrigger"] = np.int64(1)
            spec["x_pixels_in_detector"] = np.int32(sig[1])
            spec["y_pixels_in_detector"] = np.int32(sig[0])
            beam = inst.create_group("beam")
            beam["incident_wavelength"] = float(wavelength_angstrom)
    return master


def sniff(path: str) -> bool:
    """True for a DECTRIS master file (``/entry/data/data_000001`` or a ``*_master.h5`` name).

    Never raises.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> m = write_dectris(os.path.join(tempfile.mkdtemp(), "a_master.h5"),
    ...                   np.ones((2, 4, 4), np.uint16))
    >>> sniff(m), sniff(os.path.dirname(m))
    (True, False)
    """
    try:
        path = os.fspath(path)
        if not os.path.isfile(path) or not has_signature(path):
            return False
        if os.path.basename(path).endswith("_master.h5"):
            return True
        grp = open_file(path).get("/entry/data")
        return grp is not None and grp.get("data_000001", getlink=True) is not None
    except Exception:  # noqa: BLE001 - sniffing a foreign file must never raise
        return False
