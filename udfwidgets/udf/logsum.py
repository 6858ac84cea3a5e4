"""Sum of log-scaled frames: shows weak features that many frames share."""

from __future__ import annotations

import numpy as np

from .base import UDF

__all__ = ["LogsumUDF", "run_logsum"]


class LogsumUDF(UDF):
    """Sum over the scan of ``log(frame - min(frame) + 1)``; buffer ``logsum`` (kind ``"sig"``).

    Each frame is shifted so that its own minimum becomes 0, then
    log-scaled (``log1p`` of the shifted frame, natural log) and summed over
    the navigation axes. Compared with the log of the sum, this brings out
    regions of slightly raised intensity that appear in many frames next to
    very bright spots that appear in a few.

    Parameters
    ----------
    dtype : numpy dtype
        Floating accumulator dtype, float32 (default) or float64.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.logsum import LogsumUDF
    >>> ctx = Context(executor="inline")
    >>> frames = np.array([[[0, np.e - 1]], [[5, 5]]], dtype=np.float32)  # 2 frames, 1 x 2 pixels
    >>> ds = ctx.load("memory", data=frames, sig_dims=2)
    >>> ctx.run_udf(dataset=ds, udf=LogsumUDF())["logsum"].data
    array([[0., 1.]], dtype=float32)
    """

    ACCEPTS_SIG_SLICED_TILES = False  # the minimum of each whole frame

    def __init__(self, dtype="float32"):
        msg = f"dtype must be a floating NumPy dtype such as 'float32', got {dtype!r}"
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise ValueError(msg) from None
        if dt.kind != "f":
            raise ValueError(msg)
        super().__init__(dtype=dtype)

    def get_preferred_input_dtype(self):
        return np.dtype(self.params.dtype)

    def get_result_buffers(self):
        dtype = np.result_type(self.meta.input_dtype, self.params.dtype)
        return {"logsum": self.buffer(kind="sig", dtype=dtype)}

    def process_tile(self, tile):
        acc = self.results.logsum
        axes = tuple(range(1, tile.ndim))
        mins = tile.min(axis=axes, keepdims=True)
        shifted = np.subtract(tile, mins, dtype=acc.dtype)
        acc += np.log1p(shifted, out=shifted).sum(axis=0)

    def merge(self, dest, src):
        dest.logsum[:] += src.logsum


def run_logsum(ctx, dataset, roi=None, progress=False):
    """Run :class:`LogsumUDF` (LiberTEM's helper) and return its results dict.

    Examples
    --------
    >>> from udfwidgets import Context
    >>> ctx = Context(executor="inline")
    >>> ds = ctx.load("memory", data=np.zeros((2, 2, 3, 3), dtype=np.float32))
    >>> float(run_logsum(ctx, ds)["logsum"].data.sum())
    0.0
    """
    return ctx.run_udf(dataset=dataset, udf=LogsumUDF(), roi=roi, progress=progress)
