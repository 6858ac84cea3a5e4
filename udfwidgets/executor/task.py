"""The work done for one partition, on whichever worker runs it.

Every UDF gets a fresh copy (unpickled, or re-instantiated by in-process executors), its
partition-local buffers, ``preprocess``, its process method over the
partition's frames, and ``postprocess``. Frames are read once and shared by
all UDFs of the run; they are converted to each UDF's input dtype one tile at
a time into a reused buffer.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import cloudpickle
import numpy as np

from ..io.dataset import Partition
from ..io.shape import Shape
from ..udf.base import BufferNamespace, process_method_of
from ..udf.buffers import zeros
from ..udf.meta import UDFMeta
from .plan import validate_buffers

__all__ = ["PartitionTask", "PartitionResult", "run_partition", "DEFAULT_TILE_BYTES"]

#: Frames per tile are chosen so that one tile of input is about this big
#: (fits the L2 cache of current CPUs together with the buffers).
#: 4 MiB: SumUDF and SumSigUDF run 7-8% faster than with 1 MiB tiles (fewer
#: Python calls per GiB); process_frame UDFs are unaffected (benchmarks/README.md)
DEFAULT_TILE_BYTES = 4 << 20


@dataclass
class PartitionTask:
    """Everything a worker needs for one partition; small to pickle.

    ``prototypes`` (the run's clean UDF copies) are used where the task runs
    in the main process and never pickled; other processes unpickle
    ``blob``. (Unpickling a notebook-defined class in the process that
    defined it would rebind the user's class to copied code.)

    Examples
    --------
    Made by :meth:`UDFRun.tasks <udfwidgets.executor.run.UDFRun.tasks>`; see :func:`run_partition`.

    >>> PartitionTask.__dataclass_fields__["tile_bytes"].default == DEFAULT_TILE_BYTES
    True
    """

    partition: Partition
    blob: bytes | None  # cloudpickled UDFs, for other processes
    prototypes: list | None  # UDFs to copy, in this process
    roi: np.ndarray | None  # flat nav mask of the whole dataset, or None
    tile_bytes: int = DEFAULT_TILE_BYTES

    def __getstate__(self):
        state = dict(self.__dict__)
        state["prototypes"] = None
        return state


@dataclass
class PartitionResult:
    """The partition-local buffers of every UDF, in the run's UDF order.

    Examples
    --------
    What :func:`run_partition` returns:

    >>> r = PartitionResult(index=0, num_frames=2, buffers=[{}])
    >>> r.index, r.num_frames
    (0, 2)
    """

    index: int
    num_frames: int
    buffers: list[dict[str, np.ndarray]]


def make_meta(udf, shape: Shape, dtype, roi_flat, num_frames: int,
              on_main_node: bool = False) -> UDFMeta:
    input_dtype = np.result_type(udf.get_preferred_input_dtype(), dtype)
    roi = None if roi_flat is None else roi_flat.reshape(shape.nav)
    return UDFMeta(shape, dtype, input_dtype, roi,
                   Shape((num_frames,) + tuple(shape.sig), sig_dims=shape.sig_dims),
                   on_main_node=on_main_node)


def _set_whole(udf, arrays: dict[str, np.ndarray], indices: np.ndarray) -> None:
    udf.results.__dict__.update(arrays)
    udf.meta._indices = indices
    udf.meta._frame = None


def run_partition(task: PartitionTask) -> PartitionResult:
    """Run all UDFs of a run over one partition and return their buffers.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets.executor import make_executor
    >>> from udfwidgets.executor.run import UDFRun
    >>> from udfwidgets.io import load
    >>> from udfwidgets.udf.sumsigudf import SumSigUDF
    >>> ds = load("memory", data=np.ones((2, 2, 4, 4)), num_partitions=2)
    >>> run = UDFRun(ds, [SumSigUDF()], make_executor("inline"))
    >>> result = run_partition(next(iter(run.tasks())))
    >>> result.num_frames, result.buffers[0]["intensity"].tolist()
    (2, [16.0, 16.0])
    """
    part = task.partition
    shape = part.shape
    if task.prototypes is not None:
        udfs = [udf.copy() for udf in task.prototypes]
    else:
        udfs = cloudpickle.loads(task.blob)
    if task.roi is None:
        indices = np.arange(part.start, part.stop, dtype=np.int64)
    else:
        indices = np.flatnonzero(task.roi[part.start:part.stop]) + part.start
    n = len(indices)
    sig = tuple(shape.sig)

    states = []  # (udf, method, arrays, nav buffers)
    for udf in udfs:
        udf.meta = make_meta(udf, shape, part.dtype, task.roi, n)
        udf.meta._indices = indices
        decls = validate_buffers(udf)
        arrays = {name: zeros(d.shape_for(n, sig), d.dtype)
                  for name, d in decls.items() if d.use != "result_only"}
        navs = [(name, arrays[name], not decls[name].extra_shape)
                for name in arrays if decls[name].kind == "nav"]
        udf.task_data = SimpleNamespace(**(udf.get_task_data() or {}))
        udf.results = BufferNamespace(dict(arrays), type(udf).__name__)
        _set_whole(udf, arrays, indices)
        udf.preprocess()
        states.append((udf, process_method_of(udf), arrays, navs))

    if n:
        try:
            native = part.read(part.start, part.stop) if task.roi is None else part.take(indices)
            native = native.view(np.ndarray)  # plain ndarray: memmap slicing is slow
            native.flags.writeable = False
            _process(states, native, indices, sig, task.tile_bytes)
        finally:
            native = None
            part.close()

    out = []
    for udf, _, arrays, _ in states:
        _set_whole(udf, arrays, indices)
        udf.postprocess()
        out.append(arrays)
    return PartitionResult(part.index, n, out)


def _process(states, native: np.ndarray, indices: np.ndarray, sig, tile_bytes: int) -> None:
    whole: dict[np.dtype, np.ndarray] = {native.dtype: native}
    tiled = []
    for state in states:
        udf, method, arrays, _ = state
        dt = udf.meta.input_dtype
        if method == "process_partition":
            if dt not in whole:
                whole[dt] = native.astype(dt)
                whole[dt].flags.writeable = False
            _set_whole(udf, arrays, indices)
            udf.process_partition(whole[dt])
        else:
            tiled.append(state)
    if not tiled:
        return

    n = len(native)
    frame_size = int(np.prod(sig))
    itemsize = max(s[0].meta.input_dtype.itemsize for s in tiled)
    # tiles are shared by the UDFs of a run: the largest preference wins
    for udf, *_ in tiled:
        tile_bytes = max(tile_bytes, int(udf.get_tiling_preferences().get("total_size", 0)))
    tile_frames = max(1, min(n, tile_bytes // max(1, frame_size * itemsize)))
    scratch = {s[0].meta.input_dtype: None for s in tiled if s[0].meta.input_dtype not in whole}
    for dt in scratch:
        scratch[dt] = np.empty((tile_frames,) + tuple(sig), dtype=dt)

    for t0 in range(0, n, tile_frames):
        t1 = min(n, t0 + tile_frames)
        tiles = {}
        for udf, method, arrays, navs in tiled:
            dt = udf.meta.input_dtype
            tile = tiles.get(dt)
            if tile is None:
                if dt in whole:
                    tile = whole[dt][t0:t1]
                else:
                    tile = scratch[dt][: t1 - t0]
                    np.copyto(tile, native[t0:t1], casting="unsafe")
                    tile.flags.writeable = False  # shared by every UDF of this dtype
                tiles[dt] = tile
            meta = udf.meta
            meta._indices = indices[t0:t1]
            meta._frame = None
            rd = udf.results.__dict__
            if method == "process_tile":
                for name, arr, _ in navs:
                    rd[name] = arr[t0:t1]
                udf.process_tile(tile)
            else:
                pf = udf.process_frame
                for i in range(t1 - t0):
                    j = t0 + i
                    for name, arr, scalar in navs:
                        rd[name] = arr[j:j + 1] if scalar else arr[j]
                    meta._frame = i
                    pf(tile[i])


def tune_malloc(mmap_threshold: int = 32 << 20, trim_threshold: int = 64 << 20) -> bool:
    """Keep tile-sized NumPy temporaries on the heap in a worker process.

    glibc serves allocations above ``M_MMAP_THRESHOLD`` (128 KiB in a fresh
    process) with ``mmap`` and returns them at once, so every tile-sized
    temporary would be page-faulted and zeroed by the kernel again: StdDevUDF
    ran 6x slower in fresh workers than in a long-lived process (see
    benchmarks/README.md). Called once per worker process, never in the user's
    own process. Returns False where it does not apply (not glibc).
    """
    import ctypes
    import ctypes.util
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))
                    and libc.mallopt(M_TRIM_THRESHOLD, int(trim_threshold)))
    except (OSError, AttributeError):
        return False
