"""The main-node side of a run: plan, dispatch partitions, merge, publish results."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Generator, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..corrections import resolve_corrections
from ..export import buffer_context
from ..io.dataset import (
    PARTITIONS_PER_WORKER,
    TARGET_PARTITION_BYTES,
    DataSet,
    partition_size,
)
from ..io.shape import Shape
from ..progress import make_progress
from ..results import UDFResults
from ..udf.backends import choose_backend
from ..udf.base import UDF, BufferNamespace, merge_missing_message
from ..udf.buffers import (
    BufferError,
    BufferWrapper,
    MaskedResult,
    UndeclaredBufferError,
    check_custom_mask,
    zeros,
)
from .backends import Executor
from .errors import annotate_udf_error
from .plan import clean_copies, dumps_udfs, normalize_roi, validate_buffers
from .task import DEFAULT_TILE_BYTES, PartitionTask, aux_params, make_meta, run_partition

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

    def __init__(
        self,
        dataset: DataSet,
        udfs: Sequence[UDF],
        executor: Executor,
        roi: Any = None,
        tile_bytes: int = DEFAULT_TILE_BYTES,
        backends: Any = None,
        corrections: Any = None,
    ):
        if not isinstance(dataset, DataSet):
            raise TypeError(
                f"dataset must be a udfwidgets dataset (from ctx.load), "
                f"got {type(dataset).__name__}"
            )
        self.dataset = dataset
        self.shape: Shape = dataset.shape
        self.nav_shape = tuple(self.shape.nav)
        self.executor = executor
        self.roi = normalize_roi(roi, self.nav_shape)
        # checked here, before any work; None: the dataset's own ds.corrections
        self.corrections = resolve_corrections(corrections, dataset)
        self.udfs = clean_copies(udfs)
        self.backends = tuple(
            choose_backend(u.get_backends(), backends, type(u).__name__) for u in self.udfs
        )
        self.blob = dumps_udfs(self.udfs) if executor.pickles_tasks else None
        self.tile_bytes = tile_bytes
        n_frames = self.shape.nav.size
        self.selected = (
            np.arange(n_frames, dtype=np.int64) if self.roi is None else np.flatnonzero(self.roi)
        )
        self.num_selected = len(self.selected)
        self.damage = np.zeros(n_frames, dtype=bool)
        self.decls = []
        self.arrays = []
        for udf, backend, original in zip(self.udfs, self.backends, udfs):
            decls, arrays = self._init_main_buffers(udf, backend)
            self.decls.append(decls)
            self.arrays.append(arrays)
            original.meta = udf.meta  # as in LiberTEM, the caller's UDF object knows its run
        self.partitions = []  # (partition, offset into the selected frames, count)
        with partition_size(
            getattr(executor, "partition_bytes", TARGET_PARTITION_BYTES),
            getattr(executor, "partitions_per_worker", PARTITIONS_PER_WORKER),
        ):
            parts = dataset.get_partitions(executor.n_workers)
        for part in parts:
            lo = int(np.searchsorted(self.selected, part.start))
            hi = int(np.searchsorted(self.selected, part.stop))
            if hi > lo:
                self.partitions.append((part, lo, hi))

    def _init_main_buffers(self, udf: UDF, backend: str = "numpy"):
        dtype = self.dataset.dtype if self.corrections is None else self.corrections.dtype
        udf.meta = make_meta(
            udf,
            self.shape,
            dtype,
            self.roi,
            self.num_selected,
            on_main_node=True,
            array_backend=backend,
        )
        udf.meta._indices = self.selected
        udf.meta._valid_nav = self.damage
        decls = validate_buffers(udf)
        has_merge = type(udf).merge is not UDF.merge
        cls = type(udf).__name__
        not_nav = [n for n, d in decls.items() if d.kind != "nav" and d.use != "result_only"]
        if not_nav and not has_merge:
            raise NotImplementedError(merge_missing_message(cls, not_nav))
        result_only = [n for n, d in decls.items() if d.use == "result_only"]
        if result_only and type(udf).get_results is UDF.get_results:
            raise BufferError(
                f"{cls} declares result_only buffers ({', '.join(map(repr, result_only))}) but "
                "has no get_results() method: nothing would ever fill them. Implement "
                f"get_results() returning them, e.g. {{{result_only[0]!r}: ...}}, or drop "
                "use='result_only'"
            )
        sig = tuple(self.shape.sig)
        arrays: dict[str, np.ndarray | None] = {}
        for name, d in decls.items():
            if d.use == "result_only":  # filled only by get_results
                arrays[name] = None
                continue
            shape = d.shape_for(self.num_selected, sig)
            # zeros, as in LiberTEM (a merge may do `dest.x[:] += src.x`); frames not
            # merged yet still read as the fill value in BufferWrapper.data
            arrays[name] = zeros(shape, d.dtype)
        udf.task_data = SimpleNamespace(**(udf.get_task_data() or {}))
        udf.results = BufferNamespace(dict(arrays), cls)
        # aux data is the selected frames' view during preprocess, as nav buffers are
        aux = aux_params(udf)
        udf.params._kwargs.update({name: buf.raw_data[self.selected] for name, buf in aux})
        try:
            udf.preprocess()
        finally:
            udf.params._kwargs.update(dict(aux))  # clean copies are made from these
        return decls, arrays

    # --- driving -------------------------------------------------------------
    def tasks(self):
        return (
            PartitionTask(
                part,
                self.blob,
                self.udfs,
                self.roi,
                self.tile_bytes,
                self.backends,
                self.corrections,
            )
            for part, _, _ in self.partitions
        )

    def results(
        self, subscribers: Sequence[Any] = (), progress: Any = False, partials: bool = True
    ) -> Generator[UDFResults, None, None]:
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
                        "workers."
                    ) from e
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
            if not partials:
                final.buffers  # compute now: errors in get_results surface here
            for sub in subscribers:
                sub.new_data(final, final.damage, force=True)
            yield final
        finally:
            bar.close()

    def _merge(self, result, lo: int, hi: int) -> None:
        for udf, decls, arrays, src in zip(self.udfs, self.decls, self.arrays, result.buffers):
            udf.meta._valid_nav = self.damage
            dest = {
                name: (arrays[name][lo:hi] if decls[name].kind == "nav" else arrays[name])
                for name in src
            }
            udf.merge(
                BufferNamespace(dest, type(udf).__name__), BufferNamespace(src, type(udf).__name__)
            )

    def _snapshot(self, finished: bool = False) -> UDFResults:
        """Results as of now; damage and every buffer's valid mask share one copy."""
        valid = self.damage.copy()
        # as in LiberTEM: raw_data one entry per selected frame, data over the whole scan
        raw = valid if self.roi is None else valid[self.roi]
        damage = BufferWrapper("nav", bool, (), raw, self.nav_shape, self.roi)
        return UDFResults(lambda: self._compute_results(valid), damage, finished=finished)

    def _compute_results(self, valid: np.ndarray) -> tuple[dict[str, BufferWrapper], ...]:
        return tuple(
            self._udf_results(udf, decls, arrays, valid)
            for udf, decls, arrays in zip(self.udfs, self.decls, self.arrays)
        )

    def _udf_results(self, udf, decls, arrays, valid) -> dict[str, BufferWrapper]:
        def wrap(decl, raw, name=None, mask=None, full=None):
            w = BufferWrapper(
                decl.kind,
                raw.dtype,
                decl.extra_shape,
                raw,
                self.nav_shape,
                self.roi,
                valid,
                custom_mask=mask,
            )
            w._full = full
            if mask is not None:
                check_custom_mask(mask, w.shape, name, cls)
            if name is not None:  # what udfwidgets.export needs: axes, units, provenance
                w.axes, w.context = decl.axes, buffer_context(self.dataset, udf, name)
            return w

        cls = type(udf).__name__
        if type(udf).get_results is UDF.get_results:
            return {
                name: wrap(d, arrays[name], name) for name, d in decls.items() if d.use != "private"
            }
        # LiberTEM's contract: nav buffers flat and roi-compressed, (n_selected, *extra)
        udf.results = BufferNamespace(dict(arrays), cls)
        udf.meta._valid_nav = valid
        out = udf.get_results()
        if not isinstance(out, dict):
            raise BufferError(
                f"{cls}.get_results() must return a dict of name -> array, got {type(out).__name__}"
            )
        wrapped = {}
        for name, value in out.items():
            if name not in decls:
                raise UndeclaredBufferError(
                    f"{cls}.get_results() returned {name!r}, which is not a declared "
                    "buffer: declare it in get_result_buffers() (use='result_only' "
                    "for results computed only in get_results)"
                )
            if decls[name].use == "private":
                raise BufferError(
                    f"{cls}.get_results() returned {name!r}, a private buffer: "
                    "private buffers are never results; declare it without "
                    "use='private' to return it"
                )
            mask = None
            if isinstance(value, MaskedResult):
                value, mask = value.data, value.mask
            raw = self._as_raw(cls, name, decls[name], value)
            full = None
            if decls[name].kind == "nav" and self.roi is not None:
                arr = value.raw_data if isinstance(value, BufferWrapper) else np.asarray(value)
                if arr.shape == self.nav_shape + decls[name].extra_shape:
                    full = arr  # returned whole: the values outside the roi are kept
            wrapped[name] = wrap(decls[name], raw, name, mask, full)
        missing = [n for n, d in decls.items() if d.use == "result_only" and n not in out]
        if missing:
            raise BufferError(
                f"{cls}.get_results() did not return its result_only buffer(s) "
                f"{', '.join(map(repr, missing))}: return a value for each"
            )
        result = {}
        for name, d in decls.items():  # declaration order; buffers not returned pass through
            if name in wrapped:
                result[name] = wrapped[name]
            elif d.use is None:
                result[name] = wrap(d, arrays[name], name)
        return result

    def _as_raw(self, cls, name, decl, value) -> np.ndarray:
        if isinstance(value, BufferWrapper):
            value = value.raw_data if decl.kind == "nav" else value.data
        value = np.asarray(value)
        if decl.kind != "nav":
            expected = decl.shape_for(self.num_selected, tuple(self.shape.sig))
            if value.shape != expected and value.size == int(np.prod(expected)):
                value = value.reshape(expected)  # e.g. a scalar for a (1,) single buffer
            return value
        extra = decl.extra_shape
        if value.shape == self.nav_shape + extra:
            flat = value.reshape((-1,) + extra)
            return flat if self.roi is None else flat[self.roi]
        if value.shape == (self.num_selected,) + extra:
            return value
        raise BufferError(
            f"{cls}.get_results() returned {name!r} with shape {value.shape}; a nav "
            f"buffer must have shape {self.nav_shape + extra} (or "
            f"{(self.num_selected,) + extra} for the selected frames)"
        )


def _terminated_errors():
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    errors = (TerminatedWorkerError,)
    distributed = sys.modules.get("distributed")
    if distributed is not None:  # dask gives up on a task whose workers keep dying
        errors += (distributed.KilledWorker,)
    return errors
