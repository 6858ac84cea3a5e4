"""Sum of each frame: the total-intensity (bright-field-like) image of the scan."""

from __future__ import annotations

from .base import UDF

__all__ = ["SumSigUDF"]


class SumSigUDF(UDF):
    """Sum over the signal axes; result buffer ``intensity`` (kind ``"nav"``).

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sumsigudf import SumSigUDF
    >>> ctx = Context(executor="inline")
    >>> ds = ctx.load("memory", data=np.ones((2, 3, 4, 4), dtype=np.uint16))
    >>> ctx.run_udf(dataset=ds, udf=SumSigUDF())["intensity"].data
    array([[16., 16., 16.],
           [16., 16., 16.]], dtype=float32)
    """

    ACCEPTS_SIG_SLICED_TILES = False  # the sum of each whole frame

    def get_result_buffers(self):
        return {"intensity": self.buffer(kind="nav", dtype=self.meta.input_dtype)}

    def process_tile(self, tile):
        axes = tuple(range(1, tile.ndim))
        self.results.intensity[:] = tile.sum(axis=axes)
