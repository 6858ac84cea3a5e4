"""Result buffers: declarations made in ``get_result_buffers`` and the
:class:`BufferWrapper` objects a run returns."""
from __future__ import annotations

import keyword
from typing import Any, Iterable

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

__all__ = ["BufferDeclaration", "BufferWrapper", "BufferError", "fill_value_for", "KINDS", "USES"]

#: Buffer kinds: one value per frame (``nav``), a frame-shaped buffer (``sig``), or one value.
KINDS = ("nav", "sig", "single")
#: Buffer uses: a result (None), private to the UDF (not returned), or made for the results only
#: (``result_only``: filled in ``get_results``, not seen by the process methods).
USES = (None, "private", "result_only")


class BufferError(ValueError):
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


def zeros(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Zeros, or ``None`` items for object dtype."""
    dtype = np.dtype(dtype)
    return np.empty(shape, dtype=dtype) if dtype.kind == "O" else np.zeros(shape, dtype=dtype)


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

    def __init__(self, kind: str, extra_shape: Iterable[int] | int = (), dtype: Any = "float32",
                 use: str | None = None):
        self.kind = kind
        self.extra_shape = extra_shape
        self.dtype = dtype
        self.use = use

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
        return BufferDeclaration(self.kind, extra, dtype, self.use)

    def shape_for(self, num_frames: int, sig_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The array shape of this buffer for ``num_frames`` frames (nav kind)."""
        if self.kind == "nav":
            return (num_frames,) + self.extra_shape
        if self.kind == "sig":
            return tuple(sig_shape) + self.extra_shape
        return self.extra_shape or (1,)

    def __repr__(self) -> str:
        return (f"BufferDeclaration(kind={self.kind!r}, extra_shape={self.extra_shape!r}, "
                f"dtype={self.dtype!r}, use={self.use!r})")


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

    def __repr__(self) -> str:
        return (f"<BufferWrapper kind={self.kind!r} dtype={self.dtype} shape={self.shape} "
                f"extra_shape={self.extra_shape}>")
