"""The :class:`Context`: load datasets and run UDFs on them."""
from __future__ import annotations

import asyncio
import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Iterator, Sequence

from .executor.backends import Executor, make_executor
from .executor.run import UDFRun
from .executor.task import DEFAULT_TILE_BYTES
from .io import DataSet, load as load_dataset
from .results import UDFResults
from .udf.base import UDF

__all__ = ["Context", "RunCancelled"]


class RunCancelled(BaseException):
    """Raised inside a run's driver thread to stop it (async cancellation).

    Examples
    --------
    A ``BaseException``, so that ``except Exception`` in UDF code does not swallow it:

    >>> issubclass(RunCancelled, BaseException), issubclass(RunCancelled, Exception)
    (True, False)
    """


class Context:
    """Entry point: load datasets and run UDFs on them, in parallel.

    Parameters
    ----------
    executor : {"processes", "threads", "inline", "dask"} or Executor
        ``"processes"`` (default): a joblib loky process pool over all cores,
        kept warm between runs. ``"threads"``: joblib threads (good when the
        UDFs release the GIL, as NumPy does). ``"inline"``: serial, in this
        process, exceptions surface directly (debugging). ``"dask"``: a
        dask.distributed cluster through joblib's dask backend (give ``client``).
    n_jobs : int, optional
        Number of workers; all cores by default.
    client : distributed.Client or str, optional
        For ``executor="dask"``: a client, or a scheduler address.
    warm_start : bool
        For ``executor="processes"``: start the worker processes in the
        background right away, so that they are ready by the first run
        (default True).
    tile_bytes : int
        About how many bytes of frames a tile holds (default 4 MiB).

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sum import SumUDF
    >>> with Context(executor="threads", n_jobs=2) as ctx:
    ...     ds = ctx.load("memory", data=np.ones((8, 8, 4, 4), dtype=np.uint16))
    ...     res = ctx.run_udf(dataset=ds, udf=SumUDF())
    >>> float(res["intensity"].data[0, 0])
    64.0
    """

    def __init__(self, executor: str | Executor = "processes", n_jobs: int | None = None,
                 client: Any = None, warm_start: bool = True,
                 tile_bytes: int = DEFAULT_TILE_BYTES):
        self.executor = make_executor(executor, n_jobs=n_jobs, client=client,
                                      warm_start=warm_start)
        self.tile_bytes = tile_bytes

    @classmethod
    def make_with(cls, executor: str = "processes", **kwargs) -> "Context":
        """Alias of ``Context(executor=...)``, for LiberTEM habits.

        Examples
        --------
        >>> Context.make_with("inline").executor.name
        'inline'
        """
        return cls(executor=executor, **kwargs)

    def load(self, kind: str, **kwargs) -> DataSet:
        """Open a dataset: ``"memory"``, ``"npy"``, ``"raw"``, ``"auto"`` or ``"synthetic"``.

        See :func:`udfwidgets.io.load` for the parameters of each kind.

        Examples
        --------
        >>> import numpy as np
        >>> tuple(Context(executor="inline").load("memory", data=np.zeros((3, 4, 5))).shape.nav)
        (3,)
        """
        return load_dataset(kind, **kwargs)

    # --- running ---------------------------------------------------------------
    def _make_run(self, dataset, udf, roi) -> tuple[UDFRun, bool]:
        single = isinstance(udf, UDF)
        udfs = [udf] if single else list(udf)
        if not udfs:
            raise ValueError("no UDF given: pass udf=SomeUDF() or a list of UDFs")
        return UDFRun(dataset, udfs, self.executor, roi=roi, tile_bytes=self.tile_bytes), single

    def _subscribers(self, plots, run: UDFRun) -> list:
        if plots is None or plots is False:
            return []
        if isinstance(plots, (list, tuple)) and all(hasattr(p, "new_data") for p in plots):
            return list(plots)
        from .widgets.plots import make_plots
        created = make_plots(plots, dataset=run.dataset, udfs=run.udfs, decls=run.decls,
                             roi=run.roi)
        for p in created:
            p.display()
        return created

    def run_udf_iter(self, dataset: DataSet, udf: UDF | Sequence[UDF], roi: Any = None,
                     progress: Any = False, plots: Any = None, sync: bool = True
                     ) -> Iterator[UDFResults] | AsyncIterator[UDFResults]:
        """Run UDFs and yield a :class:`UDFResults` after every merged partition.

        Partitions arrive in completion order. The last item is the complete
        result (``finished=True``), equal to what :meth:`run_udf` returns. Leaving
        the loop early (``break``) stops the outstanding work.

        With ``sync=False`` this returns an async iterator that does not block
        the event loop; cancelling the task that iterates stops the run.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.udf.sum import SumUDF
        >>> ctx = Context(executor="inline")
        >>> ds = ctx.load("memory", data=np.ones((4, 4, 2, 2)), num_partitions=4)
        >>> for part in ctx.run_udf_iter(dataset=ds, udf=SumUDF()):
        ...     print(int(part.damage.data.sum()), float(part.buffers[0]["intensity"].data[0, 0]))
        4 4.0
        8 8.0
        12 12.0
        16 16.0
        """
        run, _ = self._make_run(dataset, udf, roi)
        subscribers = self._subscribers(plots, run)
        gen = run.results(subscribers, progress, partials=True)
        if sync:
            return gen
        return _async_iter(gen)

    def run_udf(self, dataset: DataSet, udf: UDF | Sequence[UDF], roi: Any = None,
                progress: Any = False, plots: Any = None, sync: bool = True, **ignored):
        """Run one UDF (or a list of UDFs, in one pass) and return the results.

        Parameters
        ----------
        dataset : DataSet
            From :meth:`load`.
        udf : UDF or list of UDF
            A list runs all of them in one pass over the data.
        roi : array of bool, optional
            Nav-shaped (or flat) mask of the frames to process, or a list of
            nav coordinates.
        progress : bool
            Show a progress bar (widget in Jupyter, text in a terminal).
        plots : True, list, optional
            Live plots: ``True`` for every plottable buffer, per-UDF lists of
            buffer names (or ``(name, function)`` pairs), or objects with a
            ``new_data(udf_results, damage, force=False)`` method.
        sync : bool
            ``False`` returns an awaitable instead; the event loop keeps running.

        Returns
        -------
        dict of str to BufferWrapper, or a tuple of such dicts for a list of UDFs.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.udf.sum import SumUDF
        >>> ctx = Context(executor="inline")
        >>> ds = ctx.load("memory", data=np.ones((2, 2, 3, 3)))
        >>> res, = ctx.run_udf(dataset=ds, udf=[SumUDF()])
        >>> res["intensity"].data.shape
        (3, 3)
        """
        run, single = self._make_run(dataset, udf, roi)
        subscribers = self._subscribers(plots, run)
        gen = run.results(subscribers, progress, partials=False)

        def unpack(final: UDFResults):
            return final.buffers[0] if single else final.buffers

        if not sync:
            async def wait():
                last = None
                async for item in _async_iter(gen):
                    last = item
                return unpack(last)
            return wait()
        last = None
        for item in gen:
            last = item
        return unpack(last)

    def release_files(self) -> None:
        """Let go of the files earlier runs read.

        To save the page-table set-up of a fresh memory map (60-70 ms per GiB),
        worker processes keep each file's map between runs, and so does this
        process for files up to 1 GiB (inline and threads executors). While a
        file is mapped, deleting it does not free its disk space, and its
        pages cannot be dropped from the page cache with ``posix_fadvise`` (a
        cold-cache benchmark needs that). This drops the maps; with the
        processes executor the idle worker processes are restarted (in the
        background) and with dask every worker drops its own. The next run maps
        the files again. Idle loky workers also exit by themselves after 5
        minutes.

        Examples
        --------
        >>> from udfwidgets import Context
        >>> ctx = Context(executor="inline")
        >>> ctx.release_files()
        """
        self.executor.release_files()

    def close(self) -> None:
        """Release the executor's resources (an owned dask client) and the files it
        keeps mapped in this process."""
        from .io.files import release_maps
        release_maps()
        self.executor.close()

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Context executor={self.executor.name!r} workers={self.executor.n_workers}>"


