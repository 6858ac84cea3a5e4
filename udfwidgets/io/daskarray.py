"""Any dask array as a dataset: ``ctx.load("dask", array=..., sig_dims=2)``.

The array is never computed whole. Its navigation axes are flattened
(``array.reshape((n_frames, *sig))``, with the signal axes rechunked to whole
frames first when they are split), and partitions follow the chunks of the
flattened array: neighbouring chunks are merged into partitions of about
128 MiB (two or more per worker), and each partition carries only its own
slice of the graph (culled), computed in the worker that processes it with
dask's synchronous scheduler.

HyperSpy/pyxem lazy signals and rosettasciio ``lazy=True`` reads are dask
arrays in ``signal.data`` (see docs/formats-hdf5.md). Graphs that hold open
h5py objects cannot travel to other processes: use the ``"inline"`` or
``"threads"`` executor for them, or open the file with ``ctx.load("hdf5")``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .chunked import dataset_repr, split_evenly
from .dataset import (
    DataSet,
    DataSetError,
    Partition,
    check_sig_dims,
    default_num_partitions,
)
from .geometry import resolve
from .shape import Shape

__all__ = ["DaskDataSet"]


def _is_dask_array(obj) -> bool:
    return hasattr(obj, "__dask_graph__") and hasattr(obj, "chunks") and hasattr(obj, "ndim")


class DaskPartition(Partition):
    """A run of frames whose graph (only its own chunks) is computed in the worker."""

    def __init__(self, shape, dtype, start, stop, index, *, block, file_lo, geometry):
        super().__init__(shape, dtype, start, stop, index)
        self._block = block  # dask array of file frames [file_lo, file_lo + len(block))
        self._blob = None
        self.file_lo = file_lo
        self.geometry = geometry

    def __getstate__(self):
        import cloudpickle

        state = dict(self.__dict__)
        if self._blob is None:
            try:
                self._blob = cloudpickle.dumps(self._block)
            except Exception as e:  # noqa: BLE001 - any unpicklable object in the graph
                raise DataSetError(
                    f"the dask array's graph cannot be sent to another process ({e}). Graphs "
                    "that hold open files (h5py datasets, e.g. HyperSpy lazy signals) work "
                    "with Context(executor='inline') or 'threads'; or open the file itself "
                    "with ctx.load('hdf5', path=...)"
                ) from None
        state["_blob"] = self._blob
        state["_block"] = None
        return state

    @property
    def block(self):
        if self._block is None:
            import cloudpickle

            self._block = cloudpickle.loads(self._blob)
        return self._block

    def _compute(self, x) -> np.ndarray:
        return np.asarray(x.compute(scheduler="synchronous"), dtype=self.dtype)

    def _read_file(self, lo: int, hi: int) -> np.ndarray:
        b = self.block
        a, z = lo - self.file_lo, hi - self.file_lo
        return self._compute(b if (a, z) == (0, b.shape[0]) else b[a:z])

    def _take_file(self, file_idx: np.ndarray) -> np.ndarray:
        return self._compute(self.block[np.asarray(file_idx) - self.file_lo])

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.geometry.read(self._read_file, start, stop, self.shape.sig, self.dtype)

    def take(self, indices: np.ndarray) -> np.ndarray:
        return self.geometry.take(self._take_file, indices, self.shape.sig, self.dtype)


class DaskDataSet(DataSet):
    """A dask array (1 to 3 navigation axes, then the signal), computed partition by partition.

    Parameters
    ----------
    array : dask.array.Array
        The frames, navigation axes first.
    sig_dims : int
        Trailing signal dimensions, 1 or 2.
    nav_shape, sync_offset
        See :mod:`udfwidgets.io.geometry`; the array's own navigation shape is
        the default.
    num_partitions : int, optional
        Override the number of partitions (by default chunks are merged into
        partitions of about 128 MiB).

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sum import SumUDF
    >>> arr = da.from_array(np.ones((8, 8, 16, 16), np.float32), chunks=(2, 8, 16, 16))
    >>> ds = Context(executor="inline").load("dask", array=arr)
    >>> ds.partition_bounds(num_workers=2)
    [(0, 16), (16, 32), (32, 48), (48, 64)]
    >>> float(Context(executor="inline").run_udf(dataset=ds, udf=SumUDF())["intensity"].data.sum())
    16384.0
    """

    kind = "dask"

    def __init__(
        self,
        array=None,
        sig_dims: int = 2,
        nav_shape: Sequence[int] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
    ):
        super().__init__(num_partitions)
        if array is None or not _is_dask_array(array):
            raise DataSetError(
                'ctx.load("dask", array=...) needs a dask array (for a NumPy array use '
                f'ctx.load("memory", data=...)); got {type(array).__name__}'
            )
        check_sig_dims(array.ndim, sig_dims)
        if any(math.isnan(c) for dims in array.chunks for c in dims):
            raise DataSetError(
                "the dask array has unknown chunk sizes; call array.compute_chunk_sizes() first"
            )
        self.dtype = np.dtype(array.dtype)
        if self.dtype.hasobject:
            raise DataSetError("dask arrays of dtype object are not supported")
        self.array = array
        nav_dims = array.ndim - sig_dims
        self.file_nav = tuple(int(n) for n in array.shape[:nav_dims])
        sig = tuple(int(n) for n in array.shape[nav_dims:])
        self.rechunked = any(len(c) > 1 for c in array.chunks[nav_dims:])
        frames = (
            array.rechunk({i: -1 for i in range(nav_dims, array.ndim)}) if self.rechunked else array
        )
        n_file = math.prod(self.file_nav)
        self._flat = frames.reshape((n_file,) + sig) if nav_dims > 1 else frames
        self.geometry = resolve(
            n_file, nav_shape, sync_offset, file_nav_shape=self.file_nav, what="the dask array"
        )
        self.sync_offset = self.geometry.sync_offset
        self.shape = Shape(self.geometry.nav_shape + sig, sig_dims=sig_dims)
        self.metadata = {
            "format": "dask",
            "chunks": tuple(array.chunksize),
            "rechunked_sig": self.rechunked,
            "flat_chunks": len(self._flat.chunks[0]),
        }

    def partition_bounds(self, num_workers: int) -> list[tuple[int, int]]:
        """Whole chunks of the flattened array, merged to about 128 MiB per partition."""
        n_frames = self.shape.nav.size
        file_edges = np.cumsum((0,) + tuple(self._flat.chunks[0]))
        inner = file_edges[1:-1] - self.sync_offset
        inner = inner[(inner > 0) & (inner < n_frames)]
        edges = [0] + [int(e) for e in inner] + [n_frames]
        n = self.num_partitions or min(
            default_num_partitions(self.nbytes, n_frames, num_workers), len(edges) - 1
        )
        out = split_evenly(edges, max(1, min(n, n_frames)))
        return [(a, b) for a, b in zip(out[:-1], out[1:]) if b > a]

    def _make_partition(self, start, stop, index):
        import dask

        lo, hi, _, _ = self.geometry.file_range(start, stop)
        (block,) = dask.optimize(self._flat[lo:hi])  # culled to this partition's chunks
        return DaskPartition(
            self.shape,
            self.dtype,
            start,
            stop,
            index,
            block=block,
            file_lo=lo,
            geometry=self.geometry,
        )

    def _repr_items(self) -> dict:
        return {"chunks": tuple(self.array.chunksize), "blocks": self.array.numblocks}

    def __repr__(self) -> str:
        return dataset_repr(self, self._repr_items())
