"""Results out of the notebook: xarray objects and files other tools read.

:func:`to_xarray` turns a run's results into an ``xarray.Dataset`` (one
variable per buffer): named dimensions (``scan_y``/``scan_x`` for nav
buffers, ``det_y``/``det_x`` for sig buffers, the names a UDF declares for its
``extra_shape`` axes), coordinates in the dataset's calibrated units, attrs
with the UDF's name and parameters, the dataset and its calibration, and the
``valid`` mask of nav buffers (positions outside the roi hold NaN, as in
``BufferWrapper.data``).

:func:`save_results` writes by suffix:

``.h5`` / ``.hdf5``
    HDF5 (h5py), NeXus style: an ``NXentry`` ``/entry`` with one ``NXdata``
    group per buffer holding ``data``, one dataset per axis (attribute
    ``units``), ``valid`` for nav buffers, and the UDF's parameters as attributes.
``.zarr``
    A zarr store of the :func:`to_xarray` dataset (xarray).
``.nc``
    NetCDF-4 of the :func:`to_xarray` dataset (xarray with h5netcdf).
``.tif`` / ``.tiff``
    Multi-page TIFF (tifffile), float32, one page per image channel (a 2D
    nav or sig buffer; each index of its extra axes is a page), with X/Y
    resolution tags (pixels per cm for length units; unit NONE and pixels per
    unit otherwise) and a JSON page description naming buffer, channel and unit.
``.npz``
    NumPy arrays: each buffer, ``<name>__valid`` for nav buffers, and
    ``__meta__``, a JSON string with dims, coordinates, units and attrs.
``.hspy``
    HyperSpy's HDF5 layout (written with h5py, HyperSpy is not needed): one
    signal per buffer under ``/Experiments/<name>`` with calibrated
    ``axis-<i>`` groups.

Every writer goes through :func:`udfwidgets.io.atomic.atomic_output`: a file
that is there is complete. An unknown suffix, an existing file (without
``overwrite=True``) or an unwritable folder is an error before any work.

Examples
--------
>>> import os, tempfile, numpy as np
>>> from udfwidgets import Context, Calibration
>>> from udfwidgets.udf.sum import SumUDF
>>> from udfwidgets.export import save_results, to_xarray
>>> ctx = Context(executor="inline")
>>> ds = ctx.load("memory", data=np.ones((2, 3, 4, 4), dtype=np.float32))
>>> ds.calibration = Calibration(sig_step=0.5, sig_unit="mrad", beam_centre=(2, 2))
>>> res = ctx.run_udf(dataset=ds, udf=SumUDF())
>>> xr_ds = to_xarray(res)
>>> xr_ds["intensity"].dims, xr_ds["det_x"].values.tolist(), xr_ds["det_x"].attrs["units"]
(('det_y', 'det_x'), [-1.0, -0.5, 0.0, 0.5], 'mrad')
>>> path = os.path.join(tempfile.mkdtemp(), "results.h5")
>>> save_results(res, path)
>>> import h5py
>>> with h5py.File(path) as f:
...     f["entry/intensity/data"].shape, f["entry/intensity"].attrs["udf"]
((4, 4), 'SumUDF')
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .calibration import Calibration
from .io.atomic import atomic_output, check_target

__all__ = [
    "to_xarray",
    "save_results",
    "buffer_to_xarray",
    "buffer_context",
    "SUFFIXES",
    "ExportError",
    "export_dataset",
]

#: The file suffixes :func:`save_results` writes, each naming its format.
#:
#: Examples
#: --------
#: >>> ".npz" in SUFFIXES, ".csv" in SUFFIXES
#: (True, False)
SUFFIXES = (".h5", ".hdf5", ".zarr", ".nc", ".tif", ".tiff", ".npz", ".hspy")


class ExportError(ValueError):
    """Results or a dataset that cannot be written as asked.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sum import SumUDF
    >>> ctx = Context(executor="inline")
    >>> res = ctx.run_udf(dataset=ctx.load("memory", data=np.ones((2, 2, 3, 3))), udf=SumUDF())
    >>> save_results(res, "sum.npz", buffers=["intnesity"])
    Traceback (most recent call last):
    ...
    udfwidgets.export.ExportError: no buffer named ['intnesity']; the results hold ['intensity']
    """


def buffer_context(dataset: Any, udf: Any, name: str) -> dict[str, Any]:
    """What a result buffer remembers of its run (set on ``BufferWrapper.context``).

    The exporters write it as the file's metadata.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sum import SumUDF
    >>> ctx = Context(executor="inline")
    >>> ds = ctx.load("memory", data=np.ones((2, 2, 3, 3)))
    >>> info = buffer_context(ds, SumUDF(dtype="float64"), "intensity")
    >>> info["udf"], info["params"], info["dataset_type"]
    ('SumUDF', {'dtype': 'float64'}, 'MemoryDataSet')
    >>> ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].context["buffer"]
    'intensity'
    """
    path = getattr(dataset, "path", None)
    try:
        cal = dataset.calibration
    except Exception:  # a dataset class without the DataSet base property
        cal = None
    return {
        "buffer": name,
        "udf": type(udf).__name__,
        "params": dict(udf._kwargs),
        "dataset": None if path is None else os.fspath(path),
        "dataset_type": type(dataset).__name__,
        "calibration": cal,
    }


# --- axes -------------------------------------------------------------------------------------
@dataclass
class _Dim:
    name: str
    coords: np.ndarray
    unit: str


def _jsonable(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return value if not (isinstance(value, float) and not math.isfinite(value)) else str(value)
    if isinstance(value, np.generic):
        return _jsonable(value.item(), depth)
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name
    if isinstance(value, np.ndarray):
        if value.size <= 256 and value.dtype.kind in "biuf":
            return _jsonable(value.tolist(), depth)
        return f"<array shape={value.shape} dtype={value.dtype}>"
    if isinstance(value, (list, tuple)) and depth < 4 and len(value) <= 256:
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, dict) and depth < 4:
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    return repr(value)


def _calibration_of(bw: Any) -> Calibration:
    ctx = bw.context or {}
    cal = ctx.get("calibration")
    return cal if isinstance(cal, Calibration) else Calibration()


def _dims(bw: Any, name: str) -> list[_Dim]:
    cal = _calibration_of(bw)
    extra = tuple(bw.extra_shape)
    dims: list[_Dim] = []
    if bw.kind == "nav":
        dims += [_Dim(a.name, a.coords(), a.unit) for a in cal.nav_axes(bw.nav_shape)]
    elif bw.kind == "sig":
        raw = np.asarray(bw.raw_data)
        sig = raw.shape[: raw.ndim - len(extra)]
        dims += [_Dim(a.name, a.coords(), a.unit) for a in cal.sig_axes(sig)]
    declared = bw.axes or ()
    shape = bw.shape
    base = len(shape) - len(extra) if bw.kind != "single" else 0
    if bw.kind == "single" and not extra:
        extra = tuple(shape)
    for i, size in enumerate(extra):
        size = shape[base + i] if base + i < len(shape) else size
        if i < len(declared):
            aname, coords, unit = declared[i]
        else:
            aname, coords, unit = f"{name}_dim{i}", None, None
        coords = np.arange(size) if coords is None else np.asarray(coords)
        unit = unit or ""
        if (
            unit == "px"
            and coords.dtype.kind in "iuf"
            and cal.is_calibrated("sig")
            and len(set(cal.sig_step)) == 1
        ):
            coords = coords * cal.sig_step[0]
            unit = cal.sig_unit
        dims.append(_Dim(aname, coords, unit))
    return dims


def _attrs(bw: Any, name: str) -> dict[str, Any]:
    ctx = bw.context or {}
    cal = _calibration_of(bw)
    attrs = {
        "buffer": ctx.get("buffer", name),
        "kind": bw.kind,
        "udf": ctx.get("udf", ""),
        "udf_params": json.dumps(_jsonable(ctx.get("params", {}))),
        "dataset": ctx.get("dataset") or "",
        "dataset_type": ctx.get("dataset_type", ""),
        "calibration": cal.to_json(),
    }
    return attrs


def _entries(results: Any) -> list[tuple[str, Any]]:
    """``[(key, BufferWrapper)]`` for a result dict, a tuple of them or a UDFResults."""
    from .udf.buffers import BufferWrapper

    if hasattr(results, "buffers") and hasattr(results, "damage"):  # UDFResults
        results = results.buffers
    if isinstance(results, BufferWrapper):
        results = {(results.context or {}).get("buffer", "data"): results}
    if isinstance(results, dict):
        groups = [results]
    elif isinstance(results, (list, tuple)) and all(isinstance(r, dict) for r in results):
        groups = list(results)
    else:
        raise ExportError(
            "results must be what run_udf returns (a dict of name -> "
            "BufferWrapper, or a tuple of such dicts for several UDFs), got "
            f"{type(results).__name__}"
        )
    out = []
    multi = len(groups) > 1
    classes = [
        next((b.context or {}).get("udf", "") for b in g.values()) if g else "" for g in groups
    ]
    for i, group in enumerate(groups):
        for name, bw in group.items():
            if not isinstance(bw, BufferWrapper):
                raise ExportError(f"result {name!r} is a {type(bw).__name__}, not a BufferWrapper")
            if multi:
                cls = classes[i] or "udf"
                prefix = cls if classes.count(cls) == 1 else f"{cls}{i}"
                key = f"{prefix}_{name}"
            else:
                key = name
            out.append((key, bw))
    if not out:
        raise ExportError("there are no result buffers to write")
    return out


def buffer_to_xarray(bw: Any, name: str | None = None):
    """One buffer as an ``xarray.DataArray`` (used by ``BufferWrapper.to_xarray()``).

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sumsigudf import SumSigUDF
    >>> ctx = Context(executor="inline")
    >>> res = ctx.run_udf(dataset=ctx.load("memory", data=np.ones((2, 3, 4, 4))), udf=SumSigUDF())
    >>> da = res["intensity"].to_xarray()
    >>> da.dims, da.attrs["udf"], bool(da["valid"].all())
    (('scan_y', 'scan_x'), 'SumSigUDF', True)
    """
    import xarray as xr

    name = name or (bw.context or {}).get("buffer", "data")
    dims = _dims(bw, name)
    data = np.asarray(bw.data)
    if data.shape != tuple(len(d.coords) for d in dims):
        raise ExportError(
            f"buffer {name!r}: data shape {data.shape} does not match its axes "
            f"{[(d.name, len(d.coords)) for d in dims]}"
        )
    coords: dict[str, xr.Variable | tuple[list[str], np.ndarray]] = {
        d.name: xr.Variable(d.name, d.coords, {"units": d.unit}) for d in dims
    }
    if bw.kind == "nav":
        nav_dims = [d.name for d in dims[: len(bw.nav_shape)]]
        coords["valid"] = (nav_dims, np.asarray(bw.nav_valid_mask))
    return xr.DataArray(
        data, dims=[d.name for d in dims], coords=coords, name=name, attrs=_attrs(bw, name)
    )


def to_xarray(results: Any):
    """A run's results as an ``xarray.Dataset``, one variable per buffer.

    ``results`` is what ``run_udf`` returns: a dict (one UDF) or a tuple of
    dicts (several UDFs: variables are named ``<UDFClass>_<buffer>``), or a
    ``UDFResults`` from ``run_udf_iter``. Buffers that hold Python objects
    cannot be represented and raise :class:`ExportError`.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sum import SumUDF
    >>> from udfwidgets.udf.sumsigudf import SumSigUDF
    >>> ctx = Context(executor="inline")
    >>> ds = ctx.load("memory", data=np.ones((2, 3, 4, 4)))
    >>> sorted(to_xarray(ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])).data_vars)
    ['SumSigUDF_intensity', 'SumUDF_intensity']
    """
    _need("xarray")
    import xarray as xr

    entries = _entries(results)
    _check_dtypes(entries, "xarray", allow_complex=True)
    arrays = {key: buffer_to_xarray(bw, key) for key, bw in entries}
    out = xr.Dataset(arrays)
    first = entries[0][1]
    attrs = _attrs(first, entries[0][0])
    out.attrs = {
        "dataset": attrs["dataset"],
        "calibration": attrs["calibration"],
        "creator": _creator(),
    }
    return out


def _creator() -> str:
    from . import __version__

    return f"udfwidgets {__version__}"


def _check_dtypes(entries, what: str, allow_complex: bool) -> None:
    for key, bw in entries:
        kind = np.dtype(bw.dtype).kind
        if kind == "O":
            raise ExportError(
                f"buffer {key!r} holds Python objects (dtype object), which {what} "
                "cannot store: leave it out with buffers=[...] or convert it first"
            )
        if kind == "c" and not allow_complex:
            raise ExportError(
                f"buffer {key!r} is complex, which {what} cannot store: leave it "
                "out with buffers=[...] or save its abs()/real part"
            )


# --- writers ------------------------------------------------------------------------------------
def _suffix(path: str) -> str:
    name = os.path.basename(os.fspath(path).rstrip("/\\")).lower()
    for suf in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suf):
            return suf
    raise ExportError(
        f"cannot tell the format of {os.fspath(path)!r} from its suffix: use one "
        f"of {', '.join(SUFFIXES)}"
    )


def save_results(
    results: Any,
    path: str | os.PathLike,
    overwrite: bool = False,
    buffers: Sequence[str] | None = None,
) -> None:
    """Write a run's results to ``path``; the format is chosen by the suffix.

    Parameters
    ----------
    results : dict, tuple of dict, or UDFResults
        What ``run_udf`` (or ``run_udf_iter``) gave.
    path : str or os.PathLike
        ``.h5``/``.hdf5``, ``.zarr``, ``.nc``, ``.tif``/``.tiff``, ``.npz`` or
        ``.hspy`` (see the module documentation for each layout).
    overwrite : bool
        Replace an existing file (only once the new one is complete).
    buffers : list of str, optional
        Only these buffers (names as in :func:`to_xarray`). For TIFF, by
        default every buffer that is an image (2D nav or sig axes).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sum import SumUDF
    >>> ctx = Context(executor="inline")
    >>> res = ctx.run_udf(dataset=ctx.load("memory", data=np.ones((2, 2, 3, 3))), udf=SumUDF())
    >>> path = os.path.join(tempfile.mkdtemp(), "sum.npz")
    >>> save_results(res, path)
    >>> np.load(path)["intensity"].tolist()[0]
    [4.0, 4.0, 4.0]
    >>> save_results(res, path + ".txt")
    Traceback (most recent call last):
    ...
    udfwidgets.export.ExportError: cannot tell the format of '....npz.txt' from its suffix: use one of .h5, .hdf5, .zarr, .nc, .tif, .tiff, .npz, .hspy
    """
    path = os.fspath(path)
    suffix = _suffix(path)
    directory = suffix == ".zarr"
    check_target(path, overwrite=overwrite, directory=directory)
    entries = _entries(results)
    if buffers is not None:
        known = [k for k, _ in entries]
        missing = [b for b in buffers if b not in known]
        if missing:
            raise ExportError(f"no buffer named {missing}; the results hold {known}")
        entries = [(k, bw) for k, bw in entries if k in buffers]
    writer = _WRITERS[suffix]
    for module in _NEEDS[suffix]:  # fail before any work when a library is missing
        _need(module)
    if suffix in (".tif", ".tiff"):
        entries = _tiff_entries(entries, explicit=buffers is not None)
    _check_dtypes(entries, f"a {suffix} file", allow_complex=suffix not in (".tif", ".tiff"))
    with atomic_output(path, overwrite=overwrite, suffix=suffix, directory=directory) as tmp:
        writer(entries, tmp)


_NEEDS = {
    ".h5": ("h5py",),
    ".hdf5": ("h5py",),
    ".hspy": ("h5py",),
    ".npz": (),
    ".zarr": ("xarray", "zarr"),
    ".nc": ("xarray", "h5netcdf"),
    ".tif": ("tifffile",),
    ".tiff": ("tifffile",),
}


def _need(module: str) -> None:
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"writing this format needs {module}: pip install 'udfwidgets[export]'"
        ) from None


def _write_hdf5(entries, tmp: str) -> None:
    import h5py

    str_dt = h5py.string_dtype()
    # No HDF5 file lock on a private temporary file: a process forked meanwhile (a
    # worker starting) would hold it for a moment and make the first reader fail.
    with h5py.File(tmp, "w", locking=False) as f:
        f.attrs["creator"] = _creator()
        f.attrs["NX_class"] = "NXroot"
        f.attrs["default"] = "entry"
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["default"] = entries[0][0]
        first = _attrs(entries[0][1], entries[0][0])
        entry.attrs["dataset"] = first["dataset"]
        entry.attrs["calibration"] = first["calibration"]
        for key, bw in entries:
            g = entry.create_group(key)
            g.attrs["NX_class"] = "NXdata"
            g.attrs["signal"] = "data"
            dims = _dims(bw, key)
            g.attrs["axes"] = np.array([d.name for d in dims] or ["."], dtype=str_dt)
            for i, d in enumerate(dims):
                g.attrs[f"{d.name}_indices"] = i
                coords = d.coords
                if coords.dtype.kind == "U":
                    coords = coords.astype(object)
                    ds = g.create_dataset(d.name, data=coords, dtype=str_dt)
                else:
                    ds = g.create_dataset(d.name, data=coords)
                ds.attrs["units"] = d.unit
            g.create_dataset("data", data=np.asarray(bw.data))
            for k, v in _attrs(bw, key).items():
                g.attrs[k] = v
            params = _jsonable((bw.context or {}).get("params", {}))
            if isinstance(params, dict):
                for k, v in params.items():  # readable one by one as well
                    g.attrs[f"param_{k}"] = json.dumps(v)
            if bw.kind == "nav":
                g.create_dataset("valid", data=np.asarray(bw.nav_valid_mask))


def _write_xarray(entries, tmp: str, kind: str) -> None:
    import xarray as xr

    arrays = {key: buffer_to_xarray(bw, key) for key, bw in entries}
    ds = xr.Dataset(arrays)
    first = _attrs(entries[0][1], entries[0][0])
    ds.attrs = {
        "dataset": first["dataset"],
        "calibration": first["calibration"],
        "creator": _creator(),
    }
    if kind == "zarr":
        ds.to_zarr(tmp, mode="w")
    else:
        cplx = any(np.dtype(bw.dtype).kind == "c" for _, bw in entries)
        ds.to_netcdf(tmp, engine="h5netcdf", invalid_netcdf=cplx)


def _tiff_entries(entries, explicit: bool):
    ok = []
    for key, bw in entries:
        if _image_dims(bw) is None:
            if explicit:
                raise ExportError(
                    f"buffer {key!r} is not an image (a 2D nav or sig buffer): TIFF "
                    "holds images only; use .h5, .zarr, .nc, .npz or .hspy for it"
                )
            continue
        ok.append((key, bw))
    if not ok:
        raise ExportError(
            "none of the buffers is an image (a 2D nav or sig buffer), which TIFF "
            "needs; use .h5, .zarr, .nc, .npz or .hspy"
        )
    return ok


def _image_dims(bw) -> int | None:
    if bw.kind == "nav" and len(bw.nav_shape) == 2:
        return 2
    if bw.kind == "sig":
        raw = np.asarray(bw.raw_data)
        if raw.ndim - len(bw.extra_shape) == 2:
            return 2
    return None


def _write_tiff(entries, tmp: str) -> None:
    import tifffile

    with tifffile.TiffWriter(tmp) as tw:
        for key, bw in entries:
            dims = _dims(bw, key)
            data = np.asarray(bw.data, dtype=np.float32)
            ydim, xdim = dims[0], dims[1]
            extra = data.shape[2:]
            ystep = _step(ydim.coords)
            xstep = _step(xdim.coords)
            unit = xdim.unit
            if unit in _CM_PER_UNIT:
                res = (1 / (xstep * _CM_PER_UNIT[unit]), 1 / (ystep * _CM_PER_UNIT[unit]))
                resunit = "CENTIMETER"
            else:
                res, resunit = (1 / xstep, 1 / ystep), "NONE"
            for idx in np.ndindex(*extra) if extra else [()]:
                page = np.ascontiguousarray(data[(slice(None), slice(None)) + idx])
                desc = {
                    "buffer": key,
                    "channel": [int(i) for i in idx],
                    "channel_axes": [d.name for d in dims[2:]],
                    "unit": unit,
                    "axes": [ydim.name, xdim.name],
                    "scale": [ystep, xstep],
                    "offset": [float(ydim.coords[0]), float(xdim.coords[0])],
                    "udf": (bw.context or {}).get("udf", ""),
                }
                tw.write(
                    page,
                    photometric="minisblack",
                    resolution=res,
                    resolutionunit=resunit,
                    description=json.dumps(desc),
                    metadata=None,
                )


#: centimetres per length unit (TIFF resolution tags count pixels per cm)
_CM_PER_UNIT = {
    "pm": 1e-10,
    "A": 1e-8,
    "Å": 1e-8,
    "nm": 1e-7,
    "um": 1e-4,
    "µm": 1e-4,
    "mm": 0.1,
    "m": 100.0,
}


def _step(coords: np.ndarray) -> float:
    if len(coords) > 1 and coords.dtype.kind in "iuf":
        step = float(coords[1] - coords[0])
        return step if step > 0 else 1.0
    return 1.0


def _write_npz(entries, tmp: str) -> None:
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"creator": _creator(), "buffers": {}}
    for key, bw in entries:
        arrays[key] = np.asarray(bw.data)
        dims = _dims(bw, key)
        meta["buffers"][key] = {
            "dims": [d.name for d in dims],
            "units": [d.unit for d in dims],
            "coords": [_jsonable(d.coords.tolist()) for d in dims],
            **_attrs(bw, key),
        }
        if bw.kind == "nav":
            arrays[f"{key}__valid"] = np.asarray(bw.nav_valid_mask)
    arrays["__meta__"] = np.array(json.dumps(meta))
    with open(tmp, "wb") as f:
        _savez(f, arrays)


def _savez(f, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez(f, **arrays)`` for any names: savez would take a buffer called ``file``
    or ``allow_pickle`` as its own argument (the same zip of ``.npy`` members otherwise)."""
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        for name, arr in arrays.items():
            with z.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=True)


