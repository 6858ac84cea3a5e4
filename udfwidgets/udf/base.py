"""The :class:`UDF` base class that user-defined functions subclass."""

from __future__ import annotations

import enum
import warnings
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np

from . import backends as _backends
from .buffers import BufferDeclaration, BufferWrapper, MaskedResult, UDFMethodError

__all__ = [
    "UDF",
    "NoOpUDF",
    "UDFMethod",
    "UDFParams",
    "BufferNamespace",
    "UseDiscouragedWarning",
    "PROCESS_METHODS",
    "process_method_of",
]

_U = TypeVar("_U", bound="UDF")  # copy() of a subclass returns that subclass

#: Checked in this order (as LiberTEM does): the first one a UDF implements is used.
PROCESS_METHODS = ("process_tile", "process_frame", "process_partition")


class UDFMethod(str, enum.Enum):
    """Which process method a UDF's frames go to (see :meth:`UDF.get_method`).

    Examples
    --------
    >>> UDFMethod.TILE.value, UDFMethod("frame")
    ('tile', <UDFMethod.FRAME: 'frame'>)
    """

    TILE = "tile"
    FRAME = "frame"
    PARTITION = "partition"


def process_method_of(udf: UDF) -> str:
    """The name of the process method the runner calls for ``udf``.

    ``process_tile`` wins over ``process_frame``, which wins over
    ``process_partition`` (LiberTEM's order): a UDF may keep a slow
    ``process_frame`` for reference and add a fast ``process_tile`` that is
    used instead. A method set to ``None`` counts as absent. A UDF that
    overrides :meth:`UDF.get_method` chooses for itself.

    Examples
    --------
    >>> from udfwidgets.udf.sumsigudf import SumSigUDF
    >>> process_method_of(SumSigUDF()) in PROCESS_METHODS
    True
    """
    if type(udf).get_method is not UDF.get_method:
        chosen = udf.get_method()
        try:
            name = "process_" + UDFMethod(chosen).value
        except ValueError:
            raise UDFMethodError(
                f"{type(udf).__name__}.get_method() returned {chosen!r}: return a UDFMethod "
                "(UDFMethod.TILE, UDFMethod.FRAME or UDFMethod.PARTITION)"
            ) from None
        if callable(getattr(udf, name, None)):
            return name
        raise UDFMethodError(
            f"{type(udf).__name__}.get_method() chose {name}, which it does not implement"
        )
    for name in PROCESS_METHODS:
        if callable(getattr(udf, name, None)):
            return name
    raise UDFMethodError(
        f"{type(udf).__name__} implements none of process_frame, process_tile, "
        "process_partition: implement at least one of them"
    )


class UDFParams:
    """The keyword arguments a UDF was created with, as attributes (``self.params.x``).

    Examples
    --------
    >>> p = UDFParams({"radius": 3}, "MyUDF")
    >>> p.radius
    3
    """

    def __init__(self, kwargs: dict[str, Any], udf_name: str = "UDF"):
        self.__dict__["_kwargs"] = kwargs
        self.__dict__["_udf_name"] = udf_name

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.__dict__["_kwargs"][name]
        except KeyError:
            known = ", ".join(sorted(self._kwargs)) or "none"
            raise AttributeError(
                f"{self._udf_name} has no parameter {name!r} (parameters: {known}); pass it to "
                f"the constructor, e.g. {self._udf_name}({name}=...)"
            ) from None

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __setattr__(self, name, value):
        raise AttributeError("UDF parameters are read-only: create a new UDF with other parameters")

    def __contains__(self, name: str) -> bool:
        return name in self._kwargs

    def __iter__(self):
        return iter(self._kwargs)

    def __getitem__(self, name: str) -> Any:
        return self._kwargs[name]

    def get(self, name: str, default: Any = None) -> Any:
        """The parameter ``name``, or ``default`` when the UDF was created without it.

        Examples
        --------
        >>> p = UDFParams({"radius": 3})
        >>> p.get("radius"), p.get("centre", (0, 0))
        (3, (0, 0))
        """
        return self._kwargs.get(name, default)

    def keys(self):
        return self._kwargs.keys()

    def __repr__(self) -> str:
        return f"UDFParams({self._kwargs!r})"


class UseDiscouragedWarning(UserWarning):
    """A UDF uses a form that works but is discouraged (LiberTEM's warning of that name).

    Emitted for dict-style access to buffers, ``self.results["x"]`` or
    ``dest["x"]``: use attribute access, ``self.results.x``.

    Examples
    --------
    >>> import warnings
    >>> ns = BufferNamespace({"x": np.zeros(1)}, owner="MyUDF")
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = ns["x"]
    >>> caught[0].category.__name__
    'UseDiscouragedWarning'
    """


