"""Result buffers: declarations made in ``get_result_buffers`` and the
:class:`BufferWrapper` objects a run returns."""

from __future__ import annotations

import keyword
from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

__all__ = [
    "BufferDeclaration",
    "BufferWrapper",
    "BufferError",
    "UDFException",
    "UDFMethodError",
    "UndeclaredBufferError",
    "MaskedResult",
    "InvalidMaskError",
    "check_custom_mask",
    "fill_value_for",
    "KINDS",
    "USES",
]

#: Buffer kinds: one value per frame (``nav``), a frame-shaped buffer (``sig``), or one value.
KINDS = ("nav", "sig", "single")
#: Buffer uses: a result (None), private to the UDF (not returned), or made for the results only
#: (``result_only``: filled in ``get_results``, not seen by the process methods).
USES = (None, "private", "result_only")


class UDFException(Exception):
    """Base of the errors about how a UDF is written (LiberTEM's ``UDFException``).

    :class:`BufferError`, :class:`InvalidMaskError` and
    :class:`UDFMethodError` derive from it, so ``except UDFException`` catches
    every such mistake.

    Examples
    --------
    >>> issubclass(BufferError, UDFException)
    True
    """


class UDFMethodError(UDFException, TypeError):
    """A UDF has no process method, or ``get_method()`` chose one it does not have.

    Examples
    --------
    >>> issubclass(UDFMethodError, TypeError)
    True
    """


class BufferError(UDFException, ValueError):
    """A result buffer is declared or used in a way that cannot work.

    Examples
    --------
    >>> try:
    ...     BufferDeclaration(kind="everywhere").validated("total", "MyUDF")
    ... except BufferError as e:
    ...     print(type(e).__name__)
    BufferError
    """


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


#: UDF buffers start on a cache-line boundary. NumPy's own arrays are only 16-byte
#: aligned, and on AMD Zen CPUs glibc's ``memcpy`` ran 13-25x slower when the
#: destination lies 16 bytes further into its cache line than the source (never
#: with a 64-byte aligned destination): ``buf[:] = temp`` of a 64 KiB frame took
#: 2 us or 26-54 us depending on where malloc happened to put the two arrays, so
#: MaxUDF's ``self.results.maxbuf[:] = np.maximum(frame, ...)`` ran 3-4x slower in
#: some worker processes than in others (benchmarks/README.md, "dask: where the
#: time went").
BUFFER_ALIGN = 64


