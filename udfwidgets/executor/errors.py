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
from typing import Sequence

__all__ = ["annotate_udf_error"]

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


def _locate(udfs: Sequence, lineno: int, name: str) -> str | None:
    for udf in udfs:
        for cls in type(udf).__mro__:
            for attr, func in vars(cls).items():
                code = getattr(func, "__code__", None)
                if code is not None and code.co_name == name:
                    break
            else:
                continue
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