class _ItemView(np.ndarray):
    """What ``self.results["x"]`` gives: the buffer itself (a view), with LiberTEM's
    ``raw_data`` (the array, as a plain ndarray) for code written for LiberTEM."""

    @property
    def raw_data(self) -> np.ndarray:
        return self.view(np.ndarray)


class BufferNamespace:
    """Attribute access to a set of arrays (``self.results``, ``dest``, ``src``).

    Reading a name that is not a declared buffer raises an ``AttributeError``
    that names it. Assigning to a buffer name writes into the buffer, as in
    LiberTEM: ``self.results.x += frame`` adds in place, ``dest.x = src.x``
    copies ``src.x`` into ``dest.x`` (the shapes must broadcast).

    Examples
    --------
    >>> import numpy as np
    >>> ns = BufferNamespace({"total": np.zeros(2)}, owner="MyUDF")
    >>> ns.total += 1
    >>> ns.total
    array([1., 1.])
    """

    def __init__(self, arrays: Mapping[str, np.ndarray | None], owner: str = "UDF"):
        self.__dict__.update(arrays)
        object.__setattr__(self, "_owner", owner)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        known = ", ".join(k for k in self.__dict__ if not k.startswith("_")) or "none"
        raise AttributeError(
            f"{self._owner} has no result buffer {name!r} (declared buffers: {known}); "
            "declare it in get_result_buffers()"
        )

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __setattr__(self, name: str, value):
        if name in self.__dict__ and not name.startswith("_"):
            target = self.__dict__[name]
            if value is target:  # the result of an in-place operator (+=, *=, ...)
                return
            if target is None:
                raise AttributeError(
                    f"buffer {name!r} of {self._owner} is result_only: it has no array while "
                    "processing; return its value from get_results() instead"
                )
            try:
                target[...] = value
            except ValueError as e:
                raise ValueError(
                    f"cannot write into buffer {name!r} of {self._owner} "
                    f"(shape {target.shape}): {e}"
                ) from None
            return
        self.__getattr__(name)

    def __getitem__(self, name: str) -> np.ndarray:
        """The buffer ``name`` (with a :class:`UseDiscouragedWarning`): a view of it
        that also has LiberTEM's ``.raw_data``."""
        if name.startswith("_") or name not in self.__dict__:
            return self.__getattr__(name)
        warnings.warn(
            f"{self._owner}: reading buffer {name!r} as [{name!r}] is discouraged (LiberTEM "
            f"deprecated it too); use attribute access, e.g. self.results.{name} or "
            f"dest.{name}",
            UseDiscouragedWarning,
            stacklevel=2,
        )
        arr = self.__dict__[name]
        # a view that writes into the buffer; .raw_data as on LiberTEM's BufferWrapper
        return arr.view(_ItemView) if isinstance(arr, np.ndarray) else arr

    def __contains__(self, name: str) -> bool:
        return not name.startswith("_") and name in self.__dict__

    def keys(self):
        return [k for k in self.__dict__ if not k.startswith("_")]

    def items(self):
        return [(k, self.__dict__[k]) for k in self.keys()]

    def get_buffer(self, name: str) -> np.ndarray:
        """The buffer ``name`` (a view of it that also has LiberTEM's ``.raw_data``).

        Examples
        --------
        >>> ns = BufferNamespace({"x": np.zeros(2)}, owner="MyUDF")
        >>> ns.get_buffer("x").raw_data
        array([0., 0.])
        """
        arr = getattr(self, name)
        return arr.view(_ItemView) if isinstance(arr, np.ndarray) else arr

    def __repr__(self) -> str:
        return f"<BufferNamespace of {self._owner}: {', '.join(self.keys())}>"


