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
from typing import Any

import cloudpickle
import numpy as np

from .._corrections_kernel import get_kernel
from ..corrections import correct_tile
from ..io.dataset import Partition
from ..io.files import GeometryPartition
from ..io.shape import Shape
from ..udf.backends import converter
from ..udf.base import BufferNamespace, process_method_of
from ..udf.buffers import BufferWrapper, zeros
from ..udf.meta import Slice, UDFMeta
from .plan import validate_buffers

__all__ = ["PartitionTask", "PartitionResult", "run_partition", "DEFAULT_TILE_BYTES"]

#: Frames per tile are chosen so that one tile of input is about this big
#: (fits the L2 cache of current CPUs together with the buffers).
#: 4 MiB: SumUDF and SumSigUDF run 7-8% faster than with 1 MiB tiles (fewer
#: Python calls per GiB); process_frame UDFs are unaffected (benchmarks/README.md)
DEFAULT_TILE_BYTES = 4 << 20

#: With corrections by the compiled kernel every tile is written once more
#: (corrected) and read back by the UDFs: tiles of at most this size keep that
#: corrected copy in the L2 cache instead of sending it through main memory
#: (benchmarks/README.md, "Detector corrections"). The NumPy path keeps the
#: default size: its three passes and the patching cost more per tile.
CORRECTED_TILE_BYTES = 1 << 20

#: Large frames (1024x1024 float32 is a whole 4 MiB tile) still get tiles of
#: several frames, up to this size: with one frame per tile, SumUDF's reduction
#: over the tile is a frame-sized temporary and a second pass per frame, 2.5x
#: the cost per GiB of 8-frame tiles (benchmarks/README.md, "Cost as the scan
#: grows").
MIN_TILE_FRAMES = 8
MAX_TILE_BYTES = 32 << 20


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
    backends: tuple | None = None  # array backend per UDF (chosen on the main node)
    corrections: Any = None  # PreparedCorrections (udfwidgets.corrections) or None

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


def make_meta(
    udf,
    shape: Shape,
    dtype,
    roi_flat,
    num_frames: int,
    on_main_node: bool = False,
    array_backend: str = "numpy",
) -> UDFMeta:
    input_dtype = np.result_type(udf.get_preferred_input_dtype(), dtype)
    roi = None if roi_flat is None else roi_flat.reshape(shape.nav)
    return UDFMeta(
        shape,
        dtype,
        input_dtype,
        roi,
        Shape((num_frames,) + tuple(shape.sig), sig_dims=shape.sig_dims),
        on_main_node=on_main_node,
        array_backend=array_backend,
    )


def aux_params(udf) -> list[tuple[str, BufferWrapper]]:
    """The UDF's parameters that are nav-kind aux data (``UDF.aux_data``)."""
    return [
        (k, v) for k, v in udf._kwargs.items() if isinstance(v, BufferWrapper) and v.kind == "nav"
    ]


