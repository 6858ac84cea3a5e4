"""The name-mapping layer that lets LiberTEM's own UDF tests import udfwidgets.

``benchmarks/libertem_suite.py`` puts this module on the path of the pytest run
of LiberTEM's ``tests/udf`` and calls :func:`install`. From then on,
``import libertem.X`` gives a module whose names are looked up in the
udfwidgets modules that :data:`MODULES` lists for ``libertem.X`` (then in
:data:`EXTRA`). A name that udfwidgets does not have is a :class:`Missing`
placeholder: importing it works (so that one missing internal does not stop a
whole test module from being collected), but calling, subclassing into use, or
reading an attribute of it raises :class:`NotProvidedByUdfwidgets`, which the
runner counts as "not provided".

Nothing here comes from LiberTEM: the table is written from the names its
tests import, mapped to our own implementation. LiberTEM is never imported.

Examples
--------
>>> import sys
>>> install()
>>> from libertem.udf.sum import SumUDF
>>> SumUDF.__module__
'udfwidgets.udf.sum'
>>> from libertem.io.dataset.base import TilingScheme
>>> TilingScheme.make_for_shape
Traceback (most recent call last):
...
_libertem_shim.NotProvidedByUdfwidgets: libertem.io.dataset.base.TilingScheme is not provided by udfwidgets
>>> uninstall()
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import math
import sys
import types
from typing import Any

#: libertem module -> udfwidgets modules searched for its names, in order.
MODULES: dict[str, tuple[str, ...]] = {
    "libertem": ("udfwidgets",),
    "libertem.api": ("udfwidgets.api", "udfwidgets"),
    "libertem.udf": ("udfwidgets.udf",),
    "libertem.udf.base": (
        "udfwidgets.udf.base",
        "udfwidgets.udf",
        "udfwidgets.udf.buffers",
        "udfwidgets.udf.meta",
    ),
    "libertem.udf.sum": ("udfwidgets.udf.sum",),
    "libertem.udf.sumsigudf": ("udfwidgets.udf.sumsigudf",),
    "libertem.udf.raw": ("udfwidgets.udf.pick",),
    "libertem.udf.masks": ("udfwidgets.udf.masks",),
    "libertem.udf.stddev": ("udfwidgets.udf.stddev",),
    "libertem.udf.logsum": ("udfwidgets.udf.logsum",),
    "libertem.udf.com": ("udfwidgets.udf.com",),
    "libertem.udf.auto": ("udfwidgets.udf.auto",),
    "libertem.io.dataset.memory": ("udfwidgets.io.memory",),
    "libertem.io.dataset.raw": ("udfwidgets.io",),
    "libertem.common.buffers": ("udfwidgets.udf.buffers",),
    "libertem.common.shape": ("udfwidgets.io.shape",),
    "libertem.common.udf": ("udfwidgets.udf.base",),
    "libertem.common.sparse": ("udfwidgets.udf.backends",),
    "libertem.masks": ("udfwidgets.masks",),
}


_device = {"cpu": 0, "cuda": None}


def get_use_cpu():
    """The CPU id the tests' device helper saves and restores (always 0 here).

    Examples
    --------
    >>> get_use_cpu()
    0
    """
    return _device["cpu"]


def get_use_cuda():
    """Always None: udfwidgets never uses a GPU.

    Examples
    --------
    >>> get_use_cuda() is None
    True
    """
    return _device["cuda"]


def set_use_cpu(cpu_id: int) -> None:
    """Accepted (udfwidgets computes on the CPU anyway).

    Examples
    --------
    >>> set_use_cpu(0)
    """
    _device["cpu"] = cpu_id
    _device["cuda"] = None


def set_use_cuda(cuda_id: int) -> None:
    """Refused: no GPU in udfwidgets.

    Examples
    --------
    >>> set_use_cuda(0)
    Traceback (most recent call last):
    ...
    _libertem_shim.NotProvidedByUdfwidgets: libertem.common.backend.set_use_cuda is not provided by udfwidgets
    """
    raise NotProvidedByUdfwidgets("libertem.common.backend.set_use_cuda")


def detect() -> dict:
    """The devices udfwidgets uses: the CPUs, no CUDA, no CuPy.

    Examples
    --------
    >>> detect()["cudas"]
    []
    """
    import os

    return {"cpus": list(range(os.cpu_count() or 1)), "cudas": [], "has_cupy": False}


def prod(shape) -> int:
    """Product of a shape as a Python int (a test helper).

    Examples
    --------
    >>> prod((2, 3))
    6
    """
    return int(math.prod(int(s) for s in shape))


def count_nonzero(a) -> int:
    """Non-zero entries of a dense or sparse array (a test helper).

    Examples
    --------
    >>> count_nonzero([0, 1, 2])
    2
    """
    import numpy as np

    from udfwidgets.udf.backends import to_dense

    return int(np.count_nonzero(to_dense(a)))


def _inline_executor(*args: Any, **kwargs: Any):
    from udfwidgets.executor.backends import make_executor

    return make_executor("inline")


#: libertem module -> name -> object, for names whose udfwidgets name differs
#: or that are test helpers rather than API.
EXTRA: dict[str, dict[str, Any]] = {
    "libertem.common.exceptions": {"UDFException": "udfwidgets.udf:UDFException"},
    "libertem.common.backend": {
        "get_use_cpu": get_use_cpu,
        "get_use_cuda": get_use_cuda,
        "set_use_cpu": set_use_cpu,
        "set_use_cuda": set_use_cuda,
    },
    "libertem.utils.devices": {"detect": detect},
    "libertem.common.math": {"prod": prod, "count_nonzero": count_nonzero},
    "libertem.warnings": {"UseDiscouragedWarning": "udfwidgets.udf:UseDiscouragedWarning"},
    "libertem.executor.inline": {"InlineJobExecutor": _inline_executor},
    "libertem.io.dataset.raw": {"RawFileDataSet": "udfwidgets.io:RawDataSet"},
}


class NotProvidedByUdfwidgets(NotImplementedError):
    """A LiberTEM name that udfwidgets has no counterpart for was used.

    Examples
    --------
    >>> str(NotProvidedByUdfwidgets("libertem.x.Y"))
    'libertem.x.Y is not provided by udfwidgets'
    """

    def __init__(self, qualname: str):
        super().__init__(f"{qualname} is not provided by udfwidgets")
        self.qualname = qualname


class _MissingMeta(type):
    def __getattr__(cls, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise NotProvidedByUdfwidgets(cls._qualname)

    def __repr__(cls) -> str:
        return f"<not provided by udfwidgets: {cls._qualname}>"


class Missing(metaclass=_MissingMeta):
    """Placeholder for a LiberTEM name udfwidgets does not have.

    It can be imported and named as a base class (LiberTEM's test helpers
    subclass a few internals at import time), but creating or using it raises
    :class:`NotProvidedByUdfwidgets`.

    Examples
    --------
    >>> M = _missing("libertem.x.Y")
    >>> M()
    Traceback (most recent call last):
    ...
    _libertem_shim.NotProvidedByUdfwidgets: libertem.x.Y is not provided by udfwidgets
    """

    _qualname = "?"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        pass

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotProvidedByUdfwidgets(type(self)._qualname)


def _missing(qualname: str) -> type:
    return _MissingMeta(qualname.rsplit(".", 1)[-1], (Missing,), {"_qualname": qualname})


def _resolve(value: Any) -> Any:
    if isinstance(value, str) and ":" in value:
        mod, attr = value.split(":")
        return getattr(importlib.import_module(mod), attr)
    return value


def _module_getattr(modname: str):
    sources = MODULES.get(modname, ())
    extra = EXTRA.get(modname, {})

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if name in extra:
            return _resolve(extra[name])
        for src in sources:
            mod = importlib.import_module(src)
            if hasattr(mod, name):
                return getattr(mod, name)
        sub = f"{modname}.{name}"
        if sub in sys.modules:
            return sys.modules[sub]
        return _missing(sub)

    return __getattr__


class _Loader(importlib.abc.Loader):
    def create_module(self, spec):
        mod = types.ModuleType(spec.name)
        mod.__path__ = []  # every shim module is a package, so submodules import
        mod.__getattr__ = _module_getattr(spec.name)  # type: ignore[method-assign]
        return mod

    def exec_module(self, module) -> None:
        pass


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname == "libertem" or fullname.startswith("libertem."):
            return importlib.machinery.ModuleSpec(fullname, _Loader(), is_package=True)
        return None


_FINDER = _Finder()


def install() -> None:
    """Make ``import libertem...`` resolve to udfwidgets (idempotent).

    Examples
    --------
    >>> install(); install(); uninstall()
    """
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    """Undo :func:`install` and forget the ``libertem`` modules made so far.

    Examples
    --------
    >>> uninstall()
    """
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    for name in [n for n in sys.modules if n == "libertem" or n.startswith("libertem.")]:
        del sys.modules[name]