class UDF:
    """Base class for user-defined functions.

    Subclass it, declare result buffers in :meth:`get_result_buffers`, and
    implement one of :meth:`process_frame`, :meth:`process_tile` or
    :meth:`process_partition`. Keyword arguments given to the constructor are
    available as ``self.params.<name>``.

    Which process method runs (LiberTEM's order, see :meth:`get_method`):
    ``process_tile`` if the UDF has it, else ``process_frame``, else
    ``process_partition``.

    Constructor rule: a subclass that defines ``__init__`` must pass every
    parameter to ``super().__init__`` under the name its own ``__init__``
    accepts, because a *clean copy* is made before each run by calling
    ``type(udf)(**kwargs)`` with exactly those keyword arguments.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import UDF, Context
    >>> class SumOverSig(UDF):
    ...     def get_result_buffers(self):
    ...         return {"pixelsum": self.buffer(kind="nav", dtype="float32")}
    ...     def process_frame(self, frame):
    ...         self.results.pixelsum[:] = np.sum(frame)
    >>> with Context(executor="inline") as ctx:
    ...     ds = ctx.load("memory", data=np.ones((2, 2, 3, 3)))
    ...     ctx.run_udf(dataset=ds, udf=SumOverSig())["pixelsum"].data
    array([[9., 9.],
           [9., 9.]], dtype=float32)
    """

    #: Whether ``process_tile`` may get tiles that cover part of the frame, when
    #: the dataset's ``tileshape`` splits it (``MemoryDataSet(tileshape=(d, sy, sx))``
    #: with a smaller signal part, as in LiberTEM). Such tiles come only when every
    #: UDF of the run uses ``process_tile`` and accepts them; ``self.meta.sig_slice``
    #: says which part, and ``sig`` buffers are views of that part. Set it to
    #: False in a UDF that needs whole frames (a per-frame minimum, a mask product).
    ACCEPTS_SIG_SLICED_TILES = True

    #: Return this from :meth:`get_preferred_input_dtype` to get frames in the
    #: dataset's own dtype (``bool`` is neutral in ``np.result_type``).
    USE_NATIVE_DTYPE = np.bool_

    # array backends, by LiberTEM's names (see udfwidgets.udf.backends)
    BACKEND_NUMPY = _backends.NUMPY
    BACKEND_CUPY = _backends.CUPY
    BACKEND_CUDA = _backends.CUDA
    BACKEND_SPARSE_COO = _backends.SPARSE_COO
    BACKEND_SPARSE_GCXS = _backends.SPARSE_GCXS
    BACKEND_SPARSE_DOK = _backends.SPARSE_DOK
    BACKEND_SCIPY_COO = _backends.SCIPY_COO
    BACKEND_SCIPY_CSR = _backends.SCIPY_CSR
    BACKEND_SCIPY_CSC = _backends.SCIPY_CSC
    BACKEND_SCIPY_COO_ARRAY = _backends.SCIPY_COO_ARRAY
    BACKEND_SCIPY_CSR_ARRAY = _backends.SCIPY_CSR_ARRAY
    BACKEND_SCIPY_CSC_ARRAY = _backends.SCIPY_CSC_ARRAY
    BACKEND_CUPY_SCIPY_COO = _backends.CUPY_SCIPY_COO
    BACKEND_CUPY_SCIPY_CSR = _backends.CUPY_SCIPY_CSR
    BACKEND_CUPY_SCIPY_CSC = _backends.CUPY_SCIPY_CSC
    BACKEND_ALL = _backends.ALL
    CPU_BACKENDS = _backends.CPU_BACKENDS
    CUDA_BACKENDS = _backends.CUDA_BACKENDS
    CUPY_BACKENDS = _backends.CUPY_BACKENDS
    DENSE_BACKENDS = _backends.DENSE_BACKENDS
    SPARSE_BACKENDS = _backends.SPARSE_BACKENDS
    D2_BACKENDS = _backends.D2_BACKENDS
    ND_BACKENDS = _backends.ND_BACKENDS

    def __init__(self, **kwargs: Any):
        self._kwargs = dict(kwargs)
        self.params = UDFParams(self._kwargs, type(self).__name__)
        self.meta: Any = None
        self.results: Any = None
        self.task_data: Any = None

    # --- declaring buffers -------------------------------------------------
    def buffer(
        self,
        kind: str,
        extra_shape=(),
        dtype="float32",
        where=None,
        use: str | None = None,
        axes=None,
    ) -> BufferDeclaration:
        """Declare a result buffer; use it inside :meth:`get_result_buffers`.

        Parameters
        ----------
        kind : {"nav", "sig", "single"}
            ``"nav"``: one entry per frame (shape of the scan); ``"sig"``: the
            shape of a frame; ``"single"``: just ``extra_shape`` (``(1,)`` when empty).
        extra_shape : tuple of int
            Axes appended to the buffer's shape.
        dtype : numpy dtype
            Any NumPy dtype, ``object`` included (items must survive cloudpickle).
        where : None
            Accepted for LiberTEM compatibility; buffers always live in host memory.
        use : {None, "private", "result_only"}
            ``"private"``: used while processing but left out of the results;
            ``"result_only"``: not allocated on workers, filled by :meth:`get_results`.
        axes : list, optional
            Names of the ``extra_shape`` axes for exports: a name, ``(name,
            coords)`` or ``(name, coords, unit)`` per axis (``unit="px"``:
            detector pixels, converted with the dataset's calibration).

        Examples
        --------
        >>> from udfwidgets import UDF
        >>> UDF().buffer(kind="nav", extra_shape=(2,), dtype="float64")
        BufferDeclaration(kind='nav', extra_shape=(2,), dtype='float64', use=None)
        """
        return BufferDeclaration(kind, extra_shape, dtype, use, axes)

    def get_result_buffers(self) -> dict[str, BufferDeclaration]:
        """Return ``{name: self.buffer(...)}`` for every result buffer."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement get_result_buffers() and return a dict of "
            "name -> self.buffer(kind=..., dtype=...)"
        )

    # --- hooks -------------------------------------------------------------
    def get_preferred_input_dtype(self):
        """The dtype this UDF prefers frames in (float32 by default).

        The frames arrive in ``np.result_type(preferred, dataset dtype)``:
        float32 for integer detectors up to 16 bit, float64 for wider ones.
        Return :attr:`USE_NATIVE_DTYPE` for the dataset's own dtype.
        """
        return np.float32

    def get_backends(self):
        """The array backends this UDF accepts frames in, best first.

        Default ``(UDF.BACKEND_NUMPY,)``. A UDF returning only sparse backends
        (``BACKEND_SCIPY_CSR``, ``BACKEND_SPARSE_COO``, ...) gets every tile
        converted to that type: scipy.sparse tiles are ``(frames, pixels)``,
        pydata sparse tiles ``(frames, *sig)``. GPU backends are never chosen
        (udfwidgets computes on the CPU).

        Examples
        --------
        >>> UDF().get_backends()
        ('numpy',)
        """
        return (self.BACKEND_NUMPY,)

    def get_method(self) -> UDFMethod:
        """Which process method runs: tile, else frame, else partition.

        Examples
        --------
        >>> class F(UDF):
        ...     def process_frame(self, frame): pass
        ...     def process_partition(self, partition): pass
        >>> F().get_method()
        <UDFMethod.FRAME: 'frame'>
        """
        return UDFMethod(process_method_of(self).split("_", 1)[1])

    @property
    def xp(self):
        """The array module to compute with: NumPy (CPU backends; CuPy is not used here).

        Examples
        --------
        >>> UDF().xp.__name__
        'numpy'
        """
        backend = getattr(self.meta, "array_backend", _backends.NUMPY)
        return _backends.xp_for(backend)

    @staticmethod
    def with_mask(data: Any, mask: Any) -> MaskedResult:
        """Return ``data`` from ``get_results`` with its own valid mask.

        ``mask`` is a bool (or 0/1) array broadcastable to the buffer's shape,
        or a scalar (``1``: all valid, ``0``: nothing valid). The result's
        ``valid_mask`` is that mask instead of the default.

        Examples
        --------
        >>> UDF.with_mask(np.zeros(3), mask=1)
        MaskedResult(shape=(3,))
        """
        return MaskedResult(data, mask)

    @classmethod
    def aux_data(cls, data: Any, kind: str, extra_shape=(), dtype="float32") -> BufferWrapper:
        """Per-frame auxiliary data to pass as a UDF parameter.

        With ``kind="nav"``, ``data`` has the navigation shape (or is flat)
        plus ``extra_shape``; inside the process methods ``self.params.<name>``
        is then the view for the current frame, tile or partition, like a nav
        result buffer (with an roi, only the selected frames).

        Examples
        --------
        >>> aux = UDF.aux_data(np.arange(6).reshape(2, 3), kind="nav", dtype="int64")
        >>> aux.shape, aux.raw_data.shape
        ((2, 3), (6,))
        """
        buf = BufferWrapper(kind=kind, dtype=dtype, extra_shape=extra_shape)
        buf.set_buffer(data)
        return buf

    def forbuf(self, arr: Any, target: Any) -> np.ndarray:
        """``arr`` as a dense NumPy array that can be written into ``target``.

        For UDFs that compute with sparse backends and write into result buffers.

        Examples
        --------
        >>> UDF().forbuf([1, 2], np.zeros(2)).dtype
        dtype('int64')
        """
        out = np.asarray(_backends.to_dense(arr))
        if target is not None and out.shape != np.shape(target) and out.size == np.size(target):
            out = out.reshape(np.shape(target))
        return out

    def get_tiling_preferences(self) -> dict[str, Any]:
        """Preferences for the tiles ``process_tile`` receives.

        Return ``{"total_size": bytes}`` to ask for tiles of about that many
        bytes of input (default: the Context's ``tile_bytes``, 4 MiB). UDFs of
        one run share tiles, so the largest request wins. Larger tiles help
        UDFs whose work per tile is a matrix product (BLAS is faster on more
        rows); per-frame work is cache-friendlier with small tiles.

        Examples
        --------
        >>> from udfwidgets import UDF
        >>> class Big(UDF):
        ...     def get_tiling_preferences(self):
        ...         return {"total_size": 4 << 20}
        >>> Big().get_tiling_preferences()
        {'total_size': 4194304}
        """
        return {}

    def get_task_data(self) -> dict[str, Any]:
        """Per-partition data computed on the worker, available as ``self.task_data.<name>``."""
        return {}

    def preprocess(self) -> None:
        """Initialise buffers; runs once per partition before any frame (and once
        on the main node to initialise the buffers that partitions merge into).
        Nav buffers are the whole partition here."""

    def postprocess(self) -> None:
        """Runs once per partition on the worker, after its last frame and before merge."""

    def merge(self, dest: BufferNamespace, src: BufferNamespace) -> None:
        """Merge a partition's results ``src`` into ``dest`` (the results so far).

        The default copies nav buffers into place; a UDF with ``sig`` or
        ``single`` buffers must implement its own ``merge`` (for example
        ``dest.intensity[:] += src.intensity``).
        """
        not_nav = [
            name
            for name, decl in self._validated_buffers().items()
            if decl.kind != "nav" and decl.use != "result_only"
        ]
        if not_nav:
            raise NotImplementedError(merge_missing_message(type(self).__name__, not_nav))
        for name in dest.keys():
            getattr(dest, name)[...] = getattr(src, name)

    def get_results(self) -> dict[str, Any]:
        """Final results, computed on the main node after all merges.

        Override to derive results (e.g. a standard deviation from sums).
        ``self.results.<name>`` holds the merged buffers here; nav buffers
        are flat and roi-compressed, ``(n_selected, *extra_shape)`` (as in
        LiberTEM), so reductions over them see only processed frames;
        ``result_only`` buffers read as None. Return ``{name: value}``: a nav
        value may have that flat shape or the full ``nav + extra`` shape; wrap
        a value in :meth:`with_mask` to give it its own valid mask. Buffers
        left out pass through unchanged; returning a private buffer is an
        error, and so is leaving out a ``result_only`` one.
        """
        return {
            name: getattr(self.results, name)
            for name, decl in self._validated_buffers().items()
            if decl.use != "private"
        }

    # --- machinery ---------------------------------------------------------
    def _validated_buffers(self) -> dict[str, BufferDeclaration]:
        cached = self.__dict__.get("_buffer_decls")
        if cached is None:
            raise RuntimeError("buffers are only known while the UDF runs")
        return cached

    def copy(self: _U) -> _U:
        """A clean copy: ``type(self)(**kwargs)`` with the constructor's keyword arguments."""
        return type(self)(**self._kwargs)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in getattr(self, "_kwargs", {}).items())
        return f"{type(self).__name__}({params})"


