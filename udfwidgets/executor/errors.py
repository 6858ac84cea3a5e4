"""Make errors raised by UDF code in workers point at the UDF's own source.

cloudpickle sends classes defined in ``__main__`` or a notebook by value and
renames their code's file to ``<dynamic-code>``, so a worker's traceback says
``File "<dynamic-code>", line 12, in process_frame``. The main node still has
the original class: this module finds the method and adds a note with the real
file, line and source text to the exception.
"""

from __future__ import annotations

import inspect
import linecache
import re
import traceback
from collections.abc import Sequence
from typing import Any

__all__ = ["annotate_udf_error", "ContextClosedError", "UnpicklableError", "portable_errors"]

_DYNAMIC = re.compile(r'File "<dynamic-code>", line (\d+), in (\w+)')


def _remote_frames(exc: BaseException) -> list[tuple[int, str]]:
    found = []
    cause = exc.__cause__
    if cause is not None and type(cause).__name__ == "_RemoteTraceback":
        found += [(int(n), name) for n, name in _DYNAMIC.findall(str(cause))]
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == "<dynamic-code>" and frame.lineno is not None:
            found.append((frame.lineno, frame.name))
    return found


def _method_named(cls: type, name: str) -> tuple[str, Any] | None:
    """The attribute name and function in ``vars(cls)`` whose code is named ``name``."""
    for attr, func in vars(cls).items():
        code = getattr(func, "__code__", None)
        if code is not None and code.co_name == name:
            return attr, func
    return None


def _locate(udfs: Sequence, lineno: int, name: str) -> str | None:
    for udf in udfs:
        for cls in type(udf).__mro__:
            found = _method_named(cls, name)
            if found is None:
                continue
            attr, func = found
            code = func.__code__
            lines = [ln for _, _, ln in code.co_lines() if ln is not None]
            if lines and min(lines) <= lineno <= max(lines):
                filename = code.co_filename
                source = linecache.getline(filename, lineno).strip()
                if not source:
                    try:
                        src, first = inspect.getsourcelines(func)
                        source = src[lineno - first].strip()
                    except (OSError, TypeError, IndexError):
                        source = ""
                text = f'  File "{filename}", line {lineno}, in {cls.__name__}.{attr}'
                return text + (f"\n    {source}" if source else "")
    return None


def annotate_udf_error(exc: BaseException, udfs: Sequence) -> None:
    """Add a note naming the UDF source line(s) behind a worker's exception.

    Examples
    --------
    An exception without frames from a worker gets no note:

    >>> e = ValueError("boom")
    >>> annotate_udf_error(e, [])
    >>> getattr(e, "__notes__", [])
    []
    """
    if not hasattr(exc, "add_note"):  # Python 3.10
        return
    notes = []
    for lineno, name in _remote_frames(exc):
        where = _locate(udfs, lineno, name)
        if where and where not in notes:
            notes.append(where)
    if notes:
        exc.add_note("raised in UDF code on a worker:\n" + "\n".join(notes))


class ContextClosedError(RuntimeError):
    """The :class:`~udfwidgets.Context` was closed; its executor cannot run anything.

    Examples
    --------
    >>> from udfwidgets import Context
    >>> ctx = Context(executor="inline"); ctx.close()
    >>> ctx.run_udf(dataset=None, udf=None)
    Traceback (most recent call last):
    ...
    udfwidgets.executor.errors.ContextClosedError: this Context was closed (ctx.close(), or the end of its with-block), so it cannot run UDFs: make a new one, e.g. ctx = Context(executor='inline')
    """


class UnpicklableError(RuntimeError):
    """A worker's exception could not travel back to the main process; its text did.

    Examples
    --------
    An exception whose ``__init__`` takes other arguments than it gives to
    ``Exception.__init__`` cannot be unpickled; :class:`portable_errors` (around every
    task) sends its type, message and traceback as text instead:

    >>> class PairError(Exception):
    ...     def __init__(self, a, b):
    ...         super().__init__(f"{a} and {b}")
    >>> def task(x):
    ...     raise PairError(x, 2)
    >>> try:
    ...     portable_errors(task)(1)
    ... except UnpicklableError as e:
    ...     print(str(e).splitlines()[0])
    PairError: 1 and 2 (raised in a worker; the exception itself cannot be pickled, so it is reported as text. Let its __init__ accept the arguments it passes to Exception.__init__.)
    """


class portable_errors:
    """Wrap a task function so that its exceptions survive the trip from another process.

    An exception whose class cannot be rebuilt by pickle (e.g. one whose
    ``__init__`` needs two arguments) used to arrive as loky's generic "A
    result has failed to un-serialize" (and broke the pool) or, on dask, not at
    all. Such exceptions are replaced by :class:`UnpicklableError` carrying the
    original type, message and traceback text.

    Examples
    --------
    >>> def f(x):
    ...     return x + 1
    >>> portable_errors(f)(1)
    2
    """

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args, **kwargs):
        try:
            return self.fn(*args, **kwargs)
        except Exception as e:
            import pickle

            try:
                pickle.loads(pickle.dumps(e))
            except Exception:
                text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
                raise UnpicklableError(
                    f"{type(e).__name__}: {e} (raised in a worker; the exception itself cannot "
                    "be pickled, so it is reported as text. Let its __init__ accept the "
                    f"arguments it passes to Exception.__init__.)\n{text}"
                ) from None
            raise