def _set_whole(
    udf, arrays: dict[str, np.ndarray], indices: np.ndarray, aux=None, start: int = 0
) -> None:
    udf.results.__dict__.update(arrays)
    if aux:
        udf.params._kwargs.update(aux)
    udf.meta._indices = indices
    udf.meta._frame = None
    udf.meta._start = start


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
        indices = np.flatnonzero(task.roi[part.start : part.stop]) + part.start
    n = len(indices)
    sig = tuple(shape.sig)
    # roi-compressed position of the partition's first selected frame (meta.slice)
    base = part.start if task.roi is None else int(np.count_nonzero(task.roi[: part.start]))
    backends = task.backends or ("numpy",) * len(udfs)

    corr = task.corrections
    dtype = part.dtype if corr is None else corr.dtype  # corrected frames are float
    states = []  # (udf, method, arrays, views to set per block, aux, convert)
    for udf, backend in zip(udfs, backends):
        udf.meta = make_meta(udf, shape, dtype, task.roi, n, array_backend=backend)
        udf.meta._indices = indices
        udf.meta._start = base
        udf.meta._partition_start = base
        decls = validate_buffers(udf)
        arrays = {
            name: zeros(d.shape_for(n, sig), d.dtype)
            for name, d in decls.items()
            if d.use != "result_only"
        }
        rd: dict[str, np.ndarray | None] = {
            name: None for name, d in decls.items() if d.use == "result_only"
        }
        rd.update(arrays)
        udf.results = BufferNamespace(rd, type(udf).__name__)
        # nav buffers and nav aux data are views for the current block: (target, name, array, scalar)
        navs = [
            (udf.results.__dict__, name, arrays[name], not decls[name].extra_shape)
            for name in arrays
            if decls[name].kind == "nav"
        ]
        aux = {name: buf.raw_data[indices] for name, buf in aux_params(udf)}
        if aux:
            udf.params._kwargs.update(aux)
            navs += [(udf.params._kwargs, name, arr, arr.ndim == 1) for name, arr in aux.items()]
        udf.task_data = SimpleNamespace(**(udf.get_task_data() or {}))
        _set_whole(udf, arrays, indices, aux, base)
        udf.preprocess()
        states.append((udf, process_method_of(udf), arrays, navs, aux, converter(backend)))

    if n:
        native: np.ndarray | None = None
        try:
            if corr is None and isinstance(part, GeometryPartition) and part.stored_order_only:
                # big-endian frames: each tile is swapped as it is converted for the UDFs
                # (UDFs never see the file's byte order: none asks for that dtype)
                native = (
                    part.read_stored(part.start, part.stop)
                    if task.roi is None
                    else part.take_stored(indices)
                )
            else:
                native = (
                    part.read(part.start, part.stop) if task.roi is None else part.take(indices)
                )
            native = native.view(np.ndarray)  # plain ndarray: memmap slicing is slow
            native.flags.writeable = False
            tile_depth = getattr(part, "tile_depth", None)
            tile_sig = getattr(part, "tile_sig", None)
            _process(
                states, native, indices, sig, task.tile_bytes, base, tile_depth, corr, tile_sig
            )
        finally:
            native = None
            part.close()

    out = []
    for udf, _, arrays, _, aux, _ in states:
        _set_whole(udf, arrays, indices, aux, base)
        udf.postprocess()
        out.append(arrays)
    return PartitionResult(part.index, n, out)