def _write_hspy(entries, tmp: str) -> None:
    import h5py

    with h5py.File(tmp, "w", locking=False) as f:
        f.attrs["file_format"] = "HyperSpy"
        f.attrs["file_format_version"] = "3.1"
        exps = f.create_group("Experiments")
        for key, bw in entries:
            dims = _dims(bw, key)
            data = np.asarray(bw.data)
            n_extra = len(bw.extra_shape) if bw.kind != "single" else 0
            if bw.kind == "nav":
                navigate = [bool(n_extra)] * len(bw.nav_shape) + [False] * n_extra
            elif bw.kind == "sig" and n_extra:
                # HyperSpy keeps navigation axes first in the array: move the extra axes there
                n_sig = len(dims) - n_extra
                order = list(range(n_sig, len(dims))) + list(range(n_sig))
                data = np.transpose(data, order)
                dims = [dims[i] for i in order]
                navigate = [True] * n_extra + [False] * n_sig
            else:
                navigate = [False] * len(dims)
            g = exps.create_group(key)
            g.create_dataset("data", data=data)
            for i, (d, nav) in enumerate(zip(dims, navigate)):
                a = g.create_group(f"axis-{i}")
                numeric = d.coords.dtype.kind in "iuf"
                scale = _step(d.coords) if numeric else 1.0
                offset = float(d.coords[0]) if numeric and len(d.coords) else 0.0
                a.attrs["name"] = d.name
                a.attrs["units"] = d.unit if d.unit not in ("", "px") else "<undefined>"
                a.attrs["size"] = int(len(d.coords))
                a.attrs["scale"] = float(scale)
                a.attrs["offset"] = offset
                a.attrs["navigate"] = bool(nav)
            md = g.create_group("metadata")
            gen = md.create_group("General")
            gen.attrs["title"] = key
            sig = md.create_group("Signal")
            sig.attrs["signal_type"] = ""
            om = g.create_group("original_metadata")
            for k, v in _attrs(bw, key).items():
                om.attrs[k] = v


