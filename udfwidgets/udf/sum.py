"""Sum of all frames: the mean diffraction pattern times the frame count."""

from __future__ import annotations

import numpy as np

from .base import UDF

__all__ = ["SumUDF"]


class SumUDF(UDF):
    """Sum over the navigation axes; result buffer ``intensity`` (kind ``"sig"``).

    Parameters
    ----------
    dtype : numpy dtype
        Accumulator dtype (default float32, the input dtype for integer
        detectors; float64 gives more headroom for long scans).

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sum import SumUDF
    >>> ctx = Context(executor="inline")
    >>> ds = ctx.load("memory", data=np.arange(16, dtype=np.float32).reshape(2, 2, 2, 2))
    >>> ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data
    array([[24., 28.],
           [32., 36.]], dtype=float32)
    """

    def __init__(self, dtype="float32"):
        super().__init__(dtype=dtype)

    def get_preferred_input_dtype(self):
        return np.result_type(self.params.dtype, np.float32)

    def get_result_buffers(self):
        dtype = np.result_type(self.meta.input_dtype, self.params.dtype)
        return {"intensity": self.buffer(kind="sig", dtype=dtype)}

    def process_tile(self, tile):
        self.results.intensity[:] += tile.sum(axis=0, dtype=self.results.intensity.dtype)

    def merge(self, dest, src):
        dest.intensity[:] += src.intensity