def _process(
    states,
    native: np.ndarray,
    indices: np.ndarray,
    sig,
    tile_bytes: int,
    base: int = 0,
    tile_depth: int | None = None,
    corr=None,
    tile_sig: tuple[int, ...] | None = None,
) -> None:
    # with corrections no UDF sees the native frames: every dtype gets corrected copies
    whole: dict[np.dtype, np.ndarray] = {native.dtype: native} if corr is None else {}
    tiled = []
    for state in states:
        udf, method, arrays, _, aux, convert = state
        dt = udf.meta.input_dtype
        if method == "process_partition":
            if dt not in whole:
                whole[dt] = (
                    native.astype(dt)
                    if corr is None
                    else correct_tile(native, corr, out=np.empty(native.shape, dtype=dt))
                )
                whole[dt].flags.writeable = False
            _set_whole(udf, arrays, indices, aux, base)
            udf.process_partition(whole[dt] if convert is None else convert(whole[dt]))
        else:
            tiled.append(state)
    if not tiled:
        return

    n = len(native)
    sliced = tile_sig is not None and _accept_sig_sliced(states, tiled)
    # UDFs that take the corrections themselves get the raw tiles (udfwidgets.corrections,
    # "UDFs that correct their own tiles"); the others the corrected tile, made once
    raw = [None if sliced else _raw_processor(s[0], s[1], s[5], corr, native.dtype) for s in tiled]
    if tile_depth:  # the dataset fixes the tile depth (MemoryDataSet(tileshape=...))
        tile_frames = max(1, min(n, int(tile_depth)))
    else:
        frame_size = int(np.prod(sig))
        itemsize = max(s[0].meta.input_dtype.itemsize for s in tiled)
        # tiles are shared by the UDFs of a run: the largest preference wins
        for udf, *_ in tiled:
            tile_bytes = max(tile_bytes, int(udf.get_tiling_preferences().get("total_size", 0)))
        if corr is not None and get_kernel() is not None and None in raw:
            tile_bytes = min(tile_bytes, CORRECTED_TILE_BYTES)
        frame_bytes = max(1, frame_size * itemsize)
        tile_frames = tile_bytes // frame_bytes
        if corr is None and tile_frames <= 1:  # frames as large as a whole tile
            tile_frames = min(MIN_TILE_FRAMES, MAX_TILE_BYTES // frame_bytes)
        tile_frames = max(1, min(n, tile_frames))
    scratch: dict[np.dtype, np.ndarray] = {}
    for s, fn in zip(tiled, raw):
        dt = s[0].meta.input_dtype
        if fn is None and dt not in whole and dt not in scratch:
            scratch[dt] = np.empty((tile_frames,) + tuple(sig), dtype=dt)

    if sliced:
        _process_sig_sliced(
            tiled, native, indices, sig, base, tile_frames, tile_sig, whole, scratch, corr
        )
        return

    for t0 in range(0, n, tile_frames):
        t1 = min(n, t0 + tile_frames)
        tiles: dict[np.dtype, np.ndarray] = {}
        for (udf, method, _arrays, navs, _, convert), fn in zip(tiled, raw):
            dt = udf.meta.input_dtype
            tile = native[t0:t1] if fn is not None else tiles.get(dt)
            if tile is None:
                tile = tiles[dt] = _tile(dt, t0, t1, native, whole, scratch, corr)
            if convert is not None:  # a sparse backend: this UDF's own copy of the tile
                tile = convert(tile)
            meta = udf.meta
            meta._indices = indices[t0:t1]
            meta._frame = None
            meta._start = base + t0
            if method == "process_tile":
                for d, name, arr, _ in navs:
                    d[name] = arr[t0:t1]
                (udf.process_tile if fn is None else fn)(tile)
            else:
                pf = udf.process_frame
                for i in range(t1 - t0):
                    j = t0 + i
                    for d, name, arr, scalar in navs:
                        d[name] = arr[j : j + 1] if scalar else arr[j]
                    meta._frame = i
                    pf(tile[i])


def _raw_processor(udf, method, convert, corr, raw_dtype):
    """The UDF's own function for raw tiles when it takes the corrections itself, else None.

    Only for process_tile UDFs on NumPy tiles that define ``raw_tile_processor``
    in the class that defines their ``process_tile`` (see
    :mod:`udfwidgets.corrections`), and only when the run has corrections.
    """
    hook = getattr(udf, "raw_tile_processor", None)
    if corr is None or hook is None or method != "process_tile" or convert is not None:
        return None
    if _defined_in(type(udf), "process_tile") is not _defined_in(type(udf), "raw_tile_processor"):
        return None  # a subclass with its own process_tile: the hook does not know its work
    return hook(corr, raw_dtype)


def _defined_in(cls: type, name: str) -> type | None:
    """The class of ``cls``'s MRO whose body defines attribute ``name``."""
    return next((c for c in cls.__mro__ if name in vars(c)), None)


def _tile(dt, t0, t1, native, whole, scratch, corr) -> np.ndarray:
    """Frames ``[t0, t1)`` of the partition in dtype ``dt``, shared by the run's UDFs of that dtype.

    A view when the partition is already in ``dt`` (``whole``); otherwise
    converted (and corrected) into this dtype's scratch tile, read-only.
    """
    if dt in whole:
        return whole[dt][t0:t1]
    tile = scratch[dt][: t1 - t0]
    if corr is None:
        np.copyto(tile, native[t0:t1], casting="unsafe")
    else:
        correct_tile(native[t0:t1], corr, out=tile)
    tile.flags.writeable = False
    return tile


def sig_parts(sig: tuple[int, ...], tile_sig: tuple[int, ...]) -> list[tuple[slice, ...]]:
    """The parts of a frame of shape ``sig`` that tiles of signal shape ``tile_sig``
    cover, in C order (the last ones at the edges may be smaller).

    Examples
    --------
    >>> sig_parts((3, 5), (2, 3))
    [(slice(0, 2, None), slice(0, 3, None)), (slice(0, 2, None), slice(3, 5, None)), (slice(2, 3, None), slice(0, 3, None)), (slice(2, 3, None), slice(3, 5, None))]
    """
    import itertools

    starts = itertools.product(*(range(0, s, max(1, t)) for s, t in zip(sig, tile_sig)))
    return [
        tuple(slice(o, min(o + t, s)) for o, t, s in zip(origin, tile_sig, sig))
        for origin in starts
    ]


def _accept_sig_sliced(states, tiled) -> bool:
    """Tiles may split the frame: every UDF uses process_tile on NumPy tiles and accepts them."""
    if len(tiled) != len(states):  # a process_partition UDF needs whole frames
        return False
    return all(
        method == "process_tile" and convert is None and type(udf).ACCEPTS_SIG_SLICED_TILES
        for udf, method, _arrays, _navs, _aux, convert in tiled
    )


def _process_sig_sliced(
    tiled, native, indices, sig, base, tile_frames, tile_sig, whole, scratch, corr
) -> None:
    """process_tile over tiles that cover part of the frame (LiberTEM's sig-sliced tiles).

    Frames are read (and corrected, converted) in whole-frame blocks of
    ``tile_frames`` as usual; every UDF then gets views of each part of the
    frame in turn, with ``meta.sig_slice`` set and its ``sig`` buffers cut to
    that part.
    """
    parts = sig_parts(tuple(sig), tuple(tile_sig))
    origins = [tuple(s.start for s in p) for p in parts]
    scheme = tuple(
        Slice(o, Shape(tuple(s.stop - s.start for s in p), sig_dims=len(p)))
        for o, p in zip(origins, parts)
    )
    sig_bufs = []
    for udf, _method, arrays, *_ in tiled:
        udf.meta._tiling_scheme = scheme
        decls = udf._validated_buffers()
        sig_bufs.append([(name, arr) for name, arr in arrays.items() if decls[name].kind == "sig"])
    n = len(native)
    try:
        for t0 in range(0, n, tile_frames):
            t1 = min(n, t0 + tile_frames)
            tiles: dict[np.dtype, np.ndarray] = {}
            for udf, *_ in tiled:
                dt = udf.meta.input_dtype
                if dt not in tiles:
                    tiles[dt] = _tile(dt, t0, t1, native, whole, scratch, corr)
            for k, part in enumerate(parts):
                cut = (slice(None),) + part
                for (udf, _method, _arrays, navs, _aux, _convert), bufs in zip(tiled, sig_bufs):
                    meta = udf.meta
                    meta._indices = indices[t0:t1]
                    meta._frame = None
                    meta._start = base + t0
                    meta._sig = part
                    meta._sig_origin = origins[k]
                    meta.tiling_scheme_idx = k
                    for d, name, arr, _ in navs:
                        d[name] = arr[t0:t1]
                    results = udf.results.__dict__
                    for name, arr in bufs:
                        results[name] = arr[part]
                    udf.process_tile(tiles[meta.input_dtype][cut])
    finally:
        for udf, _method, arrays, *_ in tiled:
            udf.meta._sig = None
            udf.meta._sig_origin = ()
            udf.meta.tiling_scheme_idx = 0
            udf.meta._tiling_scheme = None
            udf.results.__dict__.update(arrays)


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
        return bool(
            libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))
            and libc.mallopt(M_TRIM_THRESHOLD, int(trim_threshold))
        )
    except (OSError, AttributeError):
        return False
