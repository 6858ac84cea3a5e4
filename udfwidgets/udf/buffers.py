"""Result buffers: declarations made in ``get_result_buffers`` and the
:class:`BufferWrapper` objects a run returns."""
from __future__ import annotations

import keyword
from typing import Any, Iterable

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

__all__ = ["BufferDeclaration", "BufferWrapper", "BufferError", "fill_value_for", "KINDS", "USES"]

KINDS = ("nav", "sig", "single")
USES = (None, "private", "result_only")


class BufferError(ValueError):
    """A result buffer is declared or used in a way that cannot work."""


def fill_value_for(dtype: np.dtype) -> Any:
    """The value of navigation positions outside the roi (or not yet computed).

    NaN for floating and complex dtypes, ``None`` for ``object``, and zero
    (``False`` for bool) for everything else.

    Examples
    --------
    >>> fill_value_for(np.dtype("float32")), fill_value_for(np.dtype("int64"))
    (nan, 0)
    """
    dtype = np.dtype(dtype)
    if dtype.kind in "fc":
        return np.nan
    if dtype.kind == "O":
        return None
    return np.zeros((), dtype=dtype).item()


def empty_filled(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A new array of ``shape`` holding :func:`fill_value_for` ``dtype``."""
    dtype = np.dtype(dtype)
    if dtype.kind in "fc":
        return np.full(shape, np.nan, dtype=dtype)
    if dtype.kind == "O":
        return np.empty(shape, dtype=dtype)
    return np.zeros(shape, dtype=dtype)


def zeros(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Zeros, or ``None`` items for object dtype."""
    dtype = np.dtype(dtype)
    return np.empty(shape, dtype=dtype) if dtype.kind == "O" else np.zeros(shape, dtype=dtype)


class BufferDeclaration:
    """What ``UDF.buffer(...)`` returns: the kind, extra shape, dtype and use of a buffer.

    The values are checked when the UDF is run, where the buffer's name is
    known, so that every error can name the buffer (see :meth:`validated`).
    """

    def __init__(self, kind: str, extra_shape: Iterable[int] | int = (), dtype: Any = "float32",
                 use: str | None = None, axes: Any = None):
        self.kind = kind
        self.extra_shape = extra_shape
        self.dtype = dtype
        self.use = use
        self.axes = axes  # names (and coordinates) of the extra_shape axes, see check_axes

    def validated(self, name: Any, udf_name: str) -> "BufferDeclaration":
        """Check name and values; return a declaration with normalised values."""
        where = f"buffer {name!r} of {udf_name}"
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise BufferError(
                f"{where}: buffer names must be valid Python identifiers (like 'intensity' or "
                f"'max_value'), so that they work as self.results.<name>")
        if self.kind not in KINDS:
            raise BufferError(f"{where}: kind={self.kind!r} is not one of 'nav', 'sig', 'single'")
        extra = self.extra_shape
        if isinstance(extra, (int, np.integer)):
            extra = (int(extra),)
        try:
            extra = tuple(int(e) for e in extra)
        except (TypeError, ValueError):
            raise BufferError(f"{where}: extra_shape={self.extra_shape!r} must be a tuple of "
                              "non-negative integers") from None
        if any(e < 0 for e in extra):
            raise BufferError(f"{where}: extra_shape={self.extra_shape!r} must be a tuple of "
                              "non-negative integers")
        try:
            dtype = np.dtype(self.dtype)
        except (TypeError, ValueError) as e:
            raise BufferError(f"{where}: dtype={self.dtype!r} is not a NumPy dtype ({e})") from None
        if self.use not in USES:
            raise BufferError(f"{where}: use={self.use!r} must be None, 'private' or 'result_only'")
        return BufferDeclaration(self.kind, extra, dtype, self.use,
                                 check_axes(self.axes, extra, where))

    def shape_for(self, num_frames: int, sig_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The array shape of this buffer for ``num_frames`` frames (nav kind)."""
        if self.kind == "nav":
            return (num_frames,) + self.extra_shape
        if self.kind == "sig":
            return tuple(sig_shape) + self.extra_shape
        return self.extra_shape or (1,)

    def __repr__(self) -> str:
        axes = "" if self.axes is None else f", axes={self.axes!r}"
        return (f"BufferDeclaration(kind={self.kind!r}, extra_shape={self.extra_shape!r}, "
                f"dtype={self.dtype!r}, use={self.use!r}{axes})")


def check_axes(axes: Any, extra_shape: tuple[int, ...], where: str = "buffer"
               ) -> tuple[tuple[str, Any, Any], ...] | None:
    """Normalise the ``axes=`` of a buffer declaration: one ``(name, coords, unit)`` per extra axis.

    Each entry is a name, ``(name, coords)`` or ``(name, coords, unit)``;
    ``coords`` has one value per index (None: the indices), ``unit`` ``"px"``
    means detector pixels (converted with the dataset's calibration on export).

    Examples
    --------
    >>> check_axes(["mask"], (3,))
    (('mask', None, None),)
    >>> check_axes([("radius", [0.5, 1.5], "px")], (2,))[0][1]
    array([0.5, 1.5])
    """
    if axes is None:
        return None
    if isinstance(axes, str):
        axes = [axes]
    axes = list(axes)
    if len(axes) != len(extra_shape):
        raise BufferError(f"{where}: axes={axes!r} names {len(axes)} axes, but extra_shape "
                          f"{extra_shape} has {len(extra_shape)}")
    out = []
    for entry, size in zip(axes, extra_shape):
        name, coords, unit = (entry, None, None) if isinstance(entry, str) else (
            tuple(entry) + (None, None))[:3]
        if not isinstance(name, str) or not name:
            raise BufferError(f"{where}: axis names must be non-empty strings, got {name!r}")
        if coords is not None:
            coords = np.asarray(coords)
            if coords.shape != (size,):
                raise BufferError(f"{where}: axis {name!r} has {coords.shape} coordinates, but "
                                  f"{size} values along it")
        out.append((name, coords, unit))
    return tuple(out)


class BufferWrapper(NDArrayOperatorsMixin):
    """One result buffer of a run: usable wherever a NumPy array is.

    Parameters
    ----------
    kind : {"nav", "sig", "single"}
    dtype : numpy.dtype
    extra_shape : tuple of int
    raw : numpy.ndarray
        For ``kind="nav"``, one entry per *selected* frame in flat navigation
        order, shape ``(n_selected, *extra_shape)``; for the other kinds the
        whole buffer.
    nav_shape : tuple of int
        The dataset's navigation shape.
    roi : numpy.ndarray of bool, optional
        Flat navigation mask of the frames the run selected (None: all).
    valid : numpy.ndarray of bool, optional
        Flat navigation mask of the frames merged so far (None: all selected).

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sum import SumUDF
    >>> with Context(executor="inline") as ctx:
    ...     ds = ctx.load("memory", data=np.ones((2, 3, 4, 4)))
    ...     res = ctx.run_udf(dataset=ds, udf=SumUDF())
    >>> res["intensity"].kind, float(np.sum(res["intensity"]))
    ('sig', 96.0)
    """

    #: set by the run for :meth:`to_xarray` and the writers of :mod:`udfwidgets.export`:
    #: the declared extra axes (:func:`check_axes`) and a dict with the buffer's name,
    #: the UDF's class name and parameters, the dataset's path and calibration
    axes: Any = None
    context: Any = None

    def __init__(self, kind: str, dtype, extra_shape: tuple[int, ...], raw: np.ndarray,
                 nav_shape: tuple[int, ...], roi: np.ndarray | None = None,
                 valid: np.ndarray | None = None):
        self.kind = kind
        self.dtype = np.dtype(dtype)
        self.extra_shape = tuple(extra_shape)
        self._raw = raw
        self.nav_shape = tuple(nav_shape)
        self._roi = roi
        self._valid = valid

    @property
    def raw_data(self) -> np.ndarray:
        """For nav buffers only the selected frames, in flat nav order; else the buffer."""
        return self._raw

    @property
    def data(self) -> np.ndarray:
        """The buffer as an array; nav buffers have the full navigation shape.

        Navigation positions outside the roi hold :func:`fill_value_for` the dtype.
        """
        if self.kind != "nav":
            return self._raw
        full_shape = self.nav_shape + self.extra_shape
        if self._roi is None:
            return self._raw.reshape(full_shape)
        out = empty_filled((len(self._roi),) + self.extra_shape, self.dtype)
        out[self._roi] = self._raw
        return out.reshape(full_shape)

    @property
    def valid_mask(self) -> np.ndarray:
        """Bool mask of the valid entries: for nav buffers, over the nav shape
        (selected by the roi and merged so far); for others all True over the
        buffer's shape without ``extra_shape``."""
        if self.kind != "nav":
            base = self._raw.shape[: self._raw.ndim - len(self.extra_shape)]
            return np.ones(base, dtype=bool)
        n = int(np.prod(self.nav_shape))
        mask = np.ones(n, dtype=bool) if self._roi is None else self._roi.copy()
        if self._valid is not None:
            mask &= self._valid
        return mask.reshape(self.nav_shape)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of :attr:`data`."""
        if self.kind == "nav":
            return self.nav_shape + self.extra_shape
        return self._raw.shape

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __array__(self, dtype=None, copy=None):
        arr = self.data
        if dtype is not None and np.dtype(dtype) != arr.dtype:
            return arr.astype(dtype)
        return arr.copy() if copy else arr

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = tuple(x.data if isinstance(x, BufferWrapper) else x for x in inputs)
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __getitem__(self, key):
        return self.data[key]

    def __len__(self) -> int:
        return self.shape[0]

    def __iter__(self):
        return iter(self.data)

    def to_xarray(self, name: str | None = None):
        """This buffer as an ``xarray.DataArray`` with physical coordinates
        (see :func:`udfwidgets.export.to_xarray`)."""
        from ..export import buffer_to_xarray
        return buffer_to_xarray(self, name)

    def __repr__(self) -> str:
        return (f"<BufferWrapper kind={self.kind!r} dtype={self.dtype} shape={self.shape} "
                f"extra_shape={self.extra_shape}>")
