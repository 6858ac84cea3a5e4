"""Checks made on the main node before any work starts: the roi, clean copies
of the UDFs, their buffers and whether they can travel to workers."""

from __future__ import annotations

import functools
import os
import pickle
import sys
import warnings
from collections.abc import Sequence
from types import FrameType
from typing import Any

import cloudpickle
import numpy as np

from ..udf.base import UDF, process_method_of
from ..udf.buffers import BufferDeclaration, BufferError

__all__ = [
    "normalize_roi",
    "clean_copies",
    "validate_buffers",
    "dumps_udfs",
    "UDFConstructorError",
    "RoiWarning",
    "ProcessReturnWarning",
    "check_run_kwargs",
    "as_udf_list",
    "check_dataset",
    "check_outputs",
    "commit_outputs",
    "abort_outputs",
    "NOT_YET_SUPPORTED",
]


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


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the first caller outside udfwidgets."""
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


class RoiWarning(UserWarning):
    """A numeric (not bool) roi was read as a mask.

    Examples
    --------
    >>> import warnings
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sum import SumUDF
    >>> ctx = Context(executor="inline")
    >>> ds = ctx.load("memory", data=np.ones((2, 2, 3, 3)))
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     res = ctx.run_udf(dataset=ds, udf=SumUDF(), roi=np.array([[1, 0], [0, 1]]))
    >>> print(caught[0].category.__name__, caught[0].message)
    RoiWarning roi of dtype int64 is read as a mask of the navigation shape (1 = selected, 0 = not); pass a bool array (roi.astype(bool)) to silence this warning
    >>> float(res["intensity"].data[0, 0])  # two frames selected
    2.0
    """


def _roi_hint(nav_shape: tuple[int, ...], n: int) -> str:
    nd = len(nav_shape)
    example = "(y, x)" if nd == 2 else "(" + ", ".join("ijk"[:nd]) + ("," if nd == 1 else "") + ")"
    return (
        f"pass the roi as a mask: a bool array of the navigation shape {nav_shape} (or flat, "
        f"with {n} entries), or as nav coordinates: a list of tuples [{example}, ...], a "
        f"single tuple {example}, or an integer array of shape (k, {nd})"
    )


def _is_sparse(roi: Any) -> bool:
    module = type(roi).__module__ or ""
    return (module.startswith("scipy.sparse") and hasattr(roi, "toarray")) or (
        module.split(".")[0] == "sparse" and hasattr(roi, "todense")
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_coord(value: Any, nd: int) -> bool:
    return isinstance(value, tuple) and len(value) == nd and all(_is_int(v) for v in value)


def _coords_mask(
    coords: np.ndarray, nav_shape: tuple[int, ...], n: int, value: bool = True
) -> np.ndarray:
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, len(nav_shape))
    bad = (coords < 0).any(axis=1) | (coords >= np.array(nav_shape)).any(axis=1)
    if bad.any():
        raise ValueError(
            f"roi coordinate {tuple(int(c) for c in coords[bad][0])} is not inside "
            f"the navigation shape {nav_shape} (coordinates count from 0, "
            "negative ones are not allowed)"
        )
    mask = np.full(n, not value, dtype=bool)
    mask[np.ravel_multi_index(tuple(coords.T), nav_shape)] = value
    return mask


def _mask_from_array(
    arr: np.ndarray, nav_shape: tuple[int, ...], n: int, hint: str, what: str = "roi"
) -> np.ndarray:
    """A nav-shaped or flat array as a flat bool mask (numeric 0/1 with a warning)."""
    if arr.dtype != bool:
        if arr.dtype.kind not in "iuf":
            raise ValueError(f"{what} of dtype {arr.dtype} cannot be a mask: {hint}")
        values = np.unique(arr)
        if not np.isin(values, (0, 1)).all():
            odd = values[~np.isin(values, (0, 1))][:3].tolist()
            raise ValueError(
                f"{what} has the navigation shape, so it is read as a mask, but it holds values "
                f"other than 0 and 1 ({', '.join(map(str, odd))}): a mask must be bool (or 0/1). "
                f"To select frames by coordinates, {hint.split('or as nav coordinates: ')[-1]}"
            )
        warnings.warn(
            f"{what} of dtype {arr.dtype} is read as a mask of the navigation shape "
            "(1 = selected, 0 = not); pass a bool array (roi.astype(bool)) to silence "
            "this warning",
            RoiWarning,
            stacklevel=user_stacklevel(),
        )
    return np.ascontiguousarray(arr, dtype=bool).reshape(n).copy()


def normalize_roi(roi: Any, nav_shape: tuple[int, ...]) -> np.ndarray | None:
    """Turn an roi into a flat bool mask over the navigation positions.

    A mask: a bool array of the nav shape, or flat with ``prod(nav_shape)``
    entries; a numeric array of that shape holding only 0 and 1 is read as a
    mask too (with a :class:`RoiWarning`), as are ``scipy.sparse`` and
    pydata ``sparse`` arrays. Coordinates (only where they cannot be a mask):
    a list of tuples ``[(y, x), ...]``, one tuple ``(y, x)``, an integer
    array of shape ``(k, nav_dims)`` that is not mask-shaped, or LiberTEM's
    ``[((y, x), True), ...]`` pairs (all with the same value; ``False``
    pairs select everything else). Anything else raises a ``ValueError``
    that says how to pass each.

    Examples
    --------
    >>> normalize_roi([(0, 1)], (2, 2))
    array([False,  True, False, False])
    >>> normalize_roi((1, 0), (2, 2))
    array([False, False,  True, False])
    >>> normalize_roi(np.array([[True, False], [False, False]]), (2, 2))
    array([ True, False, False, False])
    """
    if roi is None:
        return None
    nav_shape = tuple(int(s) for s in nav_shape)
    nd = len(nav_shape)
    n = int(np.prod(nav_shape))
    hint = _roi_hint(nav_shape, n)
    if hasattr(roi, "raw_data") and hasattr(roi, "kind"):  # a BufferWrapper
        roi = roi.data
    if _is_sparse(roi):
        dense = np.asarray(roi.toarray() if hasattr(roi, "toarray") else roi.todense())
        if dense.shape in (nav_shape, (n,), (1, n), (n, 1)):
            return _mask_from_array(dense, nav_shape, n, hint, what="sparse roi")
        raise ValueError(
            f"a sparse roi must have the navigation shape {nav_shape}, got shape {dense.shape}"
        )
    if isinstance(roi, (bool, np.bool_)) or (isinstance(roi, np.ndarray) and roi.ndim == 0):
        raise ValueError(f"roi={roi!r} is a single value: use roi=None for every frame, or {hint}")
    if isinstance(roi, (tuple, list)):
        items = list(roi)
        if not items:
            return np.zeros(n, dtype=bool)  # an empty list of coordinates
        if all(_is_int(v) for v in items):  # one coordinate tuple, LiberTEM style
            if len(items) != nd:
                raise ValueError(
                    f"roi={roi!r} is read as one nav coordinate, which needs {nd} "
                    f"integers for the navigation shape {nav_shape}; {hint}"
                )
            return _coords_mask(np.array(items), nav_shape, n)
        if all(
            isinstance(v, (tuple, list))
            and len(v) == 2
            and isinstance(v[1], (bool, np.bool_))
            and isinstance(v[0], (tuple, list))
            for v in items
        ):  # [((y, x), True), ...]
            values = {bool(v[1]) for v in items}
            if len(values) != 1:
                raise ValueError(
                    "roi pairs [((y, x), value), ...] must all have the same value "
                    "(True: select these frames; False: all frames but these), got "
                    "both True and False"
                )
            coords = [tuple(v[0]) for v in items]
            if not all(_is_coord(c, nd) for c in coords):
                raise ValueError(
                    f"roi pairs [((y, x), value), ...] need coordinates of {nd} "
                    f"integers for the navigation shape {nav_shape}"
                )
            return _coords_mask(np.array(coords), nav_shape, n, value=values.pop())
        if all(isinstance(v, tuple) for v in items):  # a list of coordinate tuples
            bad = [v for v in items if not _is_coord(v, nd)]
            if bad:
                raise ValueError(
                    f"roi coordinate {bad[0]!r} must be a tuple of {nd} integers "
                    f"for the navigation shape {nav_shape}; {hint}"
                )
            return _coords_mask(np.array(items), nav_shape, n)
    try:
        arr = np.asarray(roi)
    except (ValueError, TypeError) as e:
        raise ValueError(f"roi of type {type(roi).__name__} cannot be read ({e}); {hint}") from None
    if arr.dtype.kind == "O":
        raise ValueError(f"roi of type {type(roi).__name__} is not an array of numbers; {hint}")
    if arr.shape == nav_shape or arr.shape == (n,):
        return _mask_from_array(arr, nav_shape, n, hint)
    if arr.dtype == bool:
        raise ValueError(
            f"a bool roi must have the navigation shape {nav_shape} (or be flat "
            f"with {n} entries), got shape {arr.shape}"
        )
    if arr.ndim == 2 and arr.shape[1] == nd and arr.dtype.kind in "iu":
        return _coords_mask(arr, nav_shape, n)
    if arr.ndim == 2 and arr.shape[1] == nd and arr.dtype.kind == "f":
        raise ValueError(
            f"roi coordinates must be integers, got a {arr.dtype} array of shape "
            f"{arr.shape}; {hint}"
        )
    raise ValueError(
        f"roi of shape {arr.shape} and dtype {arr.dtype} is neither a mask nor a "
        f"list of coordinates for the navigation shape {nav_shape}: {hint}"
    )


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
            raise TypeError(
                f"expected UDF instances, got {type(udf).__name__}: subclass udfwidgets.UDF"
            )
        cls = type(udf).__name__
        rule = (
            "A UDF constructor must pass each of its parameters to super().__init__() under "
            f"the same name that {cls}.__init__ accepts, because a clean copy is made as "
            f"{cls}(**kwargs) with the keyword arguments given to super().__init__()."
        )
        if "_kwargs" not in udf.__dict__:
            raise UDFConstructorError(f"{cls}.__init__ did not call super().__init__(). {rule}")
        kwargs = udf._kwargs
        try:
            copy = type(udf)(**kwargs)
        except TypeError as e:
            raise UDFConstructorError(
                f"cannot make a clean copy of {cls}: {cls}(**{sorted(kwargs)}) raised "
                f"TypeError: {e}. {rule}"
            ) from e
        if "_kwargs" not in copy.__dict__:
            raise UDFConstructorError(f"{cls}.__init__ did not call super().__init__(). {rule}")
        if set(copy._kwargs) != set(kwargs):
            extra = sorted(set(copy._kwargs) ^ set(kwargs))
            raise UDFConstructorError(
                f"the clean copy of {cls} has different parameters {extra} than the original. {rule}"
            )
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
        raise BufferError(
            f"{cls}.get_result_buffers() must return a dict of name -> "
            f"self.buffer(...), got {type(decls).__name__}"
        )
    out = {}
    for name, decl in decls.items():
        if not isinstance(decl, BufferDeclaration):
            raise BufferError(
                f"buffer {name!r} of {cls}: declare it with self.buffer(kind=..., "
                f"dtype=...), got {type(decl).__name__}"
            )
        out[name] = decl.validated(name, cls)
    udf.__dict__["_buffer_decls"] = out
    method = process_method_of(udf)
    if getattr(udf.meta, "on_main_node", False):
        check_process_returns(udf, method)
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
                    raise TypeError(
                        f"parameter {key!r} of {cls} cannot be pickled "
                        f"({type(value).__name__}): UDF parameters travel to worker "
                        f"processes, pass something picklable. ({e})"
                    ) from e
            for key, value in vars(udf).items():
                if not _picklable(value):
                    raise TypeError(
                        f"attribute {key!r} of {cls} cannot be pickled "
                        f"({type(value).__name__}): UDFs travel to worker processes; "
                        "create such objects in preprocess() or get_task_data() "
                        f"instead. ({e})"
                    ) from e
        raise TypeError(f"the UDFs cannot be pickled: {e}") from e


def _picklable(value: Any) -> bool:
    try:
        cloudpickle.dumps(value)
        return True
    except (pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError):
        return False
    except Exception:
        return False


# --- checks of run_udf's arguments ------------------------------------------------

#: LiberTEM keywords of ``run_udf`` / ``run_udf_iter`` that udfwidgets does not
#: implement yet, with what the user is told. A branch that implements one adds
#: the keyword to the signatures in context.py and removes its entry here.
NOT_YET_SUPPORTED: dict[str, str] = {
    # LiberTEM run_udf keywords that udfwidgets does not implement yet, with what to do instead
}


def check_run_kwargs(kwargs: dict[str, Any], function: str, known: Sequence[str]) -> None:
    """Refuse keywords ``function`` does not take: a ``TypeError`` naming them.

    Examples
    --------
    >>> check_run_kwargs({}, "run_udf", ["roi"])
    >>> check_run_kwargs({"rio": None}, "run_udf", ["roi"])
    Traceback (most recent call last):
    ...
    TypeError: run_udf() got an unexpected keyword argument 'rio' (did you mean 'roi'?); it takes dataset, udf, roi
    """
    if not kwargs:
        return
    import difflib

    for name in kwargs:
        if name in NOT_YET_SUPPORTED:
            raise TypeError(f"{function}(): {NOT_YET_SUPPORTED[name]}")
    parts = []
    for name in kwargs:
        close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
        parts.append(repr(name) + (f" (did you mean {close[0]!r}?)" if close else ""))
    word = "argument" if len(parts) == 1 else "arguments"
    raise TypeError(
        f"{function}() got an unexpected keyword {word} {', '.join(parts)}; it takes "
        f"{', '.join(['dataset', 'udf', *known])}"
    )


def as_udf_list(udf: Any) -> tuple[list[UDF], bool]:
    """``udf=`` as a list of UDF instances, and whether a single UDF was given.

    Examples
    --------
    >>> from udfwidgets.udf.sum import SumUDF
    >>> as_udf_list(SumUDF)
    Traceback (most recent call last):
    ...
    TypeError: udf=SumUDF is the class, not a UDF: pass an instance, SumUDF()
    """

    def refuse(item, where="udf="):
        if isinstance(item, type):
            if issubclass(item, UDF):
                raise TypeError(
                    f"{where}{item.__name__} is the class, not a UDF: pass an "
                    f"instance, {item.__name__}()"
                )
            raise TypeError(
                f"{where}{item.__name__} is a class, not a UDF: pass an instance of "
                "a udfwidgets.UDF subclass"
            )
        if not isinstance(item, UDF):
            raise TypeError(
                f"{where}: expected UDF instances (a UDF or a list of them), got "
                f"{type(item).__name__}: subclass udfwidgets.UDF and pass an "
                "instance, e.g. udf=SumUDF()"
            )

    if isinstance(udf, UDF):
        return [udf], True
    if udf is None or isinstance(udf, (str, bytes, dict, type)) or not hasattr(udf, "__iter__"):
        refuse(udf)
    udfs = list(udf)
    if not udfs:
        raise ValueError("no UDF given: pass udf=SomeUDF() or a list of UDFs")
    for i, item in enumerate(udfs):
        refuse(item, where=f"udf[{i}]=")
    return udfs, False


def check_dataset(dataset: Any) -> None:
    """A ``TypeError`` that says how to make a dataset from what was given.

    Examples
    --------
    ``run_udf`` and friends check their ``dataset`` with it:

    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sum import SumUDF
    >>> Context(executor="inline").run_udf(dataset=np.zeros((2, 2, 3, 3)), udf=SumUDF())
    Traceback (most recent call last):
    ...
    TypeError: dataset must be a udfwidgets dataset, got ndarray: wrap an array with ctx.load("memory", data=array)
    >>> check_dataset("scan.npy")
    Traceback (most recent call last):
    ...
    TypeError: dataset must be a udfwidgets dataset, got str: open the file with ctx.load("auto", path='scan.npy')
    """
    from ..io.dataset import DataSet

    if isinstance(dataset, DataSet):
        return
    hint = "open one with ctx.load(...)"
    if isinstance(dataset, np.ndarray) or hasattr(dataset, "__array__"):
        hint = 'wrap an array with ctx.load("memory", data=array)'
    elif isinstance(dataset, (str, os.PathLike)):
        hint = f'open the file with ctx.load("auto", path={os.fspath(dataset)!r})'
    raise TypeError(f"dataset must be a udfwidgets dataset, got {type(dataset).__name__}: {hint}")


# --- files the UDFs of a run write ----------------------------------------------


def dataset_files(dataset: Any) -> list[str]:
    """The files a dataset reads (as far as it says: ``path``/``paths``/``files``...)."""
    found: list[str] = []

    def add(value):
        if isinstance(value, (str, os.PathLike)):
            found.append(os.fspath(value))
        elif isinstance(value, (list, tuple)):
            for v in value:
                add(v)

    for attr in ("path", "paths", "files", "filenames", "data_files"):
        add(getattr(dataset, attr, None))
    data = getattr(dataset, "data", None)  # a memory dataset over np.load(..., mmap_mode=...)
    while data is not None:
        name = getattr(data, "filename", None)
        if isinstance(name, (str, os.PathLike)):
            add(name)
            break
        data = getattr(data, "base", None)
    return found


def check_outputs(udfs: Sequence[UDF], dataset: Any) -> None:
    """Refuse, before any work, a UDF that would write one of the files the dataset reads.

    Examples
    --------
    >>> import os, tempfile
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.record import RecordUDF
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "scan.npy")
    ...     np.save(path, np.zeros((2, 2, 3, 3)))
    ...     ds = Context(executor="inline").load("npy", path=path)
    ...     check_outputs([RecordUDF(path, overwrite=True)], ds)
    Traceback (most recent call last):
    ...
    ValueError: RecordUDF would write '.../scan.npy', which is the file the dataset reads ('.../scan.npy'; the same file, a hard link or a symlink): writing it would destroy the input. Choose another filename.
    """
    from ..io.atomic import same_file

    inputs = dataset_files(dataset)
    if not inputs:
        return
    for udf in udfs:
        for out in getattr(udf, "_output_files", lambda: [])():
            for src in inputs:
                if same_file(out, src):
                    raise ValueError(
                        f"{type(udf).__name__} would write {out!r}, which is the file the dataset "
                        f"reads ({src!r}; the same file, a hard link or a symlink): writing it "
                        "would destroy the input. Choose another filename."
                    )


def commit_outputs(udfs: Sequence[UDF]) -> None:
    """The run succeeded: move every UDF's output file into place.

    A UDF that writes files (:class:`~udfwidgets.udf.record.RecordUDF`) has a
    ``_commit_outputs`` method; UDFs without one are skipped.

    Examples
    --------
    >>> from udfwidgets import UDF
    >>> class Writes(UDF):
    ...     def _commit_outputs(self):
    ...         print("temporary file renamed into place")
    >>> commit_outputs([Writes(), UDF()])
    temporary file renamed into place
    """
    for udf in udfs:
        commit = getattr(udf, "_commit_outputs", None)
        if commit is not None:
            commit()


def abort_outputs(udfs: Sequence[UDF]) -> None:
    """The run failed or stopped: remove the UDFs' temporary output files.

    Calls each UDF's ``_abort_outputs`` (UDFs without one are skipped); an error
    there does not hide the error that stopped the run.

    Examples
    --------
    >>> from udfwidgets import UDF
    >>> class Writes(UDF):
    ...     def _abort_outputs(self):
    ...         print("temporary file removed")
    >>> class Broken(UDF):
    ...     def _abort_outputs(self):
    ...         raise OSError("disk gone")
    >>> abort_outputs([Broken(), Writes(), UDF()])
    temporary file removed
    """
    for udf in udfs:
        abort = getattr(udf, "_abort_outputs", None)
        if abort is not None:
            try:
                abort()
            except Exception:
                pass


# --- process methods that return a value ------------------------------------------


class ProcessReturnWarning(UserWarning):
    """A UDF's process method returns a value, which the runner ignores.

    Examples
    --------
    >>> import warnings
    >>> from udfwidgets import UDF, Context
    >>> class Returns(UDF):
    ...     def get_result_buffers(self):
    ...         return {"total": self.buffer(kind="nav")}
    ...     def process_frame(self, frame):
    ...         return frame.sum()  # should be: self.results.total[:] = frame.sum()
    >>> ctx = Context(executor="inline")
    >>> ds = ctx.load("memory", data=np.ones((1, 2, 3, 3)))
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     res = ctx.run_udf(dataset=ds, udf=Returns())
    >>> print(caught[0].category.__name__, caught[0].message)
    ProcessReturnWarning Returns.process_frame() returns a value, which is ignored: process methods must write their results into the result buffers (e.g. self.results.<name>[:] = value) and return nothing; buffers that are not written stay zero (NaN outside the roi)
    >>> res["total"].data
    array([[0., 0.]], dtype=float32)
    """


def _returns_value(func: Any) -> bool:
    """True when the function's code has a ``return`` of something other than None."""
    code = getattr(func, "__code__", None)
    return code is not None and _code_returns_value(code)


@functools.lru_cache(maxsize=256)
def _code_returns_value(code: Any) -> bool:
    # once per code object: disassembling a UDF's methods took 1-2 ms of every run
    import dis

    prev = None
    for ins in dis.get_instructions(code):
        if ins.opname == "RETURN_CONST" and ins.argval is not None:
            return True
        if ins.opname == "RETURN_VALUE":
            if not (prev is not None and prev.opname == "LOAD_CONST" and prev.argval is None):
                return True
        prev = ins
    return False


def check_process_returns(udf: UDF, method: str) -> None:
    """Warn (once per run, on the main node) when ``method`` returns a value."""
    func = getattr(type(udf), method, None)
    if func is None or not _returns_value(func):
        return
    cls = type(udf).__name__
    warnings.warn(
        f"{cls}.{method}() returns a value, which is ignored: process methods must write their "
        f"results into the result buffers (e.g. self.results.<name>[:] = value) and return "
        "nothing; buffers that are not written stay zero (NaN outside the roi)",
        ProcessReturnWarning,
        stacklevel=user_stacklevel(),
    )
