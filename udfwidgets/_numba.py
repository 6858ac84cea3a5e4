"""numba, when it is installed and not turned off: the one switch for every compiled kernel.

The package's compiled kernels (:mod:`udfwidgets._corrections_numba`,
:mod:`udfwidgets._products_numba`) are optional: ``pip install
'udfwidgets[fast]'`` installs numba, and the environment variable
``UDFWIDGETS_NUMBA=0`` turns them off (NumPy does the work then, with the same
results). Kernel modules decorate their module-level functions with
:func:`jit`, so that numba's on-disk cache finds them again in every new worker
process; without numba they stay plain (never called) Python functions.

Examples
--------
A kernel module decorates its functions at import time (numba caches them on
disk, so they cannot be defined in a doctest):

>>> from udfwidgets._numba import enabled, jit
>>> decorate = jit(fastmath={"contract"})  # numba.njit(...), or a no-op without numba
>>> callable(decorate), enabled() in (True, False)
(True, True)
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["HAVE_NUMBA", "enabled", "jit"]


def _installed() -> bool:
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # e.g. sys.modules["numba"] = None
        return False


#: numba is installed (found without importing it: importing numba takes about half a
#: second, which every fresh worker process would pay for a run that needs no kernel)
HAVE_NUMBA = _installed()
_LOCK = threading.Lock()
_MODULE: list = []  # [] not imported yet; [None] or [numba] after


def _numba() -> Any:
    """numba, imported on first use; None if it cannot be imported."""
    with _LOCK:
        if not _MODULE:
            try:
                _MODULE.append(importlib.import_module("numba") if HAVE_NUMBA else None)
            except ImportError:
                _MODULE.append(None)
        return _MODULE[0]


def enabled() -> bool:
    """True when compiled kernels may be used: numba is installed and ``UDFWIDGETS_NUMBA`` is not ``0``.

    Examples
    --------
    >>> enabled() == (HAVE_NUMBA and os.environ.get("UDFWIDGETS_NUMBA", "1") != "0")
    True
    """
    return HAVE_NUMBA and os.environ.get("UDFWIDGETS_NUMBA", "1") != "0" and _numba() is not None


def jit(**options: Any) -> Callable[[Callable], Callable]:
    """``numba.njit(cache=True, nogil=True, boundscheck=False, **options)``, or no-op without numba.

    numba is imported here, when a kernel module is imported, not with the package.

    Examples
    --------
    >>> callable(jit())
    True
    """
    numba = _numba()
    if numba is None:
        return lambda f: f
    return numba.njit(cache=True, nogil=True, boundscheck=False, **options)
