"""``AutoUDF``: apply a plain function to every frame (what ``ctx.map`` runs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .base import UDF

__all__ = ["AutoUDF"]


class AutoUDF(UDF):
    """Apply ``f(frame)`` to every frame; the results land in the nav buffer ``result``.

    The shape and dtype of the buffer come from calling ``f`` once on a frame
    of zeros (in the input dtype) on the main node: a numeric result of shape
    ``s`` gives a buffer with ``extra_shape=s``; anything else (strings,
    dicts, lists of mixed objects) an ``object`` buffer holding what ``f``
    returned for each frame.

    Parameters
    ----------
    f : callable
        ``f(frame) -> result``; it must not depend on anything but the frame.
    monitor : bool
        Also return a ``single`` buffer ``monitor`` holding ``f``'s result for
        the frame processed last (as LiberTEM's ``AutoUDF(monitor=True)``): in
        live results, the newest merged frame's value, e.g. for a live plot of
        a profile. Numeric results only.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> ctx = Context(executor="inline")
    >>> ds = ctx.load("memory", data=np.arange(8.0).reshape(2, 1, 2, 2))
    >>> ctx.run_udf(dataset=ds, udf=AutoUDF(f=np.max))["result"].data
    array([[3.],
           [7.]])
    >>> res = ctx.run_udf(dataset=ds, udf=AutoUDF(f=np.max, monitor=True))
    >>> res["monitor"].data
    array([7.])
    """

    def __init__(self, f: Callable[[np.ndarray], Any], monitor: bool = False):
        if not callable(f):
            raise TypeError(f"AutoUDF needs a callable f(frame), got {type(f).__name__}")
        if not isinstance(monitor, (bool, np.bool_)):
            raise TypeError(f"AutoUDF(monitor=) takes True or False, got {monitor!r}")
        super().__init__(f=f, monitor=bool(monitor))

    def _probe(self) -> tuple[tuple[int, ...], np.dtype]:
        cached = self.__dict__.get("_auto_probe")
        if cached is None:
            frame = np.zeros(tuple(self.meta.dataset_shape.sig), dtype=self.meta.input_dtype)
            value = self.params.f(frame)
            try:
                arr = np.asarray(value)
                numeric = arr.dtype.kind in "biufc"
            except (ValueError, TypeError):
                numeric = False
            cached = (arr.shape, arr.dtype) if numeric else ((), np.dtype(object))
            self.__dict__["_auto_probe"] = cached
        return cached

    def _monitors(self) -> bool:
        return bool(self.params.get("monitor", False))

    def get_result_buffers(self):
        shape, dtype = self._probe()
        bufs = {"result": self.buffer(kind="nav", extra_shape=shape, dtype=dtype)}
        if self._monitors():
            if dtype.kind == "O":
                raise TypeError(
                    "AutoUDF(monitor=True) needs f to return numbers or numeric arrays; "
                    "this f returns objects: leave monitor out"
                )
            bufs["monitor"] = self.buffer(kind="single", extra_shape=shape or (1,), dtype=dtype)
            # whether a partition saw a frame: one without any (roi) keeps the older monitor
            bufs["monitor_seen"] = self.buffer(kind="single", dtype=bool, use="private")
        return bufs

    def get_task_data(self):
        return {"is_object": self._probe()[1].kind == "O"}

    def process_frame(self, frame):
        value = self.params.f(frame)
        if self.task_data.is_object:
            self.results.result[0] = value
        else:
            self.results.result[:] = value
            if self._monitors():
                self.results.monitor[:] = value
                self.results.monitor_seen[:] = True

    def merge(self, dest, src):
        dest.result[:] = src.result
        if self._monitors() and src.monitor_seen[0]:
            dest.monitor[:] = src.monitor
            dest.monitor_seen[:] = True
