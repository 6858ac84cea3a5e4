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

__version__ = "0.1.0"

__all__ = ["UDF", "Context", "BufferWrapper", "UDFResults", "DataSetError", "CorrectionSet",
           "Calibration", "__version__"]
