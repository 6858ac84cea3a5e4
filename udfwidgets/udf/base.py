"""The :class:`UDF` base class that user-defined functions subclass."""
from __future__ import annotations

from typing import Any

import numpy as np

from .buffers import BufferDeclaration

__all__ = ["UDF", "UDFParams", "BufferNamespace", "PROCESS_METHODS", "process_method_of"]

#: Checked in this order: the first one a UDF implements is the one used.
PROCESS_METHODS = ("process_partition", "process_tile", "process_frame")


def process_method_of(udf: "UDF") -> str:
    """The process method the runner calls for ``udf``.

    ``process_partition`` wins over ``process_tile``, which wins over
    ``process_frame``: a UDF may keep a slow ``process_frame`` for reference
    and add a fast ``process_tile`` that is used instead.

    Examples
    --------
    >>> from udfwidgets.udf.sumsigudf import SumSigUDF
    >>> process_method_of(SumSigUDF()) in PROCESS_METHODS
    True
    """
    for name in PROCESS_METHODS:
        if callable(getattr(udf, name, None)):
            return name
    raise TypeError(f"{type(udf).__name__} implements none of process_frame, process_tile, "
                    "process_partition: implement at least one of them")


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
                f"the constructor, e.g. {self._udf_name}({name}=...)") from None

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __setattr__(self, name, value):
        raise AttributeError("UDF parameters are read-only: create a new UDF with other parameters")

    def __contains__(self, name: str) -> bool:
        return name in self._kwargs

    def __iter__(self):
        return iter(self._kwargs)

    def __repr__(self) -> str:
        return f"UDFParams({self._kwargs!r})"


class BufferNamespace:
    """Attribute access to a set of arrays (``self.results``, ``dest``, ``src``).

    Reading a name that is not a declared buffer raises an ``AttributeError``
    that names it; assigning a whole new array to a buffer name is refused,
    since it would be lost: write into the buffer with ``[:]`` or ``[...]``.

    Examples
    --------
    >>> import numpy as np
    >>> ns = BufferNamespace({"total": np.zeros(2)}, owner="MyUDF")
    >>> ns.total[:] = 1
    >>> ns.total
    array([1., 1.])
    """

    def __init__(self, arrays: dict[str, np.ndarray], owner: str = "UDF"):
        self.__dict__.update(arrays)
        object.__setattr__(self, "_owner", owner)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        known = ", ".join(k for k in self.__dict__ if not k.startswith("_")) or "none"
        raise AttributeError(
            f"{self._owner} has no result buffer {name!r} (declared buffers: {known}); "
            "declare it in get_result_buffers()")

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __setattr__(self, name: str, value):
        if name in self.__dict__:
            raise AttributeError(
                f"cannot replace result buffer {name!r} of {self._owner}: write into it instead, "
                f"e.g. self.results.{name}[:] = value")
        self.__getattr__(name)

    def __getitem__(self, name: str) -> np.ndarray:
        if name.startswith("_") or name not in self.__dict__:
            return self.__getattr__(name)
        return self.__dict__[name]

    def __contains__(self, name: str) -> bool:
        return not name.startswith("_") and name in self.__dict__

    def keys(self):
        return [k for k in self.__dict__ if not k.startswith("_")]

    def items(self):
        return [(k, self.__dict__[k]) for k in self.keys()]

    def get_buffer(self, name: str) -> np.ndarray:
        return self[name]

    def __repr__(self) -> str:
        return f"<BufferNamespace of {self._owner}: {', '.join(self.keys())}>"


class UDF:
    """Base class for user-defined functions.

    Subclass it, declare result buffers in :meth:`get_result_buffers`, and
    implement one of :meth:`process_frame`, :meth:`process_tile` or
    :meth:`process_partition`. Keyword arguments given to the constructor are
    available as ``self.params.<name>``.

    Which process method runs: ``process_partition`` if the UDF has it, else
    ``process_tile``, else ``process_frame``.

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

    #: Return this from :meth:`get_preferred_input_dtype` to get frames in the
    #: dataset's own dtype (``bool`` is neutral in ``np.result_type``).
    USE_NATIVE_DTYPE = np.bool_

    def __init__(self, **kwargs: Any):
        self._kwargs = dict(kwargs)
        self.params = UDFParams(self._kwargs, type(self).__name__)
        self.meta: Any = None
        self.results: Any = None
        self.task_data: Any = None

    # --- declaring buffers -------------------------------------------------
    def buffer(self, kind: str, extra_shape=(), dtype="float32", where=None,
               use: str | None = None) -> BufferDeclaration:
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

        Examples
        --------
        >>> from udfwidgets import UDF
        >>> UDF().buffer(kind="nav", extra_shape=(2,), dtype="float64")
        BufferDeclaration(kind='nav', extra_shape=(2,), dtype='float64', use=None)
        """
        return BufferDeclaration(kind, extra_shape, dtype, use)

    def get_result_buffers(self) -> dict[str, BufferDeclaration]:
        """Return ``{name: self.buffer(...)}`` for every result buffer."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement get_result_buffers() and return a dict of "
            "name -> self.buffer(kind=..., dtype=...)")

    # --- hooks -------------------------------------------------------------
    def get_preferred_input_dtype(self):
        """The dtype this UDF prefers frames in (float32 by default).

        The frames arrive in ``np.result_type(preferred, dataset dtype)``:
        float32 for integer detectors up to 16 bit, float64 for wider ones.
        Return :attr:`USE_NATIVE_DTYPE` for the dataset's own dtype.
        """
        return np.float32

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
        not_nav = [name for name, decl in self._validated_buffers().items()
                   if decl.kind != "nav" and decl.use != "result_only"]
        if not_nav:
            raise NotImplementedError(merge_missing_message(type(self).__name__, not_nav))
        for name in dest.keys():
            dest[name][...] = src[name]

    def get_results(self) -> dict[str, Any]:
        """Final results, computed on the main node after all merges.

        Override to derive results (e.g. a standard deviation from sums).
        ``self.results.<name>`` holds the merged buffers here, nav buffers in
        the full navigation shape. Return ``{name: array}`` for the buffers
        that should be results; by default every buffer that is not private.
        """
        return {name: self.results[name] for name, decl in self._validated_buffers().items()
                if decl.use != "private"}

    # --- machinery ---------------------------------------------------------
    def _validated_buffers(self) -> dict[str, BufferDeclaration]:
        cached = self.__dict__.get("_buffer_decls")
        if cached is None:
            raise RuntimeError("buffers are only known while the UDF runs")
        return cached

    def copy(self) -> "UDF":
        """A clean copy: ``type(self)(**kwargs)`` with the constructor's keyword arguments."""
        return type(self)(**self._kwargs)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in getattr(self, "_kwargs", {}).items())
        return f"{type(self).__name__}({params})"


def merge_missing_message(udf_name: str, buffers: list[str]) -> str:
    names = ", ".join(repr(b) for b in buffers)
    example = buffers[0]
    return (f"{udf_name} has sig/single buffers ({names}) but no merge() method: results of "
            f"partitions cannot simply be copied into place. Implement merge(self, dest, src), "
            f"e.g. `dest.{example}[:] += src.{example}` for a sum or "
            f"`dest.{example}[:] = np.maximum(dest.{example}, src.{example})` for a maximum.")
