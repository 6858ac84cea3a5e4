"""What a UDF knows about the data it is processing: ``self.meta``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io.shape import Shape

__all__ = ["UDFMeta", "Slice"]


@dataclass(frozen=True)
class Slice:
    """Where a block of frames (partition, tile or frame) lies, as in LiberTEM.

    ``origin`` is ``(position, 0, ...)`` and ``shape`` is a
    :class:`~udfwidgets.io.shape.Shape` ``(frames, *sig)``, both in the
    run's flat and *roi-compressed* navigation layout: ``position`` counts
    only selected frames (without an roi it is the flat nav index). So
    ``slice.get(buf)`` cuts a block's rows out of a flat roi-compressed array,
    such as a nav result's ``raw_data`` or aux data.

    Examples
    --------
    >>> from udfwidgets.io.shape import Shape
    >>> s = Slice((4, 0, 0), Shape((2, 3, 3), sig_dims=2))
    >>> s.get()
    (slice(4, 6, None), slice(0, 3, None), slice(0, 3, None))
    >>> s.get(sig_only=True), s.get(nav_only=True)
    ((slice(0, 3, None), slice(0, 3, None)), (slice(4, 6, None),))
    >>> s.get(np.arange(10)).tolist()
    [4, 5]
    """

    origin: tuple[int, ...]
    shape: Shape

    def get(self, arr: np.ndarray | None = None, sig_only: bool = False, nav_only: bool = False):
        """The slices of this block (a tuple), or ``arr`` cut with them.

        ``sig_only`` keeps only the signal part, ``nav_only`` only the
        navigation part; with ``arr`` given, it is indexed with the slices
        (``arr[slices]``; nav slices index its first axis).
        """
        if sig_only and nav_only:
            raise ValueError("give at most one of sig_only=True and nav_only=True")
        slices = tuple(slice(o, o + n) for o, n in zip(self.origin, self.shape))
        nav_dims = len(self.shape) - self.shape.sig_dims
        if sig_only:
            slices = slices[nav_dims:]
        elif nav_only:
            slices = slices[:nav_dims]
        if arr is None:
            return slices
        if sig_only:
            return arr[(Ellipsis,) + slices]
        return arr[slices[: np.ndim(arr)]]  # a flat array: its leading (nav) axis

    @property
    def nav(self) -> Slice:
        """The navigation part: ``Slice((position,), Shape((frames,), sig_dims=0))``.

        Examples
        --------
        >>> from udfwidgets.io.shape import Shape
        >>> Slice((4, 0, 2), Shape((2, 3, 3), sig_dims=2)).nav
        Slice(origin=(4,), shape=(2,))
        """
        nav_dims = len(self.shape) - self.shape.sig_dims
        return Slice(tuple(self.origin[:nav_dims]), self.shape.nav)

    @property
    def sig(self) -> Slice:
        """The signal part: the origin and shape of the part of the frame this block covers.

        Examples
        --------
        >>> from udfwidgets.io.shape import Shape
        >>> Slice((4, 0, 2), Shape((2, 3, 3), sig_dims=2)).sig
        Slice(origin=(0, 2), shape=(3, 3))
        """
        nav_dims = len(self.shape) - self.shape.sig_dims
        return Slice(tuple(self.origin[nav_dims:]), self.shape.sig)

    def __repr__(self) -> str:
        return f"Slice(origin={tuple(self.origin)}, shape={tuple(self.shape)})"


class UDFMeta:
    """Read-only facts about a run, available as ``self.meta`` in every UDF method.

    Attributes
    ----------
    dataset_shape : Shape
        The full dataset shape (``.nav``, ``.sig``).
    dataset_dtype : numpy.dtype
        The dtype the dataset stores.
    input_dtype : numpy.dtype
        The dtype frames arrive in: ``np.result_type(udf.get_preferred_input_dtype(),
        dataset_dtype)``, float32 by default.
    roi : numpy.ndarray of bool or None
        The nav-shaped roi of the run, or None.
    partition_shape : Shape
        ``(selected frames in this partition, *sig)``; on the main node the
        whole selection.
    on_main_node : bool
        True while the main node sets the run up (``get_result_buffers``,
        ``get_task_data``, ``preprocess`` of the buffers partitions merge into),
        False on the workers that process partitions.
    device_class : str
        Always ``"cpu"`` (udfwidgets does not use GPUs).
    array_backend : str
        The backend frames arrive in (see :meth:`UDF.get_backends`):
        ``"numpy"`` unless the UDF asks only for sparse backends.

    Examples
    --------
    Inside a UDF::

        def process_frame(self, frame):
            y, x = self.meta.coordinates[0]
            self.results.where[:] = y * 1000 + x
    """

    device_class = "cpu"

    def __init__(
        self,
        dataset_shape: Shape,
        dataset_dtype,
        input_dtype,
        roi,
        partition_shape: Shape,
        on_main_node: bool = False,
        array_backend: str = "numpy",
    ):
        self.array_backend = array_backend
        self.dataset_shape = dataset_shape
        self.dataset_dtype = np.dtype(dataset_dtype)
        self.input_dtype = np.dtype(input_dtype)
        self.roi = roi
        self.partition_shape = partition_shape
        self.on_main_node = on_main_node
        # flat nav indices of the current block of frames, and the frame within it
        self._indices: np.ndarray = np.zeros(0, dtype=np.int64)
        self._frame: int | None = None
        self._start = 0  # roi-compressed position of the block's first frame
        self._partition_start = 0  # roi-compressed position of the partition's first frame
        self._valid_nav: np.ndarray | None = None  # flat, full nav: frames merged so far
        # the part of the frame the current tile covers: None (whole frames) or its
        # slices (tiles that split the frame, see sig_slice); _sig_origin is its start
        self._sig: tuple[slice, ...] | None = None
        self._sig_origin: tuple[int, ...] = ()
        self._tiling_scheme: tuple[Slice, ...] | None = None  # set for sig-sliced tiles
        #: index into :attr:`tiling_scheme` of the current tile's part of the frame
        self.tiling_scheme_idx = 0

    @property
    def coordinates(self) -> np.ndarray:
        """Nav coordinates of the current frame(s), shape ``(frames, nav_dims)``."""
        idx = self._indices if self._frame is None else self._indices[self._frame : self._frame + 1]
        return np.stack(np.unravel_index(idx, self.dataset_shape.nav), axis=1).astype(np.int64)

    @property
    def slice(self) -> Slice:
        """The current block of frames (partition, tile or frame) as a :class:`Slice`,
        in roi-compressed coordinates; its ``.sig`` is :attr:`sig_slice`."""
        sig_slice = self.sig_slice
        if self._frame is None:
            start, n = self._start, len(self._indices)
        else:
            start, n = self._start + self._frame, 1
        sig = tuple(sig_slice.shape)
        return Slice((start,) + tuple(sig_slice.origin), Shape((n,) + sig, sig_dims=len(sig)))

    @property
    def _partition_slice(self) -> Slice:
        """The current partition as a :class:`Slice` (whole frames; LiberTEM's name)."""
        sig = tuple(self.dataset_shape.sig)
        n = self.partition_shape[0]
        start = self._partition_start
        return Slice((start,) + (0,) * len(sig), Shape((n,) + sig, sig_dims=len(sig)))

    @property
    def sig_slice(self) -> Slice:
        """The part of the frame the current tile covers, a :class:`Slice` of the signal.

        The whole frame, except in ``process_tile`` when the dataset's
        ``tileshape`` splits the frame (``MemoryDataSet(tileshape=(d, sy, sx))``
        with a smaller signal part) and every UDF of the run accepts such
        tiles (:attr:`UDF.ACCEPTS_SIG_SLICED_TILES`): then tiles cover
        ``sig_slice.get()`` of the frame, and the UDF's ``sig`` buffers are
        views of that part.
        """
        sig = tuple(self.dataset_shape.sig)
        if self._sig is None:
            return Slice((0,) * len(sig), Shape(sig, sig_dims=len(sig)))
        shape = tuple(s.stop - s.start for s in self._sig)
        return Slice(self._sig_origin, Shape(shape, sig_dims=len(shape)))

    @property
    def tiling_scheme(self) -> tuple[Slice, ...]:
        """The parts of the frame tiles cover, in the order they come, as
        :class:`Slice` objects of the signal: ``tiling_scheme[tiling_scheme_idx]``
        is :attr:`sig_slice`. One part, the whole frame, unless tiles split the frame.
        """
        if self._tiling_scheme is not None:
            return self._tiling_scheme
        sig = tuple(self.dataset_shape.sig)
        return (Slice((0,) * len(sig), Shape(sig, sig_dims=len(sig))),)

    def get_valid_nav_mask(self, full_nav: bool = False) -> np.ndarray | None:
        """Flat bool mask of the frames merged so far (on the main node, in ``merge``
        and ``get_results``); None on workers.

        Roi-compressed (one entry per selected frame) unless ``full_nav=True``,
        which gives one entry per navigation position.
        """
        valid = self._valid_nav
        if valid is None:
            return None
        if full_nav or self.roi is None:
            return valid.copy()
        return valid[self.roi.reshape(-1)]

    @property
    def sig_shape(self) -> Shape:
        return self.dataset_shape.sig

    def __repr__(self) -> str:
        return (
            f"<UDFMeta dataset_shape={tuple(self.dataset_shape)} input_dtype={self.input_dtype} "
            f"partition_shape={tuple(self.partition_shape)}>"
        )