_DONE = object()


def _interrupt(thread_id: int) -> None:
    """Raise :class:`RunCancelled` in the thread that drives a run.

    joblib polls for results in a Python loop, so the exception arrives within
    milliseconds; joblib then aborts the outstanding tasks (and stops loky
    workers) as it does for a KeyboardInterrupt.
    """
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                               ctypes.py_object(RunCancelled))


async def _async_iter(gen: Iterator[UDFResults]) -> AsyncIterator[UDFResults]:
    """Drive a run's generator in a thread of its own; yield its items to the event loop."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="udfwidgets-run")
    loop = asyncio.get_running_loop()
    state = {"thread": None, "busy": False}

    def step():
        state["thread"] = threading.get_ident()
        state["busy"] = True
        try:
            item = next(gen, _DONE)
            if item is not _DONE:
                item.buffers  # compute here, off the event loop
            return item
        finally:
            state["busy"] = False

    finished = False
    try:
        while True:
            item = await loop.run_in_executor(pool, step)
            if item is _DONE:
                finished = True
                return
            yield item
    finally:
        if not finished:
            if state["busy"] and state["thread"] is not None:
                _interrupt(state["thread"])
            pool.submit(_close_quietly, gen)
        pool.shutdown(wait=False)


def _close_quietly(gen) -> None:
    try:
        gen.close()
    except (RunCancelled, Exception):
        pass
