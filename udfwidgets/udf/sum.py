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

    def raw_tile_processor(self, corrections, raw_dtype):
        """Sum raw tiles, correcting each value as it is read (runs with corrections only).

        The protocol of :mod:`udfwidgets.corrections` ("UDFs that correct their own
        tiles"): the same sums as :meth:`process_tile` of corrected tiles, without a
        corrected copy of the tile. None (corrected tiles) without the compiled kernel.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.corrections import CorrectionSet
        >>> state = CorrectionSet(dark=np.ones((2, 2))).prepare((2, 2), np.uint16)
        >>> fn = SumUDF().raw_tile_processor  # called by the worker, after preprocess
        >>> callable(fn)
        True
        """
        from ..corrections import sum_tiles

        add = sum_tiles(corrections, raw_dtype, self.meta.input_dtype)
        if add is None:
            return None

        def process(tile):
            add(tile, self.results.intensity)

        return process

    def merge(self, dest, src):
        dest.intensity[:] += src.intensity
