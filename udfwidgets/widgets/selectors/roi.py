"""Draw a region of interest on a navigation image, or a detector on a diffraction pattern.

:class:`RoiSelector` yields ``selector.roi``, a bool array of the navigation
shape for ``ctx.run_udf(..., roi=selector.roi)``; :class:`SigMaskSelector`
yields ``selector.mask``, a bool array of the signal shape for a virtual
detector. Both share one base class (:class:`.base.MaskSelectorBase`); shapes
follow :mod:`udfwidgets.masks` (``centre=(y, x)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import traitlets

from .base import MaskSelectorBase

__all__ = ["RoiSelector", "SigMaskSelector"]


class RoiSelector(MaskSelectorBase):
    """Select navigation positions by drawing on a navigation image.

    Parameters
    ----------
    image : array_like or BufferWrapper
        A 2D image of the navigation shape, e.g. the ``intensity`` of a
        :class:`~udfwidgets.udf.sumsigudf.SumSigUDF` run.
    title : str, optional
        Axes title.
    cmap : str
        Colour map of the image.
    scale : {"linear", "log", "gamma"}, optional
        Colour scale (default linear: a navigation image).
    tool : {"rectangle", "ellipse", "polygon", "lasso", "point"}
        The tool active at start (default "rectangle").
    mode : {"add", "subtract", "replace"}
        How a new shape combines with the selection.
    figsize : tuple of float
        Figure size in inches.
    calibration : Calibration, optional
        Physical units of the axes (tick labels, axis labels, a scale bar and
        the read-out in units; see :mod:`udfwidgets.widgets.axes`). Default:
        the calibration of ``image`` when it is a result buffer; none for a
        plain array (pixels).

    Attributes
    ----------
    roi : numpy.ndarray of bool
        The selection, of the image's shape; an observable traitlet
        (``selector.observe(callback, "roi")``), read-only in place: assign a
        new array to change it.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets import Context
    >>> from udfwidgets.udf.sum import SumUDF
    >>> from udfwidgets.widgets import RoiSelector
    >>> ctx = Context(executor="inline")
    >>> ds = ctx.load("memory", data=np.ones((4, 4, 2, 2), dtype=np.float32))
    >>> sel = RoiSelector(np.zeros((4, 4)))
    >>> _ = sel.set_rectangle(top=0, left=0, height=2, width=2)
    >>> ctx.run_udf(dataset=ds, udf=SumUDF(), roi=sel.roi)["intensity"].data
    array([[4., 4.],
           [4., 4.]], dtype=float32)
    """

    _value_name = "roi"
    _tools = ("rectangle", "ellipse", "polygon", "lasso", "point")
    _what = "navigation image"
    _side = "nav"
    _unit = "scan positions"

    roi = traitlets.Any(None, allow_none=True)

    @traitlets.validate("roi")
    def _check_roi(self, proposal):
        return self._validate_mask(proposal["value"])

    @traitlets.observe("roi")
    def _roi_changed(self, change):
        self._selection_changed(change)

    @classmethod
    def for_dataset(cls, ctx: Any, dataset: Any, **kwargs) -> RoiSelector:
        """Run :class:`~udfwidgets.udf.sumsigudf.SumSigUDF` on ``dataset`` and select on its image.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets import Context
        >>> from udfwidgets.widgets import RoiSelector
        >>> ctx = Context(executor="inline")
        >>> ds = ctx.load("memory", data=np.ones((3, 5, 2, 2)))
        >>> RoiSelector.for_dataset(ctx, ds).roi.shape
        (3, 5)
        """
        from ...udf.sumsigudf import SumSigUDF

        nav = tuple(dataset.shape.nav)
        if len(nav) != 2:
            raise ValueError(
                f"RoiSelector.for_dataset needs a 2D navigation shape, the dataset has {nav}"
            )
        image = ctx.run_udf(dataset=dataset, udf=SumSigUDF())["intensity"]
        kwargs.setdefault("title", "total intensity of each frame")
        return cls(image, **kwargs)


class SigMaskSelector(MaskSelectorBase):
    """Draw a virtual detector (disk, ring, rectangle, polygon) on a diffraction pattern.

    Parameters are those of :class:`RoiSelector`; ``image`` is of the signal
    shape and ``tool`` one of ``"disk"``, ``"ring"``, ``"rectangle"``,
    ``"polygon"``. The ring tool draws the outer circle; its inner radius is
    the ``inner/outer`` slider (trait :attr:`ring_ratio`) times the outer one.
    A diffraction pattern starts in log scale (``scale=`` to change it).

    Attributes
    ----------
    mask : numpy.ndarray of bool
        The detector, of the signal shape; an observable traitlet.

    Examples
    --------
    >>> import numpy as np
    >>> from udfwidgets.widgets import SigMaskSelector
    >>> sel = SigMaskSelector(np.zeros((5, 5)))
    >>> sel.set_ring(centre=(2, 2), inner=0.5, outer=1).astype(int)[1:4, 1:4]
    array([[0, 1, 0],
           [1, 0, 1],
           [0, 1, 0]])
    >>> sel.mask_float32().dtype
    dtype('float32')
    """

    _value_name = "mask"
    _tools = ("disk", "ring", "rectangle", "polygon")
    _what = "diffraction pattern"
    _side = "sig"
    _unit = "detector pixels"

    mask = traitlets.Any(None, allow_none=True)

    @traitlets.validate("mask")
    def _check_mask(self, proposal):
        return self._validate_mask(proposal["value"])

    @traitlets.observe("mask")
    def _mask_trait_changed(self, change):
        self._selection_changed(change)

    def mask_float32(self) -> np.ndarray:
        """The detector as a float32 array (1 inside, 0 outside), e.g. for ``ApplyMasksUDF``.

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import SigMaskSelector
        >>> sel = SigMaskSelector(np.zeros((2, 2)))
        >>> sel.mask = np.eye(2, dtype=bool)
        >>> sel.mask_float32().tolist()
        [[1.0, 0.0], [0.0, 1.0]]
        """
        return self.mask.astype(np.float32)

    def mask_factory(self) -> Callable[[], np.ndarray]:
        """A snapshot of the detector as a mask factory (a callable returning the float32 mask).

        Examples
        --------
        >>> import numpy as np
        >>> from udfwidgets.widgets import SigMaskSelector
        >>> sel = SigMaskSelector(np.zeros((3, 3)))
        >>> _ = sel.set_disk((1, 1), 1)
        >>> int(sel.mask_factory()().sum())
        5
        """
        mask = self.mask_float32()
        return _ConstantFactory(mask)


class _ConstantFactory:
    """A picklable callable that returns a fixed array."""

    def __init__(self, array: np.ndarray):
        self.array = array

    def __call__(self) -> np.ndarray:
        return self.array
