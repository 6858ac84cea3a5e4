"""joblib's dask backend, with one fix: a task that fails outside the user's
function (``KilledWorker``: its worker died too often) raises in the caller.

joblib 1.6's backend stores that error on a future joblib never looks at in
generator mode and skips the completion callback, so ``Parallel`` waits
forever. Here the callback receives the exception, which joblib re-raises.
"""
from __future__ import annotations

import asyncio

from joblib._dask import DaskDistributedBackend

__all__ = ["DaskBackend", "BACKEND_NAME"]

BACKEND_NAME = "udfwidgets-dask"


class DaskBackend(DaskDistributedBackend):
    """:class:`joblib._dask.DaskDistributedBackend` that reports infrastructure errors."""

    async def _collect(self):
        while self._continue:
            async for future, result in self.waiting_futures:
                cf_future = self._results.pop(future)
                callback = self._callbacks.pop(future)
                if future.status == "error":
                    _, exc, _ = result
                    cf_future.set_exception(exc)
                    callback(exc)  # joblib raises an exception it is handed as a result
                else:
                    cf_future.set_result(result)
                    callback(result)
            await asyncio.sleep(0.01)