def zeros(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Zeros starting at a :data:`BUFFER_ALIGN`-byte boundary, or ``None`` items for object dtype.

    Examples
    --------
    >>> buf = zeros((3, 5), np.float32)
    >>> buf.ctypes.data % BUFFER_ALIGN, buf.shape, buf.dtype, float(buf.sum())
    (0, (3, 5), dtype('float32'), 0.0)
    >>> buf.flags.c_contiguous and buf.flags.writeable
    True
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "O":
        return np.empty(shape, dtype=dtype)
    shape = tuple(int(s) for s in np.atleast_1d(np.asarray(shape, dtype=np.int64)))
    if dtype.subdtype is not None:  # e.g. "(2,)f4": NumPy appends the subarray's axes
        dtype, sub = dtype.subdtype
        shape += sub
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.zeros(nbytes + BUFFER_ALIGN, dtype=np.uint8)  # calloc: large ones stay lazy
    start = -raw.ctypes.data % BUFFER_ALIGN
    return raw[start : start + nbytes].view(dtype).reshape(shape)


class UndeclaredBufferError(BufferError, KeyError):
    """``get_results`` returned a name that ``get_result_buffers`` did not declare.

    It is also a ``KeyError`` (as in LiberTEM).

    Examples
    --------
    >>> str(UndeclaredBufferError("declare 'x'"))
    "declare 'x'"
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidMaskError(BufferError):
    """A valid mask given with :meth:`UDF.with_mask` does not fit its buffer.

    The mask must be a bool (a scalar, or an array of dtype bool; the scalars
    ``0`` and ``1`` also work) that broadcasts to the buffer's full shape.

    Examples
    --------
    >>> try:
    ...     check_custom_mask(np.zeros((2, 2), dtype=int), (2, 2), "m", "MyUDF")
    ... except InvalidMaskError as e:
    ...     print(type(e).__name__)
    InvalidMaskError
    """


def check_custom_mask(mask: Any, shape: tuple[int, ...], name: str, udf_name: str) -> Any:
    """Check a mask from :meth:`UDF.with_mask` against the buffer's ``shape``.

    Raises :class:`InvalidMaskError` unless ``mask`` is a bool (or 0/1) scalar
    or a bool array that broadcasts to ``shape``. Returns ``mask``.

    Examples
    --------
    >>> check_custom_mask(np.ones((1, 3), dtype=bool), (2, 3), "m", "MyUDF").shape
    (1, 3)
    """
    if isinstance(mask, (bool, np.bool_)) or (
        isinstance(mask, (int, np.integer)) and int(mask) in (0, 1)
    ):
        return mask
    arr = np.asarray(mask)
    if arr.dtype != np.bool_:
        raise InvalidMaskError(
            f"{udf_name}.get_results(): the valid mask of {name!r} has dtype {arr.dtype}; "
            "give a bool array (e.g. mask.astype(bool)) or True/False"
        )
    try:
        fits = np.broadcast_shapes(arr.shape, shape) == tuple(shape)
    except ValueError:
        fits = False
    if not fits:
        raise InvalidMaskError(
            f"{udf_name}.get_results(): the valid mask of {name!r} has shape {arr.shape}, "
            f"which does not broadcast to the buffer's shape {tuple(shape)}; give a mask of "
            "that shape (or one with length-1 axes where it is the same everywhere)"
        )
    return mask


class MaskedResult:
    """A value returned from ``get_results`` together with its own valid mask.

    Made by :meth:`UDF.with_mask`; the run turns it into a
    :class:`BufferWrapper` whose :attr:`BufferWrapper.valid_mask` is ``mask``
    (broadcast to the buffer's shape) instead of the default.

    Examples
    --------
    A UDF whose result is valid only where a frame had any intensity:

    >>> import numpy as np
    >>> from udfwidgets import UDF, Context
    >>> class Total(UDF):
    ...     def get_result_buffers(self):
    ...         return {"total": self.buffer(kind="nav")}
    ...     def process_frame(self, frame):
    ...         self.results.total[:] = frame.sum()
    ...     def get_results(self):
    ...         total = self.results.total
    ...         return {"total": self.with_mask(total, mask=total > 0)}
    >>> data = np.ones((1, 3, 2, 2))
    >>> data[0, 1] = 0
    >>> ctx = Context(executor="inline")
    >>> res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=Total())
    >>> res["total"].data, res["total"].valid_mask
    (array([[4., 0., 4.]], dtype=float32), array([[ True, False,  True]]))
    """

    def __init__(self, data: Any, mask: Any):
        self.data = data
        self.mask = mask

    def __repr__(self) -> str:
        return f"MaskedResult(shape={np.shape(self.data)})"


class BufferDeclaration:
    """What ``UDF.buffer(...)`` returns: the kind, extra shape, dtype and use of a buffer.

    The values are checked when the UDF is run, where the buffer's name is
    known, so that every error can name the buffer (see :meth:`validated`).

    Examples
    --------
    >>> decl = BufferDeclaration(kind="nav", dtype="float32")
    >>> decl.kind, decl.dtype
    ('nav', 'float32')
    """

    def __init__(
        self,
        kind: str,
        extra_shape: Iterable[int] | int = (),
        dtype: Any = "float32",
        use: str | None = None,
        axes: Any = None,
    ):
        self.kind = kind
        self.extra_shape = extra_shape
        self.dtype = dtype
        self.use = use
        self.axes = axes  # names (and coordinates) of the extra_shape axes, see check_axes

    def validated(self, name: Any, udf_name: str) -> BufferDeclaration:
        """Check name and values; return a declaration with normalised values."""
        where = f"buffer {name!r} of {udf_name}"
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise BufferError(
                f"{where}: buffer names must be valid Python identifiers (like 'intensity' or "
                f"'max_value'), so that they work as self.results.<name>"
            )
        if self.kind not in KINDS:
            raise BufferError(f"{where}: kind={self.kind!r} is not one of 'nav', 'sig', 'single'")
        extra = self.extra_shape
        if isinstance(extra, (int, np.integer)):
            extra = (int(extra),)
        try:
            if any(
                isinstance(e, (bool, np.bool_)) or not isinstance(e, (int, np.integer))
                for e in extra
            ):  # 2.5 must not become 2
                raise TypeError
            extra = tuple(int(e) for e in extra)
        except (TypeError, ValueError):
            raise BufferError(
                f"{where}: extra_shape={self.extra_shape!r} must be a tuple of "
                "non-negative integers"
            ) from None
        if any(e < 0 for e in extra):
            raise BufferError(
                f"{where}: extra_shape={self.extra_shape!r} must be a tuple of "
                "non-negative integers"
            )
        try:
            dtype = np.dtype(self.dtype)
        except (TypeError, ValueError) as e:
            raise BufferError(f"{where}: dtype={self.dtype!r} is not a NumPy dtype ({e})") from None
        if self.use not in USES:
            raise BufferError(f"{where}: use={self.use!r} must be None, 'private' or 'result_only'")
        return BufferDeclaration(
            self.kind, extra, dtype, self.use, check_axes(self.axes, extra, where)
        )

    def shape_for(self, num_frames: int, sig_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The array shape of this buffer for ``num_frames`` frames (nav kind)."""
        extra = self.extra_shape
        assert isinstance(extra, tuple), "shape_for needs a declaration from validated()"
        if self.kind == "nav":
            return (num_frames,) + extra
        if self.kind == "sig":
            return tuple(sig_shape) + extra
        return extra or (1,)

    def __repr__(self) -> str:
        axes = "" if self.axes is None else f", axes={self.axes!r}"
        return (
            f"BufferDeclaration(kind={self.kind!r}, extra_shape={self.extra_shape!r}, "
            f"dtype={self.dtype!r}, use={self.use!r}{axes})"
        )


def check_axes(
    axes: Any, extra_shape: tuple[int, ...], where: str = "buffer"
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
        raise BufferError(
            f"{where}: axes={axes!r} names {len(axes)} axes, but extra_shape "
            f"{extra_shape} has {len(extra_shape)}"
        )
    out = []
    for entry, size in zip(axes, extra_shape):
        name, coords, unit = (
            (entry, None, None) if isinstance(entry, str) else (tuple(entry) + (None, None))[:3]
        )
        if not isinstance(name, str) or not name:
            raise BufferError(f"{where}: axis names must be non-empty strings, got {name!r}")
        if coords is not None:
            coords = np.asarray(coords)
            if coords.shape != (size,):
                raise BufferError(
                    f"{where}: axis {name!r} has {coords.shape} coordinates, but "
                    f"{size} values along it"
                )
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
    custom_mask : array_like of bool, optional
        A valid mask set in ``get_results`` with :meth:`UDF.with_mask`,
        broadcast to :attr:`shape`; replaces the default :attr:`valid_mask`.

    LiberTEM's way of making one for aux data also works:
    ``BufferWrapper(kind="nav", extra_shape=(2,), dtype="float32")`` followed by
    :meth:`set_buffer`.

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

    def __init__(
        self,
        kind: str,
        dtype="float32",
        extra_shape: tuple[int, ...] = (),
        raw: np.ndarray | None = None,
        nav_shape: tuple[int, ...] | None = None,
        roi: np.ndarray | None = None,
        valid: np.ndarray | None = None,
        custom_mask: Any = None,
    ):
        self.kind = kind
        self.dtype = np.dtype(dtype)
        if isinstance(extra_shape, (int, np.integer)):
            extra_shape = (int(extra_shape),)
        self.extra_shape = tuple(extra_shape)
        self._raw = raw
        self.nav_shape = tuple(nav_shape) if nav_shape is not None else ()
        self._roi = roi
        self._valid = valid
        self._custom_mask = custom_mask
        # a nav result that get_results returned in the full navigation shape while an
        # roi was set: kept whole (LiberTEM keeps the values outside the roi too)
        self._full: np.ndarray | None = None

    def set_buffer(self, data: Any) -> None:
        """Fill a wrapper made without data (LiberTEM's way to build aux data).

        For ``kind="nav"`` the leading dimensions of ``data`` that are not
        ``extra_shape`` are the navigation shape.

        Examples
        --------
        >>> b = BufferWrapper(kind="nav", extra_shape=(2,), dtype="float32")
        >>> b.set_buffer(np.zeros((3, 4, 2)))
        >>> b.shape, b.raw_data.shape
        ((3, 4, 2), (12, 2))
        """
        arr = np.asarray(data, dtype=self.dtype)
        if self.kind == "nav":
            n_extra = len(self.extra_shape)
            if n_extra and arr.shape[arr.ndim - n_extra :] != self.extra_shape:
                raise BufferError(
                    f"data of shape {arr.shape} does not end in extra_shape {self.extra_shape}"
                )
            self.nav_shape = arr.shape[: arr.ndim - n_extra]
            self._raw = arr.reshape((-1,) + self.extra_shape)
        else:
            self._raw = arr

    @property
    def raw_data(self) -> np.ndarray:
        """For nav buffers only the selected frames, in flat nav order; else the buffer."""
        return self._filled()

    def _filled(self) -> np.ndarray:
        """The raw array; a clear error for a wrapper made without data and never filled."""
        if self._raw is None:
            raise BufferError(
                f"this BufferWrapper(kind={self.kind!r}) has no data yet: fill it with "
                "set_buffer(data) first (or give raw= when making it)"
            )
        return self._raw

    @property
    def data(self) -> np.ndarray:
        """The buffer as an array; nav buffers have the full navigation shape.

        Navigation positions outside the roi, and in partial results those not
        merged yet, hold :func:`fill_value_for` the dtype; except when
        ``get_results`` returned the buffer in the full navigation shape: then
        its values outside the roi are kept, as returned.
        """
        raw = self._filled()
        if self.kind != "nav":
            return raw
        full_shape = self.nav_shape + self.extra_shape
        valid = self._valid
        if self._full is not None:
            out = self._full.reshape((-1,) + self.extra_shape).copy()
        elif self._roi is None:
            if valid is None or valid.all():
                return raw.reshape(full_shape)
            out = raw.copy()
        else:
            out = empty_filled((len(self._roi),) + self.extra_shape, self.dtype)
            out[self._roi] = raw
        if valid is not None:  # frames not merged yet (partial results) read as the fill value
            pending = ~valid
            if self._full is not None and self._roi is not None:
                pending &= self._roi  # outside the roi: the values get_results returned
            out[pending] = fill_value_for(self.dtype)
        return out.reshape(full_shape)

    @property
    def valid_mask(self) -> np.ndarray:
        """Bool mask of the valid entries: for nav buffers, over the nav shape
        (selected by the roi and merged so far), repeated over ``extra_shape``
        so that it has the shape of :attr:`data` (a read-only view); for
        others all True over the buffer's shape without ``extra_shape``. A mask
        set with :meth:`UDF.with_mask` in ``get_results`` has the buffer's full
        shape.

        Examples
        --------
        >>> b = BufferWrapper("nav", "float64", (2,), np.zeros((3, 2)), (3,),
        ...                   valid=np.array([True, False, True]))
        >>> b.valid_mask.shape, b.valid_mask[:, 0].tolist()
        ((3, 2), [True, False, True])
        """
        if self._custom_mask is not None:
            return np.broadcast_to(np.asarray(self._custom_mask, dtype=bool), self.shape)
        if self.kind != "nav":
            raw = self._filled()
            base = raw.shape[: raw.ndim - len(self.extra_shape)]
            return np.ones(base, dtype=bool)
        mask = self._flat_nav_valid()
        if not self.extra_shape:
            return mask.reshape(self.nav_shape)
        mask = mask.reshape(self.nav_shape + (1,) * len(self.extra_shape))
        return np.broadcast_to(mask, self.nav_shape + self.extra_shape)

    @property
    def nav_valid_mask(self) -> np.ndarray:
        """For nav buffers: the valid mask over the navigation shape only.

        A position is valid when all its ``extra_shape`` entries are (for the
        default mask: selected by the roi and merged so far). This is what
        :mod:`udfwidgets.export` writes as ``valid``.

        Examples
        --------
        >>> b = BufferWrapper("nav", "float64", (2,), np.zeros((3, 2)), (3,),
        ...                   valid=np.array([True, False, True]))
        >>> b.nav_valid_mask.tolist()
        [True, False, True]
        """
        if self.kind != "nav":
            raise BufferError(
                f"nav_valid_mask is for nav buffers; this one is kind={self.kind!r}: use valid_mask"
            )
        if self._custom_mask is not None:
            full = self.valid_mask
            if self.extra_shape:
                return np.asarray(full.reshape(self.nav_shape + (-1,)).all(axis=-1))
            return full
        return self._flat_nav_valid().reshape(self.nav_shape)

    def _flat_nav_valid(self) -> np.ndarray:
        n = int(np.prod(self.nav_shape))
        mask = np.ones(n, dtype=bool) if self._roi is None else self._roi.copy()
        if self._valid is not None:
            mask &= self._valid
        return mask

    @property
    def masked_data(self) -> np.ma.MaskedArray:
        """:attr:`data` as a masked array, entries outside :attr:`valid_mask` masked.

        Examples
        --------
        >>> b = BufferWrapper("nav", "float64", (), np.array([1.0, 2.0]), (2,),
        ...                   valid=np.array([True, False]))
        >>> float(b.masked_data.sum())
        1.0
        """
        data = self.data
        mask = self.valid_mask
        if mask.shape != data.shape:
            mask = mask.reshape(mask.shape + (1,) * (data.ndim - mask.ndim))
        return np.ma.array(data, mask=~np.broadcast_to(mask, data.shape))

    @property
    def raw_masked_data(self) -> np.ma.MaskedArray:
        """:attr:`raw_data` as a masked array: for nav buffers one entry per selected
        frame, masked where not merged yet; otherwise :attr:`masked_data`.

        Examples
        --------
        >>> b = BufferWrapper("nav", "float64", (), np.array([1.0, 2.0]), (2,),
        ...                   valid=np.array([True, False]))
        >>> b.raw_masked_data.mask.tolist()
        [False, True]
        """
        if self.kind != "nav" or self._custom_mask is not None:
            return self.masked_data
        mask = self._flat_nav_valid()
        if self._roi is not None:
            mask = mask[self._roi]
        raw = self._filled()
        mask = mask.reshape(mask.shape + (1,) * (raw.ndim - 1))
        return np.ma.array(raw, mask=~np.broadcast_to(mask, raw.shape))

    @property
    def valid_slice_bounding(self) -> tuple[slice, ...]:
        """The smallest box of slices (over :attr:`valid_mask`'s axes) holding every valid entry.

        Examples
        --------
        >>> b = BufferWrapper("sig", "float32", (), np.zeros((3, 4)), (1,),
        ...                   custom_mask=np.eye(3, 4, dtype=bool))
        >>> b.valid_slice_bounding
        (slice(0, 3, None), slice(0, 3, None))
        """
        mask = self.valid_mask
        out = []
        for axis in range(mask.ndim):
            other = tuple(a for a in range(mask.ndim) if a != axis)
            hit = np.flatnonzero(mask.any(axis=other) if other else mask)
            out.append(slice(int(hit[0]), int(hit[-1]) + 1) if len(hit) else slice(0, 0))
        return tuple(out)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of :attr:`data`."""
        if self.kind == "nav":
            return self.nav_shape + self.extra_shape
        return self._filled().shape

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
        return (
            f"<BufferWrapper kind={self.kind!r} dtype={self.dtype} shape={self.shape} "
            f"extra_shape={self.extra_shape}>"
        )
