"""Pick whole frames at chosen scan positions."""

from __future__ import annotations

import numpy as np

from .base import UDF

__all__ = ["PickUDF"]


class PickUDF(UDF):
    """The frames at the scan positions selected by the run's ``roi``.

    Result buffer ``intensity`` (kind ``"single"``, shape ``(n_picked, *sig)``,
    as in LiberTEM): the picked frames in flat scan order, so
    ``res["intensity"].data`` equals ``data[roi]``. Use it with an ``roi`` that
    selects a few positions, as a bool mask or a list of nav coordinates.
    Without an roi every frame is copied into memory. (The frames travel
    from the workers as a partition-local private nav buffer ``frames``;
    ``get_results`` hands them on.)

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
    >>> res["intensity"].data
    array([[[20, 21],
            [22, 23]]], dtype=uint16)
    """

    ACCEPTS_SIG_SLICED_TILES = False  # whole frames into a nav buffer

    def __init__(self, dtype=None):
        if dtype is not None:
            try:
                np.dtype(dtype)
            except TypeError:
                raise ValueError(
                    f"dtype must be a NumPy dtype or None (the dataset's dtype), got {dtype!r}"
                ) from None
        super().__init__(dtype=dtype)

    def get_preferred_input_dtype(self):
        if self.params.dtype is None:
            return self.USE_NATIVE_DTYPE
        return np.dtype(self.params.dtype)

    def get_result_buffers(self):
        dtype = self.meta.input_dtype if self.params.dtype is None else self.params.dtype
        sig = tuple(self.meta.dataset_shape.sig)
        roi = self.meta.roi
        n = int(np.prod(tuple(self.meta.dataset_shape.nav))) if roi is None else int(roi.sum())
        return {
            "frames": self.buffer(kind="nav", extra_shape=sig, dtype=dtype, use="private"),
            "intensity": self.buffer(
                kind="single", extra_shape=(n,) + sig, dtype=dtype, use="result_only"
            ),
        }

    def process_tile(self, tile):
        self.results.frames[:] = tile

    def get_results(self):
        # nav buffers are flat and roi-compressed here: exactly (n_picked, *sig)
        return {"intensity": self.results.frames}
