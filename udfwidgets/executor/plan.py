"""Checks made on the main node before any work starts: the roi, clean copies
of the UDFs, their buffers and whether they can travel to workers."""
from __future__ import annotations

import pickle
from typing import Any, Sequence

import cloudpickle
import numpy as np

from ..udf.base import UDF, process_method_of
from ..udf.buffers import BufferDeclaration, BufferError

__all__ = ["normalize_roi", "clean_copies", "validate_buffers", "dumps_udfs", "UDFConstructorError"]


class UDFConstructorError(TypeError):
    """A UDF's constructor does not allow a clean copy (see the UDF guide).

    Examples
    --------
    >>> from udfwidgets import UDF
    >>> class NoSuper(UDF):
    ...     def __init__(self, radius):
    ...         self.radius = radius  # forgets super().__init__(radius=radius)
    ...     def process_frame(self, frame):
    ...         pass
    >>> try:
    ...     clean_copies([NoSuper(3)])
    ... except UDFConstructorError as e:
    ...     print("did not call super().__init__()" in str(e))
    True
    """


def normalize_roi(roi: Any, nav_shape: tuple[int, ...]) -> np.ndarray | None:
    """Turn an roi into a flat bool mask over the navigation positions.

    Accepted: ``None`` (everything), a bool array of the nav shape, a flat bool
    array of ``prod(nav_shape)`` entries, or a list/array of nav coordinates
    (one tuple of ``len(nav_shape)`` integers per selected frame).

    Examples
    --------
    >>> normalize_roi([(0, 1)], (2, 2))
    array([False,  True, False, False])
    """
    if roi is None:
        return None
    nav_shape = tuple(nav_shape)
    n = int(np.prod(nav_shape))
    hint = (f"roi must be a bool array of the navigation shape {nav_shape} (or flat, with {n} "
            f"entries), or a list of nav coordinates (tuples of {len(nav_shape)} integers)")
    if hasattr(roi, "raw_data") and hasattr(roi, "kind"):  # a BufferWrapper
        roi = roi.data
    arr = np.asarray(roi)
    if arr.dtype == bool:
        if arr.shape == nav_shape or arr.shape == (n,):
            return np.ascontiguousarray(arr).reshape(n).copy()
        raise ValueError(f"{hint}; got a bool array of shape {arr.shape}")
    if arr.dtype.kind in "iu" and arr.size > 0:
        coords = arr.reshape(-1, 1) if (len(nav_shape) == 1 and arr.ndim == 1) else arr
        if coords.ndim == 2 and coords.shape[1] == len(nav_shape):
            if (coords < 0).any() or (coords >= np.array(nav_shape)).any():
                raise ValueError(f"roi coordinates must lie inside the navigation shape {nav_shape}")
            mask = np.zeros(n, dtype=bool)
            mask[np.ravel_multi_index(tuple(coords.T), nav_shape)] = True
            return mask
        raise ValueError(f"{hint}; got an integer array of shape {arr.shape}")
    if arr.size == 0 and arr.ndim == 1 and arr.dtype.kind in "fiu":
        return np.zeros(n, dtype=bool)  # an empty list of coordinates
    raise ValueError(f"{hint}; got {type(roi).__name__} of dtype {arr.dtype} and shape {arr.shape}")


