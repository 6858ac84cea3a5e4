"""The :class:`Context`: load datasets and run UDFs on them."""

from __future__ import annotations

import asyncio
import ctypes
import threading
import weakref
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .executor import plan
from .executor.backends import Executor, make_executor
from .executor.errors import ContextClosedError
from .executor.run import UDFRun
from .executor.task import DEFAULT_TILE_BYTES
from .io import DataSet
from .io import load as load_dataset
from .results import UDFResults
from .udf.base import UDF

__all__ = ["Context", "RunCancelled", "UDFRunCancelled"]


class RunCancelled(BaseException):
    """Raised inside a run's driver thread to stop it (async cancellation).

    Examples
    --------
    A ``BaseException``, so that ``except Exception`` in UDF code does not swallow it:

    >>> issubclass(RunCancelled, BaseException), issubclass(RunCancelled, Exception)
    (True, False)
    """


class UDFRunCancelled(RunCancelled):
    """A run was cancelled (LiberTEM's name): what stops the driver of a cancelled
    async run; ``except RunCancelled`` catches it too.

    It is raised asynchronously in the thread that drives the run when the
    awaiting task is cancelled, so no synchronous call raises it; code that
    cleans up after a cancelled run catches it by either name.

    Examples
    --------
    >>> from udfwidgets.api import RunCancelled, UDFRunCancelled
    >>> issubclass(UDFRunCancelled, RunCancelled)
    True
    >>> try:
    ...     raise UDFRunCancelled("cancelled")
    ... except RunCancelled as exc:
    ...     print(type(exc).__name__, exc)
    UDFRunCancelled cancelled
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
        dask.distributed cluster (``client``; without one, a local cluster on
        127.0.0.1 owned by the Context; see docs/clusters.md).
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

    def __init__(
        self,
        executor: str | Executor = "processes",
        n_jobs: int | None = None,
        client: Any = None,
        warm_start: bool = True,
        tile_bytes: int = DEFAULT_TILE_BYTES,
    ):
        self._closed = False
        if isinstance(tile_bytes, bool) or not isinstance(tile_bytes, int) or tile_bytes < 1:
            raise ValueError(
                f"tile_bytes must be a positive integer (bytes per tile, default "
                f"{DEFAULT_TILE_BYTES}), got {tile_bytes!r}"
            )
        self.executor = make_executor(executor, n_jobs=n_jobs, client=client, warm_start=warm_start)
        self.tile_bytes = tile_bytes

    @classmethod
    def make_with(
        cls, executor: str = "processes", cpus: Any = None, gpus: Any = None, **kwargs
    ) -> Context:
        """``Context(executor=...)`` with LiberTEM's arguments.

        ``cpus`` is a number of workers or a collection of CPU ids (its length
        is used); ``gpus`` must be None, 0 or empty (udfwidgets computes on the
        CPU). LiberTEM's ``"synchronous"`` means ``"inline"``.

        Examples
        --------
        >>> Context.make_with("inline").executor.name
        'inline'
        >>> Context.make_with("threads", cpus=2).executor.n_workers
        2
        """
        if gpus:
            raise ValueError(
                f"gpus={gpus!r}: udfwidgets computes on the CPU only; leave gpus out (or give 0)"
            )
        if cpus is not None:
            n = cpus if isinstance(cpus, (int, np.integer)) else len(tuple(cpus))
            if isinstance(cpus, bool) or n < 1:
                raise ValueError(
                    f"cpus must be a positive number of workers or a non-empty "
                    f"collection of CPU ids, got {cpus!r}"
                )
            kwargs.setdefault("n_jobs", int(n))
        if executor == "synchronous":
            executor = "inline"
        return cls(executor=executor, **kwargs)

    def map(
        self, dataset: DataSet, f, roi: Any = None, progress: Any = False, backends: Any = None
    ):
        """Apply ``f(frame)`` to every frame; returns a nav :class:`BufferWrapper`.

        Runs :class:`~udfwidgets.udf.auto.AutoUDF`; see it for how the
        result's shape and dtype are found.

        Examples
        --------
        >>> import numpy as np
        >>> ctx = Context(executor="inline")
        >>> ds = ctx.load("memory", data=np.ones((2, 3, 4, 4)))
        >>> ctx.map(dataset=ds, f=np.sum).data.shape
        (2, 3)
        """
        from .udf.auto import AutoUDF

        res = self.run_udf(
            dataset=dataset, udf=AutoUDF(f=f), roi=roi, progress=progress, backends=backends
        )
        return res["result"]

    def display(self, dataset: DataSet, udf: Any = None, roi: Any = None):
        """A description of ``dataset`` that Jupyter shows as a table.

        Examples
        --------
        >>> import numpy as np
        >>> ctx = Context(executor="inline")
        >>> print(ctx.display(ctx.load("memory", data=np.zeros((2, 3, 4, 4)))))
        MemoryDataSet: nav (2, 3), sig (4, 4), float64, 768 B
        """
        from .io.display import DataSetDisplay

        ex = self.executor
        return DataSetDisplay(dataset, ex.n_workers, ex.partition_bytes, ex.partitions_per_worker)

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
    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called.

        Examples
        --------
        >>> with Context(executor="inline") as ctx:
        ...     pass
        >>> ctx.closed
        True
        """
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ContextClosedError(
                "this Context was closed (ctx.close(), or the end of its with-block), so it "
                "cannot run UDFs: make a new one, e.g. "
                f"ctx = Context(executor={self.executor.name!r})"
            )

    def _make_run(self, dataset, udf, roi, backends=None, corrections=None) -> tuple[UDFRun, bool]:
        self._check_open()
        plan.check_dataset(dataset)
        udfs, single = plan.as_udf_list(udf)
        plan.check_outputs(udfs, dataset)
        return UDFRun(
            dataset,
            udfs,
            self.executor,
            roi=roi,
            tile_bytes=self.tile_bytes,
            backends=backends,
            corrections=corrections,
        ), single

    @staticmethod
    def _guarded(
        run: UDFRun, gen: Generator[UDFResults, None, None]
    ) -> Generator[UDFResults, None, None]:
        """Commit the UDFs' output files when the run finishes; remove them otherwise."""
        committed = False
        try:
            for item in gen:
                if item.finished and not committed:
                    plan.commit_outputs(run.udfs)
                    committed = True
                yield item
        finally:
            if not committed:
                gen.close()
                plan.abort_outputs(run.udfs)

    def _start(self, run: UDFRun, plots, progress, partials: bool) -> Iterator[UDFResults]:
        try:
            subscribers = self._subscribers(plots, run)
        except BaseException:
            plan.abort_outputs(run.udfs)
            raise
        gen = run.results(subscribers, progress, partials=partials)
        if not any(hasattr(u, "_commit_outputs") for u in run.udfs):
            return gen
        gen = self._guarded(run, gen)
        # a run that is never iterated must not leave its temporary files behind
        weakref.finalize(gen, plan.abort_outputs, run.udfs)
        return gen

    def _subscribers(self, plots, run: UDFRun) -> list:
        if plots is None or plots is False:
            return []
        if isinstance(plots, (list, tuple)) and all(hasattr(p, "new_data") for p in plots):
            return list(plots)
        from .widgets.plots import make_plots

        created = make_plots(
            plots, dataset=run.dataset, udfs=run.udfs, decls=run.decls, roi=run.roi
        )
        for p in created:
            p.display()
        return created

    def run_udf_iter(
        self,
        dataset: DataSet,
        udf: UDF | Sequence[UDF],
        roi: Any = None,
        progress: Any = False,
        plots: Any = None,
        sync: bool = True,
        backends: Any = None,
        corrections: Any = None,
        **kwargs,
    ) -> Iterator[UDFResults] | AsyncIterator[UDFResults]:
        """Run UDFs and yield a :class:`UDFResults` after every merged partition.

        Partitions arrive in completion order. The last item is the complete
        result (``finished=True``), equal to what :meth:`run_udf` returns. Leaving
        the loop early (``break``) stops the outstanding work.

        With ``sync=False`` this returns an async iterator that does not block
        the event loop; cancelling the task that iterates stops the run.
        ``corrections`` as for :meth:`run_udf`.

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
        self._check_open()
        plan.check_run_kwargs(kwargs, "run_udf_iter", _RUN_KEYWORDS)
        _check_sync(sync)
        run, _ = self._make_run(dataset, udf, roi, backends, corrections)
        gen = self._start(run, plots, progress, partials=True)
        if sync:
            return gen
        return _async_iter(gen)

    def run_udf(
        self,
        dataset: DataSet,
        udf: UDF | Sequence[UDF],
        roi: Any = None,
        progress: Any = False,
        plots: Any = None,
        sync: bool = True,
        backends: Any = None,
        corrections: Any = None,
        **kwargs,
    ):
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
        backends : iterable of str, optional
            Restrict the array backends the UDFs may use (LiberTEM's keyword),
            e.g. ``("numpy",)``; see :meth:`UDF.get_backends`.
        corrections : CorrectionSet, None or False
            Dark, gain and excluded pixels applied to every frame before the
            UDFs see it (:class:`udfwidgets.corrections.CorrectionSet`).
            ``None`` (default) applies the dataset's own ``ds.corrections``
            if it has any; ``False`` applies none.

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
        self._check_open()
        plan.check_run_kwargs(kwargs, "run_udf", _RUN_KEYWORDS)
        _check_sync(sync)
        run, single = self._make_run(dataset, udf, roi, backends, corrections)
        gen = self._start(run, plots, progress, partials=False)

        def unpack(final: UDFResults | None):
            assert final is not None, "a run always ends with its final result"
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

    def export_dataset(
        self,
        dataset: DataSet,
        path: Any,
        roi: Any = None,
        corrections: Any = None,
        overwrite: bool = False,
    ) -> None:
        """Write ``dataset`` (corrected, cropped to ``roi``) to ``.h5``/``.hdf5`` or ``.npy``.

        Block by block, never the whole dataset in memory; ``corrections`` as
        for :meth:`run_udf`. See :func:`udfwidgets.export.export_dataset`.

        Examples
        --------
        >>> import os, tempfile, numpy as np
        >>> ctx = Context(executor="inline")
        >>> ds = ctx.load("memory", data=np.ones((2, 3, 4, 4), dtype=np.uint16))
        >>> path = os.path.join(tempfile.mkdtemp(), "copy.npy")
        >>> ctx.export_dataset(ds, path)
        >>> np.load(path).shape
        (2, 3, 4, 4)
        """
        from .export import export_dataset

        export_dataset(dataset, path, roi=roi, corrections=corrections, overwrite=overwrite)

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

        Kept maps make each worker's resident size (RSS in ``top``) look large
        after runs over big files, up to the size of the file's part it read:
        those are shared, reclaimable page-cache pages (``RssFile``), not
        private memory (``RssAnon``); this call drops them.

        Examples
        --------
        >>> from udfwidgets import Context
        >>> ctx = Context(executor="inline")
        >>> ctx.release_files()
        """
        self._check_open()
        self.executor.release_files()

    def close(self) -> None:
        """Release the executor's resources and the files it keeps mapped in this process.

        The processes executor shuts its worker processes down (unless another
        open Context uses the same pool), an owned dask client is closed. After
        ``close()`` every run raises :class:`~udfwidgets.executor.errors.ContextClosedError`;
        closing twice is harmless.

        Examples
        --------
        >>> ctx = Context(executor="threads", n_jobs=1)
        >>> ctx.close(); ctx.close()
        >>> ctx.closed
        True
        """
        if self._closed:
            return
        self._closed = True
        from .io.files import release_maps

        release_maps()
        self.executor.close()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        closed = " closed" if self._closed else ""
        return (
            f"<Context executor={self.executor.name!r} workers={self.executor.n_workers}{closed}>"
        )


_DONE = object()
#: The keywords of run_udf / run_udf_iter besides dataset and udf (for error messages).
_RUN_KEYWORDS = ("roi", "progress", "plots", "sync")


def _check_sync(sync: Any) -> None:
    if not isinstance(sync, bool):
        raise TypeError(
            f"sync must be True (wait for the results) or False (return an awaitable), got {sync!r}"
        )


def _interrupt(thread_id: int) -> None:
    """Raise :class:`RunCancelled` in the thread that drives a run.

    joblib polls for results in a Python loop, so the exception arrives within
    milliseconds; joblib then aborts the outstanding tasks (and stops loky
    workers) as it does for a KeyboardInterrupt.
    """
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(UDFRunCancelled)
    )


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
