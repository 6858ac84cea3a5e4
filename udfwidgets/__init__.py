"""udfwidgets: user-defined functions over large N-dimensional detector data,
run in parallel with joblib, explored with ipywidgets.

Examples
--------
>>> import numpy as np
>>> from udfwidgets import UDF, Context
>>> from udfwidgets.udf.sum import SumUDF
>>> ctx = Context(executor="inline")
>>> ds = ctx.load("memory", data=np.ones((4, 4, 8, 8), dtype=np.uint16))
>>> float(ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data.max())
16.0
"""

from .calibration import Calibration
from .context import Context
from .corrections import CorrectionSet
from .io.dataset import DataSetError
from .results import UDFResults
from .udf.base import UDF
from .udf.buffers import BufferWrapper


def _version() -> str:
    """The version: of this source tree when run from one, else of the installed package."""
    import os
    import re

    here = os.path.dirname(os.path.abspath(__file__))
    pyproject = os.path.join(os.path.dirname(here), "pyproject.toml")
    if os.path.isfile(pyproject):  # a source tree (a checkout, an unpacked sdist)
        with open(pyproject, encoding="utf-8") as fh:
            text = fh.read()
        if re.search(r'(?m)^name\s*=\s*"udfwidgets"', text):
            found = re.search(r'(?m)^version\s*=\s*"([^"]+)"', text)
            if found:
                return found.group(1)
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("udfwidgets")
    except PackageNotFoundError:  # pragma: no cover - neither installed nor a source tree
        return "0+unknown"


#: The version of udfwidgets, from the package metadata (``pyproject.toml`` in a source tree).
__version__ = _version()
del _version

__all__ = [
    "UDF",
    "Context",
    "BufferWrapper",
    "UDFResults",
    "DataSetError",
    "CorrectionSet",
    "Calibration",
    "__version__",
]