def clean_copies(udfs: Sequence[UDF]) -> list[UDF]:
    """Re-instantiate every UDF from its constructor's keyword arguments.

    Raises :class:`UDFConstructorError` (a ``TypeError``) naming the class,
    the parameter and the rule when the constructor does not allow it.

    Examples
    --------
    >>> from udfwidgets.udf.sum import SumUDF
    >>> udf = SumUDF()
    >>> (copy,) = clean_copies([udf])
    >>> type(copy).__name__, copy is udf
    ('SumUDF', False)
    """
    copies = []
    for udf in udfs:
        if not isinstance(udf, UDF):
            raise TypeError(f"expected UDF instances, got {type(udf).__name__}: subclass udfwidgets.UDF")
        cls = type(udf).__name__
        rule = ("A UDF constructor must pass each of its parameters to super().__init__() under "
                f"the same name that {cls}.__init__ accepts, because a clean copy is made as "
                f"{cls}(**kwargs) with the keyword arguments given to super().__init__().")
        if "_kwargs" not in udf.__dict__:
            raise UDFConstructorError(f"{cls}.__init__ did not call super().__init__(). {rule}")
        kwargs = udf._kwargs
        try:
            copy = type(udf)(**kwargs)
        except TypeError as e:
            raise UDFConstructorError(
                f"cannot make a clean copy of {cls}: {cls}(**{sorted(kwargs)}) raised "
                f"TypeError: {e}. {rule}") from e
        if "_kwargs" not in copy.__dict__:
            raise UDFConstructorError(f"{cls}.__init__ did not call super().__init__(). {rule}")
        if set(copy._kwargs) != set(kwargs):
            extra = sorted(set(copy._kwargs) ^ set(kwargs))
            raise UDFConstructorError(
                f"the clean copy of {cls} has different parameters {extra} than the original. {rule}")
        copies.append(copy)
    return copies


def validate_buffers(udf: UDF) -> dict[str, BufferDeclaration]:
    """Call ``get_result_buffers`` and check every declaration; cache the result on the UDF.

    Examples
    --------
    >>> from udfwidgets import UDF
    >>> class Total(UDF):
    ...     def get_result_buffers(self):
    ...         return {"total": self.buffer(kind="nav")}
    ...     def process_frame(self, frame):
    ...         self.results.total[:] = frame.sum()
    >>> decls = validate_buffers(Total())
    >>> sorted(decls), decls["total"].kind
    (['total'], 'nav')
    """
    cls = type(udf).__name__
    decls = udf.get_result_buffers()
    if not isinstance(decls, dict):
        raise BufferError(f"{cls}.get_result_buffers() must return a dict of name -> "
                          f"self.buffer(...), got {type(decls).__name__}")
    out = {}
    for name, decl in decls.items():
        if not isinstance(decl, BufferDeclaration):
            raise BufferError(f"buffer {name!r} of {cls}: declare it with self.buffer(kind=..., "
                              f"dtype=...), got {type(decl).__name__}")
        out[name] = decl.validated(name, cls)
    udf.__dict__["_buffer_decls"] = out
    process_method_of(udf)
    return out


def dumps_udfs(udfs: Sequence[UDF]) -> bytes:
    """Pickle the UDFs for the workers; name the attribute that cannot be pickled.

    Examples
    --------
    >>> import cloudpickle
    >>> from udfwidgets.udf.sum import SumUDF
    >>> type(cloudpickle.loads(dumps_udfs([SumUDF()]))[0]).__name__
    'SumUDF'
    """
    try:
        return cloudpickle.dumps(list(udfs))
    except Exception as e:
        for udf in udfs:
            cls = type(udf).__name__
            for key, value in udf._kwargs.items():
                if not _picklable(value):
                    raise TypeError(f"parameter {key!r} of {cls} cannot be pickled "
                                    f"({type(value).__name__}): UDF parameters travel to worker "
                                    f"processes, pass something picklable. ({e})") from e
            for key, value in vars(udf).items():
                if not _picklable(value):
                    raise TypeError(f"attribute {key!r} of {cls} cannot be pickled "
                                    f"({type(value).__name__}): UDFs travel to worker processes; "
                                    "create such objects in preprocess() or get_task_data() "
                                    f"instead. ({e})") from e
        raise TypeError(f"the UDFs cannot be pickled: {e}") from e


def _picklable(value: Any) -> bool:
    try:
        cloudpickle.dumps(value)
        return True
    except (pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError):
        return False
    except Exception:
        return False