_WRITERS = {
    ".h5": _write_hdf5,
    ".hdf5": _write_hdf5,
    ".zarr": lambda e, t: _write_xarray(e, t, "zarr"),
    ".nc": lambda e, t: _write_xarray(e, t, "nc"),
    ".tif": _write_tiff,
    ".tiff": _write_tiff,
    ".npz": _write_npz,
    ".hspy": _write_hspy,
}


# --- datasets -------------------------------------------------------------------------------------
#: about how many bytes of frames :func:`export_dataset` holds in memory at a time
EXPORT_BLOCK_BYTES = 32 << 20


def export_dataset(
    dataset: Any,
    path: str | os.PathLike,
    roi: Any = None,
    corrections: Any = None,
    overwrite: bool = False,
    ds_path: str = "data",
) -> None:
    """Write a dataset (corrected, cropped to the roi) to ``.h5``/``.hdf5`` or ``.npy``.

    Frames are read, corrected and written block by block (about 32 MiB at a
    time), never the whole dataset in memory. With an ``roi`` the output
    covers the roi's bounding box in the navigation plane; positions of the
    box outside the roi hold zeros (HDF5 also stores the ``valid`` mask).
    ``corrections`` as for ``run_udf`` (None: ``dataset.corrections``;
    False: none); corrected frames are float (see
    :func:`udfwidgets.corrections.corrected_dtype`), else the native dtype is
    kept. HDF5 files get the dataset ``ds_path`` with the calibration and the
    box origin as attributes. Called by ``Context.export_dataset``.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from udfwidgets.io.memory import MemoryDataSet
    >>> ds = MemoryDataSet(np.arange(4 * 5 * 2 * 2, dtype=np.uint16).reshape(4, 5, 2, 2))
    >>> roi = np.zeros((4, 5), bool); roi[1:3, 2:4] = True
    >>> path = os.path.join(tempfile.mkdtemp(), "crop.npy")
    >>> export_dataset(ds, path, roi=roi)
    >>> np.array_equal(np.load(path), ds.data[1:3, 2:4])
    True
    """
    from .corrections import correct_tile, resolve_corrections
    from .executor.plan import normalize_roi

    path = os.fspath(path)
    low = path.lower()
    if low.endswith((".h5", ".hdf5")):
        kind = "hdf5"
    elif low.endswith(".npy"):
        kind = "npy"
    else:
        raise ExportError(f"export_dataset writes .h5, .hdf5 or .npy files, got {path!r}")
    check_target(path, overwrite=overwrite)
    if kind == "hdf5":
        _need("h5py")
    shape = dataset.shape
    nav, sig = tuple(shape.nav), tuple(shape.sig)
    roi_flat = normalize_roi(roi, nav)
    corr = resolve_corrections(corrections, dataset)
    if roi_flat is None:
        lo, hi = (0,) * len(nav), nav
        valid = None
    else:
        if not roi_flat.any():
            raise ExportError("the roi selects no frame: nothing to export")
        where = np.argwhere(roi_flat.reshape(nav))
        lo, hi = tuple(where.min(axis=0)), tuple(where.max(axis=0) + 1)
        valid = roi_flat.reshape(nav)[tuple(slice(a, b) for a, b in zip(lo, hi))]
    box = tuple(int(b - a) for a, b in zip(lo, hi))
    dtype = dataset.dtype if corr is None else corr.dtype
    frame_bytes = int(np.prod(sig)) * max(np.dtype(dtype).itemsize, dataset.dtype.itemsize)
    block = max(1, EXPORT_BLOCK_BYTES // max(1, frame_bytes))
    parts = dataset.get_partitions(1)
    starts = np.array([p.start for p in parts])

    def read(a: int, b: int) -> np.ndarray:
        """Frames a:b (flat nav) of the dataset, in native dtype."""
        out = np.empty((b - a,) + sig, dtype=dataset.dtype)
        i = int(np.searchsorted(starts, a, side="right")) - 1
        pos = a
        while pos < b:
            p = parts[i]
            stop = min(b, p.stop)
            out[pos - a : stop - a] = p.read(pos, stop)
            pos = stop
            i += 1
        return out

    def blocks():
        """(output index, frames) for runs of frames along the last nav axis of the box."""
        for outer in np.ndindex(*box[:-1]):
            for c0 in range(0, box[-1], block):
                c1 = min(box[-1], c0 + block)
                src = tuple(o + a for o, a in zip(outer, lo[:-1]))
                first = int(np.ravel_multi_index(src + (lo[-1] + c0,), nav))
                frames = read(first, first + (c1 - c0))
                if corr is not None:
                    frames = correct_tile(frames, corr)
                if valid is not None:
                    keep = valid[outer + (slice(c0, c1),)]
                    frames[~keep] = 0
                yield outer + (slice(c0, c1),), frames

    try:
        for p in parts:
            p.close()
        if kind == "npy":
            with atomic_output(path, overwrite=overwrite, suffix=".npy") as tmp:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=box + sig)
                for index, frames in blocks():
                    out[index] = frames
                out.flush()
                del out
        else:
            import h5py

            with atomic_output(path, overwrite=overwrite, suffix=".h5") as tmp:
                with h5py.File(tmp, "w", locking=False) as f:
                    dset = f.create_dataset(
                        ds_path, shape=box + sig, dtype=dtype, chunks=(1,) * len(box) + sig
                    )
                    for index, frames in blocks():
                        dset[index] = frames
                    dset.attrs["calibration"] = _calibration_json(dataset)
                    dset.attrs["nav_origin"] = np.array(lo, dtype=np.int64)
                    dset.attrs["sig_dims"] = len(sig)
                    dset.attrs["corrected"] = corr is not None
                    src = getattr(dataset, "path", None)
                    dset.attrs["source"] = "" if src is None else os.fspath(src)
                    f.attrs["creator"] = _creator()
                    if valid is not None:
                        f.create_dataset("valid", data=valid)
    finally:
        for p in parts:
            p.close()


def _calibration_json(dataset) -> str:
    try:
        return dataset.calibration.to_json()
    except Exception:
        return Calibration().to_json()
