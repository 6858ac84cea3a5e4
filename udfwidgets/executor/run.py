"""The main-node side of a run: plan, dispatch partitions, merge, publish results."""
from __future__ import annotations

import sys
import warnings
from types import SimpleNamespace
from typing import Any, Iterator, Sequence

import numpy as np

from ..io.dataset import DataSet
from ..io.shape import Shape
from ..progress import make_progress
from ..results import UDFResults
from ..udf.base import UDF, BufferNamespace, merge_missing_message
from ..udf.buffers import BufferError, BufferWrapper, empty_filled, zeros
from .backends import Executor
from .errors import annotate_udf_error
from .plan import clean_copies, dumps_udfs, normalize_roi, validate_buffers
from .task import DEFAULT_TILE_BYTES, PartitionTask, make_meta, run_partition

__all__ = ["UDFRun", "WorkerDiedError"]


class WorkerDiedError(RuntimeError):
    """A worker process died (killed, crashed, out of memory) during a run.

    Examples
    --------
    >>> issubclass(WorkerDiedError, RuntimeError)
    True
    """


class UDFRun:
    """One run of one or more UDFs over a dataset, from plan to final results.

    Created by :class:`~udfwidgets.Context`; iterate :meth:`results` to drive it.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets.executor import make_executor
    >>> from udfwidgets.io import load
    >>> from udfwidgets.udf.sum import SumUDF
    >>> ds = load("memory", data=np.ones((2, 2, 4, 4)))
    >>> run = UDFRun(ds, [SumUDF()], make_executor("inline"))
    >>> final = list(run.results())[-1]
    >>> float(final.buffers[0]["intensity"].data[0, 0])
    4.0
    """

    def __init__(self, dataset: DataSet, udfs: Sequence[UDF], executor: Executor,
                 roi: Any = None, tile_bytes: int = DEFAULT_TILE_BYTES):
        if not isinstance(dataset, DataSet):
            raise TypeError(f"dataset must be a udfwidgets dataset (from ctx.load), "
                            f"got {type(dataset).__name__}")
        self.dataset = dataset
        self.shape: Shape = dataset.shape
        self.nav_shape = tuple(self.shape.nav)
        self.executor = executor
        self.roi = normalize_roi(roi, self.nav_shape)
        self.udfs = clean_copies(udfs)
        self.blob = dumps_udfs(self.udfs) if executor.pickles_tasks else None
        self.tile_bytes = tile_bytes
        n_frames = self.shape.nav.size
        self.selected = (np.arange(n_frames, dtype=np.int64) if self.roi is None
                         else np.flatnonzero(self.roi))
        self.num_selected = len(self.selected)
        self.damage = np.zeros(n_frames, dtype=bool)
        self.decls = []
        self.arrays = []
        for udf in self.udfs:
            decls, arrays = self._init_main_buffers(udf)
            self.decls.append(decls)
            self.arrays.append(arrays)
        self.partitions = []  # (partition, offset into the selected frames, count)
        for part in dataset.get_partitions(executor.n_workers):
            lo = int(np.searchsorted(self.selected, part.start))
            hi = int(np.searchsorted(self.selected, part.stop))
            if hi > lo:
                self.partitions.append((part, lo, hi))

    def _init_main_buffers(self, udf: UDF):
        udf.meta = make_meta(udf, self.shape, self.dataset.dtype, self.roi, self.num_selected,
                             on_main_node=True)
        udf.meta._indices = self.selected
        decls = validate_buffers(udf)
        has_merge = type(udf).merge is not UDF.merge
        not_nav = [n for n, d in decls.items() if d.kind != "nav" and d.use != "result_only"]
        if not_nav and not has_merge:
            raise NotImplementedError(merge_missing_message(type(udf).__name__, not_nav))
        sig = tuple(self.shape.sig)
        arrays = {}
        for name, d in decls.items():
            shape = d.shape_for(self.num_selected, sig)
            arrays[name] = empty_filled(shape, d.dtype) if d.kind == "nav" else zeros(shape, d.dtype)
        udf.task_data = SimpleNamespace(**(udf.get_task_data() or {}))
        udf.results = BufferNamespace(
            {k: v for k, v in arrays.items() if decls[k].use != "result_only"}, type(udf).__name__)
        udf.preprocess()
        return decls, arrays

    # --- driving -------------------------------------------------------------
    def tasks(self):
        return (PartitionTask(part, self.blob, self.udfs, self.roi, self.tile_bytes)
                for part, _, _ in self.partitions)

    def results(self, subscribers: Sequence[Any] = (), progress: Any = False,
                partials: bool = True) -> Iterator[UDFResults]:
        """Yield a :class:`UDFResults` after each merged partition; the last is final."""
        bar = make_progress(progress, self.num_selected)
        bounds = {part.index: (lo, hi) for part, lo, hi in self.partitions}
        remaining = len(self.partitions)
        try:
            stream = self.executor.imap_unordered(run_partition, self.tasks())
            try:
                for result in stream:
                    lo, hi = bounds[result.index]
                    self._merge(result, lo, hi)
                    self.damage[self.selected[lo:hi]] = True
                    bar.update(hi - lo)
                    remaining -= 1
                    if remaining and (partials or subscribers):
                        partial = self._snapshot()
                        for sub in subscribers:
                            sub.new_data(partial, partial.damage, force=False)
                        if partials:
                            yield partial
            except Exception as e:
                if isinstance(e, _terminated_errors()):
                    names = ", ".join(type(u).__name__ for u in self.udfs)
                    raise WorkerDiedError(
                        f"a worker process died while running {names} (killed, crashed, or out "
                        f"of memory): {e}. The Context stays usable; the next run starts fresh "
                        "workers.") from e
                annotate_udf_error(e, self.udfs)
                raise
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    with warnings.catch_warnings():
                        # joblib warns that tasks were cancelled: that is what we asked for
                        warnings.simplefilter("ignore", UserWarning)
                        close()
            final = self._snapshot(finished=True)
            final.buffers  # compute now: errors in get_results surface here
            for sub in subscribers:
                sub.new_data(final, final.damage, force=True)
            yield final
        finally:
            bar.close()

    def _merge(self, result, lo: int, hi: int) -> None:
        for udf, decls, arrays, src in zip(self.udfs, self.decls, self.arrays, result.buffers):
            dest = {name: (arrays[name][lo:hi] if decls[name].kind == "nav" else arrays[name])
                    for name in src}
            udf.merge(BufferNamespace(dest, type(udf).__name__),
                      BufferNamespace(src, type(udf).__name__))

    def _snapshot(self, finished: bool = False) -> UDFResults:
        """Results as of now; damage and every buffer's valid mask share one copy."""
        valid = self.damage.copy()
        damage = BufferWrapper("nav", bool, (), valid, self.nav_shape)
        return UDFResults(lambda: self._compute_results(valid), damage, finished=finished)

    def _compute_results(self, valid: np.ndarray) -> tuple[dict[str, BufferWrapper], ...]:
        return tuple(self._udf_results(udf, decls, arrays, valid)
                     for udf, decls, arrays in zip(self.udfs, self.decls, self.arrays))

    def _udf_results(self, udf, decls, arrays, valid) -> dict[str, BufferWrapper]:
        def wrap(decl, raw):
            return BufferWrapper(decl.kind, raw.dtype, decl.extra_shape, raw, self.nav_shape,
                                 self.roi, valid)

        cls = type(udf).__name__
        if type(udf).get_results is UDF.get_results:
            return {name: wrap(d, arrays[name]) for name, d in decls.items()
                    if d.use != "private"}
        full = {name: (wrap(d, arrays[name]).data if d.kind == "nav" else arrays[name])
                for name, d in decls.items()}
        udf.results = BufferNamespace(full, cls)
        out = udf.get_results()
        if not isinstance(out, dict):
            raise BufferError(f"{cls}.get_results() must return a dict of name -> array, "
                              f"got {type(out).__name__}")
        wrapped = {}
        for name, value in out.items():
            if name not in decls:
                raise BufferError(f"{cls}.get_results() returned {name!r}, which is not a declared "
                                  "buffer: declare it in get_result_buffers() (use='result_only' "
                                  "for results computed only in get_results)")
            wrapped[name] = wrap(decls[name], self._as_raw(cls, name, decls[name], value))
        return wrapped

    def _as_raw(self, cls, name, decl, value) -> np.ndarray:
        if isinstance(value, BufferWrapper):
            value = value.raw_data if decl.kind == "nav" else value.data
        value = np.asarray(value)
        if decl.kind != "nav":
            return value
        extra = decl.extra_shape
        if value.shape == self.nav_shape + extra:
            flat = value.reshape((-1,) + extra)
            return flat if self.roi is None else flat[self.roi]
        if value.shape == (self.num_selected,) + extra:
            return value
        raise BufferError(f"{cls}.get_results() returned {name!r} with shape {value.shape}; a nav "
                          f"buffer must have shape {self.nav_shape + extra} (or "
                          f"{(self.num_selected,) + extra} for the selected frames)")


def _terminated_errors():
    from joblib.externals.loky.process_executor import TerminatedWorkerError
    errors = (TerminatedWorkerError,)
    distributed = sys.modules.get("distributed")
    if distributed is not None:  # dask gives up on a task whose workers keep dying
        errors += (distributed.KilledWorker,)
    return errors