class NoOpUDF(UDF):
    """A UDF that reads every frame and does nothing: measures the framework's cost.

    Parameters
    ----------
    preferred_input_dtype : numpy dtype
        The dtype frames are asked for (default: the dataset's own).

    Examples
    --------
    >>> from udfwidgets import Context
    >>> ctx = Context(executor="inline")
    >>> ctx.run_udf(dataset=ctx.load("memory", data=np.ones((2, 2, 3, 3))), udf=NoOpUDF())
    {}
    """

    def __init__(self, preferred_input_dtype=UDF.USE_NATIVE_DTYPE):
        super().__init__(preferred_input_dtype=preferred_input_dtype)

    def get_preferred_input_dtype(self):
        return self.params.preferred_input_dtype

    def get_result_buffers(self):
        return {}

    def process_tile(self, tile):
        pass


def merge_missing_message(udf_name: str, buffers: list[str]) -> str:
    names = ", ".join(repr(b) for b in buffers)
    example = buffers[0]
    return (
        f"{udf_name} has sig/single buffers ({names}) but no merge() method: results of "
        f"partitions cannot simply be copied into place. Implement merge(self, dest, src), "
        f"e.g. `dest.{example}[:] += src.{example}` for a sum or "
        f"`dest.{example}[:] = np.maximum(dest.{example}, src.{example})` for a maximum."
    )
