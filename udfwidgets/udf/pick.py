"""Pick whole frames at chosen scan positions."""
from __future__ import annotations

import numpy as np

from .base import UDF

__all__ = ["PickUDF"]


class PickUDF(UDF):
    """The frames at the scan positions selected by the run's ``roi``.

    Result buffer ``intensity`` (kind ``"nav"``, ``extra_shape`` = the signal
    shape). Use it with an ``roi`` that selects a few positions, as a bool
    mask or a list of nav coordinates: ``res["intensity"].raw_data`` holds just
    the picked frames, ``(n_picked, *sig)`` in flat scan order, while
    ``res["intensity"].data`` has the full ``nav + sig`` shape with NaN (0 for
    integer dtypes) at the positions not picked. Without an roi every frame
    is copied into memory.

    Parameters
    ----------
    dtype : numpy dtype, optional
        dtype of the picked frames; by default the dataset's own dtype (the
        raw detector values, no conversion).

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.pick import PickUDF
    >>> ctx = Context(executor="inline")
    >>> data = np.arange(2 * 3 * 2 * 2, dtype=np.uint16).reshape(2, 3, 2, 2)
    >>> res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=PickUDF(), roi=[(1, 2)])
    >>> res["intensity"].raw_data
    array([[[20, 21],
            [22, 23]]], dtype=uint16)
    """

    def __init__(self, dtype=None):
        if dtype is not None:
            try:
                np.dtype(dtype)
            except TypeError:
                raise ValueError(f"dtype must be a NumPy dtype or None (the dataset's dtype), "
                                 f"got {dtype!r}") from None
        super().__init__(dtype=dtype)

    def get_preferred_input_dtype(self):
        if self.params.dtype is None:
            return self.USE_NATIVE_DTYPE
        return np.dtype(self.params.dtype)

    def get_result_buffers(self):
        dtype = self.meta.input_dtype if self.params.dtype is None else self.params.dtype
        return {"intensity": self.buffer(kind="nav", extra_shape=tuple(self.meta.dataset_shape.sig),
                                         dtype=dtype)}

    def process_tile(self, tile):
        self.results.intensity[:] = tile
