"""What a UDF knows about the data it is processing: ``self.meta``."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io.shape import Shape

__all__ = ["UDFMeta", "Slice"]


@dataclass(frozen=True)
class Slice:
    """Where a block of frames lies in the dataset.

    ``origin`` is ``(first flat nav index, 0, ...)`` and ``shape`` is
    ``(frames, *sig)``, both in the dataset's flat-navigation layout. With an
    roi, not every frame in the range is selected: :attr:`UDFMeta.coordinates`
    gives the exact positions.

    Examples
    --------
    >>> from udfwidgets.io.shape import Shape
    >>> s = Slice(origin=(4, 0, 0), shape=Shape((2, 8, 8), sig_dims=2))
    >>> s.origin[0], tuple(s.shape)
    (4, (2, 8, 8))
    """

    origin: tuple[int, ...]
    shape: Shape


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
        Always ``"cpu"``; for LiberTEM compatibility.
    array_backend : str
        Always ``"numpy"``; for LiberTEM compatibility.

    Examples
    --------
    Inside a UDF::

        def process_frame(self, frame):
            y, x = self.meta.coordinates[0]
            self.results.where[:] = y * 1000 + x
    """

    device_class = "cpu"
    array_backend = "numpy"

    def __init__(self, dataset_shape: Shape, dataset_dtype, input_dtype, roi, partition_shape: Shape,
                 on_main_node: bool = False):
        self.dataset_shape = dataset_shape
        self.dataset_dtype = np.dtype(dataset_dtype)
        self.input_dtype = np.dtype(input_dtype)
        self.roi = roi
        self.partition_shape = partition_shape
        self.on_main_node = on_main_node
        # flat nav indices of the current block of frames, and the frame within it
        self._indices: np.ndarray = np.zeros(0, dtype=np.int64)
        self._frame: int | None = None

    @property
    def coordinates(self) -> np.ndarray:
        """Nav coordinates of the current frame(s), shape ``(frames, nav_dims)``."""
        idx = self._indices if self._frame is None else self._indices[self._frame:self._frame + 1]
        return np.stack(np.unravel_index(idx, self.dataset_shape.nav), axis=1).astype(np.int64)

    @property
    def slice(self) -> Slice:
        """The current block of frames (partition, tile or frame) as a :class:`Slice`."""
        idx = self._indices if self._frame is None else self._indices[self._frame:self._frame + 1]
        sig = tuple(self.dataset_shape.sig)
        if len(idx) == 0:
            return Slice((0,) * (1 + len(sig)), Shape((0,) + sig, sig_dims=len(sig)))
        first, last = int(idx[0]), int(idx[-1])
        return Slice((first,) + (0,) * len(sig), Shape((last - first + 1,) + sig, sig_dims=len(sig)))

    @property
    def sig_shape(self) -> Shape:
        return self.dataset_shape.sig

    def __repr__(self) -> str:
        return (f"<UDFMeta dataset_shape={tuple(self.dataset_shape)} input_dtype={self.input_dtype} "
                f"partition_shape={tuple(self.partition_shape)}>")
